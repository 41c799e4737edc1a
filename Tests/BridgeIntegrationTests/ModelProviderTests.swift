import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeRunner
import BridgeTestSupport
// Over 400 lines: the Responses, retry and Chat Completions suites share this file's private
// request and response builders and settings; split across files, those would become
// module-wide names in the test target.
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

// Model providers against loopback stand-ins for /v1/responses and /v1/chat/completions.
// No test waits on a real backoff: the retry policy's sleep is injected and records the
// requested delays.

private let testKey = "sk-test-SECRET-4f1c9e0b7a"

/// Records the delays the retry policy asked for, without waiting.
private actor ModelSleepLog {
    var delays: [Duration] = []
    func add(_ d: Duration) { delays.append(d) }
}

private func settings(_ server: TestHTTPServer, retries: Int = 2, sleeps: ModelSleepLog = ModelSleepLog())
    -> OpenAISettings
{
    OpenAISettings(
        baseURL: server.url("/v1/"), apiKey: testKey, organization: "org-test", project: "proj-test",
        retry: RetryPolicy(
            maxRetries: retries, initialDelay: .milliseconds(1), maxDelay: .milliseconds(4),
            sleep: { await sleeps.add($0) }))
}

/// Answers every function tool with a fixed JSON document.
private struct ModelTestTools: ToolExecutor {
    func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        "{\"tool\":\"\(tool.name)\",\"found\":true}"
    }
}

private let lookupSchema: JSONValue = [
    "type": "object", "properties": ["q": ["type": "string"]], "required": ["q"], "additionalProperties": false,
]

/// An agent with one function tool (`lookup`) and a handoff to `Helper`.
private func modelSpec(
    api: String? = nil, helperAPI: String? = nil, hosted: Bool = false,
    settings: [String: JSONValue] = [:]
) -> RunSpec {
    var tools: [String: ToolSpec] = [
        "lookup": ToolSpec(
            name: "lookup", description: "Looks things up.", parameters: lookupSchema,
            implementation: .command(CommandToolSpec(argv: ["true"])))
    ]
    var agentTools = ["lookup"]
    if hosted {
        tools["search"] = ToolSpec(
            name: "search", description: "", parameters: [:],
            implementation: .hosted(HostedToolSpec(type: "web_search")))
        agentTools.append("search")
    }
    let main = AgentSpec(
        name: "Assistant", instructions: "You help.", model: "gpt-4.1", modelSettings: settings,
        tools: agentTools,
        handoffs: [
            HandoffSpec(
                agent: "Helper", toolName: "transfer_to_helper",
                toolDescription: HandoffSpec.defaultDescription(for: "Helper", handoffDescription: nil))
        ],
        modelAPI: api.flatMap(ModelAPI.init(name:)))
    let helper = AgentSpec(
        name: "Helper", instructions: "You assist.", model: "gpt-4.1-mini", tools: [], handoffs: [],
        modelAPI: helperAPI.flatMap(ModelAPI.init(name:)))
    return RunSpec(
        traceId: TraceID.forTask("m1", attempt: 1), workflowName: "bridge tasks", groupId: nil, metadata: [:],
        startingAgent: "Assistant", agents: ["Assistant": main, "Helper": helper], tools: tools,
        input: "Find x.", maxTurns: 10, traceIncludeSensitiveData: true, taskId: "m1", attempt: 1)
}

private func request(_ spec: RunSpec, agent: String = "Assistant") -> ModelRequest {
    let a = spec.agents[agent]!
    return ModelRequest(
        agent: a, input: [["role": "user", "content": .string(spec.input)]],
        functionTools: AgentRunner.functionTools(for: a, in: spec),
        hostedTools: AgentRunner.hostedTools(for: a, in: spec), turn: 1, traceId: spec.traceId)
}

private func responsesUsage(_ input: Int, _ output: Int) -> JSONValue {
    [
        "input_tokens": .number(Double(input)), "input_tokens_details": ["cached_tokens": 20],
        "output_tokens": .number(Double(output)), "output_tokens_details": ["reasoning_tokens": 3],
        "total_tokens": .number(Double(input + output)),
    ]
}

private func responseJSON(_ id: String, output: [JSONValue], status: String = "completed") -> JSONValue {
    [
        "id": .string(id), "object": "response", "status": .string(status), "model": "gpt-4.1-2025-04-14",
        "output": .array(output), "usage": responsesUsage(100, 10),
    ]
}

private let finalMessage: JSONValue = [
    "type": "message", "id": "msg_2", "role": "assistant", "status": "completed",
    "content": [["type": "output_text", "text": "x is 42.", "annotations": []]],
]

