import BridgeCore
import Foundation

/// Event streams as the OpenAI APIs send them for `stream: true`, built from the answer the
/// same call returns without streaming, so a loopback stand-in can answer either way.
public enum ModelStreams {
    /// One server-sent event: its `event:` name (nil: none) and its `data:` text.
    public typealias Event = (event: String?, data: String)

    /// Splits `text` into pieces of at most `size` characters (at least one piece).
    static func pieces(_ text: String, size: Int = 8) -> [String] {
        guard !text.isEmpty else { return [""] }
        var out: [String] = []
        var rest = Substring(text)
        while !rest.isEmpty {
            out.append(String(rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
        return out
    }

    /// The Responses API's events for `response` (a whole `response` object): `response.created`,
    /// per output item `output_item.added`, text or argument deltas and `output_item.done`, then
    /// `response.completed` (or `.failed` / `.incomplete`, after its status) with the response.
    public static func responsesEvents(_ response: JSONValue) -> [Event] {
        var out: [Event] = []
        var sequence = 0
        func add(_ type: String, _ fields: [String: JSONValue]) {
            var o = fields
            o["type"] = .string(type)
            o["sequence_number"] = .number(Double(sequence))
            sequence += 1
            out.append((type, JSONValue.object(o).compact))
        }
        var created = response.objectValue ?? [:]
        created["status"] = "in_progress"
        created["output"] = []
        created["usage"] = .null
        add("response.created", ["response": .object(created)])
        for (i, item) in (response["output"]?.arrayValue ?? []).enumerated() {
            let index = JSONValue.number(Double(i))
            var started = item.objectValue ?? [:]
            started["status"] = "in_progress"
            let itemId = item["id"] ?? .null
            switch item["type"]?.stringValue {
            case "message":
                started["content"] = []
                add("response.output_item.added", ["output_index": index, "item": .object(started)])
                for (j, part) in (item["content"]?.arrayValue ?? []).enumerated() {
                    let p = JSONValue.number(Double(j))
                    add("response.content_part.added", ["item_id": itemId, "output_index": index, "content_index": p])
                    if let text = part["text"]?.stringValue {
                        for piece in pieces(text) {
                            add(
                                "response.output_text.delta",
                                ["item_id": itemId, "output_index": index, "content_index": p, "delta": .string(piece)])
                        }
                        add(
                            "response.output_text.done",
                            ["item_id": itemId, "output_index": index, "content_index": p, "text": .string(text)])
                    }
                    add(
                        "response.content_part.done",
                        ["item_id": itemId, "output_index": index, "content_index": p, "part": part])
                }
            case "function_call":
                started["arguments"] = ""
                add("response.output_item.added", ["output_index": index, "item": .object(started)])
                let arguments = item["arguments"]?.stringValue ?? ""
                for piece in pieces(arguments) {
                    add(
                        "response.function_call_arguments.delta",
                        ["item_id": itemId, "output_index": index, "delta": .string(piece)])
                }
                add(
                    "response.function_call_arguments.done",
                    ["item_id": itemId, "output_index": index, "arguments": .string(arguments)])
            default:
                add("response.output_item.added", ["output_index": index, "item": .object(started)])
            }
            add("response.output_item.done", ["output_index": index, "item": item])
        }
        let final =
            switch response["status"]?.stringValue {
            case "failed": "response.failed"
            case "incomplete": "response.incomplete"
            default: "response.completed"
            }
        add(final, ["response": response])
        return out
    }

    /// Chat Completions chunks for `completion` (a whole `chat.completion`): the role, the text in
    /// pieces, each tool call (id and name first, then its arguments in pieces), the
    /// `finish_reason`, a last chunk with the usage (as `stream_options.include_usage` asks), and
    /// `[DONE]`.
    public static func chatEvents(_ completion: JSONValue) -> [Event] {
        var out: [Event] = []
        let choice = completion["choices"]?.arrayValue?.first ?? .null
        let message = choice["message"] ?? .null
        func chunk(_ delta: JSONValue, finish: JSONValue = .null, choices: Bool = true, usage: JSONValue = .null) {
            let o: [String: JSONValue] = [
                "id": completion["id"] ?? "chatcmpl-stream", "object": "chat.completion.chunk",
                "created": completion["created"] ?? 1_700_000_000, "model": completion["model"] ?? .null,
                "choices": choices ? [["index": 0, "delta": delta, "finish_reason": finish]] : [],
                "usage": usage,
            ]
            out.append((nil, JSONValue.object(o).compact))
        }
        chunk(["role": message["role"] ?? "assistant", "content": ""])
        if let text = message["content"]?.stringValue {
            for piece in pieces(text) { chunk(["content": .string(piece)]) }
        }
        if let refusal = message["refusal"]?.stringValue {
            for piece in pieces(refusal) { chunk(["refusal": .string(piece)]) }
        }
        for (k, call) in (message["tool_calls"]?.arrayValue ?? []).enumerated() {
            let index = JSONValue.number(Double(k))
            chunk([
                "tool_calls": [
                    [
                        "index": index, "id": call["id"] ?? .null, "type": call["type"] ?? "function",
                        "function": ["name": call["function"]?["name"] ?? "", "arguments": ""],
                    ]
                ]
            ])
            for piece in pieces(call["function"]?["arguments"]?.stringValue ?? "") {
                chunk(["tool_calls": [["index": index, "function": ["arguments": .string(piece)]]]])
            }
        }
        chunk([:], finish: choice["finish_reason"] ?? "stop")
        if let usage = completion["usage"], !usage.isNull { chunk(.null, choices: false, usage: usage) }
        out.append((nil, "[DONE]"))
        return out
    }
}

extension TestHTTPResponse {
    /// A `text/event-stream` response: one chunk per event, each after `pause`, ended by `end`.
    public static func sse(
        _ events: [ModelStreams.Event], pause: Duration = .zero, end: StreamEnd = .complete
    ) -> TestHTTPResponse {
        var r = TestHTTPResponse(status: 200, headers: [("Content-Type", "text/event-stream; charset=utf-8")])
        r.parts = events.map { e in
            let name = e.event.map { "event: \($0)\n" } ?? ""
            let data = e.data.split(separator: "\n", omittingEmptySubsequences: false).map { "data: \($0)\n" }
                .joined()
            return Part(pause: pause, bytes: Array((name + data + "\n").utf8))
        }
        r.end = end
        return r
    }

    /// A model stand-in's answer: `reply` (a Responses `response` or a `chat.completion`, as the
    /// non-streamed call returns it) as JSON, or, when the request asked for `stream: true`, as
    /// the event stream the API sends for it.
    public static func modelReply(_ reply: JSONValue, for request: TestHTTPRequest, pause: Duration = .zero)
        -> TestHTTPResponse
    {
        guard request.json?["stream"]?.boolValue == true else { return .json(reply) }
        let chat = reply["object"]?.stringValue == "chat.completion" || request.path.hasSuffix("/chat/completions")
        return .sse(chat ? ModelStreams.chatEvents(reply) : ModelStreams.responsesEvents(reply), pause: pause)
    }
}
