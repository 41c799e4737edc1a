import BridgeCore
import BridgeMapping
import BridgeRunner
import Foundation

/// Turns a run's `RunEvent`s into SDK-shaped spans and hands each one to the sinks as it
/// ends, so a crashed run still leaves its partial trace.
///
/// Tree: trace > task (custom) > agent > turn (custom) > {generation|response, function…, handoff,
/// guardrail (input)}; agent > guardrail (output) > agent (a guardrail agent's run).
/// With `includeSensitiveData` false, function `input`/`output` and generation
/// `input`/`output` are null and error details are replaced by the SDK's redaction texts.
/// Strings listed in `secrets` (API keys, passwords) are replaced by `***` everywhere.
///
/// Sink failures never fail the run: they are collected in `sinkErrors`.
public actor TraceRecorder: RunObserver {
    public let trace: TraceRecord
    public let taskId: String?
    public let includeSensitiveData: Bool
    let sinks: [any SpanSink]
    let secrets: [String]
    /// Each agent's model settings (the generation span's `model_config`).
    let modelSettings: [String: JSONValue]
    var turnAgents: [EventID: String] = [:]

    struct Open {
        var spanId: String
        var parentSpanId: String?
        var startedAt: Date
        var data: [String: JSONValue]
        var error: SpanErrorInfo?
    }

    var open: [EventID: Open] = [:]
    /// Span ids of ended spans (children may name them as parents in odd orders).
    var spanIds: [EventID: String] = [:]
    var pendingErrors: [EventID: SpanErrorInfo] = [:]
    public private(set) var sinkErrors: [String] = []
    /// Every span recorded so far, in the order they ended.
    public private(set) var recorded: [SpanRecord] = []

    public init(trace: TraceRecord, taskId: String?, sinks: [any SpanSink], includeSensitiveData: Bool,
                secrets: [String] = [], modelSettings: [String: JSONValue] = [:]) {
        self.modelSettings = modelSettings
        self.trace = trace
        self.taskId = taskId
        self.sinks = sinks
        self.includeSensitiveData = includeSensitiveData
        self.secrets = secrets.filter { $0.count >= 3 }
    }

    /// Records `spec`'s run into the ledger (and any extra sinks, e.g. a `FileExporter`).
    public init(spec: RunSpec, ledger: Ledger, includeSensitiveData: Bool, extraSinks: [any SpanSink] = [],
                secrets: [String] = []) {
        self.init(trace: TraceRecord(spec: spec), taskId: spec.taskId, sinks: [ledger] + extraSinks,
                  includeSensitiveData: includeSensitiveData, secrets: secrets,
                  modelSettings: spec.agents.mapValues { .object($0.modelSettings) })
    }

    public init(spec: RunSpec, sinks: [any SpanSink], includeSensitiveData: Bool, secrets: [String] = []) {
        self.init(trace: TraceRecord(spec: spec), taskId: spec.taskId, sinks: sinks,
                  includeSensitiveData: includeSensitiveData, secrets: secrets,
                  modelSettings: spec.agents.mapValues { .object($0.modelSettings) })
    }

    public var spanCount: Int { recorded.count }

    public func record(_ event: RunEvent) async {
        switch event {
        case .taskStarted(let id, let at):
            for sink in sinks {
                do { try await sink.traceStarted(scrubbed(trace), taskId: taskId, at: at) } catch { note(error) }
            }
            start(id, parent: nil, at: at, data: ["type": "custom", "name": "task",
                                                   "data": ["sdk_span_type": "task", "name": .string(trace.workflowName)]])
        case .taskEnded(let id, let usage, let error, let at):
            if let u = Self.taskUsage(usage) { setCustomData(id, key: "usage", value: u) }
            await end(id, error: error, at: at)
            for sink in sinks {
                do { try await sink.traceEnded(trace.id, at: at) } catch { note(error) }
            }
        case .agentStarted(let id, let parent, let agent, let tools, let handoffs, let outputType, let at):
            start(id, parent: parent, at: at, data: [
                "type": "agent", "name": .string(agent), "handoffs": .array(handoffs.map(JSONValue.string)),
                "tools": .array(tools.map(JSONValue.string)), "output_type": .string(outputType),
            ])
        case .agentEnded(let id, let error, let at):
            await end(id, error: error, at: at)
        case .turnStarted(let id, let parent, let turn, let agent, let at):
            turnAgents[id] = agent
            start(id, parent: parent, at: at, data: [
                "type": "custom", "name": "turn",
                "data": ["sdk_span_type": "turn", "turn": .number(Double(turn)), "agent_name": .string(agent)],
            ])
        case .turnEnded(let id, let usage, let error, let at):
            if let u = Self.turnUsage(usage) { setCustomData(id, key: "usage", value: u) }
            await end(id, error: error, at: at)
        case .modelStarted(let id, let parent, let kind, let model, let input, let at):
            switch kind {
            case .generation:
                start(id, parent: parent, at: at, data: [
                    "type": "generation", "input": includeSensitiveData ? .array(input) : .null, "output": .null,
                    "model": .string(model), "model_config": modelConfig(for: parent), "usage": .null,
                ])
            case .response:
                start(id, parent: parent, at: at, data: ["type": "response", "response_id": .null, "usage": .null])
            }
        case .modelEnded(let id, let response, let error, let at):
            if let response, var o = open[id] {
                if o.data["type"] == "generation" {
                    o.data["output"] = includeSensitiveData ? .array(response.spanOutput ?? response.output) : .null
                    o.data["model"] = .string(response.model)
                } else {
                    o.data["response_id"] = response.responseId.map(JSONValue.string) ?? .null
                }
                o.data["usage"] = response.usage.json
                open[id] = o
            }
            await end(id, error: error, at: at)
        case .toolStarted(let id, let parent, let name, let arguments, let at):
            start(id, parent: parent, at: at, data: [
                "type": "function", "name": .string(name), "input": includeSensitiveData ? .string(arguments) : .null,
                "output": .null, "mcp_data": .null,
            ])
        case .toolEnded(let id, let output, let error, let at):
            if includeSensitiveData, let output, !output.isEmpty { open[id]?.data["output"] = .string(output) }
            await end(id, error: error, at: at)
        case .handoff(let id, let parent, let from, let to, let startedAt, let endedAt):
            start(id, parent: parent, at: startedAt, data: ["type": "handoff", "from_agent": .string(from), "to_agent": .string(to)])
            await end(id, error: nil, at: endedAt)
        case .guardrailStarted(let id, let parent, let name, let at):
            start(id, parent: parent, at: at, data: ["type": "guardrail", "name": .string(name), "triggered": false])
        case .guardrailEnded(let id, let triggered, let error, let at):
            open[id]?.data["triggered"] = .bool(triggered)
            await end(id, error: error, at: at)
        case .approvalWait(let id, let parent, let d, let startedAt, let endedAt):
            var data: [String: JSONValue] = [
                "tool_name": .string(d.toolName), "call_id": .string(d.callId), "request_id": .string(d.requestId),
                "decision": .string(d.outcome.rawValue), "decided_by": d.decidedBy.map(JSONValue.string) ?? .null,
                "waited_seconds": .number((endedAt.timeIntervalSince(startedAt) * 1000).rounded() / 1000),
            ]
            if d.outcome != .approved, includeSensitiveData, let m = d.message { data["message"] = .string(m) }
            start(id, parent: parent, at: startedAt, data: ["type": "custom", "name": "approval", "data": .object(data)])
            await end(id, error: nil, at: endedAt)
        case .spanError(let id, let error):
            if open[id] != nil { open[id]?.error = error } else { pendingErrors[id] = error }
        case .spanNote(let id, let key, let value):
            open[id]?.data[key] = value
        case .mcpToolsListed(let id, let parent, let server, let tools, let error, let startedAt, let endedAt):
            start(id, parent: parent, at: startedAt, data: [
                "type": "mcp_tools", "server": .string(server),
                "result": tools.map { .array($0.map(JSONValue.string)) } ?? .null,
            ])
            await end(id, error: error, at: endedAt)
        case .mcpCall(let id, let server):
            open[id]?.data["mcp_data"] = ["server": .string(server)]
        }
    }

    // MARK: - Pause and resume

    /// A span still open when a run paused (the task and agent spans), to be reopened on resume.
    public struct OpenSpan: Codable, Sendable {
        public var eventId: EventID
        public var spanId: String
        public var parentSpanId: String?
        public var startedAt: Date
        public var data: JSONValue

        enum CodingKeys: String, CodingKey {
            case eventId = "event_id", spanId = "span_id", parentSpanId = "parent_span_id", startedAt = "started_at", data
        }
    }

    /// The spans open right now (after a run paused: its task and agent spans).
    public func openSpans() -> [OpenSpan] {
        open.sorted { $0.key < $1.key }.map { id, o in
            OpenSpan(eventId: id, spanId: o.spanId, parentSpanId: o.parentSpanId, startedAt: o.startedAt, data: .object(o.data))
        }
    }

    /// Reopens spans of a paused run, so the resumed run's events continue them (same span ids,
    /// same start times) and the trace object is not started again.
    public func restore(_ spans: [OpenSpan]) {
        for s in spans {
            open[s.eventId] = Open(spanId: s.spanId, parentSpanId: s.parentSpanId, startedAt: s.startedAt,
                                   data: s.data.objectValue ?? [:], error: nil)
            spanIds[s.eventId] = s.spanId
        }
    }

    // MARK: - Internals

    /// The agent's model settings, found through the turn span's agent name.
    func modelConfig(for turnEvent: EventID) -> JSONValue {
        turnAgents[turnEvent].flatMap { modelSettings[$0] } ?? .object([:])
    }

    func start(_ id: EventID, parent: EventID?, at: Date, data: [String: JSONValue]) {
        let spanId = SpanID.random()
        let parentSpanId = parent.flatMap { open[$0]?.spanId ?? spanIds[$0] }
        open[id] = Open(spanId: spanId, parentSpanId: parentSpanId, startedAt: at, data: data,
                        error: pendingErrors.removeValue(forKey: id))
        spanIds[id] = spanId
    }

    func setCustomData(_ id: EventID, key: String, value: JSONValue) {
        guard var o = open[id], var d = o.data["data"]?.objectValue else { return }
        d[key] = value
        o.data["data"] = .object(d)
        open[id] = o
    }

    func end(_ id: EventID, error: SpanErrorInfo?, at: Date) async {
        guard let o = open.removeValue(forKey: id) else { return }
        let type = o.data["type"]?.stringValue ?? ""
        let err = (error ?? o.error).map { redact($0, spanType: type) }
        let span = SpanRecord(id: o.spanId, traceId: trace.id, parentId: o.parentSpanId, startedAt: o.startedAt,
                              endedAt: at, spanData: scrub(.object(o.data)),
                              error: err.map { scrub(["message": .string($0.message), "data": $0.data ?? .null]) })
        recorded.append(span)
        for sink in sinks {
            do { try await sink.spanEnded(span) } catch { note(error) }
        }
    }

    /// The SDK's redaction of error details when sensitive data is off.
    func redact(_ e: SpanErrorInfo, spanType: String) -> SpanErrorInfo {
        guard !includeSensitiveData, var data = e.data?.objectValue, data["error"] != nil else { return e }
        data["error"] = spanType == "function" ? "Tool execution failed. Error details are redacted."
            : "Error details are redacted."
        return SpanErrorInfo(message: e.message, data: .object(data))
    }

    func note(_ error: any Error) {
        sinkErrors.append(Redaction.scrub(String(describing: error), secrets: secrets))
    }

    func scrubbed(_ t: TraceRecord) -> TraceRecord {
        guard !secrets.isEmpty else { return t }
        var t = t
        t.metadata = t.metadata.mapValues { Redaction.scrub($0, secrets: secrets) }
        return t
    }

    func scrub(_ v: JSONValue) -> JSONValue { Redaction.scrub(v, secrets: secrets) }

    /// The SDK's turn span usage (omitted when all zero).
    static func turnUsage(_ u: Usage) -> JSONValue? {
        guard !isZero(u) else { return nil }
        return [
            "input_tokens": .number(Double(u.inputTokens)), "output_tokens": .number(Double(u.outputTokens)),
            "cached_input_tokens": .number(Double(u.cachedTokens)), "cache_write_input_tokens": 0,
        ]
    }

    /// The SDK's task span usage (omitted when all zero).
    static func taskUsage(_ u: Usage) -> JSONValue? {
        guard var o = turnUsage(u)?.objectValue else { return nil }
        o["requests"] = .number(Double(u.requests))
        o["total_tokens"] = .number(Double(u.totalTokens))
        return .object(o)
    }

    static func isZero(_ u: Usage) -> Bool {
        u.requests == 0 && u.inputTokens == 0 && u.outputTokens == 0 && u.cachedTokens == 0 && u.reasoningTokens == 0
    }
}