/// The Responses stand-in: a function call first; once the input carries its output, a message.
private func responsesHandler(_ r: TestHTTPRequest) -> TestHTTPResponse {
    guard r.path == "/v1/responses" else { return .text("not found", status: 404) }
    let input = r.json?["input"]?.arrayValue ?? []
    if input.contains(where: { $0["type"]?.stringValue == "function_call_output" }) {
        return .json(responseJSON("resp_2", output: [finalMessage]))
    }
    return .json(
        responseJSON(
            "resp_1",
            output: [
                [
                    "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup",
                    "arguments": "{\"q\":\"x\"}", "status": "completed",
                ]
            ]))
}

private func runTraced(_ spec: RunSpec, model: any ModelProvider) async -> (RunResult, [SpanRecord]) {
    let recorder = TraceRecorder(spec: spec, sinks: [], includeSensitiveData: true)
    let result = await AgentRunner(model: model, tools: ModelTestTools(), observer: recorder).run(spec, taskRow: [:])
    return (result, await recorder.recorded)
}

@Suite struct ModelResponsesTests {
    /// A tool call the API sent without its name (or call id, or string arguments) is a
    /// malformed answer, named as such, not an unknown item the run skips.
    @Test(
        arguments: [
            ["type": "function_call", "call_id": "call_1", "arguments": "{}"],
            ["type": "function_call", "name": "lookup", "arguments": "{}"],
            ["type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": ["x": 1]],
        ] as [JSONValue])
    func aMalformedFunctionCallIsABadAnswer(_ call: JSONValue) {
        let answer: JSONValue = ["id": "resp_1", "status": "completed", "output": [call]]
        let error = #expect(throws: ModelProviderError.self) {
            try ResponsesModel.parseResponse(answer, requestedModel: "m")
        }
        #expect(error?.message.contains("output[0] is a function_call without") == true, "\(String(describing: error))")
        #expect(error?.retriable == false)
    }

    @Test func functionCallLoopThroughTheRunner() async throws {
        let server = try TestHTTPServer(handler: responsesHandler)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let spec = modelSpec()
        let model = ModelProviders.make(settings: settings(server), client: client)
        let (result, spans) = await runTraced(spec, model: model)

        #expect(result.status == .completed)
        #expect(result.finalOutput == "x is 42.")
        #expect(
            result.usage == Usage(requests: 2, inputTokens: 200, outputTokens: 20, cachedTokens: 40, reasoningTokens: 6)
        )

        let requests = server.requests
        try #require(requests.count == 2)
        for r in requests {
            #expect(r.method == "POST")
            #expect(r.path == "/v1/responses")
            #expect(r.header("Authorization") == "Bearer \(testKey)")
            #expect(r.header("OpenAI-Organization") == "org-test")
            #expect(r.header("OpenAI-Project") == "proj-test")
            #expect(r.header("Content-Type") == "application/json")
            let body = try #require(r.json)
            #expect(body["model"] == "gpt-4.1")
            #expect(body["instructions"] == "You help.")
            #expect(
                body["tools"] == [
                    [
                        "type": "function", "name": "lookup", "description": "Looks things up.",
                        "parameters": lookupSchema, "strict": true,
                    ],
                    [
                        "type": "function", "name": "transfer_to_helper",
                        "description": .string(HandoffSpec.defaultDescription(for: "Helper", handoffDescription: nil)),
                        "parameters": RunnerMessages.emptyStrictSchema, "strict": true,
                    ],
                ])
            #expect(body["store"] == nil, "the SDK sends no store unless model_settings sets it")
        }
        #expect(requests[0].json?["input"] == [["role": "user", "content": "Find x."]])
        let second = try #require(requests[1].json?["input"]?.arrayValue)
        #expect(second.count == 3)
        #expect(second[1]["type"] == "function_call")
        #expect(second[1]["call_id"] == "call_1")
        #expect(
            second[2] == [
                "type": "function_call_output", "call_id": "call_1",
                "output": "{\"tool\":\"lookup\",\"found\":true}",
            ])

        let responseSpans = spans.filter { $0.type == "response" }
        #expect(responseSpans.map { $0.spanData["response_id"] } == ["resp_1", "resp_2"])
        #expect(responseSpans.first?.spanData["usage"]?["input_tokens"] == 100)
        #expect(spans.contains { $0.type == "function" && $0.spanData["name"] == "lookup" })
    }

    @Test func requestCarriesHostedToolsAndModelSettings() async throws {
        let server = try TestHTTPServer { _ in .json(responseJSON("resp_9", output: [finalMessage])) }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        var spec = modelSpec(settings: [
            "tool_choice": "lookup", "parallel_tool_calls": false, "store": false, "temperature": 0.2,
            "max_tokens": 300, "previous_response_id": "resp_prev", "frequency_penalty": 0.5, "top_p": 0.9,
        ])
        spec.tools["files"] = ToolSpec(
            name: "files", description: "", parameters: [:],
            implementation: .hosted(HostedToolSpec(type: "file_search", vectorStoreIds: ["vs_1"])))
        spec.tools["code"] = ToolSpec(
            name: "code", description: "", parameters: [:],
            implementation: .hosted(HostedToolSpec(type: "code_interpreter")))
        spec.tools["web"] = ToolSpec(
            name: "web", description: "", parameters: [:],
            implementation: .hosted(HostedToolSpec(type: "web_search")))
        spec.agents["Assistant"]?.tools += ["web", "files", "code"]
        let model = ResponsesModel(settings: settings(server), client: client)
        let response = try await model.respond(request(spec))
        #expect(response.responseId == "resp_9")
        #expect(response.model == "gpt-4.1-2025-04-14")
        let body = try #require(server.requests.first?.json)
        let tools = try #require(body["tools"]?.arrayValue)
        #expect(
            Array(tools.dropFirst(2)) == [
                ["type": "web_search"], ["type": "file_search", "vector_store_ids": ["vs_1"]],
                ["type": "code_interpreter", "container": ["type": "auto"]],
            ])
        #expect(body["tool_choice"] == ["type": "function", "name": "lookup"])
        #expect(body["parallel_tool_calls"] == false)
        #expect(body["store"] == false)
        #expect(body["temperature"] == 0.2)
        #expect(body["top_p"] == 0.9)
        #expect(body["max_output_tokens"] == 300)
        #expect(body["max_tokens"] == nil)
        #expect(body["previous_response_id"] == "resp_prev")
        #expect(body["frequency_penalty"] == nil, "Chat-only settings are not sent to the Responses API")
    }

    @Test func failedAndIncompleteStatusesAreTerminalErrors() async throws {
        let server = try TestHTTPServer(
            handler: TestHTTPServer.sequence(
                [
                    .json([
                        "id": "resp_f", "status": "failed", "output": [],
                        "error": ["code": "server_error", "message": "The model crashed."],
                    ]),
                    .json([
                        "id": "resp_i", "status": "incomplete", "output": [],
                        "incomplete_details": ["reason": "max_output_tokens"],
                    ]),
                ], then: { _ in .text("unexpected", status: 500) }))
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let model = ResponsesModel(settings: settings(server), client: client)
        let failed = await #expect(throws: ModelProviderError.self) {
            _ = try await model.respond(request(modelSpec()))
        }
        #expect(failed?.retriable == false)
        #expect(failed?.message.contains("The model crashed.") == true)
        #expect(failed?.message.contains("resp_f") == true)
        let incomplete = await #expect(throws: ModelProviderError.self) {
            _ = try await model.respond(request(modelSpec()))
        }
        #expect(incomplete?.retriable == false)
        #expect(incomplete?.message.contains("incomplete: max_output_tokens") == true)
        #expect(server.requests.count == 2, "in-response statuses are not retried")
    }

    @Test func failedStatusFailsTheRunWithTheMessageOnTheSpan() async throws {
        let server = try TestHTTPServer { _ in
            .json(["id": "resp_f", "status": "failed", "output": [], "error": ["code": "x", "message": "Boom."]])
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let (result, spans) = await runTraced(
            modelSpec(), model: ResponsesModel(settings: settings(server), client: client))
        #expect(result.status == .failed)
        #expect(result.error?.type == .modelError)
        #expect(result.error?.retriable == false)
        let span = try #require(spans.first { $0.type == "response" })
        #expect(span.error?["message"] == .string(RunnerMessages.spanModelError))
        #expect(span.error?["data"]?["error"]?.stringValue?.contains("Boom.") == true)
    }
}

