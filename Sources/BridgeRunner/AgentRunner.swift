// The SDK's agent loop: turns, tool calls, handoffs, guardrails, approvals and
// tool_use_behavior, as one state machine whose steps share the run state.
import BridgeCore
import BridgeMapping
import BridgeTraceModel
import Foundation
import Synchronization

/// A failure of a model backend. HTTP providers throw it with `retriable` set for 408, 409,
/// 429, 5xx and network errors; the runner turns it into a `RunFailure` of type `ModelError`
/// carrying the same flag.
public struct ModelProviderError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var retriable: Bool
    /// The HTTP status, when there was one.
    public var statusCode: Int?
    /// How long the server asked to wait (`Retry-After`), when it said.
    public var retryAfter: Duration?
    /// How long until the provider's rate limit resets (`x-ratelimit-reset-requests` /
    /// `x-ratelimit-reset-tokens`, the later of the two), on a 429.
    public var rateLimitReset: Duration?
    /// The failure type the run records (default `ModelError`), e.g. `BudgetExceeded`.
    public var failureType: FailureType?

    public init(
        _ message: String, retriable: Bool, statusCode: Int? = nil, retryAfter: Duration? = nil,
        failureType: FailureType? = nil
    ) {
        self.failureType = failureType
        self.message = message
        self.retriable = retriable
        self.statusCode = statusCode
        self.retryAfter = retryAfter
    }

    public var description: String { message }
}

/// The SDK's wording, in one place (tests and `verify` compare against these).
public enum RunnerMessages {
    /// What the model receives when a tool throws.
    /// The span data key that flags replaced text (`TextSafety`).
    public static let textReplacedKey = "text_replaced"
    /// The model's id of a tool call, noted on its function span (OTLP exports it as
    /// `gen_ai.tool.call.id`; the SDK's function span has no such field, so the OpenAI
    /// exporter leaves it out).
    public static let callIdKey = "call_id"
    /// A streamed model call's time to first token in milliseconds, noted on its generation or
    /// response span (bridge's own key; the OpenAI exporter leaves it out).
    public static let timeToFirstTokenKey = "time_to_first_token_ms"

    public static func toolError(_ error: String) -> String {
        "An error occurred while running the tool. Please try again. Error: \(error)"
    }

    /// What the model receives when the arguments are not valid JSON.
    public static func argumentsError(_ error: String) -> String {
        "An error occurred while parsing tool arguments. Please try again with valid JSON. Error: \(error)"
    }

    /// Output of every handoff call after the first in one response.
    public static let multipleHandoffsIgnored = "Multiple handoffs detected, ignoring this one."

    /// The handoff tool's output: Python's `json.dumps({"assistant": name})`.
    public static func transferMessage(to agentName: String) -> String {
        "{\"assistant\": \(PythonJSON.string(agentName))}"
    }

    /// The strict, empty parameter schema of a handoff tool.
    public static let emptyStrictSchema: JSONValue = [
        "type": "object", "properties": [:], "required": [], "additionalProperties": false,
    ]

    // Span error messages.
    public static let spanToolErrorNonFatal = SpanError.toolNonFatal
    public static let spanToolError = SpanError.tool
    public static let spanMaxTurns = "Max turns exceeded"
    public static let spanModelError = "Error getting response"
    public static let spanAgentError = SpanError.agentRun
    public static let spanToolNotFound = "Tool not found"
    public static let spanMultipleHandoffs = "Multiple handoffs requested"
    /// On the turn span when a structured output does not match its schema.
    public static let spanInvalidJSON = "Invalid JSON provided"
    /// On the turn span (input guardrails) or the agent span (output guardrails).
    public static let spanGuardrailTripped = "Guardrail tripwire triggered"

    /// The `ModelBehaviorError` message for an answer that does not match the output type.
    public static func invalidJSON(_ text: String, outputType: String, problem: String) -> String {
        let shown = text.count > 2_000 ? String(text.prefix(2_000)) + "…" : text
        return "Invalid JSON when parsing \(shown) for \(outputType); \(problem)"
    }

    /// The error message of a tripped guardrail: the SDK's wording plus the `output_info`.
    public static func tripwire(_ guardrail: String, outputInfo: JSONValue) -> String {
        let info = outputInfo.stringValue ?? outputInfo.compact
        return "Guardrail \(guardrail) triggered tripwire" + (outputInfo.isNull ? "" : ": \(info)")
    }

    /// The error message of a tool guardrail that raised (the SDK's wording, with the guardrail's
    /// name rather than its class, plus the `output_info`).
    public static func toolTripwire(_ guardrail: String, output: Bool, outputInfo: JSONValue) -> String {
        let info = outputInfo.stringValue ?? outputInfo.compact
        return "Tool \(output ? "output" : "input") guardrail \(guardrail) triggered tripwire"
            + (outputInfo.isNull ? "" : ": \(info)")
    }

    public static let spanMCPListError = "Error listing MCP tools"

    /// What the model receives when an MCP call fails (the SDK's `AgentsException` text, inside
    /// `toolError`).
    public static func mcpInvokeError(tool: String, server: String, _ error: String) -> String {
        "Error invoking MCP tool \(tool) on server '\(server)': \(error)"
    }

    /// The SDK's message for arguments that are not a JSON object.
    public static func mcpInvalidJSON(tool: String, _ input: String) -> String {
        "Invalid JSON input for tool \(tool): \(input)"
    }
}

/// JSON text as Python's `json.dumps` writes it by default (`ensure_ascii=True`).
public enum PythonJSON {
    public static func string(_ s: String) -> String { JSONValue.quote(s, asciiOnly: true) }
}

/// Runs a `RunSpec` the way the Agents SDK's `Runner.run` does: turns across agents, tools
/// called concurrently, handoffs as tools, `tool_use_behavior`, `max_turns`; and reports every
/// step to the observer as `RunEvent`s (the tracing layer turns them into spans).
@MemberwiseInit
public struct AgentRunner: Sendable {
    public let model: any ModelProvider
    public let tools: any ToolExecutor
    public let observer: any RunObserver
    /// Where agents with `mcp_servers` find those servers' tools (nil: no MCP servers).
    public var mcp: (any MCPToolSource)? = nil
    /// Where a durable run journals its steps (nil: the run is not durable, e.g. a preview).
    public var journal: (any RunJournal)? = nil

