import BridgeCore
import BridgeMigrate
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

/// Helpers for the migrate integration tests.
enum MigrateFixture {
    static var shippedDir: String { TestDatabase.projectRoot.appendingPathComponent("migrations").path }
    /// The shipped migration files, in order (later issues add files; tests must not care how many).
    static var shipped: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: shippedDir)) ?? []).filter { $0.hasSuffix(".sql") }
            .sorted()
    }

    static func options(_ url: String, dir: String = shippedDir, lockTimeoutMS: Int = 3000) -> MigrateOptions {
        var o = MigrateOptions(connection: ConnectionConfig(conninfo: url))
        o.directory = dir
        o.lockTimeoutMS = lockTimeoutMS
        o.lockWaitSeconds = 60
        return o
    }

    /// A temporary copy of migrations/.
    static func copyOfMigrations() throws -> String {
        let dir = try TemporaryPath.directory("bridge-mig").path
        for name in try FileManager.default.contentsOfDirectory(atPath: shippedDir) {
            try FileManager.default.copyItem(atPath: shippedDir + "/" + name, toPath: dir + "/" + name)
        }
        return dir
    }

    /// `up()` of the migrations in `dir` on `url`.
    @discardableResult
    static func up(_ url: String, dir: String) async throws -> UpReport {
        try await Migrator(options: options(url, dir: dir)).up()
    }

    /// A new reference database (`seed`ed or not) with a copy of migrations/ applied; the copy,
    /// for a test to add files to.
    static func migratedCopy(seed: Bool) async throws -> (url: String, dir: String) {
        let url = try await TestDatabase.createReference(seed: seed)
        let dir = try copyOfMigrations()
        try await up(url, dir: dir)
        return (url, dir)
    }

    /// `up()` of the migrations in `dir` on `url`, expected to fail: its error (nil, and an issue
    /// recorded, when it succeeds).
    static func failingUp(_ url: String, dir: String, sourceLocation: SourceLocation = #_sourceLocation) async
        -> MigrateError?
    {
        await #expect(throws: MigrateError.self, sourceLocation: sourceLocation) {
            try await Migrator(options: options(url, dir: dir)).up()
        }
    }

    static func write(_ dir: String, _ name: String, _ text: String) throws {
        try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8)
    }

    /// Every relation, column, index (with validity) and constraint outside the system schemas.
    static func catalogSnapshot(_ url: String) async throws -> [String] {
        let c = try await TestDatabase.connect(url)
        defer { Task { await c.close() } }
        var out: [String] = []
        for r in try await c.query(
            """
            SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text AS x FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
            UNION ALL SELECT table_schema || '.' || table_name || '.' || column_name || ' ' || data_type FROM information_schema.columns
            WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
            UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
            UNION ALL SELECT indexrelid::regclass::text || ' valid=' || indisvalid FROM pg_index
            UNION ALL SELECT conname || ' ' || contype::text FROM pg_constraint
            ORDER BY 1
            """)
        { out.append(r["x"] ?? "") }
        return out
    }

    static func scalar(_ url: String, _ sql: String) async throws -> String? {
        let c = try await TestDatabase.connect(url)
        let v = try await c.simpleQuery(sql).first?.values.first ?? nil
        await c.close()
        return v
    }
}

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct MigrateReferenceTests {
    @Test func planChangesNothingThenConcurrentUpsApplyOnce() async throws {
        let url = try await TestDatabase.createReference(seed: true)
        let before = try await MigrateFixture.catalogSnapshot(url)
        let plan = try await Migrator(options: MigrateFixture.options(url)).plan()
        #expect(plan.files.map(\.file) == MigrateFixture.shipped)
        #expect(
            plan.files.map(\.file).prefix(3) == [
                "0001_bridge_schema.sql", "0002_trace_columns.sql", "0003_trace_indexes.sql",
            ])
        #expect(plan.refusal == nil)
        #expect(plan.files[2].transaction == false)
        #expect(plan.files[1].statements.allSatisfy { $0.effect == .metadataOnly })
        #expect(plan.text.contains("BEGIN") && plan.text.contains("COMMIT") && plan.text.contains("lock_timeout"))
        #expect(try await MigrateFixture.catalogSnapshot(url) == before)
        let status = try await Migrator(options: MigrateFixture.options(url)).status()
        #expect(status.exitStatus == .pending)
        #expect(try await MigrateFixture.catalogSnapshot(url) == before)

        // Two runs started at the same moment: both succeed, each file is applied once.
        async let a = Migrator(options: MigrateFixture.options(url)).up()
        async let b = Migrator(options: MigrateFixture.options(url)).up()
        let (ra, rb) = try await (a, b)
        #expect(ra.applied.count + rb.applied.count == MigrateFixture.shipped.count)
        #expect(ra.applied.isEmpty || rb.applied.isEmpty)
        #expect(
            try await MigrateFixture.scalar(
                url, "SELECT count(*) FROM bridge.schema_migrations WHERE status = 'applied'")
                == "\(MigrateFixture.shipped.count)")

        let again = try await Migrator(options: MigrateFixture.options(url)).up()
        #expect(again.upToDate && again.applied.isEmpty)
        #expect(try await Migrator(options: MigrateFixture.options(url)).status().exitStatus == .ok)

        #expect(
            try await MigrateFixture.scalar(
                url,
                """
                SELECT count(*) FROM information_schema.columns
                WHERE column_name = 'openai_trace_id' AND table_name IN ('tasks', 'task_executions')
                """) == "2")
        #expect(
            try await MigrateFixture.scalar(
                url,
                """
                SELECT count(*) FROM information_schema.tables
                WHERE table_schema = 'bridge' AND table_name IN ('run_transcripts', 'schema_migrations', 'spans', 'traces')
                """) == "4")
        #expect(try await MigrateFixture.scalar(url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == "0")
        #expect(
            try await MigrateFixture.scalar(
                url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'idx_tasks_openai_trace_id'") == "1")
    }

    /// A history row changed by hand so that a NOT NULL column is NULL is an error naming the
    /// column and the table, never a row read with an empty value.
    @Test func aHistoryRowThatDoesNotReadNamesItsColumn() async throws {
        let url = try await TestDatabase.create()
        let dir = try TemporaryPath.directory("bridge-mig").path
        try "CREATE TABLE a (x int);\n".write(toFile: dir + "/0001_a.sql", atomically: true, encoding: .utf8)
        try await MigrateFixture.up(url, dir: dir)
        try await TestDatabase.execute(
            url,
            """
            ALTER TABLE bridge.schema_migrations ALTER COLUMN applied_by DROP NOT NULL;
            UPDATE bridge.schema_migrations SET applied_by = NULL
            """)
        let error = await #expect(throws: MigrateError.self) {
            try await Migrator(options: MigrateFixture.options(url, dir: dir)).status()
        }
        guard case .historyRow(let e) = error else {
            Issue.record("expected a history row error, got \(String(describing: error))")
            return
        }
        #expect(e.description.hasPrefix(#"column "applied_by" of bridge.schema_migrations: expected String, got NULL"#))
        #expect(error?.exitStatus == .badInput)
    }

    @Test func brokenFileLeavesNoTrace() async throws {
        let (url, dir) = try await MigrateFixture.migratedCopy(seed: true)
        try MigrateFixture.write(
            dir, "0900_broken.sql",
            """
            ALTER TABLE tasks ADD COLUMN half_done text;
            CREATE TABLE bridge.partial (id int);

            SELECT no_such_column FROM tasks;
            """)
        let before = try await MigrateFixture.catalogSnapshot(url)
        let error = try #require(await MigrateFixture.failingUp(url, dir: dir))
        #expect(error.exitStatus == .failed)
        #expect(error.description.contains("0900_broken.sql:4"))
        #expect(error.description.contains("42703"))
        #expect(error.description.contains("no_such_column"))
        #expect(try await MigrateFixture.catalogSnapshot(url) == before)
        #expect(
            try await MigrateFixture.scalar(url, "SELECT count(*) FROM bridge.schema_migrations")
                == "\(MigrateFixture.shipped.count)")
        #expect(try await Migrator(options: MigrateFixture.options(url, dir: dir)).status().exitStatus == .pending)
    }

    @Test func concurrentIndexRebuildsInvalidIndex() async throws {
        let (url, dir) = try await MigrateFixture.migratedCopy(seed: true)
        // A failed concurrent build leaves an INVALID index behind.
        let c = try await TestDatabase.connect(url)
        await #expect(throws: PostgresError.self) {
            try await c.simpleQuery("CREATE UNIQUE INDEX CONCURRENTLY idx_tasks_status2 ON tasks (status)")
        }
        await c.close()
        #expect(try await MigrateFixture.scalar(url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == "1")
        try MigrateFixture.write(
            dir, "0900_status_index.sql",
            """
            CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_status2 ON tasks (status, priority);
            """)
        let r = try await MigrateFixture.up(url, dir: dir)
        #expect(r.applied.map(\.file) == ["0900_status_index.sql"])
        #expect(r.applied[0].transactional == false)
        #expect(try await MigrateFixture.scalar(url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == "0")
        #expect(
            try await MigrateFixture.scalar(
                url, "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_tasks_status2'")?
                .contains("priority") == true)
    }

    @Test func failedNonTransactionalRunResumes() async throws {
        let (url, dir) = try await MigrateFixture.migratedCopy(seed: false)
        try MigrateFixture.write(
            dir, "0900_two_indexes.sql",
            """
            -- bridge:no-transaction
            CREATE INDEX CONCURRENTLY idx_one ON tasks (name);
            CREATE INDEX CONCURRENTLY idx_two ON tasks ((later_x + 1));
            """)
        let error = try #require(await MigrateFixture.failingUp(url, dir: dir))
        #expect(error.description.contains("0900_two_indexes.sql:3"))
        #expect(error.description.contains("1 of 2 statements completed"))
        let status = try await Migrator(options: MigrateFixture.options(url, dir: dir)).status()
        #expect(status.exitStatus == .failed)
        #expect(status.files.last?.state == .failed)
        #expect(status.files.last?.history?.statementsDone == 1)
        // Fix the cause; the re-run resumes at statement 2 (statement 1 has no IF NOT EXISTS).
        _ = try await MigrateFixture.scalar(url, "ALTER TABLE tasks ADD COLUMN later_x int")
        let r = try await MigrateFixture.up(url, dir: dir)
        #expect(r.applied.first?.resumedAtStatement == 2)
        #expect(try await Migrator(options: MigrateFixture.options(url, dir: dir)).status().exitStatus == .ok)
    }

    @Test func driftIsRefusedAndRepairAcceptsIt() async throws {
        let (url, dir) = try await MigrateFixture.migratedCopy(seed: false)
        let path = dir + "/0002_trace_columns.sql"
        try (String(contentsOfFile: path, encoding: .utf8) + "\n-- edited\n").write(
            toFile: path, atomically: true, encoding: .utf8)
        try MigrateFixture.write(dir, "0900_more.sql", "CREATE TABLE bridge.more (id int);")
        let error = try #require(await MigrateFixture.failingUp(url, dir: dir))
        #expect(error == .drift(["0002_trace_columns.sql"]))
        #expect(error.exitStatus == .failed)
        #expect(error.description.contains("0002_trace_columns.sql"))
        #expect(try await MigrateFixture.scalar(url, "SELECT to_regclass('bridge.more') IS NULL") == "t")
        #expect(try await Migrator(options: MigrateFixture.options(url, dir: dir)).status().exitStatus == .failed)
        let repair = try await Migrator(options: MigrateFixture.options(url, dir: dir)).repair()
        #expect(repair.changes.count == 1 && repair.changes[0].contains("0002_trace_columns.sql"))
        let r = try await MigrateFixture.up(url, dir: dir)
        #expect(r.applied.map(\.file) == ["0900_more.sql"])
    }

    @Test func baselineRecordsWithoutRunning() async throws {
        let url = try await TestDatabase.createReference(seed: false)
        let dir = try MigrateFixture.copyOfMigrations()
        // The database already has 0001's changes, made by hand; a marker row shows 0001 is not re-run.
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery(try String(contentsOfFile: dir + "/0001_bridge_schema.sql", encoding: .utf8))
        try await c.simpleQuery(
            "INSERT INTO bridge.traces (trace_id, workflow_name) VALUES ('trace_marker', 'by hand')")
        await c.close()
        let b = try await Migrator(options: MigrateFixture.options(url, dir: dir)).baseline(version: 1)
        #expect(b.recorded == ["0001_bridge_schema.sql"])
        #expect(
            try await MigrateFixture.scalar(url, "SELECT status FROM bridge.schema_migrations WHERE version = 1")
                == "baseline")
        let status = try await Migrator(options: MigrateFixture.options(url, dir: dir)).status()
        #expect(
            status.files.map(\.state) == [.baseline]
                + Array(repeating: .pending, count: MigrateFixture.shipped.count - 1))
        let r = try await MigrateFixture.up(url, dir: dir)
        #expect(r.applied.map(\.file) == Array(MigrateFixture.shipped.dropFirst()))
        #expect(
            try await MigrateFixture.scalar(url, "SELECT count(*) FROM bridge.traces WHERE trace_id = 'trace_marker'")
                == "1")
        await #expect(throws: MigrateError.self) {
            try await Migrator(options: MigrateFixture.options(url, dir: dir)).baseline(version: 99)
        }
    }

    @Test func outOfOrderIsRefusedUnlessAllowed() async throws {
        let (url, dir) = try await MigrateFixture.migratedCopy(seed: false)
        try MigrateFixture.write(dir, "0000_early.sql", "CREATE TABLE bridge.early (id int);")
        let error = try #require(await MigrateFixture.failingUp(url, dir: dir))
        #expect(error == .outOfOrder(files: ["0000_early.sql"], newestApplied: MigrateFixture.shipped.last!))
        var options = MigrateFixture.options(url, dir: dir)
        options.allowOutOfOrder = true
        #expect(try await Migrator(options: options).up().applied.map(\.file) == ["0000_early.sql"])
    }

    /// Another folder's applied files do not order this one: migrations/optional can be applied
    /// after main migrations with newer versions, and the other way round.
    @Test func anotherFoldersNewerFilesDoNotMakeThisOneOutOfOrder() async throws {
        let (url, dir) = try await MigrateFixture.migratedCopy(seed: false)
        let other = try TemporaryPath.directory("bridge-other").path
        try MigrateFixture.write(other, "0006_early.sql", "CREATE TABLE bridge.early (id int);")
        #expect(
            try await MigrateFixture.up(url, dir: other).applied.map(\.file) == [
                "0006_early.sql"
            ])
    }

    @Test func lintErrorsStopUp() async throws {
        let url = try await TestDatabase.createReference(seed: false)
        let dir = try MigrateFixture.copyOfMigrations()
        try MigrateFixture.write(dir, "0900_bad.sql", "CREATE INDEX idx_bad ON tasks (name);")
        let error = try #require(await MigrateFixture.failingUp(url, dir: dir))
        #expect(error.description.contains("0900_bad.sql:1"))
        #expect(error.description.contains("index-not-concurrent"))
        // Nothing ran, not even the earlier files.
        #expect(try await MigrateFixture.scalar(url, "SELECT count(*) FROM bridge.schema_migrations") == "0")
        let plan = try await Migrator(options: MigrateFixture.options(url, dir: dir)).plan()
        #expect(plan.refusal != nil)
    }

    @Test func unknownPlaceholderFailsBeforeConnecting() async throws {
        let dir = try MigrateFixture.copyOfMigrations()
        try MigrateFixture.write(dir, "0900_p.sql", "SELECT 1;\nALTER TABLE ${nope} ADD COLUMN x text;")
        let error = try #require(await MigrateFixture.failingUp("postgres://nobody@127.0.0.1:1/x", dir: dir))
        #expect(error.exitStatus == .badInput)
        #expect(error.description.contains("0900_p.sql:2"))
    }

    /// A long report holds ACCESS SHARE on tasks; migrate's ALTER TABLE queues for ACCESS
    /// EXCLUSIVE. lock_timeout makes it give up and retry, so readers are never stalled long.
    @Test func readersAreNotStalledBehindAQueuedMigration() async throws {
        let url = try await TestDatabase.createReference(seed: true)
        let report = try await TestDatabase.connect(url)
        try await report.simpleQuery("BEGIN; LOCK TABLE tasks IN ACCESS SHARE MODE")
        let clock = ContinuousClock()
        let migrationDone = Collected<String>()  // non-empty once migrate has returned
        // Each read's stall is measured by the server (from the statement's arrival to its
        // result, lock wait included), so the time this test process waits for a thread of
        // its busy cooperative pool, which says nothing about the lock, does not count.
        let reader = Task { () -> Duration in
            let c = try await TestDatabase.connect(url)
            var worst = Duration.zero
            let end = clock.now + .seconds(120)
            while clock.now < end && migrationDone.values.isEmpty {
                let read = try await c.query(
                    """
                    SELECT count(*) AS n, extract(epoch FROM clock_timestamp() - statement_timestamp())::float8 AS took FROM tasks
                    """)
                worst = max(worst, .seconds(read.first?.double("took") ?? 1e6))  // no answer: fails the bound
                try await Task.sleep(for: .milliseconds(50))
            }
            await c.close()
            return worst
        }
        let log = Collected<String>()
        var options = MigrateFixture.options(url)
        options.log = { log.append($0) }
        let migrate = Task { [options] in try await Migrator(options: options).up() }
        // Hold the report until migrate has queued behind it and given up twice (on a loaded
        // machine migrate may take a while to get there).
        // Twice: the first give-up, and one more after its retry queued again.
        var giveUps = 0
        for _ in 0..<1_200 where giveUps < 2 {
            giveUps = log.values.filter { $0.contains("lock timeout (SQLSTATE 55P03)") }.count
            if giveUps < 2 { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(giveUps >= 2, "migrate did not queue behind the report's lock twice: \(log.values)")
        try await report.simpleQuery("COMMIT")
        await report.close()
        let result = try await migrate.value
        migrationDone.append("done")
        let worst = try await reader.value
        #expect(result.applied.count == MigrateFixture.shipped.count)
        // The issue's bound: never stalled for more than a few seconds (lock_timeout tops out at 3 s).
        #expect(worst < .seconds(5), "reader waited \(worst)")
        #expect(log.values.contains { $0.contains("lock timeout (SQLSTATE 55P03)") }, "\(log.values)")
        #expect(try await MigrateFixture.scalar(url, "SELECT count(*) FROM pg_index WHERE NOT indisvalid") == "0")
    }
}
