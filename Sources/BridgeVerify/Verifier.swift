import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// Runs the tracing validation checklist against a database.
///
/// Every check is one set-based statement (CTEs, hash joins, aggregates): the number of round
/// trips does not grow with the number of tasks or spans. The checks run in `REPEATABLE READ
/// READ ONLY` transactions on one or more connections that share one snapshot, so they all see
/// the same data. Table and column
/// names come from the mappings (quoted identifiers); every value, the scope's included, is
/// interpolated into `VerifySQL`'s statements as a bind.
public struct Verifier: Sendable {
    public let config: MappingConfig
    public let options: VerifyOptions

    /// Loads the mappings from `mappingsDirectory`, reads the `--spans` file, opens
    /// `options.connections` connections and runs the checklist.
    public static func run(
        mappingsDirectory: String, connection: ConnectionConfig,
        options: VerifyOptions
    ) async throws -> VerifyReport {
        let loaded = try MappingLoader.load(directory: mappingsDirectory)
        var file: SpanFile?
        if let path = options.spansFile { file = try await SpanFile.read(path: path) }
        var conns: [PostgresConnection] = []
        do {
            for _ in 0..<max(1, options.connections) { conns.append(try await PostgresConnection.connect(connection)) }
            try await checkInputs(loaded, options: options, on: conns[0])
            // The key's and columns' types, so scope values are compared on the value side
            // (the columns' indexes serve them).
            let config = loaded.with(columnTypes: try await ColumnTypes.load(for: loaded, connection: conns[0]))
            let report = try await Verifier(config: config, options: options)
                .run(on: conns[0], helpers: Array(conns.dropFirst()), spanFile: file)
            for c in conns { await c.close() }
            return report
        } catch {
            for c in conns { await c.close() }
            throw error
        }
    }

    /// Bad input is exit 2 with a message, never a raw SQL error: the mappings must fit the
    /// live schema (tables and columns exist, tool SQL prepares), and a `--task` id must name a
    /// task.
    static func checkInputs(_ config: MappingConfig, options: VerifyOptions, on conn: PostgresConnection) async throws {
        let issues = await MappingValidator.checkLive(config, connection: conn)
        if !issues.isEmpty { throw MappingErrors(issues) }
        guard let task = options.scope.task else { return }
        let s = config.source
        // Bound with the key column's own type (inferred), so the lookup uses its index.
        let query: PostgresQuery = """
            SELECT EXISTS (SELECT 1 FROM \(identifier: s.table) WHERE \(identifier: s.key) = \(task)) AS ok
            """
        var found = false
        do {
            found = try await conn.query(query).one().decode(Bool.self, "ok")
        } catch let error as PostgresError {
            // Class 22: not even a valid key value (e.g. not a uuid); anything else is real.
            if error.sqlState?.hasPrefix("22") != true { throw error }
        }
        if !found { throw VerifyInputError("no task with \(s.table).\(s.key) = \(task)") }
    }

    /// Runs all six checks and returns the report.
    ///
    /// The checks run on `connection` and, in parallel, on the `helpers`, which import the
    /// first connection's snapshot (`pg_export_snapshot`), so every check sees the same data.
    /// The `--spans` comparison runs on `connection`, which holds the file's temp tables.
    /// `spanFile` is the parsed `--spans` file (read here from `options.spansFile` if nil).
    public func run(
        on connection: PostgresConnection, helpers: [PostgresConnection] = [],
        spanFile: SpanFile? = nil
    ) async throws -> VerifyReport {
        let clock = ContinuousClock()
        let start = clock.now
        if options.scope.workspace != nil && config.source.groupColumn == nil {
            throw VerifyInputError("a workspace filter needs source.group_column in the mappings")
        }
        try await prepareSessions([connection] + helpers)
        let scope = try await resolvedScope(on: connection)
        let sql = scopedSQL(scope)
        var spanFileSummary: SpanFileSummary?
        if let path = options.spansFile {
            let file: SpanFile
            if let spanFile { file = spanFile } else { file = try await SpanFile.read(path: path) }
            try await loadSpanFile(file, on: connection)
            spanFileSummary = SpanFileSummary(
                path: path, format: file.format, traces: file.traceIds.count, spans: file.spans.count)
        }
        let hasExporters = try await connection.ledgerHas([.exporters, .spanDeliveries])
        try await requireLedger(on: connection)

        var open: [PostgresConnection] = []
        var results: [CheckResult] = []
        do {
            try await beginSharedSnapshot(on: connection, helpers: helpers, open: &open)
            results = try await runChecks(
                sql: sql, file: spanFileSummary, hasExporters: hasExporters, on: [connection] + helpers)
            for c in open { try await c.simpleQuery("COMMIT") }
        } catch {
            for c in open { _ = try? await c.simpleQuery("ROLLBACK") }
            throw error
        }
        let order = Check.allCases.map(\.rawValue)
        results.sort { (order.firstIndex(of: $0.id) ?? 0) < (order.firstIndex(of: $1.id) ?? 0) }
        return VerifyReport(scope: scope, checks: results, elapsedMs: Self.ms(clock.now - start))
    }