    /// The function tools an agent offers the model: its bridge function tools in declaration
    /// order, then one tool per handoff.
    public static func functionTools(for agent: AgentSpec, in spec: RunSpec) -> [FunctionToolDefinition] {
        var out: [FunctionToolDefinition] = []
        for name in agent.tools {
            guard let tool = spec.tools[name], tool.isFunctionTool else { continue }
            out.append(
                FunctionToolDefinition(
                    name: tool.name, description: tool.description,
                    parameters: tool.parameters, strict: tool.strict))
        }
        for h in agent.handoffs {
            out.append(
                FunctionToolDefinition(
                    name: h.toolName, description: h.toolDescription,
                    parameters: RunnerMessages.emptyStrictSchema, strict: true))
        }
        return out
    }

    /// The hosted tools an agent offers (run by the model provider, never by bridge).
    public static func hostedTools(for agent: AgentSpec, in spec: RunSpec) -> [HostedToolSpec] {
        agent.tools.compactMap { name in
            if case .hosted(let h)? = spec.tools[name]?.implementation { return h }
            return nil
        }
    }

    public func run(_ spec: RunSpec, taskRow: [String: JSONValue], restarted: ResumeInfo? = nil) async -> RunResult {
        var run = RunState(spec: spec, taskRow: taskRow, runner: self)
        return await run.execute(restarted: restarted)
    }

    /// Continues a run from its last journaled model response (`checkpoint`), in the same trace:
    /// the task, agent and turn spans open at the checkpoint stay the parents (the observer must
    /// have them reopened, see `TraceRecorder.restore`), tool calls already finished are replayed
    /// from the journal, and a `resume` span under the task span shows the gap.
    public func resume(
        _ spec: RunSpec, checkpoint: RunCheckpoint, info: ResumeInfo,
        taskRow: [String: JSONValue]
    ) async -> RunResult {
        var run = RunState(spec: spec, taskRow: taskRow, runner: self)
        return await run.resume(checkpoint, info: info)
    }
}

/// One function call of a response that bridge executes.
struct PendingToolCall: Sendable {
    var index: Int
    var callId: CallID
    var name: String
    var arguments: String
    /// The bridge tool, or nil for an MCP tool (then `mcpServer` names its server).
    var tool: ToolSpec?
    var mcpServer: String? = nil
    var eventId: EventID
    /// Span ids of the tool's guardrails (inputs, then outputs), allocated with `eventId` so a
    /// resumed run gives the same guardrail the same span.
    var guardIds: [EventID] = []
}

struct ToolCallOutcome: Sendable {
    /// The call this is the outcome of.
    var call: PendingToolCall
    var output: String
    /// What the model receives when it is not `output` itself (MCP content parts).
    var modelOutput: JSONValue? = nil
    /// The journal refused the call's record: the lease is gone, the run must stop.
    var fenced = false
    /// A tool guardrail failed the run (it raised, or could not decide).
    var failure: RunFailure? = nil
    /// What the call's guardrail agents used, and their `guardrail_result` transcript items.
    var usage = Usage()
    var items: [ConversationItem] = []
}

/// Allocates event ids for a run and the guardrail agents' runs nested in it (which run
/// concurrently with the model call, so the counter is shared and locked).
final class EventCounter: Sendable {
    private let value: Mutex<EventID>
    init(start: EventID = 0) { value = Mutex(start) }
    var current: EventID { value.withLock { $0 } }
    /// Moves the counter to `v` unless it is past it (a replayed step's ids are taken).
    func advance(to v: EventID) { value.withLock { $0 = max($0, v) } }
    func next() -> EventID {
        value.withLock {
            $0 += 1
            return $0
        }
    }
}

/// The mutable state of one run.
struct RunState {
    let spec: RunSpec
    let taskRow: [String: JSONValue]
    let runner: AgentRunner
    let ids: EventCounter
    /// 0 for the task's run; 1 and more for guardrail agents' runs nested in it.
    let depth: Int
    var history: [ConversationItem]
    var transcript: [ConversationItem] = []
    var usage = Usage()
    var turn = 0
    var toolCalls = 0
    /// The validated structured output of the last final answer.
    var structuredOutput: JSONValue?
    /// The current agent's MCP tools: tool name → server.
    var mcpToolServers: [String: String] = [:]
    /// The task span's event id (journaled in checkpoints).
    var taskEventId: EventID = 0
    /// How many items at the start of `history` came from the session (not the run's own).
    var sessionPrefix = 0

    init(
        spec: RunSpec, taskRow: [String: JSONValue], runner: AgentRunner, ids: EventCounter = EventCounter(),
        input: String? = nil, depth: Int = 0
    ) {
        self.spec = spec
        self.taskRow = taskRow
        self.runner = runner
        self.ids = ids
        self.depth = depth
        // The task's own run follows its session's history (guardrail agents see only the
        // text they check).
        let prefix = depth == 0 && input == nil ? spec.session?.items ?? [] : []
        self.sessionPrefix = prefix.count
        self.history = prefix + [.input(input ?? spec.input)]
    }

    func allocate() -> EventID { ids.next() }

    func emit(_ e: RunEvent) async { await runner.observer.record(e) }

    /// How one agent stint ended.
    enum StintEnd {
        case final(String)
        case handoff(to: String)
        case failed(RunFailure)
        /// Calls wait for approval; the agent span (`agentId`) stays open.
        case paused(agentId: EventID, pending: [PendingApproval], deferredHandoffs: [PendingApproval])
        /// A durable run stopped at a step boundary (shutdown, lost lease): no span is ended, the
        /// run goes on from its journal elsewhere.
        case interrupted(RunFailure)
    }

    mutating func execute(restarted: ResumeInfo? = nil) async -> RunResult {
        let taskId = allocate()
        taskEventId = taskId
        await emit(.taskStarted(id: taskId, at: Date()))
        if let restarted { await emitResume(restarted, parent: taskId, from: "start") }
        let (outcome, agentName) = await runAgents(from: spec.startingAgent, parent: taskId)
        return await finish(outcome, agentName: agentName, taskId: taskId)
    }

