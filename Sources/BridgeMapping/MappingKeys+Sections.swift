import BridgeCore

// The keys of every mapping section (see `MappingKeySet`): the top of a file, `source`,
// `results`, `tracing`, `handoffs_table` and `backfill` here; agents and tools in
// MappingKeys+Agents.swift, the other sections in MappingKeys+Services.swift. Case order is the
// order unknown-key messages list them; defaults come from the models where the models hold them.

/// Sections and their keys, one enum per YAML mapping.
enum Keys {
    /// The top of a mapping file.
    @SnakeCaseRawValues
    enum Top: MappingKeySet {
        case version, source, results, tracing
        case handoffsTable
        case backfill, agents, tools, guardrails, approvals
        case mcpServers
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

    @SnakeCaseRawValues
    enum Source: ModelKeySet {
        case table, key, status
        case groupColumn
        case priority
        case createdAtColumn
        case agentSelection
        case input

        static let defaults = SourceMapping(input: Template(""))

        var field: KeyField<SourceMapping> {
            switch self {
            case .table: .name(\.table, "the task table (may be schema.table)")
            case .key: .name(\.key, "the task table's key column")
            case .status: .key(.init(.section(Status.self), "the status column and its values"))
            case .groupColumn:
                .name(\.groupColumn, "column whose value becomes the trace's group_id and metadata.workspace_id")
            case .priority: .key(.init(.section(Priority.self), "claim order by a priority column"))
            case .createdAtColumn: .name(\.createdAtColumn, "tie-breaker when claiming (oldest first)")
            case .agentSelection: .key(.init(.section(AgentSelection.self), "how a task row selects its agent"))
            case .input:
                .key(.init(.template, .required, "the first user message, rendered from the task (and agent) row"))
            }
        }
    }

    enum Status: String, ModelKeySet {
        case column, pending, running, completed, failed

        static let defaults = StatusMapping()

