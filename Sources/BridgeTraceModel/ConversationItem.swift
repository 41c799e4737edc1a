import BridgeCore

/// One item of a run's conversation, in the Responses API's item shapes: what the runner keeps
/// as its history and transcript, what model requests are built from, what journals, paused runs
/// and sessions store.
///
/// The kinds bridge acts on are typed; every other item (hosted tool calls such as
/// `web_search_call`, anything a newer API adds) is `.other`, kept as it came. The JSON form is
/// made and read here only (`init(json:)`, `json`), and it round-trips: `ConversationItem(json: j)
/// .json == j` for every JSON value `j`, so what older bridges stored (journals, paused runs,
/// session rows) loads unchanged, and what this one stores reads the same as before. A value
/// that does not fit its kind's shape exactly (a `function_call` whose `arguments` is not a
/// string) is `.other` too, rather than being changed to fit.
public enum ConversationItem: Sendable, Hashable {
    /// `{"role":"user","content":"..."}` or `{"type":"message","role":"assistant","content":[...]}`.
    case message(Message)
    /// `{"type":"function_call","call_id":...,"name":...,"arguments":"<JSON text>"}`.
    case functionCall(FunctionCall)
    /// `{"type":"function_call_output","call_id":...,"output":...}`.
    case functionCallOutput(FunctionCallOutput)
    /// `{"type":"reasoning","summary":[...]}` (a reasoning model's summary; kept for the next call).
    case reasoning(Reasoning)
    /// bridge's transcript record of a guardrail that ran (never sent to a model).
    case guardrailResult(GuardrailResult)
    /// bridge's transcript record of a human decision a paused run resumed with (never sent to a model).
    case approvalResult(ApprovalResult)
    /// Any other item, unchanged.
    case other(JSONValue)

    /// A message: its role, its content (a string, or content parts), and its other fields.
    public struct Message: Sendable, Hashable {
        /// A message's content: the easy string form, or content parts (`input_text`,
        /// `output_text`, `refusal`, images, …) as they are.
        public enum Content: Sendable, Hashable {
            case text(String)
            case parts([JSONValue])
        }

        public var role: String
        public var content: Content
        /// Whether the item says `"type": "message"` (the easy input shape `{role, content}` does not).
        public var typed = true
        /// The item's other fields (`id`, `status`, …), as they came.
        public var extra: [String: JSONValue] = [:]

        /// The text the model answered: a string content, or the `output_text` parts joined.
        public var outputText: String {
            switch content {
            case .text(let s): return s
            case .parts(let parts):
                return parts.compactMap { $0["type"]?.stringValue == "output_text" ? $0["text"]?.stringValue : nil }
                    .joined()
            }
        }
    }

    /// A call of a function tool (a bridge tool, a handoff, an MCP tool).
    @MemberwiseInit
    public struct FunctionCall: Sendable, Hashable {
        public var callId: CallID
        public var name: String
        /// The arguments as the model wrote them (JSON text, not checked here).
        public var arguments: String
        /// The item's other fields (`id`, `status`, …), as they came.
        public var extra: [String: JSONValue] = [:]
    }

    /// What the model reads back for a call: text, or content parts (MCP results).
    public struct FunctionCallOutput: Sendable, Hashable {
        public var callId: CallID
        public var output: JSONValue
        /// The item's other fields, as they came.
        public var extra: [String: JSONValue] = [:]
    }

    /// A reasoning item: its summary parts and its other fields (`id`, `encrypted_content`, …).
    public struct Reasoning: Sendable, Hashable {
        public var summary: [JSONValue]
        public var extra: [String: JSONValue] = [:]
    }

    /// `{"type":"guardrail_result","name","kind","triggered"}`, for a tool guardrail also
    /// `call_id`, `tool_name` and `behavior` (`allow`, `reject_content`, `raise_exception`, `error`).
    @MemberwiseInit
    public struct GuardrailResult: Sendable, Hashable {
        /// What the guardrail checked: the run's input or final output, or a tool call's.
        @SnakeCaseRawValues
        public enum Kind: Sendable, Hashable {
            case input, output
            case toolInput
            case toolOutput
        }

        /// What a tool guardrail made of the call.
        @SnakeCaseRawValues
        public enum Behavior: Sendable, Hashable {
            case allow, error
            case rejectContent
            case raiseException
        }

        public var name: String
        public var kind: Kind
        public var triggered: Bool
        public var callId: CallID? = nil
        public var toolName: String? = nil
        public var behavior: Behavior? = nil
        public var extra: [String: JSONValue] = [:]
    }

