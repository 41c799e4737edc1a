import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTestSupport
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

@testable import BridgeMonitor

/// `bridge top` and `bridge trace tail` against a real PostgreSQL.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct MonitorTests {
    static var mappings: String { TestDatabase.projectRoot.appendingPathComponent("mappings").path }

    /// An empty reference database with the shipped migrations applied.
    static func migrated() async throws -> String { try await migratedReferenceDatabase(seed: false) }

    static func span(_ trace: TraceID, _ name: String) -> SpanRecord {
        SpanRecord(
            id: SpanID.random(), traceId: trace, parentId: nil, startedAt: Date(), endedAt: Date(),
            spanData: ["type": "function", "name": .string(name), "input": "{}", "output": "ok", "mcp_data": nil],
            error: nil)
    }

    /// A model call in progress is announced (NOTIFY) for `trace tail --follow`, with the span
    /// id its span gets when it ends; nothing is written until then.
    @Test func aModelCallInProgressIsAnnouncedAndNothingIsStored() async throws {
        let url = try await Self.migrated()
        let listener = try await TestDatabase.connect(url)
        try await listener.listen(SpanStart.channel)
        let c = try await TestDatabase.connect(url)
        let trace = TraceRecord(
            id: TraceID.forTask("inflight", attempt: 1), workflowName: "w", groupId: "ws1", metadata: [:])
        let recorder = TraceRecorder(
            trace: trace, taskId: "inflight", sinks: [Ledger(connection: c)], includeSensitiveData: true)
        await recorder.deriveSpanIds()
        await recorder.record(.taskStarted(id: 1, at: Date()))
        await recorder.record(
            .agentStarted(
                id: 2, parent: 1, agent: "Assistant", tools: [], handoffs: [], outputType: "str", at: Date()))
        await recorder.record(.turnStarted(id: 3, parent: 2, turn: 1, agent: "Assistant", at: Date()))
        await recorder.record(.modelStarted(id: 4, parent: 3, kind: .response, model: "gpt-4.1", input: [], at: Date()))
        var notes: [PostgresNotification] = []
        for _ in 0..<20 where notes.isEmpty { notes = try await listener.waitForNotifications(timeout: 0.5) }
        let start = try #require(notes.first.flatMap { SpanStart(payload: $0.payload) })
        #expect(start.type == "response" && start.model == "gpt-4.1" && start.agent == "Assistant")
        #expect(start.taskId == "inflight" && start.groupId == "ws1" && start.traceId == trace.id)
        #expect(start.parentId != nil)
        #expect(try await Ledger(connection: c).spans(traceId: trace.id).isEmpty)
        // What tail prints for it, through its filters.
        let line = try #require(SpanTail(filter: .init(taskId: "inflight")).inProgress(start)?.line)
        #expect(line.contains("running") && line.contains("gpt-4.1") && line.contains("Assistant"), "\(line)")
        #expect(SpanTail(filter: .init(taskId: "other")).inProgress(start) == nil)
        #expect(SpanTail(filter: .init(workspace: "ws2")).inProgress(start) == nil)
        // The span recorded when the call ends has the announced id.
        await recorder.record(
            .modelEnded(
                id: 4, response: ModelResponse(output: [], usage: Usage(requests: 1), responseId: "resp_1", model: "m"),
                error: nil, at: Date()))
        #expect(try await Ledger(connection: c).spans(traceId: trace.id).map(\.id) == [start.spanId])
        await c.close()
        await listener.close()
    }

    @Test func tailPrintsALateCommitThatNewerSpansOvertook() async throws {
        let url = try await Self.migrated()
        let a = try await TestDatabase.connect(url)
        let b = try await TestDatabase.connect(url)
        let reader = try await TestDatabase.connect(url)
        let trace = TraceRecord(
            id: TraceID.forTask("late", attempt: 1), workflowName: "w", groupId: "ws1", metadata: [:])
        try await Ledger(connection: b).insertTrace(trace, taskId: "late", startedAt: Date())
        var tail = SpanTail(filter: .init())
        #expect(try await tail.start(on: reader, last: 10).isEmpty)

        // A's span is stamped with A's start time but commits after B's newer span was read.
        try await a.simpleQuery("BEGIN")
        let early = Self.span(trace.id, "early")
        try await Ledger(connection: a).insertSpan(early)
        try await Task.sleep(for: .milliseconds(20))
        let newer = Self.span(trace.id, "newer")
        try await Ledger(connection: b).insertSpan(newer)
        #expect(try await tail.poll(on: reader).map(\.record.id) == [newer.id])
        try await a.simpleQuery("COMMIT")
        #expect(try await tail.poll(on: reader).map(\.record.id) == [early.id])
        #expect(try await tail.poll(on: reader).isEmpty)
        // Filters: the task's traces, the workspace's traces.
        var byTask = SpanTail(filter: .init(taskId: "late"))
        #expect(try await byTask.start(on: reader, last: 10).map(\.record.id) == [early.id, newer.id])
        var otherWorkspace = SpanTail(filter: .init(workspace: "ws2"))
        #expect(try await otherWorkspace.start(on: reader, last: 10).isEmpty)
        for c in [a, b, reader] { await c.close() }
    }

    /// Every statement of `bridge top` and `bridge trace tail` reads through an index: no
    /// sequential scan of the ledger or the task table, with 100k old spans and 20k finished
    /// tasks (the planner would scan small tables anyway).
    @Test func topAndTailStatementsAreIndexServed() async throws {
        let url = try await Self.migrated()
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery(
            """
            INSERT INTO workspaces (name, user_id) VALUES ('w', gen_random_uuid());
            INSERT INTO tasks (workspace_id, name, status, completed_at)
            SELECT (SELECT id FROM workspaces LIMIT 1), 't' || g, 'completed', now() - interval '2 days'
            FROM generate_series(1, 20000) g;
            INSERT INTO tasks (workspace_id, name, status) SELECT (SELECT id FROM workspaces LIMIT 1), 'p' || g, 'pending'
            FROM generate_series(1, 5) g;
            INSERT INTO bridge.traces (trace_id, workflow_name, group_id, task_id, created_at)
            SELECT 'trace_' || lpad(to_hex(g), 32, '0'), 'w', 'ws', 't' || g, now() - interval '2 days'
            FROM generate_series(1, 10000) g;
            INSERT INTO bridge.spans (span_id, trace_id, started_at, ended_at, span_data, created_at)
            SELECT 'span_' || lpad(to_hex(g), 24, '0'), 'trace_' || lpad(to_hex(1 + g % 10000), 32, '0'),
                   now() - interval '2 days', now() - interval '2 days',
                   jsonb_build_object('type', 'function', 'name', 'tool' || (g % 7)), now() - interval '2 days' + g * interval '1 ms'
            FROM generate_series(1, 100000) g;
            INSERT INTO bridge.exporters (name) VALUES ('file');
            ANALYZE;
            """)
        let top = TopQueries(config: try MappingLoader.load(directory: Self.mappings))
        let now = try await c.simpleQuery("SELECT now()::text AS t").first?["t"] ?? ""
        var statements = top.all
        for filter in [SpanTail.Filter(), .init(taskId: "t1"), .init(workspace: "ws")] {
            let tail = SpanTail(filter: filter)
            statements += [
                tail.recentQuery(before: now, limit: 10), tail.lateQuery(from: now, upTo: (now, "")),
                tail.forwardQuery(after: (now, "")),
            ]
        }
        for q in statements {
            let plan = try await c.query(PostgresQuery(unsafeSQL: "EXPLAIN " + q.sql, binds: q.binds)).map {
                $0["QUERY PLAN"] ?? ""
            }
            .joined(separator: "\n")
            #expect(!plan.contains("Seq Scan on spans") && !plan.contains("Seq Scan on tasks"), "\(q.sql)\n\(plan)")
        }
        // And they answer.
        let snapshot = try await top.read(on: c)
        #expect(snapshot.tasks.pending == 5 && snapshot.tools.isEmpty && snapshot.exporters.map(\.name) == ["file"])
        await c.close()
    }
}
