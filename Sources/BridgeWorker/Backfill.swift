// `bridge exec --backfill`: its options, summary and preview, and the batch loop. A batch reads
// history (BackfillHistory), rebuilds each task's trace in Swift with the trace model
// (BackfillTraceBuilder) and writes the batch in bulk (BackfillWriter), in one short transaction.
import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTraceModel
import Foundation
import Synchronization

/// Settings for one `bridge exec --backfill` process. Every setting has a default (the one
/// `bridge exec --backfill` documents for its flag); callers start from `BackfillOptions()` and
/// set what they change.
public struct BackfillOptions: Sendable {
    /// Tasks per batch (one short transaction each).
    public var batchSize = 1_000
    /// Rebuild at most this many tasks (nil: all).
    public var limit: Int?
    /// Only tasks finished at or after this instant.
    public var since: Date?
    /// Pause between batches, to leave room for the application on a busy database. A run
    /// that pauses uses one connection.
    public var pauseMilliseconds = 0
    /// Connections that work on batches at once (each batch its own transaction): while one
    /// connection's batch is written by the database, the next one is read and built.
    public var connections = 2

    public init() {}

    /// How many connections a run opens: `connections`, or one when it pauses between batches.
    public var connectionCount: Int { pauseMilliseconds > 0 ? 1 : max(1, connections) }
}

/// What one backfill run did.
public struct BackfillSummary: Sendable, Equatable {
    /// Tasks that received a trace id.
    public var tasks = 0
    /// Execution rows that received a trace id.
    public var executions = 0
    /// Trace and span rows inserted (rows that existed already are not counted).
    public var traces = 0
    public var spans = 0
    public var batches = 0
    /// Tasks left untraced because `bridge exec` could not choose their agent either (no
    /// agent mapped and no `default_agent`); the first `BackfillSkip.listed` are in `skippedTasks`.
    public var skipped = 0
    public var skippedTasks: [BackfillSkip] = []
    /// Matching tasks still without a trace id when the run ended (skipped, locked by someone
    /// else, changed meanwhile, or beyond `--limit`).
    public var remaining = 0
    public var elapsed: Duration = .zero

    public init() {}

    public var line: String {
        String(
            format:
                "backfilled %d tasks (%d traces, %d spans, %d execution rows) in %d batches, %d skipped, %d left, elapsed %.2fs",
            tasks, traces, spans, executions, batches, skipped, remaining, elapsed.inSeconds)
    }
}

/// A task the backfill left untraced, and why (the live path's `RunSpecError` text).
public struct BackfillSkip: Sendable, Equatable {
    public var taskId: TaskKey
    public var reason: String
    /// How many skipped tasks a summary lists (the rest are counted).
    public static let listed = 50
}

/// What `--dry-run` reports: the counts and a few rebuilt traces (SDK export objects).
public struct BackfillPreview: Sendable {
    public var tasks: Int
    public var spans: Int
    public var functionSpans: Int
    public var skipped: Int
    public var skippedTasks: [BackfillSkip]
    /// One JSON object per sampled task: `{"trace": {...}, "spans": [...]}`.
    public var sample: [String]
}

/// `bridge exec --backfill`: rebuilds the traces of historical runs from the records already
/// stored, without calling any model.
///
/// Tasks are selected by the mappings' status values (completed or failed) and a null trace id
/// column, walked in keyset batches on the task key (by two connections, so the database writes
/// one batch while bridge builds the next). Each batch is one short transaction of three
/// statements: it locks the batch's task rows (`FOR NO KEY UPDATE SKIP LOCKED`, never
/// waiting for the application) and reads them with their latest execution row, reads their
/// tool-call log rows, builds each trace in Swift with the trace model
/// (`BackfillTraceBuilder`: the live path's span types, JSON, error wording, redaction, agent
/// selection and ids), and writes traces, spans and transcripts with array binds
/// (`INSERT … SELECT FROM unnest(…)`, `ON CONFLICT DO NOTHING`) and the trace id onto the task
/// and that execution row, guarded on the column still being null. Results and statuses are
/// never written. A task whose agent `bridge exec` could not choose either is skipped and
/// reported (`BackfillSummary.skipped`), never given an invented agent.
///
/// Ids are deterministic: the trace id is `trace_` + the first 32 hex of
/// SHA-256("bridge-backfill:<task key>") (a namespace of its own, so it never equals the id of
/// an attempt run by `bridge exec`, which hashes "bridge-trace:<key>:<attempt>"), and each span
/// id is `span_` + the first 24 hex of SHA-256("<trace id>:<slot>") with slot `task`, `agent`,
/// `turn:1`, `turn:2` or `function:<n>` (n-th tool call by start time, then log key). The state
/// of the backfill is the trace id column itself: a killed run loses at most its open batches
/// (rolled back), and the next run starts again from the first task still without a trace id.
public struct Backfiller: Sendable {
    public let config: MappingConfig
    let history: BackfillHistory
    let builder: BackfillTraceBuilder
    let writer: BackfillWriter

