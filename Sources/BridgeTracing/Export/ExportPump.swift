import BridgeCore
import BridgeMetrics
import BridgePostgres
import Foundation

/// Settings of an `ExportPump`. The clock is injectable so tests never wait.
public struct ExportPumpOptions: Sendable {
    /// The first retry waits about this long (with jitter); each retry doubles it.
    public var initialBackoff: Duration
    /// Backoff never grows past this.
    public var maxBackoff: Duration
    /// A server's `Retry-After` is honoured up to this long.
    public var maxRetryAfter: Duration
    /// Waits between retries; throws when the task is cancelled.
    public var sleep: @Sendable (Duration) async throws -> Void
    /// Progress and warnings.
    public var onEvent: @Sendable (ExportEvent) -> Void
    /// Removed from every message stored in the ledger or reported (API keys, header values).
    public var secrets: [String]

    public init(initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(30),
                maxRetryAfter: Duration = .seconds(300),
                sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
                onEvent: @escaping @Sendable (ExportEvent) -> Void = { _ in }, secrets: [String] = []) {
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
        self.maxRetryAfter = maxRetryAfter
        self.sleep = sleep
        self.onEvent = onEvent
        self.secrets = secrets
    }
}

/// Moves the ledger's undelivered traces and spans to one exporter. The ledger is the outbox:
/// an item is undelivered while it has no row for this exporter in `bridge.trace_deliveries`
/// / `bridge.span_deliveries`, so whatever a crash, a kill or an outage leaves behind is
/// found again by the next pump (`bridge exec`'s, or `bridge export`).
///
/// - Batches are read set-based (anti-join on the delivery tables, ended spans only, in the
///   order they were stored), at most `exporter.batchSize` items each, and each batch's
///   outcome is recorded in one statement.
/// - Temporary failures (429, 5xx, transport) are retried with capped exponential backoff and
///   jitter, honouring `Retry-After`, for as long as the pump runs: nothing is dropped.
/// - A batch the receiver refuses for good (4xx) is split in halves until the refused items
///   are found; only those are recorded `rejected`, with the server's message.
/// - Misconfiguration (401/403/404, an unwritable file) stops the pump with
///   `ExportFatalError`; nothing is recorded, so the items wait for a fixed configuration.
/// - Delivery is at least once: a pump killed after the receiver accepted a batch but before
///   the delivery rows were written sends that batch again next time (receivers get stable
///   ids to deduplicate on).
///
/// One pump per exporter runs at a time across all processes: the pump takes a session
/// advisory lock on its own connection (`tryLock()`), so concurrent workers do not send the
/// same spans twice. The lock goes with the connection, also when a process dies.
public actor ExportPump {
    public let exporter: any TraceExporter
    let connection: PostgresConnection
    let options: ExportPumpOptions
    public private(set) var stats: ExportStats
    public private(set) var holdsLock = false

    /// Advisory lock namespace (first key): "brdg".
    static let lockClass: Int32 = 0x6272_6467

    public init(exporter: any TraceExporter, connection: PostgresConnection, options: ExportPumpOptions = ExportPumpOptions()) {
        self.exporter = exporter
        self.connection = connection
        self.options = options
        self.stats = ExportStats(exporter: exporter.name)
    }

    /// Adds the exporter to `bridge.exporters` (or refreshes its target and `last_seen_at`).
    public func register() async throws {
        try await connection.query("""
            INSERT INTO bridge.exporters (name, target) VALUES (\(exporter.name), \(exporter.target))
            ON CONFLICT (name) DO UPDATE SET target = EXCLUDED.target, last_seen_at = now()
            """)
    }

    /// Takes this exporter's advisory lock if no other session holds it. Returns whether this
    /// pump holds it now.
    @discardableResult
    public func tryLock() async throws -> Bool {
        if holdsLock { return true }
        let row = try await connection.query("""
            SELECT pg_try_advisory_lock(\(Int(Self.lockClass))::int, hashtext(\(exporter.name))) AS ok
            """).first
        holdsLock = row?.bool("ok") ?? false
        return holdsLock
    }

    /// Releases the advisory lock (closing the connection does too).
    public func unlock() async {
        guard holdsLock else { return }
        _ = try? await connection.query("SELECT pg_advisory_unlock(\(Int(Self.lockClass))::int, hashtext(\(exporter.name)))")
        holdsLock = false
    }

    /// Sends batches until nothing is left undelivered. Returns what this call did. Needs the
    /// lock (see `tryLock()`); throws `ExportFatalError` when the exporter is misconfigured and
    /// `CancellationError` when cancelled (nothing half-recorded: an unanswered batch stays
    /// undelivered).
    @discardableResult
    public func drain() async throws -> ExportStats {
        var done = ExportStats(exporter: exporter.name)
        while let s = try await exportNextBatch() { done.add(s) }
        return done
    }

    /// Reads and delivers one batch; nil when nothing is undelivered.
    public func exportNextBatch() async throws -> ExportStats? {
        try Task.checkCancellation()
        guard holdsLock else { throw ExportFatalError(exporter: exporter.name, message: "the pump does not hold the export lock") }
        let state = try await loadCursor()
        let (batch, next) = try await nextBatch(from: state)
        BridgeMetrics.exportBacklog(exporter: exporter.name, spans: batch.spans.count)
        if next == state { return nil }
        var s = ExportStats(exporter: exporter.name)
        if !batch.isEmpty { try await deliver(batch, priorAttempts: 0, stats: &s) }
        // Only after every item of the batch has its delivery row: a crash before this line
        // reads the same rows again, and the delivered ones are skipped.
        try await saveCursor(next)
        stats.add(s)
        return s
    }

    /// What is still undelivered for this exporter.
    public func backlog() async throws -> ExportBacklog {
        try await Self.backlog(exporter: exporter.name, connection: connection)
    }

    /// What is still undelivered for `exporter` (also for an exporter that is not running):
    /// the rows after its cursor, and while it has not finished them, the undelivered rows
    /// stored before the cursor existed. Costs O(backlog), not O(ledger).
    public static func backlog(exporter: String, connection: PostgresConnection) async throws -> ExportBacklog {
        let state = try await loadCursor(exporter: exporter, connection: connection)
        var b = SQLBinder()
        let traceAfter = state.trace.map { "(t.txid, t.seq) > (\(b.bind($0.txid))::xid8, \(b.bind(.text(String($0.seq))))::bigint)" }
            ?? "t.txid IS NOT NULL"
        let spanAfter = state.span.map { "(s.txid, s.seq) > (\(b.bind($0.txid))::xid8, \(b.bind(.text(String($0.seq))))::bigint)" }
            ?? "s.txid IS NOT NULL"
        var legacyTraces = "0", legacySpans = "0"
        if !state.legacyDone {
            let name = b.bind(exporter)
            legacyTraces = """
                (SELECT count(*) FROM bridge.traces t WHERE t.txid IS NULL AND NOT EXISTS (
                   SELECT 1 FROM bridge.trace_deliveries d WHERE d.exporter = \(name) AND d.trace_id = t.trace_id))
                """
            legacySpans = """
                (SELECT count(*) FROM bridge.spans s WHERE s.txid IS NULL AND s.ended_at IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM bridge.span_deliveries d WHERE d.exporter = \(name) AND d.span_id = s.span_id))
                """
        }
        let sql = """
            SELECT (SELECT count(*) FROM bridge.traces t WHERE \(traceAfter)) + \(legacyTraces) AS traces,
                   (SELECT count(*) FROM bridge.spans s WHERE \(spanAfter) AND s.ended_at IS NOT NULL) + \(legacySpans) AS spans
            """
        let row = try await connection.query(b.query(sql)).first
        return ExportBacklog(traces: row?.int("traces") ?? 0, spans: row?.int("spans") ?? 0)
    }

    // MARK: - Reading

    /// Where an exporter is in the ledger (`bridge.exporters`, see `LedgerPosition`).
    public struct CursorState: Sendable, Equatable {
        public var trace: LedgerPosition?
        public var span: LedgerPosition?
        /// Rows stored before the cursor existed (NULL txid) are read once, by primary key.
        public var legacyTrace: String?
        public var legacySpan: String?
        public var legacyDone = false
    }

    func loadCursor() async throws -> CursorState {
        try await Self.loadCursor(exporter: exporter.name, connection: connection)
    }

    static func loadCursor(exporter: String, connection: PostgresConnection) async throws -> CursorState {
        guard let r = try await connection.query("""
            SELECT trace_txid::text AS trace_txid, trace_seq, span_txid::text AS span_txid, span_seq,
                   legacy_trace_id, legacy_span_id, legacy_done
            FROM bridge.exporters WHERE name = \(exporter)
            """).first else { return CursorState() }
        func position(_ p: String) -> LedgerPosition? {
            guard let t = r[p + "_txid"], let s = r[p + "_seq"].flatMap({ Int64($0) }) else { return nil }
            return LedgerPosition(txid: t, seq: s)
        }
        return CursorState(trace: position("trace"), span: position("span"), legacyTrace: r["legacy_trace_id"],
                           legacySpan: r["legacy_span_id"], legacyDone: r.bool("legacy_done") ?? false)
    }

    func saveCursor(_ c: CursorState) async throws {
        try await connection.query("""
            UPDATE bridge.exporters SET trace_txid = \(c.trace?.txid)::xid8, trace_seq = \(c.trace?.seq),
                span_txid = \(c.span?.txid)::xid8, span_seq = \(c.span?.seq),
                legacy_trace_id = \(c.legacyTrace), legacy_span_id = \(c.legacySpan), legacy_done = \(c.legacyDone),
                last_seen_at = now()
            WHERE name = \(exporter.name)
            """)
    }

    /// Up to `batchSize` undelivered items after the exporter's cursor (traces first, then
    /// spans), and the cursor past every row read. Each read is one range scan of an index
    /// (the `(txid, seq)` cursor index; while the rows stored before the cursor existed are
    /// not done, their primary key), so a poll costs O(batch) at any ledger size. Rows that
    /// already have a delivery row for this exporter (after a crash, or delivered before the
    /// upgrade) are passed over without sending them again.
    func nextBatch(from state: CursorState) async throws -> (ExportBatch, CursorState) {
        let limit = max(1, exporter.batchSize)
        var next = state
        var batch = ExportBatch()
        let legacy = !state.legacyDone
        let traceRows = try await scan(traces: true, state: state, legacy: legacy, limit: limit)
        for row in traceRows {
            if legacy { next.legacyTrace = row["trace_id"] } else { next.trace = LedgerPosition(row: row) ?? next.trace }
            if row.bool("done") == true { continue }
            batch.traces.append(try Self.trace(row, prefix: ""))
        }
        let room = limit - traceRows.count
        var spanRows: [PostgresRow] = []
        if room > 0 {
            spanRows = try await scan(traces: false, state: state, legacy: legacy, limit: room)
            for row in spanRows {
                if legacy { next.legacySpan = row["span_id"] } else { next.span = LedgerPosition(row: row) ?? next.span }
                if row.bool("done") == true || row["ended_at"] == nil { continue }
                let record = SpanRecord(
                    id: row["span_id"] ?? "", traceId: row["trace_id"] ?? "", parentId: row["parent_id"],
                    startedAt: row.date("started_at") ?? .distantPast, endedAt: row.date("ended_at") ?? .distantPast,
                    spanData: try JSONValue.parse(row["span_data"] ?? "null"),
                    error: try row["error"].map { try JSONValue.parse($0) })
                var trace = try Self.trace(row, prefix: "t_")
                trace.id = record.traceId
                batch.spans.append(ExportSpan(record: record, trace: trace))
            }
            // The pre-cursor rows are done once both reads came back short.
            if legacy, traceRows.count < limit, spanRows.count < room { next.legacyDone = true }
        }
        return (batch, next)
    }

    /// One ordered read of traces or spans after the cursor (or, `legacy`, of the rows stored
    /// before it existed), each with `done`: whether this exporter has a delivery row for it.
    func scan(traces: Bool, state: CursorState, legacy: Bool, limit: Int) async throws -> [PostgresRow] {
        let statement = Self.scanStatement(exporter: exporter.name, traces: traces, state: state, legacy: legacy, limit: limit)
        return try await connection.query(statement).map { $0 }
    }

    /// The statement of `scan` (also EXPLAINed by the tests).
    public static func scanStatement(exporter: String, traces: Bool, state: CursorState, legacy: Bool,
                                     limit: Int) -> PostgresQuery {
        var b = SQLBinder()
        let name = b.bind(exporter)
        let alias = traces ? "t" : "s"
        let key = traces ? "trace_id" : "span_id"
        let condition: String
        let order: String
        if legacy {
            let last = traces ? state.legacyTrace : state.legacySpan
            condition = "\(alias).txid IS NULL" + (last.map { " AND \(alias).\(key) > \(b.bind($0))" } ?? "")
            order = "\(alias).\(key)"
        } else {
            condition = LedgerPosition.after(traces ? state.trace : state.span, alias: alias, &b)
            order = "\(alias).txid, \(alias).seq"
        }
        let lim = b.bind(.text(String(limit)))
        if traces {
            let sql = """
                SELECT t.trace_id, t.workflow_name, t.group_id, t.metadata::text AS metadata,
                       t.txid::text AS cursor_txid, t.seq AS cursor_seq,
                       EXISTS (SELECT 1 FROM bridge.trace_deliveries d WHERE d.exporter = \(name) AND d.trace_id = t.trace_id) AS done
                FROM bridge.traces t
                WHERE \(condition)
                ORDER BY \(order) LIMIT \(lim)
                """
            return b.query(sql)
        }
        let sql = """
            SELECT s.span_id, s.trace_id, s.parent_id, s.started_at, s.ended_at, s.span_data::text AS span_data,
                   s.error::text AS error, t.workflow_name AS t_workflow_name, t.group_id AS t_group_id,
                   t.metadata::text AS t_metadata, s.txid::text AS cursor_txid, s.seq AS cursor_seq,
                   EXISTS (SELECT 1 FROM bridge.span_deliveries d WHERE d.exporter = \(name) AND d.span_id = s.span_id) AS done
            FROM bridge.spans s JOIN bridge.traces t ON t.trace_id = s.trace_id
            WHERE \(condition)
            ORDER BY \(order) LIMIT \(lim)
            """
        return b.query(sql)
    }

    /// A trace from a row; metadata values that are not strings become their JSON text, so
    /// the metadata stays flat string-to-string as the ingest API requires.
    static func trace(_ row: PostgresRow, prefix: String) throws -> TraceRecord {
        let meta = try JSONValue.parse(row[prefix + "metadata"] ?? "{}").objectValue ?? [:]
        return TraceRecord(id: row["trace_id"] ?? "", workflowName: row[prefix + "workflow_name"] ?? "",
                           groupId: row[prefix + "group_id"],
                           metadata: meta.compactMapValues { $0.isNull ? nil : ($0.stringValue ?? $0.compact) })
    }

    // MARK: - Delivering

    func deliver(_ batch: ExportBatch, priorAttempts: Int, stats s: inout ExportStats) async throws {
        var attempts = 0
        var backoff = options.initialBackoff
        while true {
            try Task.checkCancellation()
            attempts += 1
            s.requests += 1
            let result = await exporter.send(batch)
            switch result {
            case .delivered(let warning):
                try await record(batch, status: "delivered", attempts: priorAttempts + attempts, error: warning.map(scrub))
                s.deliveredTraces += batch.traces.count
                s.deliveredSpans += batch.spans.count
                options.onEvent(.delivered(exporter: exporter.name, traces: batch.traces.count, spans: batch.spans.count))
                return
            case .partial(let rejected, let message):
                // OTLP does not say which spans were dropped. When it dropped them all, they are
                // rejected; otherwise the batch counts as delivered and every row of it keeps the
                // receiver's message, so `bridge verify` can show it.
                let text = scrub("receiver dropped \(rejected) of \(batch.spans.count) spans: \(message)")
                options.onEvent(.partial(exporter: exporter.name, rejectedSpans: rejected, of: batch.spans.count, message: scrub(message)))
                if rejected >= batch.spans.count, !batch.spans.isEmpty {
                    try await record(ExportBatch(spans: batch.spans), status: "rejected", attempts: priorAttempts + attempts, error: text)
                    if !batch.traces.isEmpty {
                        try await record(ExportBatch(traces: batch.traces), status: "delivered", attempts: priorAttempts + attempts, error: nil)
                    }
                    s.rejectedSpans += batch.spans.count
                    s.deliveredTraces += batch.traces.count
                } else {
                    try await record(batch, status: "delivered", attempts: priorAttempts + attempts, error: text)
                    s.deliveredTraces += batch.traces.count
                    s.deliveredSpans += batch.spans.count
                }
                return
            case .retry(let reason, let after):
                s.retries += 1
                let delay: Duration
                if let after {
                    delay = min(max(after, .zero), options.maxRetryAfter)
                } else {
                    delay = Self.jittered(backoff)
                    backoff = min(backoff * 2, options.maxBackoff)
                }
                options.onEvent(.retrying(exporter: exporter.name, reason: scrub(reason), after: delay, attempt: attempts))
                try await options.sleep(delay)
            case .reject(let reason):
                if batch.count > 1 {
                    options.onEvent(.splitting(exporter: exporter.name, items: batch.count, reason: scrub(reason)))
                    let (a, b) = batch.halves()
                    try await deliver(a, priorAttempts: priorAttempts + attempts, stats: &s)
                    try await deliver(b, priorAttempts: priorAttempts + attempts, stats: &s)
                    return
                }
                try await record(batch, status: "rejected", attempts: priorAttempts + attempts, error: scrub(reason))
                s.rejectedTraces += batch.traces.count
                s.rejectedSpans += batch.spans.count
                options.onEvent(.rejected(exporter: exporter.name, traces: batch.traces.count, spans: batch.spans.count,
                                          reason: scrub(reason)))
                return
            case .fatal(let reason):
                throw ExportFatalError(exporter: exporter.name, message: scrub(reason))
            }
        }
    }

    /// Records the outcome for every item of `batch` in one statement (and refreshes the
    /// exporter's `last_seen_at`). An item that has a row already keeps it.
    func record(_ batch: ExportBatch, status: String, attempts: Int, error: String?) async throws {
        var items: [JSONValue] = batch.traces.map { ["kind": "trace", "id": .string($0.id), "trace_id": .string($0.id)] }
        items += batch.spans.map { ["kind": "span", "id": .string($0.record.id), "trace_id": .string($0.record.traceId)] }
        let json = JSONValue.array(items).compact
        try await connection.query("""
            WITH items AS (
                SELECT x.kind, x.id, x.trace_id FROM jsonb_to_recordset(\(json)::jsonb) AS x(kind text, id text, trace_id text)
            ), spans AS (
                INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status, attempts, error)
                SELECT \(exporter.name)::text, i.id, i.trace_id, \(status)::text, \(attempts)::int, \(error.postgresValue)::text
                FROM items i WHERE i.kind = 'span'
                ON CONFLICT (exporter, span_id) DO NOTHING
            ), traces AS (
                INSERT INTO bridge.trace_deliveries (exporter, trace_id, status, attempts, error)
                SELECT \(exporter.name)::text, i.id, \(status)::text, \(attempts)::int, \(error.postgresValue)::text
                FROM items i WHERE i.kind = 'trace'
                ON CONFLICT (exporter, trace_id) DO NOTHING
            )
            UPDATE bridge.exporters SET last_seen_at = now() WHERE name = \(exporter.name)
            """)
        BridgeMetrics.spansExported(exporter: exporter.name, delivered: status == "delivered", count: batch.spans.count)
    }

    func scrub(_ text: String) -> String { Redaction.scrub(text, secrets: options.secrets) }

    /// Between half and all of `d` ("equal jitter"), so retrying processes spread out.
    static func jittered(_ d: Duration) -> Duration {
        d * Double.random(in: 0.5...1.0)
    }
}