    /// A reporting session: no notices on stderr, no JIT (it costs ~0.4 s per statement and
    /// saves nothing here), and room for the hash tables and sorts of 1,000,000 spans.
    private func prepareSessions(_ connections: [PostgresConnection]) async throws {
        for c in connections {
            try await c.set("client_min_messages", "warning")
            try await c.set("jit", "off")
            try await c.set("work_mem", "128MB")
        }
    }

    /// The options' scope with `--since` resolved to a timestamp, moved up to the prune
    /// horizon if there is one.
    private func resolvedScope(on connection: PostgresConnection) async throws -> VerifyScope {
        var scope = options.scope
        scope.sinceTimestamp = try await resolveSince(scope.since, on: connection)
        if let horizon = try await prunedBefore(on: connection) {
            // Older executions may have lost their spans to `bridge prune`: not checked.
            scope.prunedBefore = horizon
            if scope.sinceTimestamp.map({ $0 < horizon }) ?? true { scope.sinceTimestamp = horizon }
        }
        return scope
    }

    /// The checks' statements for `scope` and the options' limits.
    private func scopedSQL(_ scope: VerifyScope) -> VerifySQL {
        var scoped = VerifySQL(config: config)
        scoped.since = scope.sinceTimestamp.map(PostgresTimestamp.format)
        scoped.task = scope.task
        scoped.workspace = scope.workspace
        scoped.examples = options.maxExamples
        scoped.maxExportLag = options.maxExportLagSeconds
        return scoped
    }

    /// Begins a read-only transaction on `connection` and on each helper, the helpers in the
    /// first one's snapshot (`pg_export_snapshot`). Each connection is added to `open` as its
    /// transaction begins, so the caller can roll back what was begun.
    private func beginSharedSnapshot(
        on connection: PostgresConnection, helpers: [PostgresConnection], open: inout [PostgresConnection]
    ) async throws {
        try await connection.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        open.append(connection)
        guard !helpers.isEmpty else { return }
        let snapshot = try await connection.query("SELECT pg_export_snapshot() AS s").one().decode(String.self, "s")
        // SET TRANSACTION SNAPSHOT takes no parameters; the id comes from the server
        // (hex digits and dashes) and is checked before it is quoted.
        guard !snapshot.isEmpty,
            snapshot.unicodeScalars.allSatisfy({ $0.properties.isASCIIHexDigit || $0 == "-" })
        else {
            throw VerifyInputError("unexpected snapshot id from pg_export_snapshot(): \(snapshot)")
        }
        for h in helpers {
            try await h.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            open.append(h)
            try await h.simpleQuery("SET TRANSACTION SNAPSHOT '\(snapshot)'")
        }
    }

    /// Runs every check, the connections taking them from one queue in parallel; the `--spans`
    /// comparison only on the first connection, which holds the file's temp tables.
    private func runChecks(
        sql: VerifySQL, file: SpanFileSummary?, hasExporters: Bool, on connections: [PostgresConnection]
    ) async throws -> [CheckResult] {
        let clock = ContinuousClock()
        // Most expensive first, so the connections finish at about the same time.
        let queue = CheckQueue(
            [
                .exportDelivered, .handoffsTraced, .toolsTraced, .traceIdsCorrelate, .toolIOCaptured, .toolTiming,
                .guardrailsApprovalsTraced, .runsWhole, .spendRecorded,
            ],
            primaryOnly: file == nil ? [] : [.traceIdsCorrelate])
        return try await withThrowingTaskGroup(of: [CheckResult].self) { group in
            for (i, c) in connections.enumerated() {
                group.addTask {
                    var done: [CheckResult] = []
                    while let check = await queue.next(primary: i == 0) {
                        let t0 = clock.now
                        var r = try await self.run(check, sql: sql, file: file, hasExporters: hasExporters, on: c)
                        r.elapsedMs = Self.ms(clock.now - t0)
                        done.append(r)
                    }
                    return done
                }
            }
            var out: [CheckResult] = []
            for try await part in group { out += part }
            return out
        }
    }

