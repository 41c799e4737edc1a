import BridgeCore
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

extension TraceRecord {
    /// The trace of a run.
    public init(spec: RunSpec) {
        self.init(id: spec.traceId, workflowName: spec.workflowName, groupId: spec.groupId, metadata: spec.metadata)
    }
}

/// Where finished spans go: the ledger, a JSONL file, an HTTP exporter, a test's memory.
public protocol SpanSink: Sendable {
    /// The run started (called once, before any span).
    func traceStarted(_ trace: TraceRecord, taskId: TaskKey?, at: Date) async throws
    /// A span ended.
    func spanEnded(_ span: SpanRecord) async throws
    /// The run ended (the root span has been delivered).
    func traceEnded(_ traceId: TraceID, at: Date) async throws
    /// A model call started (announced so that a tail can show it in progress; the span itself
    /// is delivered by `spanEnded` as ever). Default: nothing.
    func spanStarted(_ start: SpanStart) async throws
}

extension SpanSink {
    public func traceEnded(_ traceId: TraceID, at: Date) async throws {}
    public func spanStarted(_ start: SpanStart) async throws {}
}

/// A model call in progress, as the ledger announces it on `NOTIFY bridge_span_started` for
/// `bridge trace tail --follow`. Nothing is stored: verify and the exporters see only the span
/// that is recorded when the call ends (with this span id).
public struct SpanStart: Sendable, Equatable {
    public static let channel = "bridge_span_started"

    public var spanId: SpanID
    public var traceId: TraceID
    public var parentId: SpanID?
    public var startedAt: Date
    /// The span type it will have: `response` or `generation`.
    public var type: String
    public var model: String
    public var agent: String?
    public var taskId: TaskKey?
    public var groupId: String?

    /// The NOTIFY payload: compact JSON, each text cut to 500 characters (a payload must stay
    /// under PostgreSQL's 8000 bytes).
    public var payload: String {
        func text(_ s: String?) -> JSONValue { s.map { .string(String($0.prefix(500))) } ?? .null }
        let o: JSONValue = [
            "span_id": text(spanId.text), "trace_id": text(traceId.text), "parent_id": text(parentId?.text),
            "started_at": .number(startedAt.timeIntervalSince1970), "type": text(type), "model": text(model),
            "agent": text(agent), "task_id": text(taskId?.text), "group_id": text(groupId),
        ]
        return o.compact
    }
}

// An extension, so that the struct keeps its memberwise initializer.
extension SpanStart {
    /// Reads a payload; nil when it is not one.
    public init?(payload: String) {
        guard let o = try? JSONValue.parse(payload), let spanId = o["span_id"]?.stringValue,
            let traceId = o["trace_id"]?.stringValue, let at = o["started_at"]?.doubleValue,
            let type = o["type"]?.stringValue
        else { return nil }
        self.init(
            spanId: SpanID(spanId), traceId: TraceID(traceId), parentId: o["parent_id"]?.stringValue.map { SpanID($0) },
            // Empty default: a span start without a model (not a generation) shows none.
            startedAt: Date(timeIntervalSince1970: at), type: type, model: o["model"]?.stringValue ?? "",
            agent: o["agent"]?.stringValue, taskId: o["task_id"]?.stringValue.map { TaskKey($0) },
            groupId: o["group_id"]?.stringValue)
    }
}

/// Keeps everything in memory (tests, `--dry-run` previews).
public actor MemorySpanSink: SpanSink {
    public private(set) var traces: [TraceRecord] = []
    public private(set) var spans: [SpanRecord] = []
    public private(set) var endedTraces: [TraceID] = []

    public init() {}

    public func traceStarted(_ trace: TraceRecord, taskId: TaskKey?, at: Date) async throws { traces.append(trace) }
    public func spanEnded(_ span: SpanRecord) async throws { spans.append(span) }
    public func traceEnded(_ traceId: TraceID, at: Date) async throws { endedTraces.append(traceId) }
}
