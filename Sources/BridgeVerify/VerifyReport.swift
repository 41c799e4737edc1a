import BridgeCore
import BridgeTraceModel
import FoundationEssentials

/// The outcome of one check.
public enum CheckStatus: String, Sendable, Equatable, Codable {
    case pass, fail, skip
}

/// One thing that is wrong, named by the task and trace it concerns.
@MemberwiseInit
public struct CheckExample: Sendable, Equatable {
    public var taskId: TaskKey?
    public var traceId: TraceID?
    public var message: String

    /// `task T, trace X: message` (parts that are unknown are left out).
    public var line: String {
        var parts: [String] = []
        if let taskId { parts.append("task \(taskId)") }
        if let traceId { parts.append("trace \(traceId)") }
        return parts.isEmpty ? message : parts.joined(separator: ", ") + ": " + message
    }

    var json: JSONValue {
        [
            "task_id": taskId?.json ?? .null, "trace_id": traceId?.json ?? .null,

            "message": .string(message),
        ]
    }
}

/// Duration statistics of one tool's function spans (milliseconds).
@MemberwiseInit
public struct ToolTiming: Sendable, Equatable {
    public var tool: String
    public var count: Int
    public var p50: Double
    public var p95: Double
    public var max: Double

    var json: JSONValue {
        [
            "tool": .string(tool), "count": .number(Double(count)), "p50_ms": .number(Self.round(p50)),
            "p95_ms": .number(Self.round(p95)), "max_ms": .number(Self.round(max)),
        ]
    }

    static func round(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
}

/// Delivery statistics of one configured exporter (lag from span end to acknowledgement, seconds).
public struct ExporterDelivery: Sendable, Equatable {
    public var exporter: String
    public var spans: Int
    public var delivered: Int
    public var rejected: Int
    public var missing: Int
    /// Spans that ended within `--max-export-lag` and are not acknowledged yet (not failures).
    public var inFlight: Int
    public var p50LagSeconds: Double?
    public var p95LagSeconds: Double?
    public var maxLagSeconds: Double?

    var json: JSONValue {
        func n(_ v: Double?) -> JSONValue { v.map { .number(ToolTiming.round($0)) } ?? .null }
        return [
            "exporter": .string(exporter), "spans": .number(Double(spans)), "delivered": .number(Double(delivered)),
            "rejected": .number(Double(rejected)), "missing": .number(Double(missing)),
            "in_flight": .number(Double(inFlight)), "p50_lag_s": n(p50LagSeconds), "p95_lag_s": n(p95LagSeconds),
            "max_lag_s": n(maxLagSeconds),
        ]
    }
}

/// The result of one check of the checklist.
@MemberwiseInit
public struct CheckResult: Sendable, Equatable {
    /// Stable id (`tools_traced`, …).
    public var id: String
    public var title: String
    public var status: CheckStatus
    /// Why the check was skipped or failed, or a note on what it covered.
    public var reason: String? = nil
    /// Items checked (tool calls, handoffs, spans, executions and traces, …).
    public var checked: Int = 0
    public var failed: Int = 0
    /// At most `VerifyOptions.maxExamples` failures.
    public var examples: [CheckExample] = []
    /// `tool_timing` only.
    public var toolTimings: [ToolTiming] = []
    /// `export_delivered` only.
    public var exporters: [ExporterDelivery] = []
    /// How long the check's SQL took (milliseconds).
    public var elapsedMs: Double = 0

    /// A skipped check.
    public static func skipped(_ check: Check, _ reason: String) -> CheckResult {
        CheckResult(id: check.rawValue, title: check.title, status: .skip, reason: reason)
    }

    var json: JSONValue {
        var o: [String: JSONValue] = [
            "id": .string(id), "title": .string(title), "status": .string(status.rawValue),
            "checked": .number(Double(checked)), "failed": .number(Double(failed)),
            "examples": .array(examples.map(\.json)), "elapsed_ms": .number(ToolTiming.round(elapsedMs)),
        ]
        if let reason { o["reason"] = .string(reason) }
        if id == Check.toolTiming.rawValue { o["tools"] = .array(toolTimings.map(\.json)) }
        if id == Check.exportDelivered.rawValue { o["exporters"] = .array(exporters.map(\.json)) }
        return .object(o)
    }
}

/// The checks of the tracing validation checklist (and bridge's own), in report order.
@SnakeCaseRawValues
public enum Check: Sendable, CaseIterable {
    case toolsTraced
    case handoffsTraced
    case toolIOCaptured
    case traceIdsCorrelate
    case exportDelivered
    case toolTiming
    case guardrailsApprovalsTraced
    case runsWhole
    case spendRecorded

    /// The checklist's wording.
    public var title: String {
        switch self {
        case .toolsTraced: "Tools appear in traces"
        case .handoffsTraced: "Handoffs show in trace timeline"
        case .toolIOCaptured: "Tool parameters and results captured"
        case .traceIdsCorrelate: "Trace IDs correlate with database tasks"
        case .exportDelivered: "Real-time monitoring shows tool usage"
        case .toolTiming: "Performance metrics include tool execution time"
        case .guardrailsApprovalsTraced: "Guardrails and approvals traced"
        case .runsWhole: "Each run is one trace tree, each call traced once"
        case .spendRecorded: "Model calls carry their cost"
        }
    }
}

/// Everything `bridge verify` found.
@MemberwiseInit
public struct VerifyReport: Sendable, Equatable {
    public var scope: VerifyScope
    public var checks: [CheckResult]
    /// Wall time of all checks (milliseconds).
    public var elapsedMs: Double

    /// True when no check failed (skipped checks do not fail the run).
    public var ok: Bool { !checks.contains { $0.status == .fail } }

    public func check(_ c: Check) -> CheckResult? { checks.first { $0.id == c.rawValue } }
}