    func run(
        _ check: Check, sql: VerifySQL, file: SpanFileSummary?, hasExporters: Bool,
        on c: PostgresConnection
    ) async throws -> CheckResult {
        switch check {
        case .toolsTraced: return try await toolsTraced(sql, c)
        case .handoffsTraced: return try await handoffsTraced(sql, c)
        case .toolIOCaptured: return try await toolIOCaptured(sql, c)
        case .traceIdsCorrelate: return try await traceIdsCorrelate(sql, file, c)
        case .exportDelivered:
            guard hasExporters else {
                return .skipped(
                    .exportDelivered,
                    "bridge.exporters does not exist yet (run bridge migrate); no exporter is configured")
            }
            return try await exportDelivered(sql, c)
        case .toolTiming: return try await toolTiming(sql, c)
        case .runsWhole:
            let rows = try await query(sql.runsWhole, c)
            return result(.runsWhole, try counted(rows), emptyReason: "no ended traces in scope")
        case .spendRecorded:
            guard config.pricing.isConfigured else {
                return .skipped(.spendRecorded, "the mappings have no pricing section")
            }
            let rows = try await query(sql.spendRecorded, c)
            let usd = try rows.firstRow().decode(Double.self, "usd")
            let unpriced = try rows.firstRow().decode(Int.self, "unpriced")
            let tenThousandths = Int((usd * 10_000).rounded())
            let fraction = String(tenThousandths % 10_000)
            let dollars = "\(tenThousandths / 10_000).\(String(repeating: "0", count: 4 - fraction.count))\(fraction)"
            let note =
                "$\(dollars) spent"
                + (unpriced > 0 ? ", \(unpriced) call(s) of models missing from pricing (cost unknown)" : "")
            return result(.spendRecorded, try counted(rows), emptyReason: "no model calls in scope", note: note)
        case .guardrailsApprovalsTraced:
            let rows = try await query(sql.guardrailsApprovalsTraced, c)
            return result(
                .guardrailsApprovalsTraced, try counted(rows),
                emptyReason: "no guardrail ran and no run resumed after an approval in scope")
        }
    }

    /// Hands out the checks to the connections, one at a time.
    actor CheckQueue {
        var pending: [Check]
        let primaryOnly: Set<Check>

        init(_ checks: [Check], primaryOnly: Set<Check>) {
            self.pending = checks
            self.primaryOnly = primaryOnly
        }

        func next(primary: Bool) -> Check? {
            guard let i = pending.firstIndex(where: { primary || !primaryOnly.contains($0) }) else { return nil }
            return pending.remove(at: i)
        }
    }

