import BridgeTraceModel
import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

/// A `bridge` process running in the background (output to a file), for crash and signal tests.
final class BackgroundBridge: @unchecked Sendable {
    // @unchecked Sendable: used from one test at a time.
    let process = Process()
    let logPath: String

    init(_ args: [String], environment: [String: String]? = nil) throws {
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("bridge-bg-\(UUID().uuidString).log").path
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = URL(fileURLWithPath: BridgeBinary.path)
        process.arguments = args
        var env = environment ?? ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = nil
        process.environment = env
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    func send(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// Waits for the process to end; nil on timeout (the process is then killed).
    func wait(timeout: Double) async -> (status: Int32, signalled: Bool)? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning {
            send(SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal)
    }

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit {
        if process.isRunning { send(SIGKILL) }
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

enum LeaseFixture {
    /// Runs `bash -c script args…` with posix_spawn and waits for it with waitpid; output (stdout
    /// and stderr) is returned. Used for pg_ctl, which leaves a daemon behind: Foundation's
    /// Process hangs waiting for such a child here, and the script closes every inherited
    /// descriptor above 2 first so the daemon holds none of the test process's pipes.
    static func shell(_ script: String, _ args: [String]) throws -> (status: Int32, output: String) {
        let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("bridge-sh-\(UUID().uuidString).log").path
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        let closeInherited = "for fd in $(ls /proc/$$/fd); do [ \"$fd\" -gt 2 ] && eval \"exec $fd>&-\" 2>/dev/null; done; "
        let argv = ["/bin/bash", "-c", closeInherited + script] + args
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArgs = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
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

    /// The shipped bridge.yaml with one tool-less agent: each run is one model call (4 spans).
    static func noopMappings() throws -> String { try TestDatabase.noopMappings() }

    /// An empty reference database, migrated, with one workspace.
    static func database() async throws -> String {
        let url = try await TestDatabase.createReference(seed: false)
        let r = try BridgeBinary.run(["migrate", "--database-url", url, "--dir", BridgeBinary.migrations])
        #expect(r.status == 0, "\(r.stderr)")
        try await exec(url, "INSERT INTO workspaces (name, user_id) VALUES ('w', gen_random_uuid())")
        return url
    }

    static func insertTasks(_ url: String, _ n: Int, prefix: String = "t") async throws {
        try await exec(url, """
            INSERT INTO tasks (workspace_id, name, status)
            SELECT (SELECT id FROM workspaces LIMIT 1), '\(prefix)' || g, 'pending' FROM generate_series(1, \(n)) g
            """)
    }

    static func exec(_ url: String, _ sql: String) async throws {
        let c = try await TestDatabase.connect(url)
        defer { Task { await c.close() } }
        try await c.simpleQuery(sql)
    }

    static func count(_ url: String, _ condition: String, table: String = "tasks") async throws -> Int {
        let c = try await TestDatabase.connect(url)
        let n = try await c.simpleQuery("SELECT count(*) AS n FROM \(table) WHERE \(condition)").first?.int("n") ?? -1
        await c.close()
        return n
    }

    /// Polls until `condition` holds; false on timeout.
    static func waitUntil(timeout: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? await condition()) == true { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    /// Every task completed exactly once: one `completed` execution carrying the task's trace id,
    /// which is the trace of the task's last attempt; no execution left `started`; no lease
    /// left; the trace ended and has its full span tree (task > agent > turn > generation), every
    /// span ended, no orphan.
    static func expectAllCompletedExactlyOnce(_ url: String, tasks: Int, spansPerTrace: Int = 4,
                                              sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let c = try await TestDatabase.connect(url)
        let rows = try await c.simpleQuery("""
            SELECT t.id::text AS id, t.status, t.openai_trace_id AS trace, t.bridge_attempts AS attempts,
                   t.bridge_lease_token IS NULL AND t.bridge_lease_expires_at IS NULL AS free,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.status = 'completed') AS completed,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.status = 'completed'
                        AND e.openai_trace_id = t.openai_trace_id) AS completed_same_trace,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.status = 'started') AS started,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id) AS executions,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = t.openai_trace_id) AS spans,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = t.openai_trace_id AND s.ended_at IS NOT NULL) AS ended,
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
            let expectedTrace = TraceID.forTask(id, attempt: r.int("attempts") ?? 0)
            let ok = r["status"] == "completed" && r.bool("free") == true && r.int("completed") == 1
                && r.int("completed_same_trace") == 1 && r.int("started") == 0 && r["trace"] == expectedTrace
                && r.int("spans") == spansPerTrace && r.int("ended") == spansPerTrace && r.int("roots") == 1
                && r.int("orphans") == 0 && r.bool("trace_ended") == true
            if !ok { bad.append("\(id): \(r.values.map { $0 ?? "NULL" }.joined(separator: ","))") }
        }
        #expect(bad.isEmpty, "\(bad.count) task(s) not completed exactly once:\n\(bad.prefix(5).joined(separator: "\n"))",
                sourceLocation: sourceLocation)
    }
}

/// Many workers, nothing lost: crash, signal and database-restart scenarios with the built binary.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct LeaseCLITests {
    @Test(.timeLimit(.minutes(3)))
    func twoWorkersOneKilledMidRunThenRestartedCompleteEveryTaskExactlyOnce() async throws {
        let url = try await LeaseFixture.database()
        let mappings = try LeaseFixture.noopMappings()
        try await LeaseFixture.insertTasks(url, 200)
        let args = ["exec", "--offline", "--offline-latency-ms", "300", "--concurrency", "4", "--lease", "2",
                    "--database-url", url, "--mappings", mappings]
        let a = try BackgroundBridge(args)
        let b = try BackgroundBridge(args)
        #expect(try await LeaseFixture.waitUntil(timeout: 60) { try await LeaseFixture.count(url, "status = 'completed'") >= 40 })
        // Worker A dies mid-run, holding leases with started executions; it is restarted at once.
        let pid = a.process.processIdentifier
        #expect(try await LeaseFixture.waitUntil(timeout: 30) {
            try await LeaseFixture.count(url, """
                status = 'in_progress' AND bridge_worker_id LIKE '%:\(pid):%'
                AND EXISTS (SELECT 1 FROM task_executions e WHERE e.task_id = tasks.id AND e.status = 'started')
                """) >= 1
        })
        a.send(SIGKILL)
        _ = await a.wait(timeout: 10)
        #expect(try await LeaseFixture.count(url, "status = 'completed'") < 200)
        let a2 = try BackgroundBridge(args)
        let rb = await b.wait(timeout: 120)
        let ra2 = await a2.wait(timeout: 120)
        #expect(rb?.status == 0, "\(b.output.suffix(2000))")
        #expect(ra2?.status == 0, "\(a2.output.suffix(2000))")
        // The killed worker's in-flight attempts were reaped: their execution rows say so.
        #expect(try await LeaseFixture.count(url, "error_type = 'LeaseExpired' AND status = 'failed_retriable'",
                                             table: "task_executions") >= 1)
        #expect((b.output + a2.output).contains("reaper:"))
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 200)
        // A restart afterwards finds nothing to do.
        let again = try BridgeBinary.run(["exec", "--offline", "--database-url", url, "--mappings", mappings])
        #expect(again.status == 0 && again.stdout.contains("completed 0"))
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 200)
    }

    @Test(.timeLimit(.minutes(3)))
    func sigtermDrainsReleasesAndASecondSignalExitsAtOnce() async throws {
        let url = try await LeaseFixture.database()
        let mappings = try LeaseFixture.noopMappings()
        try await LeaseFixture.insertTasks(url, 30)
        func worker(latency: Int, drainTimeout: String) throws -> BackgroundBridge {
            try BackgroundBridge(["exec", "--offline", "--offline-latency-ms", String(latency), "--concurrency", "4",
                                  "--lease", "3", "--drain-timeout", drainTimeout, "--database-url", url, "--mappings", mappings])
        }
        func inFlight() async throws -> Int { try await LeaseFixture.count(url, "status = 'in_progress'") }
        let noLeaseLeft = "status = 'in_progress' OR bridge_lease_token IS NOT NULL"

        // 1. SIGTERM mid-run with time to drain: the in-flight runs finish, nothing else is claimed.
        // Slow runs (3 s each: 30 tasks take over 20 s), so the signal lands long before the
        // drain ends even on a loaded machine, and step 2 still finds 4 pending tasks.
        let w1 = try worker(latency: 3000, drainTimeout: "20")
        #expect(try await LeaseFixture.waitUntil(timeout: 30) { try await LeaseFixture.count(url, "status = 'completed'") >= 4 })
        #expect(try await LeaseFixture.waitUntil(timeout: 10) { try await inFlight() > 0 })
        w1.send(SIGTERM)
        let r1 = await w1.wait(timeout: 30)
        #expect(r1?.status == 0 && r1?.signalled == false, "\(w1.output.suffix(2000))")
        #expect(w1.output.contains("shutting down"))
        #expect(try await LeaseFixture.count(url, noLeaseLeft) == 0)
        #expect(try await LeaseFixture.count(url, "status = 'started'", table: "task_executions") == 0)
        #expect(try await LeaseFixture.count(url, "error_type = 'Released'", table: "task_executions") == 0)
        let completed1 = try await LeaseFixture.count(url, "status = 'completed'")
        let pending1 = try await LeaseFixture.count(url, "status = 'pending'")
        #expect(completed1 < 30 && completed1 + pending1 == 30)

        // 2. SIGTERM with runs that cannot finish in time: they are cancelled and released to pending.
        let w2 = try worker(latency: 20_000, drainTimeout: "0.5")
        #expect(try await LeaseFixture.waitUntil(timeout: 20) { try await inFlight() == 4 })
        #expect(try await LeaseFixture.waitUntil(timeout: 10) {
            try await LeaseFixture.count(url, "status = 'started'", table: "task_executions") == 4
        })
        w2.send(SIGTERM)
        let r2 = await w2.wait(timeout: 20)
        #expect(r2?.status == 0 && r2?.signalled == false, "\(w2.output.suffix(2000))")
        #expect(w2.output.contains("released 4"), "\(w2.output.suffix(2000))")
        #expect(try await LeaseFixture.count(url, noLeaseLeft) == 0)
        #expect(try await LeaseFixture.count(url, "status = 'started'", table: "task_executions") == 0)
        #expect(try await LeaseFixture.count(url, "error_type = 'Released' AND status = 'failed_retriable'",
                                             table: "task_executions") == 4)
        #expect(try await LeaseFixture.count(url, "status = 'completed'") == completed1)

        // 3. A second signal exits at once; the leases cover what was left.
        let w3 = try worker(latency: 20_000, drainTimeout: "60")
        #expect(try await LeaseFixture.waitUntil(timeout: 20) { try await inFlight() == 4 })
        w3.send(SIGTERM)
        try await Task.sleep(for: .milliseconds(300))
        w3.send(SIGTERM)
        let r3 = await w3.wait(timeout: 5)
        #expect(r3?.status == 128 + SIGTERM, "\(w3.output.suffix(2000))")
        #expect(try await LeaseFixture.count(url, "status = 'in_progress' AND bridge_lease_token IS NOT NULL") == 4)

        // 4. A plain drain reaps the expired leases and completes everything, each task exactly once.
        let rest = try worker(latency: 0, drainTimeout: "30")
        let r4 = await rest.wait(timeout: 60)
        #expect(r4?.status == 0, "\(rest.output.suffix(2000))")
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 30)
    }

    /// The command's signal policy for SIGINT (Ctrl-C twice): the first one starts the drain and
    /// says so, the second ends the process at once with 128 + SIGINT = 130 and says why; the
    /// runs it abandoned keep their leases (the reaper hands them back later).
    @Test(.timeLimit(.minutes(3)))
    func aSecondSigintExitsAtOnceWith130() async throws {
        let url = try await LeaseFixture.database()
        let mappings = try LeaseFixture.noopMappings()
        try await LeaseFixture.insertTasks(url, 2)
        let w = try BackgroundBridge(["exec", "--offline", "--offline-latency-ms", "20000", "--concurrency", "2",
                                      "--lease", "30", "--drain-timeout", "60", "--database-url", url, "--mappings", mappings])
        #expect(try await LeaseFixture.waitUntil(timeout: 20) {
            try await LeaseFixture.count(url, "status = 'in_progress'") == 2
        })
        w.send(SIGINT)
        #expect(try await LeaseFixture.waitUntil(timeout: 10) { w.output.contains("bridge exec: shutting down") },
                "\(w.output.suffix(2000))")
        w.send(SIGINT)
        let r = await w.wait(timeout: 5)
        #expect(r?.status == 128 + SIGINT && r?.signalled == false, "\(w.output.suffix(2000))")
        #expect(w.output.contains("bridge exec: second signal, exiting now; leases cover unfinished tasks"))
        #expect(try await LeaseFixture.count(url, "status = 'in_progress' AND bridge_lease_token IS NOT NULL") == 2)
    }

    @Test(.timeLimit(.minutes(3)))
    func watchSurvivesAPostgresRestartAndPicksUpNewTasks() async throws {
        // A cluster of our own, so it can be restarted.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bridge-restart-\(UUID().uuidString)").path
        let lib = TestDatabase.projectRoot.appendingPathComponent("scripts/lib/pg.sh").path
        let started = try LeaseFixture.shell(". \"$0\" && pg_start \"$1\" && echo \"URL=$PG_URL\"", [lib, dir])
        try #require(started.status == 0, "\(started.output)")
        defer { _ = try? LeaseFixture.shell(". \"$0\" && pg_stop \"$1\"; rm -rf \"$1\"", [lib, dir]) }
        let server = try #require(started.output.split(separator: "\n").last { $0.hasPrefix("URL=") }).dropFirst(4)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let admin = try await TestDatabase.connect(server)
        try await admin.simpleQuery("CREATE DATABASE restart_test")
        await admin.close()
        let url = TestDatabase.url(server, database: "restart_test")
        try TestDatabase.runPsql(url: url, file: TestDatabase.fixture("reference-schema.sql"))
        for migrations in [BridgeBinary.migrations, BridgeBinary.migrations + "/optional"] {
            let r = try BridgeBinary.run(["migrate", "--database-url", url, "--dir", migrations])
            #expect(r.status == 0, "\(r.stderr)")
        }
        try await LeaseFixture.exec(url, "INSERT INTO workspaces (name, user_id) VALUES ('w', gen_random_uuid())")
        let mappings = try LeaseFixture.noopMappings()

        let w = try BackgroundBridge(["exec", "--offline", "--watch", "--lease", "5", "--concurrency", "2",
                                      "--database-url", url, "--mappings", mappings])
        try await Task.sleep(for: .seconds(1))
        // With NOTIFY, a new task is picked up at once (the backstop poll is 20 s).
        try await LeaseFixture.insertTasks(url, 3, prefix: "before")
        #expect(try await LeaseFixture.waitUntil(timeout: 10) { try await LeaseFixture.count(url, "status = 'completed'") == 3 })

        // Restart PostgreSQL under the worker.
        let restart = try LeaseFixture.shell(". \"$0\" && PG_BIN=$(pg_find_bin) && pg_run_as \"$PG_BIN/pg_ctl\" -D \"$1/data\" -m fast -w restart",
                                             [lib, dir])
        try #require(restart.status == 0, "\(restart.output)")
        #expect(try await LeaseFixture.waitUntil(timeout: 30) {
            try await LeaseFixture.insertTasks(url, 3, prefix: "after")
            return true
        })
        #expect(try await LeaseFixture.waitUntil(timeout: 30) { try await LeaseFixture.count(url, "status = 'completed'") == 6 },
                "\(w.output.suffix(3000))")
        #expect(w.output.contains("listener"), "\(w.output.suffix(3000))")

        w.send(SIGTERM)
        let r = await w.wait(timeout: 30)
        #expect(r?.status == 0, "\(w.output.suffix(2000))")
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 6)
    }

    @Test(.timeLimit(.minutes(3)))
    func leaseIngestOutageThenRecoveryDeliversEverything() async throws {
        let url = try await LeaseFixture.database()
        let mappings = try LeaseFixture.noopMappings()
        try await LeaseFixture.insertTasks(url, 40)
        let (state, server, env) = try IngestState.standIn()
        defer { server.stop() }
        let args = ["exec", "--offline", "--concurrency", "4", "--flush-timeout", "1", "--database-url", url, "--mappings", mappings]
        // Two workers run everything while the endpoint is down: the tasks complete, the spans wait in the ledger.
        let workerEnv = env
        async let a = Task.detached { try Subprocess.run(BridgeBinary.path, args, environment: workerEnv) }.value
        async let b = Task.detached { try Subprocess.run(BridgeBinary.path, args, environment: workerEnv) }.value
        let (ra, rb) = try await (a, b)
        #expect(ra.status == 0 && rb.status == 0, "\(ra.stderr.suffix(1500))\n\(rb.stderr.suffix(1500))")
        #expect((ra.stderr + rb.stderr).contains("bridge export"))
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 40)
        let spans = try await LeaseFixture.count(url, "true", table: "bridge.spans")
        #expect(spans == 160)
        #expect(try await LeaseFixture.count(url, "exporter = 'openai' AND status = 'delivered'", table: "bridge.span_deliveries") < spans)

        // The endpoint comes back; `bridge export` delivers everything, each span once.
        state.isUp = true
        let export = try Subprocess.run(BridgeBinary.path, ["export", "--timeout", "60", "--database-url", url], environment: env)
        #expect(export.status == 0, "\(export.stdout)\n\(export.stderr)")
        #expect(try await LeaseFixture.count(url, "exporter = 'openai' AND status = 'delivered'", table: "bridge.span_deliveries") == spans)
        let received = state.spanIds
        #expect(received.count == spans)
        #expect(Set(received).count == spans)
        #expect(state.traceIds.count == 40)
    }
}

extension LeaseCLITests {
    @Test(.timeLimit(.minutes(3)))
    func killedWhileIngestIsDownThenExportLosesNothing() async throws {
        let url = try await LeaseFixture.database()
        let mappings = try LeaseFixture.noopMappings()
        try await LeaseFixture.insertTasks(url, 30)
        let (state, server, env) = try IngestState.standIn()
        defer { server.stop() }
        let args = ["exec", "--offline", "--offline-latency-ms", "500", "--concurrency", "2", "--lease", "2",
                    "--database-url", url, "--mappings", mappings]
        // bridge dies (SIGKILL) mid-run while the ingest endpoint is down.
        let worker = try BackgroundBridge(args, environment: env)
        #expect(try await LeaseFixture.waitUntil(timeout: 60) { try await LeaseFixture.count(url, "status = 'completed'") >= 2 })
        worker.send(SIGKILL)
        _ = await worker.wait(timeout: 10)
        #expect(try await LeaseFixture.count(url, "status = 'completed'") < 30)
        #expect(state.spanIds.isEmpty)

        // The endpoint is back: `bridge export` sends what the dead process left in the ledger,
        // then a new exec finishes the tasks (after their leases expire) and exports the rest.
        state.isUp = true
        let export = try Subprocess.run(BridgeBinary.path, ["export", "--timeout", "60", "--database-url", url], environment: env)
        #expect(export.status == 0, "\(export.stdout)\n\(export.stderr)")
        let rest = try Subprocess.run(BridgeBinary.path, args, environment: env)
        #expect(rest.status == 0, "\(rest.stderr.suffix(2000))")
        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: 30)
        let ended = try await LeaseFixture.count(url, "ended_at IS NOT NULL", table: "bridge.spans")
        #expect(try await LeaseFixture.count(url, "exporter = 'openai' AND status = 'delivered'", table: "bridge.span_deliveries") == ended)
        let received = state.spanIds
        #expect(Set(received).count == ended)
        #expect(received.count == ended, "a span was sent twice")
    }
}

/// What the ingest stand-in received, and whether it is up.
final class IngestState: @unchecked Sendable {
    /// A loopback `/v1/traces/ingest` that answers 503 until `isUp`, and the environment that
    /// points bridge's `openai` exporter at it.
    static func standIn() throws -> (IngestState, TestHTTPServer, [String: String]) {
        let state = IngestState()
        let server = try TestHTTPServer { request in
            guard request.path == "/v1/traces/ingest" else { return .json(["error": ["message": "no"]], status: 404) }
            guard state.isUp else { return .json(["error": ["message": "ingest unavailable"]], status: 503) }
            state.record(request.json?["data"]?.arrayValue ?? [])
            return .json([:])
        }
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = nil
        env["OPENAI_BASE_URL"] = server.url("/v1")
        env["OPENAI_API_KEY"] = "sk-ingest-test"
        env["OPENAI_AGENTS_DISABLE_TRACING"] = nil
        return (state, server, env)
    }

    // @unchecked Sendable: every field is guarded by `lock`.
    private let lock = NSLock()
    private var up = false
    private var spans: [String] = []
    private var traces: Set<String> = []

    var isUp: Bool {
        get { lock.withLock { up } }
        set { lock.withLock { up = newValue } }
    }
    var spanIds: [String] { lock.withLock { spans } }
    var traceIds: Set<String> { lock.withLock { traces } }

    func record(_ items: [JSONValue]) {
        lock.withLock {
            for item in items {
                switch item["object"]?.stringValue {
                case "trace.span": spans.append(item["id"]?.stringValue ?? "")
                case "trace": traces.insert(item["id"]?.stringValue ?? "")
                default: break
                }
            }
        }
    }
}
