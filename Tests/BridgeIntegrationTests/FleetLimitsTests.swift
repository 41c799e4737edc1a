import BridgeCore
import BridgeMigrate
import BridgePostgres
import BridgeTestSupport
import BridgeWorker
import Foundation
import Testing

/// The fleet-wide limits' SQL on a real PostgreSQL (issue 21): a dead worker's concurrency
/// slots are free at once, and many workers contending for one bucket never get more than it
/// holds.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct FleetLimitsTests {
    static func migrated() async throws -> String {
        let url = try await TestDatabase.createReference(seed: false)
        var o = MigrateOptions(connection: ConnectionConfig(conninfo: url))
        o.directory = TestDatabase.projectRoot.appendingPathComponent("migrations").path
        _ = try await Migrator(options: o).up()
        return url
    }

    @Test func aWorkerKilledWhileHoldingSlotsHoldsNothing() async throws {
        let url = try await Self.migrated()
        let worker = try await TestDatabase.connect(url)
        let other = try await TestDatabase.connect(url)
        let key = FleetLimits.lockKey(model: "gpt-4.1")
        let a = try await FleetLimits.takeSlot(worker, key: key, slots: 2)
        let b = try await FleetLimits.takeSlot(worker, key: key, slots: 2)
        #expect(Set([a, b]) == [0, 1])
        // Both slots are held: nobody else gets one.
        for offset in 0..<2 {
            #expect(try await FleetLimits.tryTakeSlot(other, key: key, slots: 2, offset: offset) == nil)
        }
        // The worker dies (its session ends): its slots are free, with no lease to expire.
        await worker.close()
        var freed: Int?
        for _ in 0..<100 where freed == nil {
            freed = try await FleetLimits.tryTakeSlot(other, key: key, slots: 2)
            if freed == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(freed != nil)
        await other.close()
    }

    @Test func sixtyFourWorkersContendingForOneBucketGetNoMoreThanItHolds() async throws {
        let url = try await Self.migrated()
        // 120 requests a minute on one stripe (0.5 s apart) with 1 s of burst: at most 3 at once,
        // then 2 a second, on the database's clock whatever the workers' clocks say.
        let workers = 64
        var connections: [PostgresConnection] = []
        for _ in 0..<workers { connections.append(try await TestDatabase.connect(url)) }
        let clock = connections[0]
        let start = try #require(
            try await clock.query("SELECT extract(epoch FROM clock_timestamp())::float8 AS t").first?.double("t"))
        let granted = try await withThrowingTaskGroup(of: Int.self) { group in
            for c in connections {
                group.addTask {
                    var n = 0
                    for _ in 0..<5 {
                        let wait =
                            try await c.query(
                                """
                                SELECT bridge.take_rate(\("gpt-4.1"), 0, 0.5::float8, 0::float8, 100::float8, 1::float8) AS w
                                """
                            ).first?.double("w") ?? 1
                        if wait <= 0 { n += 1 }
                    }
                    return n
                }
            }
            return try await group.reduce(0, +)
        }
        let end = try #require(
            try await clock.query("SELECT extract(epoch FROM clock_timestamp())::float8 AS t").first?.double("t"))
        #expect(granted >= 1)
        #expect(Double(granted) <= 3 + 2 * (end - start), "\(granted) grants in \(end - start) s")
        // One row for the model's one stripe: contention never created a second one.
        #expect(try await clock.query("SELECT count(*) AS n FROM bridge.rate_buckets").first?.int("n") == 1)
        // A 429's reset blocks every caller until it passes.
        _ = try await clock.query("UPDATE bridge.rate_buckets SET blocked_until = now() + interval '1 hour'")
        let blocked =
            try await connections[1].query(
                """
                SELECT bridge.take_rate(\("gpt-4.1"), 0, 0::float8, 0::float8, 0::float8, 1::float8) AS w
                """
            ).first?.double("w") ?? 0
        #expect(blocked > 3000)
        for c in connections { await c.close() }
    }
}
