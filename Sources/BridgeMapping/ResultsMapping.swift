import BridgeCore

/// `results`: where results go.
public struct ResultsMapping: Sendable, Equatable {
    /// The task column (jsonb) receiving the final output and usage.
    public var resultColumn: String = "result"
    /// Set to now() when the task completes, if configured.
    public var completedAtColumn: String?
    /// Receives the trace id, if configured.
    public var traceIdColumn: String?
    /// One row per attempt, if configured.
    public var executions: ExecutionsMapping?
    public var origin: MappingLocation = .unknown
}

/// `results.executions`: the per-attempt execution table.
public struct ExecutionsMapping: Sendable, Equatable {
    public var table: String = "task_executions"
    /// The execution table's key column (default `id`), returned by the insert of each attempt.
    public var key: String = "id"
    /// Column referencing the task key.
    public var taskColumn: String = "task_id"
    public var columns: ExecutionColumns = .init()
    public var statuses: ExecutionStatuses = .init()
}

/// Real column names of the execution table; nil means the schema has no such column.
public struct ExecutionColumns: Sendable, Equatable {
    public var status: String = "status"
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

    /// Configured columns keyed by their YAML (logical) name.
    public var byLogicalName: [String: String] {
        var out: [String: String] = [:]
        for key in Keys.ExecutionColumn.allCases {
            if case .bound(let field) = key.field, let column = field.text(in: self) { out[key.rawValue] = column }
        }
        return out
    }
}

/// Values of the execution table's status column.
public struct ExecutionStatuses: Sendable, Equatable {
    public var started: String = "started"
    public var completed: String = "completed"
    public var failedRetriable: String = "failed_retriable"
    public var failedTerminal: String = "failed_terminal"

    /// The texts a mapping that does not set `results.executions.statuses` uses.
    public static let defaults = ExecutionStatuses()
}

/// `tracing`: the workflow name and whether tool inputs/outputs are recorded.
public struct TracingMapping: Sendable, Equatable {
    public var workflowName: String = "bridge exec"
    public var includeSensitiveData: Bool = true
}
