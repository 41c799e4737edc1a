import BridgeCore
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeMapping
@testable import BridgeRunner

/// A journal in memory: records checkpoints and finished calls, replays `finished`.
final class MemoryJournal: RunJournal, @unchecked Sendable {
    // @unchecked Sendable: the mutable state is only touched under `lock`.
    private let lock = NSLock()
    private var _checkpoints: [RunCheckpoint] = []
    private var _calls: [JournaledCall] = []
    private var stop = false
    let finished: [CallID: JournaledCall]
    /// Ask the run to stop once its first model response is journaled (a SIGTERM then).
    let stopAfterFirstCheckpoint: Bool

    init(finished: [JournaledCall] = [], stopAfterFirstCheckpoint: Bool = false) {
        self.finished = Dictionary(finished.map { ($0.callId, $0) }, uniquingKeysWith: { a, _ in a })
        self.stopAfterFirstCheckpoint = stopAfterFirstCheckpoint
    }

    var checkpoints: [RunCheckpoint] { lock.withLock { _checkpoints } }
    var calls: [JournaledCall] { lock.withLock { _calls } }

    func checkpoint(_ checkpoint: RunCheckpoint) async throws {
        lock.withLock {
            _checkpoints.append(checkpoint)
            if stopAfterFirstCheckpoint { stop = true }
        }
    }
    func callFinished(_ call: JournaledCall) async throws { lock.withLock { _calls.append(call) } }
    func finishedCall(_ callId: CallID) -> JournaledCall? { finished[callId] }
    func exactlyOnce(callId: CallID, toolName: String) -> ExactlyOnceWrite? { nil }
    var stopRequested: Bool { lock.withLock { stop } }
}

/// MCP servers that record the `_meta` of every call.
actor MetaLog {
    var metas: [JSONValue] = []
    func add(_ m: JSONValue) { metas.append(m) }
}
struct RecordingMCP: MCPToolSource {
    let log = MetaLog()
    func tools(server: String) async throws(MCPError) -> [MCPTool] {
        [MCPTool(name: "remote_note", description: "", inputSchema: ["type": "object"])]
    }
    func call(server: String, tool: String, arguments: JSONValue) async throws(MCPError) -> MCPCallResult {
        await log.add(.null)
        return MCPCallResult(content: [["type": "text", "text": "ok"]], structuredContent: nil, isError: false)
    }
    func call(server: String, tool: String, arguments: JSONValue, meta: JSONValue) async throws(MCPError)
        -> MCPCallResult
    {
        await log.add(meta)
        return MCPCallResult(content: [["type": "text", "text": "ok"]], structuredContent: nil, isError: false)
    }
    func usesStructuredContent(server: String) -> Bool { false }
}

/// Durable runs in the runner: what a resumed run does again and what it does not.
@Suite struct DurableRunnerTests {
    static func started(_ events: [RunEvent]) -> [(id: EventID, what: String)] {
        events.compactMap {
            switch $0 {
            case .toolStarted(let id, _, let name, _, _): (id, "tool \(name)")
            case .modelStarted(let id, _, _, let model, _, _): (id, "model \(model)")
            case .turnStarted(let id, _, let turn, let agent, _): (id, "turn \(turn) \(agent)")
            case .handoff(let id, _, let from, let to, _, _): (id, "handoff \(from) \(to)")
            default: nil
            }
        }
    }

    /// Resumed from its first checkpoint (the Project Manager's first response, which calls two
    /// tools), the run does not ask for that response again, does not run its two tools again
    /// (replayed from the journal), ends with the same transcript and output, and every step it
    /// records again gets the event id it had (so its span id is the same).
    @Test func aResumedRunRedoesNoFinishedStep() async throws {
        let spec = Fixture.team()
        let model1 = RecordingModel(inner: OfflineModel())
        let tools1 = FakeTools()
        let log1 = EventLog()
        let journal1 = MemoryJournal()
        let first = await AgentRunner(model: model1, tools: tools1, observer: log1, journal: journal1)
            .run(spec, taskRow: ["id": "42"])
        #expect(first.status == .completed)
        let checkpoint = try #require(journal1.checkpoints.first)
        let calledThere = checkpoint.response.compactMap { $0["call_id"]?.stringValue }
        let finished = journal1.calls.filter { calledThere.contains($0.callId.text) }
        #expect(finished.count == 2)

        let model2 = RecordingModel(inner: OfflineModel())
        let tools2 = FakeTools()
        let log2 = EventLog()
        let info = ResumeInfo(previousWorker: "a", worker: "b", lastStepAt: Date(), attempt: 2)
        let second = await AgentRunner(
            model: model2, tools: tools2, observer: log2, journal: MemoryJournal(finished: finished)
        )
        .resume(spec, checkpoint: checkpoint, info: info, taskRow: ["id": "42"])
        #expect(second.status == .completed)
        #expect(second.finalOutput == first.finalOutput)
        #expect(second.transcript == first.transcript)
        #expect(second.usage == first.usage)
        let requests1 = await model1.requests.all.count
        let requests2 = await model2.requests.all.count
        #expect(requests2 == requests1 - 1, "the checkpointed response is not requested again")
        let ran1 = await tools1.log.entries.count
        let ran2 = await tools2.log.entries.count
        #expect(ran2 == ran1 - 2, "the two finished calls are replayed, not run")
        let before = Dictionary(
            Self.started(await log1.events).map { ($0.id, $0.what) }, uniquingKeysWith: { a, _ in a })
        for step in Self.started(await log2.events) {
            #expect(before[step.id] == step.what, "event \(step.id) (\(step.what)) had another id before")
        }
        // The gap shows as a resume event under the task span, with its own (negative) id.
        let resumes = await log2.events.compactMap { e -> [String: JSONValue]? in
            if case .resumed(let id, let parent, let data, _, _) = e, id == -2,
                parent == checkpoint.position.taskEventId
            {
                return data
            }
            return nil
        }
        #expect(resumes.count == 1 && resumes.first?["previous_worker"] == "a" && resumes.first?["worker"] == "b")
    }

