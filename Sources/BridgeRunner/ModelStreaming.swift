import BridgeCore
import BridgeHTTP
import FoundationEssentials

// Streamed model calls (`stream: true`): the server-sent events of the Responses API and of
// Chat Completions, put back together into the JSON the same call answers without streaming,
// so that the providers' `parseResponse` — and with it spans, usage, cost and the journal —
// cannot tell the two apart.

/// Turns one API's stream of events into the non-streamed answer.
protocol ModelStreamAssembler: Sendable {
    /// Takes the next event. Returns true when it carries model output (a token: the first such
    /// event is the time to first token); throws for an error event.
    mutating func consume(_ event: ServerSentEvent) throws(ModelProviderError) -> Bool
    /// True once the stream's final event arrived (`response.completed` / `failed` /
    /// `incomplete`, or Chat's `[DONE]`); a stream that ends before was cut.
    var finished: Bool { get }
    /// The answer as the non-streamed call returns it.
    func result() -> JSONValue
    /// What a stream that ends before `finished` lacks, for the error message.
    static var finalEvent: String { get }
}

extension ModelStreamAssembler {
    /// An event's data as JSON, or a (retriable: a proxy garbled it) error.
    static func json(_ event: ServerSentEvent) throws(ModelProviderError) -> JSONValue {
        do { return try JSONValue.parse(Data(event.data.utf8)) } catch {
            throw ModelProviderError(
                "stream event \(event.event ?? "message") is not JSON: \(String(event.data.prefix(200)))",
                retriable: true)
        }
    }

    /// An error the server sent in the stream, retriable unless its type or code says the same
    /// request would fail again (invalid request, context too long, content policy, auth).
    static func streamError(_ error: JSONValue, what: String) -> ModelProviderError {
        let message = error["message"]?.stringValue ?? String(error.compact.prefix(300))
        let code = error["code"]?.stringValue
        let type = error["type"]?.stringValue
        let tags = [type, code.map { "code \($0)" }].compactMap { $0 }.filter { $0 != "error" }
        let suffix = tags.isEmpty ? "" : " (" + tags.joined(separator: ", ") + ")"
        let terminal = [code, type].compactMap { $0 }.contains { terminalErrors.contains($0) }
        return ModelProviderError("\(what)\(suffix): \(message)", retriable: !terminal)
    }
}

let terminalErrors: Set<String> = [
    "invalid_request_error", "context_length_exceeded", "invalid_prompt", "content_filter",
    "content_policy_violation", "invalid_api_key", "insufficient_quota", "authentication_error",
    "permission_error", "not_found_error", "model_not_found",
]

/// The Responses API's events: `response.completed` carries the whole response (as the
/// non-streamed call returns it); `response.failed` and `response.incomplete` carry it with that
/// status (and `parseResponse` throws the same terminal error as without streaming); an `error`
/// event fails the call. Output items from `response.output_item.done` fill in a final
/// response that came without its `output`.
struct ResponsesStreamAssembler: ModelStreamAssembler {
    static let finalEvent = "response.completed"
    private var items: [Int: JSONValue] = [:]
    private var final: JSONValue?

    var finished: Bool { final != nil }

    mutating func consume(_ event: ServerSentEvent) throws(ModelProviderError) -> Bool {
        guard !finished, event.data != "[DONE]" else { return false }
        let data = try Self.json(event)
        let type = data["type"]?.stringValue ?? event.event ?? ""
        switch type {
        case "response.completed", "response.failed", "response.incomplete":
            final = data["response"] ?? .object([:])
            return false
        case "error":
            let error = data["error"]?.objectValue != nil ? data["error"]! : data
            throw Self.streamError(error, what: "error event in the response stream")
        case "response.output_item.done":
            if let index = data["output_index"]?.intValue, let item = data["item"] { items[index] = item }
            return true
        default:
            return type.hasSuffix(".delta")
        }
    }

    func result() -> JSONValue {
        guard var o = final?.objectValue else { return .null }
        if (o["output"]?.arrayValue ?? []).isEmpty, !items.isEmpty {
            o["output"] = .array(items.sorted { $0.key < $1.key }.map(\.value))
        }
        return .object(o)
    }
}

/// Chat Completions chunks (`chat.completion.chunk`), merged per choice into the
/// `chat.completion` the non-streamed call returns: text, refusal and `reasoning_content`
/// deltas are concatenated, tool calls are merged by their `index` (id, type and name as sent,
/// arguments concatenated), the last `finish_reason` wins, and `usage` comes from the final
/// chunk (requested with `stream_options.include_usage`). `data: [DONE]` ends the stream; a
/// chunk `{"error": …}` fails the call.
struct ChatStreamAssembler: ModelStreamAssembler {
    static let finalEvent = "data: [DONE]"

    struct ToolCall: Sendable {
        var id: JSONValue = .null
        var type = "function"
        var name = ""
        var arguments = ""
    }

    struct Choice: Sendable {
        var role = "assistant"
        var content = ""
        var refusal = ""
        var reasoning = ""
        var toolCalls: [Int: ToolCall] = [:]
        var finishReason: JSONValue = .null
    }

    private var done = false
    private var id: JSONValue = .null
    private var model: JSONValue = .null
    private var created: JSONValue?
    private var usage: JSONValue?
    private var choices: [Int: Choice] = [:]

    var finished: Bool { done }