    /// `{"type":"approval_result","call_id","name","decision","request_id"}`.
    @MemberwiseInit
    public struct ApprovalResult: Sendable, Hashable {
        public var callId: CallID
        /// The tool's name.
        public var name: String
        /// `approved`, `rejected` or `expired`.
        public var decision: String
        /// The approval request's key in the application's table.
        public var requestId: String
        public var extra: [String: JSONValue] = [:]
    }
}

// MARK: - Making items

extension ConversationItem {
    /// `{"role": role, "content": text}`: the easy input shape of a message.
    public static func input(role: String = "user", _ text: String) -> ConversationItem {
        .message(Message(role: role, content: .text(text), typed: false))
    }

    /// `{"type":"message","role":"assistant","status":"completed","content":[{"type":"output_text",...}]}`.
    public static func assistant(id: String, parts: [JSONValue]) -> ConversationItem {
        .message(Message(role: "assistant", content: .parts(parts), extra: ["id": .string(id), "status": "completed"]))
    }

    /// An `output_text` content part.
    public static func outputText(_ text: String) -> JSONValue {
        ["type": "output_text", "text": .string(text), "annotations": []]
    }

    /// A completed `function_call` item with its own `id`.
    public static func call(id: String, callId: CallID, name: String, arguments: String) -> ConversationItem {
        .functionCall(
            FunctionCall(
                callId: callId, name: name, arguments: arguments, extra: ["id": .string(id), "status": "completed"]))
    }

    /// The `function_call_output` item for call `callId`.
    public static func callOutput(_ callId: CallID, _ output: JSONValue) -> ConversationItem {
        .functionCallOutput(FunctionCallOutput(callId: callId, output: output))
    }
}

// MARK: - Reading items

extension ConversationItem {
    /// The item's `type` field (nil for the easy message shape, which has none).
    public var type: String? {
        switch self {
        case .message(let m): return m.typed ? "message" : nil
        case .functionCall: return "function_call"
        case .functionCallOutput: return "function_call_output"
        case .reasoning: return "reasoning"
        case .guardrailResult: return "guardrail_result"
        case .approvalResult: return "approval_result"
        case .other(let json): return json["type"]?.stringValue
        }
    }

    public var message: Message? {
        if case .message(let m) = self { return m }
        return nil
    }

    public var functionCall: FunctionCall? {
        if case .functionCall(let c) = self { return c }
        return nil
    }

    public var functionCallOutput: FunctionCallOutput? {
        if case .functionCallOutput(let o) = self { return o }
        return nil
    }

    /// The same item with `transform` applied to its JSON form (redaction, text safety).
    public func mapJSON(_ transform: (JSONValue) -> JSONValue) -> ConversationItem {
        ConversationItem(json: transform(json))
    }
}

// MARK: - The JSON form (the one place it is made and read)

extension ConversationItem {
    /// The item a JSON value stands for: a typed kind when the value has that kind's shape
    /// exactly, else `.other` with the value unchanged.
    public init(json: JSONValue) {
        self = Self.typed(json) ?? .other(json)
    }

    private static func typed(_ json: JSONValue) -> ConversationItem? {
        guard case .object(let o) = json else { return nil }
        switch o["type"] {
        case nil, "message"?: return Message(o).map(ConversationItem.message)
        case "function_call"?: return FunctionCall(o).map(ConversationItem.functionCall)
        case "function_call_output"?: return FunctionCallOutput(o).map(ConversationItem.functionCallOutput)
        case "reasoning"?: return Reasoning(o).map(ConversationItem.reasoning)
        case "guardrail_result"?: return GuardrailResult(o).map(ConversationItem.guardrailResult)
        case "approval_result"?: return ApprovalResult(o).map(ConversationItem.approvalResult)
        default: return nil
        }
    }

    /// The item as JSON, exactly as it was read (or as the API shapes it, for items made here).
    public var json: JSONValue {
        switch self {
        case .message(let m):
            var o = m.extra
            if m.typed { o["type"] = "message" }
            o["role"] = .string(m.role)
            switch m.content {
            case .text(let s): o["content"] = .string(s)
            case .parts(let parts): o["content"] = .array(parts)
            }
            return .object(o)
        case .functionCall(let c):
            return object(
                c.extra, "function_call",
                ["call_id": c.callId.json, "name": .string(c.name), "arguments": .string(c.arguments)])
        case .functionCallOutput(let c):
            return object(c.extra, "function_call_output", ["call_id": c.callId.json, "output": c.output])
        case .reasoning(let r):
            return object(r.extra, "reasoning", ["summary": .array(r.summary)])
        case .guardrailResult(let g):
            return .object(g.fields)
        case .approvalResult(let a):
            return object(
                a.extra, "approval_result",
                [
                    "call_id": a.callId.json, "name": .string(a.name), "decision": .string(a.decision),
                    "request_id": .string(a.requestId),
                ])
        case .other(let json):
            return json
        }
    }
}

