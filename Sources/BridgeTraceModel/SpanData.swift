import BridgeCore
import FoundationEssentials

/// The SDK's span types: the `type` of a span's `span_data`. Readers switch on
/// `SpanKind(rawValue:)` (or `SpanRecord.kind`); a type not listed here (a newer SDK's) reads as
/// nil, and such spans are kept and shown as they are, never dropped.
@SnakeCaseRawValues
public enum SpanKind: Sendable, Hashable, CaseIterable {
    case agent, function, generation, response, handoff, guardrail, custom
    case mcpTools
    case transcription, speech
    case speechGroup
}

/// The SDK's `span_data` of every span bridge writes, typed: the one place that knows the JSON
/// shape of each span type (`{"type": "function", "name": …}`), the SDK's error wording and
/// its redaction rules. `TraceRecorder` (live runs) and the backfill (historical runs) build
/// their spans from it; exporters, verify and `trace show` read what it wrote.
public enum SpanData: Sendable, Equatable {
    /// The run's root: a custom span with `sdk_span_type` `task` (the workflow name).
    case task(name: String, usage: JSONValue? = nil, backfilled: Bool = false)
    case agent(name: String, handoffs: [String], tools: [String], outputType: String)
    /// One model round trip of an agent: a custom span with `sdk_span_type` `turn`.
    case turn(turn: Int, agentName: String, usage: JSONValue? = nil)
    /// A Chat Completions call.
    case generation(Generation)
    /// A Responses API call.
    case response(responseId: String?, usage: JSONValue?)
    /// A tool call (`mcpServer` set for an MCP tool).
    case function(Function)
    case handoff(from: String, to: String)
    case guardrail(name: String, triggered: Bool)
    /// An MCP server's tool list.
    case mcpTools(server: String, result: [String]?)
    /// A wait for a human decision: a custom span named `approval`.
    case approval(Approval)
    /// Any other custom span.
    case custom(name: String, data: [String: JSONValue])
    /// A span of a type bridge does not write (read back from elsewhere), kept as it is.
    case other([String: JSONValue])

    @MemberwiseInit
    public struct Generation: Sendable, Equatable {
        public var input: [JSONValue]?
        public var output: [JSONValue]? = nil
        public var model: String
        public var modelConfig: JSONValue
        public var usage: JSONValue? = nil
    }

    @MemberwiseInit
    public struct Function: Sendable, Equatable {
        public var name: String
        public var input: String?
        public var output: String? = nil
        public var mcpServer: String? = nil
    }

    public struct Approval: Sendable, Equatable {
        public var toolName: String
        public var callId: CallID
        public var requestId: String
        public var decision: String
        public var decidedBy: String?
        public var waitedSeconds: Double
        /// The reviewer's message on a rejection (sensitive data).
        public var message: String?
    }

    /// The span of a wait for a human decision on one call, from `start` to `end` (the wait is
    /// recorded to the millisecond).
    public static func approvalWait(
        toolName: String, callId: CallID, requestId: String, decision: String,
        decidedBy: String?, message: String?, from start: Date, to end: Date
    ) -> SpanData {
        .approval(
            Approval(
                toolName: toolName, callId: callId, requestId: requestId, decision: decision, decidedBy: decidedBy,
                waitedSeconds: (end.timeIntervalSince(start) * 1000).rounded() / 1000, message: message))
    }

    /// The span's type (`custom` for task, turn and approval spans); nil for a span of a type
    /// the SDK's list does not have.
    public var kind: SpanKind? {
        switch self {
        case .task, .turn, .approval, .custom: .custom
        case .agent: .agent
        case .generation: .generation
        case .response: .response
        case .function: .function
        case .handoff: .handoff
        case .guardrail: .guardrail
        case .mcpTools: .mcpTools
        case .other(let o): o["type"]?.stringValue.flatMap(SpanKind.init(rawValue:))
        }
    }

    /// The span's `type` as written in `span_data`.
    public var type: String {
        // Empty default: span data without a type (kept as it was read).
        if case .other(let o) = self { return o["type"]?.stringValue ?? "" }
        return kind?.rawValue ?? ""
    }

