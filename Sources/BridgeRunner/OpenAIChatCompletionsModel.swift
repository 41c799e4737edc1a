import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// Chat Completions (`POST {OPENAI_BASE_URL}/chat/completions`), for OpenAI-compatible
/// servers (vLLM, Ollama, LiteLLM). Calls stream by default (`stream: true` with
/// `stream_options: {include_usage: true}`; the chunks are assembled into the completion the
/// call returns without streaming, see `ChatStreamAssembler`). Its calls are `generation` spans whose
/// input is the chat messages sent and whose output is the assistant message received, as in
/// the SDK's chat path.
///
/// The runner keeps speaking Responses items: `ChatConverter` turns the history into chat
/// messages and the reply back into `message` / `function_call` items.
///
/// Request: `model`, `messages`, `tools` (`{type: function, function: {name, description,
/// parameters, strict}}`, omitted when none) and, from `model_settings` when set:
/// `temperature`, `top_p`, `frequency_penalty`, `presence_penalty`, `max_tokens` (or
/// `max_output_tokens`), `tool_choice` (`auto`/`required`/`none` or a function name →
/// `{type: function, function: {name}}`), `parallel_tool_calls` (only with tools),
/// `store` (as the SDK: the setting, else `true` on api.openai.com and omitted elsewhere),
/// `reasoning.effort` → `reasoning_effort`, `verbosity`, `metadata`, `top_logprobs` (with
/// `logprobs: true`); an agent's `output_type` → `response_format` `{type: json_schema,
/// json_schema: {name, schema, strict}}`; `extra_body` / `extra_args` are merged in. Responses-only settings
/// (`truncation`, `previous_response_id`, `response_include`) are dropped; others pass through.
///
/// Hosted tools cannot run on this API: `respond` throws `ModelConfigurationError` for them
/// (and `ModelRouting.validate` finds them before a run starts).
public struct ChatCompletionsModel: OpenAIModel {
    let transport: OpenAITransport

    public init(settings: OpenAISettings, client: HTTPClient) {
        transport = OpenAITransport(settings: settings, client: client)
    }

    public var spanKind: ModelSpanKind { .generation }

    public func spanInput(for request: ModelRequest) -> [JSONValue] {
        ChatConverter.messages(instructions: request.agent.instructions, history: request.input)
    }

    public func respond(_ request: ModelRequest) async throws -> ModelResponse {
        if !request.hostedTools.isEmpty {
            let types = request.hostedTools.map(\.type).joined(separator: ", ")
            throw ModelConfigurationError(
                "agent '\(request.agent.name)': hosted tools (\(types)) need the Responses API, but this agent uses Chat Completions"
            )
        }
        let body = Self.requestBody(request, storeDefault: settings.isOfficialOpenAI ? true : nil)
        return try await call(
            "/chat/completions", request, body: body, streamedBy: { ChatStreamAssembler() },
            streamFields: ["stream_options": ["include_usage": true]])
    }

    /// Responses-only settings, and `reasoning` (sent as `reasoning_effort`).
    static let notPassedThrough: Set<String> = [
        "truncation", "previous_response_id", "response_include", "include_usage", "reasoning",
    ]
    static let mappedSettings: Set<String> = [
        "tool_choice", "parallel_tool_calls", "max_tokens", "max_output_tokens", "store", "extra_body", "extra_args",
        "extra_headers", "extra_query", "top_logprobs",
    ]

    /// The JSON body for `request`. `storeDefault` is sent as `store` when the settings have none.
    public static func requestBody(_ request: ModelRequest, storeDefault: Bool? = nil) -> JSONValue {
        let agent = request.agent
        let settings = agent.modelSettings
        var body: [String: JSONValue] = [
            "model": .string(agent.model),
            "messages": .array(ChatConverter.messages(instructions: agent.instructions, history: request.input)),
        ]
        let tools = request.functionTools.map(ChatConverter.tool)
        if !tools.isEmpty {
            body["tools"] = .array(tools)
            if let p = settings["parallel_tool_calls"], !p.isNull { body["parallel_tool_calls"] = p }
        }
        if let choice = settings["tool_choice"], !choice.isNull {
            body["tool_choice"] = ChatConverter.toolChoice(choice)
        }
        for (key, value) in settings
        where !value.isNull && !mappedSettings.contains(key) && !notPassedThrough.contains(key) {
            body[key] = value
        }
        if let maxTokens = settings["max_tokens"] ?? settings["max_output_tokens"], !maxTokens.isNull {
            body["max_tokens"] = maxTokens
        }
        if let effort = settings["reasoning"]?["effort"], !effort.isNull { body["reasoning_effort"] = effort }
        if let store = settings["store"], !store.isNull {
            body["store"] = store
        } else if let storeDefault {
            body["store"] = .bool(storeDefault)
        }
        if let top = settings["top_logprobs"], !top.isNull {
            body["top_logprobs"] = top
            body["logprobs"] = true
        }
        if let o = agent.outputSchema {
            body["response_format"] = [
                "type": "json_schema",
                "json_schema": ["name": .string(o.name), "schema": o.schema, "strict": .bool(o.strict)],
            ]
        }
        for key in ["extra_body", "extra_args"] {
            for (k, v) in settings[key]?.objectValue ?? [:] { body[k] = v }
        }
        return .object(body)
    }

