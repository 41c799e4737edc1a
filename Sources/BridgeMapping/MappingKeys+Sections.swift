// The keys of every mapping section (see `MappingKeySet`): the top of a file, `source`,
// `results`, `tracing`, `handoffs_table` and `backfill` here; agents and tools in
// MappingKeys+Agents.swift, the other sections in MappingKeys+Services.swift. Case order is the
// order unknown-key messages list them; defaults come from the models where the models hold them.

/// Sections and their keys, one enum per YAML mapping.
enum Keys {
    /// The top of a mapping file.
    enum Top: String, MappingKeySet {
        case version, source, results, tracing
        case handoffsTable = "handoffs_table"
        case backfill, agents, tools, guardrails, approvals
        case mcpServers = "mcp_servers"
        case pricing, limits, budgets, sessions

        /// `agents`, `tools`, `guardrails` and `mcp_servers` are lists that merge across files;
        /// every other section may be written in one file only.
        var isList: Bool {
            if case .entries = declaration.kind { return true }
            return false
        }

        var declaration: MappingKey {
            switch self {
            case .version: .init(.int(), .required, "the format version; this bridge reads 1")
            case .source: .init(.section(Source.self), .required, "where tasks come from (in one of the files)")
            case .results:
                .init(.section(Results.self), .required, "where results go (in one of the files)")
            case .tracing: .init(.section(Tracing.self), "the workflow name and whether inputs and outputs are kept")
            case .handoffsTable:
                .init(.section(HandoffsTable.self), "an edge table of handoffs between agent rows")
            case .backfill: .init(.section(Backfill.self), "where `bridge exec --backfill` reads historical runs")
            case .agents: .init(.entries(Agent.self), .required, "the agents (lists merge across files)")
            case .tools: .init(.entries(Tool.self), "the tools agents may call (lists merge across files)")
            case .guardrails:
                .init(.entries(Guardrail.self), "input and output guardrails that agents name")
            case .approvals:
                .init(.section(Approvals.self), .when("with a needs_approval tool"), "the table of approval requests")
            case .mcpServers: .init(.entries(MCPServer.self), "MCP servers whose tools agents may call")
            case .pricing:
                .init(.named("<model>", Price.self), "USD per 1M tokens per model name")
            case .limits: .init(.section(Limits.self), "fleet-wide model and tool limits and fair claims")
            case .budgets: .init(.section(Budgets.self), "the application's budgets per group")
            case .sessions: .init(.section(Sessions.self), "conversation memory across runs")
            }
        }
    }

    // MARK: source

    enum Source: String, MappingKeySet {
        case table, key, status
        case groupColumn = "group_column"
        case priority
        case createdAtColumn = "created_at_column"
        case agentSelection = "agent_selection"
        case input

        var declaration: MappingKey {
            let d = SourceMapping(input: Template(""))
            return switch self {
            case .table: .init(.name, default: d.table, "the task table (may be schema.table)")
            case .key: .init(.name, default: d.key, "the task table's key column")
            case .status: .init(.section(Status.self), "the status column and its values")
            case .groupColumn:
                .init(.name, "column whose value becomes the trace's group_id and metadata.workspace_id")
            case .priority: .init(.section(Priority.self), "claim order by a priority column")
            case .createdAtColumn: .init(.name, "tie-breaker when claiming (oldest first)")
            case .agentSelection: .init(.section(AgentSelection.self), "how a task row selects its agent")
            case .input:
                .init(.template, .required, "the first user message, rendered from the task (and agent) row")
            }
        }
    }

    enum Status: String, MappingKeySet {
        case column, pending, running, completed, failed

        var declaration: MappingKey {
            let d = StatusMapping()
            return switch self {
            case .column: .init(.name, default: d.column, "the status column")
            case .pending: .init(.name, default: d.pending, "the value of a task waiting to be claimed")
            case .running: .init(.name, default: d.running, "the value of a claimed task")
            case .completed: .init(.name, default: d.completed, "the value of a finished task")
            case .failed: .init(.name, default: d.failed, "the value of a task that failed for good")
            }
        }
    }

