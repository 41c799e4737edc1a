import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeRunner
import BridgeTestSupport
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

// Tool guardrails (issue 24 item 3) end to end: a loopback Responses stand-in that calls a
// writing SQL tool on a real PostgreSQL, guarded by SQL and agent guardrails, with every
// behavior (allow, reject_content, raise_exception) in both directions.

/// The stand-in: the Clerk calls `lookup` with `{"id": <id>}`, then answers with what it was
/// told ("told: <output>"); the Checker (a guardrail agent) answers `checker`.
private func handler(id: Int, checker: String) -> TestHTTPServer.Handler {
    { r in
        guard r.path == "/v1/responses", let body = r.json else { return .text("not found", status: 404) }
        func response(_ output: JSONValue) -> TestHTTPResponse {
            .json([
                "id": "resp_x", "object": "response", "status": "completed", "model": "gpt-4.1",
                "output": [output], "usage": ["input_tokens": 5, "output_tokens": 3],
            ])
        }
        func message(_ text: String) -> JSONValue {
            [
                "type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [["type": "output_text", "text": .string(text), "annotations": []]],
            ]
        }
        if body["instructions"] == "Check." { return response(message(checker)) }
        let input = body["input"]?.arrayValue ?? []
        if let told = input.last(where: { $0["type"] == "function_call_output" })?["output"]?.stringValue {
            return response(message("told: " + told))
        }
        return response([
            "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup",
            "arguments": .string("{\"id\":\(id)}"), "status": "completed",
        ])
    }
}

private let verdictSchema: JSONValue = [
    "type": "object",
    "properties": [
        "tripwire_triggered": ["type": "boolean"], "output_info": ["type": "string"], "message": ["type": "string"],
    ],
    "required": ["tripwire_triggered", "output_info", "message"], "additionalProperties": false,
]

/// A run spec: the Clerk with `lookup` (a writing SQL tool: it logs the call, then reads the
/// order's card) guarded by `input` and `output`; the Checker agent for agent guardrails.
private func spec(input: [ToolGuardrailSpec] = [], output: [ToolGuardrailSpec] = []) -> RunSpec {
    var lookup = ToolSpec(
        name: "lookup", description: "Looks up an order.",
        parameters: [
            "type": "object", "properties": ["id": ["type": "integer"]], "required": ["id"],
            "additionalProperties": false,
        ],
        implementation: .sql(
            SQLToolSpec(
                sql: """
                    WITH logged AS (INSERT INTO call_log (order_id) VALUES (CAST(:id AS int)) RETURNING order_id)
                    SELECT o.card FROM orders o JOIN logged l ON o.id = l.order_id
                    """, writes: true)))
    lookup.inputGuardrails = input.isEmpty ? nil : input
    lookup.outputGuardrails = output.isEmpty ? nil : output
    let clerk = AgentSpec(name: "Clerk", instructions: "Help.", model: "gpt-4.1", tools: ["lookup"], handoffs: [])
    let checker = AgentSpec(
        name: "Checker", instructions: "Check.", model: "gpt-4.1-mini", tools: [], handoffs: [],
        outputSchema: OutputSchemaSpec(name: "Verdict", schema: verdictSchema))
    return RunSpec(
        traceId: TraceID.forTask("t1", attempt: 1), workflowName: "bridge", groupId: nil, metadata: [:],
        startingAgent: "Clerk", agents: ["Clerk": clerk, "Checker": checker], tools: ["lookup": lookup],
        input: "What card paid order?", maxTurns: 5, traceIncludeSensitiveData: true, taskId: "t1", attempt: 1)
}

private func sqlGuard(_ name: String, _ query: String, _ onTrip: ToolGuardrailBehavior) -> ToolGuardrailSpec {
    ToolGuardrailSpec(check: GuardrailSpec(name: name, implementation: .sql(.check(query))), onTrip: onTrip)
}

/// Trips for an order id over 100 (another workspace's orders).
private func foreignOrder(_ onTrip: ToolGuardrailBehavior) -> ToolGuardrailSpec {
    sqlGuard(
        "own_orders_only",
        "SELECT CAST(CAST(:arguments AS jsonb)->>'id' AS int) > 100 AS tripwire_triggered, 'order of another workspace' AS output_info",
        onTrip)
}

/// Trips on a 16-digit card number in the output.
private func cardNumber(_ onTrip: ToolGuardrailBehavior) -> ToolGuardrailSpec {
    sqlGuard(
        "no_card_numbers",
        "SELECT CAST(:output AS text) ~ '[0-9]{16}' AS tripwire_triggered, 'card number' AS output_info", onTrip)
}

private struct Outcome {
    var result: RunResult
    var spans: [SpanRecord]
    var requests: [TestHTTPRequest]
    var calls: Int