    /// The `resume` span: the gap between the interrupted stint's last journaled step and now.
    func emitResume(_ info: ResumeInfo, parent: EventID, from step: String) async {
        let now = Date()
        var data: [String: JSONValue] = [
            "worker": .string(info.worker), "resumed_from": .string(step),
            "lost_seconds": .number((now.timeIntervalSince(info.lastStepAt) * 1000).rounded() / 1000),
            "attempt": .number(Double(info.attempt)),
        ]
        data["previous_worker"] = info.previousWorker.map(JSONValue.string) ?? .null
        if let reason = info.reason { data["reason"] = .string(reason) }
        // A negative id of its own: the resumed steps keep the ids they had.
        await emit(
            .resumed(id: -info.attempt, parent: parent, data: data, startedAt: min(info.lastStepAt, now), endedAt: now))
    }

    /// The failure of a run stopped at a step boundary.
    static let interruption = RunFailure(type: .cancelled, message: "the run was cancelled", retriable: true)

    /// Whether a durable run must stop before its next step (cancelled, or shutdown asked).
    var mustStop: Bool { Task.isCancelled || (journal?.stopRequested ?? false) }

    /// The journal of a durable run's own steps (guardrail agents' runs nested in it journal
    /// their tool calls only: their turns are not checkpoints of the run).
    var journal: (any RunJournal)? { depth == 0 ? runner.journal : nil }

    /// Ends the task span (unless the run paused) and builds the result.
    mutating func finish(_ outcome: StintEnd, agentName: String, taskId: EventID) async -> RunResult {
        if case .interrupted(let failure) = outcome {
            return RunResult(
                status: .failed, finalOutput: nil, lastAgent: agentName, usage: usage, transcript: transcript,
                error: failure, turns: turn, toolCalls: toolCalls)
        }
        if case .paused(let agentId, let pending, let deferred) = outcome {
            let paused = PausedRun(
                position: position(agent: agentName, agentId: agentId), pending: pending, deferredHandoffs: deferred,
                pausedAt: Date())
            return RunResult(
                status: .paused, finalOutput: nil, lastAgent: agentName, usage: usage, transcript: transcript,
                error: nil, turns: turn, toolCalls: toolCalls, paused: paused)
        }
        await emit(.taskEnded(id: taskId, usage: usage, error: nil, at: Date()))
        switch outcome {
        case .final(let text):
            var result = RunResult(
                status: .completed, finalOutput: text, lastAgent: agentName, usage: usage,
                transcript: transcript, error: nil, turns: turn, toolCalls: toolCalls,
                finalOutputJSON: structuredOutput)
            result.newItems = Array(history.dropFirst(sessionPrefix))
            return result
        case .failed(let failure):
            return RunResult(
                status: .failed, finalOutput: nil, lastAgent: agentName, usage: usage,
                transcript: transcript, error: failure, turns: min(turn, spec.maxTurns), toolCalls: toolCalls)
        case .handoff, .paused, .interrupted:
            fatalError("unreachable: handoffs continue the loop, pauses and interruptions returned above")
        }
    }

    /// Runs stints from agent `start`, following handoffs, until a final output or a failure.
    mutating func runAgents(
        from start: String, parent: EventID, openAgentId: EventID? = nil,
        resumeTurn: ResumedTurn? = nil
    ) async -> (StintEnd, String) {
        var agentName = start
        var openAgentId = openAgentId
        var resumeTurn = resumeTurn
        while true {
            guard let agent = spec.agents[agentName] else {
                return (
                    .failed(
                        RunFailure(
                            type: .userError, message: "Agent \(agentName) not found in the run spec",
                            retriable: false)), agentName
                )
            }
            let outcome = await runStint(agent, parent: parent, agentId: openAgentId, resumeTurn: resumeTurn)
            openAgentId = nil
            resumeTurn = nil
            if case .handoff(let next) = outcome {
                agentName = next
                continue
            }
            return (outcome, agentName)
        }
    }

    /// A turn whose model response is journaled, to go on from (a resumed run's first turn).
    struct ResumedTurn {
        var turnId: EventID
        var turnUsage: Usage
        var response: [ConversationItem]
    }

    /// What an agent offers the model in each turn of its stint.
    struct StintTools {
        var functionTools: [FunctionToolDefinition]
        var hostedTools: [HostedToolSpec]
    }

    /// Runs turns for one agent until it produces a final output, hands off, or fails.
    mutating func runStint(
        _ agent: AgentSpec, parent: EventID, agentId openId: EventID? = nil,
        resumeTurn: ResumedTurn? = nil
    ) async -> StintEnd {
        let agentId = openId ?? allocate()
        let tools: StintTools
        switch await openStint(
            agent, parent: parent, agentId: agentId, spanOpen: openId != nil, fromJournal: resumeTurn != nil)
        {
        case .success(let offered): tools = offered
        case .failure(let failure): return .failed(failure)
        }
        var resumeTurn = resumeTurn
        while true {
            // A durable run stops before the next model call when asked to (shutdown) or
            // cancelled (lost lease): its journal has every finished step, nothing is ended.
            if journal != nil && mustStop { return .interrupted(Self.interruption) }
            // A cancelled run (its lease was lost, or shutdown) stops before the next turn.
            if Task.isCancelled {
                let error = SpanErrorInfo(message: RunnerMessages.spanAgentError, data: ["error": "cancelled"])
                await emit(.agentEnded(id: agentId, error: error, at: Date()))
                return .failed(RunFailure(type: .cancelled, message: "the run was cancelled", retriable: true))
            }
            let step: TurnStep
            if let resumed = resumeTurn {
                resumeTurn = nil
                step = await runTurn(agent, parent: agentId, start: .journaled(resumed))
            } else {
                turn += 1
                if turn > spec.maxTurns {
                    let agentError = SpanErrorInfo(
                        message: RunnerMessages.spanMaxTurns, data: ["max_turns": .number(Double(spec.maxTurns))])
                    await emit(.agentEnded(id: agentId, error: agentError, at: Date()))
                    return .failed(
                        RunFailure(
                            type: .maxTurnsExceeded, message: "Max turns (\(spec.maxTurns)) exceeded",
                            retriable: false))
                }
                step = await runTurn(agent, parent: agentId, start: .model(tools))
            }
            if let end = await stintEnd(after: step, agent, agentId: agentId) { return end }
        }
    }

