import BridgeCore
import BridgePostgres
import BridgeTraceModel
import BridgeVerify
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
        // A `@CodedFlat` part's keys share one object with its holder's: one key for two
        // fields would write one over the other.
        #expect(Set(keys).count == keys.count)
    }

    /// A paused run (`bridge.run_states.state`) as this release and the one before it write it,
    /// with sorted keys: `JSONEncoder`'s own key order changes from process to process.
    static let pausedRun = #"""
        {"agent":"Support","agent_event_id":2,"deferred_handoffs":[{"agent":"Billing","arguments":"{}","call_id":"h1","name":"transfer_to_billing"}],\#
        "history":[{"content":"Refund order 7.","role":"user"},{"arguments":"{\"order\":7}","call_id":"c1","name":"refund","type":"function_call"}],\#
        "next_event_id":5,"paused_at":786412800.5,"pending":[{"agent":"Support","arguments":"{\"order\":7}","call_id":"c1","name":"refund"}],\#
        "task_event_id":1,"tool_calls":3,"transcript":[{"arguments":"{\"order\":7}","call_id":"c1","name":"refund","type":"function_call"}],\#
        "turn":4,"usage":{"cachedTokens":6,"inputTokens":30,"outputTokens":7,"reasoningTokens":8,"requests":9}}
        """#

    /// A checkpoint (`bridge.run_journals.checkpoint`) as `journalJSON` writes it, in this release
    /// and the one before it (`compact` sorts keys).
    static let checkpoint = #"""
        {"agent":"Planner","agent_event_id":3,"at":786412800.5,\#
        "history":[{"content":"Plan the launch.","role":"user"},{"arguments":"{\"topic\":\"example\"}","call_id":"call_ab12","name":"lookup","type":"function_call"}],\#
        "next_event_id":9,"open_spans":[{"event_id":2,"parent_span_id":null,"span_id":"span_x","started_at":786412799.5}],\#
        "response":[{"arguments":"{\"topic\":\"example\"}","call_id":"call_ab12","name":"lookup","type":"function_call"}],\#
        "task_event_id":2,"tool_calls":4,"transcript":[{"kind":"input","name":"polite","triggered":false,"type":"guardrail_result"}],\#
        "turn":5,"turn_event_id":7,"turn_usage":{"cachedTokens":8,"inputTokens":100,"outputTokens":12,"reasoningTokens":10,"requests":1},\#
        "usage":{"cachedTokens":11,"inputTokens":300,"outputTokens":40,"reasoningTokens":13,"requests":6}}
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
            position.nextEventId == 5 && position.turn == 4 && position.toolCalls == 3 && position.usage.requests == 9)
        #expect(
            position.usage.cachedTokens == 6 && position.usage.inputTokens == 30 && position.usage.outputTokens == 7
                && position.usage.reasoningTokens == 8)
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
        #expect(position.agent == "Planner" && position.agentEventId == 3 && position.taskEventId == 2)
        #expect(position.nextEventId == 9 && position.turn == 5 && position.toolCalls == 4)
        #expect(position.usage.requests == 6 && checkpoint.turnUsage.requests == 1 && checkpoint.turnEventId == 7)
        #expect(
            position.usage.cachedTokens == 11 && position.usage.inputTokens == 300 && position.usage.outputTokens == 40
                && position.usage.reasoningTokens == 13)
        #expect(
            checkpoint.turnUsage.cachedTokens == 8 && checkpoint.turnUsage.inputTokens == 100
                && checkpoint.turnUsage.outputTokens == 12 && checkpoint.turnUsage.reasoningTokens == 10)
        #expect(position.history.count == 2 && position.transcript.count == 1 && checkpoint.response.count == 1)
        #expect(checkpoint.at == Date(timeIntervalSinceReferenceDate: 786_412_800.5))
        #expect(checkpoint.journalJSON.compact == Self.checkpoint)
        #expect(try Self.sortedJSON(checkpoint) == Self.checkpoint)
        #expect(try JSONValue.parse(JSONEncoder().encode(checkpoint)) == JSONValue.parse(Self.checkpoint))
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

    /// An enum's raw values in case order; a value `init?(rawValue:)` does not read back as its
    /// case shows as such.
    static func rawValues<E: RawRepresentable & Equatable>(_ cases: [E]) -> [String] where E.RawValue == String {
        cases.map { E(rawValue: $0.rawValue) == $0 ? $0.rawValue : "\($0.rawValue)(does not read back)" }
    }

    static func rawValues<E: RawRepresentable & CaseIterable & Equatable>(_: E.Type) -> [String]
    where E.RawValue == String {
        rawValues(Array(E.allCases))
    }

    /// The raw values `@SnakeCaseRawValues` spells from case names: the mappings' YAML keys, the
    /// ledger's table names, `verify`'s check names, span types, guardrail results and the
    /// model API (a renamed case would silently rename a key, a table or an output value).
    static let snakeCaseRawValues: [([String], String)] = [
        (
            rawValues(Keys.Agent.self),
            "name match instructions model model_settings model_api tools handoffs handoff_description max_turns tool_use_behavior output_type input_guardrails output_guardrails mcp_servers"
        ),
        (rawValues(Keys.ToolUseBehavior.self), "stop_at_tool_names"),
        (
            rawValues(Keys.ModelSetting.self),
            "temperature top_p frequency_penalty presence_penalty tool_choice parallel_tool_calls truncation max_tokens reasoning verbosity metadata store include_usage response_include top_logprobs extra_query extra_body extra_headers extra_args max_output_tokens previous_response_id service_tier user prompt_cache_key safety_identifier background max_tool_calls prompt text include conversation seed stop n logit_bias logprobs max_completion_tokens modalities prediction reasoning_effort web_search_options audio"
        ),
        (
            rawValues(Keys.Tool.self),
            "name description parameters strict sql http command hosted needs_approval input_guardrails output_guardrails"
        ),
        (rawValues(Keys.ToolSQL.self), "query writes timeout_ms max_rows max_bytes"),
        (rawValues(Keys.ToolHTTP.self), "url headers timeout_ms max_bytes"),
        (rawValues(Keys.ToolCommand.self), "argv timeout_ms max_bytes env"),
        (rawValues(Keys.HostedTool.self), "type vector_store_ids"),
        (rawValues(Keys.ToolGuardrail.self), "name sql agent on_trip message"),
        (rawValues(Keys.Guardrail.self), "name sql agent run_in_parallel"),
        (rawValues(Keys.GuardrailSQL.self), "query timeout_ms"),
        (
            rawValues(Keys.Top.self),
            "version source results tracing handoffs_table backfill agents tools guardrails approvals mcp_servers pricing limits budgets sessions"
        ),
        (rawValues(Keys.Source.self), "table key status group_column priority created_at_column agent_selection input"),
        (
            rawValues(Keys.AgentSelection.self),
            "table key task_column match_column fallback_column group_column default_agent"
        ),
        (rawValues(Keys.Results.self), "result_column completed_at_column trace_id_column executions"),
        (rawValues(Keys.Executions.self), "table key task_column columns statuses"),
        (
            rawValues(Keys.ExecutionColumn.self),
            "status trace_id started_at completed_at duration_seconds token_usage result error_message error_type agent_id workspace_id retry_count"
        ),
        (rawValues(Keys.ExecutionStatus.self), "started completed failed_retriable failed_terminal"),
        (rawValues(Keys.Tracing.self), "workflow_name include_sensitive_data"),
        (rawValues(Keys.HandoffsTable.self), "table source_column target_column description_column"),
        (
            rawValues(Keys.BackfillLogs.self),
            "table key task_column type_column content_column created_at_column tool_call_types tool_call"
        ),
        (rawValues(Keys.BackfillToolCall.self), "name arguments output started_at duration_ms error"),
        (
            rawValues(Keys.Approvals.self),
            "table key status expires_at_column expires_after response_column responded_at_column group_column columns values"
        ),
        (rawValues(Keys.ApprovalColumn.self), "title description proposed_actions context"),
        (
            rawValues(Keys.MCPServer.self),
            "name stdio streamable_http tool_filter cache_tools_list timeout_ms use_structured_content"
        ),
        (rawValues(Keys.Price.self), "input cached_input output"),
        (rawValues(Keys.ModelLimit.self), "requests_per_minute tokens_per_minute concurrency"),
        (rawValues(Keys.Budgets.self), "table key limit spent_column on_exceeded"),
        (rawValues(Keys.Sessions.self), "key table session_column item values roles limit"),
        (rawValues(Keys.SessionItem.self), "role content created_at id data tools_used"),
        (rawValues(Keys.ApprovalStatus.self), "column pending approved rejected expired"),
        (rawValues(Keys.Backfill.self), "logs"),
        (rawValues(Keys.Fairness.self), "group"),
        (rawValues(Keys.Handoff.self), "agent description"),
        (rawValues(Keys.Limits.self), "models tools fairness"),
        (rawValues(Keys.MCPHTTP.self), "url headers"),
        (rawValues(Keys.MCPStdio.self), "command args env cwd"),
        (rawValues(Keys.MCPToolFilter.self), "allowed blocked"),
        (rawValues(Keys.NeedsApproval.self), "sql"),
        (rawValues(Keys.OutputType.self), "name schema strict columns"),
        (rawValues(Keys.Priority.self), "column order"),
        (rawValues(Keys.SessionRole.self), "user assistant system tool"),
        (rawValues(Keys.Status.self), "column pending running completed failed"),
        (rawValues(Keys.ToolLimit.self), "concurrency"),
        (
            rawValues(LedgerTable.self),
            "traces spans exporters prunes run_transcripts span_deliveries run_states approval_waits run_journals journal_calls agent_sessions agent_messages"
        ),
        (
            rawValues([ConversationItem.GuardrailResult.Kind.input, .output, .toolInput, .toolOutput]),
            "input output tool_input tool_output"
        ),
        (
            rawValues([ConversationItem.GuardrailResult.Behavior.allow, .error, .rejectContent, .raiseException]),
            "allow error reject_content raise_exception"
        ),
        (rawValues(ModelAPI.self), "responses chat_completions"),
        (
            rawValues(SpanKind.self),
            "agent function generation response handoff guardrail custom mcp_tools transcription speech speech_group"
        ),
        (
            rawValues(BridgeVerify.Check.self),
            "tools_traced handoffs_traced tool_io_captured trace_ids_correlate export_delivered tool_timing guardrails_approvals_traced runs_whole spend_recorded"
        ),
    ]

    @Test(arguments: snakeCaseRawValues)
    func rawValuesStay(_ values: [String], _ expected: String) {
        #expect(values == expected.split(separator: " ").map(String.init))
    }

    /// `ModelAPI` is coded in run specs (`model_api`) by its raw value.
    @Test func modelAPICodesItsRawValue() throws {
        let json = try JSONEncoder().encode([ModelAPI.chatCompletions, .responses])
        #expect(String(decoding: json, as: UTF8.self) == #"["chat_completions","responses"]"#)
        #expect(try JSONDecoder().decode([ModelAPI].self, from: json) == [.chatCompletions, .responses])
    }
}
