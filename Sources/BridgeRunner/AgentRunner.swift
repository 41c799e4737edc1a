// Over 400 lines: the SDK's agent loop (turns, tool calls, handoffs, guardrails, approvals,
// tool_use_behavior) is one state machine; its steps share the run state and read in order.
import BridgeCore
import BridgeTraceModel
import BridgeMapping
import Foundation

/// A failure of a model backend. HTTP providers throw it with `retriable` set for 408, 409,
/// 429, 5xx and network errors; the runner turns it into a `RunFailure` of type `ModelError`
/// carrying the same flag.
public struct ModelProviderError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var retriable: Bool
    /// The HTTP status, when there was one.
    public var statusCode: Int?
    /// Seconds the server asked to wait (`Retry-After`), when it said.
    public var retryAfter: Double?
    /// Seconds until the provider's rate limit resets (`x-ratelimit-reset-requests` /
    /// `x-ratelimit-reset-tokens`, the later of the two), on a 429.
    public var rateLimitReset: Double?
    /// The failure type the run records (default `ModelError`), e.g. `BudgetExceeded`.
    public var failureType: FailureType?

    public init(_ message: String, retriable: Bool, statusCode: Int? = nil, retryAfter: Double? = nil,
                failureType: FailureType? = nil) {
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
public struct AgentRunner: Sendable {
    public let model: any ModelProvider
    public let tools: any ToolExecutor
    public let observer: any RunObserver
    /// Where agents with `mcp_servers` find those servers' tools (nil: no MCP servers).
    public let mcp: (any MCPToolSource)?

    public init(model: any ModelProvider, tools: any ToolExecutor, observer: any RunObserver,
                mcp: (any MCPToolSource)? = nil) {
        self.model = model
        self.tools = tools
        self.observer = observer
        self.mcp = mcp
    }

    /// The function tools an agent offers the model: its bridge function tools in declaration
    /// order, then one tool per handoff.
    public static func functionTools(for agent: AgentSpec, in spec: RunSpec) -> [FunctionToolDefinition] {
        var out: [FunctionToolDefinition] = []
        for name in agent.tools {
            guard let tool = spec.tools[name], tool.isFunctionTool else { continue }
            out.append(FunctionToolDefinition(name: tool.name, description: tool.description,
                                              parameters: tool.parameters, strict: tool.strict))
        }
        for h in agent.handoffs {
            out.append(FunctionToolDefinition(name: h.toolName, description: h.toolDescription,
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

    public func run(_ spec: RunSpec, taskRow: [String: JSONValue]) async -> RunResult {
        var run = RunState(spec: spec, taskRow: taskRow, runner: self)
        return await run.execute()
    }
}

/// One function call of a response that bridge executes.
struct PendingToolCall: Sendable {
    var index: Int
    var callId: String
    var name: String
    var arguments: String
    /// The bridge tool, or nil for an MCP tool (then `mcpServer` names its server).
    var tool: ToolSpec?
    var mcpServer: String? = nil
    var eventId: EventID
}

struct ToolCallOutcome: Sendable {
    var index: Int
    var callId: String
    var name: String
    var output: String
    /// What the model receives when it is not `output` itself (MCP content parts).
    var modelOutput: JSONValue? = nil
}

/// Allocates event ids for a run and the guardrail agents' runs nested in it (which run
/// concurrently with the model call, so the counter is shared and locked).
final class EventCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: EventID = 0
    init(start: EventID = 0) { value = start }
    var current: EventID { lock.withLock { value } }
    func next() -> EventID {
        lock.withLock {
            value += 1
            return value
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

    init(spec: RunSpec, taskRow: [String: JSONValue], runner: AgentRunner, ids: EventCounter = EventCounter(),
         input: String? = nil, depth: Int = 0) {
        self.spec = spec
        self.taskRow = taskRow
        self.runner = runner
        self.ids = ids
        self.depth = depth
        self.history = [["role": "user", "content": .string(input ?? spec.input)]]
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
    }

    mutating func execute() async -> RunResult {
        let taskId = allocate()
        await emit(.taskStarted(id: taskId, at: Date()))
        let (outcome, agentName) = await runAgents(from: spec.startingAgent, parent: taskId)
        return await finish(outcome, agentName: agentName, taskId: taskId)
    }

    /// Ends the task span (unless the run paused) and builds the result.
    mutating func finish(_ outcome: StintEnd, agentName: String, taskId: EventID) async -> RunResult {
        if case .paused(let agentId, let pending, let deferred) = outcome {
            let paused = PausedRun(history: history, transcript: transcript, usage: usage, turn: turn, toolCalls: toolCalls,
                                   agent: agentName, taskEventId: taskId, agentEventId: agentId, nextEventId: ids.current,
                                   pending: pending, deferredHandoffs: deferred, pausedAt: Date())
            return RunResult(status: .paused, finalOutput: nil, lastAgent: agentName, usage: usage, transcript: transcript,
                             error: nil, turns: turn, toolCalls: toolCalls, paused: paused)
        }
        await emit(.taskEnded(id: taskId, usage: usage, error: nil, at: Date()))
        switch outcome {
        case .final(let text):
            return RunResult(status: .completed, finalOutput: text, lastAgent: agentName, usage: usage,
                             transcript: transcript, error: nil, turns: turn, toolCalls: toolCalls,
                             finalOutputJSON: structuredOutput)
        case .failed(let failure):
            return RunResult(status: .failed, finalOutput: nil, lastAgent: agentName, usage: usage,
                             transcript: transcript, error: failure, turns: min(turn, spec.maxTurns), toolCalls: toolCalls)
        case .handoff, .paused:
            fatalError("unreachable: handoffs continue the loop, pauses returned above")
        }
    }

    /// Runs stints from agent `start`, following handoffs, until a final output or a failure.
    mutating func runAgents(from start: String, parent: EventID, openAgentId: EventID? = nil) async -> (StintEnd, String) {
        var agentName = start
        var openAgentId = openAgentId
        while true {
            guard let agent = spec.agents[agentName] else {
                return (.failed(RunFailure(type: .userError, message: "Agent \(agentName) not found in the run spec",
                                           retriable: false)), agentName)
            }
            let outcome = await runStint(agent, parent: parent, agentId: openAgentId)
            openAgentId = nil
            if case .handoff(let next) = outcome {
                agentName = next
                continue
            }
            return (outcome, agentName)
        }
    }

    /// Runs turns for one agent until it produces a final output, hands off, or fails.
    mutating func runStint(_ agent: AgentSpec, parent: EventID, agentId openId: EventID? = nil) async -> StintEnd {
        let agentId = openId ?? allocate()
        let agentStart = Date()
        var functionTools = AgentRunner.functionTools(for: agent, in: spec)
        let hostedTools = AgentRunner.hostedTools(for: agent, in: spec)
        // MCP tools are listed when the stint starts, and again when a paused stint resumes
        // (its agent span is already open).
        let mcp = await listMCPTools(agent, parent: agentId, taken: Set(functionTools.map(\.name)))
        functionTools += mcp.tools
        if openId == nil {
            await emit(.agentStarted(id: agentId, parent: parent, agent: agent.name, tools: agent.tools + mcp.tools.map(\.name),
                                     handoffs: agent.handoffs.map(\.agent), outputType: agent.outputType, at: agentStart))
        }
        for event in mcp.events { await emit(event) }
        if let failure = mcp.failure {
            await emit(.agentEnded(id: agentId, error: SpanErrorInfo(message: RunnerMessages.spanAgentError,
                                                                      data: ["error": .string(failure.message)]), at: Date()))
            return .failed(failure)
        }
        while true {
            // A cancelled run (its lease was lost, or shutdown) stops before the next turn.
            if Task.isCancelled {
                let error = SpanErrorInfo(message: RunnerMessages.spanAgentError, data: ["error": "cancelled"])
                await emit(.agentEnded(id: agentId, error: error, at: Date()))
                return .failed(RunFailure(type: .cancelled, message: "the run was cancelled", retriable: true))
            }
            turn += 1
            if turn > spec.maxTurns {
                let agentError = SpanErrorInfo(message: RunnerMessages.spanMaxTurns, data: ["max_turns": .number(Double(spec.maxTurns))])
                await emit(.agentEnded(id: agentId, error: agentError, at: Date()))
                return .failed(RunFailure(type: .maxTurnsExceeded, message: "Max turns (\(spec.maxTurns)) exceeded",
                                          retriable: false))
            }
            let step = await runTurn(agent, parent: agentId, functionTools: functionTools, hostedTools: hostedTools)
            switch step {
            case .again:
                continue
            case .final(let text):
                let guards = agent.outputGuardrails.compactMap { spec.guardrails[$0] }
                if !guards.isEmpty {
                    let verdict = await GuardrailRun.all(guards, input: spec.input, output: text, parent: agentId,
                                                         state: self, kind: .output)
                    usage = usage + verdict.usage
                    transcript += verdict.items
                    if let failure = verdict.failure {
                        await emit(.agentEnded(id: agentId, error: verdict.spanError, at: Date()))
                        return .failed(failure)
                    }
                }
                await emit(.agentEnded(id: agentId, error: nil, at: Date()))
                return .final(text)
            case .handoff(let to):
                await emit(.agentEnded(id: agentId, error: nil, at: Date()))
                return .handoff(to: to)
            case .paused(let pending, let deferred):
                return .paused(agentId: agentId, pending: pending, deferredHandoffs: deferred)
            case .failed(let failure, let spanError):
                await emit(.agentEnded(id: agentId, error: spanError, at: Date()))
                return .failed(failure)
            }
        }
    }

    enum TurnStep {
        case again
        case final(String)
        case handoff(String)
        /// The failure and the error for the agent span (nil when the SDK records none there).
        case failed(RunFailure, SpanErrorInfo?)
        /// Calls wait for a human decision (and handoffs requested beside them wait too).
        case paused([PendingApproval], [PendingApproval])
    }

    mutating func runTurn(_ agent: AgentSpec, parent agentId: EventID, functionTools: [FunctionToolDefinition],
                          hostedTools: [HostedToolSpec]) async -> TurnStep {
        let turnId = allocate()
        await emit(.turnStarted(id: turnId, parent: agentId, turn: turn, agent: agent.name, at: Date()))
        var turnUsage = Usage()

        // Sequential input guardrails (run_in_parallel: false) run before the model call.
        let firstTurnGuards = turn == 1 ? agent.inputGuardrails.compactMap { spec.guardrails[$0] } : []
        let sequential = firstTurnGuards.filter { !$0.runInParallel }
        if !sequential.isEmpty {
            let verdict = await GuardrailRun.all(sequential, input: spec.input, output: nil, parent: turnId, state: self,
                                                 kind: .input)
            usage = usage + verdict.usage
            turnUsage = turnUsage + verdict.usage
            transcript += verdict.items
            if let failure = verdict.failure {
                if let e = verdict.spanError { await emit(.spanError(id: turnId, error: e)) }
                await emit(.turnEnded(id: turnId, usage: turnUsage, error: nil, at: Date()))
                return .failed(failure, nil)
            }
        }

        // The model call.
        let modelId = allocate()
        let request = ModelRequest(agent: agent, input: history, functionTools: functionTools,
                                   hostedTools: hostedTools, turn: turn, traceId: spec.traceId)
        await emit(.modelStarted(id: modelId, parent: turnId, kind: runner.model.spanKind(for: agent), model: agent.model,
                                 input: runner.model.spanInput(for: request), at: Date()))
        var response: ModelResponse
        let inputGuards = firstTurnGuards.filter(\.runInParallel)
        do {
            if inputGuards.isEmpty {
                response = try await runner.model.respond(request)
            } else {
                let (answer, verdict) = await GuardrailRun.alongside(request, guards: inputGuards, parent: turnId, state: self)
                usage = usage + verdict.usage
                turnUsage = turnUsage + verdict.usage
                transcript += verdict.items
                if let failure = verdict.failure {
                    // The tripwire cancelled the model call (its span ends without a response).
                    await emit(.modelEnded(id: modelId, response: try? answer?.get(), error: nil, at: Date()))
                    if let e = verdict.spanError { await emit(.spanError(id: turnId, error: e)) }
                    await emit(.turnEnded(id: turnId, usage: turnUsage, error: nil, at: Date()))
                    return .failed(failure, nil)
                }
                guard let answer else { throw CancellationError() }
                response = try answer.get()
            }
        } catch {
            let text = TextSafety.storable(String(describing: error)).text
            await emit(.modelEnded(id: modelId, response: nil,
                                   error: SpanErrorInfo(message: RunnerMessages.spanModelError, data: ["error": .string(text)]),
                                   at: Date()))
            await emit(.turnEnded(id: turnId, usage: turnUsage, error: nil, at: Date()))
            let providerError = error as? ModelProviderError
            let retriable = providerError?.retriable ?? (error is CancellationError)
            return .failed(RunFailure(type: error is CancellationError ? .cancelled : providerError?.failureType ?? .modelError, message: text,
                                      retriable: retriable, retryAfter: providerError?.retryAfter),
                           SpanErrorInfo(message: RunnerMessages.spanAgentError, data: ["error": .string(text)]))
        }
        // U+0000 cannot be stored (text, jsonb): replaced, flagged on the span, and the run goes on.
        let (safeOutput, replaced) = TextSafety.storable(JSONValue.array(response.output))
        if !replaced.isEmpty {
            response.output = safeOutput.arrayValue ?? []
            response.spanOutput = response.spanOutput.map { TextSafety.storable(JSONValue.array($0)).value.arrayValue ?? [] }
            await emit(.spanNote(id: modelId, key: RunnerMessages.textReplacedKey, value: replaced.json))
        }
        await emit(.modelEnded(id: modelId, response: response, error: nil, at: Date()))
        turnUsage = turnUsage + response.usage
        usage = usage + response.usage
        history += response.output
        transcript += response.output

        // Sort the function calls into tools to run and handoffs.
        let handoffsByTool = Dictionary(agent.handoffs.map { ($0.toolName, $0) }, uniquingKeysWith: { a, _ in a })
        var calls: [PendingToolCall] = []
        var handoffCalls: [(callId: String, spec: HandoffSpec)] = []
        for item in response.output where item["type"]?.stringValue == "function_call" {
            let name = item["name"]?.stringValue ?? ""
            let callId = item["call_id"]?.stringValue ?? ""
            let arguments = item["arguments"]?.stringValue ?? ""
            if let h = handoffsByTool[name] {
                handoffCalls.append((callId, h))
            } else if agent.tools.contains(name), let tool = spec.tools[name], tool.isFunctionTool {
                calls.append(PendingToolCall(index: calls.count, callId: callId, name: name, arguments: arguments,
                                             tool: tool, eventId: 0))
            } else if let server = mcpToolServers[name] {
                calls.append(PendingToolCall(index: calls.count, callId: callId, name: name, arguments: arguments,
                                             tool: nil, mcpServer: server, eventId: 0))
            } else {
                await emit(.spanError(id: turnId, error: SpanErrorInfo(message: RunnerMessages.spanToolNotFound,
                                                                       data: ["tool_name": .string(name)])))
                await emit(.turnEnded(id: turnId, usage: turnUsage, error: nil, at: Date()))
                return .failed(RunFailure(type: .modelBehaviorError, message: "Tool \(name) not found in agent \(agent.name)",
                                          retriable: false), nil)
            }
        }

        // Calls of needs_approval tools wait for a human; the others run now.
        var waiting: [PendingApproval] = []
        if calls.contains(where: { $0.tool.map { !$0.needsApproval.isNever } ?? false }) {
            var now: [PendingToolCall] = []
            for call in calls {
                if await needsApproval(call, agent: agent) {
                    waiting.append(PendingApproval(callId: call.callId, name: call.name, arguments: call.arguments,
                                                   agent: agent.name))
                } else {
                    now.append(call)
                }
            }
            calls = now.enumerated().map { i, c in var c = c; c.index = i; return c }
        }

        // Run the function tools concurrently; outputs go back in call order.
        for i in calls.indices { calls[i].eventId = allocate() }
        let outcomes = await runTools(calls, parent: turnId, agent: agent)
        toolCalls += outcomes.count
        for o in outcomes {
            let item: ConversationItem = ["type": "function_call_output", "call_id": .string(o.callId),
                                          "output": o.modelOutput ?? .string(o.output)]
            history.append(item)
            transcript.append(item)
        }
        if !waiting.isEmpty {
            await emit(.turnEnded(id: turnId, usage: turnUsage, error: nil, at: Date()))
            let deferred = handoffCalls.map { PendingApproval(callId: $0.callId, name: $0.spec.toolName, arguments: "{}",
                                                              agent: $0.spec.agent) }
            return .paused(waiting, deferred)
        }

        // Handoffs: the first wins, the others are told they were ignored.
        if let first = handoffCalls.first {
            for ignored in handoffCalls.dropFirst() {
                let item: ConversationItem = ["type": "function_call_output", "call_id": .string(ignored.callId),
                                              "output": .string(RunnerMessages.multipleHandoffsIgnored)]
                history.append(item)
                transcript.append(item)
            }
            let handoffId = allocate()
            let start = Date()
            if handoffCalls.count > 1 {
                let requested = handoffCalls.map { JSONValue.string($0.spec.agent) }
                await emit(.spanError(id: handoffId, error: SpanErrorInfo(message: RunnerMessages.spanMultipleHandoffs,
                                                                          data: ["requested_agents": .array(requested)])))
            }
            let item: ConversationItem = ["type": "function_call_output", "call_id": .string(first.callId),
                                          "output": .string(RunnerMessages.transferMessage(to: first.spec.agent))]
            history.append(item)
            transcript.append(item)
            await emit(.handoff(id: handoffId, parent: turnId, from: agent.name, to: first.spec.agent,
                                startedAt: start, endedAt: Date()))
            await emit(.turnEnded(id: turnId, usage: turnUsage, error: nil, at: Date()))
            return .handoff(first.spec.agent)
        }

        // Tools ran: tool_use_behavior decides whether their output is final.
        if !outcomes.isEmpty {
            await emit(.turnEnded(id: turnId, usage: turnUsage, error: nil, at: Date()))
            switch agent.toolUseBehavior {
            case .runLLMAgain:
                return .again
            case .stopOnFirstTool:
                return .final(outcomes[0].output)
            case .stopAtToolNames(let names):
                if let hit = outcomes.first(where: { names.contains($0.name) }) { return .final(hit.output) }
                return .again
            }
        }

        // No tools: the last assistant message is the final output; without one, run again.
        // A structured output must match its schema (else ModelBehaviorError, as in the SDK).
        if let text = Self.lastMessageText(response.output), let schema = agent.outputSchema {
            switch Self.structured(text, schema) {
            case .success(let json):
                structuredOutput = json
            case .failure(let problem):
                await emit(.spanError(id: turnId, error: SpanErrorInfo(message: RunnerMessages.spanInvalidJSON, data: [:])))
                await emit(.turnEnded(id: turnId, usage: turnUsage, error: nil, at: Date()))
                return .failed(RunFailure(type: .modelBehaviorError, message: RunnerMessages.invalidJSON(
                    text, outputType: schema.name, problem: problem.message), retriable: false), nil)
            }
        }
        await emit(.turnEnded(id: turnId, usage: turnUsage, error: nil, at: Date()))
        if let text = Self.lastMessageText(response.output) { return .final(text) }
        return .again
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
        guard let message = items.last(where: { $0["type"]?.stringValue == "message" }) else { return nil }
        if let s = message["content"]?.stringValue { return s }
        let parts = (message["content"]?.arrayValue ?? []).compactMap { part -> String? in
            part["type"]?.stringValue == "output_text" ? part["text"]?.stringValue : nil
        }
        return parts.joined()
    }

    func runTools(_ calls: [PendingToolCall], parent: EventID, agent: AgentSpec) async -> [ToolCallOutcome] {
        guard !calls.isEmpty else { return [] }
        let context = ToolContext(spec: spec, taskRow: taskRow, agentName: agent.name)
        let runner = self.runner
        let outcomes = await withTaskGroup(of: ToolCallOutcome.self) { group in
            for call in calls {
                group.addTask {
                    await Self.runTool(call, parent: parent, context: context, runner: runner)
                }
            }
            var collected: [ToolCallOutcome] = []
            for await o in group { collected.append(o) }
            return collected
        }
        return outcomes.sorted { $0.index < $1.index }
    }

    static func runTool(_ call: PendingToolCall, parent: EventID, context: ToolContext, runner: AgentRunner) async -> ToolCallOutcome {
        await runner.observer.record(.toolStarted(id: call.eventId, parent: parent, name: call.name,
                                                  arguments: call.arguments, at: Date()))
        if !call.callId.isEmpty {
            await runner.observer.record(.spanNote(id: call.eventId, key: RunnerMessages.callIdKey, value: .string(call.callId)))
        }
        guard let tool = call.tool else { return await runMCPTool(call, runner: runner) }
        var output: String
        var spanError: SpanErrorInfo?
        var context = context
        context.notes = ToolOutputNotes()
        let trimmed = call.arguments.trimmingCharacters(in: .whitespacesAndNewlines)
        var arguments: JSONValue = [:]
        var parseError: String?
        if !trimmed.isEmpty {
            do { arguments = try JSONValue.parse(call.arguments) } catch { parseError = error.description }
        }
        if let parseError {
            output = RunnerMessages.argumentsError(parseError)
            spanError = SpanErrorInfo(message: RunnerMessages.spanToolError,
                                      data: ["tool_name": .string(call.name), "error": .string(parseError)])
        } else {
            do {
                output = try await runner.tools.execute(tool, arguments: arguments, context: context)
            } catch {
                let text = TextSafety.storable((error as? ToolFailure)?.message ?? String(describing: error)).text
                output = RunnerMessages.toolError(text)
                spanError = SpanErrorInfo(message: RunnerMessages.spanToolErrorNonFatal,
                                          data: ["tool_name": .string(call.name), "error": .string(text)])
            }
        }
        let safe = TextSafety.storable(output)
        let replaced = safe.replaced + context.notes.replaced
        if !replaced.isEmpty {
            output = safe.text
            await runner.observer.record(.spanNote(id: call.eventId, key: RunnerMessages.textReplacedKey, value: replaced.json))
        }
        await runner.observer.record(.toolEnded(id: call.eventId, output: output, error: spanError, at: Date()))
        return ToolCallOutcome(index: call.index, callId: call.callId, name: call.name, output: output)
    }
}
