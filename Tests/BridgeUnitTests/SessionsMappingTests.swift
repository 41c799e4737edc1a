import BridgeCore
import BridgePostgres
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeMapping

/// The `sessions` section: what it accepts and refuses, the session key of a task row, and how
/// a run's items become rows of the application's table and back.
@Suite struct SessionsMappingTests {
    static func load(_ sessions: String) -> (MappingConfig?, [MappingIssue]) {
        let docs = [
            ("m.yaml", MappingFixtures.base + "agents: [{name: A, match: A, instructions: x, model: m}]\n" + sessions)
        ]
        do {
            return (try MappingLoader.load(documents: docs), [])
        } catch {
            return (nil, error.issues)
        }
    }

    @Test func shippedSessionsMapOntoTheConversationTables() throws {
        let config = try MappingLoader.load(directory: MappingFixtures.shippedDirectory)
        let s = try #require(config.sessions)
        #expect(s.table == "conversation_messages" && s.sessionColumn == "conversation_id" && s.limit == 50)
        #expect(s.item["role"] == "role" && s.item["id"] == "message_id" && s.values == ["content_type": "text"])
        #expect(s.roles["tool"] == nil)
        #expect(s.sessionKey(task: ["context_data": ["conversation_id": "c-1"]]) == "c-1")
        #expect(ColumnTypes.tables(of: config).contains("conversation_messages"))
    }

    @Test func aKeyThatRendersEmptyIsNoSession() throws {
        let (config, issues) = Self.load("sessions: {key: \"{{task.context_data.conversation_id}}\"}\n")
        #expect(issues.isEmpty, "\(issues)")
        let s = try #require(config?.sessions)
        #expect(s.table == nil)
        #expect(s.sessionKey(task: ["context_data": [:]]) == nil)
        #expect(s.sessionKey(task: ["context_data": ["conversation_id": "  "]]) == nil)
        #expect(s.sessionKey(task: [:]) == nil)
    }

    @Test func refusesWhatCannotWork() {
        let cases: [(String, String)] = [
            ("sessions: {key: \"{{agent.id}}\"}\n", "may only reference the task row"),
            ("sessions: {key: \"{{task.id}}\", limit: 0}\n", "must be at least 1"),
            ("sessions: {key: \"{{task.id}}\", session_column: c}\n", "without 'table'"),
            (
                "sessions: {key: \"{{task.id}}\", table: m, session_column: s, item: {role: r, content: c, created_at: t, colour: x}}\n",
                "unknown key 'colour'"
            ),
            (
                "sessions: {key: \"{{task.id}}\", table: m, session_column: s, item: {role: r, created_at: t}}\n",
                "'content'"
            ),
            (
                "sessions: {key: \"{{task.id}}\", table: m, session_column: s, item: {role: r, content: c}}\n",
                "created_at or id"
            ),
            ("sessions: {key: \"{{task.id}}\", table: m, item: {role: r, content: c, id: i}}\n", "session_column"),
            (
                "sessions: {key: \"{{task.id}}\", table: m, session_column: s, item: {role: r, content: c, id: i}, roles: {robot: r}}\n",
                "unknown role 'robot'"
            ),
            (
                "sessions: {key: \"{{task.id}}\", table: m, session_column: s, item: {role: r, content: c, id: i}, roles: {tool: assistant}}\n",
                "same value"
            ),
            (
                "sessions: {key: \"{{task.id}}\", table: \"m; drop\", session_column: s, item: {role: r, content: c, id: i}}\n",
                "not a valid identifier"
            ),
        ]
        for (yaml, expected) in cases {
            let (config, issues) = Self.load(yaml)
            #expect(config == nil, "\(yaml) loaded")
            #expect(issues.contains { $0.message.contains(expected) }, "\(yaml): \(issues)")
        }
    }

    @Test func anUnknownItemKeyIsReportedAtTheKey() {
        let (config, issues) = Self.load(
            "sessions:\n  key: \"{{task.id}}\"\n  table: m\n  session_column: s\n  item:\n    role: r\n"
                + "    content: c\n    id: i\n    creatd_at: t\n")
        #expect(config == nil)
        let issue = issues.first { $0.message.hasPrefix("unknown key 'creatd_at'") }
        #expect(issue?.message == "unknown key 'creatd_at' (did you mean 'created_at'?)", "\(issues)")
        #expect(issue?.path == "sessions.item.creatd_at", "\(issues)")
        // At the key's own line (the old report pointed at the mapping's first key, `role`).
        let text = MappingFixtures.base + "agents: [{name: A, match: A, instructions: x, model: m}]\n"
        let line = text.filter { $0 == "\n" }.count + 9
        #expect(issue?.file == "m.yaml" && issue?.line == line && issue?.column == 5, "\(issues)")
    }

    @Test func theKeyExpressionRendersLikeTheTemplate() throws {
        let s = SessionsMapping(key: try Template(parsing: "conv-{{task.context_data.thread.id}}/{{task.id}}"))
        let sql = s.keyExpression(alias: "c").sql
        #expect(sql.contains("to_jsonb(c.\"context_data\") #>>"))
        #expect(sql.contains("coalesce(c.\"id\"::text, '')"))
        #expect(s.keyExpression(alias: "c").binds.contains(.text("conv-")))
    }

    @Test func aRunsItemsBecomeRowsAndReadBack() throws {
        let items: [ConversationItem] = [
            ["role": "user", "content": "Plan the launch"],
            ["type": "function_call", "call_id": "c1", "name": "web_search", "arguments": "{}"],
            ["type": "function_call_output", "call_id": "c1", "output": "3 results"],
            ["type": "reasoning", "summary": []],
            [
                "type": "message", "role": "assistant",
                "content": [["type": "output_text", "text": "Here is the plan."]],
            ],
        ]
        let rows = SessionItems.rows(for: items, roles: SessionsMapping.defaultRoles)
        #expect(rows.map(\.role) == ["user", "assistant"])
        #expect(rows.map(\.content) == ["Plan the launch", "Here is the plan."])
        #expect(rows[0].toolsUsed == nil)
        #expect(
            rows[1].toolsUsed == [["call_id": "c1", "name": "web_search", "arguments": "{}", "output": "3 results"]])
        // With a tool role, tool calls and results are rows of their own, their JSON the content.
        var roles = SessionsMapping.defaultRoles
        roles["tool"] = "tool"
        let withTools = SessionItems.rows(for: items, roles: roles)
        #expect(withTools.map(\.role) == ["user", "tool", "tool", "assistant"])
        let back = withTools.compactMap {
            SessionItems.item(roleValue: roles[$0.role], content: $0.content, data: nil, roles: roles)
        }
        #expect(back[0] == ["role": "user", "content": "Plan the launch"])
        #expect(back[1] == items[1] && back[2] == items[2])
        #expect(back[3] == ["role": "assistant", "content": "Here is the plan."])
        // The application's own rows of a role bridge does not know are not input.
        #expect(SessionItems.item(roleValue: "moderator", content: "x", data: nil, roles: roles) == nil)
        // A data column holds the item exactly.
        #expect(
            SessionItems.item(roleValue: "user", content: "x", data: items[4].json.compact, roles: roles) == items[4])
    }

    @Test func aWindowCutBetweenACallAndItsOutputDropsTheOrphans() {
        let items: [ConversationItem] = [
            ["type": "function_call_output", "call_id": "old", "output": "x"],
            ["role": "assistant", "content": "a"],
            ["type": "function_call", "call_id": "new", "name": "t", "arguments": "{}"],
        ]
        #expect(SessionItems.balanced(items) == [["role": "assistant", "content": "a"]])
    }
}
