import BridgeRunner
import CoreMetrics
import Foundation

/// Every instrument bridge emits: one definition of each name, its labels and its unit.
///
/// Libraries record through swift-metrics, which does nothing until a backend is bootstrapped
/// (`bridge exec --metrics-addr` bootstraps Prometheus). Names follow Prometheus conventions:
/// `bridge_` prefix, `_total` counters, `_seconds` durations. Label values are bounded: tool,
/// model, exporter and error type names only (never task or trace ids), and `LabelGuard`
/// folds anything unexpected into `other`.
public enum BridgeMetrics {
    /// Metric names (the Grafana dashboard in `docs/` is built on these).
    public enum Name {
        public static let tasksClaimed = "bridge_tasks_claimed_total"
        public static let tasksCompleted = "bridge_tasks_completed_total"
        public static let tasksFailed = "bridge_tasks_failed_total"
        public static let tasksRetried = "bridge_tasks_retried_total"
        public static let tasksReaped = "bridge_tasks_reaped_total"
        public static let toolCalls = "bridge_tool_calls_total"
        public static let modelCalls = "bridge_model_calls_total"
        public static let modelTokens = "bridge_model_tokens_total"
        public static let spansRecorded = "bridge_spans_recorded_total"
        public static let spansExported = "bridge_spans_exported_total"
        public static let spansRejected = "bridge_spans_rejected_total"
        public static let taskDuration = "bridge_task_duration_seconds"
        public static let toolDuration = "bridge_tool_duration_seconds"
        public static let modelLatency = "bridge_model_latency_seconds"
        public static let runsInFlight = "bridge_runs_in_flight"
        public static let leases = "bridge_leases"
        public static let exportBacklog = "bridge_export_backlog_spans"
        public static let costUSD = "bridge_cost_usd_total"

        public static let all = [
            tasksClaimed, tasksCompleted, tasksFailed, tasksRetried, tasksReaped, toolCalls, modelCalls, modelTokens,
            spansRecorded, spansExported, spansRejected, taskDuration, toolDuration, modelLatency, runsInFlight, leases,
            exportBacklog, costUSD,
        ]
    }

    /// How a call ended (`outcome` / `status` label).
    public enum Outcome: String, Sendable { case ok, error }

    /// How a task attempt ended, as the worker counts it.
    public enum TaskEnd: Sendable {
        case completed
        /// Failed for good, with the error type (`ModelError`, `MaxTurnsExceeded`, …).
        case failed(errorType: FailureType)
        /// Failed retriably and went back to pending with a backoff.
        case retried(errorType: FailureType)
    }

    static let labels = LabelGuard(maxValuesPerLabel: 100)

    /// Creates the unlabelled instruments at zero, so a scrape shows them before the first event
    /// (rates and alerts need the zero). Call after bootstrapping a backend.
    public static func registerBaseline() {
        for name in [Name.tasksClaimed, Name.tasksCompleted, Name.tasksReaped, Name.spansRecorded] {
            Counter(label: name).increment(by: 0)
        }
        runsInFlight(0)
        leases(0)
    }

    // MARK: - Worker

