import BridgeCore
import Foundation
import Testing

@testable import BridgeMacros
@testable import BridgeMapping
@testable import BridgeRunner
@testable import BridgeTracing

/// The JSON keys of what bridge stores (journals, checkpoints, paused runs, run specs) and prints
/// (`--dry-run`), for every type whose keys `@SnakeCaseCodingKeys` derives from property names
/// (a renamed property would silently rename a key that older rows still hold: these pins make
/// it a failing test), and for `ToolSpec`, whose keys are written out.
@Suite struct StoredFormatTests {
    static func keys<K: CodingKey & CaseIterable>(_: K.Type) -> [String] { K.allCases.map(\.stringValue) }

    @Test(arguments: [
        (
            keys(JournaledCall.CodingKeys.self),
            "call_id name output error model_output span_output mcp_server raw guardrails verdict"
        ),
        (
            keys(JournaledGuardrails.CodingKeys.self),
            "usage items failure_type failure_message output_info span_error next_event_id"
        ),
        (
            keys(RunPosition.CodingKeys.self) + keys(RunCheckpoint.CodingKeys.self),
            "history transcript usage turn tool_calls agent task_event_id agent_event_id next_event_id turn_event_id turn_usage response open_spans at"
        ),
        (keys(TraceRecorder.OpenSpan.CodingKeys.self), "event_id span_id parent_span_id started_at data"),
        (keys(PendingApproval.CodingKeys.self), "call_id name arguments agent"),
        (
            keys(RunPosition.CodingKeys.self) + keys(PausedRun.CodingKeys.self),
            "history transcript usage turn tool_calls agent task_event_id agent_event_id next_event_id pending deferred_handoffs paused_at"
        ),
        (
            keys(RunSpec.CodingKeys.self),
            "trace_id workflow_name group_id metadata starting_agent agents tools input max_turns trace_include_sensitive_data task_id attempt guardrails session"
        ),
        (
            keys(AgentSpec.CodingKeys.self),
            "name instructions model model_settings tools handoffs tool_use_behavior model_api output_type output_schema input_guardrails output_guardrails mcp_servers"
        ),
        (keys(HandoffSpec.CodingKeys.self), "agent tool_name tool_description"),
        (keys(SQLToolSpec.CodingKeys.self), "sql writes timeout_ms max_rows max_bytes"),
        (keys(HTTPToolSpec.CodingKeys.self), "url headers timeout_ms max_bytes"),
        (keys(CommandToolSpec.CodingKeys.self), "argv timeout_ms max_bytes env"),
        (keys(HostedToolSpec.CodingKeys.self), "type vector_store_ids"),
        (keys(GuardrailSpec.CodingKeys.self), "name implementation run_in_parallel"),
        (keys(ToolGuardrailSpec.CodingKeys.self), "check on_trip"),
        (
            keys(ToolSpec.CodingKeys.self),
            "name description parameters strict implementation needsApproval input_guardrails output_guardrails"
        ),
    ])
    func keysStay(_ keys: [String], _ expected: String) {
        #expect(keys == expected.split(separator: " ").map(String.init))
    }

