import BridgeCore
import BridgeTraceModel

/// The loaded, validated mappings (every `*.yaml` in the mappings directory, merged).
///
/// Version 1 of the format. Sections: `source`, `results`, `tracing`, `handoffs_table`, `backfill`,
/// `agents`, `tools`. Column and table names are identifiers, never SQL text.
public struct MappingConfig: Sendable, Equatable {
    public var version: Int
    public var source: SourceMapping
    public var results: ResultsMapping
    public var tracing: TracingMapping
    public var handoffsTable: HandoffsTableMapping?
    public var agents: [AgentMapping]
    public var tools: [ToolMapping]
    /// Input and output guardrails that agents name.
    public var guardrails: [GuardrailMapping] = []
    /// Where approval requests for `needs_approval` tools are written (the user's table).
    public var approvals: ApprovalsMapping?
    /// How `bridge exec --backfill` reads historical runs (optional).
    public var backfill: BackfillMapping?
    /// MCP servers whose tools agents may use (`mcp_servers`).
    public var mcpServers: [MCPServerMapping]
    /// The files the mappings were read from, in load order.
    public var files: [String]
    /// Where each key was written, keyed by `file#keypath` (not encoded).
    public var locations: [String: MappingLocation]
    /// The real SQL types of the mapped tables' columns, loaded from the catalog at start-up
    /// (`ColumnTypes.load`); empty until then (not encoded, not compared).
    public var columnTypes = ColumnTypes()

    public init(version: Int = 1, source: SourceMapping, results: ResultsMapping, tracing: TracingMapping = .init(),
                handoffsTable: HandoffsTableMapping? = nil, agents: [AgentMapping], tools: [ToolMapping],
                files: [String] = [], locations: [String: MappingLocation] = [:], backfill: BackfillMapping? = nil,
                mcpServers: [MCPServerMapping] = []) {
        self.mcpServers = mcpServers
        self.version = version
        self.source = source
        self.results = results
        self.tracing = tracing
        self.handoffsTable = handoffsTable
        self.agents = agents
        self.tools = tools
        self.backfill = backfill
        self.files = files
        self.locations = locations
    }

    /// A copy with `guardrails` and `approvals` set.
    public func with(guardrails: [GuardrailMapping], approvals: ApprovalsMapping? = nil) -> MappingConfig {
        var c = self
        c.guardrails = guardrails
        c.approvals = approvals
        return c
    }

    // MARK: What the worker and the migrations need

    /// The agent named `name`.
    public func agent(named name: String) -> AgentMapping? { agents.first { $0.name == name } }

    /// The MCP server named `name`.
    public func mcpServer(named name: String) -> MCPServerMapping? { mcpServers.first { $0.name == name } }

    /// The tool named `name`.
    public func tool(named name: String) -> ToolMapping? { tools.first { $0.name == name } }

    /// The guardrail named `name`.
    public func guardrail(named name: String) -> GuardrailMapping? { guardrails.first { $0.name == name } }

    /// Claim order for the priority column's values, highest first (empty: no priority).
    public var priorityOrder: [String] { source.priority?.order ?? [] }

    /// The execution table's logical columns (`status`, `trace_id`, …) mapped to real column
    /// names; only the configured ones. Empty when there is no `results.executions` section.
    public var executionColumns: [String: String] { results.executions?.columns.byLogicalName ?? [:] }

    /// Names that migrations substitute: `tasks_table`, `tasks_key` and the claim order's
    /// columns (`tasks_status_column`, `tasks_priority_column`, `tasks_created_at_column`,
    /// for `0011_claim_index.sql`; without a priority the status column stands in, without
    /// created_at the key) always, `executions_table` and its time columns
    /// (`executions_completed_at_column`, `executions_started_at_column`, for
    /// `0049_verify_window_indexes.sql`) only when `results.executions` is configured.
    public var placeholders: [String: String] {
        var p = ["tasks_table": source.table, "tasks_key": source.key,
                 "tasks_status_column": source.status.column,
                 "tasks_priority_column": source.priority?.column ?? source.status.column,
                 "tasks_created_at_column": source.createdAtColumn ?? source.key]
        if let e = results.executions {
            p["executions_table"] = e.table
            // For 0049's time indexes (verify --since); without a time column, the key.
            let c = e.columns
            p["executions_completed_at_column"] = c.completedAt ?? c.startedAt ?? e.key
            p["executions_started_at_column"] = c.startedAt ?? c.completedAt ?? e.key
        }
        return p
    }