/// An item of kind `type` as JSON: the fields it was read with that its kind does not model
/// (`extra`), with `type` and the kind's own `fields` set over them.
private func object(
    _ extra: [String: JSONValue], _ type: JSONValue, _ fields: KeyValuePairs<String, JSONValue>
) -> JSONValue {
    var o = extra
    o["type"] = type
    for (key, value) in fields { o[key] = value }
    return .object(o)
}

/// An item's fields besides `known` (the ones its kind models).
private func rest(_ o: [String: JSONValue], _ known: Set<String>) -> [String: JSONValue] {
    o.filter { !known.contains($0.key) }
}

extension ConversationItem.Message {
    fileprivate init?(_ o: [String: JSONValue]) {
        guard let role = o["role"]?.stringValue else { return nil }
        switch o["content"] {
        case .string(let s)?: content = .text(s)
        case .array(let parts)?: content = .parts(parts)
        default: return nil
        }
        self.role = role
        typed = o["type"] != nil
        extra = rest(o, ["type", "role", "content"])
    }
}

extension ConversationItem.FunctionCall {
    fileprivate init?(_ o: [String: JSONValue]) {
        guard let callId = o["call_id"]?.stringValue, let name = o["name"]?.stringValue,
            let arguments = o["arguments"]?.stringValue
        else { return nil }
        self.init(
            callId: CallID(callId), name: name, arguments: arguments,
            extra: rest(o, ["type", "call_id", "name", "arguments"]))
    }
}

extension ConversationItem.FunctionCallOutput {
    fileprivate init?(_ o: [String: JSONValue]) {
        guard let callId = o["call_id"]?.stringValue, let output = o["output"] else { return nil }
        self.init(callId: CallID(callId), output: output, extra: rest(o, ["type", "call_id", "output"]))
    }
}

extension ConversationItem.Reasoning {
    fileprivate init?(_ o: [String: JSONValue]) {
        guard let summary = o["summary"]?.arrayValue else { return nil }
        self.init(summary: summary, extra: rest(o, ["type", "summary"]))
    }
}

extension ConversationItem.GuardrailResult {
    static let known: Set<String> = ["type", "name", "kind", "triggered", "call_id", "tool_name", "behavior"]

    fileprivate init?(_ o: [String: JSONValue]) {
        guard let name = o["name"]?.stringValue, let kind = o["kind"]?.stringValue.flatMap(Kind.init(rawValue:)),
            let triggered = o["triggered"]?.boolValue
        else { return nil }
        /// An optional text field: absent, or a string (anything else does not fit).
        func optional(_ key: String) -> String?? {
            guard let v = o[key] else { return .some(nil) }
            return v.stringValue.map { .some($0) }
        }
        guard let callId = optional("call_id"), let toolName = optional("tool_name"),
            let behavior = optional("behavior"), behavior.map({ Behavior(rawValue: $0) != nil }) ?? true
        else { return nil }
        self.init(
            name: name, kind: kind, triggered: triggered, callId: callId.map(CallID.init), toolName: toolName,
            behavior: behavior.flatMap(Behavior.init(rawValue:)), extra: rest(o, Self.known))
    }

    var fields: [String: JSONValue] {
        var o = extra
        o["type"] = "guardrail_result"
        o["name"] = .string(name)
        o["kind"] = .string(kind.rawValue)
        o["triggered"] = .bool(triggered)
        if let callId { o["call_id"] = callId.json }
        if let toolName { o["tool_name"] = .string(toolName) }
        if let behavior { o["behavior"] = .string(behavior.rawValue) }
        return o
    }
}

extension ConversationItem.ApprovalResult {
    fileprivate init?(_ o: [String: JSONValue]) {
        guard let callId = o["call_id"]?.stringValue, let name = o["name"]?.stringValue,
            let decision = o["decision"]?.stringValue, let requestId = o["request_id"]?.stringValue
        else { return nil }
        self.init(
            callId: CallID(callId), name: name, decision: decision, requestId: requestId,
            extra: rest(o, ["type", "call_id", "name", "decision", "request_id"]))
    }
}

/// Encodes and decodes as its JSON form (paused runs and journal records are `Codable`).
extension ConversationItem: Codable {
    public init(from decoder: any Decoder) throws {
        self.init(json: try JSONValue(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try json.encode(to: encoder)
    }
}

/// Fixtures write items as JSON literals; they are read like stored JSON.
extension ConversationItem: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(json: .object(Dictionary(elements, uniquingKeysWith: { _, last in last })))
    }
}
