import BridgeCore
import BridgeMapping
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

// Structured outputs (`output_type`) and input/output guardrails, against the SDK's semantics.

enum GuardFixture {
    static let reportSchema = JSONValue.strictObject([
        "summary": ["type": "string"],
        "sources": ["type": "array", "items": ["type": "string"]],
        "confidence": ["type": ["number", "null"]],
        "kind": ["type": "string", "enum": ["brief", "full"]],
    ])
    static let verdictSchema = JSONValue.strictObject([
        "tripwire_triggered": ["type": "boolean"], "output_info": ["type": "string"],
    ])

    /// Researcher (structured ResearchReport) with an agent guardrail `checker` (Checker agent)
    /// as input or output guardrail, and a SQL guardrail `no_secrets`.
    static func spec(input: [String] = [], output: [String] = []) -> RunSpec {
        let researcher = AgentSpec(
            name: "Researcher", instructions: "Research.", model: "gpt-4.1", tools: [], handoffs: [],
            outputSchema: OutputSchemaSpec(name: "ResearchReport", schema: reportSchema),
            inputGuardrails: input, outputGuardrails: output)
        let checker = AgentSpec(
            name: "Checker", instructions: "Check.", model: "gpt-4.1-mini", tools: [], handoffs: [],
            outputSchema: OutputSchemaSpec(name: "Verdict", schema: verdictSchema))
        return RunSpec(
            traceId: TraceID.forTask("7", attempt: 1), workflowName: "bridge", groupId: nil, metadata: [:],
            startingAgent: "Researcher", agents: ["Researcher": researcher, "Checker": checker], tools: [:],
            input: "Find sources.", maxTurns: 10, traceIncludeSensitiveData: true, taskId: "7", attempt: 1,
            guardrails: [
                "checker": GuardrailSpec(name: "checker", implementation: .agent("Checker")),
                "no_secrets": GuardrailSpec(name: "no_secrets", implementation: .sql(SQLToolSpec(sql: "SELECT 1"))),
            ])
    }

    static let validReport = #"{"summary":"ok","sources":["a","b"],"confidence":null,"kind":"brief"}"#

    /// Researcher answers `report` (after `delay`); Checker answers with `trip`.
    static func model(report: String = validReport, trip: Bool = false, delay: Duration = .zero) -> ScriptedDelayModel {
        ScriptedDelayModel(delay: delay) { r in
            if r.agent.name == "Checker" {
                return [say("{\"tripwire_triggered\":\(trip),\"output_info\":\"checked \(r.input.count) item(s)\"}")]
            }
            return [say(report)]
        }
    }
}

/// A scripted model whose Researcher answers may be slow (to show cancellation).
struct ScriptedDelayModel: ModelProvider {
    var spanKind: ModelSpanKind { .generation }
    let delay: Duration
    let script: @Sendable (ModelRequest) -> [ConversationItem]
    let requests = RequestLog()
    init(delay: Duration, script: @escaping @Sendable (ModelRequest) -> [ConversationItem]) {
        self.delay = delay
        self.script = script
    }
    func respond(_ request: ModelRequest) async throws -> ModelResponse {
        await requests.add(request)
        if request.agent.name != "Checker", delay > .zero { try await Task.sleep(for: delay) }
        return ModelResponse(
            output: script(request), usage: Usage(requests: 1, inputTokens: 3, outputTokens: 2),
            model: request.agent.model)
    }
}

/// A SQL guardrail stand-in: answers with a fixed first row.
struct GuardrailSQL: ToolExecutor {
    var row: JSONValue
    func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        #expect(arguments["input"] == "Find sources.")
        return JSONValue.array([row]).compact
    }
}

@Suite struct JSONSchemaValidatorTests {
    @Test func acceptsValidInstancesOfTheStrictSubset() {
        let v = JSONSchemaValidator(schema: GuardFixture.reportSchema)
        #expect(v.isValid(try! JSONValue.parse(GuardFixture.validReport)))
        #expect(v.isValid(["summary": "s", "sources": [], "confidence": 0.5, "kind": "full"]))
        #expect(v.isValid(["summary": "s", "sources": [], "confidence": 3, "kind": "full"]), "an integer is a number")
    }