        var field: KeyField<StatusMapping> {
            switch self {
            case .column: .name(\.column, "the status column")
            case .pending: .name(\.pending, "the value of a task waiting to be claimed")
            case .running: .name(\.running, "the value of a claimed task")
            case .completed: .name(\.completed, "the value of a finished task")
            case .failed: .name(\.failed, "the value of a task that failed for good")
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

    @SnakeCaseRawValues
    enum AgentSelection: ModelKeySet {
        case table, key
        case taskColumn
        case matchColumn
        case fallbackColumn
        case groupColumn
        case defaultAgent

        static let defaults = AgentSelectionMapping()

        var field: KeyField<AgentSelectionMapping> {
            switch self {
            case .table: .name(\.table, "the table of agent rows")
            case .key: .name(\.key, "its key column")
            case .taskColumn: .name(\.taskColumn, "the task column referencing an agent row")
            case .matchColumn: .name(\.matchColumn, "the agent row's column compared with each agent's match")
            case .fallbackColumn: .name(\.fallbackColumn, "the task column compared when there is no agent row")
            case .groupColumn: .name(\.groupColumn, "the agent table's column holding the group (workspace)")
            case .defaultAgent: .name(\.defaultAgent, "the agent used when nothing matches")
            }
        }
    }

    // MARK: results

    @SnakeCaseRawValues
    enum Results: ModelKeySet {
        case resultColumn
        case completedAtColumn
        case traceIdColumn
        case executions

        static let defaults = ResultsMapping()

        var field: KeyField<ResultsMapping> {
            switch self {
            case .resultColumn: .name(\.resultColumn, "the task column (jsonb) receiving the final output and usage")
            case .completedAtColumn: .name(\.completedAtColumn, "set to now() when the task completes")
            case .traceIdColumn: .name(\.traceIdColumn, "receives the trace id")
            case .executions: .key(.init(.section(Executions.self), "the table with one row per attempt"))
            }
        }
    }

    @SnakeCaseRawValues
    enum Executions: ModelKeySet {
        case table, key
        case taskColumn
        case columns, statuses

        static let defaults = ExecutionsMapping()

        var field: KeyField<ExecutionsMapping> {
            switch self {
            case .table: .name(\.table, "the executions table")
            case .key: .name(\.key, "its key column")
            case .taskColumn: .name(\.taskColumn, "the column referencing the task key")
            case .columns: .key(.init(.section(ExecutionColumn.self), "its columns (leave out those it has not)"))
            case .statuses: .key(.init(.section(ExecutionStatus.self), "the values of its status column"))
            }
        }
    }

    @SnakeCaseRawValues
    enum ExecutionColumn: ModelKeySet {
        case status
        case traceId
        case startedAt
        case completedAt
        case durationSeconds
        case tokenUsage
        case result
        case errorMessage
        case errorType
        case agentId
        case workspaceId
        case retryCount

        static let defaults = ExecutionColumns()

        var field: KeyField<ExecutionColumns> {
            switch self {
            case .status: .name(\.status, "the attempt's status")
            case .traceId: .name(\.traceId, "the attempt's trace id")
            case .startedAt: .name(\.startedAt, "when the attempt started")
            case .completedAt: .name(\.completedAt, "when it ended")
            case .durationSeconds: .name(\.durationSeconds, "how long it took, in seconds")
            case .tokenUsage: .name(\.tokenUsage, "its token usage (json)")
            case .result: .name(\.result, "its final output")
            case .errorMessage: .name(\.errorMessage, "the error's message")
            case .errorType: .name(\.errorType, "the error's type")
            case .agentId: .name(\.agentId, "the agent row's key")
            case .workspaceId: .name(\.workspaceId, "the task's group value")
            case .retryCount: .name(\.retryCount, "the attempt number, from 0")
            }
        }
    }

    @SnakeCaseRawValues
    enum ExecutionStatus: ModelKeySet {
        case started, completed
        case failedRetriable
        case failedTerminal

        static let defaults = ExecutionStatuses.defaults

        var field: KeyField<ExecutionStatuses> {
            switch self {
            case .started: .name(\.started, "an attempt under way")
            case .completed: .name(\.completed, "an attempt that finished")
            case .failedRetriable: .name(\.failedRetriable, "a failed attempt that will be retried")
            case .failedTerminal: .name(\.failedTerminal, "a failed attempt that ends the task")
            }
        }
    }

    // MARK: tracing, handoffs_table, backfill

    @SnakeCaseRawValues
    enum Tracing: ModelKeySet {
        case workflowName
        case includeSensitiveData

        static let defaults = TracingMapping()

        var field: KeyField<TracingMapping> {
            switch self {
            case .workflowName: .name(\.workflowName, "the trace's workflow name")
            case .includeSensitiveData:
                .bool(\.includeSensitiveData, "false redacts tool and model inputs and outputs in spans")
            }
        }
    }

    @SnakeCaseRawValues
    enum HandoffsTable: MappingKeySet {
        case table
        case sourceColumn
        case targetColumn
        case descriptionColumn

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

    @SnakeCaseRawValues
    enum BackfillLogs: ModelKeySet {
        case table, key
        case taskColumn
        case typeColumn
        case contentColumn
        case createdAtColumn
        case toolCallTypes
        case toolCall

        static let defaults = BackfillLogsMapping()

        var field: KeyField<BackfillLogsMapping> {
            switch self {
            case .table: .name(\.table, "the log table")
            case .key: .name(\.key, "its key column (orders calls that started together)")
            case .taskColumn: .name(\.taskColumn, "the column referencing the task key")
            case .typeColumn: .name(\.typeColumn, "the column holding the log type")
            case .contentColumn: .name(\.contentColumn, "the json/jsonb column holding the record")
            case .createdAtColumn:
                .name(\.createdAtColumn, "when the row was written (the call's start if the record has none)")
            case .toolCallTypes:
                .key(
                    .init(
                        .names, default: Self.defaults.toolCallTypes.joined(separator: ", "),
                        "the log types that are tool calls (at least one)"))
            case .toolCall:
                .key(
                    .init(
                        .section(BackfillToolCall.self),
                        "the record's JSON keys; a key the section leaves out is absent from the records"))
            }
        }
    }

    @SnakeCaseRawValues
    enum BackfillToolCall: ModelKeySet {
        case name, arguments, output
        case startedAt
        case durationMs
        case error

        static let defaults = ToolCallKeys()

        /// A key left out of a `tool_call` section is absent from the records (nil), whatever
        /// the defaults say.
        var field: KeyField<ToolCallKeys> {
            switch self {
            case .name: .name(\.name, .required, "the key holding the tool's name")
            case .arguments: .name(\.arguments, "the key holding its arguments")
            case .output: .name(\.output, "the key holding its output")
            case .startedAt: .name(\.startedAt, "the key holding its start (ISO 8601)")
            case .durationMs: .name(\.durationMs, "the key holding its duration in milliseconds")
            case .error: .name(\.error, "the key holding an error; present and not null: it failed")
            }
        }
    }
}
