import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeRunner
import BridgeTestSupport
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

// Streamed model calls (`stream: true`) against loopback stand-ins that answer with the
// APIs' server-sent events: the same run streamed and not streamed records the same spans and
// usage; error events, cut streams and stalled streams fail the call (retriably where a new
// attempt may succeed), never as a partial answer.

extension Result {
    /// The error, when this is a failure.
    fileprivate var failure: Failure? { if case .failure(let e) = self { e } else { nil } }
}

private func streamSettings(_ server: TestHTTPServer, stream: Bool = true, retries: Int = 0) -> OpenAISettings {
    var s = OpenAISettings(
        baseURL: server.url("/v1/"), apiKey: "sk-test-stream",
        retry: RetryPolicy(maxRetries: retries, initialDelay: .milliseconds(1), maxDelay: .milliseconds(2)))
    s.stream = stream
    return s
}

private struct StreamTestTools: ToolExecutor {
    func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        "{\"tool\":\"\(tool.name)\",\"found\":true}"
    }
}

private func streamSpec(api: ModelAPI) -> RunSpec {
    let schema: JSONValue = [
        "type": "object", "properties": ["q": ["type": "string"]], "required": ["q"], "additionalProperties": false,
    ]
    let tools: [String: ToolSpec] = [
        "lookup": ToolSpec(
            name: "lookup", description: "Looks things up.", parameters: schema,
            implementation: .command(CommandToolSpec(argv: ["true"])))
    ]
    let main = AgentSpec(
        name: "Assistant", instructions: "You help.", model: "gpt-4.1", tools: ["lookup"], handoffs: [],
        modelAPI: api)
    return RunSpec(
        traceId: TraceID.forTask("s1", attempt: 1), workflowName: "bridge tasks", groupId: nil, metadata: [:],
        startingAgent: "Assistant", agents: ["Assistant": main], tools: tools,
        input: "Find x.", maxTurns: 10, traceIncludeSensitiveData: true, taskId: "s1", attempt: 1)
}

private let usageJSON: JSONValue = [
    "input_tokens": 100, "input_tokens_details": ["cached_tokens": 20], "output_tokens": 10,
    "output_tokens_details": ["reasoning_tokens": 3], "total_tokens": 110,
]

/// A function call first; once the input carries its output, a message ("x is 42.").
private func responsesReply(_ body: JSONValue) -> JSONValue {
    let input = body["input"]?.arrayValue ?? []
    let done = input.contains { $0["type"]?.stringValue == "function_call_output" }
    let output: JSONValue =
        done
        ? [
            "type": "message", "id": "msg_2", "role": "assistant", "status": "completed",
            "content": [["type": "output_text", "text": "x is 42, said the streamed model.", "annotations": []]],
        ]
        : [
            "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup",
            "arguments": "{\"q\":\"x and some more text\"}", "status": "completed",
        ]
    return [
        "id": done ? "resp_2" : "resp_1", "object": "response", "status": "completed", "model": "gpt-4.1-2025-04-14",
        "output": [output], "usage": usageJSON,
    ]
}

private func chatReply(_ body: JSONValue) -> JSONValue {
    let messages = body["messages"]?.arrayValue ?? []
    let done = messages.contains { $0["role"]?.stringValue == "tool" }
    let message: JSONValue =
        done
        ? ["role": "assistant", "content": "x is 42, said the streamed chat model."]
        : [
            "role": "assistant", "content": nil,
            "tool_calls": [
                [
                    "id": "call_1", "type": "function",
                    "function": ["name": "lookup", "arguments": "{\"q\":\"x and some more text\"}"],
                ]
            ],
        ]
    return [
        "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4.1",
        "choices": [["index": 0, "message": message, "finish_reason": done ? "stop" : "tool_calls"]],
        "usage": [
            "prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60,
            "prompt_tokens_details": ["cached_tokens": 5],
        ],
    ]
}

private func standIn(_ r: TestHTTPRequest) -> TestHTTPResponse {
    guard let body = r.json else { return .text("no body", status: 400) }
    switch r.path {
    case "/v1/responses": return .modelReply(responsesReply(body), for: r)
    case "/v1/chat/completions": return .modelReply(chatReply(body), for: r)
    default: return .text("not found", status: 404)
    }
}