    /// Where `path` (a key path relative to `origin`) was written; falls back to `origin`.
    public func location(_ origin: MappingLocation, _ path: String = "") -> MappingLocation {
        let full = path.isEmpty ? origin.path : (origin.path.isEmpty ? path : origin.path + "." + path)
        return locations[origin.file + "#" + full] ?? MappingLocation(file: origin.file, line: origin.line,
                                                                      column: origin.column, path: full)
    }

    public static func == (a: MappingConfig, b: MappingConfig) -> Bool {
        a.version == b.version && a.source == b.source && a.results == b.results && a.tracing == b.tracing
            && a.handoffsTable == b.handoffsTable && a.agents == b.agents && a.tools == b.tools
            && a.backfill == b.backfill && a.guardrails == b.guardrails && a.approvals == b.approvals && a.mcpServers == b.mcpServers
    }
}

/// `source`: where tasks come from and how a task selects its agent.
public struct SourceMapping: Sendable, Equatable {
    /// The task table (default `tasks`); may be schema-qualified.
    public var table: String
    /// The key column (default `id`).
    public var key: String
    public var status: StatusMapping
    /// Column whose value becomes the trace's `group_id` and `metadata.workspace_id`.
    public var groupColumn: String?
    /// Optional claim order.
    public var priority: PriorityMapping?
    /// Column used as a tie-breaker when claiming (oldest first).
    public var createdAtColumn: String?
    public var agentSelection: AgentSelectionMapping?
    /// The first user message, rendered from the task row (and the matched agent row).
    public var input: Template
    /// Where the `source` section was written.
    public var origin: MappingLocation

    public init(table: String = "tasks", key: String = "id", status: StatusMapping = .init(), groupColumn: String? = nil,
                priority: PriorityMapping? = nil, createdAtColumn: String? = nil,
                agentSelection: AgentSelectionMapping? = nil, input: Template, origin: MappingLocation = .unknown) {
        self.table = table
        self.key = key
        self.status = status
        self.groupColumn = groupColumn
        self.priority = priority
        self.createdAtColumn = createdAtColumn
        self.agentSelection = agentSelection
        self.input = input
        self.origin = origin
    }
}

/// `source.status`: the status column and the values meaning pending, running, completed, failed.
public struct StatusMapping: Sendable, Equatable {
    public var column: String
    public var pending: String
    public var running: String
    public var completed: String
    public var failed: String

    public init(column: String = "status", pending: String = "pending", running: String = "in_progress",
                completed: String = "completed", failed: String = "failed") {
        self.column = column
        self.pending = pending
        self.running = running
        self.completed = completed
        self.failed = failed
    }
}

/// `source.priority`: the priority column and its values, highest first.
public struct PriorityMapping: Sendable, Equatable {
    public var column: String
    public var order: [String]

    public init(column: String, order: [String]) {
        self.column = column
        self.order = order
    }
}

/// `source.agent_selection`: how a task row selects its agent.
///
/// The task's `task_column` joins `table.key`; that row's `match_column` is compared with each
/// YAML agent's `match`. Without an agent row, the task's `fallback_column` is compared; then
/// `default_agent` applies.
public struct AgentSelectionMapping: Sendable, Equatable {
    public var table: String
    public var key: String
    public var taskColumn: String?
    public var matchColumn: String
    public var fallbackColumn: String?
    /// Column of the agent table holding the group (workspace) value; used to load the agent
    /// rows of a task's group.
    public var groupColumn: String?
    /// Name of a YAML agent.
    public var defaultAgent: String?