    /// The SDK's JSON; `notes` are extra top-level keys (e.g. bridge's `text_replaced`).
    public func json(notes: [String: JSONValue] = [:]) -> JSONValue {
        var o: [String: JSONValue]
        func opt(_ s: String?) -> JSONValue { s.map(JSONValue.string) ?? .null }
        // The object's own fields, with room for `type` and the notes: a dictionary literal has
        // room for its own entries only, so adding a note (a priced call's `cost_usd`) grew it,
        // hashing every key again.
        func fields(_ pairs: KeyValuePairs<String, JSONValue>) -> [String: JSONValue] {
            var o = [String: JSONValue](minimumCapacity: pairs.count + 1 + notes.count)
            for (k, v) in pairs { o[k] = v }
            return o
        }
        func custom(_ name: String, _ data: [String: JSONValue]) -> [String: JSONValue] {
            fields(["name": .string(name), "data": .object(data)])
        }
        switch self {
        case .task(let name, let usage, let backfilled):
            var d: [String: JSONValue] = ["sdk_span_type": "task", "name": .string(name)]
            if let usage { d["usage"] = usage }
            if backfilled { d["backfilled"] = true }
            o = custom("task", d)
        case .agent(let name, let handoffs, let tools, let outputType):
            o = fields([
                "name": .string(name), "handoffs": .array(handoffs.map(JSONValue.string)),
                "tools": .array(tools.map(JSONValue.string)), "output_type": .string(outputType),
            ])
        case .turn(let turn, let agentName, let usage):
            var d: [String: JSONValue] = [
                "sdk_span_type": "turn", "turn": .number(Double(turn)), "agent_name": .string(agentName),
            ]
            if let usage { d["usage"] = usage }
            o = custom("turn", d)
        case .generation(let g):
            o = fields([
                "input": g.input.map(JSONValue.array) ?? .null,
                "output": g.output.map(JSONValue.array) ?? .null, "model": .string(g.model),
                "model_config": g.modelConfig, "usage": g.usage ?? .null,
            ])
        case .response(let responseId, let usage):
            o = fields(["response_id": opt(responseId), "usage": usage ?? .null])
        case .function(let f):
            o = fields([
                "name": .string(f.name), "input": opt(f.input), "output": opt(f.output),
                "mcp_data": f.mcpServer.map { ["server": .string($0)] } ?? .null,
            ])
        case .handoff(let from, let to):
            o = fields(["from_agent": .string(from), "to_agent": .string(to)])
        case .guardrail(let name, let triggered):
            o = fields(["name": .string(name), "triggered": .bool(triggered)])
        case .mcpTools(let server, let result):
            o = fields(["server": .string(server), "result": result.map { .array($0.map(JSONValue.string)) } ?? .null])
        case .approval(let a):
            var d: [String: JSONValue] = [
                "tool_name": .string(a.toolName), "call_id": a.callId.json, "request_id": .string(a.requestId),
                "decision": .string(a.decision), "decided_by": opt(a.decidedBy),
                "waited_seconds": .number(a.waitedSeconds),
            ]
            if let m = a.message { d["message"] = .string(m) }
            o = custom("approval", d)
        case .custom(let name, let data):
            o = custom(name, data)
        case .other(let raw):
            o = raw
        }
        if case .other = self {} else { o["type"] = .string(type) }
        for (k, v) in notes where o[k] == nil { o[k] = v }
        return .object(o)
    }