    /// Opens an agent's stint: lists its MCP tools and starts its agent span (unless `spanOpen`:
    /// a resumed stint's span is open already). MCP tools are listed when the stint starts, and
    /// again when a paused stint resumes; a stint resumed from its journal (`fromJournal`) lists
    /// them without spans or event ids: the replayed steps keep the ids they had. A failed
    /// listing ends the agent span and the stint.
    private mutating func openStint(
        _ agent: AgentSpec, parent: EventID, agentId: EventID, spanOpen: Bool, fromJournal: Bool
    ) async -> Result<StintTools, RunFailure> {
        let agentStart = Date()
        var functionTools = AgentRunner.functionTools(for: agent, in: spec)
        let hostedTools = AgentRunner.hostedTools(for: agent, in: spec)
        let mcp = await listMCPTools(
            agent, parent: agentId, taken: Set(functionTools.map(\.name)), quiet: fromJournal)
        functionTools += mcp.tools
        if !spanOpen {
            await emit(
                .agentStarted(
                    id: agentId, parent: parent, agent: agent.name, tools: agent.tools + mcp.tools.map(\.name),
                    handoffs: agent.handoffs.map(\.agent), outputType: agent.outputType, at: agentStart))
        }
        if !fromJournal { for event in mcp.events { await emit(event) } }
        if let failure = mcp.failure {
            await emit(
                .agentEnded(
                    id: agentId,
                    error: SpanErrorInfo(
                        message: RunnerMessages.spanAgentError,
                        data: ["error": .string(failure.message)]), at: Date()))
            return .failure(failure)
        }
        return .success(StintTools(functionTools: functionTools, hostedTools: hostedTools))
    }

    /// How the stint goes on after a turn's `step`: nil to run another turn, else how it ends
    /// (the agent span ended, except for a pause or an interruption, which leave it open).
    private mutating func stintEnd(after step: TurnStep, _ agent: AgentSpec, agentId: EventID) async -> StintEnd? {
        switch step {
        case .again:
            return nil
        case .final(let text):
            return await finalOutput(text, agent, agentId: agentId)
        case .handoff(let to):
            await emit(.agentEnded(id: agentId, error: nil, at: Date()))
            return .handoff(to: to)
        case .paused(let pending, let deferred):
            return .paused(agentId: agentId, pending: pending, deferredHandoffs: deferred)
        case .interrupted(let failure):
            return .interrupted(failure)
        case .failed(let failure, let spanError):
            await emit(.agentEnded(id: agentId, error: spanError, at: Date()))
            return .failed(failure)
        }
    }

    /// A final output passes the agent's output guardrails (if any) before the stint ends with it.
    private mutating func finalOutput(_ text: String, _ agent: AgentSpec, agentId: EventID) async -> StintEnd {
        let guards = agent.outputGuardrails.compactMap { spec.guardrails[$0] }
        if !guards.isEmpty {
            let (verdict, fenced) = await guardrails(
                guards, input: spec.input, output: text, parent: agentId, kind: .output)
            if let fenced { return .interrupted(fenced) }
            usage = usage + verdict.usage
            transcript += verdict.items
            if let failure = verdict.failure {
                await emit(.agentEnded(id: agentId, error: verdict.spanError, at: Date()))
                return .failed(failure)
            }
        }
        await emit(.agentEnded(id: agentId, error: nil, at: Date()))
        return .final(text)
    }

    enum TurnStep {
        case again
        case final(String)
        case handoff(String)
        /// The failure and the error for the agent span (nil when the SDK records none there).
        case failed(RunFailure, SpanErrorInfo?)
        /// Calls wait for a human decision (and handoffs requested beside them wait too).
        case paused([PendingApproval], [PendingApproval])
        /// A durable run stopped at a step boundary (see `StintEnd.interrupted`).
        case interrupted(RunFailure)
    }

    /// How a turn begins: with a model call, or from its journaled model response (a resumed
    /// run's first turn, whose span is open already).
    enum TurnStart {
        case model(StintTools)
        case journaled(ResumedTurn)
    }

    /// An open turn span: its id, and what the turn used so far (its span ends with that).
    struct TurnSpan {
        let id: EventID
        var usage: Usage
    }

    /// Part of a turn that either yields what the turn goes on with or ends the turn.
    enum TurnGoesOn<Value> {
        case with(Value)
        case ends(TurnStep)
    }

    /// Runs one turn of `agent` and ends its span. Every exit of a turn comes back here, so no
    /// step can leave the span open.
    mutating func runTurn(_ agent: AgentSpec, parent agentId: EventID, start: TurnStart) async -> TurnStep {
        var span: TurnSpan
        let step: TurnStep
        switch start {
        case .model(let tools):
            span = TurnSpan(id: allocate(), usage: Usage())
            await emit(.turnStarted(id: span.id, parent: agentId, turn: turn, agent: agent.name, at: Date()))
            step = await modelTurn(agent, parent: agentId, tools: tools, span: &span)
        case .journaled(let resumed):
            span = TurnSpan(id: resumed.turnId, usage: resumed.turnUsage)
            step = await afterResponse(agent, span: &span, output: resumed.response)
        }
        return await endTurn(span, step)
    }

    /// The one place a turn span ends (the turns of `runTurn` and the turn of a run resumed
    /// after approvals): with what the turn used, however the turn went, except when a durable
    /// run was interrupted (its spans stay open; it goes on from its journal).
    func endTurn(_ span: TurnSpan, _ step: TurnStep) async -> TurnStep {
        if case .interrupted = step { return step }
        await emit(.turnEnded(id: span.id, usage: span.usage, error: nil, at: Date()))
        return step
    }

