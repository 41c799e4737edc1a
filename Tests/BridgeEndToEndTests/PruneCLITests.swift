import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

@Suite struct PruneCLIUsageTests {
    @Test(arguments: [
        [String](), ["--older-than", "10m"], ["--older-than", "2026-01-01"],
        ["--older-than", "30d", "--batch-size", "0"],
    ])
    func badFlagsExitTwo(_ args: [String]) async throws {
        let r = try await BridgeBinary.run(["prune"] + args)
        #expect(r.status == 2, "\(r.stderr)")
    }

    @Test func tooShortARetentionSaysTheMinimum() async throws {
        let short = try await BridgeBinary.run(["prune", "--older-than", "10m"])
        #expect(short.stderr.contains("at least 1h"))
    }

    /// Issue 23 item 8: a negative duration is named as such, not "Missing value".
    @Test(arguments: ["-1h", "-30d"])
    func aNegativeDurationIsNamedAsSuch(_ negative: String) async throws {
        let r = try await BridgeBinary.run([
            "prune", "--older-than", negative, "--database-url", "postgresql://127.0.0.1:1/none",
        ])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("--older-than '\(negative)': a duration cannot be negative"), "\(r.stderr)")
        #expect(!r.stderr.contains("Missing value"))
    }
}

/// `bridge prune` on a database that `bridge exec --offline` traced (and the file exporter
/// delivered), with every run moved 40 days into the past.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct PruneCLITests {
    @Test func dryRunThenPruneThenVerifyAboveTheHorizon() async throws {
        let db = try await ExecutedDatabase.make()
        _ = try await db.psql(
            """
            UPDATE bridge.traces SET started_at = started_at - interval '40 days', ended_at = ended_at - interval '40 days';
            UPDATE bridge.spans SET created_at = created_at - interval '40 days';
            UPDATE task_executions SET started_at = started_at - interval '40 days', completed_at = completed_at - interval '40 days'
            """)
        let traces = try await db.psql("SELECT count(*) FROM bridge.traces")
        let spans = try await db.psql("SELECT count(*) FROM bridge.spans")
        #expect(Int(traces) ?? 0 > 0)

        let dry = try await BridgeBinary.run(["prune", "--older-than", "30d", "--dry-run", "--database-url", db.url])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("would remove \(traces) traces, \(spans) spans"), "\(dry.stdout)")
        #expect(try await db.psql("SELECT count(*) FROM bridge.spans") == spans)
        #expect(try await db.psql("SELECT count(*) FROM bridge.prunes") == "0")

        let run = try await BridgeBinary.run([
            "prune", "--older-than", "30d", "--batch-size", "5", "--database-url", db.url,
        ])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("removed \(traces) traces, \(spans) spans"), "\(run.stdout)")
        #expect(run.stderr.contains("traces started before"))
        for table in ["traces", "spans", "run_transcripts", "span_deliveries", "trace_deliveries"] {
            #expect(try await db.psql("SELECT count(*) FROM bridge.\(table)") == "0", "\(table)")
        }
        // The task rows keep their trace ids; verify checks nothing older than the horizon.
        #expect(try await db.psql("SELECT count(*) FROM tasks WHERE openai_trace_id IS NOT NULL") != "0")
        let v = try await db.verify([])
        #expect(v.status == 0, "\(v.json) \(v.stderr)")
        let scope = v.json["scope"] as? [String: Any] ?? [:]
        #expect(scope["pruned_before"] is String, "\(scope)")
        #expect((scope["description"] as? String ?? "").contains("ledger pruned"), "\(scope)")
    }

    @Test func noLedgerExitsTwo() async throws {
        let url = try await TestDatabase.createReference(seed: false)
        let r = try await BridgeBinary.run(["prune", "--older-than", "30d", "--database-url", url])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("bridge migrate"))
    }
}