    enum Priority: String, MappingKeySet {
        case column, order

        var declaration: MappingKey {
            switch self {
            case .column: .init(.name, .required, "the priority column")
            case .order: .init(.names, .required, "its values, highest first (at least one)")
            }
        }
    }

    enum AgentSelection: String, MappingKeySet {
        case table, key
        case taskColumn = "task_column"
        case matchColumn = "match_column"
        case fallbackColumn = "fallback_column"
        case groupColumn = "group_column"
        case defaultAgent = "default_agent"

        var declaration: MappingKey {
            let d = AgentSelectionMapping()
            return switch self {
            case .table: .init(.name, default: d.table, "the table of agent rows")
            case .key: .init(.name, default: d.key, "its key column")
            case .taskColumn: .init(.name, "the task column referencing an agent row")
            case .matchColumn:
                .init(.name, default: d.matchColumn, "the agent row's column compared with each agent's match")
            case .fallbackColumn: .init(.name, "the task column compared when there is no agent row")
            case .groupColumn: .init(.name, "the agent table's column holding the group (workspace)")
            case .defaultAgent: .init(.name, "the agent used when nothing matches")
            }
        }
    }

    // MARK: results

    enum Results: String, MappingKeySet {
        case resultColumn = "result_column"
        case completedAtColumn = "completed_at_column"
        case traceIdColumn = "trace_id_column"
        case executions

        var declaration: MappingKey {
            switch self {
            case .resultColumn:
                .init(
                    .name, default: ResultsMapping().resultColumn,
                    "the task column (jsonb) receiving the final output and usage")
            case .completedAtColumn: .init(.name, "set to now() when the task completes")
            case .traceIdColumn: .init(.name, "receives the trace id")
            case .executions: .init(.section(Executions.self), "the table with one row per attempt")
            }
        }
    }

    enum Executions: String, MappingKeySet {
        case table, key
        case taskColumn = "task_column"
        case columns, statuses

        var declaration: MappingKey {
            let d = ExecutionsMapping()
            return switch self {
            case .table: .init(.name, default: d.table, "the executions table")
            case .key: .init(.name, default: d.key, "its key column")
            case .taskColumn: .init(.name, default: d.taskColumn, "the column referencing the task key")
            case .columns: .init(.section(ExecutionColumn.self), "its columns (leave out those it has not)")
            case .statuses: .init(.section(ExecutionStatus.self), "the values of its status column")
            }
        }
    }

    enum ExecutionColumn: String, MappingKeySet {
        case status
        case traceId = "trace_id"
        case startedAt = "started_at"
        case completedAt = "completed_at"
        case durationSeconds = "duration_seconds"
        case tokenUsage = "token_usage"
        case result
        case errorMessage = "error_message"
        case errorType = "error_type"
        case agentId = "agent_id"
        case workspaceId = "workspace_id"
        case retryCount = "retry_count"

        var declaration: MappingKey {
            switch self {
            case .status: .init(.name, default: ExecutionColumns().status, "the attempt's status")
            case .traceId: .init(.name, "the attempt's trace id")
            case .startedAt: .init(.name, "when the attempt started")
            case .completedAt: .init(.name, "when it ended")
            case .durationSeconds: .init(.name, "how long it took, in seconds")
            case .tokenUsage: .init(.name, "its token usage (json)")
            case .result: .init(.name, "its final output")
            case .errorMessage: .init(.name, "the error's message")
            case .errorType: .init(.name, "the error's type")
            case .agentId: .init(.name, "the agent row's key")
            case .workspaceId: .init(.name, "the task's group value")
            case .retryCount: .init(.name, "the attempt number, from 0")
            }
        }
    }

