import BridgeCore
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import BridgeTracing
import BridgeVerify
import BridgeWorker
import Foundation
import Testing

@testable import BridgeMapping

/// Production-sized tables: every statement the worker runs per task or per poll is EXPLAINed
/// on 200,000 tasks, 80,000 execution rows and a ledger of 300,000 spans, and must not plan a
/// sequential scan of any of them. A cast on the column side (`"id"::text = $1`) hides the
/// index and fails this test (the last check proves the detector sees exactly that).
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct HotPathPlanTests {
    static var mappings: String { TestDatabase.projectRoot.appendingPathComponent("mappings").path }
    static let largeTables: Set<String> = [
        "tasks", "task_executions", "spans", "traces", "span_deliveries",
        "trace_deliveries", "run_transcripts", "execution_logs", "conversation_messages", "agent_messages",
    ]

    /// The relations that `query`'s plan reads with a Seq Scan, among the large tables.
    static func seqScans(_ query: PostgresQuery, on c: PostgresConnection) async throws -> [String] {
        var explain = query
        explain.sql = "EXPLAIN (FORMAT JSON) " + query.sql
        let text = try #require(try await c.query(explain).first?.values.first ?? nil)
        var found: [String] = []
        func walk(_ node: JSONValue) {
            if node["Node Type"]?.stringValue == "Seq Scan", let r = node["Relation Name"]?.stringValue,
                largeTables.contains(r)
            {
                found.append(r)
            }
            for child in node["Plans"]?.arrayValue ?? [] { walk(child) }
        }
        for plan in try JSONValue.parse(text).arrayValue ?? [] { walk(plan["Plan"] ?? .null) }
        return found
    }

    /// 200,000 seeded tasks (one INSERT … SELECT generate_series per table, in the seed), the
    /// shipped migrations, and statistics.
    static func largeDatabase() async throws -> (url: String, c: PostgresConnection, config: MappingConfig) {
        let url = try await migratedReferenceDatabase(seed: true, workspaces: 100, tasksPerWorkspace: 2_000)
        let c = try await TestDatabase.connect(url)
        try await fillLedger(c)
        try await fillSessions(c)
        try await c.simpleQuery("ANALYZE")
        var config = try MappingLoader.load(directory: mappings)
        config = config.with(columnTypes: try await ColumnTypes.load(for: config, connection: c))
        return (url, c, config)
    }

    /// A ledger of 300,000 spans in 30,000 traces, one every two minutes (the oldest 5,000
    /// name their task and workspace only in metadata), with their transcripts: 50,000 spans
    /// stored before migration 0047 (txid NULL), the rest written 1,000 per transaction, all delivered to exporter
    /// `openai`, whose position is at the end.
    static func fillLedger(_ c: PostgresConnection) async throws {
        try await c.simpleQuery(
            """
            INSERT INTO bridge.traces (trace_id, workflow_name, group_id, task_id, metadata, started_at, ended_at, txid)
              SELECT 'trace_' || lpad(g::text, 32, '0'), 'bridge tasks', CASE WHEN g > 5000 THEN 'ws-' || (g % 100) END,
                     CASE WHEN g > 5000 THEN 'task-' || g END,
                     jsonb_build_object('task_id', 'task-' || g, 'workspace_id', 'ws-' || (g % 100)),
                     now() - g * interval '2 min', now() - g * interval '2 min' + interval '1 s',
                     CASE WHEN g <= 5000 THEN NULL ELSE pg_current_xact_id() END
              FROM generate_series(1, 30000) g;
            INSERT INTO bridge.spans (span_id, trace_id, started_at, ended_at, span_data, txid)
              SELECT 'span_' || lpad(g::text, 24, '0'), 'trace_' || lpad((g / 10 + 1)::text, 32, '0'),
                     now() - g * interval '1 s', now() - g * interval '1 s', '{"type": "custom", "name": "x", "data": {}}', NULL
              FROM generate_series(1, 50000) g
            """)
        try await c.simpleQuery(
            """
            DO $$ BEGIN
              FOR i IN 0..249 LOOP
                INSERT INTO bridge.spans (span_id, trace_id, started_at, ended_at, span_data)
                  SELECT 'span_' || lpad(g::text, 24, '0'), 'trace_' || lpad((g / 10 + 1)::text, 32, '0'),
                         now() - g * interval '1 s', now() - g * interval '1 s', '{"type": "custom", "name": "x", "data": {}}'
                  FROM generate_series(50001 + i * 1000, 50000 + (i + 1) * 1000 - 1) g;
                COMMIT;
              END LOOP;
            END $$
            """)
        try await c.simpleQuery(
            """
            INSERT INTO bridge.exporters (name, target) VALUES ('openai', 'x');
            INSERT INTO bridge.trace_deliveries (exporter, trace_id, status) SELECT 'openai', trace_id, 'delivered' FROM bridge.traces;
            INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status) SELECT 'openai', span_id, trace_id, 'delivered' FROM bridge.spans;
            INSERT INTO bridge.run_transcripts (trace_id, task_id, attempt, items)
              SELECT trace_id, 'x', 1, '[{"type": "function_call", "name": "lookup", "call_id": "c1"}]' FROM bridge.traces;
            INSERT INTO bridge.export_positions (exporter, trace_txid, span_txid)
              SELECT 'openai', max(txid), (SELECT max(txid) FROM bridge.spans) FROM bridge.traces
            """)
    }

    /// Sessions (issue 24): one conversation per workspace with 500 messages, and one long
    /// conversation of 10,000 messages (`conversation_messages`), and the same in bridge's own
    /// `agent_messages` (100 sessions of 500 items, and session `long` of 10,000).
    static func fillSessions(_ c: PostgresConnection) async throws {
        try await c.simpleQuery(
            """
            INSERT INTO conversations (workspace_id, chat_id) SELECT id, 'chat-' || id FROM workspaces;
            INSERT INTO conversations (id, workspace_id, chat_id)
              SELECT '00000000-0000-0000-0000-000000000001', id, 'long' FROM workspaces LIMIT 1;
            INSERT INTO conversation_messages (conversation_id, message_id, role, content, created_at)
              SELECT c.id, 'm-' || lpad(g::text, 5, '0'), CASE WHEN g % 2 = 0 THEN 'assistant' ELSE 'user' END,
                     'message ' || g, now() - (20000 - g) * interval '1 s'
              FROM conversations c CROSS JOIN generate_series(1, 500) g WHERE c.chat_id <> 'long';
            INSERT INTO conversation_messages (conversation_id, message_id, role, content, created_at)
              SELECT '00000000-0000-0000-0000-000000000001', 'm-' || lpad(g::text, 5, '0'),
                     CASE WHEN g % 2 = 0 THEN 'assistant' ELSE 'user' END, 'message ' || g,
                     now() - (20000 - g) * interval '1 s'
              FROM generate_series(1, 10000) g;
            INSERT INTO bridge.agent_sessions (session_id) SELECT 's-' || g FROM generate_series(1, 100) g;
            INSERT INTO bridge.agent_sessions (session_id) VALUES ('long');
            INSERT INTO bridge.agent_messages (session_id, message_data, created_at)
              SELECT 's-' || s, '{"role": "user", "content": "message ' || g || '"}', now() - (20000 - g) * interval '1 s'
              FROM generate_series(1, 100) s CROSS JOIN generate_series(1, 500) g;
            INSERT INTO bridge.agent_messages (session_id, message_data, created_at)
              SELECT 'long', '{"role": "user", "content": "message ' || g || '"}', now() - (20000 - g) * interval '1 s'
              FROM generate_series(1, 10000) g
            """)
    }

    /// The statements of an export poll: from the start (the legacy rows first) and from the
    /// end of the ledger (an idle poll).
    static func exportStatements(_ c: PostgresConnection) async throws -> [(name: String, query: PostgresQuery)] {
        let end = try await ExportPositions.load(exporter: "openai", connection: c)
        #expect(end.span.txid != nil)
        return [
            (
                "export poll from the start",
                ExportPump.readStatement(exporter: "openai", from: ExportPositions(), limit: 1_000)
            ),
            ("idle export poll", ExportPump.readStatement(exporter: "openai", from: end, limit: 1_000)),
            ("export position", "SELECT * FROM bridge.export_positions WHERE exporter = \("openai")"),
        ]
    }

    @Test func noHotPathStatementScansALargeTable() async throws {
        let (_, c, config) = try await Self.largeDatabase()
        #expect(config.columnTypes.type("tasks", "id") == "uuid")
        #expect(config.columnTypes.type("task_executions", "task_id") == "uuid")
        let key = TaskKey(
            try #require(
                try await c.query("SELECT id::text AS k FROM tasks WHERE status = 'pending' LIMIT 1").first?["k"]))
        let execution = try #require(try await c.query("SELECT id::text AS k FROM task_executions LIMIT 1").first?["k"])
        var statements = TaskStore(config: config).hotPathStatements(key: key, executionKey: execution)
        statements += DatabaseToSDKBridge(config: config).hotPathStatements(taskKey: key)
        // Durable runs: each step's fenced write, and the lease keeper's journal sweep.
        let journal = RunJournalStore(config: config).hotPathStatements(taskKey: key)
        #expect(journal.map(\.name) == ["journal checkpoint", "journal call", "journal sweep", "journal start"])
        statements += journal
        // The backfill's batch: its SELECTs and its bulk write (the trace id updates by key).
        let backfill = try Backfiller(config: config).hotPathStatements(taskKey: key, executionKey: execution)

        #expect(backfill.map(\.name) == ["backfill batch", "backfill tool calls", "backfill write"])
        statements += backfill
        statements += try await Self.exportStatements(c)
        // Prune's batches with the leased tasks' keys (issue 23): the task table through its
        // partial lease index only.
        statements += LedgerPruner.hotPathStatements(
            cutoff: Date().addingTimeInterval(-3_600),
            leasedTaskKeys: TaskStore(config: config).leasedKeysQuery)
        // Sessions: the last `limit` items of a 10,000-item conversation, in the application's
        // table and in bridge's own, read through (session, created_at).
        let long = "00000000-0000-0000-0000-000000000001"
        let appSessions = try #require(SessionStore(config: config))
        statements += appSessions.hotPathStatements(key: long)
        var bridgeConfig = config
        bridgeConfig.sessions?.table = nil
        let bridgeSessions = try #require(SessionStore(config: bridgeConfig))
        statements += bridgeSessions.hotPathStatements(key: "long").map { ("bridge " + $0.name, $0.query) }
        #expect(statements.map(\.name).contains("session claim pick"))
        let items = try await appSessions.load(on: c, key: long)
        #expect(items.count == 50)
        #expect(items.first == ["role": "user", "content": "message 9951"])
        #expect(items.last == ["role": "assistant", "content": "message 10000"])
        let own = try await bridgeSessions.load(on: c, key: "long")
        #expect(own.count == 50 && own.last?["content"] == "message 10000")
        #expect(statements.count >= 16)
        for (name, query) in statements {
            let scans = try await Self.seqScans(query, on: c)
            #expect(scans.isEmpty, "\(name) scans \(scans) (\(query.sql))")
        }
        // `bridge verify` scoped to the last hour, a task, a workspace: only the window, through
        // indexes (the session settings are verify's own).
        try await c.simpleQuery("SET work_mem = '128MB'; SET jit = off")
        let hour = Date().addingTimeInterval(-3_600)
        let workspace = try #require(try await c.query("SELECT workspace_id::text AS w FROM tasks LIMIT 1").first?["w"])
        var scoped: [(name: String, query: PostgresQuery)] = []
        for (label, since, task, ws) in [
            ("--since 1h", Optional(hour), TaskKey?.none, String?.none), ("--task", nil, key, nil),
            ("--workspace", nil, nil, workspace),
        ] {
            for s in VerifyStatements.scoped(config: config, since: since, task: task, workspace: ws) {
                scoped.append(("verify \(label): \(s.name)", s.query))
            }
        }
        #expect(scoped.count == 21)
        for (name, query) in scoped {
            let scans = try await Self.seqScans(query, on: c)
            #expect(scans.isEmpty, "\(name) scans \(scans)")
        }
        // The detector at work: the old column-side cast reads the whole table.
        let cast = PostgresQuery(
            unsafeSQL: "UPDATE task_executions SET status = 'completed' WHERE id::text = $1", binds: [.text(execution)])
        #expect(try await Self.seqScans(cast, on: c) == ["task_executions"])
        await c.close()
    }
}
