import BridgeCore
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// What `bridge prune` removes and how: the cutoff, and settings whose defaults are the ones
/// `bridge prune` documents for its flags (callers set what they change).
public struct PruneOptions: Sendable {
    /// Traces that started before this instant are candidates (with their spans, transcript and
    /// delivery records).
    public var cutoff: Date
    /// Traces per batch; each batch is one statement, so one short transaction.
    public var batchSize = 1000
    /// Also remove traces an active exporter has not delivered yet. Off by default: a trace is
    /// kept while any exporter seen since the cutoff still lacks a delivery record for it.
    public var includeUndelivered = false
    /// Count only, in a READ ONLY transaction that is rolled back.
    public var dryRun = false
    /// `lock_timeout` of each batch, in milliseconds; a batch that times out is retried with the
    /// project's backoff (`RetryBackoff`), so prune waits for others instead of blocking them.
    public var lockTimeoutMs = 2000
    /// A query of one text column: the keys of the tasks that hold a lease (from the mappings:
    /// `TaskStore.leasedKeysQuery`, served by the partial lease index). Their traces are kept
    /// whatever their age, checked in the statement that deletes. `bridge prune` always sets it;
    /// without it only the ledger decides (unfinished runs are kept all the same).
    public var leasedTaskKeys: PostgresQuery?

    public init(cutoff: Date) { self.cutoff = cutoff }
}

/// Counts of one prune, so far or in all.
public struct PruneProgress: Sendable, Equatable {
    /// Traces removed (or, in a dry run, that would be).
    public var traces = 0
    /// Spans removed with them.
    public var spans = 0
    /// Run transcripts removed with them.
    public var transcripts = 0
    /// Span and trace delivery records removed with them.
    public var deliveries = 0
    /// Old traces kept: unfinished, of a leased task, undelivered, paused for an approval,
    /// still writing spans, or locked.
    public var kept = 0
    /// Old traces looked at so far.
    public var examined = 0
    /// Traces older than the cutoff when the prune started (an estimate of `examined` at the end).
    public var candidates = 0

    public init() {}
}

/// Removes old traces from the ledger in short batches (`bridge prune`).
///
/// Each batch is one statement (one short transaction): it picks the next `batchSize` traces
/// older than the cutoff in `(started_at, trace_id)` order after a keyset cursor, through
/// `idx_traces_started_at`, keeps the ones that must stay, locks the rest with `SKIP LOCKED`
/// (a trace a worker is writing is skipped, never waited for) and deletes their delivery
/// records, transcript, spans and trace by index, counting each. The cost of a batch does not
/// depend on the size of the ledger. A trace is kept when
/// - an exporter seen since the cutoff has not delivered all of it (unless `includeUndelivered`),
/// - its run is not finished (`ended_at` unset: a run in a long tool or model call writes no
///   span for as long as the call lasts; a killed run's trace may be resumed),
/// - its task holds a lease (`PruneOptions.leasedTaskKeys`: a run still writing its result),
/// - its run is paused for an approval (`bridge.run_states`), or
/// - one of its spans was written after the cutoff (a long run or a resumed one).
/// Each is checked in the statement that deletes, so a run that starts, resumes or takes its
/// lease meanwhile is seen (the rows it writes are locked against the delete, or visible to it).
///
/// Every prune is recorded in `bridge.prunes` (cutoff and counts, updated with each batch):
/// `bridge verify` reads the newest cutoff as the ledger's horizon.
@MemberwiseInit
public struct LedgerPruner: Sendable {
    public let connection: PostgresConnection
    public let options: PruneOptions

    /// Runs the prune to the end, calling `progress` after every batch.
    public func run(progress: @Sendable (PruneProgress) -> Void = { _ in }) async throws -> PruneProgress {
        try await Self.requireTables(on: connection)
        var total = PruneProgress()
        total.candidates =
            try await connection.query(
                """
                SELECT count(*) AS n FROM bridge.traces WHERE started_at < \(options.cutoff)::timestamptz
                """
            ).one().decode(Int.self, "n")
        progress(total)
        if options.dryRun {
            try await connection.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            do {
                total = try await loop(total, pruneId: nil, progress: progress)
                try await connection.simpleQuery("ROLLBACK")
            } catch {
                _ = try? await connection.simpleQuery("ROLLBACK")
                throw error
            }
            return total
        }
        let id =
            try await connection.query(
                """
                INSERT INTO bridge.prunes (cutoff, include_undelivered) VALUES (\(options.cutoff)::timestamptz, \(options.includeUndelivered))
                RETURNING id
                """
            ).one().decode(String.self, "id")
        try await connection.set("lock_timeout", "\(options.lockTimeoutMs)ms")
        total = try await loop(total, pruneId: id, progress: progress)
        try await connection.query("UPDATE bridge.prunes SET finished_at = now() WHERE id = \(id)::bigint")
        return total
    }

