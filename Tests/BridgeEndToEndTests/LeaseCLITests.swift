import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

enum LeaseFixture {
    /// Runs `bash -c script args…` with posix_spawn and waits for it with waitpid; output (stdout
    /// and stderr) is returned. Used for pg_ctl, which leaves a daemon behind: Foundation's
    /// Process hangs waiting for such a child here, and the script closes every inherited
    /// descriptor above 2 first so the daemon holds none of the test process's pipes.
    static func shell(_ script: String, _ args: [String]) async throws -> (status: Int32, output: String) {
        try await OffPool.run { try spawnAndWait(script, args) }
    }

    static func spawnAndWait(_ script: String, _ args: [String]) throws -> (status: Int32, output: String) {
        let outPath = TemporaryPath.unique("bridge-sh", suffix: ".log")
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        let closeInherited =
            "for fd in $(ls /proc/$$/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\" 2>/dev/null; done; "
        let argv = ["/bin/bash", "-c", closeInherited + script] + args
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, "/bin/bash", &actions, nil, &cArgs, environ)
        guard rc == 0 else { throw PostgresError(kind: .client, message: "posix_spawn failed: \(rc)") }
        var status: Int32 = 0
        var waited: pid_t
        repeat { waited = waitpid(pid, &status, 0) } while waited == -1 && errno == EINTR
        let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS by hand (macros are not imported).
        let exitCode: Int32 = waited == pid ? ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)) : 0
        return (exitCode, output)
    }

    /// An empty reference database, migrated, with one workspace.
    static func database() async throws -> String { try await ExecCLITests.migratedWithOneWorkspace() }

    /// `database()` with `tasks` pending tasks, and a tool-less mappings folder (`TestDatabase.noopMappings`).
    static func database(tasks: Int) async throws -> (url: String, mappings: String) {
        let url = try await database()
        try await TestDatabase.insertTasks(url, tasks)
        return (url, try TestDatabase.noopMappings())
    }

    /// Polls `condition` (blocking calls allowed: `PollingConnection`) on a thread of its own.
    static func waitUntil(timeout seconds: Int, _ condition: @escaping @Sendable () throws -> Bool) async -> Bool {
        await OffPool.until(timeout: .seconds(seconds), every: .milliseconds(100), condition)
    }

    /// Every task completed exactly once: one `completed` execution carrying the task's trace id,
    /// which is the trace of the attempt that started its run (a run interrupted and resumed
    /// keeps its trace: every execution of the task carries it); no execution left `started`; no
    /// lease left; the trace ended and has its full span tree (task > agent > turn > generation,
    /// besides `resume` spans), every span ended, no orphan.
    static func expectAllCompletedExactlyOnce(
        _ url: String, tasks: Int, spansPerTrace: Int = 4,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let c = try await TestDatabase.connect(url)
        let rows = try await c.simpleQuery(
            """
            SELECT t.id::text AS id, t.status, t.openai_trace_id AS trace, t.bridge_attempts AS attempts,
                   t.bridge_lease_token IS NULL AND t.bridge_lease_expires_at IS NULL AS free,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.status = 'completed') AS completed,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.status = 'completed'
                        AND e.openai_trace_id = t.openai_trace_id) AS completed_same_trace,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.status = 'started') AS started,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id) AS executions,
                   (SELECT count(DISTINCT e.openai_trace_id) FROM task_executions e WHERE e.task_id = t.id) AS traces,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = t.openai_trace_id
                        AND s.span_data->>'name' IS DISTINCT FROM 'resume') AS spans,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = t.openai_trace_id AND s.ended_at IS NOT NULL
                        AND s.span_data->>'name' IS DISTINCT FROM 'resume') AS ended,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = t.openai_trace_id AND s.parent_id IS NULL
                        AND s.span_data->>'name' = 'task') AS roots,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = t.openai_trace_id AND s.parent_id IS NOT NULL
                        AND NOT EXISTS (SELECT 1 FROM bridge.spans p WHERE p.span_id = s.parent_id)) AS orphans,
                   (SELECT ended_at IS NOT NULL FROM bridge.traces tr WHERE tr.trace_id = t.openai_trace_id) AS trace_ended
            FROM tasks t
            """)
        await c.close()
        #expect(rows.count == tasks, sourceLocation: sourceLocation)
        var bad: [String] = []
        for r in rows {
            let id = r["id"] ?? "?"
            let attempts = r.int("attempts") ?? 0
            let ownTrace =
                attempts >= 1
                && (1...attempts).contains { r["trace"] == TraceID.forTask(TaskKey(id), attempt: $0).text }
            let ok =
                r["status"] == "completed" && r.bool("free") == true && r.int("completed") == 1
                && r.int("completed_same_trace") == 1 && r.int("started") == 0 && ownTrace && r.int("traces") == 1
                && r.int("spans") == spansPerTrace && r.int("ended") == spansPerTrace && r.int("roots") == 1
                && r.int("orphans") == 0 && r.bool("trace_ended") == true
            if !ok { bad.append("\(id): \(r.values.map { $0 ?? "NULL" }.joined(separator: ","))") }
        }
        #expect(
            bad.isEmpty, "\(bad.count) task(s) not completed exactly once:\n\(bad.prefix(5).joined(separator: "\n"))",
            sourceLocation: sourceLocation)
    }
}