    /// Reads JSON this type wrote (a paused run's open spans); keys outside the shape come back
    /// as `notes`.
    public static func decode(_ json: JSONValue) -> (data: SpanData, notes: [String: JSONValue]) {
        guard let o = json.objectValue else { return (.other([:]), [:]) }
        let s = { (k: String) in o[k]?.stringValue }
        let strings = { (v: JSONValue?) in v?.arrayValue?.compactMap(\.stringValue) }
        let d = o["data"]?.objectValue ?? [:]
        let data: SpanData
        // A field the span data lacks reads as empty (an empty default): spans from a file or an older
        // SDK are kept as they are, never refused for a missing name.
        switch s("type").flatMap(SpanKind.init(rawValue:)) {
        case .agent:
            data = .agent(
                name: s("name") ?? "", handoffs: strings(o["handoffs"]) ?? [], tools: strings(o["tools"]) ?? [],
                outputType: s("output_type") ?? "str")
        case .generation:
            data = .generation(
                Generation(
                    input: o["input"]?.arrayValue, output: o["output"]?.arrayValue, model: s("model") ?? "",
                    modelConfig: o["model_config"] ?? .object([:]), usage: o["usage"].flatMap { $0.isNull ? nil : $0 }))
        case .response:
            data = .response(responseId: s("response_id"), usage: o["usage"].flatMap { $0.isNull ? nil : $0 })
        case .function:
            data = .function(
                Function(
                    name: s("name") ?? "", input: s("input"), output: s("output"),
                    mcpServer: o["mcp_data"]?["server"]?.stringValue))
        case .handoff:
            data = .handoff(from: s("from_agent") ?? "", to: s("to_agent") ?? "")
        case .guardrail:
            data = .guardrail(name: s("name") ?? "", triggered: o["triggered"]?.boolValue ?? false)
        case .mcpTools:
            data = .mcpTools(server: s("server") ?? "", result: strings(o["result"]))
        case .custom where d["sdk_span_type"]?.stringValue == "task" && s("name") == "task":
            data = .task(
                name: d["name"]?.stringValue ?? "", usage: d["usage"], backfilled: d["backfilled"]?.boolValue ?? false)
        case .custom where d["sdk_span_type"]?.stringValue == "turn" && s("name") == "turn":
            data = .turn(
                turn: d["turn"]?.intValue ?? 0, agentName: d["agent_name"]?.stringValue ?? "", usage: d["usage"])
        case .custom:
            data = .custom(name: s("name") ?? "", data: d)
        case .transcription, .speech, .speechGroup, nil:
            return (.other(o), [:])
        }
        let shape = data.json().objectValue ?? [:]
        return (data, o.filter { shape[$0.key] == nil })
    }

    /// The SDK's redaction with `trace_include_sensitive_data` off: model and tool inputs and
    /// outputs, and a reviewer's message, are left out.
    public func redacted() -> SpanData {
        switch self {
        case .generation(var g):
            g.input = nil
            g.output = nil
            return .generation(g)
        case .function(var f):
            f.input = nil
            f.output = nil
            return .function(f)
        case .approval(var a):
            a.message = nil
            return .approval(a)
        default:
            return self
        }
    }

    // MARK: Usage objects

    /// A turn span's usage (nil when every count is zero).
    public static func turnUsage(input: Int, output: Int, cached: Int, requests: Int = 0, reasoning: Int = 0)
        -> JSONValue?
    {
        guard input != 0 || output != 0 || cached != 0 || requests != 0 || reasoning != 0 else { return nil }
        return [
            "input_tokens": .number(Double(input)), "output_tokens": .number(Double(output)),
            "cached_input_tokens": .number(Double(cached)), "cache_write_input_tokens": 0,
        ]
    }

    /// A task span's usage: the turn's fields plus `requests` and `total_tokens` (nil when all zero).
    public static func taskUsage(input: Int, output: Int, cached: Int, requests: Int, total: Int, reasoning: Int = 0)
        -> JSONValue?
    {
        guard
            var o = turnUsage(input: input, output: output, cached: cached, requests: requests, reasoning: reasoning)?
                .objectValue
        else { return nil }
        o["requests"] = .number(Double(requests))
        o["total_tokens"] = .number(Double(total))
        return .object(o)
    }
}

/// A span's `error`: `{"message": …, "data": …}` with the SDK's wording and redaction.
@MemberwiseInit
public struct SpanError: Sendable, Equatable {
    public var message: String
    public var data: JSONValue? = nil

    /// The SDK's messages.
    public static let agentRun = "Error in agent run"
    public static let tool = "Error running tool"
    public static let toolNonFatal = "Error running tool (non-fatal)"

    public var json: JSONValue { ["message": .string(message), "data": data ?? .null] }

    /// The error read back from its `json` form; nil when there is no message.
    public init?(json: JSONValue?) {
        guard let message = json?["message"]?.stringValue else { return nil }
        self.init(message: message, data: json?["data"].flatMap { $0.isNull ? nil : $0 })
    }

    /// With sensitive data off, the SDK replaces `data.error` (a function span's with its own text).
    public func redacted(spanKind: SpanKind?) -> SpanError {
        guard var d = data?.objectValue, d["error"] != nil else { return self }
        d["error"] = .string(spanKind == .function ? Self.redactedToolError : Self.redactedError)
        return SpanError(message: message, data: .object(d))
    }

    public static let redactedToolError = "Tool execution failed. Error details are redacted."
    public static let redactedError = "Error details are redacted."
}
