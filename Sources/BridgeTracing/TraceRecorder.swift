import BridgeCore
import BridgeMapping
import BridgeRunner
import BridgeTraceModel
import FoundationEssentials

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
    public let taskId: TaskKey?
    public let includeSensitiveData: Bool
    let sinks: [any SpanSink]
    let secrets: [String]
    /// Each agent's model settings (the generation span's `model_config`).
    let modelSettings: [String: JSONValue]
    var turnAgents: [EventID: String] = [:]
    /// Span ids derived from the trace id and the event id (durable runs: a resumed run that
    /// records a step again records it under the same id, so the ledger keeps it once).
    var derivedSpanIds = false

    struct Open {
        var spanId: SpanID
        var parentSpanId: SpanID?
        var startedAt: Date
        var data: SpanData
        /// Extra top-level keys (`spanNote`), e.g. bridge's `text_replaced`.
        var notes: [String: JSONValue] = [:]
        var error: SpanErrorInfo?

        /// A model span's answer: cost and time to first token as notes, output, model and
        /// usage in its data.
        mutating func answered(_ response: ModelResponse) {
            if let cost = response.cost { notes["cost_usd"] = cost.json }
            if let ttft = response.timeToFirstToken {
                notes[RunnerMessages.timeToFirstTokenKey] = .number(Double((ttft.inSeconds * 1000).rounded()))
            }
            switch data {
            case .generation(var g):
                g.output = response.spanOutput ?? response.output.map(\.json)
                g.model = response.model
                g.usage = response.usage.json
                data = .generation(g)
            default:
                data = .response(responseId: response.responseId, usage: response.usage.json)
            }
        }
    }

    var open: [EventID: Open] = [:]
    /// Span ids of ended spans (children may name them as parents in odd orders).
    var spanIds: [EventID: SpanID] = [:]
    var pendingErrors: [EventID: SpanErrorInfo] = [:]
    public private(set) var sinkErrors: [String] = []
    /// Every span recorded so far, in the order they ended.
    public private(set) var recorded: [SpanRecord] = []

    public init(
        trace: TraceRecord, taskId: TaskKey?, sinks: [any SpanSink], includeSensitiveData: Bool,
        secrets: [String] = [], modelSettings: [String: JSONValue] = [:]
    ) {
        self.modelSettings = modelSettings
        self.trace = trace
        self.taskId = taskId
        self.sinks = sinks
        self.includeSensitiveData = includeSensitiveData
        self.secrets = secrets.filter { $0.count >= 3 }
    }

    /// Records `spec`'s run into the ledger (and any extra sinks, e.g. a `FileExporter`).
    public init(
        spec: RunSpec, ledger: Ledger, includeSensitiveData: Bool, extraSinks: [any SpanSink] = [],
        secrets: [String] = []
    ) {
        self.init(
            trace: TraceRecord(spec: spec), taskId: spec.taskId, sinks: [ledger] + extraSinks,
            includeSensitiveData: includeSensitiveData, secrets: secrets,
            modelSettings: spec.agents.mapValues { .object($0.modelSettings) })
    }

    public init(spec: RunSpec, sinks: [any SpanSink], includeSensitiveData: Bool, secrets: [String] = []) {
        self.init(
            trace: TraceRecord(spec: spec), taskId: spec.taskId, sinks: sinks,
            includeSensitiveData: includeSensitiveData, secrets: secrets,
            modelSettings: spec.agents.mapValues { .object($0.modelSettings) })
    }

    public var spanCount: Int { recorded.count }

    /// Derives every span id from the trace id and the event id from now on (durable runs).
    public func deriveSpanIds() { derivedSpanIds = true }

    public func record(_ event: RunEvent) async {
        switch event {
        case .taskStarted(let id, let at):
            await taskStarted(id, at: at)
        case .taskEnded(let id, let usage, let error, let at):
            await taskEnded(id, usage: usage, error: error, at: at)
        case .agentStarted(let id, let parent, let agent, let tools, let handoffs, let outputType, let at):
            start(
                id, parent: parent, at: at,
                data: .agent(name: agent, handoffs: handoffs, tools: tools, outputType: outputType))
        case .agentEnded(let id, let error, let at):
            await end(id, error: error, at: at)
        case .turnStarted(let id, let parent, let turn, let agent, let at):
            turnAgents[id] = agent
            start(id, parent: parent, at: at, data: .turn(turn: turn, agentName: agent))
        case .turnEnded(let id, let usage, let error, let at):
            if case .turn(let turn, let agent, _)? = open[id]?.data {
                open[id]?.data = .turn(turn: turn, agentName: agent, usage: Self.turnUsage(usage))
            }
            await end(id, error: error, at: at)
        case .modelStarted(let id, let parent, let kind, let model, let input, let at):
            await modelStarted(id, parent: parent, kind: kind, model: model, input: input, at: at)
        case .modelEnded(let id, let response, let error, let at):
            await modelEnded(id, response: response, error: error, at: at)
        case .toolStarted(let id, let parent, let name, let arguments, let at):
            start(id, parent: parent, at: at, data: .function(.init(name: name, input: arguments)))
        case .toolEnded(let id, let output, let error, let at):
            if let output, !output.isEmpty, case .function(var f)? = open[id]?.data {
                f.output = output
                open[id]?.data = .function(f)
            }
            await end(id, error: error, at: at)
        case .handoff(let id, let parent, let from, let to, let startedAt, let endedAt):
            start(id, parent: parent, at: startedAt, data: .handoff(from: from, to: to))
            await end(id, error: nil, at: endedAt)
        case .guardrailStarted(let id, let parent, let name, let at):
            start(id, parent: parent, at: at, data: .guardrail(name: name, triggered: false))
        case .guardrailEnded(let id, let triggered, let error, let at):
            if case .guardrail(let name, _)? = open[id]?.data {
                open[id]?.data = .guardrail(name: name, triggered: triggered)
            }
            await end(id, error: error, at: at)
        case .approvalWait(let id, let parent, let d, let startedAt, let endedAt):
            await approvalWait(id, parent: parent, decision: d, startedAt: startedAt, endedAt: endedAt)
        case .spanError(let id, let error):
            if open[id] != nil { open[id]?.error = error } else { pendingErrors[id] = error }
        case .spanNote(let id, let key, let value):
            open[id]?.notes[key] = value
        case .mcpToolsListed(let id, let parent, let server, let tools, let error, let startedAt, let endedAt):
            start(id, parent: parent, at: startedAt, data: .mcpTools(server: server, result: tools))
            await end(id, error: error, at: endedAt)
        case .resumed(let id, let parent, let data, let startedAt, let endedAt):
            start(id, parent: parent, at: startedAt, data: .custom(name: "resume", data: data))
            await end(id, error: nil, at: endedAt)
        case .mcpCall(let id, let server):
            if case .function(var f)? = open[id]?.data {
                f.mcpServer = server
                open[id]?.data = .function(f)
            }
        }
    }

    /// The trace begins at the sinks, then its task span opens.
    private func taskStarted(_ id: EventID, at: Date) async {
        for sink in sinks {
            do { try await sink.traceStarted(scrubbed(trace), taskId: taskId, at: at) } catch { note(error) }
        }
        start(id, parent: nil, at: at, data: .task(name: trace.workflowName))
    }

    /// The task span ends with the run's usage, then the trace ends at the sinks.
    private func taskEnded(_ id: EventID, usage: Usage, error: SpanErrorInfo?, at: Date) async {
        if case .task(let name, _, let backfilled)? = open[id]?.data {
            open[id]?.data = .task(name: name, usage: Self.taskUsage(usage), backfilled: backfilled)
        }
        await end(id, error: error, at: at)
        for sink in sinks {
            do { try await sink.traceEnded(trace.id, at: at) } catch { note(error) }
        }
    }

    /// Opens a generation or response span and announces it, so `trace tail --follow` shows the
    /// call while it runs (best effort).
    private func modelStarted(
        _ id: EventID, parent: EventID, kind: ModelSpanKind, model: String, input: [JSONValue], at: Date
    ) async {
        switch kind {
        case .generation:
            start(
                id, parent: parent, at: at,
                data: .generation(.init(input: input, model: model, modelConfig: modelConfig(for: parent))))
        case .response:
            start(id, parent: parent, at: at, data: .response(responseId: nil, usage: nil))
        }
        if let o = open[id] {
            let notice = SpanStart(
                spanId: o.spanId, traceId: trace.id, parentId: o.parentSpanId, startedAt: at, type: kind.rawValue,
                model: model, agent: turnAgents[parent], taskId: taskId, groupId: trace.groupId)
            for sink in sinks { try? await sink.spanStarted(notice) }
        }
    }

    /// Ends a model span with the response (`Open.answered`).
    private func modelEnded(_ id: EventID, response: ModelResponse?, error: SpanErrorInfo?, at: Date) async {
        // One access to the open span: a priced call's cost note was two more lookups.
        if let response { open[id]?.answered(response) }
        await end(id, error: error, at: at)
    }

    /// An approval wait is recorded once decided: one span over the whole wait.
    private func approvalWait(
        _ id: EventID, parent: EventID, decision d: ApprovalDecision, startedAt: Date, endedAt: Date
    ) async {
        start(
            id, parent: parent, at: startedAt,
            data: .approvalWait(
                toolName: d.toolName, callId: d.callId, requestId: d.requestId, decision: d.outcome.rawValue,
                decidedBy: d.decidedBy, message: d.outcome != .approved ? d.message : nil, from: startedAt,
                to: endedAt))
        await end(id, error: nil, at: endedAt)
    }

    // MARK: - Pause and resume

    /// A span still open when a run paused (the task and agent spans), to be reopened on resume.
    @SnakeCaseCodingKeys
    public struct OpenSpan: Codable, Sendable {
        public var eventId: EventID
        public var spanId: SpanID
        public var parentSpanId: SpanID?
        public var startedAt: Date
        public var data: JSONValue

        /// The span as the JSON its `Codable` form decodes from (the keys of its `CodingKeys`,
        /// `started_at` as seconds since 2001 like `JSONEncoder`'s default, no parent as null),
        /// built without `JSONEncoder`: it goes into every checkpoint (see
        /// `RunCheckpoint.journalJSON`).
        public var journalJSON: JSONValue {
            typealias K = CodingKeys
            return .object([
                K.eventId.stringValue: .number(JSONNumber(eventId)), K.spanId.stringValue: spanId.json,
                K.parentSpanId.stringValue: parentSpanId?.json ?? .null,
                K.startedAt.stringValue: .number(startedAt.timeIntervalSinceReferenceDate), K.data.stringValue: data,
            ])
        }
    }

    /// The spans open right now (after a run paused: its task and agent spans).
    public func openSpans() -> [OpenSpan] {
        open.sorted { $0.key < $1.key }.map { id, o in
            OpenSpan(
                eventId: id, spanId: o.spanId, parentSpanId: o.parentSpanId, startedAt: o.startedAt,
                data: o.data.json(notes: o.notes))
        }
    }

    /// Reopens spans of a paused run, so the resumed run's events continue them (same span ids,
    /// same start times) and the trace object is not started again.
    public func restore(_ spans: [OpenSpan]) {
        for s in spans {
            let (data, notes) = SpanData.decode(s.data)
            open[s.eventId] = Open(
                spanId: s.spanId, parentSpanId: s.parentSpanId, startedAt: s.startedAt,
                data: data, notes: notes, error: nil)
            spanIds[s.eventId] = s.spanId
        }
    }

    // MARK: - Internals

    /// The agent's model settings, found through the turn span's agent name.
    func modelConfig(for turnEvent: EventID) -> JSONValue {
        turnAgents[turnEvent].flatMap { modelSettings[$0] } ?? .object([:])
    }

    func start(_ id: EventID, parent: EventID?, at: Date, data: SpanData) {
        let spanId = derivedSpanIds ? SpanID.derived(traceId: trace.id, slot: "event:\(id)") : SpanID.random()
        let parentSpanId = parent.flatMap { open[$0]?.spanId ?? spanIds[$0] }
        open[id] = Open(
            spanId: spanId, parentSpanId: parentSpanId, startedAt: at, data: data,
            error: pendingErrors.removeValue(forKey: id))
        spanIds[id] = spanId
    }

    func end(_ id: EventID, error: SpanErrorInfo?, at: Date) async {
        guard let o = open.removeValue(forKey: id) else { return }
        let data = includeSensitiveData ? o.data : o.data.redacted()
        let err = (error ?? o.error).map { includeSensitiveData ? $0 : $0.redacted(spanKind: data.kind) }
        let span = SpanRecord(
            id: o.spanId, traceId: trace.id, parentId: o.parentSpanId, startedAt: o.startedAt,
            endedAt: at, spanData: scrub(data.json(notes: o.notes)), error: err.map { scrub($0.json) })
        recorded.append(span)
        for sink in sinks {
            do { try await sink.spanEnded(span) } catch { note(error) }
        }
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
        SpanData.turnUsage(
            input: u.inputTokens, output: u.outputTokens, cached: u.cachedTokens, requests: u.requests,
            reasoning: u.reasoningTokens)
    }

    /// The SDK's task span usage (omitted when all zero).
    static func taskUsage(_ u: Usage) -> JSONValue? {
        SpanData.taskUsage(
            input: u.inputTokens, output: u.outputTokens, cached: u.cachedTokens, requests: u.requests,
            total: u.totalTokens, reasoning: u.reasoningTokens)
    }
}
