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