    /// Asked to stop (SIGTERM) after its first response is journaled, a run stops before its
    /// tools, and ends no span: it goes on from its journal elsewhere.
    @Test func aStopRequestEndsTheRunAtTheNextStepBoundary() async {
        let model = RecordingModel(inner: OfflineModel())
        let tools = FakeTools()
        let log = EventLog()
        let journal = MemoryJournal(stopAfterFirstCheckpoint: true)
        let result = await AgentRunner(model: model, tools: tools, observer: log, journal: journal)
            .run(Fixture.team(), taskRow: ["id": "42"])
        #expect(result.status == .failed && result.error?.type == .cancelled)
        #expect(await model.requests.all.count == 1 && journal.checkpoints.count == 1)
        #expect(await tools.log.entries.isEmpty)
        let ends = await log.events.filter {
            switch $0 {
            case .taskEnded, .agentEnded, .turnEnded: true
            default: false
            }
        }
        #expect(ends.isEmpty, "no span of the run is ended: the resumed run ends them")
    }

    /// Every tool call carries the stable idempotency key of its trace and call id: http and
    /// command tools in their context, MCP calls in `_meta`.
    @Test func toolCallsCarryAStableIdempotencyKey() async throws {
        var spec = Fixture.team()
        spec.agents["Project Manager"]?.mcpServers = ["remote"]
        let mcp = RecordingMCP()
        let keys = KeyLog()
        let runner = AgentRunner(model: OfflineModel(), tools: KeyTools(log: keys), observer: EventLog(), mcp: mcp)
        let result = await runner.run(spec, taskRow: ["id": "42"])
        #expect(result.status == .completed)
        func callId(_ name: String) -> CallID? {
            result.transcript.first { $0["type"] == "function_call" && $0["name"]?.stringValue == name }?["call_id"]?
                .stringValue.map { CallID($0) }
        }
        let mcpCall = try #require(callId("remote_note"))
        #expect(
            await mcp.log.metas == [
                [IdempotencyKey.metaKey: .string(IdempotencyKey.make(traceId: spec.traceId, callId: mcpCall))]
            ])
        let sqlCall = try #require(callId("get_team_roles_and_status"))
        #expect(
            await keys.keys["get_team_roles_and_status"] == IdempotencyKey.make(traceId: spec.traceId, callId: sqlCall))
        #expect(IdempotencyKey.make(traceId: spec.traceId, callId: sqlCall).hasPrefix("bridge-"))
        #expect(
            IdempotencyKey.make(traceId: spec.traceId, callId: sqlCall)
                != IdempotencyKey.make(traceId: spec.traceId, callId: mcpCall))
    }

    /// An agent output guardrail's verdict is journaled with its step. A run resumed from its
    /// final response (a kill during or after the guardrail) replays the verdict: the checker
    /// agent is not asked again, and the outcome, usage and transcript are the same, whether
    /// the guardrail passed or tripped.
    @Test(arguments: [false, true]) func aResumedRunReplaysItsGuardrailVerdict(trip: Bool) async throws {
        let spec = GuardFixture.spec(output: ["checker"])
        let model1 = GuardFixture.model(trip: trip)
        let journal1 = MemoryJournal()
        let first = await AgentRunner(model: model1, tools: FakeTools(), observer: EventLog(), journal: journal1)
            .run(spec, taskRow: ["id": "7"])
        #expect(first.status == (trip ? .failed : .completed))
        #expect(await model1.requests.all.count == 2)
        let record = try #require(journal1.calls.first { $0.name == JournaledGuardrails.recordName })
        #expect(record.verdict?.items.count == 1)
        // The record survives the journal's JSON (jsonb) and decodes again.
        let stored = try JSONDecoder().decode(JournaledCall.self, from: try JSONEncoder().encode(record))
        #expect(stored == record)
        let checkpoint = try #require(journal1.checkpoints.last)

        let model2 = GuardFixture.model(trip: trip)
        let log2 = EventLog()
        let info = ResumeInfo(previousWorker: "a", worker: "b", lastStepAt: Date(), attempt: 2)
        let second = await AgentRunner(
            model: model2, tools: FakeTools(), observer: log2, journal: MemoryJournal(finished: [stored])
        )
        .resume(spec, checkpoint: checkpoint, info: info, taskRow: ["id": "7"])
        #expect(await model2.requests.all.isEmpty, "neither the answer nor the guardrail agent is asked again")
        #expect(second.status == first.status)
        #expect(second.error?.type == first.error?.type && second.error?.message == first.error?.message)
        #expect(second.usage == first.usage)
        #expect(second.transcript == first.transcript)
        let guardrailSpans = await log2.events.filter {
            if case .guardrailStarted = $0 { return true }
            return false
        }
        #expect(guardrailSpans.isEmpty, "the guardrail's spans were written with its record")
    }

    /// A checkpoint's hand-built JSON (the hot path) decodes as its `Codable` form: a resumed
    /// run gets back exactly what was journaled.
    @Test func aCheckpointsJournalJSONDecodesAsItsCodableForm() throws {
        let at = Date(timeIntervalSinceReferenceDate: 786_543_210.123_456)
        let position = RunPosition(
            history: [["role": "user", "content": "hi \u{0}"], call("t", "call_1", "{\"a\":1}")],
            transcript: [["type": "guardrail_result", "name": "g", "triggered": false]],
            usage: Usage(requests: 2, inputTokens: 30, outputTokens: 4, cachedTokens: 1, reasoningTokens: 5), turn: 2,
            toolCalls: 1, agent: "Project Manager", taskEventId: 1, agentEventId: 2, nextEventId: 9)
        let checkpoint = RunCheckpoint(
            position: position, turnEventId: 7, turnUsage: Usage(requests: 1), response: [call("t", "call_1")],
            openSpans: [["event_id": 1, "span_id": "span_x", "parent_span_id": .null, "started_at": 786_543_200.5]],
            at: at)
        let decoded = try JSONDecoder().decode(
            RunCheckpoint.self, from: Data(checkpoint.journalJSON.compact.utf8))
        let restored = decoded.position
        #expect(restored.history == position.history && restored.transcript == position.transcript)
        #expect(restored.usage == position.usage && decoded.turnUsage == checkpoint.turnUsage)
        #expect(restored.turn == 2 && restored.toolCalls == 1 && restored.agent == "Project Manager")
        #expect(restored.taskEventId == 1 && restored.agentEventId == 2 && decoded.turnEventId == 7)
        #expect(restored.nextEventId == 9 && decoded.response == checkpoint.response)
        #expect(decoded.openSpans == checkpoint.openSpans)
        #expect(abs(decoded.at.timeIntervalSince(at)) < 1e-6)
        // And the same as what JSONEncoder writes, key for key.
        let encoded = try JSONValue.parse(String(decoding: try JSONEncoder().encode(checkpoint), as: UTF8.self))
        let keys = { (v: JSONValue) -> Set<String> in Set(v.objectValue.map { Array($0.keys) } ?? []) }
        #expect(keys(encoded) == keys(checkpoint.journalJSON))
        #expect(encoded["usage"] == checkpoint.journalJSON["usage"])
    }

    /// A call record written before guardrails were journaled (no `guardrails` key) still reads.
    @Test func aCallRecordWithoutGuardrailsStillDecodes() throws {
        let text = #"{"call_id":"c1","name":"t","output":"x","raw":false}"#
        let call = try JSONDecoder().decode(JournaledCall.self, from: Data(text.utf8))
        #expect(call.callId == "c1" && call.verdict == nil)
    }

    /// A durable run that resumes after an approval journals its next checkpoint under the
    /// paused run's task span, so a resume from that checkpoint ends the right span.
    @Test func aCheckpointAfterAnApprovalKeepsTheTaskSpan() async throws {
        let spec = ApprovalFixture.spec()
        let model = ScriptedModel { r in
            switch r.input.filter({ $0["type"] == "function_call_output" }).count {
            case 0, 1:
                [
                    call("lookup", "c1", #"{"key":"k","value":"v"}"#),
                    call("delegate", "c2", #"{"key":"a","value":"b"}"#),
                ]
            case 2: [call("lookup", "c3", #"{"key":"k","value":"w"}"#)]
            default: [say("done")]
            }
        }
        let first = await AgentRunner(model: model, tools: FakeTools(), observer: EventLog()).run(spec, taskRow: [:])
        let paused = try #require(first.paused)
        let journal = MemoryJournal()
        let decision = ApprovalDecision(callId: "c2", outcome: .approved, requestId: "req-1", toolName: "delegate")
        let resumed = await AgentRunner(model: model, tools: FakeTools(), observer: EventLog(), journal: journal)
            .resume(spec, paused: paused, decisions: [decision], taskRow: [:])
        #expect(resumed.status == .completed)
        let checkpoint = try #require(journal.checkpoints.first)
        #expect(paused.position.taskEventId != 0 && checkpoint.position.taskEventId == paused.position.taskEventId)
    }
}

actor KeyLog {
    var keys: [String: String] = [:]
    func add(_ tool: String, _ key: String) { keys[tool] = key }
}
struct KeyTools: ToolExecutor {
    let log: KeyLog
    func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        await log.add(tool.name, context.idempotencyKey)
        return "[]"
    }
}
