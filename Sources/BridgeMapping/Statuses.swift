/// The states bridge moves a task row through. The text stored in the status column for each
/// is the user's own (`source.status` in the mappings, e.g. `in_progress` for `running`): code
/// branches on these cases and looks the text up only where it reaches SQL.
public enum TaskStatus: Sendable, Hashable, CaseIterable {
    case pending, running, completed, failed
}

extension StatusMapping {
    /// The configured text for `status` (what the status column holds).
    public func text(_ status: TaskStatus) -> String {
        switch status {
        case .pending: pending
        case .running: running
        case .completed: completed
        case .failed: failed
        }
    }
}

/// The states of one attempt's execution row. The stored text is the user's
/// (`results.executions.statuses` in the mappings).
public enum ExecutionStatus: Sendable, Hashable, CaseIterable {
    case started, completed, failedRetriable, failedTerminal
}

extension ExecutionStatuses {
    /// The configured text for `status` (what the execution table's status column holds).
    public func text(_ status: ExecutionStatus) -> String {
        switch status {
        case .started: started
        case .completed: completed
        case .failedRetriable: failedRetriable
        case .failedTerminal: failedTerminal
        }
    }
}