private func run(_ api: ModelAPI, stream: Bool) async throws -> (RunResult, [SpanRecord], [TestHTTPRequest]) {
    let server = try TestHTTPServer(handler: standIn)
    defer { server.stop() }
    let client = HTTPClient()
    defer { client.shutdown() }
    let spec = streamSpec(api: api)
    let recorder = TraceRecorder(spec: spec, sinks: [], includeSensitiveData: true)
    let model = ModelProviders.make(settings: streamSettings(server, stream: stream), client: client)
    let result = await AgentRunner(model: model, tools: StreamTestTools(), observer: recorder).run(spec, taskRow: [:])
    return (result, await recorder.recorded, server.requests)
}

/// A span without what differs between runs: ids, times, and the streamed call's time to first token.
private func comparable(_ s: SpanRecord) -> JSONValue {
    var data = s.spanData.objectValue ?? [:]
    data[RunnerMessages.timeToFirstTokenKey] = nil
    return ["data": .object(data), "error": s.error ?? .null, "root": .bool(s.parentId == nil)]
}

@Suite struct ModelStreamingTests {
    @Test(arguments: [ModelAPI.responses, .chatCompletions])
    func streamedAndPlainCallsRecordTheSameSpansAndUsage(api: ModelAPI) async throws {
        let (plain, plainSpans, plainRequests) = try await run(api, stream: false)
        let (streamed, streamedSpans, streamedRequests) = try await run(api, stream: true)
        #expect(plain.status == .completed && streamed.status == .completed)
        #expect(streamed.finalOutput == plain.finalOutput)
        #expect(streamed.finalOutput?.contains("said the streamed") == true)
        #expect(streamed.usage == plain.usage)
        #expect(streamed.usage.requests == 2 && streamed.usage.inputTokens > 0)
        #expect(streamed.transcript == plain.transcript)
        #expect(streamedSpans.map(comparable) == plainSpans.map(comparable))
        // The streamed requests asked for a stream (Chat: with usage); the plain ones did not.
        #expect(plainRequests.allSatisfy { $0.json?["stream"] == nil && $0.json?["stream_options"] == nil })
        #expect(streamedRequests.count == 2)
        for r in streamedRequests {
            #expect(r.json?["stream"] == true)
            #expect(r.header("Accept") == "text/event-stream")
            #expect(r.json?["stream_options"] == (api == .chatCompletions ? ["include_usage": true] : nil))
        }
        // Only the streamed model spans carry a time to first token.
        let kind = api == .responses ? "response" : "generation"
        let modelSpans = streamedSpans.filter { $0.type == kind }
        #expect(modelSpans.count == 2)
        #expect(modelSpans.allSatisfy { $0.spanData[RunnerMessages.timeToFirstTokenKey]?.doubleValue != nil })
        #expect(!plainSpans.contains { $0.spanData[RunnerMessages.timeToFirstTokenKey] != nil })
    }