    @Test func reportsEachViolationWithItsPath() {
        let v = JSONSchemaValidator(schema: GuardFixture.reportSchema)
        let bad: JSONValue = ["summary": 1, "sources": ["a", 2], "kind": "long", "extra": true]
        let messages = v.violations(of: bad).map(\.description)
        #expect(messages.contains("$: missing required property 'confidence'"))
        #expect(messages.contains("$.summary: expected string, got integer"))
        #expect(messages.contains("$.sources[1]: expected string, got integer"))
        #expect(messages.contains("$.kind: \"long\" is not one of [\"brief\",\"full\"]"))
        #expect(messages.contains("$: unexpected property 'extra'"))
        #expect(v.violations(of: "text").map(\.description) == ["$: expected object, got string"])
    }

    @Test func anyOfRefsAndNullable() {
        let schema: JSONValue = [
            "type": "object",
            "$defs": ["Item": .strictObject(["n": ["type": "integer"]])],
            "properties": ["x": ["anyOf": [["$ref": "#/$defs/Item"], ["type": "null"]]]],
            "required": ["x"], "additionalProperties": false,
        ]
        let v = JSONSchemaValidator(schema: schema)
        #expect(v.isValid(["x": ["n": 1]]))
        #expect(v.isValid(["x": .null]))
        #expect(!v.isValid(["x": ["n": 1.5]]))
        #expect(!v.isValid(["x": "no"]))
    }
}

@Suite struct StructuredOutputTests {
    @Test func validAnswerIsStoredAsJSONAndTheAgentSpanNamesTheType() async throws {
        let (result, spans, events) = await Fixture.run(GuardFixture.spec(), model: GuardFixture.model())
        checkBalanced(events)
        #expect(result.status == .completed)
        #expect(result.finalOutputJSON == (try JSONValue.parse(GuardFixture.validReport)))
        let agent = try #require(spans.first { $0.type == "agent" })
        #expect(agent.spanData["output_type"] == "ResearchReport")
    }

    @Test func invalidAnswerIsAModelBehaviorError() async throws {
        let (result, spans, _) = await Fixture.run(
            GuardFixture.spec(), model: GuardFixture.model(report: #"{"summary":"ok"}"#))
        #expect(result.status == .failed)
        let error = try #require(result.error)
        #expect(error.type == .modelBehaviorError)
        #expect(!error.retriable)
        #expect(error.message.hasPrefix(#"Invalid JSON when parsing {"summary":"ok"} for ResearchReport; "#))
        #expect(error.message.contains("missing required property 'sources'"))
        let turn = try #require(spans.first { $0.spanData["name"] == "turn" })
        #expect(turn.error?["message"] == "Invalid JSON provided")

        let (notJSON, _, _) = await Fixture.run(GuardFixture.spec(), model: GuardFixture.model(report: "Here you go"))
        #expect(notJSON.error?.type == .modelBehaviorError)
        #expect(notJSON.error?.message.contains("not JSON") == true)
    }

    @Test func offlineModelAnswersAValidInstanceDeterministically() async throws {
        let (a, _, _) = await Fixture.run(GuardFixture.spec())
        let (b, _, _) = await Fixture.run(GuardFixture.spec())
        #expect(a.status == .completed)
        let json = try #require(a.finalOutputJSON)
        #expect(JSONSchemaValidator(schema: GuardFixture.reportSchema).isValid(json))
        #expect(json["summary"]?.stringValue?.hasPrefix("Researcher done") == true)
        #expect(a.finalOutput == b.finalOutput)
    }

    @Test func requestBodiesCarryTheSchema() throws {
        let spec = GuardFixture.spec()
        let agent = try #require(spec.agents["Researcher"])
        let request = ModelRequest(
            agent: agent, input: [["role": "user", "content": "x"]], functionTools: [],
            hostedTools: [], turn: 1)
        #expect(
            ResponsesModel.requestBody(request)["text"] == [
                "format": [
                    "type": "json_schema", "name": "ResearchReport", "schema": GuardFixture.reportSchema,
                    "strict": true,
                ]
            ])
        #expect(
            ChatCompletionsModel.requestBody(request)["response_format"] == [
                "type": "json_schema",
                "json_schema": ["name": "ResearchReport", "schema": GuardFixture.reportSchema, "strict": true],
            ])
    }
}