    enum ExecutionStatus: String, MappingKeySet {
        case started, completed
        case failedRetriable = "failed_retriable"
        case failedTerminal = "failed_terminal"

        var declaration: MappingKey {
            let d = ExecutionStatuses.defaults
            return switch self {
            case .started: .init(.name, default: d.started, "an attempt under way")
            case .completed: .init(.name, default: d.completed, "an attempt that finished")
            case .failedRetriable: .init(.name, default: d.failedRetriable, "a failed attempt that will be retried")
            case .failedTerminal: .init(.name, default: d.failedTerminal, "a failed attempt that ends the task")
            }
        }
    }

    // MARK: tracing, handoffs_table, backfill

    enum Tracing: String, MappingKeySet {
        case workflowName = "workflow_name"
        case includeSensitiveData = "include_sensitive_data"

        var declaration: MappingKey {
            let d = TracingMapping()
            return switch self {
            case .workflowName: .init(.name, default: d.workflowName, "the trace's workflow name")
            case .includeSensitiveData:
                .init(
                    .bool, default: "\(d.includeSensitiveData)",
                    "false redacts tool and model inputs and outputs in spans")
            }
        }
    }

    enum HandoffsTable: String, MappingKeySet {
        case table
        case sourceColumn = "source_column"
        case targetColumn = "target_column"
        case descriptionColumn = "description_column"

        var declaration: MappingKey {
            switch self {
            case .table: .init(.name, .required, "the edge table")
            case .sourceColumn: .init(.name, .required, "the column referencing the agent row handing off")
            case .targetColumn: .init(.name, .required, "the column referencing the agent row handed to")
            case .descriptionColumn: .init(.name, "the handoff's description")
            }
        }
    }

    enum Backfill: String, MappingKeySet {
        case logs

        var declaration: MappingKey {
            .init(.section(BackfillLogs.self), "the log table whose rows record tool calls")
        }
    }

    enum BackfillLogs: String, MappingKeySet {
        case table, key
        case taskColumn = "task_column"
        case typeColumn = "type_column"
        case contentColumn = "content_column"
        case createdAtColumn = "created_at_column"
        case toolCallTypes = "tool_call_types"
        case toolCall = "tool_call"

        var declaration: MappingKey {
            let d = BackfillLogsMapping()
            return switch self {
            case .table: .init(.name, default: d.table, "the log table")
            case .key: .init(.name, default: d.key, "its key column (orders calls that started together)")
            case .taskColumn: .init(.name, default: d.taskColumn, "the column referencing the task key")
            case .typeColumn: .init(.name, default: d.typeColumn, "the column holding the log type")
            case .contentColumn: .init(.name, default: d.contentColumn, "the json/jsonb column holding the record")
            case .createdAtColumn: .init(.name, "when the row was written (the call's start if the record has none)")
            case .toolCallTypes:
                .init(
                    .names, default: d.toolCallTypes.joined(separator: ", "),
                    "the log types that are tool calls (at least one)")
            case .toolCall:
                .init(
                    .section(BackfillToolCall.self),
                    "the record's JSON keys; a key the section leaves out is absent from the records")
            }
        }
    }

    enum BackfillToolCall: String, MappingKeySet {
        case name, arguments, output
        case startedAt = "started_at"
        case durationMs = "duration_ms"
        case error

        var declaration: MappingKey {
            let d = ToolCallKeys()
            return switch self {
            case .name: .init(.name, .required, default: d.name, "the key holding the tool's name")
            case .arguments: .init(.name, default: d.arguments, "the key holding its arguments")
            case .output: .init(.name, default: d.output, "the key holding its output")
            case .startedAt: .init(.name, default: d.startedAt, "the key holding its start (ISO 8601)")
            case .durationMs: .init(.name, default: d.durationMs, "the key holding its duration in milliseconds")
            case .error: .init(.name, default: d.error, "the key holding an error; present and not null: it failed")
            }
        }
    }
}
