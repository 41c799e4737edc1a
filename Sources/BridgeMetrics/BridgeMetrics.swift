import BridgeRunner
import CoreMetrics
import Foundation
import Synchronization

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
        public static let modelTimeToFirstToken = "bridge_model_time_to_first_token_seconds"
        public static let runsInFlight = "bridge_runs_in_flight"
        public static let leases = "bridge_leases"
        public static let exportBacklog = "bridge_export_backlog_spans"
        public static let costUSD = "bridge_cost_usd_total"

        public static let all = [
            tasksClaimed, tasksCompleted, tasksFailed, tasksRetried, tasksReaped, toolCalls, modelCalls, modelTokens,
            spansRecorded, spansExported, spansRejected, taskDuration, toolDuration, modelLatency,
            modelTimeToFirstToken,
            runsInFlight, leases, exportBacklog, costUSD,
        ]
    }

    /// The `# HELP` text of every family (promtool requires one per family; docs/monitoring.md's
    /// metrics table says the same).
    public static let help: [String: String] = [
        Name.tasksClaimed: "Tasks this worker claimed.",
        Name.tasksCompleted: "Task attempts that completed.",
        Name.tasksFailed: "Task attempts that failed for good, by error type.",
        Name.tasksRetried: "Task attempts that failed retriably and went back to pending, by error type.",
        Name.tasksReaped: "Expired leases this worker's reaper returned to pending or failed.",
        Name.toolCalls: "Function tool calls (one per function span), by tool and outcome.",
        Name.modelCalls: "Model calls (one per generation or response span), by model and status.",
        Name.modelTokens: "Tokens the model reported, by model and direction.",
        Name.spansRecorded: "Spans written to bridge.spans.",
        Name.spansExported: "Spans this worker's export pumps recorded as delivered, by exporter.",
        Name.spansRejected: "Spans this worker's export pumps recorded as rejected, by exporter.",
        Name.taskDuration: "Task attempt duration from claim to result, in seconds.",
        Name.toolDuration: "Function tool call duration in seconds, by tool.",
        Name.modelLatency: "Model call latency in seconds (retries included), by model.",
        Name.modelTimeToFirstToken:
            "Streamed model calls: seconds from the request to the first output event, by model.",
        Name.runsInFlight: "Runs this worker has going.",
        Name.leases: "Leases this worker held at its last heartbeat.",
        Name.costUSD: "USD of priced model calls (the mappings' pricing), by model and group.",
        Name.exportBacklog:
            "Undelivered spans the export pump's last read found, by exporter (a read returns at most one batch).",
    ]

    /// The exporters every `exporter` label starts with (at 0).
    public static let exporterNames = ["openai", "otlp", "file"]

    /// `text` (a Prometheus text exposition) with a `# HELP` line before every `# TYPE` line
    /// that has none: the text of `help`, or for a family bridge does not list (a newer one),
    /// a line naming it, so the exposition always passes `promtool check metrics`.
    public static func withHelp(_ text: String) -> String {
        var out: [Substring] = []
        var helped: Set<Substring> = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# HELP ") {
                if let name = line.split(separator: " ", maxSplits: 3).dropFirst(2).first { helped.insert(name) }
            } else if line.hasPrefix("# TYPE "), let name = line.split(separator: " ", maxSplits: 3).dropFirst(2).first,
                !helped.contains(name)
            {
                out.append(Substring("# HELP \(name) \(help[String(name)] ?? "bridge metric \(name).")"))
                helped.insert(name)
            }
            out.append(line)
        }
        return out.joined(separator: "\n")
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
        // Series made before the backend was bootstrapped went to the no-op one: make them again.
        costSeriesMade.withLock { $0.removeAll() }
        for name in [Name.tasksClaimed, Name.tasksCompleted, Name.tasksReaped, Name.spansRecorded] {
            Counter(label: name).increment(by: 0)
        }
        // Every known label value too, so a dashboard panel reads 0, not "No data".
        for type in FailureType.allCases {
            for name in [Name.tasksFailed, Name.tasksRetried] {
                Counter(label: name, dimensions: [("error_type", labels.value(type.rawValue, for: "error_type"))])
                    .increment(by: 0)
            }
        }
        for exporter in exporterNames {
            let e = labels.value(exporter, for: "exporter")
            Counter(label: Name.spansExported, dimensions: [("exporter", e)]).increment(by: 0)
            Counter(label: Name.spansRejected, dimensions: [("exporter", e)]).increment(by: 0)
            Gauge(label: Name.exportBacklog, dimensions: [("exporter", e)]).record(0)
        }
        _ = Timer(label: Name.taskDuration)
        runsInFlight(0)
        leases(0)
    }

    /// The tool and model families at 0 for the tools and models the mappings name (call once
    /// the mappings are loaded, after bootstrapping a backend).
    public static func registerKnown(tools: [String], models: [String]) {
        for t in Set(tools) {
            let tool = labels.value(t, for: "tool")
            for outcome in [Outcome.ok, .error] {
                Counter(label: Name.toolCalls, dimensions: [("tool", tool), ("outcome", outcome.rawValue)]).increment(
                    by: 0)
            }
            _ = Timer(label: Name.toolDuration, dimensions: [("tool", tool)])
        }
        for m in Set(models) {
            let model = labels.value(m, for: "model")
            for status in [Outcome.ok, .error] {
                Counter(label: Name.modelCalls, dimensions: [("model", model), ("status", status.rawValue)]).increment(
                    by: 0)
            }
            for direction in ["input", "output"] {
                Counter(label: Name.modelTokens, dimensions: [("model", model), ("direction", direction)]).increment(
                    by: 0)
            }
            _ = Timer(label: Name.modelLatency, dimensions: [("model", model)])
            _ = Timer(label: Name.modelTimeToFirstToken, dimensions: [("model", model)])
        }
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
            Counter(
                label: Name.tasksFailed, dimensions: [("error_type", labels.value(type.rawValue, for: "error_type"))]
            ).increment()
        case .retried(let type):
            Counter(
                label: Name.tasksRetried, dimensions: [("error_type", labels.value(type.rawValue, for: "error_type"))]
            ).increment()
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
            Counter(label: Name.modelTokens, dimensions: [("model", model), ("direction", "input")]).increment(
                by: inputTokens)
        }
        if outputTokens > 0 {
            Counter(label: Name.modelTokens, dimensions: [("model", model), ("direction", "output")]).increment(
                by: outputTokens)
        }
    }

    /// A streamed model call's time to first token.
    public static func modelTimeToFirstToken(model: String, seconds: Double) {
        Timer(label: Name.modelTimeToFirstToken, dimensions: [("model", labels.value(model, for: "model"))])
            .recordNanoseconds(nanoseconds(seconds))
    }

    // MARK: - Ledger and export

    /// The cost series of a run's priced models for its group, at 0 before its first call, so
    /// that `increase()` over the series counts that call (a counter that appears with its first
    /// value loses it).
    public static func registerCost(models: [String], group: String) {
        // A run has a model or two: no Set made for them.
        for (i, m) in models.enumerated() where !models[..<i].contains(m) { _ = costSeries(model: m, group: group) }
    }

    /// The cost of one priced model call, by model and group (`source.group_column`, e.g. the
    /// workspace; both bounded like every label).
    public static func modelCost(model: String, group: String, usd: Double) {
        guard usd > 0 else { return }
        costSeries(model: model, group: group).increment(by: usd)
    }

    private struct CostSeriesKey: Hashable {
        let model: String
        let group: String
    }
    /// The cost series made so far, by the model and group as given (up to 1,000 of them; past
    /// that, a series is looked up again each time): a run finds its series with one lookup
    /// instead of checking both label values and asking the backend for it on every call.
    private static let costSeriesMade = Mutex<[CostSeriesKey: FloatingPointCounter]>([:])

    /// The series of `model` and `group`, made at 0 the first time.
    private static func costSeries(model: String, group: String) -> FloatingPointCounter {
        let key = CostSeriesKey(model: model, group: group)
        if let series = costSeriesMade.withLock({ $0[key] }) { return series }
        let series = FloatingPointCounter(
            label: Name.costUSD,
            dimensions: [("model", labels.value(model, for: "model")), ("group", labels.value(group, for: "group"))])
        series.increment(by: 0)
        costSeriesMade.withLock { made in
            if made.count < 1_000 { made[key] = series }
        }
        return series
    }

    /// Spans written to the ledger.
    public static func spansRecorded(_ count: Int) {
        guard count > 0 else { return }
        Counter(label: Name.spansRecorded).increment(by: count)
    }

    /// Spans an exporter recorded as delivered or rejected.
    public static func spansExported(exporter: String, delivered: Bool, count: Int) {
        guard count > 0 else { return }
        Counter(
            label: delivered ? Name.spansExported : Name.spansRejected,
            dimensions: [("exporter", labels.value(exporter, for: "exporter"))]
        ).increment(by: count)
    }

    /// Undelivered spans the exporter's last read of the ledger found (0: caught up; a read
    /// returns at most one batch, so a full batch means at least that many).
    public static func exportBacklog(exporter: String, spans: Int) {
        Gauge(label: Name.exportBacklog, dimensions: [("exporter", labels.value(exporter, for: "exporter"))]).record(
            spans)
    }

    static func nanoseconds(_ seconds: Double) -> Int64 {
        guard seconds.isFinite, seconds > 0 else { return 0 }
        return Int64(min(seconds, 1e9) * 1e9)
    }
}

/// Keeps label values bounded: at most `maxValuesPerLabel` distinct values per label name
/// (later ones become `other`), each at most 64 characters of `[A-Za-z0-9_.:/-]`.
final class LabelGuard: Sendable {
    private let seen = Mutex<[String: Set<String>]>([:])
    let maxValuesPerLabel: Int

    init(maxValuesPerLabel: Int) { self.maxValuesPerLabel = maxValuesPerLabel }

    func value(_ raw: String, for label: String) -> String {
        // ASCII letters, digits and `_.:/- `, checked byte by byte (this runs for every metric
        // a call records).
        let allowed = raw.utf8.allSatisfy { b in
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            case UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: ":"), UInt8(ascii: "/"), UInt8(ascii: "-"),
                UInt8(ascii: " "):
                true
            default: false
            }
        }
        guard !raw.isEmpty, raw.utf8.count <= 64, allowed else { return "other" }
        return seen.withLock { seen in
            if seen[label]?.contains(raw) == true { return raw }
            guard seen[label, default: []].count < maxValuesPerLabel else { return "other" }
            seen[label, default: []].insert(raw)
            return raw
        }
    }
}