    /// A turn that calls the model: the first turn's input guardrails (sequential ones before
    /// the call, parallel ones beside it), the model call, its response journaled, then what
    /// the response asks for (`afterResponse`).
    private mutating func modelTurn(
        _ agent: AgentSpec, parent agentId: EventID, tools: StintTools, span: inout TurnSpan
    ) async -> TurnStep {
        let firstTurnGuards = turn == 1 ? agent.inputGuardrails.compactMap { spec.guardrails[$0] } : []
        let sequential = firstTurnGuards.filter { !$0.runInParallel }
        if let end = await sequentialInputGuardrails(sequential, span: &span) { return end }
        let modelId = allocate()
        let request = ModelRequest(
            agent: agent, input: history, functionTools: tools.functionTools,
            hostedTools: tools.hostedTools, turn: turn, traceId: spec.traceId)
        // Only a generation span records its input (a response span has none): it is not built
        // for Responses calls.
        let kind = runner.model.spanKind(for: agent)
        await emit(
            .modelStarted(
                id: modelId, parent: span.id, kind: kind, model: agent.model,
                input: kind == .generation ? runner.model.spanInput(for: request) : [], at: Date()))
        var response: ModelResponse
        switch await callModel(
            request, modelId: modelId, inputGuards: firstTurnGuards.filter(\.runInParallel), span: &span)
        {
        case .with(let answer): response = answer
        case .ends(let step): return step
        }
        await takeResponse(&response, modelId: modelId, span: &span)
        if let end = await checkpoint(response.output, agent, agentId: agentId, span: span) { return end }
        return await afterResponse(agent, span: &span, output: response.output)
    }

    /// The first turn's sequential input guardrails (`run_in_parallel: false`), before the
    /// model call: nil when they pass, else the step the turn ends with.
    private mutating func sequentialInputGuardrails(_ guards: [GuardrailSpec], span: inout TurnSpan) async
        -> TurnStep?
    {
        guard !guards.isEmpty else { return nil }
        let (verdict, fenced) = await guardrails(guards, input: spec.input, output: nil, parent: span.id, kind: .input)
        if let fenced { return .interrupted(fenced) }
        usage = usage + verdict.usage
        span.usage = span.usage + verdict.usage
        transcript += verdict.items
        guard let failure = verdict.failure else { return nil }
        if let e = verdict.spanError { await emit(.spanError(id: span.id, error: e)) }
        return .failed(failure, nil)
    }

    /// Calls the model, with the first turn's parallel input guardrails beside it (a tripwire
    /// cancels the call). The model span (`modelId`) stays open for the response; when the
    /// call fails or is cancelled by a tripwire, it ends here (see `modelFailed`).
    private mutating func callModel(
        _ request: ModelRequest, modelId: EventID, inputGuards: [GuardrailSpec], span: inout TurnSpan
    ) async -> TurnGoesOn<ModelResponse> {
        do {
            if inputGuards.isEmpty { return .with(try await runner.model.respond(request)) }
            let (answer, verdict) = await GuardrailRun.alongside(
                request, guards: inputGuards, parent: span.id, state: self)
            usage = usage + verdict.usage
            span.usage = span.usage + verdict.usage
            transcript += verdict.items
            if let failure = verdict.failure {
                // The tripwire cancelled the model call (its span ends without a response).
                await emit(.modelEnded(id: modelId, response: try? answer?.get(), error: nil, at: Date()))
                if let e = verdict.spanError { await emit(.spanError(id: span.id, error: e)) }
                return .ends(.failed(failure, nil))
            }
            guard let answer else { throw CancellationError() }
            return .with(try answer.get())
        } catch {
            return .ends(await modelFailed(error, modelId: modelId))
        }
    }

    /// The model call threw: the model span ends with the error and the run fails, except a
    /// durable run cancelled in the call, which stops without ending spans: it resumes from its
    /// journal (this call was not journaled, so it is made again).
    private func modelFailed(_ error: any Error, modelId: EventID) async -> TurnStep {
        if journal != nil && (error is CancellationError || Task.isCancelled) {
            return .interrupted(Self.interruption)
        }
        let text = TextSafety.storable(String(describing: error)).text
        await emit(
            .modelEnded(
                id: modelId, response: nil,
                error: SpanErrorInfo(message: RunnerMessages.spanModelError, data: ["error": .string(text)]),
                at: Date()))
        let providerError = error as? ModelProviderError
        let retriable = providerError?.retriable ?? (error is CancellationError)
        return .failed(
            RunFailure(
                type: error is CancellationError ? .cancelled : providerError?.failureType ?? .modelError,
                message: text,
                retriable: retriable, retryAfter: providerError?.retryAfter),
            SpanErrorInfo(message: RunnerMessages.spanAgentError, data: ["error": .string(text)]))
    }

    /// Takes the model's response into the run: the model span ends with it, its usage counts,
    /// its output joins the history. U+0000 cannot be stored (text, jsonb): it is replaced,
    /// flagged on the span, and the run goes on.
    private mutating func takeResponse(_ response: inout ModelResponse, modelId: EventID, span: inout TurnSpan) async {
        let (safeOutput, replaced) = TextSafety.storable(JSONValue.array(response.output.map(\.json)))
        if !replaced.isEmpty {
            response.output = (safeOutput.arrayValue ?? []).map(ConversationItem.init(json:))
            response.spanOutput = response.spanOutput.map {
                TextSafety.storable(JSONValue.array($0)).value.arrayValue ?? []
            }
            await emit(.spanNote(id: modelId, key: RunnerMessages.textReplacedKey, value: replaced.json))
        }
        await emit(.modelEnded(id: modelId, response: response, error: nil, at: Date()))
        span.usage = span.usage + response.usage
        usage = usage + response.usage
        history += response.output
        transcript += response.output
    }

    /// Durable: the response is journaled (with the spans ended so far) before anything else.
    /// A final answer with nothing left to run (no call, no output guardrail) is not: the
    /// run's finishing transaction, right after, journals it with its result. Nil when done,
    /// else the interruption (the journal refused the write: the lease is gone).
    private func checkpoint(
        _ output: [ConversationItem], _ agent: AgentSpec, agentId: EventID, span: TurnSpan
    ) async -> TurnStep? {
        let finishesHere =
            agent.outputGuardrails.isEmpty && Self.lastMessageText(output) != nil
            && !output.contains { $0.functionCall != nil }
        guard let journal, !finishesHere else { return nil }
        let checkpoint = RunCheckpoint(
            position: position(agent: agent.name, agentId: agentId), turnEventId: span.id, turnUsage: span.usage,
            response: output, openSpans: .null, at: Date())
        do { try await journal.checkpoint(checkpoint) } catch { return .interrupted(Self.fenced(error)) }
        return nil
    }