    static func ms(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    /// A duration is subtracted from the server's `now()`; a timestamp is taken as given.
    func resolveSince(_ since: Since?, on c: PostgresConnection) async throws -> Date? {
        switch since {
        case nil: return nil
        case .timestamp(let d, _): return d
        case .duration(let seconds, _):
            let rows = try await c.query("SELECT now() - make_interval(secs => \(seconds)::double precision) AS t")
            return try rows.one().decode(Date.self, "t")
        }
    }

    /// The newest `bridge prune` cutoff (`bridge.prunes`), nil when nothing was ever pruned.
    func prunedBefore(on c: PostgresConnection) async throws -> Date? {
        guard try await c.ledgerHas([.prunes]) else { return nil }
        return try await c.query("SELECT max(cutoff) AS cutoff FROM bridge.prunes").one().optional(Date.self, "cutoff")
    }

    func requireLedger(on c: PostgresConnection) async throws {
        guard try await c.ledgerHas([.traces, .spans, .runTranscripts]) else {
            throw VerifyInputError(
                "bridge.traces, bridge.spans or bridge.run_transcripts is missing: run bridge migrate first")
        }
    }

    /// Loads the file's ids into session temp tables `pg_temp.verify_file_traces` and
    /// `pg_temp.verify_file_spans`, 50,000 rows per statement (arrays bound as parameters).
    func loadSpanFile(_ file: SpanFile, on c: PostgresConnection) async throws {
        try await c.simpleQuery(
            """
            DROP TABLE IF EXISTS pg_temp.verify_file_traces, pg_temp.verify_file_spans;
            CREATE TEMP TABLE verify_file_traces (trace_id text PRIMARY KEY);
            CREATE TEMP TABLE verify_file_spans (trace_id text NOT NULL, span_key text NOT NULL);
            """)
        let traces = file.traceIds.map(\.text)
        for chunk in stride(from: 0, to: traces.count, by: 50_000) {
            let part = Array(traces[chunk..<min(chunk + 50_000, traces.count)])
            try await c.query(
                """
                INSERT INTO pg_temp.verify_file_traces SELECT DISTINCT unnest(\(PostgresArray.text(part))::text[]) ON CONFLICT DO NOTHING
                """)
        }
        for chunk in stride(from: 0, to: file.spans.count, by: 50_000) {
            let part = file.spans[chunk..<min(chunk + 50_000, file.spans.count)]
            try await c.query(
                """
                INSERT INTO pg_temp.verify_file_spans
                SELECT * FROM unnest(\(PostgresArray.text(part.map(\.traceId.text)))::text[], \(PostgresArray.text(part.map(\.spanKey)))::text[])
                """)
        }
        try await c.simpleQuery(
            "CREATE INDEX ON pg_temp.verify_file_spans (span_key); ANALYZE pg_temp.verify_file_traces; ANALYZE pg_temp.verify_file_spans"
        )
    }

    struct SpanFileSummary {
        var path: String
        var format: SpanFile.Format
        var traces: Int
        var spans: Int
    }

    // MARK: The checks

    func query(_ sql: PostgresQuery, _ c: PostgresConnection) async throws -> PostgresRows {
        try await c.query(sql)
    }

    /// Reads the shared result shape: one row per example (or one row with NULL example
    /// columns), each carrying `checked` and `failed`. A result without its counts fails the
    /// check closed (an error), never a pass with zero checked.
    func counted(_ rows: PostgresRows) throws(PostgresDecodingError) -> (
        checked: Int, failed: Int, examples: [CheckExample]
    ) {
        let counts = try rows.firstRow()
        let checked = try counts.decode(Int.self, "checked")
        let failed = try counts.decode(Int.self, "failed")
        var examples: [CheckExample] = []
        for r in rows { if let e = try Self.example(r) { examples.append(e) } }
        return (checked, failed, examples)
    }

    /// The example a row carries; nil when its `message` is NULL (a row of counts only).
    static func example(_ r: PostgresRow) throws(PostgresDecodingError) -> CheckExample? {
        guard let m = try r.optional(String.self, "message") else { return nil }
        return CheckExample(
            taskId: try r.optional(TaskKey.self, "task_id"), traceId: try r.optional(TraceID.self, "trace_id"),
            message: m)
    }

    func result(
        _ check: Check, _ counts: (checked: Int, failed: Int, examples: [CheckExample]), emptyReason: String,
        note: String? = nil
    ) -> CheckResult {
        if counts.checked == 0 && counts.failed == 0 { return .skipped(check, emptyReason) }
        return CheckResult(
            id: check.rawValue, title: check.title, status: counts.failed > 0 ? .fail : .pass,
            reason: note, checked: counts.checked, failed: counts.failed, examples: counts.examples)
    }

    func toolsTraced(_ sql: VerifySQL, _ c: PostgresConnection) async throws -> CheckResult {
        let rows = try await query(sql.toolsTraced, c)
        return result(.toolsTraced, try counted(rows), emptyReason: "no tool calls in the run transcripts in scope")
    }

    func handoffsTraced(_ sql: VerifySQL, _ c: PostgresConnection) async throws -> CheckResult {
        let rows = try await query(sql.handoffsTraced, c)
        return result(
            .handoffsTraced, try counted(rows), emptyReason: "no agent switches in the run transcripts in scope")
    }

    func toolIOCaptured(_ sql: VerifySQL, _ c: PostgresConnection) async throws -> CheckResult {
        guard config.tracing.includeSensitiveData else {
            return .skipped(
                .toolIOCaptured,
                "tracing.include_sensitive_data is false in the mappings: like the SDK, bridge then records no tool input or output on purpose"
            )
        }
        let rows = try await query(sql.toolIOCaptured, c)
        return result(.toolIOCaptured, try counted(rows), emptyReason: "no function spans in scope")
    }

    func traceIdsCorrelate(
        _ sql: VerifySQL, _ file: SpanFileSummary?,
        _ c: PostgresConnection
    ) async throws -> CheckResult {
        let scope = options.scope
        guard
            let text = sql.traceIdsCorrelate(
                withFile: file != nil, drivenByTasks: scope.task != nil || scope.workspace != nil)
        else {
            return .skipped(
                .traceIdsCorrelate,
                "the mappings configure no trace id column (results.trace_id_column or results.executions.columns.trace_id)"
            )
        }
        let rows = try await query(text, c)
        var note =
            "executions checked: \(try rows.firstRow().decode(Int.self, "executions")), traces checked: \(try rows.firstRow().decode(Int.self, "traces"))"
        if let file {
            note += "; \(file.path) (\(file.format.rawValue)): \(file.traces) traces, \(file.spans) spans"
        }
        return result(
            .traceIdsCorrelate, try counted(rows), emptyReason: "no executions or traces in scope", note: note)
    }

    func exportDelivered(_ sql: VerifySQL, _ c: PostgresConnection) async throws -> CheckResult {
        let configured = try await c.query("SELECT count(*) AS n FROM bridge.exporters").one().decode(Int.self, "n")
        guard configured > 0 else {
            return .skipped(.exportDelivered, "no exporter is configured (bridge.exporters is empty)")
        }
        let maxLag = options.maxExportLagSeconds
        let rows = try await query(sql.exportDelivered, c)
        var exporters: [ExporterDelivery] = []
        var late = 0
        var overLimit: [String] = []
        var examples: [CheckExample] = []
        var lateExamples: [CheckExample] = []
        for r in rows {
            switch try r.decode(String.self, "kind") {
            case "exporter":
                // The lags are NULL for an exporter with no delivered span.
                let e = ExporterDelivery(
                    exporter: try r.decode(String.self, "exporter"), spans: try r.decode(Int.self, "spans"),
                    delivered: try r.decode(Int.self, "delivered"), rejected: try r.decode(Int.self, "rejected"),
                    missing: try r.decode(Int.self, "missing"), inFlight: try r.decode(Int.self, "in_flight"),
                    p50LagSeconds: try r.optional(Double.self, "p50"),
                    p95LagSeconds: try r.optional(Double.self, "p95"),
                    maxLagSeconds: try r.optional(Double.self, "max"))
                if let p95 = e.p95LagSeconds, p95 > maxLag {
                    overLimit.append("\(e.exporter): p95 lag \(Self.seconds(p95))")
                    late += try r.decode(Int.self, "late")
                }
                exporters.append(e)
            case "example":
                if let e = try Self.example(r) { examples.append(e) }
            default:
                if let e = try Self.example(r) { lateExamples.append(e) }
            }
        }
        exporters.sort { $0.exporter < $1.exporter }
        let undelivered = exporters.reduce(0) { $0 + $1.rejected + $1.missing }
        if !overLimit.isEmpty {
            examples = Array((examples + lateExamples).prefix(options.maxExamples))
        }
        let checked = exporters.reduce(0) { $0 + $1.spans }
        if checked == 0 { return .skipped(.exportDelivered, "no spans in scope") }
        let failed = undelivered + late
        var notes: [String] = []
        for e in exporters where e.rejected > 0 && e.delivered == 0 {
            notes.append("\(e.exporter): EVERY span was rejected (\(e.rejected)); nothing reached the receiver")
        }
        if !overLimit.isEmpty {
            notes.append(
                overLimit.joined(separator: ", ") + " exceeds the allowed export lag of \(Self.seconds(maxLag))")
        }
        let inFlight = exporters.reduce(0) { $0 + $1.inFlight }
        if inFlight > 0 {
            notes.append(
                "\(inFlight) span(s) ended less than \(Self.seconds(maxLag)) ago and are not acknowledged yet (in flight, not counted as failures)"
            )
        }
        return CheckResult(
            id: Check.exportDelivered.rawValue, title: Check.exportDelivered.title,
            status: failed > 0 ? .fail : .pass, reason: notes.isEmpty ? nil : notes.joined(separator: "; "),
            checked: checked, failed: failed, examples: examples, exporters: exporters)
    }

    static func seconds(_ v: Double) -> String {
        v == v.rounded() ? "\(Int(v)) s" : String(format: "%.1f s", v)
    }

    func toolTiming(_ sql: VerifySQL, _ c: PostgresConnection) async throws -> CheckResult {
        let rows = try await query(sql.toolTiming, c)
        var checked = 0
        var failed = 0
        var timings: [ToolTiming] = []
        var examples: [CheckExample] = []
        for r in rows {
            switch try r.decode(String.self, "kind") {
            case "total":
                checked = try r.decode(Int.self, "checked")
                failed = try r.decode(Int.self, "failed")
            case "tool":
                timings.append(
                    ToolTiming(
                        tool: try r.decode(String.self, "tool"), count: try r.decode(Int.self, "n"),
                        p50: try r.decode(Double.self, "p50"), p95: try r.decode(Double.self, "p95"),
                        max: try r.decode(Double.self, "max")))
            default:
                if let e = try Self.example(r) { examples.append(e) }
            }
        }
        if checked == 0 { return .skipped(.toolTiming, "no function spans in scope") }
        timings.sort { $0.tool < $1.tool }
        return CheckResult(
            id: Check.toolTiming.rawValue, title: Check.toolTiming.title, status: failed > 0 ? .fail : .pass,
            checked: checked, failed: failed, examples: examples, toolTimings: timings)
    }
}
