/// Why an attempt failed, as stored in `error_type` (execution rows, `tasks.result`) and counted
/// in `bridge_tasks_*_total{error_type}`. The raw values are the Agents SDK's exception names
/// where there is one (`MaxTurnsExceeded`, `ModelBehaviorError`, …) and bridge's own otherwise.
public enum FailureType: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    // The runner (the Agents SDK's names).
    case userError = "UserError"
    case maxTurnsExceeded = "MaxTurnsExceeded"
    case modelError = "ModelError"
    case modelBehaviorError = "ModelBehaviorError"
    case inputGuardrailTripwireTriggered = "InputGuardrailTripwireTriggered"
    case outputGuardrailTripwireTriggered = "OutputGuardrailTripwireTriggered"
    case guardrailError = "GuardrailError"
    /// A tool input guardrail tripped with `on_trip: raise_exception` (the tool did not run).
    case toolInputGuardrailTripwireTriggered = "ToolInputGuardrailTripwireTriggered"
    /// A tool output guardrail tripped with `on_trip: raise_exception` (the model never saw the output).
    case toolOutputGuardrailTripwireTriggered = "ToolOutputGuardrailTripwireTriggered"
    case mcpServerError = "MCPServerError"
    /// The run was cancelled (its lease was lost, or the worker is shutting down).
    case cancelled = "Cancelled"
    /// A failed run that named no failure.
    case runError = "RunError"
    // The worker.
    /// The task's run spec could not be built from its row and the mappings.
    case configurationError = "ConfigurationError"
    /// A paused run could not be resumed (its stored state is gone).
    case resumeError = "ResumeError"
    /// The database or the ledger failed under the run.
    case infrastructureError = "InfrastructureError"
    /// Handed back to pending at shutdown before the run finished.
    case released = "Released"
    /// The worker stopped renewing the task's lease (it died or hung); the reaper took the task
    /// back (failed once it had no attempts left).
    case leaseExpired = "LeaseExpired"
    /// The task's group (workspace) has spent its budget (`budgets`, `on_exceeded: fail`, or a
    /// run that crossed it: it stops before its next model call).
    case budgetExceeded = "BudgetExceeded"
    /// A re-run (`--backfill --rerun`) reached a call that needs approval.
    case approvalRequired = "ApprovalRequired"

    public var description: String { rawValue }
}