    /// A journal write was refused: the lease is gone, the run stops and writes nothing more.
    static func fenced(_ error: any Error) -> RunFailure {
        RunFailure(type: .cancelled, message: "the run was cancelled: \(error)", retriable: true)
    }

    /// What a turn does with its model response: tool calls, approvals, handoffs, the final
    /// answer. Derived from the response alone (and the journal's finished calls), so a resumed
    /// run goes on from a journaled response exactly as the interrupted one would have.
    mutating func afterResponse(_ agent: AgentSpec, span: inout TurnSpan, output: [ConversationItem]) async
        -> TurnStep
    {
        let calls = sortCalls(output, agent)
        if let name = calls.unknownTool {
            await emit(
                .spanError(
                    id: span.id,
                    error: SpanErrorInfo(message: RunnerMessages.spanToolNotFound, data: ["tool_name": .string(name)])))
            return .failed(
                RunFailure(
                    type: .modelBehaviorError, message: "Tool \(name) not found in agent \(agent.name)",
                    retriable: false), nil)
        }
        let (runNow, waiting) = await holdForApproval(calls.tools, agent)
        let outcomes: [ToolCallOutcome]
        switch await runCalls(runNow, agent, span: &span) {
        case .with(let ran): outcomes = ran
        case .ends(let step): return step
        }
        if !waiting.isEmpty {
            let deferred = calls.handoffs.map {
                PendingApproval(
                    callId: $0.callId, name: $0.spec.toolName, arguments: "{}",
                    agent: $0.spec.agent)
            }
            return .paused(waiting, deferred)
        }
        if !calls.handoffs.isEmpty { return await handOff(calls.handoffs, from: agent, turnId: span.id) }
        // Tools ran: tool_use_behavior decides whether their output is final.
        if !outcomes.isEmpty {
            switch agent.toolUseBehavior {
            case .runLLMAgain:
                return .again
            case .stopOnFirstTool:
                return .final(outcomes[0].output)
            case .stopAtToolNames(let names):
                if let hit = outcomes.first(where: { names.contains($0.call.name) }) { return .final(hit.output) }
                return .again
            }
        }
        return await finalAnswer(output, agent, turnId: span.id)
    }

    /// A response's function calls: the tools bridge runs (in call order) and the handoffs.
    struct ResponseCalls {
        var tools: [PendingToolCall] = []
        var handoffs: [(callId: CallID, spec: HandoffSpec)] = []
        /// The first call of a tool the agent does not have (the calls after it are not sorted).
        var unknownTool: String?
    }

    /// Sorts the function calls of `output` into tools to run and handoffs.
    private func sortCalls(_ output: [ConversationItem], _ agent: AgentSpec) -> ResponseCalls {
        let handoffsByTool = Dictionary(agent.handoffs.map { ($0.toolName, $0) }, uniquingKeysWith: { a, _ in a })
        var sorted = ResponseCalls()
        for call in output.compactMap(\.functionCall) {
            if let h = handoffsByTool[call.name] {
                sorted.handoffs.append((call.callId, h))
            } else if agent.tools.contains(call.name), let tool = spec.tools[call.name], tool.isFunctionTool {
                sorted.tools.append(
                    PendingToolCall(
                        index: sorted.tools.count, callId: call.callId, name: call.name, arguments: call.arguments,
                        tool: tool, eventId: 0))
            } else if let server = mcpToolServers[call.name] {
                sorted.tools.append(
                    PendingToolCall(
                        index: sorted.tools.count, callId: call.callId, name: call.name, arguments: call.arguments,
                        tool: nil, mcpServer: server, eventId: 0))
            } else {
                sorted.unknownTool = call.name
                return sorted
            }
        }
        return sorted
    }

    /// Calls of needs_approval tools wait for a human; the others run now (re-indexed in call
    /// order). A call the journal says ran already does not wait again.
    private func holdForApproval(_ calls: [PendingToolCall], _ agent: AgentSpec) async
        -> (runNow: [PendingToolCall], waiting: [PendingApproval])
    {
        guard calls.contains(where: { $0.tool.map { !$0.needsApproval.isNever } ?? false }) else { return (calls, []) }
        var waiting: [PendingApproval] = []
        var now: [PendingToolCall] = []
        for call in calls {
            if journal?.finishedCall(call.callId) == nil, await needsApproval(call, agent: agent) {
                waiting.append(
                    PendingApproval(
                        callId: call.callId, name: call.name, arguments: call.arguments,
                        agent: agent.name))
            } else {
                now.append(call)
            }
        }
        let runNow = now.enumerated().map { i, c in
            var c = c
            c.index = i
            return c
        }
        return (runNow, waiting)
    }

    /// Runs the function tools concurrently; their outputs go into the history in call order.
    /// A durable run asked to stop does so here, before any tool starts (the response is
    /// journaled), and stops after them when the journal refused a call's record. A tool
    /// guardrail that raised (or could not decide) fails the run, as the SDK's exception does.
    private mutating func runCalls(_ calls: [PendingToolCall], _ agent: AgentSpec, span: inout TurnSpan) async
        -> TurnGoesOn<[ToolCallOutcome]>
    {
        var calls = calls
        for i in calls.indices { calls[i] = withIds(calls[i]) }
        if journal != nil, !calls.isEmpty, mustStop,
            calls.contains(where: { journal?.finishedCall($0.callId) == nil })
        {
            return .ends(.interrupted(Self.interruption))
        }
        let outcomes = await runTools(calls, parent: span.id, agent: agent)
        if journal != nil, outcomes.contains(where: { $0.fenced }) {
            return .ends(.interrupted(Self.interruption))
        }
        toolCalls += outcomes.count
        for o in outcomes {
            usage = usage + o.usage
            span.usage = span.usage + o.usage
            transcript += o.items
            guard o.failure == nil else { continue }
            appendCallOutput(o.call.callId, o.modelOutput ?? .string(o.output))
        }
        if let failure = outcomes.lazy.compactMap(\.failure).first {
            return .ends(
                .failed(
                    failure,
                    SpanErrorInfo(message: RunnerMessages.spanAgentError, data: ["error": .string(failure.message)])))
        }
        return .with(outcomes)
    }