    /// `secrets` (passwords, keys) are replaced by `***` in what is stored, as in live traces.
    public init(config: MappingConfig, secrets: [String] = []) throws(ExecSetupError) {
        guard config.results.traceIdColumn != nil else {
            throw ExecSetupError(
                "a backfill needs results.trace_id_column in the mappings: the trace id column is what makes a backfill resumable and idempotent"
            )
        }
        self.config = config
        self.history = BackfillHistory(config: config)
        self.builder = BackfillTraceBuilder(config: config, secrets: secrets)
        self.writer = BackfillWriter(config: config)
    }

    /// One batch's traces, and the tasks skipped.
    struct Batch: Sendable {
        var runs = 0
        var cursor: TaskKey?
        var traces: [RebuiltTrace] = []
        var skipped: [BackfillSkip] = []
    }

    /// Reads a batch and builds its traces (inside the caller's transaction).
    func build(on c: isolated PostgresConnection, cursor: TaskKey?, limit: Int, since: Date?, lock: Bool) throws
        -> Batch
    {
        build(try history.read(on: c, cursor: cursor, limit: limit, since: since, lock: lock))
    }

    /// The traces of `runs`, and the tasks skipped.
    func build(_ runs: [HistoricalRun]) -> Batch {
        var batch = Batch(runs: runs.count, cursor: runs.last?.taskKey)
        batch.traces.reserveCapacity(runs.count)
        let now = Date()
        for run in runs {
            do {
                batch.traces.append(try builder.build(run, now: now))
            } catch {
                batch.skipped.append(BackfillSkip(taskId: error.taskId, reason: error.message))
            }
        }
        return batch
    }

    /// The statements a backfill runs per batch, with a sample task and execution key (for
    /// the EXPLAIN tests, like `TaskStore.hotPathStatements`).
    public func hotPathStatements(taskKey: TaskKey, executionKey: String) -> [(name: String, query: PostgresQuery)] {
        var out: [(name: String, query: PostgresQuery)] = [
            ("backfill batch", history.batchStatement(cursor: taskKey, limit: 1_000, since: nil, lock: true))
        ]
        if let calls = history.toolCallStatement(taskKeys: [taskKey]) { out.append(("backfill tool calls", calls)) }
        if let trace = try? builder.build(HistoricalRun(taskKey: taskKey, execution: .init(key: executionKey))) {
            out.append(("backfill write", writer.statement([trace])))
        }
        return out
    }

    // MARK: Running