    /// What the model was told for the call (nil: it was asked nothing after the call).
    var told: String? {
        requests.last { $0.json?["instructions"] == "Help." }?.json?["input"]?.arrayValue?
            .last { $0["type"] == "function_call_output" }?["output"]?.stringValue
    }
    var function: SpanRecord? { spans.first { $0.type == "function" } }
    /// The guardrail spans, each checked to sit under the function span.
    var guardrails: [SpanRecord] { spans.filter { $0.type == "guardrail" } }
}

@Suite(.serialized, .enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ToolGuardrailTests {
    private func run(_ spec: RunSpec, id: Int = 7, checker: String = "") async throws -> Outcome {
        let conn = try await TestDatabase.connect(try await TestDatabase.create())
        try await conn.simpleQuery(
            """
            CREATE TABLE orders (id int PRIMARY KEY, card text);
            INSERT INTO orders VALUES (7, 'visa ending 4242'), (8, 'card 4242424242424242'), (107, 'visa ending 1111');
            CREATE TABLE call_log (order_id int);
            """)
        let server = try TestHTTPServer(handler: handler(id: id, checker: checker))
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let model = ModelProviders.make(
            settings: OpenAISettings(
                baseURL: server.url("/v1/"), apiKey: "sk-test-toolguard", organization: nil, project: nil),
            client: client)
        let tools = CompositeToolExecutor(sql: SQLToolExecutor(connection: { conn }))
        let recorder = TraceRecorder(spec: spec, sinks: [], includeSensitiveData: true)
        let result = await AgentRunner(model: model, tools: tools, observer: recorder).run(spec, taskRow: ["id": "t1"])
        let calls = try await conn.query("SELECT count(*) AS n FROM call_log").first?.int("n") ?? -1
        await conn.close()
        let outcome = Outcome(result: result, spans: await recorder.recorded, requests: server.requests, calls: calls)
        for g in outcome.guardrails {
            #expect(g.parentId == outcome.function?.id, "a tool guardrail span sits under its function span")
        }
        return outcome
    }

    @Test func inputGuardrailAllowsRejectsAndRaises() async throws {
        // allow: the guardrail does not trip, the tool runs, the model sees its output.
        let allowed = try await run(spec(input: [foreignOrder(.raiseException)]), id: 7)
        #expect(allowed.result.status == .completed, "\(String(describing: allowed.result.error))")
        #expect(allowed.calls == 1)
        #expect(allowed.told?.contains("visa ending 4242") == true)
        #expect(
            allowed.guardrails.map(\.spanData) == [
                ["type": "guardrail", "name": "own_orders_only", "triggered": false]
            ])
        #expect(
            allowed.result.transcript.contains {
                $0["type"] == "guardrail_result" && $0["kind"] == "tool_input" && $0["behavior"] == "allow"
            })

        // reject_content: the tool never runs; the model is told the message and the run goes on.
        let rejected = try await run(
            spec(input: [foreignOrder(.rejectContent(message: "Order not yours (task {{task.id}})."))]), id: 107)
        #expect(rejected.result.status == .completed)
        #expect(rejected.calls == 0, "a rejected call does not run")
        #expect(rejected.told == "Order not yours (task t1).")
        #expect(rejected.result.finalOutput == "told: Order not yours (task t1).")
        #expect(rejected.function?.spanData["output"] == "Order not yours (task t1).")
        #expect(rejected.function?.error == nil)
        #expect(rejected.guardrails.first?.spanData["triggered"] == true)

        // raise_exception: the tool never runs, the run fails with the SDK's exception name.
        let raised = try await run(spec(input: [foreignOrder(.raiseException)]), id: 107)
        #expect(raised.result.status == .failed)
        #expect(raised.result.error?.type == .toolInputGuardrailTripwireTriggered)
        #expect(
            raised.result.error?.message
                == "Tool input guardrail own_orders_only triggered tripwire: order of another workspace")
        #expect(raised.calls == 0)
        #expect(raised.told == nil, "the model is asked nothing after the call")
        #expect(
            raised.function?.error == [
                "message": "Error running tool",
                "data": [
                    "tool_name": "lookup",
                    "error": "Tool input guardrail own_orders_only triggered tripwire: order of another workspace",
                ],
            ])
        #expect(raised.guardrails.first?.spanData["triggered"] == true)
        let agent = try #require(raised.spans.first { $0.type == "agent" && $0.spanData["name"] == "Clerk" })
        #expect(agent.error?["message"] == "Error in agent run")
    }

    @Test func outputGuardrailAllowsRejectsAndRaises() async throws {
        let allowed = try await run(spec(output: [cardNumber(.raiseException)]), id: 7)
        #expect(allowed.result.status == .completed)
        #expect(allowed.told?.contains("visa ending 4242") == true)
        #expect(allowed.guardrails.map { $0.spanData["triggered"] } == [false])

        // reject_content: the tool ran, but the model is told the message instead of its output.
        let rejected = try await run(spec(output: [cardNumber(.rejectContent(message: "Withheld."))]), id: 8)
        #expect(rejected.result.status == .completed)
        #expect(rejected.calls == 1, "an output guardrail runs after the tool")
        #expect(rejected.told == "Withheld.")
        #expect(!(rejected.requests.contains { $0.bodyText.contains("4242424242424242") }), "the model never saw it")
        #expect(rejected.function?.spanData["output"] == "Withheld.")

        let raised = try await run(spec(output: [cardNumber(.raiseException)]), id: 8)
        #expect(raised.result.error?.type == .toolOutputGuardrailTripwireTriggered)
        #expect(raised.result.error?.message == "Tool output guardrail no_card_numbers triggered tripwire: card number")
        #expect(raised.calls == 1)
        #expect(raised.told == nil)
        #expect(raised.function?.error?["message"] == "Error running tool")
        #expect(
            (raised.function?.spanData["output"] ?? .null) == .null, "the output is not recorded as given to the model")
    }

    @Test func anAgentGuardrailRejectsWithItsOwnMessageAndNestsUnderItsSpan() async throws {
        let check = ToolGuardrailSpec(
            check: GuardrailSpec(name: "pii_checker", implementation: .agent("Checker")),
            onTrip: .rejectContent(message: "fallback"))
        let verdict = #"{"tripwire_triggered":true,"output_info":"card","message":"Card details withheld."}"#
        let out = try await run(spec(output: [check]), id: 8, checker: verdict)
        #expect(out.result.status == .completed, "\(String(describing: out.result.error))")
        #expect(out.told == "Card details withheld.", "the agent's own message wins over the YAML one")
        let g = try #require(out.guardrails.first)
        #expect(g.spanData["name"] == "pii_checker")
        let checker = try #require(out.spans.first { $0.type == "agent" && $0.spanData["name"] == "Checker" })
        #expect(checker.parentId == g.id)
        // The checker read the call as JSON.
        let asked = out.requests.first { $0.json?["instructions"] == "Check." }
        let input = asked?.json?["input"]?.arrayValue?.first?["content"]?.stringValue ?? ""
        #expect((try? JSONValue.parse(input))?["tool_name"] == "lookup")
        #expect((try? JSONValue.parse(input))?["arguments"] == ["id": 8])
        #expect(out.result.usage.requests == 3, "the guardrail agent's call counts in the run's usage")
    }

    @Test func aGuardrailThatCannotDecideFailsTheCallClosed() async throws {
        for (query, fragment) in [
            ("SELECT 1 / 0 = 1 AS tripwire_triggered", "division by zero"),
            ("SELECT 'no' AS tripwire_triggered", "not a boolean"),
            ("SELECT CAST(:arguments AS jsonb) IS NOT NULL AS tripped", "no tripwire_triggered column"),
        ] {
            for output in [false, true] {
                let g = sqlGuard("broken", query, .rejectContent(message: "x"))
                let out = try await run(output ? spec(output: [g]) : spec(input: [g]), id: 8)
                #expect(out.result.status == .failed, "\(query)")
                #expect(out.result.error?.type == .guardrailError)
                #expect(out.result.error?.message.contains(fragment) == true, "\(String(describing: out.result.error))")
                #expect(out.calls == (output ? 1 : 0), "an input guardrail that errors never lets the call run")
                #expect(out.told == nil, "nothing reaches the model")
                #expect(out.function?.error?["message"] == "Error running tool")
                #expect(out.guardrails.first?.error?["message"] == "Error running guardrail")
            }
        }
        // A guardrail agent that fails (its answer is not its output type) fails the call too.
        let check = ToolGuardrailSpec(
            check: GuardrailSpec(name: "pii_checker", implementation: .agent("Checker")), onTrip: .raiseException)
        let out = try await run(spec(input: [check]), id: 8, checker: "not json")
        #expect(out.result.error?.type == .guardrailError)
        #expect(out.calls == 0)
    }

    @Test func guardrailsRunInOrderAndTheFirstTripDecides() async throws {
        let out = try await run(
            spec(input: [
                sqlGuard("passes", "SELECT false AS tripwire_triggered", .raiseException),
                sqlGuard(
                    "rejects", "SELECT true AS tripwire_triggered, 'Nope.' AS message", .rejectContent(message: "x")),
                sqlGuard("never", "SELECT 1 / 0 = 1 AS tripwire_triggered", .raiseException),
            ]), id: 7)
        #expect(out.result.status == .completed)
        #expect(out.told == "Nope.", "a SQL guardrail's message column wins over the YAML one")
        #expect(out.guardrails.map { $0.spanData["name"] } == ["passes", "rejects"])
        #expect(out.calls == 0)
    }
}
