import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeRunner
import BridgeTestSupport
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

// Structured outputs over real HTTP (loopback stand-ins recording the request bodies) and SQL
// guardrails on a real PostgreSQL.

private let reportSchema: JSONValue = [
    "type": "object",
    "properties": ["summary": ["type": "string"], "sources": ["type": "array", "items": ["type": "string"]]],
    "required": ["summary", "sources"], "additionalProperties": false,
]
private let report = #"{"summary":"Two sources agree.","sources":["https://a.example","https://b.example"]}"#

private func reportSpec(api: String?, input: String = "Research x.", guardrails: [String: GuardrailSpec] = [:])
    -> RunSpec
{
    let agent = AgentSpec(
        name: "Researcher", instructions: "Research.", model: "gpt-4.1", tools: [], handoffs: [],
        modelAPI: api.flatMap(ModelAPI.init(name:)),
        outputSchema: OutputSchemaSpec(name: "ResearchReport", schema: reportSchema),
        inputGuardrails: guardrails.keys.sorted())
    return RunSpec(
        traceId: TraceID.forTask("s1", attempt: 1), workflowName: "bridge", groupId: nil, metadata: [:],
        startingAgent: "Researcher", agents: ["Researcher": agent], tools: [:], input: input, maxTurns: 5,
        traceIncludeSensitiveData: true, taskId: "s1", attempt: 1, guardrails: guardrails)
}

private func run(_ spec: RunSpec, model: any ModelProvider, tools: any ToolExecutor = CompositeToolExecutor())
    async -> (RunResult, [SpanRecord])
{
    let recorder = TraceRecorder(spec: spec, sinks: [], includeSensitiveData: true)
    let result = await AgentRunner(model: model, tools: tools, observer: recorder).run(spec, taskRow: ["id": "s1"])
    return (result, await recorder.recorded)
}

