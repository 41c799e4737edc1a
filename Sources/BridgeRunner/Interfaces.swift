import BridgeCore
import BridgeMapping
import BridgeTraceModel
import Foundation
import Synchronization

// The runner's contracts. The runner executes a `RunSpec` with a `ModelProvider` and a
// `ToolExecutor`, and reports what happens as `RunEvent`s to a `RunObserver`; the tracing
// layer (above) turns those events into spans in the Agents SDK's format.

/// A function tool as offered to the model (bridge tools and handoff tools alike).
public struct FunctionToolDefinition: Sendable, Equatable {
    public var name: String
    public var description: String
    public var parameters: JSONValue
    public var strict: Bool
}

/// What the runner asks the model for one turn.
public struct ModelRequest: Sendable {
    public var agent: AgentSpec
    /// The full history so far (the next agent after a handoff receives all of it).
    public var input: [ConversationItem]
    /// Function tools: the agent's bridge tools plus one per handoff.
    public var functionTools: [FunctionToolDefinition]
    /// Hosted tools the provider passes through (`web_search`, …).
    public var hostedTools: [HostedToolSpec]
    /// The turn number across the run (1-based).
    public var turn: Int
    /// The run's trace id (`trace_<32 hex>`); empty when unknown. Providers may use it to
    /// derive deterministic ids (the offline model does).
    public var traceId: TraceID = ""

    public init(
        agent: AgentSpec, input: [ConversationItem], functionTools: [FunctionToolDefinition],
        hostedTools: [HostedToolSpec], turn: Int
    ) {
        self.agent = agent
        self.input = input
        self.functionTools = functionTools
        self.hostedTools = hostedTools
        self.turn = turn
    }

    public init(
        agent: AgentSpec, input: [ConversationItem], functionTools: [FunctionToolDefinition],
        hostedTools: [HostedToolSpec], turn: Int, traceId: TraceID
    ) {
        self.init(agent: agent, input: input, functionTools: functionTools, hostedTools: hostedTools, turn: turn)
        self.traceId = traceId
    }
}

/// Token usage in the Responses API's shape.
@MemberwiseInit
public struct Usage: Sendable, Equatable, Codable {
    public var requests: Int = 0
    public var inputTokens: Int = 0
    public var outputTokens: Int = 0
    public var cachedTokens: Int = 0
    public var reasoningTokens: Int = 0

    public var totalTokens: Int { inputTokens + outputTokens }

    public static func + (a: Usage, b: Usage) -> Usage {
        Usage(
            requests: a.requests + b.requests, inputTokens: a.inputTokens + b.inputTokens,
            outputTokens: a.outputTokens + b.outputTokens, cachedTokens: a.cachedTokens + b.cachedTokens,
            reasoningTokens: a.reasoningTokens + b.reasoningTokens)
    }

    /// `{"requests","input_tokens","output_tokens","total_tokens","input_tokens_details":{"cached_tokens"},"output_tokens_details":{"reasoning_tokens"}}`
    public var json: JSONValue { json(room: 0) }

    /// `json` with room for `room` more keys (an execution row's cost fields, `CostTally.note`):
    /// a dictionary literal has room for its own entries only, and grows at the next.
    public func json(room: Int) -> JSONValue {
        let fields: KeyValuePairs<String, JSONValue> = [
            "requests": .number(Double(requests)),
            "input_tokens": .number(Double(inputTokens)),
            "output_tokens": .number(Double(outputTokens)),
            "total_tokens": .number(Double(totalTokens)),
            "input_tokens_details": ["cached_tokens": .number(Double(cachedTokens))],
            "output_tokens_details": ["reasoning_tokens": .number(Double(reasoningTokens))],
        ]
        var o = [String: JSONValue](minimumCapacity: fields.count + room)
        for (k, v) in fields { o[k] = v }
        return .object(o)
    }
}

/// The model's answer for one turn.
@MemberwiseInit
public struct ModelResponse: Sendable {
    /// Output items (messages, function_call items, hosted tool calls).
    public var output: [ConversationItem]
    public var usage: Usage
    /// The Responses API response id (nil for chat-style and offline calls).
    public var responseId: String? = nil
    /// The model that answered.
    public var model: String
    /// What a `generation` span records as its output when that differs from `output`:
    /// the Chat Completions provider puts the raw assistant message here (as the SDK's chat
    /// path does), while `output` holds the same answer as Responses-API items for the runner.
    /// Nil: the span records `output`.
    public var spanOutput: [JSONValue]? = nil
    /// What the call cost (`MeteredModel` sets it from `pricing`; nil: not priced at all).
    public var cost: ModelCost? = nil
    /// For a streamed call: from sending the request (its last attempt) to the first event
    /// carrying output. Nil when the call did not stream.
    public var timeToFirstToken: Duration? = nil
}