    public static func tasksClaimed(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: Name.tasksClaimed).increment(by: count)
    }

    /// One task attempt ended (`seconds`: from its claim to its result).
    public static func taskEnded(_ end: TaskEnd, seconds: Double) {
        switch end {
        case .completed:
            Counter(label: Name.tasksCompleted).increment()
        case .failed(let type):
            Counter(label: Name.tasksFailed, dimensions: [("error_type", labels.value(type.rawValue, for: "error_type"))]).increment()
        case .retried(let type):
            Counter(label: Name.tasksRetried, dimensions: [("error_type", labels.value(type.rawValue, for: "error_type"))]).increment()
        }
        Timer(label: Name.taskDuration).recordNanoseconds(nanoseconds(seconds))
    }

    /// Expired leases returned to pending or failed by this worker's reaper.
    public static func tasksReaped(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: Name.tasksReaped).increment(by: count)
    }

    /// Runs this worker has in flight, and leases it holds.
    public static func runsInFlight(_ count: Int) { Gauge(label: Name.runsInFlight).record(count) }
    public static func leases(_ count: Int) { Gauge(label: Name.leases).record(count) }

    // MARK: - Runs

    /// One function tool call ended (one `function` span).
    public static func toolCall(tool: String, outcome: Outcome, seconds: Double) {
        let tool = labels.value(tool, for: "tool")
        Counter(label: Name.toolCalls, dimensions: [("tool", tool), ("outcome", outcome.rawValue)]).increment()
        Timer(label: Name.toolDuration, dimensions: [("tool", tool)]).recordNanoseconds(nanoseconds(seconds))
    }

    /// One model call ended (one `generation` or `response` span).
    public static func modelCall(model: String, status: Outcome, seconds: Double, inputTokens: Int, outputTokens: Int) {
        let model = labels.value(model, for: "model")
        Counter(label: Name.modelCalls, dimensions: [("model", model), ("status", status.rawValue)]).increment()
        Timer(label: Name.modelLatency, dimensions: [("model", model)]).recordNanoseconds(nanoseconds(seconds))
        if inputTokens > 0 {
            Counter(label: Name.modelTokens, dimensions: [("model", model), ("direction", "input")]).increment(by: inputTokens)
        }
        if outputTokens > 0 {
            Counter(label: Name.modelTokens, dimensions: [("model", model), ("direction", "output")]).increment(by: outputTokens)
        }
    }

    // MARK: - Ledger and export

    /// Spans written to the ledger.
    /// The cost of one priced model call, by model and group (`source.group_column`, e.g. the
    /// workspace; both bounded like every label).
    public static func modelCost(model: String, group: String, usd: Double) {
        guard usd > 0 else { return }
        FloatingPointCounter(label: Name.costUSD, dimensions: [("model", labels.value(model, for: "model")),
                                                                ("group", labels.value(group, for: "group"))]).increment(by: usd)
    }

    public static func spansRecorded(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: Name.spansRecorded).increment(by: count)
    }

    /// Spans an exporter recorded as delivered or rejected.
    public static func spansExported(exporter: String, delivered: Bool, count: Int) {
        guard count > 0 else { return }
        Counter(label: delivered ? Name.spansExported : Name.spansRejected,
                dimensions: [("exporter", labels.value(exporter, for: "exporter"))]).increment(by: count)
    }

    /// Undelivered spans the exporter's last read of the ledger found (0: caught up; a read
    /// returns at most one batch, so a full batch means at least that many).
    public static func exportBacklog(exporter: String, spans: Int) {
        Gauge(label: Name.exportBacklog, dimensions: [("exporter", labels.value(exporter, for: "exporter"))]).record(spans)
    }

    static func nanoseconds(_ seconds: Double) -> Int64 {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return Int64(min(seconds, 1e9) * 1e9)
    }
}

/// Keeps label values bounded: at most `maxValuesPerLabel` distinct values per label name
/// (later ones become `other`), each at most 64 characters of `[A-Za-z0-9_.:/-]`.
final class LabelGuard: @unchecked Sendable {
    // @unchecked Sendable: `seen` is only touched with `lock` held.
    private let lock = NSLock()
    private var seen: [String: Set<String>] = [:]
    let maxValuesPerLabel: Int

    init(maxValuesPerLabel: Int) { self.maxValuesPerLabel = maxValuesPerLabel }

    func value(_ raw: String, for label: String) -> String {
        let allowed = raw.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "_.:/- ".unicodeScalars.contains($0)) }
        guard !raw.isEmpty, raw.count <= 64, allowed else { return "other" }
        lock.lock()
        defer { lock.unlock() }
        var values = seen[label, default: []]
        if values.contains(raw) { return raw }
        guard values.count < maxValuesPerLabel else { return "other" }
        values.insert(raw)
        seen[label] = values
        return raw
    }
}
