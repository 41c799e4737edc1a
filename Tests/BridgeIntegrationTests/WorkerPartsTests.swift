import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTestSupport
import Foundation
import Testing

@testable import BridgeWorker

/// The worker's parts on their own: the run connection pool's scoped lending and the run
/// executor's outcomes, against a real database (no worker loop, no timing).
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct WorkerPartsTests {
    /// A model that fails every call, terminally (like a 400 from the API).
    struct RejectingModel: ModelProvider {
        var spanKind: ModelSpanKind { .generation }
        func respond(_ request: ModelRequest) async throws -> ModelResponse {
            throw ModelProviderError(
                "400 Bad Request: the model rejected the request", retriable: false, statusCode: 400)
        }
    }

    /// The shipped bridge.yaml with one tool-less agent: each run is one model call.
    static func mappings() throws -> MappingConfig {
        let dir = try TestDatabase.noopMappings()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try MappingLoader.load(directory: dir)
    }

    /// An empty reference database, migrated, with `tasks` pending tasks of one workspace (no
    /// agent row: each runs the mappings' only agent).
    static func database(tasks: Int) async throws -> String {
        let url = try await migratedReferenceDatabase(seed: false)
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery("INSERT INTO workspaces (name, user_id) VALUES ('w', gen_random_uuid())")
        try await c.simpleQuery(
            """
            INSERT INTO tasks (workspace_id, name, status)
            SELECT (SELECT id FROM workspaces LIMIT 1), 't' || g, 'pending' FROM generate_series(1, \(tasks)) g
            """)
        await c.close()
        return url
    }

    static func executor(
        url: String, config: MappingConfig, pool: RunConnectionPool,
        model: any ModelProvider
    ) -> RunExecutor {
        RunExecutor(
            config: config, bridge: DatabaseToSDKBridge(config: config), store: TaskStore(config: config),
            approvals: ApprovalStore(config: config), connect: { try await TestDatabase.connect(url) }, pool: pool,
            model: model, toolsFactory: { _ in CompositeToolExecutor() }, mcp: nil, secrets: [],
            options: WorkerOptions(),  // maxAttempts 3: the default
            journals: RunJournalStore(config: config), stop: StopSignal())
    }

    @Test func aFailedRunRecordsItsFailureAndItsConnectionGoesBackToThePool() async throws {
        let url = try await Self.database(tasks: 2)
        let config = try Self.mappings()
        let store = TaskStore(config: config)
        let c = try await TestDatabase.connect(url)
        let claims = try await store.claim(on: c, limit: 2, workerId: "w", lease: .seconds(60))
        #expect(claims.count == 2)
        let pool = RunConnectionPool(capacity: 2) { try await TestDatabase.connect(url) }
        let executor = Self.executor(url: url, config: config, pool: pool, model: RejectingModel())

        let outcome = await executor.run(claims[0], resuming: false) { _ in false }
        guard case .failed(let key, let trace, _, let retried, _, _, let type) = outcome else {
            Issue.record("expected a failed outcome, got \(outcome)")
            return
        }
        #expect(key == claims[0].key && trace != nil && !retried && type == .modelError)
        #expect(await pool.idleCount == 1)
        let row = try await c.query("SELECT status, bridge_lease_token FROM tasks WHERE id::text = \(claims[0].key)")
            .first
        #expect(row?["status"] == "failed" && row?["bridge_lease_token"] == nil)
        let execution = try await c.query(
            "SELECT status, error_type FROM task_executions WHERE task_id::text = \(claims[0].key)"
        ).first
        #expect(execution?["status"] == "failed_terminal" && execution?["error_type"] == "ModelError")

        // The next run borrows that same connection: one connection served both.
        _ = await executor.run(claims[1], resuming: false) { _ in false }
        #expect(await pool.idleCount == 1)
        await pool.closeAll()
        await c.close()
    }

    @Test func aRunWhoseLeaseIsLostWritesNothingAndReturnsItsConnection() async throws {
        let url = try await Self.database(tasks: 1)
        let config = try Self.mappings()
        let store = TaskStore(config: config)
        let c = try await TestDatabase.connect(url)
        let claim = try #require(try await store.claim(on: c, limit: 1, workerId: "w", lease: .seconds(60)).first)
        let pool = RunConnectionPool(capacity: 1) { try await TestDatabase.connect(url) }
        let outcome = await Self.executor(url: url, config: config, pool: pool, model: OfflineModel())
            .run(claim, resuming: false) { _ in true }
        guard case .stale(let key, _) = outcome else {
            Issue.record("expected a stale outcome, got \(outcome)")
            return
        }
        #expect(key == claim.key)
        #expect(await pool.idleCount == 1)
        // The task still belongs to the lease (the reaper, or the lease's new owner, decides).
        let row = try await c.query("SELECT status, bridge_lease_token FROM tasks WHERE id::text = \(claim.key)").first
        #expect(row?["status"] == "in_progress" && row?["bridge_lease_token"] == claim.token.text)
        await pool.closeAll()
        await c.close()
    }

    /// (A closed connection's thread has ended: nothing may call it again, so these checks look
    /// at the pool and at which connection the next scope gets.)
    @Test func thePoolDropsAConnectionWhoseScopeThrewOrLeftATransactionOpen() async throws {
        let url = try await TestDatabase.create()
        let pool = RunConnectionPool(capacity: 2) { try await TestDatabase.connect(url) }
        struct Boom: Error {}
        var lent: PostgresConnection?
        do {
            try await pool.withConnection { c in
                lent = c
                throw Boom()
            }
            Issue.record("the scope's error was swallowed")
        } catch {
            #expect(error is Boom)
        }
        #expect(await pool.idleCount == 0)

        let inTransaction = try await pool.withConnection { c in
            try await c.simpleQuery("BEGIN")
            return c
        }
        #expect(inTransaction !== lent)
        #expect(await pool.idleCount == 0)

        let kept = try await pool.withConnection { c in c }
        #expect(kept !== inTransaction && kept !== lent)
        #expect(await pool.idleCount == 1)
        #expect(try await pool.withConnection { c in c === kept })
        await pool.closeAll()
    }
}
