import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

/// Sessions (issue 24): conversation memory across runs, in the application's own
/// `conversation_messages` or in bridge's `agent_messages`, with the model's requests as the
/// proof of what each run saw.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct SessionsCLITests {
    /// The shipped sessions mapping (onto `conversation_messages`).
    static var shippedSessions: String {
        (try? String(contentsOfFile: BridgeBinary.mappings + "/sessions.yaml", encoding: .utf8)) ?? ""
    }
    /// `sessions` onto bridge's own tables.
    static let bridgeSessions = """
        version: 1
        sessions: {key: "{{task.context_data.conversation_id}}", limit: 20}
        """

    /// bridge.yaml, one tool-less agent, and `sessions` (one model call per task).
    static func mappings(_ sessions: String) throws -> String {
        let dir = try TestDatabase.noopMappings()
        try sessions.write(toFile: dir + "/sessions.yaml", atomically: true, encoding: .utf8)
        return dir
    }

    /// `bridge exec` on `url` with `mappings(sessions)`, its model calls answered by `model()`;
    /// its result, and the stand-in (stopped), whose requests show what each run saw.
    static func exec(_ url: String, sessions: String) async throws -> (TestProcess.Result, TestHTTPServer) {
        let server = try model()
        defer { server.stop() }
        let r = try await BridgeBinary.run(
            ["exec", "--database-url", url, "--mappings", try mappings(sessions)],
            environment: BridgeBinary.openAIEnvironment(server, key: "sk-test"))
        return (r, server)
    }

    /// A migrated reference database without the seed, with one workspace.
    static func database() async throws -> String { try await ExecCLITests.migratedWithOneWorkspace() }

    /// `n` pending tasks ("Question 1" … "Question n", each a second younger) whose
    /// context_data names `conversation` (nil: none); their ids in order.
    static func tasks(_ url: String, _ n: Int, conversation: String?, from first: Int = 1) async throws -> [String] {
        let context = conversation.map { "jsonb_build_object('conversation_id', '\($0)')" } ?? "'{}'::jsonb"
        let ids = try await TestDatabase.psql(
            url,
            """
            WITH t AS (
              INSERT INTO tasks (workspace_id, name, description, status, priority, context_data, created_at)
              SELECT (SELECT id FROM workspaces LIMIT 1), 'Question ' || g, 'Tell me about topic ' || g, 'pending', 'medium',
                     \(context), now() + g * interval '1 second'
              FROM generate_series(\(first), \(first + n - 1)) g RETURNING id, created_at)
            SELECT id FROM t ORDER BY created_at
            """)
        return ids.split(separator: "\n").map(String.init)
    }

    /// A conversation of the application's in the workspace, with one message its UI wrote.
    static func conversation(_ url: String) async throws -> String {
        let id = try await TestDatabase.psql(
            url,
            """
            WITH c AS (INSERT INTO conversations (workspace_id, chat_id) SELECT id, 'chat-1' FROM workspaces LIMIT 1 RETURNING id),
                 m AS (INSERT INTO conversation_messages (conversation_id, message_id, role, content, created_at)
                       SELECT id, 'ui-1', 'user', 'Hello from the chat UI', now() - interval '1 hour' FROM c)
            SELECT id FROM c
            """)
        return id
    }

    /// A Responses API stand-in: every request is answered "Answer about <the question of the
    /// last user message>", after `delay` (streamed when the request asks for a stream).
    static func model(delay: Duration = .zero) throws -> TestHTTPServer {
        try TestHTTPServer { request in
            guard request.path == "/v1/responses", let body = request.json else {
                return .json(["error": ["message": "not here"]], status: 404)
            }
            let question = question(of: body) ?? "nothing"
            let reply: JSONValue = [
                "id": .string("resp_\(UUID().uuidString.prefix(8))"), "object": "response", "status": "completed",
                "model": body["model"] ?? "gpt-4.1",
                "output": [
                    [
                        "type": "message", "id": .string("msg_\(UUID().uuidString.prefix(8))"), "role": "assistant",
                        "status": "completed",
                        "content": [
                            ["type": "output_text", "text": .string("Answer about \(question)"), "annotations": []]
                        ],
                    ]
                ],
                "usage": [
                    "input_tokens": 10, "output_tokens": 5, "total_tokens": 15,
                    "input_tokens_details": ["cached_tokens": 0], "output_tokens_details": ["reasoning_tokens": 0],
                ],
            ]
            return TestHTTPResponse.modelReply(reply, for: request).delayed(delay)
        }
    }

    /// "Question N" from the last user message of a request body.
    static func question(of body: JSONValue) -> String? {
        let input = body["input"]?.arrayValue ?? []
        guard let text = input.last(where: { $0["role"]?.stringValue == "user" })?["content"]?.stringValue,
            let r = text.range(of: #"Question \d+"#, options: .regularExpression)
        else { return nil }
        return String(text[r])
    }

    /// The request that ran `question`.
    static func request(_ server: TestHTTPServer, _ question: String) throws -> [JSONValue] {
        let matching = server.requests.compactMap(\.json).filter { Self.question(of: $0) == question }
        #expect(matching.count == 1, "\(question) was asked \(matching.count) times")
        return try #require(matching.first?["input"]?.arrayValue)
    }

    static func text(_ item: JSONValue) -> String {
        item["content"]?.stringValue
            ?? (item["content"]?.arrayValue ?? []).compactMap { $0["text"]?.stringValue }.joined()
    }

    @Test func twoTasksOfAConversationRunInOrderAndTheSecondSeesTheFirst() async throws {
        let url = try await Self.database()
        let conversation = try await Self.conversation(url)
        let ids = try await Self.tasks(url, 2, conversation: conversation)
        let (r, server) = try await Self.exec(url, sessions: Self.shippedSessions)
        #expect(r.status == 0, "\(r.stderr)")

        // The first run sees the message the application's UI wrote; the second also the
        // first run's exchange, before its own input.
        let first = try Self.request(server, "Question 1")
        #expect(first.count == 2)
        #expect(first.first == ["role": "user", "content": "Hello from the chat UI"])
        let second = try Self.request(server, "Question 2")
        #expect(second.count == 4, "\(second)")
        #expect(second.map { $0["role"]?.stringValue } == ["user", "user", "assistant", "user"])
        #expect(Self.text(second[1]).contains("Question 1"))
        #expect(Self.text(second[2]) == "Answer about Question 1")
        #expect(Self.text(second[3]).contains("Question 2"))

        // The application's rows hold both exchanges, in order, as its UI reads them.
        let summary = try await TestDatabase.psql(
            url,
            """
            SELECT string_agg(role, ',' ORDER BY created_at, message_id) FROM conversation_messages
            WHERE conversation_id = '\(conversation)'
            """)
        #expect(summary == "user,user,assistant,user,assistant")
        let answers = try await TestDatabase.psql(
            url,
            """
            SELECT string_agg(content, ',' ORDER BY created_at, message_id) FROM conversation_messages
            WHERE conversation_id = '\(conversation)' AND role = 'assistant' AND content_type = 'text' AND message_id LIKE 'trace_%'
            """)
        #expect(answers == "Answer about Question 1,Answer about Question 2")
        // The second ran after the first had finished.
        let order = try await TestDatabase.psql(
            url,
            "SELECT (SELECT completed_at FROM tasks WHERE id = '\(ids[0])') <= (SELECT min(started_at) FROM task_executions WHERE task_id = '\(ids[1])')"
        )
        #expect(order == "t")
        // Both traces name the conversation: group_id (gen_ai.conversation.id in OTLP) and metadata.
        #expect(
            try await TestDatabase.count(
                url, "group_id = '\(conversation)' AND metadata->>'session_id' = '\(conversation)'",
                table: "bridge.traces") == 2)
    }

    @Test func withoutATableTheSessionLivesInBridgesOwnTables() async throws {
        let url = try await Self.database()
        _ = try await Self.tasks(url, 2, conversation: "thread-a")
        let (r, server) = try await Self.exec(url, sessions: Self.bridgeSessions)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Self.request(server, "Question 1").count == 1)
        let second = try Self.request(server, "Question 2")
        #expect(second.count == 3)
        // Items are stored as the SDK stores them: the model's output item whole.
        #expect(second[1]["type"]?.stringValue == "message" && Self.text(second[1]) == "Answer about Question 1")
        let stored = try await TestDatabase.psql(
            url,
            """
            SELECT (SELECT count(*) FROM bridge.agent_sessions WHERE session_id = 'thread-a') || ',' ||
                   (SELECT count(*) FROM bridge.agent_messages WHERE session_id = 'thread-a')
            """)
        #expect(stored == "1,4")
        #expect(try await TestDatabase.count(url, "true", table: "conversation_messages") == 0)
    }

    @Test func twoWorkersNeverRunTwoTasksOfOneSessionAtOnce() async throws {
        let url = try await Self.database()
        _ = try await Self.tasks(url, 3, conversation: "thread-b")
        let dir = try Self.mappings(Self.bridgeSessions)
        // Slow answers: two workers that both claimed would overlap.
        let server = try Self.model(delay: .milliseconds(400))
        defer { server.stop() }
        let env = BridgeBinary.openAIEnvironment(server, key: "sk-test")
        let args = ["exec", "--database-url", url, "--mappings", dir, "--poll-interval", "0.1"]
        let a = try BackgroundBridge(args, environment: env)
        let b = try BackgroundBridge(args, environment: env)
        let ra = await a.wait(timeout: 120)
        let rb = await b.wait(timeout: 120)
        #expect(ra?.status == 0 && rb?.status == 0, "\(a.output)\n\(b.output)")
        // Each run saw every earlier run's exchange: none ran beside another.
        for n in 1...3 {
            let input = try Self.request(server, "Question \(n)")
            #expect(input.count == 2 * n - 1, "Question \(n) saw \(input.count - 1) items")
            for m in 1..<n {
                #expect(input.contains { Self.text($0) == "Answer about Question \(m)" })
            }
        }
    }

    @Test func aKeyThatRendersEmptyHasNoSessionAndABadKeyFailsTheTask() async throws {
        let url = try await Self.database()
        let plain = try await Self.tasks(url, 1, conversation: nil)
        let bad = try await Self.tasks(url, 1, conversation: "not-a-uuid", from: 2)
        let (r, server) = try await Self.exec(url, sessions: Self.shippedSessions)
        #expect(r.status == 1, "\(r.stderr)")
        // No key: an ordinary run (no history, nothing appended, the workspace as group_id).
        #expect(try Self.request(server, "Question 1").count == 1)
        #expect(try await TestDatabase.count(url, "true", table: "conversation_messages") == 0)
        let group = try await TestDatabase.psql(
            url,
            "SELECT (t.group_id = w.workspace_id::text)::text FROM bridge.traces t JOIN tasks w ON w.id::text = t.task_id WHERE w.id = '\(plain[0])'"
        )
        #expect(group == "true")
        // A key that is not a conversation id: the task fails before any model call, naming the column.
        let failed = try await TestDatabase.psql(
            url,
            "SELECT status || '|' || (result->>'error_type') || '|' || (result->>'error') FROM tasks WHERE id = '\(bad[0])'"
        )
        #expect(failed.hasPrefix("failed|ConfigurationError|"), "\(failed)")
        #expect(failed.contains("conversation_messages.conversation_id"))
        #expect(server.requests.count == 1)
    }

    @Test func mappingsCheckRefusesWhatTheConversationTablesCannotHold() async throws {
        let url = try await Self.database()
        let shipped = Self.shippedSessions
        let cases: [(String, String, String)] = [
            ("content: content", "content: body", "conversation_messages.body does not exist"),
            ("table: conversation_messages", "table: conversation_notes", "table conversation_notes does not exist"),
            (
                "roles: {user: user, assistant: assistant}", "roles: {user: user, assistant: assistant, tool: tool}",
                "conversation_messages_role_check"
            ),
            (
                "roles: {user: user, assistant: assistant}", "roles: {user: human, assistant: assistant}",
                "conversation_messages_role_check"
            ),
            (
                "values: {content_type: text}", "values: {content_type: yaml}",
                "conversation_messages_content_type_check"
            ),
            ("id: message_id, ", "", "conversation_messages.message_id is NOT NULL without a default"),
        ]
        for (from, to, expected) in cases {
            let yaml = shipped.replacingOccurrences(of: from, with: to)
            #expect(yaml != shipped)
            let dir = try Self.mappings(yaml)
            let r = try await BridgeBinary.run(["mappings", "check", "--database-url", url, "--mappings", dir])
            #expect(r.status == 2, "\(to): \(r.stdout)\(r.stderr)")
            #expect((r.stdout + r.stderr).contains(expected), "\(to): \(r.stdout)\(r.stderr)")
            #expect((r.stdout + r.stderr).contains("sessions.yaml:"), "\(to)")
        }
        let ok = try await BridgeBinary.run(
            ["mappings", "check", "--database-url", url, "--mappings", try Self.mappings(shipped)])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
    }

    /// A durable run killed after its first step resumes on another worker: the session's
    /// history is the one it started with, and its exchange is appended once, at the finish.
    @Test(.timeLimit(.minutes(4)))
    func aResumedDurableRunAppendsItsExchangeOnce() async throws {
        let (url, mappings, _) = try await DurableFixture.setUp(tasks: 1)
        try Self.bridgeSessions.write(toFile: mappings + "/sessions.yaml", atomically: true, encoding: .utf8)
        try await TestDatabase.execute(
            url,
            """
            UPDATE tasks SET context_data = '{"conversation_id": "thread-d"}';
            INSERT INTO bridge.agent_sessions (session_id) VALUES ('thread-d');
            INSERT INTO bridge.agent_messages (session_id, message_data, created_at)
              VALUES ('thread-d', '{"role": "user", "content": "Earlier question"}', now() - interval '1 hour')
            """)
        #expect(try await DurableFixture.killAfterCheckpoints(url, mappings, runs: 1))
        // Killed mid-run: nothing appended yet.
        #expect(try await TestDatabase.count(url, "session_id = 'thread-d'", table: "bridge.agent_messages") == 1)
        let r = try await BridgeBinary.run(["exec", "--offline", "--database-url", url, "--mappings", mappings])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(try await TestDatabase.count(url, "status = 'completed'") == 1)
        // The journaled spec kept the history it started with; the exchange is there once.
        let journaled = try await TestDatabase.psql(
            url,
            """
            SELECT string_agg(coalesce(message_data::jsonb->>'type', 'message') || ':' || coalesce(message_data::jsonb->>'role', ''), ',' ORDER BY created_at, id)
            FROM bridge.agent_messages WHERE session_id = 'thread-d'
            """)
        #expect(
            journaled
                == "message:user,message:user,function_call:,function_call:,function_call_output:,function_call_output:,message:assistant",
            "\(journaled)")
    }
}
