import BridgeCore
import BridgeTraceModel

/// `source`: where tasks come from and how a task selects its agent.
public struct SourceMapping: Sendable, Equatable {
    /// The task table (default `tasks`); may be schema-qualified.
    public var table: String = "tasks"
    /// The key column (default `id`).
    public var key: String = "id"
    public var status: StatusMapping = .init()
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
    public var origin: MappingLocation = .unknown

    /// The key of the task row `row` (its key column's value as text), or nil when the row has
    /// no value there.
    public func taskKey(of row: [String: JSONValue]) -> TaskKey? {
        guard let v = row[key], !v.isNull else { return nil }
        return TaskKey(v.templateText)
    }
}

/// `source.status`: the status column and the values meaning pending, running, completed, failed.
public struct StatusMapping: Sendable, Equatable {
    public var column: String = "status"
    public var pending: String = "pending"
    public var running: String = "in_progress"
    public var completed: String = "completed"
    public var failed: String = "failed"
}

/// `source.priority`: the priority column and its values, highest first.
public struct PriorityMapping: Sendable, Equatable {
    public var column: String
    public var order: [String]
}

/// `source.agent_selection`: how a task row selects its agent.
///
/// The task's `task_column` joins `table.key`; that row's `match_column` is compared with each
/// YAML agent's `match`. Without an agent row, the task's `fallback_column` is compared; then
/// `default_agent` applies.
public struct AgentSelectionMapping: Sendable, Equatable {
    public var table: String = "agents"
    public var key: String = "id"
    public var taskColumn: String?
    public var matchColumn: String = "name"
    public var fallbackColumn: String?
    /// Column of the agent table holding the group (workspace) value; used to load the agent
    /// rows of a task's group.
    public var groupColumn: String?
    /// Name of a YAML agent.
    public var defaultAgent: String?
}