@Suite struct GuardrailTests {
    @Test func passingInputGuardrailRecordsItsSpanUnderTheFirstTurn() async throws {
        let (result, spans, events) = await Fixture.run(
            GuardFixture.spec(input: ["checker"]), model: GuardFixture.model())
        checkBalanced(events)
        #expect(result.status == .completed)
        let guardrail = try #require(spans.first { $0.type == "guardrail" })
        #expect(guardrail.spanData == ["type": "guardrail", "name": "checker", "triggered": false])
        let turn = try #require(
            spans.first { $0.spanData["name"] == "turn" && $0.spanData["data"]?["agent_name"] == "Researcher" })
        #expect(guardrail.parentId == turn.id)
        // The guardrail agent's own run sits under the guardrail span.
        let checkerAgent = try #require(spans.first { $0.type == "agent" && $0.spanData["name"] == "Checker" })
        #expect(checkerAgent.parentId == guardrail.id)
        #expect(checkerAgent.spanData["output_type"] == "Verdict")
    }

    /// The Researcher's model would answer only after an hour: only the tripwire's cancellation
    /// ends its call within the time limit. (With a shorter wait, a cooperative pool held for
    /// that long by other suites let the model answer first.)
    @Test(.timeLimit(.minutes(2)))
    func trippedInputGuardrailCancelsTheModelCallAndFailsTerminally() async throws {
        let model = GuardFixture.model(trip: true, delay: .seconds(3600))
        let (result, spans, events) = await Fixture.run(GuardFixture.spec(input: ["checker"]), model: model)
        checkBalanced(events)
        #expect(result.status == .failed)
        let error = try #require(result.error)
        #expect(error.type == .inputGuardrailTripwireTriggered)
        #expect(!error.retriable)
        #expect(error.message == "Guardrail checker triggered tripwire: checked 1 item(s)")
        #expect(error.outputInfo == "checked 1 item(s)")
        let guardrail = try #require(spans.first { $0.type == "guardrail" })
        #expect(guardrail.spanData["triggered"] == true)
        let turn = try #require(spans.first { $0.id == guardrail.parentId })
        #expect(turn.error == ["message": "Guardrail tripwire triggered", "data": ["guardrail": "checker"]])
        // The Researcher's generation ended without an answer (cancelled).
        let generation = try #require(spans.first { $0.type == "generation" && $0.parentId == turn.id })
        #expect(generation.spanData["output"] == .null)
    }

    @Test func sqlInputGuardrailTripsFromItsFirstRow() async throws {
        let tools = GuardrailSQL(row: ["tripwire_triggered": true, "output_info": "API key in input"])
        let (result, spans, _) = await Fixture.run(
            GuardFixture.spec(input: ["no_secrets"]), model: GuardFixture.model(),
            tools: tools)
        #expect(result.error?.type == .inputGuardrailTripwireTriggered)
        #expect(result.error?.message == "Guardrail no_secrets triggered tripwire: API key in input")
        #expect(spans.first { $0.type == "guardrail" }?.spanData["triggered"] == true)

        let passing = GuardrailSQL(row: ["tripwire_triggered": false, "output_info": .null])
        let (ok, okSpans, _) = await Fixture.run(
            GuardFixture.spec(input: ["no_secrets"]), model: GuardFixture.model(),
            tools: passing)
        #expect(ok.status == .completed)
        #expect(okSpans.first { $0.type == "guardrail" }?.spanData["triggered"] == false)
    }

    @Test func outputGuardrailRunsOnTheFinalOutputUnderTheAgentSpan() async throws {
        let (ok, okSpans, _) = await Fixture.run(GuardFixture.spec(output: ["checker"]), model: GuardFixture.model())
        #expect(ok.status == .completed)
        let researcher = try #require(okSpans.first { $0.type == "agent" && $0.spanData["name"] == "Researcher" })
        let guardrail = try #require(okSpans.first { $0.type == "guardrail" })
        #expect(guardrail.parentId == researcher.id)

        let model = GuardFixture.model(trip: true)
        let (result, spans, events) = await Fixture.run(GuardFixture.spec(output: ["checker"]), model: model)
        checkBalanced(events)
        #expect(result.error?.type == .outputGuardrailTripwireTriggered)
        let agent = try #require(spans.first { $0.type == "agent" && $0.spanData["name"] == "Researcher" })
        #expect(agent.error == ["message": "Guardrail tripwire triggered", "data": ["guardrail": "checker"]])
        // The checker saw the Researcher's output as its input.
        let checkerRequest = try #require(await model.requests.all.first { $0.agent.name == "Checker" })
        #expect(checkerRequest.input.first?["content"]?.stringValue == GuardFixture.validReport)
    }

    @Test func failingGuardrailFailsTheRun() async throws {
        let tools = FakeTools(failures: ["no_secrets": "relation \"secrets\" does not exist"])
        let (result, spans, _) = await Fixture.run(
            GuardFixture.spec(input: ["no_secrets"]), model: GuardFixture.model(),
            tools: tools)
        #expect(result.error?.type == .guardrailError)
        #expect(spans.first { $0.type == "guardrail" }?.error?["message"] == "Error running guardrail")
    }
}

