// The build side of `bridge exec --backfill`: a historical run's trace, spans and transcript,
// made from the trace model's types (TraceRecord, SpanRecord, SpanData, SpanError) with the
// live path's agent selection, redaction and id functions.
import BridgeCore
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// A task's rebuilt trace, ready to write.
public struct RebuiltTrace: Sendable, Equatable {
    public var taskKey: TaskKey
    /// The execution row that receives the trace id (the latest one), if any.
    public var executionKey: String?
    /// The number of execution rows (1 when there are none): the transcript's `attempt`.
    public var attempt: Int
    public var trace: TraceRecord
    public var startedAt: Date
    public var endedAt: Date
    public var spans: [SpanRecord]
    /// The run transcript as the logs tell it: a `function_call` and its output per tool call.
    public var transcript: [ConversationItem]

    /// The SDK export objects: `{"trace": {...}, "spans": [...]}` (spans by start, then id).
    public var exportJSON: JSONValue {
        let ordered = spans.sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
        return ["trace": trace.exportJSON, "spans": .array(ordered.map(\.exportJSON))]
    }
}

/// Builds backfilled traces. The tree is the live one, minus what the logs cannot tell (model
/// calls, handoffs): a `task` span > the `agent` span > `turn` 1 (up to the end of the last tool
/// call, with a function span per call) and `turn` 2 (from there to the end) when there were
/// tool calls. The agent is chosen as `bridge exec` chooses it
/// (`DatabaseToSDKBridge.startingAgent`): where no agent is mapped, `build` throws the live
/// path's `RunSpecError` and the task is skipped.
///
/// Ids: the trace id is `TraceID.forBackfill(taskKey:)`; each span id is
/// `SpanID.derived(traceId:slot:)` with slot `task`, `agent`, `turn:1`, `turn:2` or
/// `function:<n>` (the n-th tool call, 1-based).
public struct BackfillTraceBuilder: Sendable {
    public let config: MappingConfig
    let bridge: DatabaseToSDKBridge
    let secrets: [String]
    /// Each agent's span data (its YAML tools and handoffs), computed once.
    let agentSpans: [String: SpanData]

    /// The text on a failed task that recorded no error message.
    public static let missingError = "the task failed (no error message was recorded)"

    public init(config: MappingConfig, secrets: [String] = []) {
        self.config = config
        self.bridge = DatabaseToSDKBridge(config: config)
        self.secrets = secrets.filter { $0.count >= 3 }
        var spans: [String: SpanData] = [:]
        for a in config.agents where spans[a.name] == nil {
            spans[a.name] = .agent(
                name: a.name, handoffs: bridge.yamlHandoffs(of: a), tools: a.tools,
                outputType: a.outputType?.name ?? "str")
        }
        self.agentSpans = spans
    }