    /// Runs batches until no matching task is left (or `limit` tasks are done), on one
    /// connection or more (`BackfillOptions.connections`): each batch is one transaction on one
    /// of them, and batches are read one after the other (`BackfillKeyset`), so they are
    /// consecutive key ranges whichever connection takes them.
    public func run(on conns: [PostgresConnection], options: BackfillOptions, progress: ProgressReporter) async throws
        -> BackfillSummary
    {
        precondition(!conns.isEmpty, "a backfill needs a connection")
        let started = ContinuousClock.now
        for c in conns { try await c.set("TimeZone", "UTC") }
        let matching = try await count(on: conns[0], options: options)
        let total = options.limit.map { min($0, matching) } ?? matching
        progress.status("\(total) task(s) to rebuild")
        let keyset = BackfillKeyset(total: total, batchSize: options.batchSize)
        let tally = BackfillTally(total: total, started: started, progress: progress)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for conn in conns {
                group.addTask {
                    // A failed batch on one connection ends the run: the other stops at its next batch.
                    while !Task.isCancelled,
                        let (batch, written) = try await conn.transaction({ c in
                            try writeNextBatch(on: c, keyset: keyset, since: options.since)
                        })
                    {
                        await tally.add(batch, written)
                        if options.pauseMilliseconds > 0 {
                            try await Task.sleep(nanoseconds: UInt64(options.pauseMilliseconds) * 1_000_000)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        progress.finish()
        var summary = await tally.summary
        summary.remaining = try await count(on: conns[0], options: options)
        summary.elapsed = ContinuousClock.now - started
        return summary
    }

    /// `run(on:options:progress:)` on one connection.
    public func run(on conn: PostgresConnection, options: BackfillOptions, progress: ProgressReporter) async throws
        -> BackfillSummary
    {
        try await run(on: [conn], options: options, progress: progress)
    }

    /// One batch in the caller's transaction: the next key range is read and locked, its traces
    /// built and written. Nil when the run is done.
    func writeNextBatch(on c: isolated PostgresConnection, keyset: BackfillKeyset, since: Date?)
        throws -> (Batch, BackfillWriteCounts)?
    {
        guard
            let runs = try keyset.next({ after, limit in
                try history.read(on: c, cursor: after, limit: limit, since: since, lock: true)
            })
        else { return nil }
        var batch = build(runs)
        let written = try writer.write(batch.traces, on: c)
        batch.traces = []
        return (batch, written)
    }

    /// `12000/40000 tasks (30%), 2400.0/s, ETA 12s`.
    public static func progressLine(done: Int, total: Int, elapsed: Duration) -> String {
        let rate = elapsed > .zero ? Double(done) / elapsed.inSeconds : 0
        let pct = total > 0 ? Int((Double(done) / Double(total) * 100).rounded(.down)) : 100
        let eta = rate > 0 ? Int((Double(total - done) / rate).rounded(.up)) : 0
        return String(
            format: "%d/%d tasks (%d%%), %.0f/s, ETA %@", done, total, pct, rate,
            Self.duration(eta))
    }

    static func duration(_ s: Int) -> String {
        s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }

    /// Tasks that match the backfill filter now (`since`; `limit` does not cap the count).
    public func count(on conn: PostgresConnection, options: BackfillOptions) async throws -> Int {
        try await conn.query(history.countStatement(since: options.since)).first?.int("n") ?? 0
    }

    /// What a backfill would do, computed by the same code without writing: every matching
    /// task (up to `limit`) is read in batches and rebuilt inside ONE READ ONLY transaction
    /// that is always rolled back; the counts cover them all, the sample is the first
    /// `sampleSize` rebuilt traces.
    public func preview(on conn: PostgresConnection, options: BackfillOptions, sampleSize: Int = 3) async throws
        -> BackfillPreview
    {
        try await conn.set("TimeZone", "UTC")
        return try await conn.readOnlyRolledBack { c in
            var p = BackfillPreview(tasks: 0, spans: 0, functionSpans: 0, skipped: 0, skippedTasks: [], sample: [])
            var cursor: TaskKey?
            var done = 0
            while options.limit.map({ done < $0 }) ?? true {
                let want = min(options.batchSize, options.limit.map { $0 - done } ?? options.batchSize)
                let batch = try build(on: c, cursor: cursor, limit: want, since: options.since, lock: false)
                guard batch.runs > 0 else { break }
                done += batch.runs
                cursor = batch.cursor
                for t in batch.traces {
                    p.tasks += 1
                    p.spans += t.spans.count
                    p.functionSpans += t.spans.filter { $0.kind == .function }.count
                    if p.sample.count < sampleSize { p.sample.append(t.exportJSON.compact) }
                }
                p.skipped += batch.skipped.count
                p.skippedTasks += batch.skipped.prefix(max(0, BackfillSkip.listed - p.skippedTasks.count))
            }
            return p
        }
    }
}

/// The keyset position shared by a run's connections: the next batch is read (and its rows
/// locked) under this lock, so batches are consecutive key ranges and `--limit` is exact
/// however many connections work. The lock is held on a connection's own thread, never on
/// Swift's cooperative pool.
final class BackfillKeyset: Sendable {
    private struct Position {
        var after: TaskKey?
        var reserved = 0
        var exhausted = false
    }
    private let position = Mutex(Position())
    let total: Int
    let batchSize: Int

    init(total: Int, batchSize: Int) {
        self.total = total
        self.batchSize = batchSize
    }

    /// Reads the next batch with `read(after key, limit)`; nil once no task is left or `total`
    /// tasks were handed out.
    func next(_ read: (TaskKey?, Int) throws -> [HistoricalRun]) throws -> [HistoricalRun]? {
        try position.withLock { (p: inout Position) throws -> [HistoricalRun]? in
            guard !p.exhausted, p.reserved < total else { return nil }
            let runs = try read(p.after, min(batchSize, total - p.reserved))
            guard let last = runs.last else {
                p.exhausted = true
                return nil
            }
            p.reserved += runs.count
            p.after = last.taskKey
            return runs
        }
    }
}

/// A run's summary and progress line, added to as each batch commits.
actor BackfillTally {
    private(set) var summary = BackfillSummary()
    private var done = 0
    private var lastLog: ContinuousClock.Instant?
    let total: Int
    let started: ContinuousClock.Instant
    let progress: ProgressReporter

    init(total: Int, started: ContinuousClock.Instant, progress: ProgressReporter) {
        self.total = total
        self.started = started
        self.progress = progress
    }

    func add(_ batch: Backfiller.Batch, _ written: BackfillWriteCounts) {
        done += batch.runs
        summary.batches += 1
        summary.tasks += written.tasks
        summary.executions += written.executions
        summary.traces += written.traces
        summary.spans += written.spans
        for skip in batch.skipped {
            if summary.skipped < BackfillSkip.listed {
                summary.skippedTasks.append(skip)
                progress.status("skipped task \(skip.taskId): \(skip.reason)")
            }
            summary.skipped += 1
        }
        let line = Backfiller.progressLine(done: done, total: total, elapsed: ContinuousClock.now - started)
        progress.update(line)
        if lastLog.map({ ContinuousClock.now - $0 >= .seconds(1) }) ?? true || done >= total {
            progress.statusWhenNotLive(line)
            lastLog = ContinuousClock.now
        }
    }
}