@Suite struct ModelRetryTests {
    fileprivate func model(_ server: TestHTTPServer, retries: Int = 2, sleeps: ModelSleepLog = ModelSleepLog()) -> (
        ResponsesModel, HTTPClient
    ) {
        let client = HTTPClient()
        return (ResponsesModel(settings: settings(server, retries: retries, sleeps: sleeps), client: client), client)
    }

    /// One call of `m`, expected to fail with a ModelProviderError that is `retriable` or not
    /// and carries HTTP status `status`; the error.
    @discardableResult
    fileprivate func failedCall(
        _ m: ResponsesModel, retriable: Bool, status: Int?,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async -> ModelProviderError? {
        let error = await #expect(throws: ModelProviderError.self, sourceLocation: sourceLocation) {
            try await m.respond(request(modelSpec()))
        }
        #expect(error?.retriable == retriable, sourceLocation: sourceLocation)
        #expect(error?.statusCode == status, sourceLocation: sourceLocation)
        return error
    }

    @Test func twoServiceUnavailablesThenSuccess() async throws {
        let sleeps = ModelSleepLog()
        let server = try TestHTTPServer(
            handler: TestHTTPServer.sequence(
                [.text("busy", status: 503), .text("busy", status: 503)], then: responsesHandler))
        defer { server.stop() }
        let (m, client) = model(server, sleeps: sleeps)
        defer { client.shutdown() }
        let response = try await m.respond(request(modelSpec()))
        #expect(response.responseId == "resp_1")
        #expect(server.requests.count == 3)
        let delays = await sleeps.delays
        #expect(delays.count == 2)
        // Exponential backoff with jitter: retry n waits 1 ms × 2ⁿ × [0.75, 1].
        #expect(delays[0] <= .milliseconds(1) && delays[0] >= .microseconds(750))
        #expect(delays[1] <= .milliseconds(2) && delays[1] >= .microseconds(1500))
    }

