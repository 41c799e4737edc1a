// `bridge migrate` (up, status, plan, baseline, repair): one sequence whose steps share the
// advisory lock and the history they re-read under it.
import BridgeCore
import BridgePostgres
import FoundationEssentials

/// Settings for one `bridge migrate` run.
public struct MigrateOptions: Sendable {
    /// The migrations folder (`--dir`, default `migrations`).
    public var directory: String = "migrations"
    /// Where to connect.
    public var connection: ConnectionConfig
    /// `lock_timeout` for every statement, in milliseconds (`--lock-timeout`, default 3 s).
    /// Transactional files start lower (`initialLockTimeoutMS`) and double on each retry up to
    /// this ceiling, so a queued ACCESS EXCLUSIVE request on a busy table holds the
    /// application's queries up for tens of milliseconds, not seconds.
    public var lockTimeoutMS: Int = 3000
    /// The first attempt's `lock_timeout` for a transactional file, in milliseconds (default 50).
    public var initialLockTimeoutMS: Int = 50
    /// How long to wait for another run's migration lock, in seconds (`--lock-wait`, default 60).
    public var lockWaitSeconds: Double = 60
    /// Retries of a file (or a single non-transactional statement) after a lock timeout or deadlock.
    public var lockRetries: Int = 10
    /// `--set name=value` overrides of the placeholder defaults.
    public var placeholders: [String: String] = [:]
    /// Run pending files older than the newest applied one.
    public var allowOutOfOrder = false
    /// Run files despite lint errors.
    public var allowLint = false
    /// Progress messages (lock waits, retries, applied files); the CLI prints them to stderr.
    public var log: @Sendable (String) -> Void = { _ in }

    public init(connection: ConnectionConfig) { self.connection = connection }

    /// Parses a duration such as `3s`, `500ms`, `1min` or a bare number of seconds
    /// (`Duration(parsing:)`) into milliseconds.
    public static func parseDuration(_ text: String) throws(MigrateError) -> Int {
        guard let d = Duration(parsing: text) else {
            throw .badOption("bad duration \(text); use e.g. 3s, 500ms or 1min")
        }
        return Int((d.inSeconds * 1000).rounded())
    }
}

/// Runs `bridge migrate`: up, status, plan, baseline and repair.
///
/// `up` takes a session advisory lock with `pg_try_advisory_lock`, polled with jittered
/// backoff (never a blocking wait, which deadlocks with concurrent index builds), re-reads the
/// history under the lock, and applies each pending file: a transactional file in one
/// transaction together with its history row; a non-transactional file statement by
/// statement, recording progress so a re-run resumes safely.
public struct Migrator: Sendable {
    /// The fixed advisory lock key ("BRDGMIGR").
    public static let lockKey = AdvisoryLockKey(rawValue: 0x4252_4447_4D49_4752)

    public var options: MigrateOptions

    public init(options: MigrateOptions) { self.options = options }

    // MARK: - Common steps

    func loadFiles() throws(MigrateError) -> [MigrationFile] {
        try MigrationFile.load(
            directory: options.directory, placeholders: Placeholders(overrides: options.placeholders))
    }

    func connect(readOnly: Bool) async throws(MigrateError) -> PostgresConnection {
        var config = options.connection
        config.applicationName = "bridge-migrate"
        var settings = [("lock_timeout", "\(options.lockTimeoutMS)ms"), ("client_min_messages", "warning")]
        if readOnly { settings.append(("default_transaction_read_only", "on")) }
        config.sessionSettings = settings + config.sessionSettings
        if let port = Self.port(of: config.conninfo, environment: .process), port == 6543 {
            throw .pooler("port 6543 is Supabase's transaction-mode pooler")
        }
        let conn: PostgresConnection
        do { conn = try await PostgresConnection.connect(config) } catch { throw .database(error) }
        do {
            let a = try await conn.query("SELECT pg_backend_pid() AS pid").first?.int("pid")
            let b = try await conn.query("SELECT pg_backend_pid() AS pid").first?.int("pid")
            if a != b {
                await conn.close()
                throw MigrateError.pooler(
                    "two consecutive statements ran on different backends (pid \(a ?? 0), then \(b ?? 0)), "
                        + "so the connection goes through a transaction-mode pooler")
            }
        } catch let e as MigrateError {
            throw e
        } catch {
            await conn.close()
            throw .database(error as! PostgresError)
        }
        return conn
    }

