import BridgeCore
import BridgeMapping
import BridgeMigrate
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import BridgeWorker
import Foundation
import Testing

/// The approval store's statements stay on indexes of the user's tables.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ApprovalStoreTests {
    @Test func readyAndClaimUseTheKeysOfTheUsersTables() async throws {
        let (url, _) = try await LeaseStoreTests.migrated()
        let config = try MappingLoader.load(directory: LeaseStoreTests.mappings)
        let store = ApprovalStore(config: config)
        let c = try await TestDatabase.connect(url)
        // Many tasks and requests, a few waiting.
        try await c.simpleQuery(
            """
            INSERT INTO tasks (workspace_id, name, status) SELECT (SELECT id FROM workspaces LIMIT 1), 'bulk ' || g, 'completed'
            FROM generate_series(1, 20000) g;
            INSERT INTO human_feedback_requests (request_type, title, description, proposed_actions, expires_at)
            SELECT 'x', 't', 'd', '[]', now() + interval '1 day' FROM generate_series(1, 20000) g;
            INSERT INTO bridge.run_states (task_key, trace_id, attempt, spec, state, open_spans)
            SELECT id::text, 'trace_x', 1, '{}', '{}', '[]' FROM tasks ORDER BY id LIMIT 3;
            INSERT INTO bridge.approval_waits (request_key, task_key, call_id, tool_name, arguments)
            SELECT r.id::text, s.task_key, 'c', 't', '{}'
            FROM (SELECT id, row_number() OVER () AS n FROM human_feedback_requests LIMIT 3) r
            JOIN (SELECT task_key, row_number() OVER () AS n FROM bridge.run_states) s USING (n);
            UPDATE tasks SET bridge_waiting_since = now(), status = 'in_progress' WHERE id::text IN (SELECT task_key FROM bridge.run_states);
            ANALYZE;
            """)
        let q = try await store.readyQuery(on: c, limit: 10)
        let plan = try await c.query(PostgresQuery(unsafeSQL: "EXPLAIN " + q.sql, binds: q.binds)).map {
            $0["QUERY PLAN"] ?? ""
        }
        .joined(separator: "\n")
        #expect(!plan.contains("Seq Scan on tasks") && !plan.contains("Seq Scan on human_feedback_requests"), "\(plan)")
        // All three wait on pending requests; deciding one makes its task ready, once.
        #expect(try await store.ready(on: c, limit: 10).isEmpty)
        let first = try #require(
            try await c.simpleQuery(
                "SELECT request_key, task_key FROM bridge.approval_waits ORDER BY request_key LIMIT 1"
            ).first)
        let taskKey = TaskKey(first["task_key"] ?? "")
        #expect(
            try await store.decide(on: c, requestKey: first["request_key"] ?? "", approve: true, message: nil, by: "t")
                == .decided(taskKey: taskKey, stillPending: []))
        #expect(try await store.ready(on: c, limit: 10) == [taskKey])
        let claim = try await store.claim(on: c, taskKey: taskKey, workerId: "w", lease: .seconds(30))
        #expect(claim != nil)
        #expect(
            try await store.claim(on: c, taskKey: taskKey, workerId: "w2", lease: .seconds(30)) == nil,

            "one worker wins")
        #expect(try await store.ready(on: c, limit: 10).isEmpty)
        await c.close()
    }
}

/// A structured output's mapped fields land in task columns with the completed result.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct StructuredColumnsTests {
    @Test func mappedFieldsAreWrittenWithTheResult() async throws {
        let (url, store) = try await LeaseStoreTests.migrated()
        let c = try await TestDatabase.connect(url)
        let claim = try #require(try await store.claim(on: c, limit: 1, workerId: "A", lease: .seconds(60)).first)
        var outcome = TaskStore.Outcome(
            status: .completed, taskStatus: .completed,
            result: ["output": ["summary": "Short.", "priority": "high"]], tokenUsage: [:],
            errorMessage: nil, errorType: nil, completedAt: Date(), durationSeconds: 1)
        outcome.columns = ["description": "Short.", "priority": "high"]
        #expect(
            try await store.finish(
                on: c, taskKey: claim.key, token: claim.token, executionKey: nil, traceId: nil,
                outcome: outcome))
        let row = try await c.query(
            """
            SELECT description, priority, result->'output'->>'summary' AS summary, jsonb_typeof(result->'output') AS kind
            FROM tasks WHERE id::text = \(claim.key)
            """
        ).first
        #expect(row?["description"] == "Short." && row?["priority"] == "high")
        #expect(row?["summary"] == "Short." && row?["kind"] == "object")
        await c.close()
    }
}
