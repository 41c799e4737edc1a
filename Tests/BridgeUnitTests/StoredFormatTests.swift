import BridgeCore
import BridgeTraceModel
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
            keys(RunCheckpoint.CodingKeys.self),
            "history transcript usage turn tool_calls agent task_event_id agent_event_id turn_event_id next_event_id turn_usage response open_spans at"
        ),
        (keys(TraceRecorder.OpenSpan.CodingKeys.self), "event_id span_id parent_span_id started_at data"),
        (keys(PendingApproval.CodingKeys.self), "call_id name arguments agent"),
        (
            keys(PausedRun.CodingKeys.self),
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

    /// An open span's hand-built checkpoint JSON: the text journals hold, and it decodes as its
    /// `Codable` form (no parent is written as null, which that form reads as none).
    @Test(arguments: [
        (
            SpanID("span_0123456789abcdef01234567") as SpanID?,
            #"{"data":{"type":"agent"},"event_id":2,"parent_span_id":"span_0123456789abcdef01234567","#
                + #""span_id":"span_89abcdef0123456701234567","started_at":786543200.5}"#
        ),
        (
            nil,
            #"{"data":{"type":"agent"},"event_id":2,"parent_span_id":null,"#
                + #""span_id":"span_89abcdef0123456701234567","started_at":786543200.5}"#
        ),
    ])
    func openSpansJournalJSON(parent: SpanID?, text: String) throws {
        let span = TraceRecorder.OpenSpan(
            eventId: 2, spanId: SpanID("span_89abcdef0123456701234567"), parentSpanId: parent,
            startedAt: Date(timeIntervalSinceReferenceDate: 786_543_200.5), data: ["type": "agent"])
        #expect(span.journalJSON.compact == text)
        let decoded = try JSONDecoder().decode(TraceRecorder.OpenSpan.self, from: Data(text.utf8))
        #expect(decoded.eventId == 2 && decoded.spanId == span.spanId && decoded.parentSpanId == parent)
        #expect(decoded.startedAt == span.startedAt && decoded.data == span.data)
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