    @Test func retryAfterHeadersAreHonoured() async throws {
        let sleeps = ModelSleepLog()
        let server = try TestHTTPServer(
            handler: TestHTTPServer.sequence(
                [
                    .json(
                        ["error": ["message": "slow down", "type": "rate_limit"]], status: 429,
                        headers: [("retry-after-ms", "1")]),
                    .json(
                        ["error": ["message": "slow down", "type": "rate_limit"]], status: 429,
                        headers: [("retry-after", "3")]),
                ], then: responsesHandler))
        defer { server.stop() }
        let (m, client) = model(server, sleeps: sleeps)
        defer { client.shutdown() }
        _ = try await m.respond(request(modelSpec()))
        #expect(await sleeps.delays == [.milliseconds(1), .seconds(3)])
        #expect(server.requests.count == 3)
    }

    @Test func longRetryAfterIsCapped() {
        let policy = RetryPolicy()
        #expect(policy.delay(retry: 0, retryAfter: .seconds(3600)) == .seconds(60))
        #expect(policy.delay(retry: 10, retryAfter: nil) <= .seconds(8))
        #expect(policy.delay(retry: 10, retryAfter: nil) >= .seconds(6))
    }

    @Test func badRequestFailsTerminalWithTheAPIMessage() async throws {
        let server = try TestHTTPServer { _ in
            .json(
                [
                    "error": [
                        "message": "Invalid schema for function 'lookup'.", "type": "invalid_request_error",
                        "param": "tools[0].parameters", "code": "invalid_function_parameters",
                    ]
                ], status: 400)
        }
        defer { server.stop() }
        let (m, client) = model(server)
        defer { client.shutdown() }
        let error = await failedCall(m, retriable: false, status: 400)
        #expect(error?.message.contains("Invalid schema for function 'lookup'.") == true)
        #expect(error?.message.contains("invalid_request_error") == true)
        #expect(server.requests.count == 1)
    }

    @Test func exhaustedRateLimitIsRetriable() async throws {
        let sleeps = ModelSleepLog()
        let server = try TestHTTPServer { _ in
            .json(
                ["error": ["message": "Rate limit reached", "type": "requests"]], status: 429,
                headers: [("retry-after-ms", "1")])
        }
        defer { server.stop() }
        let (m, client) = model(server, retries: 2, sleeps: sleeps)
        defer { client.shutdown() }
        let error = await failedCall(m, retriable: true, status: 429)
        #expect(error?.message.contains("Rate limit reached") == true)
        #expect(error?.message.contains("after 3 attempts") == true)
        #expect(server.requests.count == 3)

        // Through the runner: a retriable RunFailure (the worker's failed_retriable).
        let (result, _) = await runTraced(modelSpec(), model: m)
        #expect(result.status == .failed)
        #expect(result.error?.retriable == true)
        // The server's Retry-After carries over, so the task's retry waits at least that long.
        #expect(error?.retryAfter == .milliseconds(1))
        #expect(result.error?.retryAfter == .milliseconds(1))
    }

    @Test func shouldRetryHeaderDecides() async throws {
        let server = try TestHTTPServer(
            handler: TestHTTPServer.sequence(
                [
                    .text("no", status: 503, headers: [("x-should-retry", "false")]),
                    .text("conflict-ish", status: 400, headers: [("x-should-retry", "true")]),
                ], then: responsesHandler))
        defer { server.stop() }
        let (m, client) = model(server)
        defer { client.shutdown() }
        await failedCall(m, retriable: false, status: 503)
        #expect(server.requests.count == 1)
        // x-should-retry: true makes even a 400 retried.
        let response = try await m.respond(request(modelSpec()))
        #expect(response.responseId == "resp_1")
        #expect(server.requests.count == 3)
    }