    /// Turns a chat completion into a `ModelResponse` (output as Responses items, the raw
    /// assistant message as the span output). `model` is the requested model, not the one the
    /// server names, because the SDK's generation span records the requested one.
    public static func parseResponse(
        _ json: JSONValue, requestedModel: String,
        scrub: (String) -> String = { $0 }
    ) throws(ModelProviderError) -> ModelResponse {
        guard let choice = json["choices"]?.arrayValue?.first else {
            let detail = json["error"].map { ": " + scrub(String($0.compact.prefix(300))) } ?? ""
            throw ModelProviderError(
                "chat completion has no choices (possible provider error payload)\(detail)",
                retriable: false)
        }
        let message = choice["message"] ?? .null
        let content = message["content"]?.stringValue ?? ""
        let hasToolCalls = !(message["tool_calls"]?.arrayValue ?? []).isEmpty
        let refusal = message["refusal"]?.stringValue ?? ""
        if choice["finish_reason"]?.stringValue == "length", content.isEmpty, refusal.isEmpty, !hasToolCalls {
            throw ModelProviderError(
                "chat completion ended with finish_reason 'length' before any text or tool call (raise max_tokens)",
                retriable: false)
        }
        try checkToolCalls(message, scrub: scrub)
        let usage = self.usage(json["usage"])
        return ModelResponse(
            output: message.isNull ? [] : ChatConverter.outputItems(message), usage: usage, responseId: nil,
            model: requestedModel, spanOutput: message.isNull ? [] : [message])
    }

    /// A function tool call without a string `function.name`, or whose `id` or
    /// `function.arguments` is there but not a string, is a malformed answer, said as such:
    /// made to fit, it would call a tool named "" or run the tool with `{}` instead of the
    /// arguments the model wrote. (A missing or null `id` stays allowed: some compatible
    /// servers send none.)
    static func checkToolCalls(_ message: JSONValue, scrub: (String) -> String) throws(ModelProviderError) {
        for (i, call) in (message["tool_calls"]?.arrayValue ?? []).enumerated()
        where (call["type"]?.stringValue ?? "function") == "function" {
            let id = call["id"] ?? .null
            let arguments = call["function"]?["arguments"] ?? .null
            let nameOK = !(call["function"]?["name"]?.stringValue ?? "").isEmpty
            guard nameOK, id.isNull || id.stringValue != nil, arguments.isNull || arguments.stringValue != nil
            else {
                throw ModelProviderError(
                    scrub(
                        "chat completion: message.tool_calls[\(i)] is a function call without a string name, id and arguments: \(String(call.compact.prefix(200)))"
                    ), retriable: false)
            }
        }
    }

    /// Usage from `prompt_tokens`, `completion_tokens` and their details; one request even
    /// when the server sent no usage.
    public static func usage(_ u: JSONValue?) -> Usage {
        guard let u, u.objectValue != nil else { return Usage(requests: 1) }
        return Usage(
            requests: 1, inputTokens: u["prompt_tokens"]?.intValue ?? 0,
            outputTokens: u["completion_tokens"]?.intValue ?? 0,
            cachedTokens: u["prompt_tokens_details"]?["cached_tokens"]?.intValue ?? 0,
            reasoningTokens: u["completion_tokens_details"]?["reasoning_tokens"]?.intValue ?? 0)
    }
}

/// Conversions between Responses items (what the runner keeps) and Chat Completions messages.
public enum ChatConverter {
    /// The id the SDK gives items made from chat messages (they have none of their own).
    public static let fakeId = "__fake_id__"