/// Many workers, nothing lost: crash, signal and database-restart scenarios with the built binary.
/// Each moment a scenario depends on (a worker killed while it holds leases, a signal while runs
/// are in flight) is polled for, and acted on, from a thread of its own (`OffPool`,
/// `BackgroundBridge.send(_:when:timeout:then:)`), so a cooperative pool that other suites keep
/// busy cannot let the moment pass.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct LeaseCLITests {
    @Test(.timeLimit(.minutes(3)))
    func twoWorkersOneKilledMidRunThenRestartedCompleteEveryTaskExactlyOnce() async throws {
        let (url, mappings) = try await LeaseFixture.database(tasks: 200)
        let poll = PollingConnection(url)
        let args = [
            "exec", "--offline", "--offline-latency-ms", "300", "--concurrency", "4", "--lease", "2",
            "--database-url", url, "--mappings", mappings,
        ]
        let a = try BackgroundBridge(args)
        let b = try BackgroundBridge(args)
        // Worker A dies mid-run (40 tasks done), holding leases with started executions; it is
        // restarted at once. How many tasks were completed is read the moment it is killed.
        let pid = a.pid
        let (killedMidRun, completedAtKill) = try await a.send(
            SIGKILL,
            when: {
                try poll.count("status = 'completed'") >= 40
                    && poll.count(
                        """
                        status = 'in_progress' AND bridge_worker_id LIKE '%:\(pid):%'
                        AND EXISTS (SELECT 1 FROM task_executions e WHERE e.task_id = tasks.id AND e.status = 'started')
                        """) >= 1
            }, timeout: .seconds(90), then: { try poll.count("status = 'completed'") })
        #expect(killedMidRun)
        let a2 = try BackgroundBridge(args)
        _ = await a.wait(timeout: 10)
        #expect(completedAtKill < 200)
        let rb = await b.wait(timeout: 120)
        let ra2 = await a2.wait(timeout: 120)
        #expect(rb?.status == 0, "\(b.output.suffix(2000))")
        #expect(ra2?.status == 0, "\(a2.output.suffix(2000))")
        // The killed worker's in-flight attempts were reaped: their execution rows say so.
        #expect(
            try await TestDatabase.count(
                url, "error_type = 'LeaseExpired' AND status = 'failed_retriable'",
                table: "task_executions") >= 1)
        #expect((b.output + a2.output).contains("reaper:"))
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 200)
        // A restart afterwards finds nothing to do.
        let again = try await BridgeBinary.run(["exec", "--offline", "--database-url", url, "--mappings", mappings])
        #expect(again.status == 0 && again.stdout.contains("completed 0"))
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 200)
    }

    @Test(.timeLimit(.minutes(3)))
    func sigtermDrainsReleasesAndASecondSignalExitsAtOnce() async throws {
        let (url, mappings) = try await LeaseFixture.database(tasks: 30)
        let poll = PollingConnection(url)
        func worker(latency: Int, drainTimeout: String) throws -> BackgroundBridge {
            try BackgroundBridge([
                "exec", "--offline", "--offline-latency-ms", String(latency), "--concurrency", "4",
                "--lease", "3", "--drain-timeout", drainTimeout, "--database-url", url, "--mappings", mappings,
            ])
        }
        func count(_ condition: String, table: String = "tasks") async throws -> Int {
            try await TestDatabase.count(url, condition, table: table)
        }
        let noLeaseLeft = "status = 'in_progress' OR bridge_lease_token IS NOT NULL"

        // 1. SIGTERM mid-run with time to drain: the steps in flight (model calls) finish, and so
        // do these one-step runs; a run claimed but not yet at its first model call is released
        // at once (durable: its journal has nothing to lose). Nothing else is claimed.
        // Slow runs (3 s each: 30 tasks take over 20 s), so the signal lands long before the
        // drain ends, and step 2 still finds 4 pending tasks.
        let w1 = try worker(latency: 3000, drainTimeout: "20")
        #expect(
            await w1.send(
                SIGTERM,
                when: { try poll.count("status = 'completed'") >= 4 && poll.count("status = 'in_progress'") > 0 },
                timeout: .seconds(40)))
        let r1 = await w1.wait(timeout: 30)
        #expect(r1?.status == 0 && r1?.signalled == false, "\(w1.output.suffix(2000))")
        #expect(w1.output.contains("shutting down"))
        #expect(try await count(noLeaseLeft) == 0)
        #expect(try await count("status = 'started'", table: "task_executions") == 0)
        let released1 = try await count("error_type = 'Released'", table: "task_executions")
        #expect(released1 <= 4)
        let completed1 = try await count("status = 'completed'")
        let pending1 = try await count("status = 'pending'")
        #expect(completed1 < 30 && completed1 + pending1 == 30)

        // 2. SIGTERM with runs that cannot finish in time: they are cancelled and released to pending.
        let w2 = try worker(latency: 20_000, drainTimeout: "0.5")
        #expect(
            await w2.send(
                SIGTERM,
                when: {
                    try poll.count("status = 'in_progress'") == 4
                        && poll.count("status = 'started'", table: "task_executions") == 4
                }, timeout: .seconds(30)))
        let r2 = await w2.wait(timeout: 20)
        #expect(r2?.status == 0 && r2?.signalled == false, "\(w2.output.suffix(2000))")
        #expect(w2.output.contains("released 4"), "\(w2.output.suffix(2000))")
        #expect(try await count(noLeaseLeft) == 0)
        #expect(try await count("status = 'started'", table: "task_executions") == 0)
        #expect(
            try await count("error_type = 'Released' AND status = 'failed_retriable'", table: "task_executions")
                == released1 + 4)
        #expect(try await count("status = 'completed'") == completed1)

        // 3. A second signal (300 ms after the first) exits at once; the leases cover what was left.
        // The first lands once the 4 runs have started (each wrote its trace row, right before
        // its model call): they are in their model call, the step the drain waits for.
        let w3Start = try #require(try poll.scalar("SELECT now()::text"))
        let w3 = try worker(latency: 20_000, drainTimeout: "60")
        #expect(
            try await w3.send(
                SIGTERM,
                when: {
                    try poll.count("status = 'in_progress'") == 4
                        && poll.count("updated_at > '\(w3Start)'::timestamptz", table: "bridge.traces") == 4
                }, timeout: .seconds(20),
                then: {
                    Thread.sleep(forTimeInterval: 0.3)
                    w3.send(SIGTERM)
                }
            ).held)
        let r3 = await w3.wait(timeout: 5)
        #expect(r3?.status == 128 + SIGTERM, "\(w3.output.suffix(2000))")
        #expect(try await count("status = 'in_progress' AND bridge_lease_token IS NOT NULL") == 4)

        // 4. Once those leases have expired (3 s after w3 died), a plain drain reaps them and
        // completes everything, each task exactly once. (Started before, it can finish the
        // other pending tasks and exit while the leases still stand: a drain does not wait for
        // another worker's live leases.)
        #expect(
            await LeaseFixture.waitUntil(timeout: 30) {
                try poll.count("status = 'in_progress' AND bridge_lease_expires_at < now()") == 4
            })
        let rest = try worker(latency: 0, drainTimeout: "30")
        #expect(await rest.wait(timeout: 60)?.status == 0, "\(rest.output.suffix(2000))")
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 30)
    }

    /// The command's signal policy for SIGINT (Ctrl-C twice): the first one starts the drain and
    /// says so, the second ends the process at once with 128 + SIGINT = 130 and says why; the
    /// runs it abandoned keep their leases (the reaper hands them back later).
    @Test(.timeLimit(.minutes(3)))
    func aSecondSigintExitsAtOnceWith130() async throws {
        let (url, mappings) = try await LeaseFixture.database(tasks: 2)
        let poll = PollingConnection(url)
        let w = try BackgroundBridge([
            "exec", "--offline", "--offline-latency-ms", "20000", "--concurrency", "2",
            "--lease", "30", "--drain-timeout", "60", "--database-url", url, "--mappings", mappings,
        ])
        // Once both runs have started (each wrote its trace row, right before its model call):
        // they are in their model call, the step the drain waits for.
        #expect(
            await w.send(
                SIGINT,
                when: {
                    try poll.count("status = 'in_progress'") == 2 && poll.count("true", table: "bridge.traces") == 2
                }, timeout: .seconds(20)))
        #expect(
            await w.send(SIGINT, when: { w.output.contains("bridge exec: shutting down") }, timeout: .seconds(10)),
            "\(w.output.suffix(2000))")
        let r = await w.wait(timeout: 5)
        #expect(r?.status == 128 + SIGINT && r?.signalled == false, "\(w.output.suffix(2000))")
        #expect(w.output.contains("bridge exec: second signal, exiting now; leases cover unfinished tasks"))
        #expect(try await TestDatabase.count(url, "status = 'in_progress' AND bridge_lease_token IS NOT NULL") == 2)
    }

    @Test(.timeLimit(.minutes(3)))
    func watchSurvivesAPostgresRestartAndPicksUpNewTasks() async throws {
        // A cluster of our own, so it can be restarted.
        let dir = TemporaryPath.unique("bridge-restart")
        let lib = TestDatabase.projectRoot.appendingPathComponent("scripts/lib/pg.sh").path
        let started = try await LeaseFixture.shell(". \"$0\" && pg_start \"$1\" && echo \"URL=$PG_URL\"", [lib, dir])
        try #require(started.status == 0, "\(started.output)")
        // Blocks the pool, but only at the end, for pg_ctl stop (a defer cannot await).
        defer { _ = try? LeaseFixture.spawnAndWait(". \"$0\" && pg_stop \"$1\"; rm -rf \"$1\"", [lib, dir]) }
        let server = try #require(started.output.split(separator: "\n").last { $0.hasPrefix("URL=") }).dropFirst(4)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try await TestDatabase.execute(server, "CREATE DATABASE restart_test")
        let url = TestDatabase.url(server, database: "restart_test")
        let poll = PollingConnection(url)
        try await TestDatabase.runPsql(url: url, file: TestDatabase.fixture("reference-schema.sql"))
        for migrations in [BridgeBinary.migrations, BridgeBinary.migrations + "/optional"] {
            let r = try await BridgeBinary.migrate(url, dir: migrations)
            #expect(r.status == 0, "\(r.stderr)")
        }
        let mappings = try TestDatabase.noopMappings()

        let w = try BackgroundBridge([
            "exec", "--offline", "--watch", "--lease", "5", "--concurrency", "2",
            "--database-url", url, "--mappings", mappings,
        ])
        // The listener is up once its connection has LISTENed and looked for the trigger.
        #expect(
            await LeaseFixture.waitUntil(timeout: 60) {
                try poll.count(
                    "datname = current_database() AND pid <> pg_backend_pid() AND (query LIKE 'LISTEN %' OR query LIKE '%bridge_notify_insert%')",
                    table: "pg_stat_activity") >= 1
            }, "\(w.output)")
        // With NOTIFY, a new task is picked up at once (the backstop poll is 20 s).
        try await TestDatabase.insertTasks(url, 3, prefix: "before")
        #expect(await LeaseFixture.waitUntil(timeout: 15) { try poll.count("status = 'completed'") == 3 })

        // Restart PostgreSQL under the worker.
        let restart = try await LeaseFixture.shell(
            ". \"$0\" && PG_BIN=$(pg_find_bin) && pg_run_as \"$PG_BIN/pg_ctl\" -D \"$1/data\" -m fast -w restart",
            [lib, dir])
        try #require(restart.status == 0, "\(restart.output)")
        #expect(
            await LeaseFixture.waitUntil(timeout: 30) {
                _ = try poll.scalar(TestDatabase.insertTasksSQL(3, prefix: "after"))
                return true
            })
        #expect(
            await LeaseFixture.waitUntil(timeout: 30) { try poll.count("status = 'completed'") == 6 },
            "\(w.output.suffix(3000))")
        #expect(w.output.contains("listener"), "\(w.output.suffix(3000))")

        w.send(SIGTERM)
        #expect(await w.wait(timeout: 30)?.status == 0, "\(w.output.suffix(2000))")
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 6)
    }

    @Test(.timeLimit(.minutes(3)))
    func leaseIngestOutageThenRecoveryDeliversEverything() async throws {
        let (url, mappings) = try await LeaseFixture.database(tasks: 40)
        let ingest = try TraceIngestStandIn(up: false)
        defer { ingest.stop() }
        let args = [
            "exec", "--offline", "--concurrency", "4", "--flush-timeout", "1", "--database-url", url, "--mappings",
            mappings,
        ]
        // Two workers run everything while the endpoint is down: the tasks complete, the spans wait in the ledger.
        async let a = BridgeBinary.run(args, environment: ingest.environment)
        async let b = BridgeBinary.run(args, environment: ingest.environment)
        let (ra, rb) = try await (a, b)
        #expect(ra.status == 0 && rb.status == 0, "\(ra.stderr.suffix(1500))\n\(rb.stderr.suffix(1500))")
        #expect((ra.stderr + rb.stderr).contains("bridge export"))
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 40)
        let spans = try await TestDatabase.count(url, "true", table: "bridge.spans")
        #expect(spans == 160)
        #expect(
            try await TestDatabase.count(
                url, "exporter = 'openai' AND status = 'delivered'", table: "bridge.span_deliveries") < spans)

        // The endpoint comes back; `bridge export` delivers everything, each span once.
        ingest.isUp = true
        let export = try await BridgeBinary.run(
            ["export", "--timeout", "60", "--database-url", url], environment: ingest.environment)
        #expect(export.status == 0, "\(export.stdout)\n\(export.stderr)")
        #expect(
            try await TestDatabase.count(
                url, "exporter = 'openai' AND status = 'delivered'", table: "bridge.span_deliveries") == spans)
        let received = ingest.spanIds
        #expect(received.count == spans)
        #expect(Set(received).count == spans)
        #expect(ingest.traceIds.count == 40)
    }
}

