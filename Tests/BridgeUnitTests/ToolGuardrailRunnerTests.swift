import BridgeCore
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeMapping
@testable import BridgeRunner

/// Tool guardrails' YAML (`input_guardrails` / `output_guardrails` on a tool), and their
/// interplay with durable runs: a rejection is journaled and replayed, never run again.

/// SQL guardrails answer `tripwire_triggered: trip`; tools answer a row. Everything is logged;
/// with `refuse`, everything throws (a resumed run must run nothing).
struct GuardedTools: ToolExecutor {
    var trip = false
    var refuse = false
    let log = ToolLog()
    func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        await log.add(tool.name, arguments: arguments, start: Date(), end: Date())
        if refuse { throw ToolFailure("\(tool.name) must not run again") }
        if tool.description == "guardrail" { return JSONValue.array([["tripwire_triggered": .bool(trip)]]).compact }
        return "[{\"card\":\"visa\"}]"
    }
}

enum ToolGuardFixture {
    static func spec(onTrip: ToolGuardrailBehavior) -> RunSpec {
        var lookup = ToolSpec(
            name: "lookup", description: "Looks up.",
            parameters: .strictObject(["id": ["type": "integer"]]),
            implementation: .sql(SQLToolSpec(sql: "SELECT 1")))
        lookup.inputGuardrails = [
            ToolGuardrailSpec(
                check: GuardrailSpec(name: "own_orders", implementation: .sql(.check("SELECT true"))), onTrip: onTrip)
        ]
        let clerk = AgentSpec(name: "Clerk", instructions: "Help.", model: "gpt-4.1", tools: ["lookup"], handoffs: [])
        return RunSpec(
            traceId: TraceID.forTask("9", attempt: 1), workflowName: "bridge", groupId: nil, metadata: [:],
            startingAgent: "Clerk", agents: ["Clerk": clerk], tools: ["lookup": lookup], input: "Cards?", maxTurns: 5,
            traceIncludeSensitiveData: true, taskId: "9", attempt: 1)
    }

    /// Calls `lookup` once per id in the first turn, then answers with what it was told.
    static func model(ids: [Int]) -> ScriptedModel {
        ScriptedModel { r in
            let told = r.input.filter { $0["type"] == "function_call_output" }.compactMap { $0["output"]?.stringValue }
            if !told.isEmpty { return [say("told: " + told.joined(separator: " | "))] }
            return ids.map { call("lookup", "c\($0)", "{\"id\":\($0)}") }
        }
    }

    /// (guardrail span id, parent function span id) of each guardrail started.
    static func guardrails(_ events: [RunEvent]) -> [(id: EventID, parent: EventID)] {
        events.compactMap {
            if case .guardrailStarted(let id, let parent, _, _) = $0 { return (id, parent) }
            return nil
        }
    }
}

@Suite struct ToolGuardrailDurableTests {
    @Test func aRejectedCallIsJournaledAndReplayedWithoutRunningAnything() async throws {
        let spec = ToolGuardFixture.spec(onTrip: .rejectContent(message: "Not yours."))
        let tools1 = GuardedTools(trip: true)
        let journal1 = MemoryJournal()
        let log1 = EventLog()
        let first = await AgentRunner(
            model: ToolGuardFixture.model(ids: [1]), tools: tools1, observer: log1, journal: journal1
        ).run(spec, taskRow: ["id": "9"])
        #expect(first.finalOutput == "told: Not yours.")
        #expect(await tools1.log.entries.map(\.name) == ["own_orders"], "the guardrail ran, the tool did not")
        let journaled = try #require(journal1.calls.first)
        #expect(journaled.output == "Not yours.")
        #expect(journaled.guardrails?.first?["behavior"] == "reject_content")
        checkBalanced(await log1.events)

        // Resumed after the call was journaled: neither the guardrail nor the tool runs again,
        // and the run ends exactly as the first one did.
        let checkpoint = try #require(journal1.checkpoints.first)
        let tools2 = GuardedTools(refuse: true)
        let log2 = EventLog()
        let info = ResumeInfo(previousWorker: "a", worker: "b", lastStepAt: Date(), attempt: 2)
        let second = await AgentRunner(
            model: ToolGuardFixture.model(ids: [1]), tools: tools2, observer: log2,
            journal: MemoryJournal(finished: journal1.calls)
        ).resume(spec, checkpoint: checkpoint, info: info, taskRow: ["id": "9"])
        #expect(second.status == .completed, "\(String(describing: second.error))")
        #expect(second.finalOutput == first.finalOutput)
        #expect(second.transcript == first.transcript, "the guardrail's result is replayed into the transcript")
        #expect(await tools2.log.entries.isEmpty)
        #expect(ToolGuardFixture.guardrails(await log2.events).isEmpty, "its span was stored with the call")
    }

