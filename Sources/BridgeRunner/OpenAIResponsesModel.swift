import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// The OpenAI Responses API (`POST {OPENAI_BASE_URL}/responses`); its calls are `response`
/// spans. Calls stream by default (`stream: true`; the events are assembled into the response
/// the call returns without streaming, see `ResponsesStreamAssembler`); `settings.stream`
/// false sends the plain request.
///
/// The request body, built like the Agents SDK's `OpenAIResponsesModel`:
/// - `model`, `instructions` (omitted when empty), `input` (the history; see `inputItems`);
/// - `tools`: function tools (bridge tools and handoff tools)
///   `{type: function, name, description, parameters, strict}`, then hosted tools
///   (`web_search`, `file_search` with `vector_store_ids`, `code_interpreter` with an automatic
///   container); omitted when there are none;
/// - from the agent's `model_settings` (each only when set, so the API's defaults apply):
///   `tool_choice` (`auto`/`required`/`none`, a hosted tool type, or a function name →
///   `{type: function, name}`), `parallel_tool_calls` (only with tools), `store` (the SDK
///   sends none, so the API's default, true, applies), `previous_response_id`, `temperature`,
///   `top_p`, `truncation`, `reasoning`, `metadata`, `max_tokens` → `max_output_tokens`,
///   `verbosity` → `text.verbosity`, `response_include` → `include`, `top_logprobs`;
///   an agent's `output_type` → `text.format` `{type: json_schema, name, schema, strict}`;
///   `extra_body` / `extra_args` objects are merged into the body; any other key is passed
///   through as is, except Chat-only settings (`frequency_penalty`, `presence_penalty`,
///   `include_usage`), which are dropped.
///
/// The answer: `output` items as they are, `usage` (input/output tokens, cached and reasoning
/// details; one request), `id`, `model`. `status: failed` (with `error.message`) and
/// `status: incomplete` (with `incomplete_details.reason`, e.g. `max_output_tokens`) throw a
/// terminal `ModelProviderError`: the same request would end the same way, so the task is
/// `failed_terminal`, and the runner records the message on the response span.
public struct ResponsesModel: OpenAIModel {
    let transport: OpenAITransport

    public init(settings: OpenAISettings, client: HTTPClient) {
        transport = OpenAITransport(settings: settings, client: client)
    }

    public var spanKind: ModelSpanKind { .response }

    public func respond(_ request: ModelRequest) async throws -> ModelResponse {
        try await call(
            "/responses", request, body: Self.requestBody(request), streamedBy: { ResponsesStreamAssembler() })
    }

    /// Settings that exist only on Chat Completions.
    static let chatOnlySettings: Set<String> = ["frequency_penalty", "presence_penalty", "include_usage"]
    /// Settings handled explicitly (not passed through under their own name).
    static let mappedSettings: Set<String> = [
        "tool_choice", "parallel_tool_calls", "max_tokens", "verbosity", "response_include", "extra_body",
        "extra_args", "extra_headers", "extra_query", "top_logprobs",
    ]

    /// The JSON body for `request`.
    public static func requestBody(_ request: ModelRequest) -> JSONValue {
        let agent = request.agent
        let settings = agent.modelSettings
        var body: [String: JSONValue] = ["model": .string(agent.model), "input": .array(inputItems(request.input))]
        if !agent.instructions.isEmpty { body["instructions"] = .string(agent.instructions) }
        let tools = self.tools(request)
        if !tools.isEmpty {
            body["tools"] = .array(tools)
            if let p = settings["parallel_tool_calls"], !p.isNull { body["parallel_tool_calls"] = p }
        }
        if let choice = settings["tool_choice"], let converted = toolChoice(choice) { body["tool_choice"] = converted }
        for (key, value) in settings
        where !value.isNull && !mappedSettings.contains(key) && !chatOnlySettings.contains(key) {
            body[key] = value
        }
        if let maxTokens = settings["max_tokens"], !maxTokens.isNull { body["max_output_tokens"] = maxTokens }
        var text: [String: JSONValue] = [:]
        if let verbosity = settings["verbosity"], !verbosity.isNull { text["verbosity"] = verbosity }
        if let o = agent.outputSchema {
            text["format"] = [
                "type": "json_schema", "name": .string(o.name), "schema": o.schema, "strict": .bool(o.strict),
            ]
        }
        if !text.isEmpty { body["text"] = .object(text) }
        var include = (settings["response_include"]?.arrayValue ?? []).compactMap(\.stringValue)
        if let top = settings["top_logprobs"], !top.isNull {
            body["top_logprobs"] = top
            include.append("message.output_text.logprobs")
        }
        if !include.isEmpty { body["include"] = .array(include.map(JSONValue.string)) }
        for key in ["extra_body", "extra_args"] {
            for (k, v) in settings[key]?.objectValue ?? [:] { body[k] = v }
        }
        return .object(body)
    }

