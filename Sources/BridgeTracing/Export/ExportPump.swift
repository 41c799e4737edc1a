import BridgeTraceModel
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

    /// Adds the exporter to `bridge.exporters` (or refreshes its target and `last_seen_at`),
    /// and turns JIT off for the pump's session: the poll's estimated cost is high (its LIMITed
    /// index ranges are costed as if read whole), and compiling it took 1.4 s per poll on a
    /// 1M-span ledger for a statement that runs in well under a millisecond.
    public func register() async throws {
        try await connection.query("SELECT set_config('jit', 'off', false)")
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

    /// Reads and delivers one batch; nil when there was nothing to read.
    ///
    /// A batch may be empty yet move the exporter's position (rows delivered earlier, passed
    /// over), which counts as progress. The position is saved only after every item read has
    /// its delivery row: a crash in between reads the same rows again and passes over the
    /// recorded ones (at-least-once, nothing lost).
    public func exportNextBatch() async throws -> ExportStats? {
        try Task.checkCancellation()
        guard holdsLock else { throw ExportFatalError(exporter: exporter.name, message: "the pump does not hold the export lock") }
        let from = try await currentPosition()
        let read = try await nextBatch(from: from)
        BridgeMetrics.exportBacklog(exporter: exporter.name, spans: read.batch.spans.count)
        if !read.progressed { return nil }
        var s = ExportStats(exporter: exporter.name)
        if !read.batch.isEmpty { try await deliver(read.batch, priorAttempts: 0, stats: &s) }
        if read.next != from { try await save(read.next, replacing: from) }
        stats.add(s)
        return s
    }

    /// What is still undelivered for this exporter.
    public func backlog() async throws -> ExportBacklog {
        try await Self.backlog(exporter: exporter.name, connection: connection)
    }

    /// What is still undelivered for `exporter` (also for an exporter that is not running):
    /// the rows after its position that have no delivery row. Costs O(backlog + the rows
    /// written since the oldest running transaction began), not O(ledger).
    public static func backlog(exporter: String, connection: PostgresConnection) async throws -> ExportBacklog {
        let p = try await ExportPositions.load(exporter: exporter, connection: connection)
        let row = try await connection.query("""
            SELECT (SELECT count(*) FROM bridge.traces t WHERE \(p.trace.after(alias: "t", key: "trace_id")) AND NOT EXISTS (
                      SELECT 1 FROM bridge.trace_deliveries d WHERE d.exporter = \(exporter) AND d.trace_id = t.trace_id)) AS traces,
                   (SELECT count(*) FROM bridge.spans s WHERE \(p.span.after(alias: "s", key: "span_id")) AND s.ended_at IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM bridge.span_deliveries d WHERE d.exporter = \(exporter) AND d.span_id = s.span_id)) AS spans
            """).first
        return ExportBacklog(traces: row?.int("traces") ?? 0, spans: row?.int("spans") ?? 0)
    }

    // MARK: - Reading

    /// The exporter's stored position, read at every poll (a primary-key read of a small
    /// table), so a `retryRejected` from another process takes effect at the next poll.
    func currentPosition() async throws -> ExportPositions {
        try await ExportPositions.load(exporter: exporter.name, connection: connection)
    }

    /// Moves the stored position from `old` to `new`, unless someone else moved it meanwhile
    /// (`retryRejected` moves it back): the next poll starts from the stored one.
    func save(_ new: ExportPositions, replacing old: ExportPositions) async throws {
        try await connection.query("""
            INSERT INTO bridge.export_positions AS p (exporter, trace_txid, trace_id, span_txid, span_id)
            VALUES (\(exporter.name), \(new.trace.txid.postgresValue)::xid8, \(new.trace.id),
                    \(new.span.txid.postgresValue)::xid8, \(new.span.id))
            ON CONFLICT (exporter) DO UPDATE SET trace_txid = EXCLUDED.trace_txid, trace_id = EXCLUDED.trace_id,
                span_txid = EXCLUDED.span_txid, span_id = EXCLUDED.span_id, updated_at = now()
            WHERE p.trace_txid IS NOT DISTINCT FROM \(old.trace.txid.postgresValue)::xid8 AND p.trace_id = \(old.trace.id)
              AND p.span_txid IS NOT DISTINCT FROM \(old.span.txid.postgresValue)::xid8 AND p.span_id = \(old.span.id)
            """)
    }

    /// What one poll read: the items to send, where the exporter is after them, and whether
    /// any row was read at all (an empty batch can still move the position).
    struct Read {
        var batch = ExportBatch()
        var next: ExportPositions
        var progressed = false
    }

    /// Up to `batchSize` items after the exporter's position, traces first, then spans, read
    /// in one statement (`readStatement`), so the horizon and the rows share one snapshot.
    ///
    /// The horizon `h` is the oldest transaction still running. Rows written by transactions
    /// below it ("safe" rows) are all committed and no more can appear there, so the position
    /// moves over them in (txid, id) order. Rows at or above it ("recent" rows: written since
    /// the oldest running transaction began) are read by an anti-join on the delivery rows,
    /// so a long-running transaction elsewhere never holds delivery back; the position passes
    /// them later, when they are safe, skipping the ones delivered.
    ///
    /// Traces come first: spans are read only when every trace this snapshot sees that is
    /// undelivered is in the batch, so a trace object always goes before its spans (a span's
    /// trace committed before the span was written).
    func nextBatch(from: ExportPositions) async throws -> Read {
        let limit = max(1, exporter.batchSize)
        let rows = try await connection.query(Self.readStatement(exporter: exporter.name, from: from, limit: limit))
        var read = Read(next: from)
        guard let horizon = rows.first?["horizon"] else { return read }
        let parts = Dictionary(grouping: rows.filter { $0["part"] != nil }, by: { $0.int("part") ?? 0 })
        let safeTraces = parts[1] ?? [], recentTraces = parts[2] ?? []
        var safeSpans = parts[3] ?? [], recentSpans = parts[4] ?? []
        let exhausted = ExportPosition(txid: horizon, id: "")
        read.next.trace = safeTraces.count == limit ? ExportPosition(row: safeTraces[limit - 1]) : exhausted
        let spanRoom = limit - safeTraces.count - recentTraces.count
        if spanRoom > 0 {
            if safeSpans.count >= spanRoom {
                safeSpans = Array(safeSpans.prefix(spanRoom))
                recentSpans = []
                read.next.span = ExportPosition(row: safeSpans[spanRoom - 1])
            } else {
                recentSpans = Array(recentSpans.prefix(spanRoom - safeSpans.count))
                read.next.span = exhausted
            }
        }
        // Progress: rows were read, or the position left the rows stored before migration
        // 0047 (saved even when nothing was read, so they are never walked again).
        let leftLegacy = (from.trace.txid == nil && read.next.trace.txid != nil) || (from.span.txid == nil && read.next.span.txid != nil)
        read.progressed = !(safeTraces.isEmpty && recentTraces.isEmpty && safeSpans.isEmpty && recentSpans.isEmpty) || leftLegacy
        for row in safeTraces + recentTraces where row.bool("done") != true {
            read.batch.traces.append(try Self.trace(row, prefix: ""))
        }
        for row in safeSpans + recentSpans where row.bool("done") != true {
            let record = try Ledger.span(row)
            var trace = try Self.trace(row, prefix: "")
            trace.id = record.traceId
            read.batch.spans.append(ExportSpan(record: record, trace: trace))
        }
        return read
    }

    /// The one statement of a poll (also EXPLAINed by the hot-path tests): `part` 1 = safe
    /// traces, 2 = recent traces, 3 = safe spans, 4 = recent spans, each in (txid, id) order,
    /// at most `limit` rows each (one row with only `horizon` when nothing is left); `done` says whether a row read has a delivery row already.
    /// Every part is a range scan of the `(txid, id)` index (migration 0048) after the
    /// position or from the horizon, so a poll costs O(batch) at any ledger size.
    public static func readStatement(exporter: String, from p: ExportPositions, limit: Int) -> PostgresQuery {
        let n: PostgresQuery = "\(limit)::int"
        let h: PostgresQuery = "(SELECT x FROM h)"
        let traceCols: PostgresQuery = """
            t.txid, t.trace_id AS id, t.trace_id, t.workflow_name, t.group_id, t.metadata::text AS metadata, NULL::text AS span_id,
            NULL::text AS parent_id, NULL::timestamptz AS started_at, NULL::timestamptz AS ended_at,
            NULL::text AS span_data, NULL::text AS error
            """
        let spanCols: PostgresQuery = """
            s.txid, s.span_id AS id, s.trace_id, t.workflow_name, t.group_id, t.metadata::text AS metadata, s.span_id,
            s.parent_id, s.started_at, s.ended_at, s.span_data::text AS span_data, s.error::text AS error
            """
        let traceFrom: PostgresQuery = "bridge.traces t"
        let spanFrom: PostgresQuery = "bridge.spans s JOIN bridge.traces t ON t.trace_id = s.trace_id"
        // Whether a row has its delivery row: a scalar probe of the delivery table's primary key
        // per row read (never an anti-join or hashed subplan, which would read every delivery).
        let traceDone: PostgresQuery = "(SELECT true FROM bridge.trace_deliveries d WHERE d.exporter = \(exporter) AND d.trace_id = t.trace_id) IS NOT NULL"
        let spanDone: PostgresQuery = "(SELECT true FROM bridge.span_deliveries d WHERE d.exporter = \(exporter) AND d.span_id = s.span_id) IS NOT NULL"
        /// The safe rows after `pos`: below the horizon, and first, while the position is
        /// among them, the rows stored before migration 0047 (txid NULL).
        func safe(_ pos: ExportPosition, a: String, key: String, cols: PostgresQuery, from: PostgresQuery, done: PostgresQuery,
                  filter: PostgresQuery) -> PostgresQuery {
            let select: PostgresQuery = "SELECT \(cols), \(done) AS done"
            let order: PostgresQuery = "ORDER BY \(unsafeRaw: a).txid, \(unsafeRaw: a).\(unsafeRaw: key) LIMIT \(n)"
            guard pos.txid != nil else {
                return """
                    SELECT * FROM (
                      (\(select), 0 AS o FROM \(from) WHERE \(pos.after(alias: a, key: key, legacyOnly: true))\(filter) \(order))
                      UNION ALL
                      (\(select), 1 AS o FROM \(from) WHERE \(unsafeRaw: a).txid < \(h)\(filter) \(order))
                    ) u ORDER BY o, txid, id LIMIT \(n)
                    """
            }
            return """
                \(select), 1 AS o FROM \(from)
                WHERE \(pos.after(alias: a, key: key)) AND \(unsafeRaw: a).txid < \(h)\(filter) \(order)
                """
        }
        func recent(a: String, key: String, cols: PostgresQuery, from: PostgresQuery, done: PostgresQuery,
                    filter: PostgresQuery) -> PostgresQuery {
            """
            SELECT \(cols), false AS done, 1 AS o FROM \(from)
            WHERE \(unsafeRaw: a).txid >= \(h)\(filter) AND NOT \(done) ORDER BY \(unsafeRaw: a).txid, \(unsafeRaw: a).\(unsafeRaw: key) LIMIT \(n)
            """
        }
        // Spans are read only when the traces left room (a one-time filter: no scan otherwise).
        // Every part has the constant limit, so the planner takes the index's order; the
        // caller takes what fits.
        let traceCount: PostgresQuery = "(SELECT count(*) FROM ts) + (SELECT count(*) FROM tr)"
        let spanFilter: PostgresQuery = " AND s.ended_at IS NOT NULL AND \(traceCount) < \(n)"
        let recentSpanFilter: PostgresQuery = " AND s.ended_at IS NOT NULL AND \(traceCount) + (SELECT count(*) FROM ss) < \(n)"
        return """
            WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x),
            ts AS (\(safe(p.trace, a: "t", key: "trace_id", cols: traceCols, from: traceFrom, done: traceDone, filter: ""))),
            tr AS (\(recent(a: "t", key: "trace_id", cols: traceCols, from: traceFrom, done: traceDone, filter: ""))),
            ss AS (\(safe(p.span, a: "s", key: "span_id", cols: spanCols, from: spanFrom, done: spanDone, filter: spanFilter))),
            sr AS (\(recent(a: "s", key: "span_id", cols: spanCols, from: spanFrom, done: spanDone, filter: recentSpanFilter)))
            SELECT q.*, q.txid::text AS cursor_txid, h.x::text AS horizon FROM h LEFT JOIN (
              SELECT 1 AS part, * FROM ts UNION ALL SELECT 2, * FROM tr UNION ALL SELECT 3, * FROM ss UNION ALL SELECT 4, * FROM sr
            ) q ON true ORDER BY q.part, q.o, q.txid, q.id
            """
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
        var backoffs = 0
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
                    backoffs += 1
                    delay = RetryBackoff.delay(attempt: backoffs, base: options.initialBackoff, cap: options.maxBackoff)
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
    /// items once more (after the cause was fixed): their delivery rows are deleted and the
    /// exporter's position moves back to just before the earliest of them (the delivered rows
    /// in between are read again and passed over, not sent again). One transaction; a pump
    /// running meanwhile notices the moved position (`save`). Returns how many rows were cleared.
    public static func retryRejected(exporter: String, connection: PostgresConnection) async throws -> Int {
        try await connection.transaction { c in
            var n = 0
            for (table, key, deliveries, column) in [("bridge.traces", "trace_id", "bridge.trace_deliveries", "trace"),
                                                     ("bridge.spans", "span_id", "bridge.span_deliveries", "span")] {
                let rows = try c.query("""
                    WITH gone AS (
                        DELETE FROM \(unsafeRaw: deliveries) WHERE exporter = \(exporter) AND status = 'rejected' RETURNING \(unsafeRaw: key) AS id
                    ), earliest AS (
                        SELECT x.txid, x.\(unsafeRaw: key) AS id FROM \(unsafeRaw: table) x JOIN gone g ON g.id = x.\(unsafeRaw: key)
                        ORDER BY x.txid NULLS FIRST, x.\(unsafeRaw: key) LIMIT 1
                    ), target AS (
                        -- Just before the earliest: before its transaction's rows, or (rows stored
                        -- before migration 0047) after the legacy row before it.
                        SELECT e.txid, CASE WHEN e.txid IS NOT NULL THEN '' ELSE coalesce((
                                 SELECT x.\(unsafeRaw: key) FROM \(unsafeRaw: table) x WHERE x.txid IS NULL AND x.\(unsafeRaw: key) < e.id
                                 ORDER BY x.txid DESC, x.\(unsafeRaw: key) DESC LIMIT 1), '') END AS id
                        FROM earliest e
                    ), moved AS (
                        UPDATE bridge.export_positions p SET \(unsafeRaw: column)_txid = t.txid, \(unsafeRaw: column)_id = t.id, updated_at = now()
                        FROM target t
                        WHERE p.exporter = \(exporter)
                          AND CASE WHEN t.txid IS NULL THEN p.\(unsafeRaw: column)_txid IS NOT NULL OR p.\(unsafeRaw: column)_id > t.id
                                   ELSE (p.\(unsafeRaw: column)_txid, p.\(unsafeRaw: column)_id) > (t.txid, t.id) END
                        RETURNING 1
                    )
                    SELECT (SELECT count(*) FROM gone) AS n, (SELECT count(*) FROM moved) AS moved
                    """)
                n += rows.first?.int("n") ?? 0
            }
            return n
        }
    }
}