    /// The port a connection string names (URL or key/value form), else `PGPORT`.
    public static func port(of conninfo: String, environment: Environment) -> Int? {
        if conninfo.contains("://") {
            if let c = URLComponents(string: conninfo), let p = c.port { return p }
            if let c = URLComponents(string: conninfo), let q = c.queryItems?.first(where: { $0.name == "port" }) {
                return q.value.flatMap { Int($0) }
            }
        } else if let r = conninfo.range(of: #"(^|\s)port\s*=\s*'?(\d+)"#, options: .regularExpression) {
            return Int(conninfo[r].filter(\.isNumber))
        }
        return environment["PGPORT"].flatMap { Int($0) }
    }

    func acquireLock(_ conn: PostgresConnection) async throws(MigrateError) {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(options.lockWaitSeconds * 1000))
        var polls = 0
        var holder: Int?
        var reported = false
        while true {
            do {
                if try await AdvisoryLock.tryLock(Self.lockKey, on: conn) {
                    if reported { options.log("got the migration lock") }
                    return
                }
                if !reported {
                    holder = try await AdvisoryLock.holder(of: Self.lockKey, on: conn)
                    options.log(
                        "waiting for the migration lock held by backend pid \(holder.map(String.init) ?? "(unknown)")")
                    reported = true
                }
            } catch { throw .database(error) }
            if clock.now >= deadline { throw .lockWaitTimeout(seconds: options.lockWaitSeconds, holder: holder) }
            polls += 1
            try? await Task.sleep(
                for: RetryBackoff.delay(
                    attempt: polls, base: .milliseconds(50), cap: .seconds(1),
                    jitter: 0.5...1.5))
        }
    }

    func releaseLock(_ conn: PostgresConnection) async {
        _ = try? await AdvisoryLock.unlock(Self.lockKey, on: conn)
    }

    /// The `lock_timeout` of attempt `attempt` (0-based) of a transactional file: `initial`
    /// doubled per retry, capped at `ceiling`.
    static func lockTimeout(attempt: Int, initial: Int, ceiling: Int) -> Int {
        guard initial > 0, initial < ceiling else { return ceiling }
        return min(ceiling, initial << min(attempt, 20))
    }

    /// Jittered exponential backoff for lock-conflict retries: 0.2 s, 0.4 s, … up to 5 s, ±50 %.
    static func backoff(_ attempt: Int) -> Duration {
        RetryBackoff.delay(attempt: attempt + 1, base: .milliseconds(200), cap: .seconds(5), jitter: 0.5...1.5)
    }

    /// Reads what the live catalog knows about the tables and functions the files use.
    func catalog(_ conn: PostgresConnection, files: [MigrationFile]) async throws(MigrateError) -> CatalogSnapshot {
        var snapshot = CatalogSnapshot(serverVersion: await conn.serverVersion)
        do {
            for name in Linter.referencedTables(files) {
                let rows = try? await conn.query(
                    """
                    SELECT n.nspname || '.' || c.relname AS qn, c.reltuples::float8 AS est, pg_total_relation_size(c.oid) AS bytes
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.oid = to_regclass(\(name.regclassText)) AND c.relkind IN ('r', 'p', 'm')
                    """)
                if let r = rows?.first {
                    let columns = try? await conn.query(
                        """
                        SELECT attname::text AS a, format_type(atttypid, atttypmod) AS t FROM pg_attribute
                        WHERE attrelid = to_regclass(\(name.regclassText)) AND attnum > 0 AND NOT attisdropped
                        """)
                    snapshot.tables[name.key] = CatalogSnapshot.Table(
                        qualifiedName: r["qn"] ?? name.key,
                        estimatedRows: r.double("est") ?? -1, totalBytes: Int64(r["bytes"] ?? "0") ?? 0,
                        columnTypes: columns.map {
                            Dictionary(
                                $0.compactMap { row in row["a"].map { ($0, row["t"] ?? "") } },
                                uniquingKeysWith: { a, _ in a })
                        })
                }
            }
            var volatile = CatalogSnapshot.knownVolatileFunctions
            for fn in Linter.referencedFunctions(files).sorted().prefix(200) {
                let v = try await conn.query(
                    "SELECT bool_or(provolatile = 'v') AS v FROM pg_proc WHERE proname = \(fn)"
                ).first?.bool("v")
                if v == true { volatile.insert(fn) }
            }
            snapshot.volatileFunctions = volatile
        } catch { throw .database(error) }
        return snapshot
    }

    /// Splits the folder into work to do, refusing on drift, changed failed runs and
    /// (unless allowed) out-of-order files.
    func selectPending(files: [MigrationFile], history: [HistoryRow]) throws(MigrateError) -> [(
        MigrationFile, resumeAt: Int
    )] {
        let states = FileState.compare(files: files, history: history)
        let drifted = states.filter { $0.state == .drifted }.map(\.file)
        if !drifted.isEmpty { throw .drift(drifted) }
        var pending: [(MigrationFile, Int)] = []
        for f in files {
            guard let s = states.first(where: { $0.version == f.version }) else { continue }
            switch s.state {
            case .pending: pending.append((f, 0))
            case .failed:
                guard let h = s.history, h.checksum == f.checksum else { throw .failedRunChanged(f.fileName) }
                pending.append((f, f.runsWithoutTransaction ? min(h.statementsDone, f.statements.count) : 0))
            default: break
            }
        }
        // Order is checked within this folder: files applied from another folder (`.missing`
        // here, e.g. migrations/optional applied after newer main files) do not order it.
        let newest = states.filter { [.applied, .baseline, .drifted].contains($0.state) }.max {
            $0.version < $1.version
        }
        if let newest, !options.allowOutOfOrder {
            let old = pending.filter { p in
                p.0.version < newest.version && !history.contains { $0.version == p.0.version }
            }
            if !old.isEmpty { throw .outOfOrder(files: old.map(\.0.fileName), newestApplied: newest.file) }
        }
        return pending
    }

    // MARK: - up

    /// Applies every pending file. A second run that waited for the lock finds nothing to do.
    public func up() async throws(MigrateError) -> UpReport {
        let files = try loadFiles()
        return try await withMigrationLock { conn throws(MigrateError) in try await upLocked(conn, files: files) }
    }

    private func upLocked(_ conn: PostgresConnection, files: [MigrationFile]) async throws(MigrateError) -> UpReport {
        do { try await History.ensure(conn) } catch { throw .database(error) }
        let history = try await History.read(conn)
        let pending = try selectPending(files: files, history: history)
        var report = UpReport(applied: [], upToDate: pending.isEmpty)
        if pending.isEmpty {
            options.log("nothing to do: \(files.count) migration(s) already applied")
            return report
        }
        // Lint against the live catalog before anything runs.
        let snapshot = try await catalog(conn, files: pending.map(\.0))
        var linter = Linter(catalog: snapshot)
        var blocking: [LintFinding] = []
        for (f, _) in pending { blocking += linter.analyze(f).flatMap(\.findings).filter(\.blocks) }
        if !blocking.isEmpty {
            if options.allowLint {
                options.log("lint errors allowed: running despite \(blocking.count) of them")
            } else {
                throw .lint(blocking)
            }
        }
        for (file, resumeAt) in pending {
            let started = ContinuousClock.now
            if file.runsWithoutTransaction {
                try await applyWithoutTransaction(conn, file: file, from: resumeAt)
            } else {
                try await applyInTransaction(conn, file: file)
            }
            let ms = Self.milliseconds(since: started)
            options.log(
                "applied \(file.fileName) (\(file.statements.count) statement(s), \(ms) ms"
                    + (file.runsWithoutTransaction ? ", no transaction" : "")
                    + (resumeAt > 0 ? ", resumed at statement \(resumeAt + 1)" : "") + ")")
            report.applied.append(
                UpReport.Applied(
                    file: file.fileName, version: file.version, statements: file.statements.count,
                    transactional: !file.runsWithoutTransaction, milliseconds: ms,
                    resumedAtStatement: resumeAt > 0 ? resumeAt + 1 : nil))
        }
        return report
    }

    static func pgError(_ error: any Error) -> PostgresError {
        error as? PostgresError ?? PostgresError(kind: .client, message: "\(error)")
    }

    /// After a lock timeout or a deadlock with retries left: logs it, sleeps the backoff and
    /// returns true (the caller tries again); otherwise returns false at once.
    private func waitToRetry(_ error: PostgresError, attempt: inout Int, at place: String, note: String) async -> Bool {
        guard error.isLockConflict, attempt < options.lockRetries else { return false }
        attempt += 1
        let wait = Self.backoff(attempt)
        options.log(
            "\(place): \(error.code == .deadlockDetected ? "deadlock" : "lock timeout") (SQLSTATE \(error.sqlState ?? ""))"
                + "\(note) retry \(attempt)/\(options.lockRetries) in \(wait)")
        try? await Task.sleep(for: wait)
        return true
    }

    static func milliseconds(since start: ContinuousClock.Instant) -> Int {
        Int(((ContinuousClock.now - start).inSeconds * 1000).rounded(.down))
    }

    private struct StatementFailure: Error {
        var index: Int
        var error: PostgresError
    }

    private func applyInTransaction(_ conn: PostgresConnection, file: MigrationFile) async throws(MigrateError) {
        var attempt = 0
        while true {
            let lockTimeout = Self.lockTimeout(
                attempt: attempt, initial: options.initialLockTimeoutMS,
                ceiling: options.lockTimeoutMS)
            do {
                try await conn.transaction { c in
                    let start = ContinuousClock.now
                    do { try c.simpleQuery("SET LOCAL lock_timeout = '\(lockTimeout)ms'") } catch {
                        throw StatementFailure(index: -1, error: Self.pgError(error))
                    }
                    for (i, s) in file.statements.enumerated() {
                        do { try c.simpleQuery(s.text) } catch {
                            throw StatementFailure(index: i, error: Self.pgError(error))
                        }
                    }
                    let ms = Self.milliseconds(since: start)
                    do {
                        try History.upsert(
                            c, file: file, status: .applied, executionMS: ms, done: file.statements.count, error: nil)
                    } catch { throw StatementFailure(index: -1, error: Self.pgError(error)) }
                }
                return
            } catch let failure as StatementFailure {
                if await waitToRetry(
                    failure.error, attempt: &attempt, at: file.fileName,
                    note: " after \(lockTimeout)ms; rolled back,")
                {
                    continue
                }
                if failure.index < 0 { throw .database(failure.error) }
                let s = file.statements[failure.index]
                throw .statementFailed(
                    file: file.fileName, line: s.line, statement: s.text, error: failure.error,
                    transactional: true, done: 0, total: file.statements.count)
            } catch let e as PostgresError {
                throw .database(e)
            } catch {
                throw .database(PostgresError(kind: .client, message: "\(error)"))
            }
        }
    }

    private func applyWithoutTransaction(_ conn: PostgresConnection, file: MigrationFile, from start: Int)
        async throws(MigrateError)
    {
        let total = file.statements.count
        let began = ContinuousClock.now
        for index in start..<total {
            let s = file.statements[index]
            let reason = s.nonTransactionalReason
            let slow =
                reason == "CREATE INDEX CONCURRENTLY" || reason == "REINDEX CONCURRENTLY"
                || reason == "DROP INDEX CONCURRENTLY"
                || reason == "VACUUM"
            var attempt = 0
            while true {
                do {
                    if reason == "CREATE INDEX CONCURRENTLY" {
                        try await dropInvalidIndex(conn, statement: s, file: file)
                    }
                    if slow { try await conn.set("statement_timeout", "0") }
                    try await conn.simpleQuery(s.text)
                    if slow { try await conn.simpleQuery("RESET statement_timeout") }
                    break
                } catch {
                    if slow { _ = try? await conn.simpleQuery("RESET statement_timeout") }
                    if await waitToRetry(error, attempt: &attempt, at: "\(file.fileName):\(s.line)", note: ";") {
                        continue
                    }
                    let text = "\(file.fileName):\(s.line): \(error.description)"
                    _ = try? await History.upsert(
                        conn, file: file, status: .failed, executionMS: Self.milliseconds(since: began), done: index,
                        error: text)
                    if error.kind != .server { throw .database(error) }
                    throw .statementFailed(
                        file: file.fileName, line: s.line, statement: s.text, error: error,
                        transactional: false, done: index, total: total)
                }
            }
            do {
                if index + 1 < total {
                    try await History.upsert(
                        conn, file: file, status: .failed, executionMS: Self.milliseconds(since: began),
                        done: index + 1,
                        error: "incomplete: stopped after statement \(index + 1) of \(total)")
                } else {
                    try await History.upsert(
                        conn, file: file, status: .applied, executionMS: Self.milliseconds(since: began), done: total,
                        error: nil)
                }
            } catch { throw .database(error) }
        }
        if start >= total {
            do {
                try await History.upsert(conn, file: file, status: .applied, executionMS: 0, done: total, error: nil)
            } catch {
                throw .database(error)
            }
        }
    }

    /// Before (re)building an index concurrently, drops an INVALID index of the same name that
    /// a failed or interrupted build left behind; `IF NOT EXISTS` would otherwise keep it.
    private func dropInvalidIndex(_ conn: PostgresConnection, statement: SQLStatement, file: MigrationFile)
        async throws(PostgresError)
    {
        guard let index = Self.indexName(statement) else { return }
        let row = try await conn.query(
            """
            SELECT n.nspname, c.relname FROM pg_index i
            JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT i.indisvalid AND c.oid = to_regclass(\(index.regclassText))
            """
        ).first
        guard let row, let schema = row["nspname"], let name = row["relname"] else { return }
        let qualified = PostgresQuery.quoteIdentifier(schema) + "." + PostgresQuery.quoteIdentifier(name)
        options.log(
            "\(file.fileName):\(statement.line): dropping invalid index \(schema).\(name) left by an earlier build")
        try await conn.set("statement_timeout", "0")
        do {
            try await conn.simpleQuery("DROP INDEX CONCURRENTLY IF EXISTS \(qualified)")
        } catch {
            _ = try? await conn.simpleQuery("RESET statement_timeout")
            throw error
        }
        try await conn.simpleQuery("RESET statement_timeout")
    }

    /// The index a `CREATE INDEX` statement names, qualified with its table's schema when the
    /// table is qualified and the index is not.
    static func indexName(_ statement: SQLStatement) -> TableName? {
        let t = statement.tokens
        let kw = t.keywords
        guard var i = kw.firstIndex(of: "INDEX") else { return nil }
        i += 1
        if i < kw.count, kw[i] == "CONCURRENTLY" { i += 1 }
        if i + 2 < kw.count, kw[i] == "IF", kw[i + 1] == "NOT", kw[i + 2] == "EXISTS" { i += 3 }
        guard i < kw.count, kw[i] != "ON", var (name, _) = Linter.qualifiedName(t, i) else { return nil }
        if name.parts.count == 1, let table = Linter.target(of: t)?.table, table.parts.count == 2 {
            name.parts.insert(table.parts[0], at: 0)
        }
        return name
    }

    // MARK: - status

    /// Compares the folder with history. Read-only: creates nothing.
    public func status() async throws(MigrateError) -> StatusReport {
        let files = try loadFiles()
        let conn = try await connect(readOnly: true)
        let history: [HistoryRow]
        do {
            history = try await History.readIfExists(conn) ?? []
        } catch {
            await conn.close()
            throw error
        }
        await conn.close()
        return StatusReport(files: FileState.compare(files: files, history: history))
    }

    // MARK: - plan

    /// Everything `up` would do, checked against the live catalog. Read-only: the session runs
    /// with `default_transaction_read_only` and creates nothing, not even the history table.
    public func plan() async throws(MigrateError) -> PlanReport {
        let files = try loadFiles()
        let conn = try await connect(readOnly: true)
        do {
            let report = try await planConnected(conn, files: files)
            await conn.close()
            return report
        } catch {
            await conn.close()
            throw error
        }
    }

    private func planConnected(_ conn: PostgresConnection, files: [MigrationFile]) async throws(MigrateError)
        -> PlanReport
    {
        let stored = try await History.readIfExists(conn)
        let exists = stored != nil
        let history = stored ?? []
        let versionText: String
        do {
            versionText = try await conn.query("SELECT current_setting('server_version') AS v").first?["v"] ?? "?"
        } catch { throw .database(error) }
        var report = PlanReport(
            server: "PostgreSQL \(versionText)", serverVersionNum: await conn.serverVersion,
            target: conn.redactedTarget, historyTableExists: exists,
            sessionSettings: [
                "application_name = 'bridge-migrate'", "lock_timeout = '\(options.lockTimeoutMS)ms'",
                "LOCAL lock_timeout = '\(Self.lockTimeout(attempt: 0, initial: options.initialLockTimeoutMS, ceiling: options.lockTimeoutMS))ms' in each file's transaction, doubling per retry up to \(options.lockTimeoutMS)ms",
            ],
            lock:
                "pg_try_advisory_lock(\(Self.lockKey)) polled for up to \(MigrateError.seconds(options.lockWaitSeconds))",
            files: [], refusal: nil)
        let pending: [(MigrationFile, resumeAt: Int)]
        do { pending = try selectPending(files: files, history: history) } catch {
            report.refusal = error.description
            return report
        }
        let snapshot = try await catalog(conn, files: pending.map(\.0))
        var linter = Linter(catalog: snapshot)
        var blocking = 0
        for (file, resumeAt) in pending {
            let analyses = linter.analyze(file)
            var planned = PlanReport.File(
                file: file.fileName, version: file.version, checksum: file.checksum,
                transaction: !file.runsWithoutTransaction, noTransactionReason: file.noTransactionReason,
                resumeAtStatement: resumeAt > 0 ? resumeAt + 1 : nil, statements: [], findings: [])
            for (i, (s, a)) in zip(file.statements, analyses).enumerated() where i >= resumeAt {
                var settings: [String] = []
                let reason = s.nonTransactionalReason
                if reason == "CREATE INDEX CONCURRENTLY" || reason == "REINDEX CONCURRENTLY"
                    || reason == "DROP INDEX CONCURRENTLY" || reason == "VACUUM"
                {
                    settings.append("SET statement_timeout = 0 (then RESET)")
                }
                if reason == "CREATE INDEX CONCURRENTLY" {
                    settings.append("drops an INVALID index of the same name first, if one exists")
                }
                planned.statements.append(
                    PlanReport.Statement(
                        line: s.line, sql: s.text, effect: a.effect, notes: a.notes,
                        settings: settings))
                planned.findings += a.findings
            }
            blocking += planned.findings.filter(\.blocks).count
            report.files.append(planned)
        }
        if blocking > 0, !options.allowLint {
            report.refusal = "up would refuse: \(blocking) lint error(s); fix them or allow them"
        }
        return report
    }

    // MARK: - baseline

    /// Records every file up to `version` as `baseline` without running it.
    public func baseline(version: Int64) async throws(MigrateError) -> BaselineReport {
        let files = try loadFiles()
        guard files.contains(where: { $0.version == version }) else {
            throw .baseline("no migration file has version \(version) in \(options.directory)")
        }
        return try await withMigrationLock { conn throws(MigrateError) in
            do throws(PostgresError) { try await History.ensure(conn) } catch { throw .database(error) }
            let history = try await History.read(conn)
            do throws(PostgresError) {
                var recorded: [String] = []
                for f in files where f.version <= version && !history.contains(where: { $0.version == f.version }) {
                    try await History.upsert(conn, file: f, status: .baseline, executionMS: 0, done: 0, error: nil)
                    recorded.append(f.fileName)
                }
                return BaselineReport(version: version, recorded: recorded)
            } catch {
                throw .database(error)
            }
        }
    }

    // MARK: - repair

    /// Clears failed runs (the file runs again from its first statement) and accepts the new
    /// checksum of applied files that were edited.
    public func repair() async throws(MigrateError) -> RepairReport {
        let files = try loadFiles()
        return try await withMigrationLock { conn throws(MigrateError) in
            let stored = try await History.readIfExists(conn)
            do throws(PostgresError) {
                var report = RepairReport(changes: [])
                if let history = stored {
                    for s in FileState.compare(files: files, history: history) {
                        switch s.state {
                        case .failed:
                            try await conn.query(
                                "DELETE FROM \(identifier: History.table) WHERE version = \(s.version)::bigint AND status = 'failed'"
                            )
                            report.changes.append(
                                "\(s.file): cleared failed run (\(s.history?.statementsDone ?? 0)/\(s.history?.statementsTotal ?? 0) statements done); it runs again from its first statement"
                            )
                        case .drifted:
                            try await conn.query(
                                "UPDATE \(identifier: History.table) SET checksum = \(s.checksum ?? "") WHERE version = \(s.version)::bigint"
                            )
                            report.changes.append(
                                "\(s.file): accepted new checksum \(String((s.checksum ?? "").prefix(12))) (was \(String((s.history?.checksum ?? "").prefix(12))))"
                            )
                        case .missing:
                            report.notes.append("\(s.file): in history but the file is missing; left as is")
                        default:
                            break
                        }
                    }
                }
                return report
            } catch {
                throw .database(error)
            }
        }
    }

    /// Runs `body` on a connection that holds the migration lock, then releases the lock and
    /// closes the connection, whatever happens.
    private func withMigrationLock<T>(
        _ body: (PostgresConnection) async throws(MigrateError) -> T
    ) async throws(MigrateError) -> T {
        let conn = try await connect(readOnly: false)
        do { try await acquireLock(conn) } catch {
            await conn.close()
            throw error
        }
        do {
            let value = try await body(conn)
            await releaseLock(conn)
            await conn.close()
            return value
        } catch {
            await releaseLock(conn)
            await conn.close()
            throw error
        }
    }
}