    mutating func consume(_ event: ServerSentEvent) throws(ModelProviderError) -> Bool {
        guard !done else { return false }
        if event.data.trimmingCharacters(in: .whitespaces) == "[DONE]" {
            done = true
            return false
        }
        let chunk = try Self.json(event)
        if let error = chunk["error"], !error.isNull {
            throw Self.streamError(error, what: "error in the chat completion stream")
        }
        if let v = chunk["id"], !v.isNull { id = v }
        if let v = chunk["model"], !v.isNull { model = v }
        if let v = chunk["created"], !v.isNull { created = v }
        if let v = chunk["usage"], v.objectValue != nil { usage = v }
        var token = false
        for c in chunk["choices"]?.arrayValue ?? [] {
            let index = c["index"]?.intValue ?? 0
            var choice = choices[index] ?? Choice()
            let delta = c["delta"] ?? .null
            if let r = delta["role"]?.stringValue { choice.role = r }
            for (key, path) in [
                ("content", \Choice.content), ("refusal", \.refusal), ("reasoning_content", \.reasoning),
            ] {
                if let s = delta[key]?.stringValue, !s.isEmpty {
                    choice[keyPath: path] += s
                    token = true
                }
            }
            for call in delta["tool_calls"]?.arrayValue ?? [] {
                let i = call["index"]?.intValue ?? choice.toolCalls.count
                var t = choice.toolCalls[i] ?? ToolCall()
                if let v = call["id"], !v.isNull { t.id = v }
                if let v = call["type"]?.stringValue { t.type = v }
                if let v = call["function"]?["name"]?.stringValue, !v.isEmpty { t.name = v }
                if let v = call["function"]?["arguments"]?.stringValue { t.arguments += v }
                choice.toolCalls[i] = t
                token = true
            }
            if let f = c["finish_reason"], !f.isNull { choice.finishReason = f }
            choices[index] = choice
        }
        return token
    }

    func result() -> JSONValue {
        var out: [String: JSONValue] = [
            "id": id, "object": "chat.completion", "model": model,
            "choices": .array(
                choices.sorted { $0.key < $1.key }.map { index, c in
                    var message: [String: JSONValue] = [
                        "role": .string(c.role), "content": c.content.isEmpty ? .null : .string(c.content),
                    ]
                    if !c.refusal.isEmpty { message["refusal"] = .string(c.refusal) }
                    if !c.reasoning.isEmpty { message["reasoning_content"] = .string(c.reasoning) }
                    if !c.toolCalls.isEmpty {
                        message["tool_calls"] = .array(
                            c.toolCalls.sorted { $0.key < $1.key }.map { _, t in
                                [
                                    "id": t.id, "type": .string(t.type),
                                    "function": ["name": .string(t.name), "arguments": .string(t.arguments)],
                                ]
                            })
                    }
                    return [
                        "index": .number(Double(index)), "message": .object(message), "finish_reason": c.finishReason,
                    ]
                }),
        ]
        if let created { out["created"] = created }
        if let usage { out["usage"] = usage }
        return .object(out)
    }
}

/// The body of one streamed model call: bytes from the HTTP engine go through an `SSEParser`
/// into an assembler. Lives on the engine's thread while the transfer runs; the transport reads
/// it after `execute` returns.
///
/// Unchecked sendability, confined by hand: written only by the HTTP engine thread during the transfer, read by
/// the caller only after `execute` returned (the continuation's resumption orders the two).
final class ModelEventStream: HTTPBodyStream, @unchecked Sendable {
    private var parser: SSEParser
    private var assembler: any ModelStreamAssembler
    private let what: String
    let started: ContinuousClock.Instant
    private var firstToken: ContinuousClock.Instant?
    private(set) var began = false
    private(set) var failure: ModelProviderError?

    init(assembler: any ModelStreamAssembler, what: String, maxEventBytes: Int) {
        self.assembler = assembler
        self.parser = SSEParser(maxEventBytes: maxEventBytes)
        self.what = what
        self.started = .now
    }

    func begin(status: Int, headers: HTTPHeaders) -> Bool {
        let type = headers["Content-Type"]?.lowercased() ?? ""
        began = (200..<300).contains(status) && type.hasPrefix("text/event-stream")
        return began
    }

    func receive(_ bytes: UnsafeRawBufferPointer) -> HTTPError? {
        do {
            try parser.feed(bytes) { event in
                let token = try assembler.consume(event)
                if firstToken == nil, token || assembler.finished { firstToken = .now }
            }
            return nil
        } catch {
            switch error {
            case .eventTooLarge(let limit):
                failure = ModelProviderError("\(what): \(error)", retriable: false)
                return .tooLarge(limit: limit)
            case .consumer(let e):
                var f = e as? ModelProviderError ?? ModelProviderError("\(e)", retriable: false)
                f.message = "\(what): " + f.message
                failure = f
                return .malformedJSON(reason: f.message)
            }
        }
    }

    var finished: Bool { assembler.finished }
    var events: Int { parser.eventCount }
    func result() -> JSONValue { assembler.result() }

    /// From the request to the first token (or to the final event, when no event carried one).
    var timeToFirstToken: Duration? { firstToken.map { $0 - started } }

    /// The error for a stream that ended without its final event.
    var cut: ModelProviderError {
        let mid = parser.isMidEvent ? " (cut mid-event)" : ""
        return ModelProviderError(
            "\(what): the stream ended after \(parser.eventCount) events without \(type(of: assembler).finalEvent)\(mid)",
            retriable: true)
    }
}
