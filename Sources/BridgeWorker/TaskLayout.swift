import BridgeCore
import BridgePostgres

/// The table and column names the worker reads and writes, resolved from the mappings.
/// Optional columns are nil when the user's schema lacks them.
public struct TaskLayout: Sendable, Equatable {
    public var table: String
    public var key: String
    public var statusColumn: String
    public var pending: String
    public var running: String
    public var completed: String
    public var failed: String
    public var groupColumn: String?
    public var priorityColumn: String?
    /// Priority values from most to least urgent.
    public var priorityOrder: [String]
    public var createdAtColumn: String?
    public var resultColumn: String?
    public var completedAtColumn: String?
    public var traceIdColumn: String?
    public var executions: ExecutionLayout?
    /// The agents table and how a task points at its row.
    public var agentTable: String?
    public var agentKey: String?
    public var agentGroupColumn: String?
    /// The handoff edge table.
    public var handoffs: HandoffLayout?

    public init(table: String = "tasks", key: String = "id", statusColumn: String = "status",
                pending: String = "pending", running: String = "in_progress", completed: String = "completed",
                failed: String = "failed", groupColumn: String? = nil, priorityColumn: String? = nil,
                priorityOrder: [String] = [], createdAtColumn: String? = nil, resultColumn: String? = nil,
                completedAtColumn: String? = nil, traceIdColumn: String? = nil, executions: ExecutionLayout? = nil,
                agentTable: String? = nil, agentKey: String? = nil, agentGroupColumn: String? = nil,
                handoffs: HandoffLayout? = nil) {
        self.table = table
        self.key = key
        self.statusColumn = statusColumn
        self.pending = pending
        self.running = running
        self.completed = completed
        self.failed = failed
        self.groupColumn = groupColumn
        self.priorityColumn = priorityColumn
        self.priorityOrder = priorityOrder
        self.createdAtColumn = createdAtColumn
        self.resultColumn = resultColumn
        self.completedAtColumn = completedAtColumn
        self.traceIdColumn = traceIdColumn
        self.executions = executions
        self.agentTable = agentTable
        self.agentKey = agentKey
        self.agentGroupColumn = agentGroupColumn
        self.handoffs = handoffs
    }
}

/// Where execution rows go (one per attempt).
public struct ExecutionLayout: Sendable, Equatable {
    public var table: String
    public var key: String
    public var taskColumn: String
    public var status: String?
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

    public init(table: String, key: String = "id", taskColumn: String, status: String? = nil, traceId: String? = nil,
                startedAt: String? = nil, completedAt: String? = nil, durationSeconds: String? = nil,
                tokenUsage: String? = nil, result: String? = nil, errorMessage: String? = nil,
                errorType: String? = nil, agentId: String? = nil, workspaceId: String? = nil, retryCount: String? = nil) {
        self.table = table
        self.key = key
        self.taskColumn = taskColumn
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
}

/// An edge table of handoffs between DB agent rows.
public struct HandoffLayout: Sendable, Equatable {
    public var table: String
    public var sourceColumn: String
    public var targetColumn: String
    public var descriptionColumn: String?

    public init(table: String, sourceColumn: String, targetColumn: String, descriptionColumn: String?) {
        self.table = table
        self.sourceColumn = sourceColumn
        self.targetColumn = targetColumn
        self.descriptionColumn = descriptionColumn
    }
}