    @Test func guardrailSpanIdsAreTheSameWhenAResumedRunChecksACallAgain() async throws {
        let spec = ToolGuardFixture.spec(onTrip: .raiseException)
        let journal1 = MemoryJournal()
        let log1 = EventLog()
        let first = await AgentRunner(
            model: ToolGuardFixture.model(ids: [1, 2]), tools: GuardedTools(), observer: log1, journal: journal1
        ).run(spec, taskRow: ["id": "9"])
        #expect(first.status == .completed)
        let before = ToolGuardFixture.guardrails(await log1.events)
        #expect(before.count == 2)
        #expect(Set(before.map(\.id)).count == 2, "concurrent calls' guardrails have distinct span ids")

        // Only c1 was journaled before the interruption: c2 is checked again, in the same span.
        let checkpoint = try #require(journal1.checkpoints.first)
        let log2 = EventLog()
        let second = await AgentRunner(
            model: ToolGuardFixture.model(ids: [1, 2]), tools: GuardedTools(), observer: log2,
            journal: MemoryJournal(finished: journal1.calls.filter { $0.callId == "c1" })
        ).resume(
            spec, checkpoint: checkpoint,
            info: ResumeInfo(previousWorker: nil, worker: "b", lastStepAt: Date(), attempt: 2),
            taskRow: ["id": "9"])
        #expect(second.status == .completed)
        let again = ToolGuardFixture.guardrails(await log2.events)
        #expect(again.count == 1)
        let c2 = try #require(before.first { g in again.contains { $0.parent == g.parent } })
        #expect(again.first?.id == c2.id)
    }

    @Test func aRaisedTripwireFailsTheRunAndEndsEverySpan() async {
        let spec = ToolGuardFixture.spec(onTrip: .raiseException)
        let tools = GuardedTools(trip: true)
        let (result, spans, events) = await Fixture.run(spec, model: ToolGuardFixture.model(ids: [1]), tools: tools)
        checkBalanced(events)
        #expect(result.error?.type == .toolInputGuardrailTripwireTriggered)
        #expect(result.error?.retriable == false)
        #expect(spans.first { $0.type == "function" }?.error?["message"] == "Error running tool")
        #expect(await tools.log.entries.map(\.name) == ["own_orders"])
    }
}

@Suite struct ToolGuardrailApprovalTests {
    /// The SDK's order: a needs_approval call waits first; its input guardrails run once it is
    /// approved, and a tripwire then fails the run without the tool.
    @Test func inputGuardrailsRunAfterApproval() async throws {
        var spec = ApprovalFixture.spec()
        spec.tools["delegate"]?.inputGuardrails = [
            ToolGuardrailSpec(
                check: GuardrailSpec(name: "own_orders", implementation: .sql(.check("SELECT true"))),
                onTrip: .raiseException)
        ]
        let tools = GuardedTools(trip: true)
        let paused = await AgentRunner(model: ApprovalFixture.model(), tools: tools, observer: EventLog())
            .run(spec, taskRow: [:])
        #expect(paused.status == .paused)
        #expect(await tools.log.entries.map(\.name) == ["lookup"], "no guardrail runs before the decision")
        let state = try #require(paused.paused)
        let decision = ApprovalDecision(
            callId: "c2", outcome: .approved, message: nil, decidedBy: "ana", requestId: "req-1", toolName: "delegate")
        let log = EventLog()
        let resumed = await AgentRunner(model: ApprovalFixture.model(), tools: tools, observer: log)
            .resume(spec, paused: state, decisions: [decision], taskRow: [:])
        #expect(resumed.error?.type == .toolInputGuardrailTripwireTriggered)
        #expect(await tools.log.entries.map(\.name) == ["lookup", "own_orders"], "the approved tool did not run")
        #expect(resumed.transcript.contains { $0["type"] == "guardrail_result" && $0["call_id"] == "c2" })
    }
}

@Suite struct ToolGuardrailMappingTests {
    static let agents = """
        agents:
          - name: A
            tools: [lookup]
          - name: Checker
            output_type:
              name: Verdict
              schema:
                type: object
                properties: {tripwire_triggered: {type: boolean}}
                required: [tripwire_triggered]
                additionalProperties: false

        """

