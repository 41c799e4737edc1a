import BridgeCore
import BridgeMapping
import BridgeRunner
import Foundation

/// One finished span in the Agents SDK's export format.
public struct SpanRecord: Sendable, Equatable {
    /// `span_` + 24 lowercase hex.
    public var id: String
    public var traceId: String
    public var parentId: String?
    public var startedAt: Date
    public var endedAt: Date
    /// The SDK's `span_data` object (`{"type": "agent", …}`).
    public var spanData: JSONValue
    /// `{"message": …, "data": …}` or nil.
    public var error: JSONValue?

    public init(id: String, traceId: String, parentId: String?, startedAt: Date, endedAt: Date,
                spanData: JSONValue, error: JSONValue?) {
        self.id = id
        self.traceId = traceId
        self.parentId = parentId
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.spanData = spanData
        self.error = error
    }

    /// `{"object":"trace.span","id","trace_id","parent_id","started_at","ended_at","span_data","error"}`.
    public var exportJSON: JSONValue {
        [
            "object": "trace.span",
            "id": .string(id),
            "trace_id": .string(traceId),
            "parent_id": parentId.map(JSONValue.string) ?? .null,
            "started_at": .string(SDKTime.iso(startedAt)),
            "ended_at": .string(SDKTime.iso(endedAt)),
            "span_data": spanData,
            "error": error ?? .null,
        ]
    }

    /// The span's `span_data.type`.
    public var type: String { spanData["type"]?.stringValue ?? "" }
}

/// A trace in the SDK's export format (no timestamps; metadata flat string-to-string).
public struct TraceRecord: Sendable, Equatable {
    public var id: String
    public var workflowName: String
    public var groupId: String?
    public var metadata: [String: String]

    public init(id: String, workflowName: String, groupId: String?, metadata: [String: String]) {
        self.id = id
        self.workflowName = workflowName
        self.groupId = groupId
        self.metadata = metadata
    }

    public init(spec: RunSpec) {
        self.init(id: spec.traceId, workflowName: spec.workflowName, groupId: spec.groupId, metadata: spec.metadata)
    }

    public var metadataJSON: JSONValue { .object(metadata.mapValues(JSONValue.string)) }

    /// `{"object":"trace","id","workflow_name","group_id","metadata"}`.
    public var exportJSON: JSONValue {
        [
            "object": "trace",
            "id": .string(id),
            "workflow_name": .string(workflowName),
            "group_id": groupId.map(JSONValue.string) ?? .null,
            "metadata": metadataJSON,
        ]
    }
}

/// Timestamps and ids as the SDK makes them.
public enum SDKTime {
    /// Python's `datetime.now(timezone.utc).isoformat()`: `2026-11-26T09:03:44.123456+00:00`
    /// (like Python, the fraction is left out when it is exactly zero microseconds).
    public static func iso(_ date: Date) -> String {
        let t = date.timeIntervalSince1970
        var secs = t.rounded(.down)
        var micros = Int(((t - secs) * 1_000_000).rounded())  // as PostgresTimestamp.format, so file and ledger agree
        if micros >= 1_000_000 { micros -= 1_000_000; secs += 1 }
        var tm = tm()
        var time = time_t(secs)
        gmtime_r(&time, &tm)
        let base = String(format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1,
                          Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
        return base + (micros == 0 ? "" : String(format: ".%06d", micros)) + "+00:00"
    }
}

public enum SpanID {
    /// `span_` + 24 random lowercase hex characters (the SDK: `uuid4().hex[:24]`).
    public static func random() -> String {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<12).map { _ in UInt8.random(in: 0...255, using: &g) }
        return "span_" + bytes.hexString
    }

    /// Whether `s` is `span_` followed by 24 lowercase hex characters.
    public static func isWellFormed(_ s: String) -> Bool {
        guard s.hasPrefix("span_"), s.utf8.count == 29 else { return false }
        return s.utf8.dropFirst(5).allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}

/// Where finished spans go: the ledger, a JSONL file, an HTTP exporter, a test's memory.
public protocol SpanSink: Sendable {
    /// The run started (called once, before any span).
    func traceStarted(_ trace: TraceRecord, taskId: String?, at: Date) async throws
    /// A span ended.
    func spanEnded(_ span: SpanRecord) async throws
    /// The run ended (the root span has been delivered).
    func traceEnded(_ traceId: String, at: Date) async throws
}

extension SpanSink {
    public func traceEnded(_ traceId: String, at: Date) async throws {}
}

/// Keeps everything in memory (tests, `--dry-run` previews).
public actor MemorySpanSink: SpanSink {
    public private(set) var traces: [TraceRecord] = []
    public private(set) var spans: [SpanRecord] = []
    public private(set) var endedTraces: [String] = []

    public init() {}

    public func traceStarted(_ trace: TraceRecord, taskId: String?, at: Date) async throws { traces.append(trace) }
    public func spanEnded(_ span: SpanRecord) async throws { spans.append(span) }
    public func traceEnded(_ traceId: String, at: Date) async throws { endedTraces.append(traceId) }
}
