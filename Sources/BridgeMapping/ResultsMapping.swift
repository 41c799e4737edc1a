import BridgeCore

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

/// `tracing`: the workflow name and whether tool inputs/outputs are recorded.
public struct TracingMapping: Sendable, Equatable {
    public var workflowName: String
    public var includeSensitiveData: Bool

    public init(workflowName: String = "bridge exec", includeSensitiveData: Bool = true) {
        self.workflowName = workflowName
        self.includeSensitiveData = includeSensitiveData
    }
}