    @Test func transportFailureIsRetried() async throws {
        let server = try TestHTTPServer(handler: TestHTTPServer.sequence([.disconnect], then: responsesHandler))
        defer { server.stop() }
        let (m, client) = model(server)
        defer { client.shutdown() }
        let response = try await m.respond(request(modelSpec()))
        #expect(response.responseId == "resp_1")
        #expect(server.requests.count == 2)
    }

    @Test func malformedJSONIsRetriedOnceThenTerminal() async throws {
        let garbage = TestHTTPResponse.text("<html>proxy hiccup</html>")
        let server = try TestHTTPServer(
            handler: TestHTTPServer.sequence([garbage, garbage, garbage], then: responsesHandler))
        defer { server.stop() }
        let (m, client) = model(server, retries: 5)
        defer { client.shutdown() }
        let error = await #expect(throws: ModelProviderError.self) { _ = try await m.respond(request(modelSpec())) }
        #expect(error?.retriable == false)
        #expect(error?.message.contains("not JSON") == true)
        #expect(server.requests.count == 2)
        // One garbled answer followed by a good one succeeds.
        let response = try await m.respond(request(modelSpec()))
        #expect(response.responseId == "resp_1")
    }

    @Test func theKeyNeverAppearsInErrors() async throws {
        let echo = "Incorrect API key provided: \(testKey). You can find your API key at https://platform.openai.com."
        let server = try TestHTTPServer(
            handler: TestHTTPServer.sequence(
                [
                    .json(
                        [
                            "error": [
                                "message": .string(echo), "type": "invalid_request_error", "code": "invalid_api_key",
                            ]
                        ], status: 401),
                    .text("upstream says \(testKey)", status: 502),
                    .text("not json \(testKey)"),
                    .json([
                        "id": "r", "status": "failed", "output": [],
                        "error": ["message": .string("bad key \(testKey)")],
                    ]),
                ], then: { _ in .text("", status: 500) }))
        defer { server.stop() }
        let (m, client) = model(server, retries: 0)
        defer { client.shutdown() }
        var descriptions: [String] = []
        for _ in 0..<4 {
            if let e = await #expect(
                throws: ModelProviderError.self, performing: { try await m.respond(request(modelSpec())) })
            {
                descriptions.append(e.description)
            }
        }
        #expect(descriptions.count == 4)
        #expect(descriptions[0].contains("Incorrect API key provided: ***"))
        for d in descriptions { #expect(!d.contains(testKey)) }
        // The request did carry the key.
        #expect(server.requests.first?.header("Authorization") == "Bearer \(testKey)")
    }
}

private func chatCompletion(_ message: JSONValue, finish: String = "stop") -> JSONValue {
    [
        "id": "chatcmpl-1", "object": "chat.completion", "model": "llama3.1:8b",
        "choices": [["index": 0, "message": message, "finish_reason": .string(finish)]],
        "usage": [
            "prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57,
            "prompt_tokens_details": ["cached_tokens": 5], "completion_tokens_details": ["reasoning_tokens": 1],
        ],
    ]
}

/// The Chat Completions stand-in: a tool call first; once a tool message is present, text.
private func chatHandler(_ r: TestHTTPRequest) -> TestHTTPResponse {
    guard r.path == "/v1/chat/completions" else { return .text("not found", status: 404) }
    let messages = r.json?["messages"]?.arrayValue ?? []
    if messages.contains(where: { $0["role"] == "tool" }) {
        return .json(
            chatCompletion(["role": "assistant", "content": "x is 42.", "refusal": .null, "tool_calls": .null]))
    }
    return .json(
        chatCompletion(
            [
                "role": "assistant", "content": .null,
                "tool_calls": [
                    ["id": "call_a", "type": "function", "function": ["name": "lookup", "arguments": "{\"q\":\"x\"}"]]
                ],
            ], finish: "tool_calls"))
}