    /// The chat messages for a history: a system message with `instructions` first (when not
    /// empty), then, in order:
    /// - `{role, content}` and `{type: message, role: user|system|developer, …}` → that role,
    ///   content as text (a string, or parts with `input_text` → `text`);
    /// - an assistant `message` item → `{role: assistant, content: <output_text joined by \n>}`
    ///   (a `refusal` part → `refusal`);
    /// - `function_call` items → `tool_calls` entries `{id: call_id, type: function,
    ///   function: {name, arguments}}` on the preceding assistant message, so an assistant
    ///   text followed by calls, or consecutive calls, become one assistant message;
    /// - `function_call_output` → `{role: tool, tool_call_id, content}`;
    /// - items Chat Completions cannot express (reasoning, hosted tool calls) are skipped.
    public static func messages(instructions: String, history: [ConversationItem]) -> [JSONValue] {
        var out: [JSONValue] = []
        if !instructions.isEmpty { out.append(["content": .string(instructions), "role": "system"]) }
        var assistant: [String: JSONValue]?
        var toolCalls: [JSONValue] = []
        func flush() {
            guard var a = assistant else { return }
            if !toolCalls.isEmpty { a["tool_calls"] = .array(toolCalls) }
            out.append(.object(a))
            assistant = nil
            toolCalls = []
        }
        for item in history {
            switch item {
            case .message(let m) where m.role == "assistant":
                flush()
                assistant = assistantMessage(m)
            case .message(let m):
                flush()
                out.append(["role": .string(m.role), "content": inputContent(m.content)])
            case .functionCall(let call):
                if assistant == nil { assistant = ["role": "assistant", "content": .null] }
                toolCalls.append([
                    "id": call.callId.json, "type": "function",
                    "function": [
                        "name": .string(call.name),
                        "arguments": .string(call.arguments.isEmpty ? "{}" : call.arguments),
                    ],
                ])
            case .functionCallOutput(let o):
                flush()
                out.append([
                    "role": "tool", "tool_call_id": o.callId.json,
                    "content": .string(o.output.stringValue ?? o.output.compact),
                ])
            case .reasoning, .guardrailResult, .approvalResult, .other:
                continue
            }
        }
        flush()
        return out
    }

    /// An assistant message for chat: its text (a string, or its `output_text` parts joined by
    /// newlines) and its refusal.
    static func assistantMessage(_ m: ConversationItem.Message) -> [String: JSONValue] {
        var a: [String: JSONValue] = ["role": "assistant"]
        switch m.content {
        case .text(let s):
            a["content"] = .string(s)
        case .parts(let parts):
            var texts: [String] = []
            for part in parts {
                switch part["type"]?.stringValue {
                case "output_text": texts.append(part["text"]?.stringValue ?? "")
                case "refusal": a["refusal"] = part["refusal"] ?? ""
                default: break
                }
            }
            if !texts.isEmpty { a["content"] = .string(texts.joined(separator: "\n")) }
        }
        return a
    }

    /// Input message content for chat: strings as they are, `input_text` parts as `text` parts,
    /// other parts unchanged.
    static func inputContent(_ content: ConversationItem.Message.Content) -> JSONValue {
        switch content {
        case .text(let s):
            return .string(s)
        case .parts(let parts):
            return .array(
                parts.map { part in
                    if part["type"]?.stringValue == "input_text" {
                        return ["type": "text", "text": part["text"] ?? ""]
                    }
                    return part
                })
        }
    }

    /// A function tool in chat shape.
    public static func tool(_ t: FunctionToolDefinition) -> JSONValue {
        [
            "type": "function",
            "function": [
                "name": .string(t.name), "description": .string(t.description), "parameters": t.parameters,
                "strict": .bool(t.strict),
            ],
        ]
    }

    /// `auto`/`required`/`none` as they are; a tool name → `{type: function, function: {name}}`.
    public static func toolChoice(_ value: JSONValue) -> JSONValue {
        guard let s = value.stringValue else { return value }
        switch s {
        case "auto", "required", "none": return value
        default: return ["type": "function", "function": ["name": .string(s)]]
        }
    }

    /// An assistant chat message as Responses output items: a `message` item for its text or
    /// refusal, then one `function_call` item per tool call (`call_id` = the tool call's id).
    public static func outputItems(_ message: JSONValue) -> [ConversationItem] {
        var items: [ConversationItem] = []
        var parts: [JSONValue] = []
        if let text = message["content"]?.stringValue, !text.isEmpty {
            parts.append(ConversationItem.outputText(text))
        }
        if let refusal = message["refusal"]?.stringValue, !refusal.isEmpty {
            parts.append(["type": "refusal", "refusal": .string(refusal)])
        }
        if !parts.isEmpty {
            items.append(.assistant(id: fakeId, parts: parts))
        }
        for call in message["tool_calls"]?.arrayValue ?? []
        where (call["type"]?.stringValue ?? "function") == "function" {
            items.append(
                .call(
                    id: fakeId, callId: CallID(call["id"]?.stringValue ?? ""),
                    name: call["function"]?["name"]?.stringValue ?? "",
                    arguments: call["function"]?["arguments"]?.stringValue ?? ""))
        }
        return items
    }
}