/// The kind of span a model call becomes: `response` (Responses API) or `generation`
/// (chat-style and offline calls, with input and output messages).
public enum ModelSpanKind: String, Sendable { case response, generation }

/// A model backend (offline, Responses API, Chat Completions, or a router choosing one per agent).
public protocol ModelProvider: Sendable {
    /// How its calls appear in traces.
    var spanKind: ModelSpanKind { get }
    func respond(_ request: ModelRequest) async throws -> ModelResponse
    /// How calls for `agent` appear in traces. Default: `spanKind`. A router that sends
    /// different agents to different APIs answers per agent.
    func spanKind(for agent: AgentSpec) -> ModelSpanKind
    /// The input a `generation` span records for `request`. Default: a system message with the
    /// agent's instructions followed by the history items. The Chat Completions provider
    /// returns the chat messages it sends.
    func spanInput(for request: ModelRequest) -> [JSONValue]
}

extension ModelProvider {
    public func spanKind(for agent: AgentSpec) -> ModelSpanKind { spanKind }

    public func spanInput(for request: ModelRequest) -> [JSONValue] {
        [ConversationItem.input(role: "system", request.agent.instructions).json] + request.input.map(\.json)
    }
}

/// Per-run facts a tool may need (the SQL tool binds `:task.column` from `taskRow`).
@MemberwiseInit
public struct ToolContext: Sendable {
    public var spec: RunSpec
    /// The task row's columns as JSON values.
    public var taskRow: [String: JSONValue]
    public var agentName: String
    /// Where an executor reports what it replaced to make its output text (invalid UTF-8);
    /// the runner flags it on the function span. One per tool call.
    public internal(set) var notes: ToolOutputNotes = ToolOutputNotes()
    /// The call's id (empty outside a call).
    public internal(set) var callId: CallID = ""
    /// The call's stable idempotency key (`IdempotencyKey`): the same on every attempt of the
    /// call. http tools send it as `Idempotency-Key`, command tools get it in
    /// `BRIDGE_IDEMPOTENCY_KEY`.
    public internal(set) var idempotencyKey: String = ""
    /// For a writing SQL tool of a durable run: what its transaction also runs (the lease check
    /// and the call's journal row), so the statement is done exactly once.
    public internal(set) var exactlyOnce: ExactlyOnceWrite? = nil
}

/// What an executor replaced in one tool call's output (see `TextSafety`).
public final class ToolOutputNotes: Sendable {
    private let total = Mutex(TextSafety.Replacements())

    public init() {}

    public func add(_ r: TextSafety.Replacements) { total.withLock { $0 = $0 + r } }

    public var replaced: TextSafety.Replacements { total.withLock { $0 } }
}

/// A tool failure whose message goes back to the model (in the SDK's wording) and into the
/// function span's `error`.
public struct ToolFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var data: JSONValue?
    public init(_ message: String, data: JSONValue? = nil) {
        self.message = message
        self.data = data
    }
    public var description: String { message }
}

/// Runs function tools (sql, http, command).
public protocol ToolExecutor: Sendable {
    /// Returns the tool's output as a string, or throws `ToolFailure`.
    func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String
}

/// Identifies one span-to-be within a run. Allocated by the runner, unique within the run.
public typealias EventID = Int

/// An error attached to a span, as the SDK records it: `{message, data}`.
/// A span's error (the trace model's `SpanError`: the SDK's wording and redaction).
public typealias SpanErrorInfo = SpanError