@Suite struct ModelChatCompletionsTests {
    @Test func historyBecomesChatMessages() {
        let history: [ConversationItem] = [
            ["role": "user", "content": "Find x."],
            [
                "type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [["type": "output_text", "text": "Looking.", "annotations": []]],
            ],
            ["type": "function_call", "id": "fc_1", "call_id": "c1", "name": "lookup", "arguments": "{\"q\":\"x\"}"],
            ["type": "function_call", "id": "fc_2", "call_id": "c2", "name": "lookup", "arguments": ""],
            ["type": "function_call_output", "call_id": "c1", "output": "one"],
            ["type": "function_call_output", "call_id": "c2", "output": "two"],
            ["type": "function_call", "call_id": "c3", "name": "transfer_to_helper", "arguments": "{}"],
            ["type": "function_call_output", "call_id": "c3", "output": "{\"assistant\": \"Helper\"}"],
            ["type": "reasoning", "id": "rs_1", "summary": []],
            ["type": "message", "role": "user", "content": [["type": "input_text", "text": "More."]]],
        ]
        let messages = ChatConverter.messages(instructions: "You help.", history: history)
        #expect(
            messages == [
                ["content": "You help.", "role": "system"],
                ["role": "user", "content": "Find x."],
                [
                    "role": "assistant", "content": "Looking.",
                    "tool_calls": [
                        [
                            "id": "c1", "type": "function",
                            "function": ["name": "lookup", "arguments": "{\"q\":\"x\"}"],
                        ],
                        ["id": "c2", "type": "function", "function": ["name": "lookup", "arguments": "{}"]],
                    ],
                ],
                ["role": "tool", "tool_call_id": "c1", "content": "one"],
                ["role": "tool", "tool_call_id": "c2", "content": "two"],
                [
                    "role": "assistant", "content": .null,
                    "tool_calls": [
                        [
                            "id": "c3", "type": "function",
                            "function": ["name": "transfer_to_helper", "arguments": "{}"],
                        ]
                    ],
                ],
                ["role": "tool", "tool_call_id": "c3", "content": "{\"assistant\": \"Helper\"}"],
                ["role": "user", "content": [["type": "text", "text": "More."]]],
            ])
        #expect(
            ChatConverter.messages(instructions: "", history: [["role": "user", "content": "hi"]])
                == [["role": "user", "content": "hi"]])
    }

    @Test func replyBecomesResponsesItems() throws {
        let message: JSONValue = [
            "role": "assistant", "content": "Calling two tools.",
            "tool_calls": [
                ["id": "call_1", "type": "function", "function": ["name": "lookup", "arguments": "{\"q\":\"a\"}"]],
                ["id": "call_2", "type": "function", "function": ["name": "lookup", "arguments": "{\"q\":\"b\"}"]],
            ],
        ]
        let response = try ChatCompletionsModel.parseResponse(chatCompletion(message), requestedModel: "m")
        #expect(
            response.output == [
                [
                    "id": "__fake_id__", "type": "message", "role": "assistant", "status": "completed",
                    "content": [["type": "output_text", "text": "Calling two tools.", "annotations": []]],
                ],
                [
                    "id": "__fake_id__", "type": "function_call", "call_id": "call_1", "name": "lookup",
                    "arguments": "{\"q\":\"a\"}", "status": "completed",
                ],
                [
                    "id": "__fake_id__", "type": "function_call", "call_id": "call_2", "name": "lookup",
                    "arguments": "{\"q\":\"b\"}", "status": "completed",
                ],
            ])
        #expect(response.spanOutput == [message])
        #expect(
            response.usage == Usage(requests: 1, inputTokens: 50, outputTokens: 7, cachedTokens: 5, reasoningTokens: 1))
        #expect(response.model == "m", "the requested model, as the SDK's generation span records it")
        // Round trip: the items convert back to one assistant message with both calls.
        let back = ChatConverter.messages(instructions: "", history: response.output)
        #expect(back.count == 1)
        #expect(back[0]["tool_calls"]?.arrayValue?.count == 2)
        // The Responses API gets the items without the made-up ids.
        #expect(ResponsesModel.inputItems(response.output).allSatisfy { $0["id"] == nil })

        let noChoices = #expect(throws: ModelProviderError.self) {
            _ = try ChatCompletionsModel.parseResponse(["error": ["message": "model not loaded"]], requestedModel: "m")
        }
        #expect(noChoices?.message.contains("model not loaded") == true)
        #expect(throws: ModelProviderError.self) {
            _ = try ChatCompletionsModel.parseResponse(
                chatCompletion(["role": "assistant", "content": ""], finish: "length"), requestedModel: "m")
        }
    }

    /// A tool call the API sent without its name, or with an id or arguments that are not
    /// strings, is a malformed answer, named as such, not a call of "" or a call with `{}`.
    @Test(
        arguments: [
            ["id": "call_1", "type": "function", "function": ["arguments": "{}"]],
            ["id": "call_1", "type": "function", "function": ["name": "lookup", "arguments": ["q": "a"]]],
            ["id": 7, "type": "function", "function": ["name": "lookup", "arguments": "{}"]],
        ] as [JSONValue])
    func aMalformedToolCallIsABadAnswer(_ call: JSONValue) {
        let message: JSONValue = ["role": "assistant", "content": .null, "tool_calls": [call]]
        let error = #expect(throws: ModelProviderError.self) {
            try ChatCompletionsModel.parseResponse(chatCompletion(message), requestedModel: "m")
        }
        #expect(
            error?.message.contains("message.tool_calls[0] is a function call without") == true,
            "\(String(describing: error))")
        #expect(error?.retriable == false)
    }

    @Test func aToolCallWithoutAnIdIsKept() throws {
        let message: JSONValue = [
            "role": "assistant",
            "tool_calls": [["type": "function", "function": ["name": "lookup", "arguments": "{}"]]],
        ]
        let response = try ChatCompletionsModel.parseResponse(chatCompletion(message), requestedModel: "m")
        #expect(response.output.compactMap(\.functionCall).map(\.name) == ["lookup"])
    }

    @Test func runEmitsGenerationSpansWithMessages() async throws {
        let server = try TestHTTPServer(handler: chatHandler)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let spec = modelSpec(settings: ["temperature": 0, "max_tokens": 64, "truncation": "auto"])
        let model = ModelProviders.make(settings: settings(server), defaultAPI: .chatCompletions, client: client)
        let (result, spans) = await runTraced(spec, model: model)
        #expect(result.status == .completed)
        #expect(result.finalOutput == "x is 42.")
        #expect(result.usage.requests == 2)
        #expect(result.usage.inputTokens == 100)

        let requests = server.requests
        try #require(requests.count == 2)
        let body = try #require(requests[0].json)
        #expect(requests[0].header("Authorization") == "Bearer \(testKey)")
        #expect(body["model"] == "gpt-4.1")
        #expect(
            body["messages"] == [["content": "You help.", "role": "system"], ["role": "user", "content": "Find x."]])
        #expect(
            body["tools"]?.arrayValue?.first == [
                "type": "function",
                "function": [
                    "name": "lookup", "description": "Looks things up.", "parameters": lookupSchema, "strict": true,
                ],
            ])
        #expect(body["tools"]?.arrayValue?.count == 2)
        #expect(body["temperature"] == 0)
        #expect(body["max_tokens"] == 64)
        #expect(body["truncation"] == nil)
        #expect(body["store"] == nil, "store is sent by default only to api.openai.com")
        let second = try #require(requests[1].json?["messages"]?.arrayValue)
        #expect(
            second.suffix(2) == [
                [
                    "role": "assistant", "content": .null,
                    "tool_calls": [
                        [
                            "id": "call_a", "type": "function",
                            "function": ["name": "lookup", "arguments": "{\"q\":\"x\"}"],
                        ]
                    ],
                ],
                ["role": "tool", "tool_call_id": "call_a", "content": "{\"tool\":\"lookup\",\"found\":true}"],
            ])

        let generations = spans.filter { $0.type == "generation" }
        try #require(generations.count == 2)
        #expect(!spans.contains { $0.type == "response" })
        #expect(generations[0].spanData["input"] == body["messages"])
        #expect(generations[1].spanData["input"] == requests[1].json?["messages"])
        #expect(
            generations[0].spanData["output"]?.arrayValue?.first?["tool_calls"]?.arrayValue?.first?["id"] == "call_a")
        #expect(
            generations[1].spanData["output"] == [
                [
                    "role": "assistant", "content": "x is 42.", "refusal": .null,
                    "tool_calls": .null,
                ]
            ])
        #expect(generations[0].spanData["model"] == "gpt-4.1")
        #expect(generations[0].spanData["usage"]?["input_tokens"] == 50)
    }

    @Test func routerPicksTheAPIPerAgent() async throws {
        // Assistant (Responses) hands off to Helper (Chat Completions).
        let server = try TestHTTPServer(
            handler: TestHTTPServer.routes([
                "/v1/responses": { _ in
                    .json(
                        responseJSON(
                            "resp_h",
                            output: [
                                [
                                    "type": "function_call", "id": "fc_h", "call_id": "call_h",
                                    "name": "transfer_to_helper",
                                    "arguments": "{}", "status": "completed",
                                ]
                            ]))
                },
                "/v1/chat/completions": { _ in .json(chatCompletion(["role": "assistant", "content": "Helped."])) },
            ]))
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let spec = modelSpec(helperAPI: "chat_completions")
        let (result, spans) = await runTraced(
            spec, model: ModelProviders.make(settings: settings(server), client: client))
        #expect(result.status == .completed)
        #expect(result.finalOutput == "Helped.")
        #expect(server.requests.map(\.path) == ["/v1/responses", "/v1/chat/completions"])
        #expect(spans.filter { $0.type == "response" }.count == 1)
        let generation = try #require(spans.first { $0.type == "generation" })
        // The full history reaches the next agent, as chat messages.
        let input = try #require(generation.spanData["input"]?.arrayValue)
        #expect(input.first == ["content": "You assist.", "role": "system"])
        #expect(input.last == ["role": "tool", "tool_call_id": "call_h", "content": "{\"assistant\": \"Helper\"}"])
    }

    @Test func hostedToolsOnChatCompletionsAreAConfigurationError() async throws {
        let spec = modelSpec(hosted: true)
        let error = #expect(throws: ModelConfigurationError.self) {
            try ModelRouting.validate(spec, defaultAPI: .chatCompletions)
        }
        #expect(error?.exitStatus == .badInput)
        #expect(error?.description.contains("'search' (web_search)") == true)
        #expect(error?.description.contains("the worker's default model API") == true)
        // Per agent, too; and fine on the Responses API.
        #expect(throws: ModelConfigurationError.self) {
            try ModelRouting.validate(modelSpec(api: "chat_completions", hosted: true), defaultAPI: .responses)
        }
        try ModelRouting.validate(spec, defaultAPI: .responses)
        try ModelRouting.validate(modelSpec(api: "responses", hosted: true), defaultAPI: .chatCompletions)
        // An unknown model_api cannot reach a spec: it is no ModelAPI (the loader reports it at
        // file:line:column, see MappingLoaderTests).
        #expect(ModelAPI(name: "completions") == nil)

        // The provider refuses at call time as well, before any request.
        let server = try TestHTTPServer(handler: chatHandler)
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let model = ChatCompletionsModel(settings: settings(server), client: client)
        await #expect(throws: ModelConfigurationError.self) { _ = try await model.respond(request(spec)) }
        #expect(server.requests.isEmpty)
    }
}