    @Test func timeToFirstTokenIsSetOnlyForStreams() async throws {
        let server = try TestHTTPServer { r in
            // Answers JSON although asked to stream (a server that cannot): read as a plain answer.
            r.json?["input"] != nil && r.header("X-Plain") == nil
                ? .modelReply(responsesReply(r.json!), for: r, pause: .milliseconds(5))
                : .json(responsesReply(r.json ?? [:]))
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let spec = streamSpec(api: .responses)
        let request = ModelRequest(
            agent: spec.agents["Assistant"]!, input: [["role": "user", "content": "Find x."]], functionTools: [],
            hostedTools: [], turn: 1)
        let streamed = try await ResponsesModel(settings: streamSettings(server), client: client).respond(request)
        #expect(streamed.timeToFirstToken != nil)
        #expect(streamed.responseId == "resp_1")
        #expect(streamed.output.first?["arguments"] == "{\"q\":\"x and some more text\"}")

        let jsonServer = try TestHTTPServer { r in .json(responsesReply(r.json ?? [:])) }
        defer { jsonServer.stop() }
        let fallback = try await ResponsesModel(settings: streamSettings(jsonServer), client: client).respond(request)
        #expect(fallback.timeToFirstToken == nil)
        #expect(fallback.responseId == "resp_1")
        #expect(jsonServer.requests.first?.json?["stream"] == true)
    }

    // MARK: - Failures mid-stream

    /// Calls the Responses model once against `handler` (no retries unless given).
    private func call(
        _ handler: @escaping TestHTTPServer.Handler, api: ModelAPI = .responses, retries: Int = 0,
        stall: Duration? = nil
    ) async throws -> (Result<ModelResponse, ModelProviderError>, [TestHTTPRequest]) {
        let server = try TestHTTPServer(handler: handler)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        var settings = streamSettings(server, retries: retries)
        settings.streamStallTimeout = stall
        let model = ModelProviders.make(settings: settings, defaultAPI: api, client: client)
        let spec = streamSpec(api: api)
        let request = ModelRequest(
            agent: spec.agents["Assistant"]!, input: [["role": "user", "content": "Find x."]], functionTools: [],
            hostedTools: [], turn: 1)
        do {
            return (.success(try await model.respond(request)), server.requests)
        } catch let e as ModelProviderError {
            return (.failure(e), server.requests)
        }
    }

    /// The first `n` events of the answer to `body`.
    private func prefix(_ body: JSONValue, _ n: Int) -> [ModelStreams.Event] {
        Array(ModelStreams.responsesEvents(responsesReply(body)).prefix(n))
    }

    @Test func anErrorEventMidStreamFailsTheCallRetriablyAndIsRetried() async throws {
        let (result, requests) = try await call(
            { r in
                .sse(
                    self.prefix(r.json ?? [:], 3) + [
                        (
                            "error",
                            #"{"type":"error","code":"server_error","message":"The server had an error while processing your request.","param":null,"sequence_number":3}"#
                        )
                    ])
            }, retries: 1)
        let e = try #require(result.failure, "a partial stream succeeded")
        #expect(e.retriable)
        #expect(e.message.contains("server_error") && e.message.contains("had an error"), "\(e.message)")
        #expect(e.message.contains("after 2 attempts"))
        #expect(requests.count == 2)
    }

    @Test func anInvalidRequestErrorEventIsTerminal() async throws {
        let (result, requests) = try await call(
            { _ in
                .sse([
                    (
                        "error",
                        #"{"type":"error","code":"context_length_exceeded","message":"Your input exceeds the context window.","param":"input"}"#
                    )
                ])
            }, retries: 2)
        let e = try #require(result.failure, "an error event succeeded")
        #expect(!e.retriable)
        #expect(requests.count == 1)
        #expect(e.message.contains("context window"))
    }

    @Test(arguments: ["failed", "incomplete"])
    func responseFailedAndIncompleteEventsFailLikeTheirPlainAnswers(status: String) async throws {
        let (result, requests) = try await call(
            { r in
                var reply = responsesReply(r.json ?? [:]).objectValue!
                reply["status"] = .string(status)
                reply["error"] = status == "failed" ? ["code": "invalid_prompt", "message": "flagged"] : .null
                reply["incomplete_details"] = status == "incomplete" ? ["reason": "max_output_tokens"] : .null
                return .sse(ModelStreams.responsesEvents(.object(reply)))
            }, retries: 2)
        let e = try #require(result.failure, "response.\(status) succeeded")
        #expect(!e.retriable)
        #expect(requests.count == 1)
        #expect(e.message.contains(status == "failed" ? "failed (invalid_prompt): flagged" : "max_output_tokens"))
    }

    @Test func aChatErrorChunkFailsTheCall() async throws {
        let (result, _) = try await call(
            { r in
                let events = ModelStreams.chatEvents(chatReply(r.json ?? [:]))
                return .sse(
                    Array(events.prefix(2)) + [
                        (nil, #"{"error":{"message":"upstream overloaded","type":"server_error","code":null}}"#)
                    ])
            }, api: .chatCompletions)
        let e = try #require(result.failure, "a chat error chunk succeeded")
        #expect(e.retriable)
        #expect(e.message.contains("upstream overloaded"))
    }

    @Test(arguments: [ModelAPI.responses, .chatCompletions])
    func aStreamCutMidEventIsARetriableFailureNotAPartialAnswer(api: ModelAPI) async throws {
        let (result, requests) = try await call(
            { r in
                let body = r.json ?? [:]
                let all =
                    api == .responses
                    ? ModelStreams.responsesEvents(responsesReply(body)) : ModelStreams.chatEvents(chatReply(body))
                // Every event but the last, then half an event, and the connection closes.
                var response = TestHTTPResponse.sse(Array(all.dropLast()), end: .cut)
                response.parts?.append(.init(bytes: Array("data: {\"type\":\"response.compl".utf8)))
                return response
            }, api: api, retries: 1)
        let e = try #require(result.failure, "a cut stream succeeded")
        #expect(e.retriable)
        #expect(requests.count == 2)
        #expect(
            e.message.contains("cut mid-event") || e.message.contains("transport") || e.message.contains("curl"),
            "\(e.message)")
    }

    @Test func aStreamThatEndsCleanlyWithoutItsFinalEventIsCut() async throws {
        let (result, _) = try await call({ r in .sse(self.prefix(r.json ?? [:], 4)) })
        let e = try #require(result.failure, "an unfinished stream succeeded")
        #expect(e.retriable)
        #expect(e.message.contains("without response.completed"), "\(e.message)")
    }

    @Test func aStalledStreamTimesOutBetweenEventsAndIsRetriable() async throws {
        let (result, requests) = try await call(
            { r in .sse(self.prefix(r.json ?? [:], 3), end: .stall) }, retries: 1, stall: .seconds(1))
        let e = try #require(result.failure, "a stalled stream succeeded")
        #expect(e.retriable)
        #expect(requests.count == 2)
        #expect(e.message.contains("timeout") && e.message.contains("stream stalled"), "\(e.message)")
    }

    @Test func anErrorStatusOnAStreamRequestIsReadAsJSONAndRetried() async throws {
        let (result, requests) = try await call(
            TestHTTPServer.sequence(
                [.json(["error": ["message": "overloaded", "type": "server_error"]], status: 503)],
                then: { r in .modelReply(responsesReply(r.json ?? [:]), for: r) }), retries: 1)
        let response = try result.get()
        #expect(response.responseId == "resp_1" && response.timeToFirstToken != nil)
        #expect(requests.count == 2)
    }
}

@Suite struct SSEParserTests {
    static let stream =
        "\u{FEFF}: keep-alive\r\nevent: one\r\ndata: {\"a\":1}\r\n\r\ndata:two\ndata: lines\n\nid: 7\nevent: x\n\n"
        + "event: three\rdata: cr\r\rretry: 10\ndata: last\n\n"