extension ExportPump {
    /// How many traces and spans `exporter` has recorded as rejected (all time).
    public static func rejectedCount(exporter: String, connection: PostgresConnection) async throws -> ExportBacklog {
        let row = try await connection.query("""
            SELECT (SELECT count(*) FROM bridge.trace_deliveries WHERE exporter = \(exporter) AND status = 'rejected') AS traces,
                   (SELECT count(*) FROM bridge.span_deliveries WHERE exporter = \(exporter) AND status = 'rejected') AS spans
            """).first
        return ExportBacklog(traces: row?.int("traces") ?? 0, spans: row?.int("spans") ?? 0)
    }

    /// Makes every `rejected` row of `exporter` undelivered again, so the next pump sends those
    /// items once more (after the cause was fixed): the rows are deleted and the exporter's
    /// cursor moves back to just before the earliest of them (the rows in between that were
    /// delivered are passed over, not sent again). Returns how many rows were cleared.
    public static func retryRejected(exporter: String, connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.query("""
            WITH s AS (DELETE FROM bridge.span_deliveries WHERE exporter = \(exporter) AND status = 'rejected' RETURNING span_id),
                 t AS (DELETE FROM bridge.trace_deliveries WHERE exporter = \(exporter) AND status = 'rejected' RETURNING trace_id),
                 sp AS (SELECT x.txid, x.seq FROM bridge.spans x WHERE x.span_id IN (SELECT span_id FROM s)),
                 tr AS (SELECT x.txid, x.seq FROM bridge.traces x WHERE x.trace_id IN (SELECT trace_id FROM t)),
                 sfirst AS (SELECT txid, seq FROM sp WHERE txid IS NOT NULL ORDER BY txid, seq LIMIT 1),
                 tfirst AS (SELECT txid, seq FROM tr WHERE txid IS NOT NULL ORDER BY txid, seq LIMIT 1),
                 moved AS (
                    UPDATE bridge.exporters e SET
                        span_txid = CASE WHEN (SELECT txid FROM sfirst) IS NOT NULL AND (e.span_txid IS NULL OR
                            ((SELECT txid FROM sfirst), (SELECT seq FROM sfirst) - 1) < (e.span_txid, e.span_seq))
                            THEN (SELECT txid FROM sfirst) ELSE e.span_txid END,
                        span_seq = CASE WHEN (SELECT txid FROM sfirst) IS NOT NULL AND (e.span_txid IS NULL OR
                            ((SELECT txid FROM sfirst), (SELECT seq FROM sfirst) - 1) < (e.span_txid, e.span_seq))
                            THEN (SELECT seq FROM sfirst) - 1 ELSE e.span_seq END,
                        trace_txid = CASE WHEN (SELECT txid FROM tfirst) IS NOT NULL AND (e.trace_txid IS NULL OR
                            ((SELECT txid FROM tfirst), (SELECT seq FROM tfirst) - 1) < (e.trace_txid, e.trace_seq))
                            THEN (SELECT txid FROM tfirst) ELSE e.trace_txid END,
                        trace_seq = CASE WHEN (SELECT txid FROM tfirst) IS NOT NULL AND (e.trace_txid IS NULL OR
                            ((SELECT txid FROM tfirst), (SELECT seq FROM tfirst) - 1) < (e.trace_txid, e.trace_seq))
                            THEN (SELECT seq FROM tfirst) - 1 ELSE e.trace_seq END,
                        legacy_done = e.legacy_done AND NOT EXISTS (SELECT 1 FROM sp WHERE txid IS NULL)
                            AND NOT EXISTS (SELECT 1 FROM tr WHERE txid IS NULL),
                        legacy_span_id = CASE WHEN EXISTS (SELECT 1 FROM sp WHERE txid IS NULL) OR EXISTS (SELECT 1 FROM tr WHERE txid IS NULL)
                            THEN NULL ELSE e.legacy_span_id END,
                        legacy_trace_id = CASE WHEN EXISTS (SELECT 1 FROM sp WHERE txid IS NULL) OR EXISTS (SELECT 1 FROM tr WHERE txid IS NULL)
                            THEN NULL ELSE e.legacy_trace_id END
                    WHERE e.name = \(exporter)
                 )
            SELECT (SELECT count(*) FROM s) + (SELECT count(*) FROM t) AS n
            """)
        return rows.first?.int("n") ?? 0
    }
}
