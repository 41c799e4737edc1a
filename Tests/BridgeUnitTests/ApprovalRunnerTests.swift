import BridgeCore
import BridgeMapping
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

@testable import BridgeRunner

// Pausing a run at a needs_approval call and resuming it, in one trace.

enum ApprovalFixture {
    static func spec() -> RunSpec {
        let pm = AgentSpec(
            name: "Manager", instructions: "Manage.", model: "gpt-4.1",
            tools: ["lookup", "delegate"], handoffs: [])
        let tools: [String: ToolSpec] = [
            "lookup": Fixture.sqlTool("lookup", Fixture.storeSchema),
            "delegate": ToolSpec(
                name: "delegate", description: "Delegates.", parameters: Fixture.storeSchema,
                implementation: .sql(SQLToolSpec(sql: "SELECT 1")), needsApproval: .always),
        ]
        return RunSpec(
            traceId: TraceID.forTask("9", attempt: 1), workflowName: "bridge", groupId: nil, metadata: [:],
            startingAgent: "Manager", agents: ["Manager": pm], tools: tools, input: "Plan.", maxTurns: 10,
            traceIncludeSensitiveData: true, taskId: "9", attempt: 1)
    }

    /// Turn 1: both tools; then a final answer quoting the delegate call's output.
    static func model() -> ScriptedModel {
        ScriptedModel { r in
            let outputs = r.input.filter { $0["type"] == "function_call_output" }
            if outputs.count < 2 {
                return [
                    call("lookup", "c1", #"{"key":"k","value":"v"}"#),
                    call("delegate", "c2", #"{"key":"a","value":"b"}"#),
                ]
            }
            return [say("done: " + (outputs.last?["output"]?.stringValue ?? ""))]
        }
    }
}

@Suite struct ApprovalRunnerTests {
    /// Pauses, then resumes with `decision` on a fresh recorder restored from the pause.
    static func pauseAndResume(_ outcome: ApprovalDecision.Outcome, message: String? = nil)
        async throws -> (
            paused: RunResult, resumed: RunResult, first: [SpanRecord], second: [SpanRecord],
            tools: [String], firstTraces: Int, secondTraces: Int
        )
    {
        let spec = ApprovalFixture.spec()
        let tools = FakeTools()
        let sink1 = MemorySpanSink()
        let recorder1 = TraceRecorder(spec: spec, sinks: [sink1], includeSensitiveData: true)
        let paused = await AgentRunner(model: ApprovalFixture.model(), tools: tools, observer: recorder1).run(
            spec, taskRow: [:])
        let open = await recorder1.openSpans()
        // Through JSON, as the worker stores them.
        let state = try JSONDecoder().decode(PausedRun.self, from: JSONEncoder().encode(try #require(paused.paused)))
        let spans = try JSONDecoder().decode([TraceRecorder.OpenSpan].self, from: JSONEncoder().encode(open))

        let sink2 = MemorySpanSink()
        let recorder2 = TraceRecorder(spec: spec, sinks: [sink2], includeSensitiveData: true)
        await recorder2.restore(spans)
        let decision = ApprovalDecision(
            callId: "c2", outcome: outcome, message: message, decidedBy: "ana",
            requestId: "req-1", toolName: "delegate")
        let resumed = await AgentRunner(model: ApprovalFixture.model(), tools: tools, observer: recorder2)
            .resume(spec, paused: state, decisions: [decision], taskRow: [:])
        return (
            paused, resumed, await sink1.spans, await sink2.spans, await tools.log.entries.map(\.name),
            await sink1.traces.count, await sink2.traces.count
        )
    }

    @Test func aNeedsApprovalCallPausesWithTheTaskAndAgentSpansOpen() async throws {
        let r = try await Self.pauseAndResume(.approved)
        #expect(r.paused.status == .paused)
        let state = try #require(r.paused.paused)
        #expect(
            state.pending == [
                PendingApproval(
                    callId: "c2", name: "delegate", arguments: #"{"key":"a","value":"b"}"#,
                    agent: "Manager")
            ])
        // The other call of the same response ran before the pause.
        #expect(r.first.filter { $0.type == "function" }.map { $0.spanData["name"] } == ["lookup"])
        #expect(!r.first.contains { $0.type == "agent" || $0.spanData["name"] == "task" })
        #expect(r.firstTraces == 1 && r.secondTraces == 0, "the trace object is started once")
    }

    @Test func approvedCallRunsAndTheRunFinishesInTheSameSpans() async throws {
        let r = try await Self.pauseAndResume(.approved)
        #expect(r.resumed.status == .completed)
        #expect(r.tools.sorted() == ["delegate", "lookup"])
        let all = r.first + r.second
        let task = try #require(r.second.first { $0.spanData["name"] == "task" })
        let agents = all.filter { $0.type == "agent" }
        #expect(agents.count == 1, "one agent span across both stints")
        #expect(agents[0].parentId == task.id)
        #expect(all.filter { $0.spanData["name"] == "task" }.count == 1)
        // Every span's parent is in the trace: no orphans.
        let ids = Set(all.map(\.id))
        #expect(all.allSatisfy { $0.parentId == nil || ids.contains($0.parentId!) })
        let wait = try #require(r.second.first { $0.spanData["name"] == "approval" })
        #expect(wait.parentId == agents[0].id)
        #expect(wait.spanData["data"]?["decision"] == "approved")
        #expect(wait.spanData["data"]?["decided_by"] == "ana")
        #expect(wait.spanData["data"]?["request_id"] == "req-1")
        #expect(wait.startedAt <= wait.endedAt)
        let delegate = try #require(r.second.first { $0.type == "function" && $0.spanData["name"] == "delegate" })
        #expect(delegate.error == nil)
        #expect(r.resumed.transcript.contains { $0["call_id"] == "c2" && $0["type"] == "function_call_output" })
    }

    @Test func rejectedCallGetsTheSDKMessageOrTheReviewersText() async throws {
        let r = try await Self.pauseAndResume(.rejected)
        #expect(r.resumed.status == .completed)
        #expect(r.tools == ["lookup"], "a rejected call never runs")
        #expect(r.resumed.finalOutput == "done: Tool execution was not approved.")
        let span = try #require(r.second.first { $0.type == "function" && $0.spanData["name"] == "delegate" })
        #expect(
            span.error == [
                "message": "Tool execution was not approved.",
                "data": ["tool_name": "delegate", "error": "Tool execution for c2 was manually rejected by user."],
            ])
        #expect(span.spanData["output"] == "Tool execution was not approved.")

        let withText = try await Self.pauseAndResume(.rejected, message: "Not this week.")
        #expect(withText.resumed.finalOutput == "done: Not this week.")
        let expired = try await Self.pauseAndResume(.expired)
        #expect(expired.resumed.finalOutput == "done: Tool execution was not approved.")
        #expect(expired.second.first { $0.spanData["name"] == "approval" }?.spanData["data"]?["decision"] == "expired")
    }
}