    /// Handoffs: the first wins (a `handoff` span under the turn), the others are told they
    /// were ignored.
    private mutating func handOff(
        _ handoffCalls: [(callId: CallID, spec: HandoffSpec)], from agent: AgentSpec, turnId: EventID
    ) async -> TurnStep {
        let first = handoffCalls[0]
        appendHandoffOutputs(taken: first.callId, to: first.spec.agent, ignored: handoffCalls.dropFirst().map(\.callId))
        let handoffId = allocate()
        let start = Date()
        if handoffCalls.count > 1 {
            let requested = handoffCalls.map { JSONValue.string($0.spec.agent) }
            await emit(
                .spanError(
                    id: handoffId,
                    error: SpanErrorInfo(
                        message: RunnerMessages.spanMultipleHandoffs,
                        data: ["requested_agents": .array(requested)])))
        }
        await emit(
            .handoff(
                id: handoffId, parent: turnId, from: agent.name, to: first.spec.agent,
                startedAt: start, endedAt: Date()))
        return .handoff(first.spec.agent)
    }

    /// Appends call `callId`'s output to the history and the transcript: the
    /// `function_call_output` item the model reads back.
    mutating func appendCallOutput(_ callId: CallID, _ output: JSONValue) {
        let item = ConversationItem.callOutput(callId, output)
        history.append(item)
        transcript.append(item)
    }

    /// The outputs of a response's handoff calls: each `ignored` call is told so, then the
    /// `taken` one gets the transfer message to `agent`.
    mutating func appendHandoffOutputs(taken callId: CallID, to agent: String, ignored: [CallID]) {
        for ignoredId in ignored { appendCallOutput(ignoredId, .string(RunnerMessages.multipleHandoffsIgnored)) }
        appendCallOutput(callId, .string(RunnerMessages.transferMessage(to: agent)))
    }

    /// No tools ran: the last assistant message is the final output; without one, run again.
    /// A structured output must match its schema (else ModelBehaviorError, as in the SDK).
    private mutating func finalAnswer(_ output: [ConversationItem], _ agent: AgentSpec, turnId: EventID) async
        -> TurnStep
    {
        guard let text = Self.lastMessageText(output) else { return .again }
        if let schema = agent.outputSchema {
            switch Self.structured(text, schema) {
            case .success(let json):
                structuredOutput = json
            case .failure(let problem):
                await emit(
                    .spanError(id: turnId, error: SpanErrorInfo(message: RunnerMessages.spanInvalidJSON, data: [:])))
                return .failed(
                    RunFailure(
                        type: .modelBehaviorError,
                        message: RunnerMessages.invalidJSON(
                            text, outputType: schema.name, problem: problem.message), retriable: false), nil)
            }
        }
        return .final(text)
    }

    struct SchemaProblem: Error { var message: String }

    /// `text` parsed as JSON and checked against the output type's schema.
    static func structured(_ text: String, _ schema: OutputSchemaSpec) -> Result<JSONValue, SchemaProblem> {
        let json: JSONValue
        do { json = try JSONValue.parse(text) } catch { return .failure(SchemaProblem(message: "not JSON: \(error)")) }
        let violations = JSONSchemaValidator(schema: schema.schema).violations(of: json, limit: 5)
        if violations.isEmpty { return .success(json) }
        return .failure(SchemaProblem(message: violations.map(\.description).joined(separator: "; ")))
    }

    /// The text of the last assistant message among `items` (its `output_text` parts joined).
    static func lastMessageText(_ items: [ConversationItem]) -> String? {
        items.lazy.compactMap(\.message).last(where: \.typed)?.outputText
    }

    func runTools(_ calls: [PendingToolCall], parent: EventID, agent: AgentSpec) async -> [ToolCallOutcome] {
        guard !calls.isEmpty else { return [] }
        let context = ToolContext(spec: spec, taskRow: taskRow, agentName: agent.name)
        let state = self
        let outcomes = await withTaskGroup(of: ToolCallOutcome.self) { group in
            for call in calls {
                group.addTask {
                    await Self.runTool(call, parent: parent, context: context, state: state)
                }
            }
            var collected: [ToolCallOutcome] = []
            for await o in group { collected.append(o) }
            return collected
        }
        return outcomes.sorted { $0.call.index < $1.call.index }
    }

    /// `call` with its span id and its tool guardrails' span ids, allocated in that order.
    func withIds(_ call: PendingToolCall) -> PendingToolCall {
        var call = call
        call.eventId = allocate()
        call.guardIds = (call.tool?.allGuardrails ?? []).map { _ in allocate() }
        return call
    }

    /// Runs one call under its function span (started here): a call the journal finished is
    /// replayed, an MCP tool's call goes to its server, a bridge tool runs with its guardrails.
    static func runTool(_ call: PendingToolCall, parent: EventID, context: ToolContext, state: RunState) async
        -> ToolCallOutcome
    {
        let runner = state.runner
        let journaled = runner.journal?.finishedCall(call.callId)
        await runner.observer.record(
            .toolStarted(
                id: call.eventId, parent: parent, name: call.name,
                arguments: call.arguments, at: Date()))
        if !call.callId.text.isEmpty {
            await runner.observer.record(
                .spanNote(id: call.eventId, key: RunnerMessages.callIdKey, value: call.callId.json))
        }
        if let journaled, !journaled.raw { return await replay(journaled, call, runner: runner) }
        guard let tool = call.tool else {
            return await runMCPTool(
                call, runner: runner,
                idempotencyKey: IdempotencyKey.make(traceId: context.spec.traceId, callId: call.callId))
        }
        var context = context
        context.notes = ToolOutputNotes()
        context.callId = call.callId
        context.idempotencyKey = IdempotencyKey.make(traceId: context.spec.traceId, callId: call.callId)
        if case .sql(let sql) = tool.implementation, sql.writes {
            context.exactlyOnce = runner.journal?.exactlyOnce(callId: call.callId, toolName: call.name)
        }
        return await runBridgeTool(call, tool, journaled: journaled, context: context, state: state)
    }

