import BridgeCore
import BridgePostgres
import BridgeTestSupport
import BridgeWorker
import Foundation
import Testing

@testable import BridgeMapping

/// Fair claims (`limits.fairness.group`) and budget holds on production-sized tables: the
/// claim is EXPLAINed on 200,000 tasks with the opt-in fair claim index
/// (`migrations/fairness/0058_fair_claim_index.sql`) and must not scan the task table; run for
/// real, it rotates across groups so a big backlog does not starve small ones.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct FairClaimPlanTests {
    @Test func fairClaimIsIndexServedAndRotatesAcrossGroups() async throws {
        let (_, c, loaded) = try await HotPathPlanTests.largeDatabase()
        var config = loaded
        config.limits = LimitsMapping(fairnessGroup: "workspace_id")
        // The opt-in index, built as the optional migration builds it.
        let sql = try String(
            contentsOf: TestDatabase.projectRoot.appendingPathComponent(
                "migrations/fairness/0058_fair_claim_index.sql"),
            encoding: .utf8)
        var text = sql
        for (k, v) in config.placeholders {
            text = text.replacingOccurrences(of: "${\(k)}", with: PostgresQuery.quoteIdentifier(v))
        }
        let create = text.split(separator: "\n").filter { !$0.hasPrefix("--") }.joined(separator: "\n")
        try await c.simpleQuery(create)
        try await c.simpleQuery("ANALYZE tasks")
        let store = TaskStore(config: config)
        let held = try #require(try await c.query("SELECT workspace_id::text AS w FROM tasks LIMIT 1").first?["w"])
        for (name, query) in [
            ("fair claim", store.claimQuery(limit: 16, workerId: "w", lease: .seconds(60), keys: [])),
            (
                "fair claim, a group on hold",
                store.claimQuery(
                    limit: 16, workerId: "w", lease: .seconds(60),
                    keys: [], held: [held])
            ),
        ] {
            let scans = try await HotPathPlanTests.seqScans(query, on: c)
            #expect(scans.isEmpty, "\(name) scans \(scans) (\(query.sql))")
        }
        // Claims for real: the first claims reach 16 different groups each, never the held one
        // (in a plain claim as in a fair one).
        var seen: [String: Int] = [:]
        for _ in 0..<4 {
            let claims = try await store.claim(on: c, limit: 16, workerId: "w", lease: .seconds(60), held: [held])
            #expect(claims.count == 16)
            for claim in claims { seen[claim.row["workspace_id"]?.stringValue ?? "", default: 0] += 1 }
        }
        #expect(seen.count == 64, "\(seen.count) groups in 64 claims")
        #expect(seen[held] == nil)
        let plain = try await TaskStore(config: loaded).claim(
            on: c, limit: 16, workerId: "w", lease: .seconds(60), held: [held])
        #expect(plain.count == 16 && plain.allSatisfy { $0.row["workspace_id"]?.stringValue != held })
        await c.close()
    }
}
