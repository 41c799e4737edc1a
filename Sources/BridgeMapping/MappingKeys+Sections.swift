import BridgeTraceModel

// The keys of every mapping section (see `MappingKeySet`). Case order is the order unknown-key
// messages list them; defaults come from the models where the models hold them.

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

    // MARK: agents

    enum Agent: String, MappingKeySet {
        case name, match, instructions, model
        case modelSettings = "model_settings"
        case modelAPI = "model_api"
        case tools, handoffs
        case handoffDescription = "handoff_description"
        case maxTurns = "max_turns"
        case toolUseBehavior = "tool_use_behavior"
        case outputType = "output_type"
        case inputGuardrails = "input_guardrails"
        case outputGuardrails = "output_guardrails"
        case mcpServers = "mcp_servers"

        var declaration: MappingKey {
            switch self {
            case .name: .init(.name, .required, "the agent's name (unique)")
            case .match: .init(.name, defaultProse: "the agent's name", "the agent row value that selects this agent")
            case .instructions:
                .init(.template, defaultProse: "empty", "the system prompt, templated from the task and agent rows")
            case .model: .init(.name, default: "gpt-4.1", "the model")
            case .modelSettings:
                .init(.section(ModelSetting.self), "the SDK's ModelSettings and the APIs' request parameters")
            case .modelAPI:
                .init(.choice(ModelAPI.allCases.map(\.rawValue)), "the API the model is called through")
            case .tools: .init(.names, "the tools it may call")
            case .handoffs:
                .init(.either(.names, .entries(Handoff.self)), "the agents it may hand off to")
            case .handoffDescription: .init(.string, "what another agent's handoff tool says about this one")
            case .maxTurns:
                .init(.int(min: 1), default: "\(DatabaseToSDKBridge.defaultMaxTurns)", "turns before the run fails")
            case .toolUseBehavior:
                .init(
                    .either(.choice(["run_llm_again", "stop_on_first_tool"]), .section(ToolUseBehavior.self)),
                    default: "run_llm_again", "whether a tool's output ends the run")
            case .outputType: .init(.section(OutputType.self), "a structured output")
            case .inputGuardrails: .init(.names, "guardrails run on the input")
            case .outputGuardrails: .init(.names, "guardrails run on the final output")
            case .mcpServers: .init(.names, "the MCP servers whose tools it may call")
            }
        }
    }

    enum Handoff: String, MappingKeySet {
        case agent, description

        var declaration: MappingKey {
            switch self {
            case .agent: .init(.name, .required, "the agent handed off to")
            case .description: .init(.string, "the handoff tool's description")
            }
        }
    }

    enum ToolUseBehavior: String, MappingKeySet {
        case stopAtToolNames = "stop_at_tool_names"

        var declaration: MappingKey {
            .init(.names, .required, "the run ends with the output of the first of these tools it calls")
        }
    }

    enum OutputType: String, MappingKeySet {
        case name, schema, strict, columns

        var declaration: MappingKey {
            switch self {
            case .name: .init(.name, .required, "the schema's name (^[a-zA-Z0-9_-]{1,64}$)")
            case .schema: .init(.json, .required, "the JSON Schema of the output")
            case .strict: .init(.bool, default: "true", "strict structured output")
            case .columns: .init(.stringMap, "top-level fields → task columns they are written to")
            }
        }
    }

    /// The `model_settings` keys bridge accepts: the Agents SDK's `ModelSettings` fields and the
    /// request parameters of the Responses and Chat Completions APIs. Anything else a provider
    /// takes goes under `extra_args` (or `extra_body`).
    enum ModelSetting: String, MappingKeySet {
        // Agents SDK ModelSettings
        case temperature
        case topP = "top_p"
        case frequencyPenalty = "frequency_penalty"
        case presencePenalty = "presence_penalty"
        case toolChoice = "tool_choice"
        case parallelToolCalls = "parallel_tool_calls"
        case truncation
        case maxTokens = "max_tokens"
        case reasoning, verbosity, metadata, store
        case includeUsage = "include_usage"
        case responseInclude = "response_include"
        case topLogprobs = "top_logprobs"
        case extraQuery = "extra_query"
        case extraBody = "extra_body"
        case extraHeaders = "extra_headers"
        case extraArgs = "extra_args"
        // Responses API
        case maxOutputTokens = "max_output_tokens"
        case previousResponseId = "previous_response_id"
        case serviceTier = "service_tier"
        case user
        case promptCacheKey = "prompt_cache_key"
        case safetyIdentifier = "safety_identifier"
        case background
        case maxToolCalls = "max_tool_calls"
        case prompt, text, include, conversation
        // Chat Completions API
        case seed, stop, n
        case logitBias = "logit_bias"
        case logprobs
        case maxCompletionTokens = "max_completion_tokens"
        case modalities, prediction
        case reasoningEffort = "reasoning_effort"
        case webSearchOptions = "web_search_options"
        case audio

        var declaration: MappingKey {
            switch self {
            case .extraArgs, .extraBody:
                .init(.json, "provider parameters merged into the request as they are")
            case .temperature, .topP, .frequencyPenalty, .presencePenalty, .toolChoice, .parallelToolCalls,
                .truncation, .maxTokens, .reasoning, .verbosity, .metadata, .store, .includeUsage, .responseInclude,
                .topLogprobs, .extraQuery, .extraHeaders:
                .init(.json, "the Agents SDK's ModelSettings field of that name")
            case .maxOutputTokens, .previousResponseId, .serviceTier, .user, .promptCacheKey, .safetyIdentifier,
                .background, .maxToolCalls, .prompt, .text, .include, .conversation:
                .init(.json, "the Responses API request parameter of that name")
            case .seed, .stop, .n, .logitBias, .logprobs, .maxCompletionTokens, .modalities, .prediction,
                .reasoningEffort, .webSearchOptions, .audio:
                .init(.json, "the Chat Completions request parameter of that name")
            }
        }
    }

    // MARK: tools

    enum Tool: String, MappingKeySet {
        case name, description, parameters, strict, sql, http, command, hosted
        case needsApproval = "needs_approval"
        case inputGuardrails = "input_guardrails"
        case outputGuardrails = "output_guardrails"

        /// The implementations, of which a tool has exactly one.
        static let implementations: [Tool] = [.sql, .http, .command, .hosted]

        var declaration: MappingKey {
            let one = MappingKeyRequirement.when("exactly one of sql, http, command, hosted")
            return switch self {
            case .name: .init(.name, .required, "the tool's name (^[a-zA-Z0-9_-]{1,64}$, unique)")
            case .description: .init(.string, .when("yes, except hosted tools"), "what the model is told it does")
            case .parameters:
                .init(.json, defaultProse: "no parameters", "a JSON Schema of its arguments (not for hosted tools)")
            case .strict: .init(.bool, default: "true", "strict JSON Schema (not for hosted tools)")
            case .sql: .init(.section(ToolSQL.self), one, "a SQL statement over :argument and :task.column")
            case .http: .init(.section(ToolHTTP.self), one, "an HTTP endpoint the arguments are POSTed to")
            case .command: .init(.section(ToolCommand.self), one, "a program run without a shell")
            case .hosted: .init(.section(HostedTool.self), one, "a tool run by the model provider")
            case .needsApproval:
                .init(
                    .either(.bool, .section(NeedsApproval.self)), default: "false",
                    "whether a call waits for a human decision")
            case .inputGuardrails: .init(.entries(ToolGuardrail.self), "checks run on the arguments")
            case .outputGuardrails: .init(.entries(ToolGuardrail.self), "checks run on the output")
            }
        }
    }

    enum ToolSQL: String, MappingKeySet {
        case query, writes
        case timeoutMs = "timeout_ms"
        case maxRows = "max_rows"
        case maxBytes = "max_bytes"

        var declaration: MappingKey {
            let d = SQLToolSpec(sql: "")
            return switch self {
            case .query: .init(.sql, .required, "one statement; :argument and :task.column become binds")
            case .writes: .init(.bool, default: "false", "false runs it READ ONLY")
            case .timeoutMs: .init(.int(min: 1), default: "\(d.timeoutMs)", "its statement timeout in milliseconds")
            case .maxRows: .init(.int(min: 1), default: "\(d.maxRows)", "rows returned at most")
            case .maxBytes: .init(.int(min: 1), default: "\(d.maxBytes)", "bytes of output at most")
            }
        }
    }

    enum ToolHTTP: String, MappingKeySet {
        case url, headers
        case timeoutMs = "timeout_ms"
        case maxBytes = "max_bytes"

        var declaration: MappingKey {
            let d = HTTPToolSpec(url: "")
            return switch self {
            case .url: .init(.name, .required, "an http(s) URL")
            case .headers: .init(.stringMap, "request headers; values may use ${ENV}")
            case .timeoutMs: .init(.int(min: 1), default: "\(d.timeoutMs)", "the whole exchange's deadline in ms")
            case .maxBytes: .init(.int(min: 1), default: "\(d.maxBytes)", "bytes of response at most")
            }
        }
    }

    enum ToolCommand: String, MappingKeySet {
        case argv
        case timeoutMs = "timeout_ms"
        case maxBytes = "max_bytes"
        case env

        var declaration: MappingKey {
            let d = CommandToolSpec(argv: [])
            return switch self {
            case .argv: .init(.names, .required, "the program and its arguments; the call's arguments go on stdin")
            case .timeoutMs: .init(.int(min: 1), default: "\(d.timeoutMs)", "the run's deadline in milliseconds")
            case .maxBytes: .init(.int(min: 1), default: "\(d.maxBytes)", "bytes of output at most")
            case .env: .init(.names, "environment variables it may see besides PATH, HOME, LANG, TZ")
            }
        }
    }

    enum HostedTool: String, MappingKeySet {
        case type
        case vectorStoreIds = "vector_store_ids"

        var declaration: MappingKey {
            switch self {
            case .type: .init(.choice(LoadState.hostedTypes), .required, "the provider's tool")
            case .vectorStoreIds: .init(.names, .when("with file_search"), "the vector stores file_search reads")
            }
        }
    }

    enum NeedsApproval: String, MappingKeySet {
        case sql

        var declaration: MappingKey {
            .init(.sql, .required, "a query over :argument and :task.column; true: the call waits for approval")
        }
    }

    enum ToolGuardrail: String, MappingKeySet {
        case name, sql, agent
        case onTrip = "on_trip"
        case message

        var declaration: MappingKey {
            switch self {
            case .name: .init(.name, .required, "the guardrail's name (unique in its list)")
            case .sql:
                .init(
                    .section(GuardrailSQL.self), .when("exactly one of sql, agent"),
                    "a read-only check over :arguments (or :output) and :task.column")
            case .agent:
                .init(
                    .name, .when("exactly one of sql, agent"),
                    "an agent whose output_type has a boolean tripwire_triggered")
            case .onTrip:
                .init(
                    .choice(ToolGuardrailBehavior.names), default: "raise_exception",
                    "what a tripwire does to the call")
            case .message: .init(.template, "what the model is told instead ({{task.column}} only)")
            }
        }
    }

    enum Guardrail: String, MappingKeySet {
        case name, sql, agent
        case runInParallel = "run_in_parallel"

        var declaration: MappingKey {
            switch self {
            case .name: .init(.name, .required, "the guardrail's name (unique)")
            case .sql:
                .init(
                    .section(GuardrailSQL.self), .when("exactly one of sql, agent"),
                    "a read-only check over :input (or :output) and :task.column")
            case .agent:
                .init(
                    .name, .when("exactly one of sql, agent"),
                    "an agent whose output_type has a boolean tripwire_triggered")
            case .runInParallel: .init(.bool, default: "true", "an input guardrail runs alongside the model")
            }
        }
    }

    enum GuardrailSQL: String, MappingKeySet {
        case query
        case timeoutMs = "timeout_ms"

        var declaration: MappingKey {
            switch self {
            case .query: .init(.sql, .required, "one read-only statement whose row has tripwire_triggered")
            case .timeoutMs:
                .init(.int(min: 1), default: "\(SQLToolSpec.check("").timeoutMs)", "its statement timeout in ms")
            }
        }
    }

    // MARK: approvals

    enum Approvals: String, MappingKeySet {
        case table, key, status
        case expiresAtColumn = "expires_at_column"
        case expiresAfter = "expires_after"
        case responseColumn = "response_column"
        case respondedAtColumn = "responded_at_column"
        case groupColumn = "group_column"
        case columns, values

        var declaration: MappingKey {
            let d = ApprovalsMapping()
            return switch self {
            case .table: .init(.name, .required, "the table of approval requests")
            case .key: .init(.name, default: d.key, "its key column")
            case .status: .init(.section(ApprovalStatus.self), "its status column and values")
            case .expiresAtColumn: .init(.name, "receives the deadline; past it an undecided request is rejected")
            case .expiresAfter: .init(.duration, default: "24h", "how long a request waits for a decision")
            case .responseColumn: .init(.name, "the reviewer's answer (json or text)")
            case .respondedAtColumn: .init(.name, "when it was decided")
            case .groupColumn: .init(.name, "receives the task's group value")
            case .columns: .init(.section(ApprovalColumn.self), "bridge's content → the table's columns")
            case .values: .init(.stringMap, "constant values for other columns")
            }
        }
    }

    enum ApprovalStatus: String, MappingKeySet {
        case column, pending, approved, rejected, expired

        var declaration: MappingKey {
            let d = ApprovalsMapping()
            return switch self {
            case .column: .init(.name, default: d.statusColumn, "the status column")
            case .pending: .init(.name, default: d.pending, "a request waiting for a decision")
            case .approved: .init(.name, default: d.approved, "an approved request")
            case .rejected: .init(.name, default: d.rejected, "a rejected request")
            case .expired: .init(.name, "written when an undecided request expires (else it stays pending)")
            }
        }
    }

    enum ApprovalColumn: String, MappingKeySet {
        case title, description
        case proposedActions = "proposed_actions"
        case context

        var declaration: MappingKey {
            switch self {
            case .title: .init(.name, "receives the request's title (text)")
            case .description: .init(.name, "receives its description (text)")
            case .proposedActions: .init(.name, "receives the proposed call (json)")
            case .context: .init(.name, "receives task id, trace id, tool, arguments and call id (json)")
            }
        }
    }

    // MARK: mcp_servers

    enum MCPServer: String, MappingKeySet {
        case name, stdio
        case streamableHTTP = "streamable_http"
        case toolFilter = "tool_filter"
        case cacheToolsList = "cache_tools_list"
        case timeoutMs = "timeout_ms"
        case useStructuredContent = "use_structured_content"

        var declaration: MappingKey {
            let one = MappingKeyRequirement.when("exactly one of stdio, streamable_http")
            return switch self {
            case .name: .init(.name, .required, "the server's name (^[a-zA-Z0-9_-]{1,64}$, unique)")
            case .stdio: .init(.section(MCPStdio.self), one, "a child process speaking JSON-RPC on stdin/stdout")
            case .streamableHTTP: .init(.section(MCPHTTP.self), one, "an MCP endpoint")
            case .toolFilter: .init(.section(MCPToolFilter.self), "which of its tools agents see")
            case .cacheToolsList: .init(.bool, default: "false", "read the tool list once per worker")
            case .timeoutMs:
                .init(
                    .int(min: 1, max: MCPServerMapping.maxTimeoutMs), default: "\(MCPServerMapping.defaultTimeoutMs)",
                    "bound on starting it and on each request, in ms")
            case .useStructuredContent:
                .init(.bool, default: "false", "give the model structuredContent when a result has it")
            }
        }
    }

    enum MCPStdio: String, MappingKeySet {
        case command, args, env, cwd

        var declaration: MappingKey {
            switch self {
            case .command: .init(.name, .required, "the program (no shell)")
            case .args: .init(.names, "its arguments")
            case .env: .init(.names, "environment variables it may see besides PATH, HOME, LANG, TZ")
            case .cwd: .init(.name, defaultProse: "the mappings directory", "its directory (relative: to the mappings)")
            }
        }
    }

    enum MCPHTTP: String, MappingKeySet {
        case url, headers

        var declaration: MappingKey {
            switch self {
            case .url: .init(.name, .required, "an http(s) URL")
            case .headers: .init(.stringMap, "request headers; values may use ${env:VAR}")
            }
        }
    }

    enum MCPToolFilter: String, MappingKeySet {
        case allowed, blocked

        var declaration: MappingKey {
            switch self {
            case .allowed: .init(.names, defaultProse: "all tools", "only these tools")
            case .blocked: .init(.names, "never these tools")
            }
        }
    }

    // MARK: pricing, limits, budgets

    enum Price: String, MappingKeySet {
        case input
        case cachedInput = "cached_input"
        case output

        var declaration: MappingKey {
            switch self {
            case .input: .init(.number(positive: false), .required, "USD per 1M input tokens")
            case .cachedInput:
                .init(.number(positive: false), defaultProse: "the input price", "USD per 1M cached input tokens")
            case .output: .init(.number(positive: false), .required, "USD per 1M output (and reasoning) tokens")
            }
        }
    }

    enum Limits: String, MappingKeySet {
        case models, tools, fairness

        var declaration: MappingKey {
            switch self {
            case .models: .init(.named("<model>", ModelLimit.self), "fleet-wide limits per model name")
            case .tools: .init(.named("<tool>", ToolLimit.self), "fleet-wide limits per tool name")
            case .fairness: .init(.section(Fairness.self), "fair claims across groups")
            }
        }
    }

    enum ModelLimit: String, MappingKeySet {
        case requestsPerMinute = "requests_per_minute"
        case tokensPerMinute = "tokens_per_minute"
        case concurrency

        var declaration: MappingKey {
            switch self {
            case .requestsPerMinute: .init(.number(positive: true), "requests per minute, fleet-wide")
            case .tokensPerMinute: .init(.number(positive: true), "tokens per minute, fleet-wide")
            case .concurrency: .init(.int(min: 1, max: 100_000), "calls at once, fleet-wide")
            }
        }
    }

    enum ToolLimit: String, MappingKeySet {
        case concurrency

        var declaration: MappingKey { .init(.int(min: 1, max: 100_000), .required, "calls at once, fleet-wide") }
    }

    enum Fairness: String, MappingKeySet {
        case group

        var declaration: MappingKey { .init(.name, .required, "the task column whose values share claims fairly") }
    }

    enum Budgets: String, MappingKeySet {
        case table, key, limit
        case spentColumn = "spent_column"
        case onExceeded = "on_exceeded"

        var declaration: MappingKey {
            switch self {
            case .table: .init(.name, .required, "the table of budgets (one row per group)")
            case .key: .init(.name, default: "id", "its key column, compared with source.group_column")
            case .limit: .init(.sql, .required, "one SQL expression over its row: the budget in USD")
            case .spentColumn: .init(.name, "receives the group's spend")
            case .onExceeded:
                .init(
                    .choice(BudgetMapping.OnExceeded.allCases.map(\.rawValue)), default: "hold",
                    "what happens to a group's tasks over budget")
            }
        }
    }

    // MARK: sessions

    enum Sessions: String, MappingKeySet {
        case key, table
        case sessionColumn = "session_column"
        case item, values, roles, limit

        var declaration: MappingKey {
            let withTable = MappingKeyRequirement.when("with table")
            return switch self {
            case .key: .init(.template, .required, "the session key, from the task row ({{task.…}}); empty: none")
            case .table: .init(.name, defaultProse: "bridge's own tables", "the application's table of messages")
            case .sessionColumn:
                .init(.name, withTable, default: "session_id", "the column holding the session key")
            case .item: .init(.section(SessionItem.self), withTable, "item fields → the table's columns")
            case .values: .init(.stringMap, "constant values for other columns (with table)")
            case .roles: .init(.section(SessionRole.self), "bridge's roles → the role column's values (with table)")
            case .limit:
                .init(
                    .int(min: 1, max: SessionsMapping.maxLimit), default: "\(SessionsMapping(key: Template("")).limit)",
                    "items read before a run")
            }
        }
    }

    enum SessionItem: String, MappingKeySet {
        case role, content
        case createdAt = "created_at"
        case id, data
        case toolsUsed = "tools_used"

        var declaration: MappingKey {
            switch self {
            case .role: .init(.name, .required, "the role column")
            case .content: .init(.name, .required, "the message text column")
            case .createdAt: .init(.name, .when("created_at or id"), "orders the items")
            case .id: .init(.name, .when("created_at or id"), "orders items written at the same time")
            case .data: .init(.name, "the whole item as JSON, to replay tool calls exactly")
            case .toolsUsed: .init(.name, "an assistant message's tool calls and results (json list)")
            }
        }
    }

    enum SessionRole: String, MappingKeySet {
        case user, assistant, system, tool

        var declaration: MappingKey {
            switch self {
            case .user, .assistant, .system: .init(.name, default: rawValue, "the value of this role")
            case .tool: .init(.name, "the value of tool items; unmapped: they are not rows of their own")
            }
        }
    }
}