    static let expected = [
        ServerSentEvent(event: "one", data: "{\"a\":1}"), ServerSentEvent(data: "two\nlines"),
        ServerSentEvent(event: "three", data: "cr"), ServerSentEvent(data: "last"),
    ]

    func parse(_ chunks: [[UInt8]], max: Int = 1 << 20) throws -> [ServerSentEvent] {
        var parser = SSEParser(maxEventBytes: max)
        var out: [ServerSentEvent] = []
        for c in chunks { try c.withUnsafeBytes { try parser.feed($0) { out.append($0) } } }
        return out
    }

    @Test func parsesWholeAndSplitAtEveryByte() throws {
        let bytes = Array(Self.stream.utf8)
        #expect(try parse([bytes]) == Self.expected)
        #expect(try parse(bytes.map { [$0] }) == Self.expected)
        for cut in 1..<bytes.count {
            #expect(try parse([Array(bytes[..<cut]), Array(bytes[cut...])]) == Self.expected, "cut at \(cut)")
        }
    }

    @Test func anOversizedEventIsRefused() throws {
        let big = Array(("data: " + String(repeating: "x", count: 5000) + "\n\n").utf8)
        #expect(throws: SSEError.self) { try parse([big], max: 2048) }
        #expect(try parse([big], max: 8192).first?.data.count == 5000)
    }

    @Test func aWholeBodyKeepsItsLastEventWithoutTheClosingBlankLine() {
        let body = Array("event: message\ndata: {\"id\":1}\n\ndata: {\"id\":2}".utf8)
        #expect(
            SSEParser.events(in: body) == [
                ServerSentEvent(event: "message", data: "{\"id\":1}"), ServerSentEvent(data: "{\"id\":2}"),
            ])
    }

    @Test func reportsAnUnfinishedEvent() throws {
        var parser = SSEParser()
        try Array("data: {\"a\"".utf8).withUnsafeBytes { try parser.feed($0) { _ in } }
        #expect(parser.isMidEvent)
        try Array(":1}\n\n".utf8).withUnsafeBytes { try parser.feed($0) { _ in } }
        #expect(!parser.isMidEvent && parser.eventCount == 1)
    }
}