    /// The task's rebuilt trace; throws where `bridge exec` could not choose an agent.
    public func build(_ run: HistoricalRun, now: Date = Date()) throws(RunSpecError) -> RebuiltTrace {
        let agent = try startingAgent(run)
        let traceId = TraceID.forBackfill(taskKey: run.taskKey)
        let x = run.execution
        let sensitive = config.tracing.includeSensitiveData

        // Times: the execution row's, else the task's, else the tool calls'.
        let firstStart = run.toolCalls.compactMap(\.startedAt).min()
        let lastEnd = run.toolCalls.compactMap(\.endedAt).max()
        let duration = x?.durationSeconds
        let end0 = x?.completedAt ?? offset(x?.startedAt, by: duration) ?? run.completedAt ?? lastEnd
        let start0 =
            x?.startedAt ?? offset(end0, by: duration.map { -$0 }) ?? firstStart ?? end0 ?? run.createdAt ?? now
        let t0 = [start0, firstStart].compactMap { $0 }.min() ?? start0
        let t1 = [end0 ?? start0, lastEnd].compactMap { $0 }.max() ?? start0

        var metadata = [
            "task_id": run.taskKey.text, "attempt": String(x?.attempts ?? 1),
            "bridge_version": DatabaseToSDKBridge.bridgeVersion, "backfilled": "true",
        ]
        metadata["workspace_id"] = run.groupId
        metadata["agent_id"] = run.agentKey
        var trace = TraceRecord(
            id: traceId, workflowName: config.tracing.workflowName, groupId: run.groupId, metadata: metadata)
        if !secrets.isEmpty { trace.metadata = trace.metadata.mapValues { Redaction.scrub($0, secrets: secrets) } }

        // As a live run that failed: `Error in agent run` on the agent span (the task span has none).
        let runError =
            run.failed
            ? SpanError(message: SpanError.agentRun, data: ["error": .string(x?.errorMessage ?? Self.missingError)])
            : nil
        var spans: [SpanRecord] = []
        spans.reserveCapacity(4 + run.toolCalls.count)
        func add(_ slot: String, parent: SpanID?, _ start: Date, _ end: Date, _ data: SpanData, error: SpanError? = nil)
        {
            let data = sensitive ? data : data.redacted()
            let error = error.map { sensitive ? $0 : $0.redacted(spanKind: data.kind) }
            spans.append(
                SpanRecord(
                    id: SpanID.derived(traceId: traceId, slot: slot), traceId: traceId, parentId: parent,
                    startedAt: start, endedAt: end, spanData: scrub(data.json()), error: error.map { scrub($0.json) }))
        }
        let usage = x?.usage.flatMap(Self.taskUsage)
        add("task", parent: nil, t0, t1, .task(name: config.tracing.workflowName, usage: usage, backfilled: true))
        let taskSpan = spans[0].id
        add(
            "agent", parent: taskSpan, t0, t1,
            agentSpans[agent.name] ?? .agent(name: agent.name, handoffs: [], tools: [], outputType: "str"),
            error: runError)
        let agentSpan = spans[1].id
        let calls = !run.toolCalls.isEmpty
        add("turn:1", parent: agentSpan, t0, calls ? lastEnd ?? t1 : t1, .turn(turn: 1, agentName: agent.name))
        let turnSpan = spans[2].id
        if calls { add("turn:2", parent: agentSpan, lastEnd ?? t1, t1, .turn(turn: 2, agentName: agent.name)) }

        var transcript: [ConversationItem] = []
        for (i, call) in run.toolCalls.enumerated() {
            let n = i + 1
            let input = call.arguments.map { $0.stringValue ?? $0.compact }
            let start = call.startedAt ?? t0
            add(
                "function:\(n)", parent: turnSpan, start, call.endedAt ?? start,
                .function(.init(name: call.name, input: input, output: call.output)),
                error: call.error.map {
                    SpanError(message: SpanError.tool, data: ["tool_name": .string(call.name), "error": .string($0)])
                })
            let callId = CallID("bf_call_\(n)")
            transcript.append(.functionCall(.init(callId: callId, name: call.name, arguments: input ?? "{}")))
            transcript.append(.callOutput(callId, .string(call.output ?? call.error ?? "")))
        }
        return RebuiltTrace(
            taskKey: run.taskKey, executionKey: x?.key, attempt: x?.attempts ?? 1, trace: trace,
            startedAt: t0, endedAt: t1, spans: spans, transcript: transcript.map { $0.mapJSON(scrub) })
    }

    /// `DatabaseToSDKBridge.startingAgent` on the columns the batch read.
    func startingAgent(_ run: HistoricalRun) throws(RunSpecError) -> AgentMapping {
        let sel = config.source.agentSelection
        var task: [String: JSONValue] = [:]
        if let col = sel?.fallbackColumn { task[col] = run.fallback.map(JSONValue.string) ?? .null }
        let row: [String: JSONValue]? = sel.flatMap { sel in
            run.agentRow.map { [sel.matchColumn: $0.match.map(JSONValue.string) ?? .null] }
        }
        return try bridge.startingAgent(taskId: run.taskKey, task: task, agentRow: row)
    }

    /// The task span's usage from an execution's token usage object (the Responses API's
    /// names; `input_tokens_details.cached_tokens` or `cached_tokens`).
    static func taskUsage(_ u: JSONValue) -> JSONValue? {
        guard u.objectValue != nil, u["input_tokens"] != nil || u["output_tokens"] != nil else { return nil }
        func n(_ v: JSONValue?) -> Int { v?.intValue ?? 0 }
        return SpanData.taskUsage(
            input: n(u["input_tokens"]), output: n(u["output_tokens"]),
            cached: n(u["input_tokens_details"]?["cached_tokens"] ?? u["cached_tokens"]),
            requests: n(u["requests"]), total: n(u["total_tokens"]))
    }

    func scrub(_ v: JSONValue) -> JSONValue { Redaction.scrub(v, secrets: secrets) }
}

/// `date` moved by `seconds`; nil when either is unknown or the result is no instant bridge
/// can store (`PostgresTimestamp.moved`).
private func offset(_ date: Date?, by seconds: Double?) -> Date? {
    guard let date, let seconds else { return nil }
    return PostgresTimestamp.moved(date, by: seconds)
}