    /// The history as Responses input items: items pass through unchanged except that ids
    /// another provider made up (the Chat Completions path's `__fake_id__`) and bridge-internal
    /// `provider_data` are removed, and plain `{role, content}` messages keep their easy shape.
    public static func inputItems(_ history: [ConversationItem]) -> [JSONValue] {
        history.map { item in
            guard var o = item.json.objectValue else { return item.json }
            if o["id"]?.stringValue == ChatConverter.fakeId { o["id"] = nil }
            o["provider_data"] = nil
            return .object(o)
        }
    }

    /// Function tools, then hosted tools, in Responses shapes.
    public static func tools(_ request: ModelRequest) -> [JSONValue] {
        var out: [JSONValue] = request.functionTools.map { t in
            [
                "type": "function", "name": .string(t.name), "description": .string(t.description),
                "parameters": t.parameters, "strict": .bool(t.strict),
            ]
        }
        for h in request.hostedTools {
            switch h.type {
            case "file_search":
                out.append(["type": "file_search", "vector_store_ids": .array(h.vectorStoreIds.map(JSONValue.string))])
            case "code_interpreter":
                out.append(["type": "code_interpreter", "container": ["type": "auto"]])
            default:
                out.append(["type": .string(h.type)])
            }
        }
        return out
    }

    static let hostedToolChoices: Set<String> = [
        "file_search", "web_search", "web_search_preview", "code_interpreter", "image_generation",
        "computer_use_preview", "mcp",
    ]

    /// `model_settings.tool_choice` as the Responses API takes it.
    static func toolChoice(_ value: JSONValue) -> JSONValue? {
        guard let s = value.stringValue else { return value.isNull ? nil : value }
        switch s {
        case "auto", "required", "none": return .string(s)
        case let hosted where hostedToolChoices.contains(hosted): return ["type": .string(hosted)]
        default: return ["type": "function", "name": .string(s)]
        }
    }

    /// Turns the API's answer into a `ModelResponse`, or throws for `failed`/`incomplete`.
    public static func parseResponse(
        _ json: JSONValue, requestedModel: String,
        scrub: (String) -> String = { $0 }
    ) throws(ModelProviderError) -> ModelResponse {
        guard json.objectValue != nil else {
            throw ModelProviderError(
                "POST /responses: expected a JSON object, got \(scrub(String(json.compact.prefix(200))))",
                retriable: false)
        }
        let id = json["id"]?.stringValue
        let idText = id.map { " \($0)" } ?? ""
        switch json["status"]?.stringValue {
        case "failed":
            let error = json["error"]
            let message = error?["message"]?.stringValue ?? "no error message"
            let code = error?["code"]?.stringValue.map { " (\($0))" } ?? ""
            throw ModelProviderError(scrub("response\(idText) failed\(code): \(message)"), retriable: false)
        case "incomplete":
            let reason = json["incomplete_details"]?["reason"]?.stringValue ?? "unknown reason"
            throw ModelProviderError(scrub("response\(idText) incomplete: \(reason)"), retriable: false)
        default:
            break
        }
        guard let output = json["output"]?.arrayValue else {
            throw ModelProviderError("POST /responses: the answer has no output array", retriable: false)
        }
        let items = output.map(ConversationItem.init(json:))
        // A tool call that is not one (no string call_id, name or arguments) would otherwise be
        // kept as an unknown item and silently not run: a malformed answer, said as such.
        if let bad = items.firstIndex(where: { $0.functionCall == nil && $0.type == "function_call" }) {
            throw ModelProviderError(
                scrub(
                    "POST /responses: output[\(bad)] is a function_call without a string call_id, name and arguments: \(String(output[bad].compact.prefix(200)))"
                ), retriable: false)
        }
        return ModelResponse(
            output: items, usage: usage(json["usage"]), responseId: id,
            model: json["model"]?.stringValue ?? requestedModel)
    }

    /// Usage from a Responses `usage` object; one request even when the API sent none.
    public static func usage(_ u: JSONValue?) -> Usage {
        guard let u, u.objectValue != nil else { return Usage(requests: 1) }
        return Usage(
            requests: 1, inputTokens: u["input_tokens"]?.intValue ?? 0, outputTokens: u["output_tokens"]?.intValue ?? 0,
            cachedTokens: u["input_tokens_details"]?["cached_tokens"]?.intValue ?? 0,
            reasoningTokens: u["output_tokens_details"]?["reasoning_tokens"]?.intValue ?? 0)
    }
}
