import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

/// The first call of `script` (tool name, arguments) whose tool is offered and not yet called.
func nextCall(of script: [(String, JSONValue)], offered tools: [String], called: Set<String>) -> (String, JSONValue)? {
    script.first { tools.contains($0.0) && !called.contains($0.0) }
}

/// A scripted stand-in for `POST /v1/responses`: the Project Manager checks the team, then hands
/// off to the Researcher; the Researcher stores data; both then answer. It decides from the
/// request alone (tools offered, calls already in the input), as a real model would see it.
enum ResponsesStandIn {
    static let script: [(String, JSONValue)] = [
        ("get_team_roles_and_status", ["include_inactive": false]), ("transfer_to_researcher", [:]),
        ("store_data", ["key": "findings", "value": "three facts"]),
    ]

    static func reply(to body: JSONValue) -> JSONValue {
        let tools = (body["tools"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
        let input = body["input"]?.arrayValue ?? []
        let called = Set(
            input.compactMap { $0["type"]?.stringValue == "function_call" ? $0["name"]?.stringValue : nil })
        let turn = input.count
        let output: JSONValue
        if let (name, args) = nextCall(of: script, offered: tools, called: called) {
            output = [
                "type": "function_call", "id": .string("fc_\(turn)_\(name)"),
                "call_id": .string("call_\(turn)_\(name)"),
                "name": .string(name), "arguments": .string(args.compact), "status": "completed",
            ]
        } else {
            // A structured output (the Researcher's ResearchReport) is answered with an instance.
            let text =
                body["text"]?["format"]?["name"] == "ResearchReport"
                ? #"{"summary":"All done.","sources":["https://example.org"]}"# : "All done."
            output = [
                "type": "message", "id": .string("msg_\(turn)"), "role": "assistant", "status": "completed",
                "content": [["type": "output_text", "text": .string(text), "annotations": []]],
            ]
        }
        return [
            "id": .string("resp_\(turn)_\(UUID().uuidString.prefix(8))"), "object": "response", "status": "completed",
            "model": body["model"] ?? "gpt-4.1", "output": [output],
            "usage": [
                "input_tokens": 100, "output_tokens": 20, "total_tokens": 120,
                "input_tokens_details": ["cached_tokens": 0], "output_tokens_details": ["reasoning_tokens": 0],
            ],
        ]
    }
}

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ExecOpenAITests {
    @Test func responsesAPIStandInRunsTheReferenceTasks() async throws {
        let url = try await ExecCLITests.migratedReference()
        let server = try TestHTTPServer { request in
            guard request.path == "/v1/responses", let body = request.json else {
                return .json(["error": ["message": "not here", "type": "invalid_request_error"]], status: 404)
            }
            return .modelReply(ResponsesStandIn.reply(to: body), for: request)
        }
        defer { server.stop() }
        let r = try await BridgeBinary.run(
            ["exec", "--database-url", url, "--mappings", BridgeBinary.mappings],
            environment: BridgeBinary.openAIEnvironment(server, key: "sk-test-e2e-secret"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("sk-test-e2e-secret") && !r.stderr.contains("sk-test-e2e-secret"))

        let requests = server.requests.filter { $0.path == "/v1/responses" }
        #expect(requests.count > 36)
        for req in requests {
            let body = try #require(req.json)
            #expect(req.header("Authorization") == "Bearer sk-test-e2e-secret")
            // Every request carries the agent's instructions and its tools.
            #expect((body["instructions"]?.stringValue ?? "").isEmpty == false)
            let tools = body["tools"]?.arrayValue ?? []
            #expect(!tools.isEmpty)
            for tool in tools where tool["type"]?.stringValue == "function" {
                // The example MCP server's tools keep FastMCP's schemas, which are not strict.
                let mcp = ["estimate_reading_time", "format_citation"].contains(tool["name"]?.stringValue ?? "")
                #expect(tool["strict"]?.boolValue == !mcp)
                #expect(tool["parameters"]?["type"]?.stringValue == "object")
            }
            // Tool outputs go back to the model: every function_call in the input has its output.
            let input = body["input"]?.arrayValue ?? []
            let calls = input.compactMap {
                $0["type"]?.stringValue == "function_call" ? $0["call_id"]?.stringValue : nil
            }
            let outputs = Set(
                input.compactMap {
                    $0["type"]?.stringValue == "function_call_output" ? $0["call_id"]?.stringValue : nil
                })
            #expect(calls.allSatisfy(outputs.contains))
        }
        // A Researcher request after the handoff carries the Project Manager's tool results.
        #expect(
            requests.contains { req in
                let input = req.json?["input"]?.arrayValue ?? []
                return (req.json?["tools"]?.arrayValue ?? []).contains { $0["name"]?.stringValue == "store_data" }
                    && input.contains {
                        $0["type"]?.stringValue == "function_call_output"
                            && ($0["output"]?.stringValue ?? "").contains("Researcher")
                    }
            })

        let c = try await TestDatabase.connect(url)
        #expect(
            try await c.query("SELECT count(*) AS n FROM tasks WHERE status IN ('pending', 'in_progress')").first?.int(
                "n") == 0)
        let spans = try await c.query(
            """
            SELECT count(*) FILTER (WHERE span_data->>'type' = 'response' AND span_data->>'response_id' LIKE 'resp_%') AS responses,
                   count(*) FILTER (WHERE span_data->>'type' = 'function') AS functions,
                   count(*) FILTER (WHERE span_data->>'type' = 'handoff') AS handoffs
            FROM bridge.spans
            """
        ).first
        #expect((spans?.int("responses") ?? 0) >= requests.count)
        #expect((spans?.int("functions") ?? 0) > 0 && (spans?.int("handoffs") ?? 0) > 0)
        let leaked = try await c.query(
            "SELECT count(*) AS n FROM bridge.spans WHERE span_data::text LIKE '%sk-test-e2e-secret%'")
        #expect(leaked.first?.int("n") == 0)
        // The Researcher's structured output: the schema goes out as text.format, the answer
        // lands in the result column as a JSON object; the no_secrets guardrail is traced.
        #expect(requests.contains { $0.json?["text"]?["format"]?["name"] == "ResearchReport" })
        let structured = try await c.query(
            "SELECT count(*) AS n FROM tasks WHERE jsonb_typeof(result->'output') = 'object'")
        #expect((structured.first?.int("n") ?? 0) > 0)
        let guardrails = try await c.query(
            "SELECT count(*) AS n FROM bridge.spans WHERE span_data->>'type' = 'guardrail' AND span_data->>'name' = 'no_secrets' AND span_data->>'triggered' = 'false'"
        )
        #expect((guardrails.first?.int("n") ?? 0) > 0)
        await c.close()
    }
}

/// A scripted stand-in for `POST /v1/chat/completions` with the same script as `ResponsesStandIn`.
enum ChatStandIn {
    static let script: [(String, JSONValue)] = [
        ("get_team_roles_and_status", ["include_inactive": false]), ("transfer_to_content_specialist", [:]),
        ("store_data", ["key": "draft", "value": "copy"]),
    ]