    /// A paused run (`bridge.run_states.state`) as this release and the one before it write it,
    /// with sorted keys: `JSONEncoder`'s own key order changes from process to process.
    static let pausedRun = #"""
        {"agent":"Support","agent_event_id":2,"deferred_handoffs":[{"agent":"Billing","arguments":"{}","call_id":"h1","name":"transfer_to_billing"}],\#
        "history":[{"content":"Refund order 7.","role":"user"},{"arguments":"{\"order\":7}","call_id":"c1","name":"refund","type":"function_call"}],\#
        "next_event_id":5,"paused_at":786412800.5,"pending":[{"agent":"Support","arguments":"{\"order\":7}","call_id":"c1","name":"refund"}],\#
        "task_event_id":1,"tool_calls":3,"transcript":[{"arguments":"{\"order\":7}","call_id":"c1","name":"refund","type":"function_call"}],\#
        "turn":2,"usage":{"cachedTokens":1,"inputTokens":30,"outputTokens":4,"reasoningTokens":5,"requests":2}}
        """#

    /// A checkpoint (`bridge.run_journal.checkpoint`) as `journalJSON` writes it, in this release
    /// and the one before it (`compact` sorts keys).
    static let checkpoint = #"""
        {"agent":"Planner","agent_event_id":2,"at":786412800.5,\#
        "history":[{"content":"Plan the launch.","role":"user"},{"arguments":"{\"topic\":\"example\"}","call_id":"call_ab12","name":"lookup","type":"function_call"}],\#
        "next_event_id":9,"open_spans":[{"event_id":1,"parent_span_id":null,"span_id":"span_x","started_at":786412799.5}],\#
        "response":[{"arguments":"{\"topic\":\"example\"}","call_id":"call_ab12","name":"lookup","type":"function_call"}],\#
        "task_event_id":1,"tool_calls":1,"transcript":[{"kind":"input","name":"polite","triggered":false,"type":"guardrail_result"}],\#
        "turn":2,"turn_event_id":7,"turn_usage":{"cachedTokens":0,"inputTokens":10,"outputTokens":3,"reasoningTokens":0,"requests":1},\#
        "usage":{"cachedTokens":1,"inputTokens":30,"outputTokens":4,"reasoningTokens":5,"requests":2}}
        """#

    static func sortedJSON(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// What the previous release stored decodes, and is written back byte for byte.
    @Test func aPausedRunKeepsItsBytes() throws {
        let paused = try JSONDecoder().decode(PausedRun.self, from: Data(Self.pausedRun.utf8))
        let position = paused.position
        #expect(position.agent == "Support" && position.agentEventId == 2 && position.taskEventId == 1)
        #expect(
            position.nextEventId == 5 && position.turn == 2 && position.toolCalls == 3 && position.usage.requests == 2)
        #expect(position.history.count == 2 && position.transcript.count == 1)
        #expect(paused.pending.map(\.callId) == ["c1"] && paused.deferredHandoffs.map(\.agent) == ["Billing"])
        #expect(paused.pausedAt == Date(timeIntervalSinceReferenceDate: 786_412_800.5))
        #expect(try Self.sortedJSON(paused) == Self.pausedRun)
        // As `ApprovalStore` writes it (keys in no set order): the same object.
        #expect(try JSONValue.parse(JSONEncoder().encode(paused)) == JSONValue.parse(Self.pausedRun))
    }

    /// Likewise for a checkpoint, through `journalJSON` (the hot path) and through `JSONEncoder`.
    @Test func aCheckpointKeepsItsBytes() throws {
        let checkpoint = try JSONDecoder().decode(RunCheckpoint.self, from: Data(Self.checkpoint.utf8))
        let position = checkpoint.position
        #expect(position.agent == "Planner" && position.agentEventId == 2 && position.taskEventId == 1)
        #expect(position.nextEventId == 9 && position.turn == 2 && position.toolCalls == 1)
        #expect(position.usage.requests == 2 && checkpoint.turnUsage.requests == 1 && checkpoint.turnEventId == 7)
        #expect(position.history.count == 2 && position.transcript.count == 1 && checkpoint.response.count == 1)
        #expect(checkpoint.at == Date(timeIntervalSinceReferenceDate: 786_412_800.5))
        #expect(checkpoint.journalJSON.compact == Self.checkpoint)
        #expect(try Self.sortedJSON(checkpoint) == Self.checkpoint)
        #expect(try JSONValue.parse(JSONEncoder().encode(checkpoint)) == JSONValue.parse(Self.checkpoint))
    }

    @Test(arguments: [
        ("callId", "call_id"), ("modelAPI", "model_api"), ("streamableHTTP", "streamable_http"),
        ("URLPath", "url_path"), ("vectorStoreIds", "vector_store_ids"), ("name", "name"),
        ("top2Logprobs", "top2_logprobs"),
    ])
    func snakeCase(_ name: String, _ key: String) {
        #expect(SnakeCaseCodingKeysMacro.snakeCase(name) == key)
    }
}