extension LeaseCLITests {
    @Test(.timeLimit(.minutes(5)))
    func killedWhileIngestIsDownThenExportLosesNothing() async throws {
        let (url, mappings) = try await LeaseFixture.database(tasks: 30)
        let poll = PollingConnection(url)
        let ingest = try TraceIngestStandIn(up: false)
        defer { ingest.stop() }
        let args = [
            "exec", "--offline", "--offline-latency-ms", "500", "--concurrency", "2", "--lease", "2",
            "--database-url", url, "--mappings", mappings,
        ]
        // bridge dies (SIGKILL) mid-run while the ingest endpoint is down; how many tasks were
        // completed is read the moment it is killed.
        let worker = try BackgroundBridge(args, environment: ingest.environment)
        let (killed, completedAtKill) = try await worker.send(
            SIGKILL,
            when: {
                try poll.count("status = 'completed'") >= 2
            }, timeout: .seconds(60), then: { try poll.count("status = 'completed'") })
        #expect(killed)
        _ = await worker.wait(timeout: 10)
        #expect(completedAtKill < 30)
        #expect(ingest.spanIds.isEmpty)

        // The endpoint is back: `bridge export` sends what the dead process left in the ledger,
        // then a new exec finishes the tasks (after their leases expire) and exports the rest.
        ingest.isUp = true
        let export = try await BridgeBinary.run(
            ["export", "--timeout", "60", "--database-url", url], environment: ingest.environment)
        #expect(export.status == 0, "\(export.stdout)\n\(export.stderr)")
        // Its flush gets room on a loaded machine: one cut short would leave spans undelivered.
        let rest = try await BridgeBinary.run(args + ["--flush-timeout", "120"], environment: ingest.environment)
        #expect(rest.status == 0, "\(rest.stderr.suffix(2000))")
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 30)
        let ended = try await TestDatabase.count(url, "ended_at IS NOT NULL", table: "bridge.spans")
        #expect(
            try await TestDatabase.count(
                url, "exporter = 'openai' AND status = 'delivered'", table: "bridge.span_deliveries") == ended)
        let received = ingest.spanIds
        #expect(Set(received).count == ended)
        #expect(received.count == ended, "a span was sent twice")
    }
}