@Suite struct StructuredOutputHTTPTests {
    @Test func responsesAndChatRequestsCarryTheSchemaAndTheAnswerIsJSON() async throws {
        let server = try TestHTTPServer { r in
            if r.path == "/v1/responses" {
                return .json([
                    "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-4.1",
                    "output": [
                        [
                            "type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                            "content": [["type": "output_text", "text": .string(report), "annotations": []]],
                        ]
                    ],
                    "usage": ["input_tokens": 5, "output_tokens": 7],
                ])
            }
            return .json([
                "id": "c1", "object": "chat.completion", "model": "gpt-4.1",
                "choices": [
                    [
                        "index": 0, "finish_reason": "stop",
                        "message": ["role": "assistant", "content": .string(report)],
                    ]
                ],
                "usage": ["prompt_tokens": 5, "completion_tokens": 7],
            ])
        }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let settings = OpenAISettings(
            baseURL: server.url("/v1/"), apiKey: "sk-test-structured", organization: nil, project: nil)
        let model = ModelProviders.make(settings: settings, client: client)
        for api in ["responses", "chat_completions"] {
            let (result, spans) = await run(reportSpec(api: api), model: model)
            #expect(result.status == .completed, "\(api): \(String(describing: result.error))")
            #expect(result.finalOutputJSON == (try JSONValue.parse(report)))
            #expect(spans.first { $0.type == "agent" }?.spanData["output_type"] == "ResearchReport")
        }
        let requests = server.requests
        try #require(requests.count == 2)
        #expect(requests[0].path == "/v1/responses")
        #expect(
            requests[0].json?["text"] == [
                "format": [
                    "type": "json_schema", "name": "ResearchReport",
                    "schema": reportSchema, "strict": true,
                ]
            ])
        #expect(requests[1].path == "/v1/chat/completions")
        #expect(
            requests[1].json?["response_format"] == [
                "type": "json_schema",
                "json_schema": [
                    "name": "ResearchReport", "schema": reportSchema,
                    "strict": true,
                ],
            ])
    }
}

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct SQLGuardrailLiveTests {
    static let noSecrets = GuardrailSpec(
        name: "no_secrets",
        implementation: .sql(
            .check(
                "SELECT CAST(:input AS text) ~ 'sk-[A-Za-z0-9]{8}' AS tripwire_triggered, 'API key in input' AS output_info"
            )))

    @Test func sqlGuardrailTripsAndPassesOnARealDatabase() async throws {
        let conn = try await TestDatabase.connect(try await TestDatabase.create())
        let tools = CompositeToolExecutor(sql: SQLToolExecutor(connection: { conn }))
        let model = OfflineModel()
        let (tripped, spans) = await run(
            reportSpec(
                api: nil, input: "use sk-ABCDEFGH123 please",
                guardrails: ["no_secrets": Self.noSecrets]), model: model, tools: tools)
        #expect(tripped.error?.type == .inputGuardrailTripwireTriggered)
        #expect(tripped.error?.message == "Guardrail no_secrets triggered tripwire: API key in input")
        #expect(
            spans.first { $0.type == "guardrail" }?.spanData == [
                "type": "guardrail", "name": "no_secrets", "triggered": true,
            ])

        let (passed, okSpans) = await run(
            reportSpec(
                api: nil, input: "a harmless request",
                guardrails: ["no_secrets": Self.noSecrets]), model: model, tools: tools)
        #expect(passed.status == .completed)
        #expect(okSpans.first { $0.type == "guardrail" }?.spanData["triggered"] == false)
        await conn.close()
    }

    @Test func guardrailSQLRunsReadOnly() async throws {
        let conn = try await TestDatabase.connect(try await TestDatabase.create())
        try await conn.simpleQuery("CREATE TABLE audit (x text)")
        let writer = GuardrailSpec(
            name: "writer",
            implementation: .sql(
                SQLToolSpec(
                    sql: "INSERT INTO audit VALUES (:input) RETURNING false AS tripwire_triggered", writes: true)))
        let tools = CompositeToolExecutor(sql: SQLToolExecutor(connection: { conn }))
        let (result, _) = await run(
            reportSpec(api: nil, guardrails: ["writer": writer]), model: OfflineModel(), tools: tools)
        #expect(result.error?.type == .guardrailError)
        #expect(result.error?.message.contains("25006") == true)
        #expect(try await conn.query("SELECT count(*) AS n FROM audit").first?.int("n") == 0)
        await conn.close()
    }

    @Test func mappingsCheckPreparesGuardrailSQL() async throws {
        let text = """
            version: 1
            source: {input: "{{task.name}}"}
            results: {result_column: result}
            agents:
              - name: A
                input_guardrails: [bad]
                output_type:
                  name: Out
                  schema: {type: object, properties: {a: {type: string}}, required: [a], additionalProperties: false}
                  columns: {a: nosuch_column}
            guardrails:
              - name: bad
                sql: {query: "SELECT nosuch FROM tasks WHERE name = :input"}
            """
        let config = try MappingLoader.load(documents: [("m/g.yaml", text)])
        let c = try await TestDatabase.connect(try await TestDatabase.createReference(seed: false))
        let lines = await MappingValidator.checkLive(config, connection: c).map(\.description)
        #expect(
            lines.contains {
                $0.hasPrefix("m/g.yaml:13:") && $0.contains("the SQL of guardrail 'bad' does not prepare")
                    && $0.contains("nosuch")
            })
        #expect(lines.contains { $0.contains("output_type.columns.a: column tasks.nosuch_column does not exist") })
        await c.close()
    }

    /// Issue 23 item 4: guardrail queries whose tripwire_triggered is not a boolean.
    static let notBoolean: [(query: String, check: String, run: String)] = [
        (
            "SELECT 'yes' AS tripwire_triggered", "returns tripwire_triggered as text: it must be boolean",
            "its tripwire_triggered is \"yes\", not a boolean"
        ),
        (
            "SELECT 1 AS tripwire_triggered", "returns tripwire_triggered as integer: it must be boolean",
            "its tripwire_triggered is 1, not a boolean"
        ),
        (
            "SELECT count(*) AS tripwire_triggered FROM (SELECT CAST(:input AS text)) x",
            "returns tripwire_triggered as bigint",
            "its tripwire_triggered is 1, not a boolean"
        ),
        (
            "SELECT CAST(:input AS text) ~ 'sk-' AS tripped",
            "returns no column tripwire_triggered (it returns tripped)",
            "its first row has no tripwire_triggered column (columns: tripped)"
        ),
        ("SELECT NULL::boolean AS tripwire_triggered", "", "its tripwire_triggered is null, not a boolean"),
    ]

    @Test func guardrailsWhoseTripwireIsNotABooleanFailClosed() async throws {
        let conn = try await TestDatabase.connect(try await TestDatabase.create())
        let tools = CompositeToolExecutor(sql: SQLToolExecutor(connection: { conn }))
        for (query, _, message) in Self.notBoolean {
            let g = GuardrailSpec(name: "g", implementation: .sql(.check(query)))
            let (result, spans) = await run(
                reportSpec(api: nil, input: "use sk-ABCDEFGH123", guardrails: ["g": g]),
                model: OfflineModel(), tools: tools)
            #expect(result.status == .failed, "\(query)")
            #expect(result.error?.type == .guardrailError, "\(query): \(String(describing: result.error))")
            #expect(
                result.error?.message.hasPrefix("guardrail g failed: \(message)") == true,
                "\(query): \(result.error?.message ?? "")")
            #expect(spans.first { $0.type == "guardrail" }?.error?["message"] == "Error running guardrail")
        }
        // No row at all is still "not triggered" (a WHERE that finds nothing).
        let none = GuardrailSpec(
            name: "g", implementation: .sql(.check("SELECT true AS tripwire_triggered WHERE false")))
        let (passed, _) = await run(reportSpec(api: nil, guardrails: ["g": none]), model: OfflineModel(), tools: tools)
        #expect(passed.status == .completed)
        // A tripwire with 100 KiB of output_info trips, with the info cut to 64 KiB.
        let long = GuardrailSpec(
            name: "long",
            implementation: .sql(
                .check(
                    "SELECT true AS tripwire_triggered, repeat('x', 102400) AS output_info")))
        let (tripped, _) = await run(
            reportSpec(api: nil, guardrails: ["long": long]), model: OfflineModel(), tools: tools)
        #expect(tripped.error?.type == .inputGuardrailTripwireTriggered, "\(String(describing: tripped.error))")
        let info = try #require(tripped.error?.outputInfo?.stringValue)
        #expect(
            info.utf8.count <= 65_536 && info.hasPrefix("xxxx")
                && info.hasSuffix("[truncated: output exceeded max_bytes=65536]"))
        await conn.close()
    }

    @Test func mappingsCheckRequiresABooleanTripwireColumn() async throws {
        let c = try await TestDatabase.connect(try await TestDatabase.createReference(seed: false))
        // Agent A with the input guardrail g, whose SQL is `query`.
        func guarded(_ query: String) -> String {
            """
            version: 1
            source: {input: "{{task.name}}"}
            results: {result_column: result}
            agents:
              - name: A
                input_guardrails: [g]
            guardrails:
              - name: g
                sql: {query: "\(query)"}
            """
        }
        for (query, expected, _) in Self.notBoolean where !expected.isEmpty {
            let config = try MappingLoader.load(documents: [("m/g.yaml", guarded(query))])
            let lines = await MappingValidator.checkLive(config, connection: c).map(\.description)
            #expect(
                lines.count == 1 && lines[0].hasPrefix("m/g.yaml:9:")
                    && lines[0].contains("the SQL of guardrail 'g' \(expected)"),
                "\(query): \(lines)")
        }
        // The shipped form passes.
        let ok = guarded(
            "SELECT count(*) > 0 AS tripwire_triggered, 'x' AS output_info FROM tasks WHERE name = CAST(:input AS text)"
        )
        #expect(
            await MappingValidator.checkLive(try MappingLoader.load(documents: [("m/g.yaml", ok)]), connection: c)
                .isEmpty)
        // A needs_approval predicate answering 'yes' would let every call run unapproved.
        let predicate = """
            version: 1
            source: {input: "{{task.name}}"}
            results: {result_column: result}
            agents:
              - name: A
                tools: [t]
            tools:
              - name: t
                description: T.
                parameters: {type: object, properties: {}, required: [], additionalProperties: false}
                sql: {query: "SELECT 1 AS one"}
                needs_approval:
                  sql: "SELECT 'yes' AS needs_approval"
            approvals:
              table: human_feedback_requests
              key: id
              status: {column: status, pending: pending, approved: approved, rejected: rejected}
            """
        let lines = await MappingValidator.checkLive(
            try MappingLoader.load(documents: [("m/t.yaml", predicate)]), connection: c
        )
        .map(\.description)
        #expect(
            lines.count == 1
                && lines[0].contains(
                    "the needs_approval predicate of tool 't' returns needs_approval as text:"
                        + " it must be boolean"),
            "\(lines)")
        await c.close()
    }
}
