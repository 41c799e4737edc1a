import BridgeCore
import BridgeMetrics
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

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

    public init(
        initialBackoff: Duration = .seconds(1), maxBackoff: Duration = .seconds(30),
        maxRetryAfter: Duration = .seconds(300),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) },
        onEvent: @escaping @Sendable (ExportEvent) -> Void = { _ in }, secrets: [String] = []
    ) {
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

    public init(
        exporter: any TraceExporter, connection: PostgresConnection, options: ExportPumpOptions = ExportPumpOptions()
    ) {
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
        try await connection.query(
            """
            INSERT INTO bridge.exporters (name, target) VALUES (\(exporter.name), \(exporter.target))
            ON CONFLICT (name) DO UPDATE SET target = EXCLUDED.target, last_seen_at = now()
            """)
    }

    /// Takes this exporter's advisory lock if no other session holds it. Returns whether this
    /// pump holds it now.
    @discardableResult
    public func tryLock() async throws -> Bool {
        if holdsLock { return true }
        let row = try await connection.query(
            """
            SELECT pg_try_advisory_lock(\(Int(Self.lockClass))::int, hashtext(\(exporter.name))) AS ok
            """
        ).one()
        holdsLock = try row.decode(Bool.self, "ok")
        return holdsLock
    }

    /// Releases the advisory lock (closing the connection does too).
    public func unlock() async {
        guard holdsLock else { return }
        _ = try? await connection.query(
            "SELECT pg_advisory_unlock(\(Int(Self.lockClass))::int, hashtext(\(exporter.name)))")
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
        guard holdsLock else {
            throw ExportFatalError(exporter: exporter.name, message: "the pump does not hold the export lock")
        }
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
        let row = try await connection.query(
            """
            SELECT (SELECT count(*) FROM bridge.traces t WHERE \(p.trace.after(alias: "t", key: "trace_id")) AND NOT EXISTS (
                      SELECT 1 FROM bridge.trace_deliveries d WHERE d.exporter = \(exporter) AND d.trace_id = t.trace_id)) AS traces,
                   (SELECT count(*) FROM bridge.spans s WHERE \(p.span.after(alias: "s", key: "span_id")) AND s.ended_at IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM bridge.span_deliveries d WHERE d.exporter = \(exporter) AND d.span_id = s.span_id)) AS spans
            """
        ).one()
        return ExportBacklog(traces: try row.decode(Int.self, "traces"), spans: try row.decode(Int.self, "spans"))
    }

    // MARK: - Delivering

    /// Splits a refused batch in halves until the items concerned are found; those are
    /// recorded `rejected` (the halves are not probed again).
    func rejectOrSplit(_ batch: ExportBatch, reason: String, priorAttempts: Int, stats s: inout ExportStats)
        async throws
    {
        if batch.count > 1 {
            options.onEvent(.splitting(exporter: exporter.name, items: batch.count, reason: scrub(reason)))
            let (a, b) = batch.halves()
            try await deliver(a, priorAttempts: priorAttempts, stats: &s, probed: true)
            try await deliver(b, priorAttempts: priorAttempts, stats: &s, probed: true)
            return
        }
        try await record(batch, status: .rejected, attempts: priorAttempts, error: scrub(reason))
        s.rejectedTraces += batch.traces.count
        s.rejectedSpans += batch.spans.count
        options.onEvent(
            .rejected(
                exporter: exporter.name, traces: batch.traces.count, spans: batch.spans.count, reason: scrub(reason)))
    }

    func deliver(_ batch: ExportBatch, priorAttempts: Int, stats s: inout ExportStats, probed: Bool = false)
        async throws
    {
        var attempts = 0
        var backoffs = 0
        while true {
            try Task.checkCancellation()
            attempts += 1
            s.requests += 1
            let result = await exporter.send(batch)
            switch result {
            case .delivered(let warning):
                try await record(
                    batch, status: .delivered, attempts: priorAttempts + attempts, error: warning.map(scrub))
                s.deliveredTraces += batch.traces.count
                s.deliveredSpans += batch.spans.count
                options.onEvent(
                    .delivered(exporter: exporter.name, traces: batch.traces.count, spans: batch.spans.count))
                return
            case .partial(let rejected, let message):
                try await recordPartial(
                    batch, rejected: rejected, message: message, attempts: priorAttempts + attempts, stats: &s)
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
                options.onEvent(
                    .retrying(exporter: exporter.name, reason: scrub(reason), after: delay, attempt: attempts))
                try await options.sleep(delay)
            case .refused(let reason) where !probed:
                // One empty request tells the payload from the endpoint: only a payload problem
                // is worth splitting the batch for.
                options.onEvent(.probing(exporter: exporter.name, reason: scrub(reason)))
                s.requests += 1
                switch await exporter.probe() {
                case .retry?:
                    s.retries += 1
                    backoffs += 1
                    try await options.sleep(
                        RetryBackoff.delay(attempt: backoffs, base: options.initialBackoff, cap: options.maxBackoff))
                    continue
                case .refused(let r)?, .reject(let r)?, .fatal(let r)?:
                    throw endpointRefused(r)
                case .delivered?, .partial?, nil:
                    try await rejectOrSplit(batch, reason: reason, priorAttempts: priorAttempts + attempts, stats: &s)
                    return
                }
            case .reject(let reason), .refused(let reason):
                try await rejectOrSplit(batch, reason: reason, priorAttempts: priorAttempts + attempts, stats: &s)
                return
            case .fatal(let reason):
                throw ExportFatalError(exporter: exporter.name, message: scrub(reason))
            }
        }
    }

    /// A receiver that accepted the request but dropped `rejected` of its spans. OTLP does not
    /// say which spans were dropped. When it dropped them all, they are rejected; otherwise the
    /// batch counts as delivered and every row of it keeps the receiver's message, so
    /// `bridge verify` can show it.
    private func recordPartial(
        _ batch: ExportBatch, rejected: Int, message: String, attempts: Int, stats s: inout ExportStats
    ) async throws {
        let text = scrub("receiver dropped \(rejected) of \(batch.spans.count) spans: \(message)")
        options.onEvent(
            .partial(exporter: exporter.name, rejectedSpans: rejected, of: batch.spans.count, message: scrub(message)))
        if rejected >= batch.spans.count, !batch.spans.isEmpty {
            try await record(ExportBatch(spans: batch.spans), status: .rejected, attempts: attempts, error: text)
            if !batch.traces.isEmpty {
                try await record(ExportBatch(traces: batch.traces), status: .delivered, attempts: attempts, error: nil)
            }
            s.rejectedSpans += batch.spans.count
            s.deliveredTraces += batch.traces.count
        } else {
            try await record(batch, status: .delivered, attempts: attempts, error: text)
            s.deliveredTraces += batch.traces.count
            s.deliveredSpans += batch.spans.count
        }
    }

    /// The error when even an empty request is refused: the endpoint is wrong, not a span.
    private func endpointRefused(_ reason: String) -> ExportFatalError {
        ExportFatalError(
            exporter: exporter.name,
            message: scrub(
                "the receiver refuses even an empty request (\(reason)), so the endpoint or its settings are wrong, not a span; "
                    + "nothing was recorded: fix it and run `bridge export`"))
    }

    /// Records the outcome for every item of `batch` in one statement (and refreshes the
    /// exporter's `last_seen_at`). An item that has a row already keeps it.
    ///
    /// A trace is `delivered` only when its spans are: a trace recorded while some of its
    /// spans stand rejected is recorded `rejected`, and rejecting spans turns their traces'
    /// `delivered` rows `rejected` (with why), so `bridge verify` and `bridge top` count it.
    func record(_ batch: ExportBatch, status: DeliveryStatus, attempts: Int, error: String?) async throws {
        var items: [JSONValue] = batch.traces.map {
            ["kind": "trace", "id": $0.id.json, "trace_id": $0.id.json]
        }
        items += batch.spans.map {
            ["kind": "span", "id": $0.record.id.json, "trace_id": $0.record.traceId.json]
        }
        let json = JSONValue.array(items).compact
        // Empty default: the receiver gave no reason.
        let spansRejected = "spans of this trace were rejected: " + (error ?? "")
        try await connection.query(
            """
            WITH items AS (
                SELECT x.kind, x.id, x.trace_id FROM jsonb_to_recordset(\(json)::jsonb) AS x(kind text, id text, trace_id text)
            ), spans AS (
                INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status, attempts, error)
                SELECT \(exporter.name)::text, i.id, i.trace_id, \(status)::text, \(attempts)::int, \(error.postgresValue)::text
                FROM items i WHERE i.kind = 'span'
                ON CONFLICT (exporter, span_id) DO NOTHING
            ), traces AS (
                INSERT INTO bridge.trace_deliveries (exporter, trace_id, status, attempts, error)
                SELECT \(exporter.name)::text, i.id, CASE WHEN r.trace_id IS NULL THEN \(status)::text ELSE 'rejected' END,
                       \(attempts)::int, CASE WHEN r.trace_id IS NULL THEN \(error.postgresValue)::text ELSE r.error END
                FROM items i
                LEFT JOIN LATERAL (
                    SELECT sd.trace_id, 'spans of this trace were rejected: ' || coalesce(sd.error, '') AS error
                    FROM bridge.span_deliveries sd
                    WHERE sd.trace_id = i.id AND sd.exporter = \(exporter.name)::text AND sd.status = 'rejected' LIMIT 1
                ) r ON true
                WHERE i.kind = 'trace'
                ON CONFLICT (exporter, trace_id) DO NOTHING
            ), demoted AS (
                UPDATE bridge.trace_deliveries d SET status = 'rejected', error = \(spansRejected)::text
                WHERE \(status)::text = 'rejected' AND d.exporter = \(exporter.name)::text AND d.status = 'delivered'
                  AND d.trace_id IN (SELECT i.trace_id FROM items i WHERE i.kind = 'span')
            )
            UPDATE bridge.exporters SET last_seen_at = now() WHERE name = \(exporter.name)
            """)
        BridgeMetrics.spansExported(exporter: exporter.name, delivered: status == .delivered, count: batch.spans.count)
    }

    func scrub(_ text: String) -> String { Redaction.scrub(text, secrets: options.secrets) }
}