    public init(table: String = "agents", key: String = "id", taskColumn: String? = nil, matchColumn: String = "name",
                fallbackColumn: String? = nil, groupColumn: String? = nil, defaultAgent: String? = nil) {
        self.table = table
        self.key = key
        self.taskColumn = taskColumn
        self.matchColumn = matchColumn
        self.fallbackColumn = fallbackColumn
        self.groupColumn = groupColumn
        self.defaultAgent = defaultAgent
    }
}

/// `results`: where results go.
public struct ResultsMapping: Sendable, Equatable {
    /// The task column (jsonb) receiving the final output and usage.
    public var resultColumn: String
    /// Set to now() when the task completes, if configured.
    public var completedAtColumn: String?
    /// Receives the trace id, if configured.
    public var traceIdColumn: String?
    /// One row per attempt, if configured.
    public var executions: ExecutionsMapping?
    public var origin: MappingLocation

    public init(resultColumn: String = "result", completedAtColumn: String? = nil, traceIdColumn: String? = nil,
                executions: ExecutionsMapping? = nil, origin: MappingLocation = .unknown) {
        self.resultColumn = resultColumn
        self.completedAtColumn = completedAtColumn
        self.traceIdColumn = traceIdColumn
        self.executions = executions
        self.origin = origin
    }
}

/// `results.executions`: the per-attempt execution table.
public struct ExecutionsMapping: Sendable, Equatable {
    public var table: String
    /// The execution table's key column (default `id`), returned by the insert of each attempt.
    public var key: String
    /// Column referencing the task key.
    public var taskColumn: String
    public var columns: ExecutionColumns
    public var statuses: ExecutionStatuses

    public init(table: String = "task_executions", key: String = "id", taskColumn: String = "task_id",
                columns: ExecutionColumns = .init(), statuses: ExecutionStatuses = .init()) {
        self.table = table
        self.key = key
        self.taskColumn = taskColumn
        self.columns = columns
        self.statuses = statuses
    }
}

/// Real column names of the execution table; nil means the schema has no such column.
public struct ExecutionColumns: Sendable, Equatable {
    public var status: String
    public var traceId: String?
    public var startedAt: String?
    public var completedAt: String?
    public var durationSeconds: String?
    public var tokenUsage: String?
    public var result: String?
    public var errorMessage: String?
    public var errorType: String?
    public var agentId: String?
    public var workspaceId: String?
    public var retryCount: String?

    public init(status: String = "status", traceId: String? = nil, startedAt: String? = nil, completedAt: String? = nil,
                durationSeconds: String? = nil, tokenUsage: String? = nil, result: String? = nil,
                errorMessage: String? = nil, errorType: String? = nil, agentId: String? = nil,
                workspaceId: String? = nil, retryCount: String? = nil) {
        self.status = status
        self.traceId = traceId
        self.startedAt = startedAt
        self.completedAt = completedAt
        self.durationSeconds = durationSeconds
        self.tokenUsage = tokenUsage
        self.result = result
        self.errorMessage = errorMessage
        self.errorType = errorType
        self.agentId = agentId
        self.workspaceId = workspaceId
        self.retryCount = retryCount
    }

    /// The YAML keys, in order.
    public static let logicalNames = ["status", "trace_id", "started_at", "completed_at", "duration_seconds",
                                      "token_usage", "result", "error_message", "error_type", "agent_id",
                                      "workspace_id", "retry_count"]

    /// Configured columns keyed by their YAML (logical) name.
    public var byLogicalName: [String: String] {
        let values: [String?] = [status, traceId, startedAt, completedAt, durationSeconds, tokenUsage, result,
                                 errorMessage, errorType, agentId, workspaceId, retryCount]
        var out: [String: String] = [:]
        for (k, v) in zip(Self.logicalNames, values) { if let v { out[k] = v } }
        return out
    }
}

/// Values of the execution table's status column.
public struct ExecutionStatuses: Sendable, Equatable {
    public var started: String
    public var completed: String
    public var failedRetriable: String
    public var failedTerminal: String