@Suite struct GuardrailMappingTests {
    @Test func outputTypeAndGuardrailsLoadIntoTheRunSpec() throws {
        let text =
            MappingFixtures.base + """
                agents:
                  - name: A
                    output_type:
                      name: Report
                      schema: {type: object, properties: {summary: {type: string}}, required: [summary], additionalProperties: false}
                      columns: {summary: summary_text}
                    input_guardrails: [no_secrets]
                    output_guardrails: [checked]
                  - name: Checker
                    output_type:
                      name: Verdict
                      schema:
                        type: object
                        properties: {tripwire_triggered: {type: boolean}, output_info: {type: string}}
                        required: [tripwire_triggered, output_info]
                        additionalProperties: false
                guardrails:
                  - name: no_secrets
                    sql: {query: "SELECT CAST(:input AS text) ~ 'sk-' AS tripwire_triggered"}
                  - name: checked
                    agent: Checker
                """
        let config = try MappingLoader.load(documents: [("m.yaml", text)])
        let spec = try DatabaseToSDKBridge(config: config).runSpec(
            task: ["id": 1, "name": "n"], agentRows: [], handoffEdges: [],
            attempt: 1)
        let a = try #require(spec.agents["A"])
        #expect(a.outputType == "Report")
        #expect(a.outputSchema?.strict == true)
        #expect(a.outputSchema?.columns == ["summary": "summary_text"])
        #expect(a.inputGuardrails == ["no_secrets"])
        #expect(spec.agents["Checker"] != nil, "a guardrail agent travels with the spec")
        #expect(Set(spec.guardrails.keys) == ["no_secrets", "checked"])
        #expect(spec.guardrails["checked"]?.implementation == .agent("Checker"))
    }

    @Test func badGuardrailsAndOutputTypesAreLocated() {
        let text =
            MappingFixtures.base + """
                agents:
                  - name: A
                    output_type: {name: "bad name", schema: {type: object, properties: {x: {type: string}}}, columns: {y: c}}
                    input_guardrails: [no_secret]
                  - name: Plain
                guardrails:
                  - name: no_secrets
                    sql: {query: "SELECT :secret AS tripwire_triggered"}
                  - name: by_agent
                    agent: Plain
                  - name: both
                    agent: Plain
                    sql: {query: "SELECT 1"}
                """
        let messages = MappingFixtures.issues([("m.yaml", text)]).map(\.description)
        #expect(messages.contains { $0.contains("output_type name 'bad name' must match") })
        #expect(messages.contains { $0.contains("'y' is not a top-level property of the output_type schema") })
        #expect(messages.contains { $0.contains("additionalProperties") }, "strict by default")
        #expect(messages.contains { $0.contains("unknown guardrail 'no_secret' (did you mean 'no_secrets'?)") })
        #expect(messages.contains { $0.contains("SQL parameter ':secret' is not available to a guardrail") })
        #expect(
            messages.contains {
                $0.contains(
                    "guardrail agent 'Plain' needs an output_type with a required boolean property 'tripwire_triggered'"
                )
            })
        #expect(messages.contains { $0.contains("give exactly one of sql or agent, not both") })
    }
}

@Suite struct SequentialGuardrailTests {
    @Test func aSequentialGuardrailRunsBeforeTheModelCallAndATripCostsNoCall() async throws {
        var spec = GuardFixture.spec(input: ["no_secrets"])
        spec.guardrails["no_secrets"]?.runInParallel = false
        let model = GuardFixture.model()
        let tripping = GuardrailSQL(row: ["tripwire_triggered": true, "output_info": "API key in input"])
        let (result, spans, events) = await Fixture.run(spec, model: model, tools: tripping)
        checkBalanced(events)
        #expect(result.error?.type == .inputGuardrailTripwireTriggered)
        #expect(await model.requests.all.isEmpty, "no model call was made")
        #expect(!spans.contains { $0.type == "generation" })
        let guardrail = try #require(spans.first { $0.type == "guardrail" })
        let turn = try #require(spans.first { $0.id == guardrail.parentId })
        #expect(turn.spanData["name"] == "turn")

        let passing = GuardrailSQL(row: ["tripwire_triggered": false])
        let (ok, okSpans, _) = await Fixture.run(spec, model: GuardFixture.model(), tools: passing)
        #expect(ok.status == .completed)
        let g = try #require(okSpans.first { $0.type == "guardrail" })
        let generation = try #require(okSpans.first { $0.type == "generation" })
        #expect(g.endedAt <= generation.startedAt, "the guardrail finished before the model call started")
    }
}