/// What happened during a run, in order. Every `…Started` has a matching `…Ended` with the
/// same id, also when the run fails. `parent` is the enclosing event's id (nil for the task).
public enum RunEvent: Sendable {
    case taskStarted(id: EventID, at: Date)
    case taskEnded(id: EventID, usage: Usage, error: SpanErrorInfo?, at: Date)
    case agentStarted(
        id: EventID, parent: EventID, agent: String, tools: [String], handoffs: [String], outputType: String, at: Date)
    case agentEnded(id: EventID, error: SpanErrorInfo?, at: Date)
    case turnStarted(id: EventID, parent: EventID, turn: Int, agent: String, at: Date)
    case turnEnded(id: EventID, usage: Usage, error: SpanErrorInfo?, at: Date)
    /// `input`: what a `generation` span records (`ModelProvider.spanInput`); empty for a
    /// `response` span, which records none.
    case modelStarted(
        id: EventID, parent: EventID, kind: ModelSpanKind, model: String, input: [JSONValue], at: Date)
    case modelEnded(id: EventID, response: ModelResponse?, error: SpanErrorInfo?, at: Date)
    case toolStarted(id: EventID, parent: EventID, name: String, arguments: String, at: Date)
    case toolEnded(id: EventID, output: String?, error: SpanErrorInfo?, at: Date)
    /// A handoff is instantaneous: one event carries both times.
    case handoff(id: EventID, parent: EventID, from: String, to: String, startedAt: Date, endedAt: Date)
    /// A guardrail span (`{type: guardrail, name, triggered}`), under the turn span for input
    /// guardrails and under the agent span for output guardrails, as in the SDK.
    case guardrailStarted(id: EventID, parent: EventID, name: String, at: Date)
    case guardrailEnded(id: EventID, triggered: Bool, error: SpanErrorInfo?, at: Date)
    /// The wait for a human decision on a call (a custom `approval` span from the pause to the
    /// decision's pick-up, under the agent span).
    case approvalWait(id: EventID, parent: EventID, decision: ApprovalDecision, startedAt: Date, endedAt: Date)
    /// Attaches an error to span `id` before it ends (for a handoff: before its `.handoff` event),
    /// as the SDK does for "Multiple handoffs requested" on the handoff span and "Tool not found"
    /// on the turn span. A later error for the same span replaces an earlier one.
    case spanError(id: EventID, error: SpanErrorInfo)
    /// Adds `key` to the data of open span `id`: `text_replaced` (`{"nul": n, "invalid_utf8":
    /// true}`) when model or tool text had to be made storable (`TextSafety`).
    case spanNote(id: EventID, key: String, value: JSONValue)
    /// An MCP server's tools were listed for an agent (the SDK's `mcp_tools` span, under the
    /// agent span): the tool names after the server's filter, or nil when listing failed.
    case mcpToolsListed(
        id: EventID, parent: EventID, server: String, tools: [String]?, error: SpanErrorInfo?,
        startedAt: Date, endedAt: Date)
    /// Marks function span `id` (already started) as a call to MCP server `server`: its
    /// `mcp_data` becomes `{"server": server}`.
    case mcpCall(id: EventID, server: String)
    /// A durable run resumed on a worker (a custom `resume` span under the task span, from the
    /// last journaled step before the interruption to the resumption): `data` names the old and
    /// new worker and the lost time.
    case resumed(id: EventID, parent: EventID, data: [String: JSONValue], startedAt: Date, endedAt: Date)
}

/// Receives events as they happen (the tracing layer records each span as it ends).
public protocol RunObserver: Sendable {
    func record(_ event: RunEvent) async
}

/// How a run ended.
public struct RunResult: Sendable {
    public enum Status: String, Sendable { case completed, failed, paused }
    public var status: Status
    /// The final output text (for completed runs).
    public var finalOutput: String?
    /// The agent that produced the final output, or was running when the run failed.
    public var lastAgent: String
    public var usage: Usage
    /// Every model output item and tool output of the run, in order (the transcript that
    /// `verify` reconciles against spans).
    public var transcript: [ConversationItem]
    public var error: RunFailure?
    public var turns: Int
    public var toolCalls: Int
    /// The final output as JSON when the last agent has an `output_type` (validated against it).
    public var finalOutputJSON: JSONValue?
    /// For a paused run: everything needed to resume it.
    public var paused: PausedRun?
    /// For a completed run: its conversation items after the session's history (its input,
    /// the model's outputs, tool calls and their results), what a session appends.
    public var newItems: [ConversationItem] = []
}

/// Why a run failed. `retriable` decides `failed_retriable` vs `failed_terminal`.
@MemberwiseInit
public struct RunFailure: Error, Sendable, CustomStringConvertible {
    /// What kind of failure (`error_type`).
    public var type: FailureType
    public var message: String
    public var retriable: Bool
    /// How long the model asked to wait before trying again (HTTP `Retry-After`), if it did.
    public var retryAfter: Duration? = nil
    /// A tripped guardrail's `output_info`.
    public var outputInfo: JSONValue? = nil
    public var description: String { "\(type): \(message)" }
}
