import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTestSupport
import BridgeTracing
import BridgeWorker
import Foundation
import Testing

/// `bridge prune`'s library: which old traces go, which stay, what a dry run leaves, and that
/// no batch statement scans a ledger table (EXPLAIN on 300,000 spans).
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct PruneTests {
    /// A migrated empty reference database.
    static func migrated() async throws -> PostgresConnection { try await migratedURL().c }

    static func migratedURL() async throws -> (url: String, c: PostgresConnection) {
        let url = try await migratedReferenceDatabase(seed: false)
        return (url, try await TestDatabase.connect(url))
    }

    /// `n` traces of `spans` spans each, started `daysAgo` days ago (spans written then too),
    /// delivered to exporter `file` unless `delivered` is false, each with a transcript.
    static func seed(
        _ c: PostgresConnection, prefix: String, traces n: Int, spans: Int, daysAgo: Int,
        delivered: Bool = true
    ) async throws {
        try await c.query(
            """
            INSERT INTO bridge.exporters (name, target) VALUES ('file', 'test') ON CONFLICT (name) DO UPDATE SET last_seen_at = now();
            """)
        let at: PostgresQuery = "now() - make_interval(days => \(daysAgo)) + i * interval '1 second'"
        try await c.query(
            """
            INSERT INTO bridge.traces (trace_id, workflow_name, started_at, ended_at)
            SELECT \(prefix) || i, 'wf', \(at), \(at) FROM generate_series(1, \(n)) i
            """)
        try await c.query(
            """
            INSERT INTO bridge.spans (span_id, trace_id, started_at, ended_at, span_data, created_at)
            SELECT \(prefix) || i || '_' || j, \(prefix) || i, \(at), \(at), '{"type":"custom","name":"x","data":{}}', \(at)
            FROM generate_series(1, \(n)) i, generate_series(1, \(spans)) j
            """)
        try await c.query(
            """
            INSERT INTO bridge.run_transcripts (trace_id, task_id, attempt, items)
            SELECT \(prefix) || i, 'task' || i, 1, '[]' FROM generate_series(1, \(n)) i
            """)
        guard delivered else { return }
        try await c.query(
            """
            INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status)
            SELECT 'file', span_id, trace_id, 'delivered' FROM bridge.spans WHERE trace_id LIKE \(prefix + "%")
            """)
        try await c.query(
            """
            INSERT INTO bridge.trace_deliveries (exporter, trace_id, status)
            SELECT 'file', trace_id, 'delivered' FROM bridge.traces WHERE trace_id LIKE \(prefix + "%")
            """)
    }

    static func count(_ c: PostgresConnection, _ table: String, prefix: String) async throws -> Int {
        try await c.query(
            "SELECT count(*) AS n FROM \(identifier: "bridge." + table) WHERE trace_id LIKE \(prefix + "%")"
        )
        .first?.int("n") ?? -1
    }

    static func cutoff(_ c: PostgresConnection, daysAgo: Int) async throws -> Date {
        try #require(try await c.query("SELECT now() - make_interval(days => \(daysAgo)) AS t").first?.date("t"))
    }

    @Test func removesOldDeliveredTracesAndKeepsWhatMustStay() async throws {
        let c = try await Self.migrated()
        try await Self.seed(c, prefix: "old_", traces: 25, spans: 4, daysAgo: 40)
        try await Self.seed(c, prefix: "undelivered_", traces: 3, spans: 2, daysAgo: 40, delivered: false)
        try await Self.seed(c, prefix: "paused_", traces: 1, spans: 2, daysAgo: 40)
        try await Self.seed(c, prefix: "active_", traces: 1, spans: 2, daysAgo: 40)
        try await Self.seed(c, prefix: "new_", traces: 5, spans: 3, daysAgo: 1)
        try await c.query(
            """
            INSERT INTO bridge.run_states (task_key, trace_id, attempt, spec, state, open_spans)
            VALUES ('t1', 'paused_1', 1, '{}', '{}', '[]')
            """)
        try await c.query(
            """
            INSERT INTO bridge.spans (span_id, trace_id, started_at, span_data) VALUES ('late', 'active_1', now(), '{"type":"custom"}')
            """)
        let cutoff = try await Self.cutoff(c, daysAgo: 30)

        // A dry run counts and changes nothing.
        var batchesOf7 = PruneOptions(cutoff: cutoff)
        batchesOf7.batchSize = 7
        var dryRun = batchesOf7
        dryRun.dryRun = true
        let dry = try await LedgerPruner(connection: c, options: dryRun).run()
        #expect(dry.traces == 25 && dry.spans == 100 && dry.transcripts == 25 && dry.deliveries == 125)
        #expect(dry.kept == 5 && dry.candidates == 30)
        #expect(try await Self.count(c, "spans", prefix: "old_") == 100)
        #expect(try await c.query("SELECT count(*) AS n FROM bridge.prunes").first?.int("n") == 0)

        // Batches of 7 (the last one partial), progress after each.
        let seen = Collected<Int>()
        let result = try await LedgerPruner(connection: c, options: batchesOf7).run { p in
            seen.append(p.examined)
        }
        #expect(result == dry)
        #expect(seen.values.last == 30 && seen.values.count >= 5)
        for table in ["traces", "spans", "run_transcripts", "span_deliveries", "trace_deliveries"] {
            #expect(try await Self.count(c, table, prefix: "old_") == 0, "\(table)")
        }
        #expect(try await Self.count(c, "spans", prefix: "undelivered_") == 6)
        #expect(try await Self.count(c, "traces", prefix: "paused_") == 1)
        #expect(try await Self.count(c, "spans", prefix: "active_") == 3)
        #expect(try await Self.count(c, "spans", prefix: "new_") == 15)
        let log = try #require(
            try await c.query("SELECT traces, spans, finished_at IS NOT NULL AS done FROM bridge.prunes").first)
        #expect(log.int("traces") == 25 && log.int("spans") == 100 && log.bool("done") == true)

        // An exporter not seen since the cutoff does not hold traces back; --include-undelivered
        // removes what an active one still lacks.
        var undeliveredToo = PruneOptions(cutoff: cutoff)
        undeliveredToo.includeUndelivered = true
        let again = try await LedgerPruner(connection: c, options: undeliveredToo).run()
        #expect(again.traces == 3 && again.spans == 6)
        #expect(try await Self.count(c, "traces", prefix: "paused_") == 1)
        await c.close()
    }

    @Test func aLockedTraceIsSkippedNotWaitedFor() async throws {
        let (url, c) = try await Self.migratedURL()
        try await Self.seed(c, prefix: "old_", traces: 3, spans: 2, daysAgo: 40)
        let worker = try await TestDatabase.connect(url)
        try await worker.simpleQuery("BEGIN")
        try await worker.simpleQuery("UPDATE bridge.traces SET updated_at = now() WHERE trace_id = 'old_2'")
        let cutoff = try await Self.cutoff(c, daysAgo: 30)
        var patient = PruneOptions(cutoff: cutoff)
        patient.lockTimeoutMs = 60_000
        let first = try await LedgerPruner(connection: c, options: patient).run()
        #expect(first.traces == 2 && first.kept == 1)
        #expect(try await Self.count(c, "spans", prefix: "old_2") == 2)
        try await worker.simpleQuery("COMMIT")
        let second = try await LedgerPruner(connection: c, options: PruneOptions(cutoff: cutoff)).run()
        #expect(second.traces == 1 && second.spans == 2)
        await worker.close()
        await c.close()
    }

    /// Issue 23 item 5: a run that wrote no span for longer than the cutoff (a long tool or
    /// model call) keeps its trace, as does a task that holds a lease; checked in the deleting
    /// statement, so the next prune after they finish removes them.
    @Test func keepsTheTracesOfUnfinishedRunsAndLeasedTasks() async throws {
        let c = try await Self.migrated()
        let config = try MappingLoader.load(directory: TestDatabase.projectRoot.appendingPathComponent("mappings").path)
        try await Self.seed(c, prefix: "done_", traces: 3, spans: 2, daysAgo: 40)
        try await Self.seed(c, prefix: "running_", traces: 1, spans: 2, daysAgo: 40)
        try await Self.seed(c, prefix: "leased_", traces: 1, spans: 2, daysAgo: 40)
        try await c.simpleQuery(
            """
            INSERT INTO workspaces (id, name, user_id) VALUES ('00000000-0000-0000-0000-00000000000a', 'w', gen_random_uuid());
            INSERT INTO tasks (id, workspace_id, name, status, bridge_lease_token, bridge_lease_expires_at)
              VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-00000000000a', 'running', 'in_progress',
                      'tok1', now() + interval '1 minute'),
                     ('00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-00000000000a', 'finishing', 'in_progress',
                      'tok2', now() - interval '1 minute'),
                     ('00000000-0000-0000-0000-0000000000b3', '00000000-0000-0000-0000-00000000000a', 'done', 'completed', NULL, NULL);
            UPDATE bridge.traces SET ended_at = NULL, task_id = '00000000-0000-0000-0000-0000000000b1' WHERE trace_id = 'running_1';
            UPDATE bridge.traces SET task_id = '00000000-0000-0000-0000-0000000000b2' WHERE trace_id = 'leased_1';
            UPDATE bridge.traces SET task_id = '00000000-0000-0000-0000-0000000000b3' WHERE trace_id LIKE 'done_%';
            """)
        let cutoff = try await Self.cutoff(c, daysAgo: 30)
        var options = PruneOptions(cutoff: cutoff)
        options.leasedTaskKeys = TaskStore(config: config).leasedKeysQuery
        var dry = options
        dry.dryRun = true
        let counted = try await LedgerPruner(connection: c, options: dry).run()
        #expect(counted.traces == 3 && counted.kept == 2, "\(counted)")
        let first = try await LedgerPruner(connection: c, options: options).run()
        #expect(first.traces == 3 && first.kept == 2, "\(first)")
        #expect(try await Self.count(c, "traces", prefix: "running_") == 1)
        #expect(try await Self.count(c, "spans", prefix: "running_") == 2)
        #expect(try await Self.count(c, "traces", prefix: "leased_") == 1)
        #expect(try await Self.count(c, "run_transcripts", prefix: "leased_") == 1)
        // The run goes on: its next span and its end are written to the trace that was kept.
        try await c.simpleQuery(
            """
            INSERT INTO bridge.spans (span_id, trace_id, started_at, span_data) VALUES ('after', 'running_1', now(), '{"type":"custom"}');
            UPDATE bridge.spans SET created_at = now() - interval '40 days' WHERE span_id = 'after';
            INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status) VALUES ('file', 'after', 'running_1', 'delivered');
            UPDATE bridge.traces SET ended_at = now() - interval '40 days' WHERE trace_id = 'running_1';
            UPDATE tasks SET bridge_lease_token = NULL, bridge_lease_expires_at = NULL, status = 'completed';
            """)
        let second = try await LedgerPruner(connection: c, options: options).run()
        #expect(second.traces == 2 && second.kept == 0, "\(second)")
        #expect(try await Self.count(c, "traces", prefix: "") == 0)
        await c.close()
    }

    @Test func noBatchStatementScansALedgerTable() async throws {
        let c = try await Self.migrated()
        try await Self.seed(c, prefix: "trace_", traces: 30_000, spans: 10, daysAgo: 60)
        try await c.simpleQuery("ANALYZE")
        let cutoff = try await Self.cutoff(c, daysAgo: 30)
        // (With the leased tasks' keys, on a large task table: HotPathPlanTests.)
        let statements = LedgerPruner.hotPathStatements(cutoff: cutoff)
        #expect(statements.count == 3)
        for (name, query) in statements {
            let scans = try await HotPathPlanTests.seqScans(query, on: c)
            #expect(scans.isEmpty, "\(name) scans \(scans) (\(query.sql))")
        }
        await c.close()
    }
}