@Suite struct ModelRoutingMappingsTests {
    static var shippedMappings: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("mappings").path
    }

    @Test func shippedMappingsNeedTheResponsesAPIForTheResearcher() throws {
        // The shipped Researcher pins model_api: responses, so both defaults work.
        let shipped = try MappingLoader.load(directory: Self.shippedMappings)
        try ModelRouting.validate(shipped, defaultAPI: .responses)
        try ModelRouting.validate(shipped, defaultAPI: .chatCompletions)
        // Without the pin, chat-completions would hand the hosted web_search to an API without it.
        let dir = Self.shippedMappings
        let docs = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
            .map { name in
                (
                    file: "\(dir)/\(name)",
                    text: try String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8)
                        .replacingOccurrences(of: "    model_api: responses\n", with: "")
                )
            }
        let config = try MappingLoader.load(documents: docs)
        try ModelRouting.validate(config, defaultAPI: .responses)
        let error = #expect(throws: ModelConfigurationError.self) {
            try ModelRouting.validate(config, defaultAPI: .chatCompletions)
        }
        #expect(error?.description.contains("agent 'Researcher'") == true)
        #expect(error?.description.contains("agents.yaml:") == true)
        #expect(error?.description.contains("'web_search' (web_search)") == true)
    }
}

@Suite struct ModelSettingsTests {
    @Test func settingsFromTheEnvironment() {
        let defaults = OpenAISettings(environment: Environment(["OPENAI_API_KEY": ""]))
        #expect(defaults.baseURL == "https://api.openai.com/v1")
        #expect(defaults.apiKey == nil)
        #expect(defaults.isOfficialOpenAI)
        #expect(defaults.headers.contains("Authorization") == false)
        #expect(ModelProviders.missingKeyExplanation(defaults)?.contains("OPENAI_API_KEY") == true)

        let s = OpenAISettings(
            environment: Environment([
                "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1/", "OPENAI_API_KEY": "k-123",
                "OPENAI_ORG_ID": "org-1", "OPENAI_PROJECT_ID": "proj-1",
            ]))
        #expect(s.baseURL == "http://127.0.0.1:8000/v1")
        #expect(!s.isOfficialOpenAI)
        #expect(s.headers["Authorization"] == "Bearer k-123")
        #expect(s.headers["OpenAI-Organization"] == "org-1")
        #expect(s.headers["OpenAI-Project"] == "proj-1")
        #expect(s.scrub("key k-123 leaked") == "key *** leaked")

        // A local server needs no key.
        #expect(
            ModelProviders.missingKeyExplanation(
                environment: Environment(["OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"])) == nil)
        let client = HTTPClient()
        defer { client.shutdown() }
        #expect(throws: ModelConfigurationError.self) {
            _ = try ModelProviders.make(environment: Environment([:]), client: client)
        }
        #expect(ModelAPI(name: "chat-completions") == .chatCompletions)
        #expect(ModelAPI(name: "responses") == .responses)
        #expect(ModelAPI(name: "completions") == nil)
    }
}
