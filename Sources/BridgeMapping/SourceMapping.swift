import BridgeCore

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
