import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import BridgeWorker
import Foundation
import Testing

/// A bigint key at or above 2^53 and a numeric column keep their exact values through the
/// claim, the run spec (input template, trace id, metadata), the finish and the stored result.
/// 2^53 + 1 is not a Double: rounded, it would name its neighbour 2^53, which is also a task.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ExactNumberTests {
    static let big = "9007199254740993"
    static let neighbour = "9007199254740992"
    static let amount = "12345678901234567890.123456789"

    static let mappings = """
        version: 1
        source:
          table: jobs
          key: id
          status: {column: status, pending: pending, running: running, completed: done, failed: failed}
          created_at_column: created_at
          input: "Job {{task.id}} costs {{task.amount}}"
        results:
          result_column: result
          completed_at_column: completed_at
          trace_id_column: openai_trace_id
        agents:
          - name: A
            instructions: "Handle job {{task.id}}."
        """

    @Test func bigintKeysAndNumericValuesStayExact() async throws {
        let url = try await TestDatabase.create(prefix: "big")
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery(
            """
            CREATE TABLE jobs (id bigint PRIMARY KEY, status text NOT NULL DEFAULT 'pending',
                created_at timestamptz NOT NULL DEFAULT now(), amount numeric, result jsonb, completed_at timestamptz,
                openai_trace_id text, bridge_lease_token text, bridge_lease_expires_at timestamptz,
                bridge_worker_id text, bridge_attempts int, bridge_run_after timestamptz);
            INSERT INTO jobs (id, amount) VALUES (\(Self.neighbour), 1), (\(Self.big), \(Self.amount));
            """)
        var config = try MappingLoader.load(documents: [("m.yaml", Self.mappings)])
        config = config.with(columnTypes: try await ColumnTypes.load(for: config, connection: c))
        #expect(config.columnTypes.type("jobs", "id") == "bigint")
        let store = TaskStore(config: config)

        let claim = try #require(
            try await store.claim(on: c, limit: 5, workerId: "w", lease: .seconds(60), keys: [TaskKey(Self.big)]).first)
        #expect(claim.key == TaskKey(Self.big))
        #expect(claim.row["id"]?.compact == Self.big)
        #expect(claim.row["amount"]?.compact == Self.amount)
        #expect(claim.row["id"]?.int64Value == 9_007_199_254_740_993)

        let spec = try DatabaseToSDKBridge(config: config).runSpec(
            task: claim.row, agentRows: [], handoffEdges: [], attempt: 1)
        #expect(spec.input.contains("Job \(Self.big) costs \(Self.amount)"))
        #expect(spec.traceId == TraceID.forTask(TaskKey(Self.big), attempt: 1))
        #expect(spec.traceId != TraceID.forTask(TaskKey(Self.neighbour), attempt: 1))

        #expect(spec.metadata["task_id"] == Self.big)

        let loaded = try await DatabaseToSDKBridge(config: config).loadTask(id: TaskKey(Self.big), connection: c)

        #expect(loaded?["id"]?.compact == Self.big)

        let outcome = TaskStore.Outcome(
            status: .completed, taskStatus: .completed,
            result: ["id": claim.row["id"] ?? .null, "amount": claim.row["amount"] ?? .null],
            tokenUsage: [:], errorMessage: nil, errorType: nil, completedAt: Date(), durationSeconds: 1)
        #expect(
            try await store.finish(
                on: c, taskKey: claim.key, token: claim.token, executionKey: nil,
                traceId: spec.traceId, outcome: outcome))
        let rows = try await c.query(
            """
            SELECT id::text AS id, status, result->>'id' AS rid, result->>'amount' AS ramount, openai_trace_id
            FROM jobs ORDER BY id
            """
        ).map { $0 }
        #expect(rows.map { $0["status"] } == ["pending", "done"])
        #expect(rows[1]["rid"] == Self.big && rows[1]["ramount"] == Self.amount)
        #expect(rows[1]["openai_trace_id"] == spec.traceId.text)
        await c.close()
    }
}