    static func reply(to body: JSONValue) -> JSONValue {
        let tools = (body["tools"]?.arrayValue ?? []).compactMap { $0["function"]?["name"]?.stringValue }
        let messages = body["messages"]?.arrayValue ?? []
        let called = Set(
            messages.flatMap { m in
                (m["tool_calls"]?.arrayValue ?? []).compactMap { $0["function"]?["name"]?.stringValue }
            })
        let n = messages.count
        let message: JSONValue
        if let (name, args) = nextCall(of: script, offered: tools, called: called) {
            message = [
                "role": "assistant", "content": nil,
                "tool_calls": [
                    [
                        "id": .string("call_\(n)_\(name)"), "type": "function",
                        "function": ["name": .string(name), "arguments": .string(args.compact)],
                    ]
                ],
            ]
        } else {
            let structured = body["response_format"]?["json_schema"]?["name"] == "ResearchReport"
            message = [
                "role": "assistant",
                "content": structured ? #"{"summary":"Done in chat.","sources":[]}"# : "Done in chat.",
            ]
        }
        return [
            "id": .string("chatcmpl-\(n)"), "object": "chat.completion", "model": body["model"] ?? "gpt-4.1",
            "choices": [["index": 0, "message": message, "finish_reason": "stop"]],
            "usage": ["prompt_tokens": 50, "completion_tokens": 10, "total_tokens": 60],
        ]
    }
}

extension ExecOpenAITests {
    @Test func chatCompletionsProducesGenerationSpansWithMessages() async throws {
        let url = try await ExecCLITests.migratedReference()
        let server = try TestHTTPServer { request in
            guard let body = request.json else { return .json(["error": ["message": "no body"]], status: 400) }
            switch request.path {
            case "/v1/chat/completions": return .modelReply(ChatStandIn.reply(to: body), for: request)
            case "/v1/responses": return .modelReply(ResponsesStandIn.reply(to: body), for: request)
            default: return .json(["error": ["message": "not here"]], status: 404)
            }
        }
        defer { server.stop() }
        let r = try await BridgeBinary.run(
            [
                "exec", "--model-api", "chat-completions", "--database-url", url,
                "--mappings", BridgeBinary.mappings,
            ],
            environment: BridgeBinary.openAIEnvironment(server, key: "sk-test-chat"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(server.requests.contains { $0.path == "/v1/chat/completions" })
        let c = try await TestDatabase.connect(url)
        let row = try await c.query(
            """
            SELECT count(*) AS n,
                   count(*) FILTER (WHERE jsonb_typeof(span_data->'input') = 'array' AND jsonb_array_length(span_data->'input') > 0
                                     AND jsonb_typeof(span_data->'output') = 'array') AS with_messages
            FROM bridge.spans WHERE span_data->>'type' = 'generation'
            """
        ).first
        #expect((row?.int("n") ?? 0) > 0)
        #expect(row?.int("n") == row?.int("with_messages"))
        #expect(
            try await c.query(
                "SELECT count(*) AS n FROM tasks WHERE status = 'completed' AND result->>'output' = 'Done in chat.'"
            ).first?.int("n") ?? 0 > 0)
        await c.close()
    }
}