    private func loop(
        _ start: PruneProgress, pruneId: String?,
        progress: @Sendable (PruneProgress) -> Void
    ) async throws -> PruneProgress {
        var total = start
        var cursor: (startedAt: String, traceId: TraceID)?
        while true {
            let row = try await batch(after: cursor, pruneId: pruneId)
            guard let next = row.cursor else { break }
            cursor = next
            total.examined += row.examined
            total.traces += row.traces
            total.spans += row.spans
            total.transcripts += row.transcripts
            total.deliveries += row.deliveries
            total.kept += row.examined - row.traces
            progress(total)
        }
        return total
    }

    private struct BatchResult {
        var cursor: (startedAt: String, traceId: TraceID)?
        var examined = 0, traces = 0, spans = 0, transcripts = 0, deliveries = 0
    }

    /// One batch, retried with backoff while it meets a lock held by someone else.
    private func batch(after cursor: (startedAt: String, traceId: TraceID)?, pruneId: String?) async throws
        -> BatchResult
    {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let q = Self.statement(options, after: cursor, pruneId: pruneId)
                let row = try await connection.query(q).one()
                // No candidate left: the last trace id and time are NULL, and the prune is done.
                guard let last = try row.optional(TraceID.self, "last_trace_id"),
                    let lastStarted = try row.optional(String.self, "last_started_at")
                else { return BatchResult() }
                return BatchResult(
                    cursor: (lastStarted, last), examined: try row.decode(Int.self, "examined"),
                    traces: try row.decode(Int.self, "traces"), spans: try row.decode(Int.self, "spans"),
                    transcripts: try row.decode(Int.self, "transcripts"),
                    deliveries: try row.decode(Int.self, "deliveries"))
            } catch let error as PostgresError where error.isLockConflict && attempt < 8 {
                try await Task.sleep(for: .seconds(RetryBackoff.delay(attempt: attempt, base: 0.2, cap: 5)))
            }
        }
    }

    /// The batch statement. Its first rows come from `idx_traces_started_at` (a keyset range),
    /// every other table is reached by its trace or span id index (`idx_spans_trace_id`,
    /// `idx_span_deliveries_trace`, `idx_trace_deliveries_trace_id`, the transcripts' primary
    /// key), so a batch reads only its own traces.
    static func statement(
        _ o: PruneOptions, after cursor: (startedAt: String, traceId: TraceID)?,
        pruneId: String?
    ) -> PostgresQuery {
        let after: PostgresQuery =
            // Empty default: the first batch has no cursor.
            cursor.map { "AND (t.started_at, t.trace_id) > (\($0.startedAt)::timestamptz, \($0.traceId))" } ?? ""
        // Everything below the candidates is reached through `= ANY(array)`, an index probe
        // per trace whatever the planner guesses about the batch's size.
        let leased: PostgresQuery = o.leasedTaskKeys == nil ? "" : "OR t.task_id IN (SELECT k FROM leased)"
        let keep: PostgresQuery = """
            t.ended_at IS NULL \(leased)
            OR EXISTS (SELECT 1 FROM bridge.run_states r WHERE r.trace_id = t.trace_id)
            OR EXISTS (SELECT 1 FROM bridge.run_journals j WHERE j.trace_id = t.trace_id)
            OR EXISTS (SELECT 1 FROM bridge.spans s WHERE s.trace_id = t.trace_id AND s.created_at >= \(o.cutoff)::timestamptz)
            OR (NOT \(o.includeUndelivered) AND EXISTS (
                SELECT 1 FROM bridge.exporters e
                WHERE e.last_seen_at >= \(o.cutoff)::timestamptz
                  AND (NOT EXISTS (SELECT 1 FROM bridge.trace_deliveries d WHERE d.exporter = e.name AND d.trace_id = t.trace_id)
                       OR EXISTS (SELECT 1 FROM bridge.spans s WHERE s.trace_id = t.trace_id
                                  AND NOT EXISTS (SELECT 1 FROM bridge.span_deliveries d
                                                  WHERE d.exporter = e.name AND d.span_id = s.span_id)))))
            """
        // The leased tasks' keys, once per statement (as many as runs in flight).
        // Empty default: no leased keys, no CTE.
        let leasedCTE: PostgresQuery = o.leasedTaskKeys.map { "leased(k) AS (\($0))," } ?? ""
        let candidates: PostgresQuery = """
            \(leasedCTE)
            candidates AS (
                SELECT t.trace_id, t.started_at FROM bridge.traces t
                WHERE t.started_at < \(o.cutoff)::timestamptz \(after)
                ORDER BY t.started_at, t.trace_id
                LIMIT \(o.batchSize)
            )
            """
        let last: PostgresQuery = """
            (SELECT count(*) FROM candidates) AS examined,
            (SELECT c.trace_id FROM candidates c ORDER BY c.started_at DESC, c.trace_id DESC LIMIT 1) AS last_trace_id,
            (SELECT c.started_at FROM candidates c ORDER BY c.started_at DESC, c.trace_id DESC LIMIT 1) AS last_started_at
            """
        let victims: PostgresQuery = """
            SELECT t.trace_id FROM bridge.traces t
            WHERE t.trace_id = ANY (ARRAY(SELECT trace_id FROM candidates)) AND NOT (\(keep))
            """
        let ids: PostgresQuery = "ANY ((SELECT a FROM ids)::text[])"
        guard let pruneId else {
            // Dry run: the same choice, counted, in a read-only transaction (no row locks).
            return """
                WITH \(candidates),
                ids AS (SELECT coalesce(array_agg(trace_id), '{}') AS a FROM (\(victims)) v)
                SELECT \(last),
                    (SELECT cardinality(a) FROM ids) AS traces,
                    (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = \(ids)) AS spans,
                    (SELECT count(*) FROM bridge.run_transcripts x WHERE x.trace_id = \(ids)) AS transcripts,
                    (SELECT count(*) FROM bridge.span_deliveries d WHERE d.trace_id = \(ids))
                    + (SELECT count(*) FROM bridge.trace_deliveries d WHERE d.trace_id = \(ids)) AS deliveries
                """
        }
        return """
            WITH \(candidates),
            ids AS (SELECT coalesce(array_agg(trace_id), '{}') AS a FROM (\(victims) FOR UPDATE OF t SKIP LOCKED) v),
            sd AS (DELETE FROM bridge.span_deliveries d WHERE d.trace_id = \(ids) RETURNING 1),
            td AS (DELETE FROM bridge.trace_deliveries d WHERE d.trace_id = \(ids) RETURNING 1),
            rt AS (DELETE FROM bridge.run_transcripts x WHERE x.trace_id = \(ids) RETURNING 1),
            jc AS (DELETE FROM bridge.journal_calls j WHERE j.trace_id = \(ids) RETURNING 1),
            sp AS (DELETE FROM bridge.spans s WHERE s.trace_id = \(ids) RETURNING 1),
            tr AS (DELETE FROM bridge.traces t WHERE t.trace_id = \(ids) RETURNING 1),
            counts AS (
                SELECT (SELECT count(*) FROM tr) AS traces, (SELECT count(*) FROM sp) AS spans,
                       (SELECT count(*) FROM rt) AS transcripts,
                       (SELECT count(*) FROM sd) + (SELECT count(*) FROM td) AS deliveries
            ),
            logged AS (
                UPDATE bridge.prunes p SET traces = p.traces + counts.traces, spans = p.spans + counts.spans
                FROM counts WHERE p.id = \(pruneId)::bigint RETURNING 1
            )
            SELECT \(last), counts.*, (SELECT count(*) FROM logged) AS logged FROM counts
            """
    }

    /// Statements `HotPathPlanTests` explains on a large ledger (none may scan a ledger table).
    public static func hotPathStatements(cutoff: Date, leasedTaskKeys: PostgresQuery? = nil) -> [(
        name: String, query: PostgresQuery
    )] {
        var o = PruneOptions(cutoff: cutoff)
        o.leasedTaskKeys = leasedTaskKeys
        return [
            ("prune first batch", statement(o, after: nil, pruneId: "1")),
            ("prune later batch", statement(o, after: ("2026-01-01 00:00:00+00", "trace_0"), pruneId: "1")),
            ("prune dry-run batch", statement(o, after: ("2026-01-01 00:00:00+00", "trace_0"), pruneId: nil)),
        ]
    }

    static func requireTables(on connection: PostgresConnection) async throws {
        let ok = try await connection.ledgerHas([.prunes, .spanDeliveries, .runStates, .runJournals, .journalCalls])
        if !ok { throw PruneError.noLedger(connection.redactedTarget) }
    }
}

/// Why a prune could not start.
public enum PruneError: BridgeError, Equatable {
    /// The ledger (or `bridge.prunes`) is missing: `bridge migrate` has not run.
    case noLedger(String)

    public var exitStatus: ExitStatus { .badInput }
    public var description: String {
        switch self {
        case .noLedger(let target): "bridge.prunes does not exist in \(target): run `bridge migrate` first"
        }
    }
}