    public init(started: String = "started", completed: String = "completed",
                failedRetriable: String = "failed_retriable", failedTerminal: String = "failed_terminal") {
        self.started = started
        self.completed = completed
        self.failedRetriable = failedRetriable
        self.failedTerminal = failedTerminal
    }
}

/// `handoffs_table`: an edge table of agent-to-agent handoffs (e.g. `agent_handoffs`).
public struct HandoffsTableMapping: Sendable, Equatable {
    public var table: String
    public var sourceColumn: String
    public var targetColumn: String
    public var descriptionColumn: String?
    public var origin: MappingLocation

    public init(table: String, sourceColumn: String, targetColumn: String, descriptionColumn: String? = nil,
                origin: MappingLocation = .unknown) {
        self.table = table
        self.sourceColumn = sourceColumn
        self.targetColumn = targetColumn
        self.descriptionColumn = descriptionColumn
        self.origin = origin
    }
}

/// `tracing`: the workflow name and whether tool inputs/outputs are recorded.
public struct TracingMapping: Sendable, Equatable {
    public var workflowName: String
    public var includeSensitiveData: Bool

    public init(workflowName: String = "bridge exec", includeSensitiveData: Bool = true) {
        self.workflowName = workflowName
        self.includeSensitiveData = includeSensitiveData
    }
}

/// One entry of `agents`.
public struct AgentMapping: Sendable, Equatable {
    public var name: String
    /// The value of `agent_selection.match_column` that selects this agent (default: `name`).
    public var match: String
    public var instructions: Template
    public var model: String
    public var modelSettings: [String: JSONValue]
    /// `responses` or `chat_completions`; nil means the provider's default (responses).
    public var modelAPI: ModelAPI?
    /// Tool names, in order.
    public var tools: [String]
    public var handoffs: [HandoffMapping]
    /// Used when other agents hand off to this one.
    public var handoffDescription: String?
    public var maxTurns: Int?
    public var toolUseBehavior: ToolUseBehavior
    /// `output_type`: the structured output (nil: plain text).
    public var outputType: OutputSchemaSpec?
    public var inputGuardrails: [String] = []
    public var outputGuardrails: [String] = []
    /// Names of `mcp_servers` whose tools this agent may call, in order.
    public var mcpServers: [String]
    public var origin: MappingLocation

    public init(name: String, match: String? = nil, instructions: Template = Template(""), model: String = "gpt-4.1",
                modelSettings: [String: JSONValue] = [:], modelAPI: ModelAPI? = nil, tools: [String] = [],
                handoffs: [HandoffMapping] = [], handoffDescription: String? = nil, maxTurns: Int? = nil,
                toolUseBehavior: ToolUseBehavior = .runLLMAgain, outputType: OutputSchemaSpec? = nil,
                inputGuardrails: [String] = [], outputGuardrails: [String] = [], mcpServers: [String] = [],
                origin: MappingLocation = .unknown) {
        self.mcpServers = mcpServers
        self.outputType = outputType
        self.inputGuardrails = inputGuardrails
        self.outputGuardrails = outputGuardrails
        self.name = name
        self.match = match ?? name
        self.instructions = instructions
        self.model = model
        self.modelSettings = modelSettings
        self.modelAPI = modelAPI
        self.tools = tools
        self.handoffs = handoffs
        self.handoffDescription = handoffDescription
        self.maxTurns = maxTurns
        self.toolUseBehavior = toolUseBehavior
        self.origin = origin
    }
}

/// One entry of `guardrails`: a read-only SQL check or an agent.
public struct GuardrailMapping: Sendable, Equatable {
    public var name: String
    public var implementation: GuardrailImplementation
    /// `run_in_parallel` (default true): see `GuardrailSpec.runInParallel`.
    public var runInParallel: Bool
    public var origin: MappingLocation

