import BridgeMetrics
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import FoundationEssentials

/// Settings for one `bridge exec` process. Every setting has a default (the one `bridge exec`
/// documents for its flag); callers start from `WorkerOptions()` and set what they change.
public struct WorkerOptions: Sendable {
    /// Runs at most this many tasks at once (and never claims more than free slots).
    public var concurrency = 4
    /// A task that failed retriably (or whose lease expired) this many times is marked failed.
    public var maxAttempts = 3
    /// Only these task keys (empty: all pending tasks).
    public var taskKeys: [TaskKey] = []
    /// Stop after this many tasks (nil: drain everything).
    public var limit: Int?
    /// How long a claim is valid without a heartbeat (heartbeats run every lease/3).
    public var lease: Duration = .seconds(60)
    /// Keep running and wait for new tasks (LISTEN/NOTIFY when installed, plus polling).
    public var watch = false
    /// On SIGTERM/SIGINT: how long in-flight runs may take before they are released.
    public var drainTimeout: Duration = .seconds(30)
    /// Backstop polling interval; nil: 2 s without NOTIFY, 20 s with it.
    public var pollInterval: Duration?
    /// Retry backoff: first delay and cap.
    public var retryBase: Duration = .seconds(2)
    public var retryMax: Duration = .seconds(300)
    /// Recorded on every claim (`bridge_worker_id`).
    public var workerId = WorkerIdentity.make()

    public init() {}
}

/// What one `bridge exec` did.
public struct WorkerSummary: Sendable {
    public var completed = 0
    public var failed = 0
    public var retried = 0
    /// Results discarded because the lease was lost (reaped, or finished elsewhere).
    public var stale = 0
    /// Runs handed back to pending at shutdown.
    public var released = 0
    /// Runs that paused for an approval (their tasks wait in the database, holding no lease).
    public var paused = 0
    /// Paused runs resumed after their approvals were decided.
    public var resumed = 0
    /// Expired leases (of any worker) this worker's reaper returned to pending or failed.
    public var reaped = 0
    public var toolCalls = 0
    public var spans = 0
    public var elapsed: Duration = .zero
    /// One report per exporter that ran (what it delivered, what it left in the ledger).
    public var exports: [ExportReport] = []

    /// Counts `outcome` and returns its log line.
    mutating func add(_ outcome: TaskOutcome) -> String {
        switch outcome {
        case .completed(let key, let trace, let tools, let spans):
            completed += 1
            toolCalls += tools
            self.spans += spans
            return "completed task \(key) trace \(trace)"
        case .failed(let key, let trace, let message, let retried, let tools, let spans, _):
            if retried { self.retried += 1 } else { failed += 1 }
            toolCalls += tools
            self.spans += spans
            return "\(retried ? "will retry" : "failed") task \(key)\(trace.map { " trace \($0)" } ?? ""): \(message)"
        case .stale(let key, let trace):
            stale += 1
            return "task \(key): lease lost; the late result\(trace.map { " of \($0)" } ?? "") was discarded"
        case .paused(let key, let trace, let requests, let tools, let spans):
            paused += 1
            toolCalls += tools
            self.spans += spans
            return
                "task \(key) waits for approval (request\(requests.count == 1 ? "" : "s") \(requests.joined(separator: ", "))) trace \(trace)"
        case .released(let key):
            released += 1
            return "task \(key): released to pending (shutdown)"
        }
    }

    public var line: String {
        var s = String(
            format: "completed %d, failed %d, retried %d, tool calls %d, spans %d, elapsed %.2fs",
            completed, failed, retried, toolCalls, spans, elapsed.inSeconds)
        if stale > 0 { s += ", discarded \(stale) (lease lost)" }
        if released > 0 { s += ", released \(released)" }
        if paused > 0 { s += ", waiting for approval \(paused)" }
        if resumed > 0 { s += ", resumed \(resumed)" }
        if reaped > 0 { s += ", reaped \(reaped)" }
        return s
    }
}

/// How one claimed task's attempt ended, as the run executor reports it to the claim loop.
enum TaskOutcome: Sendable {
    case completed(taskKey: TaskKey, traceId: TraceID, toolCalls: Int, spans: Int)
    case failed(
        taskKey: TaskKey, traceId: TraceID?, message: String, retried: Bool, toolCalls: Int, spans: Int,
        errorType: FailureType)
    /// The lease was lost (reaped, or finished elsewhere): nothing of this attempt was written.
    case stale(taskKey: TaskKey, traceId: TraceID?)
    /// Handed back to pending at shutdown.
    case released(taskKey: TaskKey)
    case paused(
        taskKey: TaskKey, traceId: TraceID,
        requests: [String], toolCalls: Int, spans: Int)

    /// How `bridge_tasks_*_total` counts it (nil: the attempt's result was not written here).
    var metric: BridgeMetrics.TaskEnd? {
        switch self {
        case .completed: .completed
        case .failed(_, _, _, let retried, _, _, let type):
            retried ? .retried(errorType: type) : .failed(errorType: type)
        case .stale, .released, .paused: nil
        }
    }
}

/// `1.5s`: a duration in the worker's log lines.
func secondsText(_ s: Double) -> String { Duration.seconds(fractional: s).secondsText }