    /// The start of a tools file: the SQL tool `lookup`, its guardrails to follow (indented 4).
    static let lookupTool = """
        tools:
          - name: lookup
            description: Looks up.
            sql: {query: "SELECT 1"}

        """

    /// Mappings with the agents above and `lookup` followed by `guardrails`.
    static func mappings(lookupThen guardrails: String) -> String {
        MappingFixtures.base + agents + lookupTool + guardrails
    }

    @Test func toolGuardrailsLoadIntoTheRunSpecWithTheirAgents() throws {
        let text = Self.mappings(
            lookupThen: """
                    input_guardrails:
                      - name: own
                        sql: {query: "SELECT (CAST(:arguments AS jsonb)->>'id') IS NULL AS tripwire_triggered FROM tasks WHERE name = :task.name"}
                        on_trip: reject_content
                        message: "Not for task {{task.id}}."
                    output_guardrails:
                      - name: pii
                        agent: Checker
                """)
        let config = try MappingLoader.load(documents: [("m.yaml", text)])
        let spec = try DatabaseToSDKBridge(config: config).runSpec(
            task: ["id": 1, "name": "n"], agentRows: [], handoffEdges: [], attempt: 1)
        let lookup = try #require(spec.tools["lookup"])
        #expect(lookup.inputGuardrails?.map(\.name) == ["own"])
        #expect(lookup.inputGuardrails?.first?.onTrip == .rejectContent(message: "Not for task {{task.id}}."))
        #expect(lookup.outputGuardrails?.first?.onTrip == .raiseException, "raise_exception is the default")
        #expect(lookup.outputGuardrails?.first?.check.implementation == .agent("Checker"))
        #expect(spec.agents["Checker"] != nil, "a tool guardrail's agent travels with the spec")
        // The spec round-trips through JSON (paused runs and journals store it).
        let data = try JSONEncoder().encode(spec)
        #expect(try JSONDecoder().decode(RunSpec.self, from: data) == spec)
        let columns = MappingValidator.references(config).filter { $0.location.path.contains("guardrails") }
        #expect(columns.map(\.column) == ["name"], "the guardrail's :task.name is checked against the table")
    }

    @Test func badToolGuardrailsAreLocated() {
        let text = Self.mappings(
            lookupThen: """
                    input_guardrails:
                      - name: g1
                        sql: {query: "SELECT :output IS NULL AS tripwire_triggered"}
                        on_trip: reject_contnet
                      - name: g2
                        agent: A
                        behaviour: raise
                      - name: g3
                        agent: Nobody
                        on_trip: raise_exception
                        message: "x"
                      - name: g3
                        sql: {query: "SELECT true AS tripwire_triggered; DELETE FROM tasks"}
                        agent: Checker
                      - name: g5
                        sql: {query: "SELECT true AS tripwire_triggered"}
                        on_trip: reject_content
                        message: "{{agent.role}}"
                  - name: web
                    hosted: {type: web_search}
                    output_guardrails:
                      - name: g6
                        agent: Checker
                """)
        let issues = MappingFixtures.issues([("m.yaml", text)])
        let messages = issues.map(\.description)
        func line(_ needle: String, last: Bool) -> Int {
            let lines = text.components(separatedBy: "\n")
            return ((last ? lines.lastIndex { $0.contains(needle) } : lines.firstIndex { $0.contains(needle) }) ?? -1)
                + 1
        }
        func has(_ fragment: String, at needle: String, last: Bool = false) {
            let l = line(needle, last: last)
            #expect(
                issues.contains { $0.description.contains(fragment) && $0.file == "m.yaml" && $0.line == l },
                "\(fragment) at line \(l): \(messages)")
        }
        has("SQL parameter ':output' is not available to a guardrail", at: "SELECT :output IS NULL")
        has("unknown on_trip 'reject_contnet' (expected reject_content or raise_exception)", at: "reject_contnet")
        has("did you mean 'reject_content'?", at: "reject_contnet")
        has("unknown key 'behaviour'", at: "behaviour: raise")
        has("guardrail agent 'A' needs an output_type with a required boolean property", at: "agent: A", last: true)
        has("unknown agent 'Nobody'", at: "agent: Nobody")
        has("message goes with on_trip: reject_content", at: "message: \"x\"")
        has("duplicate guardrail name 'g3' in input_guardrails", at: "- name: g3", last: true)
        #expect(messages.contains { $0.contains("give exactly one of sql or agent, not both") })
        has("a tool guardrail's message may use {{task.column}} only", at: "{{agent.role}}")
        has("hosted tools run at the model provider; bridge cannot guard them", at: "output_guardrails:")
    }
}