    /// A bridge tool's call: its input guardrails, the tool, its output made storable, its
    /// output guardrails; then its function span ends and the call is journaled. `journaled`:
    /// a writing SQL tool's journal row, committed with its statement, replayed as its output.
    private static func runBridgeTool(
        _ call: PendingToolCall, _ tool: ToolSpec, journaled: JournaledCall?, context: ToolContext,
        state: RunState
    ) async -> ToolCallOutcome {
        let runner = state.runner
        let trimmed = call.arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        var arguments: JSONValue = [:]
        var parseError: String?
        if !trimmed.isEmpty {
            do { arguments = try JSONValue.parse(call.arguments) } catch { parseError = error.description }
        }
        // Tool guardrails (the SDK's order: after approval; inputs before the tool, outputs on its
        // output before the model sees it). Arguments that are not JSON run nothing to guard.
        var guards = GuardrailRun.ToolVerdict()
        let inputGuards = tool.inputGuardrails ?? []
        if parseError == nil, journaled == nil, !inputGuards.isEmpty {
            guards = await GuardrailRun.tool(
                inputGuards, output: nil, call: call, ids: Array(call.guardIds.prefix(inputGuards.count)),
                state: state)
            if guards.failure != nil { return await guardFailed(call, guards, runner: runner) }
        }
        var (output, spanError): (String, SpanErrorInfo?)
        if let parseError {
            output = RunnerMessages.argumentsError(parseError)
            spanError = SpanErrorInfo(
                message: RunnerMessages.spanToolError,
                data: ["tool_name": .string(call.name), "error": .string(parseError)])
        } else if let rejection = guards.rejection {
            // reject_content: the tool does not run; the model is told why.
            (output, spanError) = (rejection, nil)
        } else {
            (output, spanError) = await execute(
                call, tool, arguments: arguments, journaled: journaled, context: context, runner: runner)
        }
        output = await storable(output, call, notes: context.notes, runner: runner)
        let outputGuards = tool.outputGuardrails ?? []
        if parseError == nil, guards.rejection == nil, !outputGuards.isEmpty {
            let checked = await GuardrailRun.tool(
                outputGuards, output: output, call: call, ids: Array(call.guardIds.dropFirst(inputGuards.count)),
                state: state)
            guards.usage = guards.usage + checked.usage
            guards.items += checked.items
            guards.failure = checked.failure
            guards.spanError = checked.spanError
            if guards.failure != nil { return await guardFailed(call, guards, runner: runner) }
            if let rejection = checked.rejection { output = rejection }
        }
        await runner.observer.record(.toolEnded(id: call.eventId, output: output, error: spanError, at: Date()))
        let fenced = await journal(
            JournaledCall(
                callId: call.callId, name: call.name, output: output,
                error: spanError?.json, raw: false, guardrails: guards.items.isEmpty ? nil : guards.items),
            runner: runner)
        return ToolCallOutcome(call: call, output: output, fenced: fenced, usage: guards.usage, items: guards.items)
    }

    /// The tool's output (a writing SQL tool's journaled output, without running it again),
    /// or what the model receives when it throws, with the function span's error.
    private static func execute(
        _ call: PendingToolCall, _ tool: ToolSpec, arguments: JSONValue, journaled: JournaledCall?,
        context: ToolContext, runner: AgentRunner
    ) async -> (String, SpanErrorInfo?) {
        do {
            if let journaled { return (journaled.output, nil) }
            return (try await runner.tools.execute(tool, arguments: arguments, context: context), nil)
        } catch {
            let text = TextSafety.storable((error as? ToolFailure)?.message ?? String(describing: error)).text
            return (
                RunnerMessages.toolError(text),
                SpanErrorInfo(
                    message: RunnerMessages.spanToolErrorNonFatal,
                    data: ["tool_name": .string(call.name), "error": .string(text)])
            )
        }
    }

    /// `output` as it can be stored (no U+0000): what was replaced in it, or in the tool's own
    /// results (`notes`), is flagged on the function span.
    private static func storable(_ output: String, _ call: PendingToolCall, notes: ToolOutputNotes, runner: AgentRunner)
        async -> String
    {
        let safe = TextSafety.storable(output)
        let replaced = safe.replaced + notes.replaced
        guard !replaced.isEmpty else { return output }
        await runner.observer.record(
            .spanNote(id: call.eventId, key: RunnerMessages.textReplacedKey, value: replaced.json))
        return safe.text
    }

    /// A tool guardrail raised or could not decide: the function span ends with the error (no
    /// output), nothing is journaled (a resumed run checks again), and the run fails.
    static func guardFailed(_ call: PendingToolCall, _ v: GuardrailRun.ToolVerdict, runner: AgentRunner) async
        -> ToolCallOutcome
    {
        await runner.observer.record(.toolEnded(id: call.eventId, output: nil, error: v.spanError, at: Date()))
        return ToolCallOutcome(call: call, output: "", failure: v.failure, usage: v.usage, items: v.items)
    }

    /// Journals a finished call (with the spans ended so far); true when the lease is gone.
    static func journal(_ call: JournaledCall, runner: AgentRunner) async -> Bool {
        guard let journal = runner.journal else { return false }
        do { try await journal.callFinished(call) } catch { return true }
        return false
    }

    /// A call finished before an interruption: its span again (same id, so stored once) and its
    /// journaled output, without calling the tool.
    static func replay(_ j: JournaledCall, _ call: PendingToolCall, runner: AgentRunner) async -> ToolCallOutcome {
        if let server = j.mcpServer { await runner.observer.record(.mcpCall(id: call.eventId, server: server)) }
        await runner.observer.record(
            .toolEnded(
                id: call.eventId, output: j.spanOutput ?? j.output, error: SpanErrorInfo(json: j.error), at: Date()))
        // A guardrail's rejection is replayed as what the model received: the tool does not run.
        return ToolCallOutcome(call: call, output: j.output, modelOutput: j.modelOutput, items: j.guardrails ?? [])
    }
}
