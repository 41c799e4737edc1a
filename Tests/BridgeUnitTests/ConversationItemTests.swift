// Conversation items: the typed kinds, and their JSON form, which must read what older bridges
// stored (journals, paused runs, session rows) and write it back unchanged.
import BridgeCore
import BridgeMapping
import BridgeRunner
import BridgeTraceModel
import Foundation
import Testing

extension ConversationItem {
    /// A field of the item's JSON form (assertions read items as the APIs shape them).
    subscript(_ key: String) -> JSONValue? { json[key] }
}

@Suite struct ConversationItemTests {
    @Test func theKindsBridgeActsOnAreTyped() throws {
        let call = ConversationItem(
            json: try JSONValue.parse(
                #"{"type":"function_call","id":"fc_1","call_id":"c1","name":"lookup","arguments":"{\"q\":1}","status":"completed"}"#
            ))
        let c = try #require(call.functionCall)
        #expect(c.callId == "c1" && c.name == "lookup" && c.arguments == #"{"q":1}"#)
        #expect(c.extra == ["id": "fc_1", "status": "completed"])

        let output = ConversationItem(json: ["type": "function_call_output", "call_id": "c1", "output": "42"])
        #expect(output.functionCallOutput?.output == "42")

        let easy = ConversationItem(json: ["role": "user", "content": "hi"])
        #expect(easy == .input("hi"))
        #expect(easy.type == nil && easy.message?.typed == false)

        let answer = ConversationItem(json: [
            "type": "message", "role": "assistant",
            "content": [
                ["type": "output_text", "text": "a"], ["type": "refusal", "refusal": "r"],
                ["type": "output_text", "text": "b"],
            ],
        ])
        #expect(answer.message?.outputText == "ab")

        let reasoning = ConversationItem(json: ["type": "reasoning", "id": "rs_1", "summary": []])
        guard case .reasoning(let r) = reasoning else {
            Issue.record("not reasoning: \(reasoning)")
            return
        }
        #expect(r.summary.isEmpty && r.extra == ["id": "rs_1"])

        let guardrail = ConversationItem(json: [
            "type": "guardrail_result", "name": "g", "kind": "tool_input", "call_id": "c1", "tool_name": "t",
            "triggered": true, "behavior": "reject_content",
        ])
        guard case .guardrailResult(let g) = guardrail else {
            Issue.record("not a guardrail result: \(guardrail)")
            return
        }
        #expect(
            g.callId == "c1" && g.toolName == "t" && g.triggered && g.behavior == .rejectContent && g.kind == .toolInput
        )
    }

    /// Items this bridge does not model, and items of a known type whose shape does not fit it,
    /// are kept as they came: reading and writing them changes nothing.
    @Test(arguments: [
        #"{"type":"web_search_call","id":"ws_1","status":"completed","action":{"type":"search","query":"x"}}"#,
        #"{"type":"image_generation_call","id":"ig_1","result":"aGk=","future":[1,2.50,{"deep":null}]}"#,
        #"{"type":"function_call","call_id":"c1","name":"t","arguments":{"q":1}}"#,
        #"{"type":"function_call","name":"t","arguments":"{}"}"#,
        #"{"type":"function_call_output","call_id":7,"output":"x"}"#,
        #"{"type":"message","role":"assistant"}"#,
        #"{"type":"reasoning","id":"rs_1","summary":"not a list"}"#,
        #"{"type":"guardrail_result","name":"g","kind":"input","triggered":"yes"}"#,
        #"{"type":"guardrail_result","name":"g","kind":"sideways","triggered":true}"#,
        #"{"type":"guardrail_result","name":"g","kind":"tool_input","triggered":true,"behavior":"shrug"}"#,
        #"{"type":"approval_result","call_id":"c2","name":"refund","decision":"approved","request_id":42}"#,
        #"{"role":"user"}"#,
        #"{"no_type":true,"n":12345678901234567890}"#,
        #"["not","an","object"]"#,
        #""just text""#,
        #"null"#,
    ])
    func unknownItemsRoundTripUnchanged(_ text: String) throws {
        let json = try JSONValue.parse(text)
        let item = ConversationItem(json: json)
        #expect(item == .other(json))
        #expect(item.json == json)
        #expect(item.json.compact == json.compact)
        // Through Codable too (paused runs and journal records are encoded with it).
        let coded = try JSONDecoder().decode(ConversationItem.self, from: JSONEncoder().encode(item))
        #expect(coded.json == json)
    }

    /// Every kind, typed or not, comes back as the same JSON.
    @Test(arguments: [
        #"{"role":"user","content":"Plan the launch."}"#,
        #"{"role":"developer","content":[{"type":"input_text","text":"be brief"}],"id":"m0"}"#,
        #"{"type":"message","id":"msg_1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"ok","annotations":[]}]}"#,
        #"{"type":"function_call","id":"__fake_id__","call_id":"call_1","name":"lookup","arguments":"","status":"completed","provider_data":{"x":1}}"#,
        #"{"type":"function_call_output","call_id":"call_1","output":[{"type":"input_text","text":"r"}]}"#,
        #"{"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"s"}],"encrypted_content":"e"}"#,
        #"{"type":"guardrail_result","name":"g","kind":"output","triggered":false}"#,
        #"{"type":"approval_result","call_id":"c2","name":"refund","decision":"approved","request_id":"42"}"#,
        #"{"type":"guardrail_result","name":"g","kind":"tool_output","call_id":"c","tool_name":"t","triggered":true,"behavior":"allow","extra":1}"#,
    ])
    func typedItemsRoundTripUnchanged(_ text: String) throws {
        let json = try JSONValue.parse(text)
        let item = ConversationItem(json: json)
        if case .other = item { Issue.record("not typed: \(text)") }
        #expect(item.json == json)
        #expect(item.json.compact == json.compact)
    }

    /// A checkpoint journaled by the bridge before typed items (its `data` column, as main wrote
    /// it) decodes, and is written back with the same items.
    @Test func aCheckpointJournaledInTheOldFormStillLoads() throws {
        let stored = #"""
            {"history":[{"content":"Plan the launch.","role":"user"},{"arguments":"{\"topic\":\"example\"}","call_id":"call_ab12","id":"fc_ab12","name":"lookup","status":"completed","type":"function_call"},{"id":"ws_9","status":"completed","type":"web_search_call"}],
             "transcript":[{"arguments":"{\"topic\":\"example\"}","call_id":"call_ab12","id":"fc_ab12","name":"lookup","status":"completed","type":"function_call"},{"kind":"input","name":"polite","triggered":false,"type":"guardrail_result"}],
             "usage":{"requests":1,"inputTokens":10,"outputTokens":5,"cachedTokens":0,"reasoningTokens":0},
             "turn":1,"tool_calls":0,"agent":"Planner","task_event_id":1,"agent_event_id":2,"turn_event_id":3,"next_event_id":4,
             "turn_usage":{"requests":1,"inputTokens":10,"outputTokens":5,"cachedTokens":0,"reasoningTokens":0},
             "response":[{"arguments":"{\"topic\":\"example\"}","call_id":"call_ab12","id":"fc_ab12","name":"lookup","status":"completed","type":"function_call"}],
             "open_spans":[],"at":786412800.5}
            """#
        let checkpoint = try JSONDecoder().decode(RunCheckpoint.self, from: Data(stored.utf8))
        #expect(checkpoint.position.history.first == .input("Plan the launch."))
        let call = try #require(checkpoint.response.first?.functionCall)
        #expect(call.callId == "call_ab12" && call.name == "lookup" && call.arguments == #"{"topic":"example"}"#)
        #expect(checkpoint.position.history.last?.type == "web_search_call")
        let old = try JSONValue.parse(stored)
        let again = checkpoint.journalJSON
        for key in ["history", "transcript", "response"] { #expect(again[key] == old[key], "\(key)") }
    }

    /// A paused run stored by the bridge before typed items (`bridge.run_states`) decodes with
    /// its items, and encodes them as they were.
    @Test func aPausedRunStoredInTheOldFormStillLoads() throws {
        let stored = #"""
            {"history":[{"content":"Refund order 7.","role":"user"},{"arguments":"{\"order\":7}","call_id":"c1","name":"refund","type":"function_call"}],
             "transcript":[{"arguments":"{\"order\":7}","call_id":"c1","name":"refund","type":"function_call"}],
             "usage":{"requests":1,"inputTokens":3,"outputTokens":2,"cachedTokens":0,"reasoningTokens":0},
             "turn":1,"tool_calls":0,"agent":"Support","task_event_id":1,"agent_event_id":2,"next_event_id":5,
             "pending":[{"call_id":"c1","name":"refund","arguments":"{\"order\":7}","agent":"Support"}],
             "deferred_handoffs":[],"paused_at":786412800}
            """#
        let paused = try JSONDecoder().decode(PausedRun.self, from: Data(stored.utf8))
        #expect(paused.position.history.last?.functionCall?.name == "refund")
        let encoded = try JSONValue.parse(JSONEncoder().encode(paused))
        let old = try JSONValue.parse(stored)
        #expect(encoded["history"] == old["history"] && encoded["transcript"] == old["transcript"])
    }

    /// A session row written before typed items (bridge's own `message_data`, or an
    /// application row's `data` column) reads back as the same item.
    @Test func aSessionRowStoredInTheOldFormStillLoads() throws {
        let data = #"{"type":"function_call_output","call_id":"c1","output":"3 results","id":"x"}"#
        let item = try #require(
            SessionItems.item(roleValue: nil, content: nil, data: data, roles: SessionsMapping.defaultRoles))
        #expect(item.functionCallOutput?.callId == "c1")
        #expect(item.json == (try JSONValue.parse(data)))
    }
}