    public init(name: String, implementation: GuardrailImplementation, runInParallel: Bool = true,
                origin: MappingLocation = .unknown) {
        self.name = name
        self.implementation = implementation
        self.runInParallel = runInParallel
        self.origin = origin
    }

    public var spec: GuardrailSpec { GuardrailSpec(name: name, implementation: implementation, runInParallel: runInParallel) }
}

/// A handoff declared in YAML: the target agent and an optional description.
public struct HandoffMapping: Sendable, Equatable {
    public var agent: String
    public var description: String?

    public init(agent: String, description: String? = nil) {
        self.agent = agent
        self.description = description
    }
}

/// One entry of `tools`: the tool as a run spec carries it, and where it was written. Its
/// fields read through to `spec` (`tool.name`, `tool.implementation`).
@dynamicMemberLookup
public struct ToolMapping: Sendable, Equatable {
    /// The run-spec form of this tool: its schema, how it runs and its `needs_approval`.
    public var spec: ToolSpec
    public var origin: MappingLocation

    public init(_ spec: ToolSpec, origin: MappingLocation = .unknown) {
        self.spec = spec
        self.origin = origin
    }

    public subscript<T>(dynamicMember field: KeyPath<ToolSpec, T>) -> T { spec[keyPath: field] }

    /// `{type: object, properties: {}, required: [], additionalProperties: false}`
    public static let emptyParameters: JSONValue = [
        "type": "object", "properties": [:], "required": [], "additionalProperties": false,
    ]
}

extension MappingLocation {
    /// A placeholder for models built in code rather than loaded from a file.
    public static let unknown = MappingLocation(file: "<code>", line: 0, column: 0, path: "")
}

/// `approvals`: the user's table of approval requests (e.g. `human_feedback_requests`).
///
/// bridge inserts one row per call of a `needs_approval` tool and reads the row's status back;
/// `bridge approve` / `bridge reject` (or the application's UI) decide it.
public struct ApprovalsMapping: Sendable, Equatable {
    public var table: String
    public var key: String
    public var statusColumn: String
    public var pending: String
    public var approved: String
    public var rejected: String
    /// Written by bridge when it resumes a request that expired undecided (nil: left pending).
    public var expired: String?
    /// Receives now() + `expiresAfterSeconds`; past it an undecided request counts as rejected.
    public var expiresAtColumn: String?
    public var expiresAfterSeconds: Double
    /// The reviewer's answer (json/jsonb or text): its `message` (or the text itself) is what
    /// the model receives for a rejected call; its `by` names the reviewer.
    public var responseColumn: String?
    public var respondedAtColumn: String?
    /// Receives the task's `source.group_column` value.
    public var groupColumn: String?
    /// bridge's content → the table's columns: `title`, `description` (text), `proposed_actions`,
    /// `context` (json: task id, trace id, tool, arguments, call id).
    public var columns: [String: String]
    /// Constant values for other columns (e.g. `request_type: tool_approval`).
    public var values: [String: String]
    public var origin: MappingLocation

    public init(table: String = "human_feedback_requests", key: String = "id", statusColumn: String = "status",
                pending: String = "pending", approved: String = "approved", rejected: String = "rejected",
                expired: String? = nil, expiresAtColumn: String? = nil, expiresAfterSeconds: Double = 86_400,
                responseColumn: String? = nil, respondedAtColumn: String? = nil, groupColumn: String? = nil,
                columns: [String: String] = [:], values: [String: String] = [:], origin: MappingLocation = .unknown) {
        self.table = table
        self.key = key
        self.statusColumn = statusColumn
        self.pending = pending
        self.approved = approved
        self.rejected = rejected
        self.expired = expired
        self.expiresAtColumn = expiresAtColumn
        self.expiresAfterSeconds = expiresAfterSeconds
        self.responseColumn = responseColumn
        self.respondedAtColumn = respondedAtColumn
        self.groupColumn = groupColumn
        self.columns = columns
        self.values = values
        self.origin = origin
    }

    /// The keys of `columns`.
    public static let contentNames = ["title", "description", "proposed_actions", "context"]
}
