import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

@Suite struct MigrateCLIHelpTests {
    @Test func helpDescribesSubcommands() async throws {
        let r = try await BridgeBinary.run(["migrate", "--help"])
        #expect(r.status == 0)
        for word in ["status", "plan", "baseline", "repair", "lock_timeout"] {
            #expect(r.stdout.contains(word), "\(word)")
        }
        let up = try await BridgeBinary.run(["migrate", "up", "--help"])
        #expect(up.status == 0)
        #expect(
            up.stdout.contains("--lock-timeout") && up.stdout.contains("--database-url") && up.stdout.contains("--set"))
    }

    @Test func unreachableDatabaseExitsTwoWithPasswordRedacted() async throws {
        let r = try await BridgeBinary.run([
            "migrate", "status", "--dir", BridgeBinary.migrations,
            "--database-url", "postgres://bob:hunter22@127.0.0.1:1/db?connect_timeout=2",
        ])
        #expect(r.status == 2)
        #expect(r.stderr.contains("bridge: error:"))
        #expect(r.stderr.contains("bob:***@"))
        #expect(!r.stderr.contains("hunter22") && !r.stdout.contains("hunter22"))
    }

    @Test func transactionPoolerPortIsRefused() async throws {
        let r = try await BridgeBinary.run([
            "migrate", "--dir", BridgeBinary.migrations,
            "--database-url", "postgres://u:pw@127.0.0.1:6543/postgres",
        ])
        #expect(r.status == 2)
        #expect(r.stderr.contains("5432"))
    }

    @Test func badFlagsExitTwo() async throws {
        let r = try await BridgeBinary.run([
            "migrate", "status", "--dir", BridgeBinary.migrations, "--set", "no-equals",
        ])
        #expect(r.status == 2)
        let missing = try await BridgeBinary.run(["migrate", "status", "--dir", "/nonexistent/migrations"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent/migrations"))
    }
}

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct MigrateCLITests {
    @Test func statusUpStatus() async throws {
        let url = try await TestDatabase.createReference(seed: true)
        let common = ["--database-url", url, "--dir", BridgeBinary.migrations]
        let before = try await BridgeBinary.run(["migrate", "status"] + common)
        #expect(before.status == 3, "\(before.stderr)")
        #expect(before.stdout.contains("0002_trace_columns.sql") && before.stdout.contains("pending"))

        let plan = try await BridgeBinary.run(["migrate", "plan", "--json"] + common)
        #expect(plan.status == 0, "\(plan.stderr)")
        let planJSON = try JSONSerialization.jsonObject(with: Data(plan.stdout.utf8)) as? [String: Any]
        let shipped = try FileManager.default.contentsOfDirectory(atPath: BridgeBinary.migrations).filter {
            $0.hasSuffix(".sql")
        }
        #expect((planJSON?["files"] as? [Any])?.count == shipped.count)

        let up = try await BridgeBinary.run(["migrate"] + common)
        #expect(up.status == 0, "\(up.stderr)")
        #expect(up.stdout.contains("\(shipped.count) migration(s) applied"))

        let after = try await BridgeBinary.run(["migrate", "status", "--json"] + common)
        #expect(after.status == 0, "\(after.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(after.stdout.utf8)) as? [String: Any]
        let states = (json?["files"] as? [[String: Any]])?.compactMap { $0["state"] as? String }
        #expect(states == Array(repeating: "applied", count: shipped.count))

        let again = try await BridgeBinary.run(["migrate", "up"] + common)
        #expect(again.status == 0)
        #expect(again.stdout.contains("up to date"))
    }

}
