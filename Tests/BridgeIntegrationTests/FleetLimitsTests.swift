import BridgeCore
import BridgePostgres
import BridgeRunner
import BridgeTestSupport
import Foundation
import Testing

@testable import BridgeWorker

/// The fleet-wide limits' SQL on a real PostgreSQL (issue 21): a dead worker's concurrency
/// slots are free at once, and many workers contending for one bucket never get more than it
/// holds.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct FleetLimitsTests {
    static func migrated() async throws -> String { try await migratedReferenceDatabase(seed: false) }

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

    /// An MCP tool named in `limits.tools` holds a fleet slot for its call: four runs on four
    /// connections calling it at once, with `concurrency: 1`, run one at a time.
    @Test func anMCPToolUnderAToolLimitRunsOneCallAtATime() async throws {
        let url = try await Self.migrated()
        let server = CountingMCP()
        var connections: [PostgresConnection] = []
        for _ in 0..<4 { connections.append(try await TestDatabase.connect(url)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for c in connections {
                let limited = LimitedMCP(inner: server, limits: ["lookup": 1], connection: c)
                group.addTask { _ = try await limited.call(server: "s", tool: "lookup", arguments: [:]) }
            }
            try await group.waitForAll()
        }
        #expect(await server.calls == 4)
        #expect(await server.mostAtOnce == 1)
        // A tool with no limit is not held back.
        let free = LimitedMCP(inner: server, limits: ["lookup": 1], connection: connections[0])
        _ = try await free.call(server: "s", tool: "other", arguments: [:])
        #expect(await server.calls == 5)
        for c in connections { await c.close() }
    }
}

/// An MCP server stand-in that counts how many calls it serves at once.
actor CountingMCP: MCPToolSource {
    var running = 0
    var mostAtOnce = 0
    var calls = 0

    nonisolated func tools(server: String) async throws(MCPError) -> [MCPTool] { [] }
    nonisolated func usesStructuredContent(server: String) -> Bool { false }

    nonisolated func call(server: String, tool: String, arguments: JSONValue) async throws(MCPError) -> MCPCallResult {
        await enter()
        try? await Task.sleep(for: .milliseconds(100))
        await leave()
        return MCPCallResult(content: [["type": "text", "text": "ok"]])
    }

    func enter() {
        running += 1
        calls += 1
        mostAtOnce = max(mostAtOnce, running)
    }

    func leave() { running -= 1 }
}
