import BridgeCore
import BridgeMapping
import BridgeMetrics
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import Foundation
import Synchronization

/// The SQL of durable runs (`migrations/0050_run_journal.sql`): a run's journal head (its trace,
/// spec and latest checkpoint) and its finished calls. Every write a run makes while it holds a
/// lease is one statement that checks the lease (share-locking the task row), inserts the spans
/// ended since the last write and writes the journal row, so a step costs one round trip and a
/// stale worker's late step is refused like its late result.
public struct RunJournalStore: Sendable {
    public let config: MappingConfig
    let tasks: TaskStore

    public init(config: MappingConfig) {
        self.config = config
        self.tasks = TaskStore(config: config)
    }

    /// A run's journal as stored (the spec and checkpoint still undecoded).
    public struct Head: Sendable {
        public var traceId: TraceID
        public var attempt: Int
        public var format: Int
        public var spec: String
        public var checkpoint: String?
        public var workerId: String?
        public var updatedAt: Date
    }

    /// Whether `bridge migrate` created the journal tables.
    public func isMigrated(on conn: PostgresConnection) async throws -> Bool {
        try await conn.ledgerHas([.runJournals, .journalCalls])
    }

    public func head(on conn: PostgresConnection, taskKey: TaskKey) async throws -> Head? {
        guard
            let r = try await conn.query(
                """
                SELECT trace_id, attempt, format, spec::text AS spec, checkpoint::text AS checkpoint, worker_id,
                       extract(epoch FROM updated_at)::float8 AS updated
                FROM bridge.run_journals WHERE task_key = \(taskKey)
                """
            ).from("bridge.run_journals").first
        else { return nil }
        return Head(
            traceId: try r.decode(TraceID.self, "trace_id"), attempt: try r.decode(Int.self, "attempt"),
            format: try r.decode(Int.self, "format"), spec: try r.decode(String.self, "spec"),
            checkpoint: try r.optional(String.self, "checkpoint"), workerId: try r.optional(String.self, "worker_id"),
            updatedAt: Date(timeIntervalSince1970: try r.decode(Double.self, "updated")))
    }

    /// The finished calls of a trace (replayed by a resumed run).
    public func calls(on conn: PostgresConnection, traceId: TraceID) async throws -> [JournaledCall] {
        let rows = try await conn.query(
            "SELECT data::text AS data FROM bridge.journal_calls WHERE trace_id = \(traceId)"
        ).from("bridge.journal_calls")
        return try rows.map {
            try JSONDecoder().decode(JournaledCall.self, from: Data($0.decode(String.self, "data").utf8))
        }
    }

    /// `WITH lease AS (…)`: one row while `token` holds the task's lease (share-locked); one row
    /// always without a token (a run that holds no lease).
    func leaseCTE(_ token: LeaseToken?) -> PostgresQuery {
        guard let token else { return "lease AS (SELECT 1 AS ok)" }
        return "lease AS (\(tasks.leaseCheck(token)))"
    }

    /// Starts (or restarts) a run's journal: its trace, spec and no checkpoint, if the lease holds.
    func startQuery(taskKey: TaskKey, token: LeaseToken?, spec: RunSpec, specJSON: String, workerId: String)
        -> PostgresQuery
    {
        """
        WITH \(leaseCTE(token))
        INSERT INTO bridge.run_journals (task_key, trace_id, attempt, format, spec, worker_id)
        SELECT \(taskKey), \(spec.traceId), \(spec.attempt)::int, \(RunCheckpoint.format)::int, \(specJSON)::jsonb, \(workerId)
        WHERE EXISTS (SELECT 1 FROM lease)
        ON CONFLICT (task_key) DO UPDATE SET trace_id = EXCLUDED.trace_id, attempt = EXCLUDED.attempt,
            format = EXCLUDED.format, spec = EXCLUDED.spec, checkpoint = NULL, steps = 0,
            worker_id = EXCLUDED.worker_id, started_at = now(), updated_at = now()
        RETURNING 1 AS ok
        """
    }

    /// `value` as JSON text jsonb accepts: a U+0000 (a tool schema's example, a model's text)
    /// becomes U+FFFD, as everywhere bridge stores text (`TextSafety`).
    static func storableJSON<T: Encodable>(_ value: T) throws -> String {
        try storableJSON(text: String(decoding: try JSONEncoder().encode(value), as: UTF8.self))
    }

    /// JSON text made storable (see `storableJSON(_:)`); a byte scan finds the escape, so text
    /// without one (nearly all) costs one pass.
    static func storableJSON(text: String) throws -> String {
        guard mayHoldNUL(text) else { return text }
        return TextSafety.storable(try JSONValue.parse(text)).value.compact
    }

    /// Whether JSON text contains the escape `\u0000` (or text that looks like it).
    static func mayHoldNUL(_ text: String) -> Bool {
        let pattern: [UInt8] = Array("\\u0000".utf8)
        var matched = 0
        for byte in text.utf8 {
            if byte == pattern[matched] {
                matched += 1
                if matched == pattern.count { return true }
            } else {
                matched = byte == pattern[0] ? 1 : 0
            }
        }
        return false
    }

    /// What a fresh run writes before its first step, in ONE fenced statement (one round trip
    /// instead of six): its journal head, its trace, and its attempt's execution row. Nil when
    /// the execution row cannot be typed for an `INSERT … SELECT` (a column type unknown: then
    /// `start`, `TaskStore.startExecution` and the trace's insert run one after the other).
    func startRunQuery(
        taskKey: TaskKey, token: LeaseToken?, attempt: Int, agentId: String?, specJSON: String, workerId: String,
        task: Row, trace: TraceRecord, startedAt: Date
    ) -> PostgresQuery? {
        var parts: [PostgresQuery] = [
            leaseCTE(token),
            """
            j AS (INSERT INTO bridge.run_journals (task_key, trace_id, attempt, format, spec, worker_id)
                  SELECT \(taskKey), \(trace.id), \(attempt)::int, \(RunCheckpoint.format)::int, \(specJSON)::jsonb,
                         \(workerId)
                  WHERE EXISTS (SELECT 1 FROM lease)
                  ON CONFLICT (task_key) DO UPDATE SET trace_id = EXCLUDED.trace_id, attempt = EXCLUDED.attempt,
                      format = EXCLUDED.format, spec = EXCLUDED.spec, checkpoint = NULL, steps = 0,
                      worker_id = EXCLUDED.worker_id, started_at = now(), updated_at = now())
            """,
            """
            t AS (INSERT INTO bridge.traces (trace_id, workflow_name, group_id, metadata, task_id, started_at)
                  SELECT \(trace.id), \(trace.workflowName), \(trace.groupId.postgresValue)::text,
                         \(trace.metadataJSON.compact)::jsonb, \(taskKey),
                         \(PostgresTimestamp.format(startedAt))::timestamptz
                  WHERE EXISTS (SELECT 1 FROM lease)
                  ON CONFLICT (trace_id) DO UPDATE SET
                    workflow_name = EXCLUDED.workflow_name, group_id = EXCLUDED.group_id, metadata = EXCLUDED.metadata,
                    task_id = EXCLUDED.task_id,
                    started_at = least(bridge.traces.started_at, EXCLUDED.started_at), updated_at = now())
            """,
        ]
        var key: PostgresQuery = "NULL::text"
        if let e = config.results.executions {
            guard
                let row = tasks.executionRow(
                    task: task, traceId: trace.id, agentId: agentId, attempt: attempt, startedAt: startedAt),
                let typed = row.typed
            else { return nil }
            parts.append(
                """
                e AS (INSERT INTO \(identifier: e.table) (\(row.columns)) SELECT \(typed) WHERE EXISTS (SELECT 1 FROM lease)
                      RETURNING \(identifier: e.key)::text AS k)
                """)
            key = "(SELECT k FROM e)"
        }
        return "WITH \(parts, separator: ",\n") SELECT (SELECT count(*) FROM lease) AS ok, \(key) AS k"
    }

    /// Starts a fresh run (see `startRunQuery`): the execution row's key; nil without an
    /// executions table; `TaskStore.LeaseLost` when the lease is gone (nothing is written).
    /// `fallback` is false when the statement could not be built: the caller writes the three
    /// rows one after the other.
    func startRun(
        on conn: PostgresConnection, taskKey: TaskKey, token: LeaseToken?, spec: RunSpec, workerId: String, task: Row,
        trace: TraceRecord, startedAt: Date
    ) async throws -> (executionKey: String?, written: Bool) {
        let text = try Self.storableJSON(spec)
        guard
            let q = startRunQuery(
                taskKey: taskKey, token: token, attempt: spec.attempt, agentId: spec.metadata["agent_id"],
                specJSON: text, workerId: workerId, task: task, trace: trace, startedAt: startedAt)
        else { return (nil, false) }
        let row = try await conn.query(q).first
        guard try row?.decode(Int.self, "ok") == 1 else { throw TaskStore.LeaseLost(taskKey: taskKey) }
        return (try row?.optional(String.self, "k"), true)
    }

    func start(on conn: PostgresConnection, taskKey: TaskKey, token: LeaseToken?, spec: RunSpec, workerId: String)
        async throws
    {
        let text = try Self.storableJSON(spec)
        guard
            try await conn.query(
                startQuery(
                    taskKey: taskKey, token: token, spec: spec, specJSON: text,
                    workerId: workerId)
            ).count == 1
        else {
            throw TaskStore.LeaseLost(taskKey: taskKey)
        }
    }

    /// A resumed run's journal names the worker that holds it now (fenced).
    func resumed(on conn: PostgresConnection, taskKey: TaskKey, token: LeaseToken?, workerId: String) async throws {
        guard
            try await conn.query(
                """
                WITH \(leaseCTE(token))
                UPDATE bridge.run_journals SET worker_id = \(workerId), updated_at = now()
                WHERE task_key = \(taskKey) AND EXISTS (SELECT 1 FROM lease) RETURNING 1 AS ok
                """
            ).count == 1
        else { throw TaskStore.LeaseLost(taskKey: taskKey) }
    }

    /// The spans as `unnest`-able arrays: `(span_id, trace_id, parent_id, started_at, ended_at, span_data, error)`.
    static func spanRows(_ spans: [SpanRecord]) -> PostgresQuery {
        func arr(_ values: [PostgresValue]) -> String { PostgresArray.literal(values) }
        let ids = arr(spans.map(\.id.postgresValue))
        let traces = arr(spans.map(\.traceId.postgresValue))
        let parents = arr(spans.map(\.parentId.postgresValue))
        let starts = arr(spans.map { .text(PostgresTimestamp.format($0.startedAt)) })
        let ends = arr(spans.map { .text(PostgresTimestamp.format($0.endedAt)) })
        let data = arr(spans.map { .text($0.spanData.compact) })
        let errors = arr(spans.map { $0.error.map { PostgresValue.text($0.compact) } ?? .null })
        return """
            SELECT * FROM unnest(\(ids)::text[], \(traces)::text[], \(parents)::text[], \(starts)::timestamptz[],
                                 \(ends)::timestamptz[], \(data)::jsonb[], \(errors)::jsonb[])
            """
    }

    static let spanColumns: PostgresQuery = "(span_id, trace_id, parent_id, started_at, ended_at, span_data, error)"

    /// What one step writes in one statement, if the lease holds: the spans, the trace's end,
    /// and the journal row (`journal`: a data-modifying statement that may use `lease`).
    func stepQuery(token: LeaseToken?, spans: [SpanRecord], traceEnd: (TraceID, Date)?, journal: PostgresQuery?)
        -> PostgresQuery
    {
        stepQuery(token: token, spans: spans, traceEnd: traceEnd, journal: journal.map { [$0] } ?? [])
    }

    /// `stepQuery` with several journal rows (a checkpoint and the calls held since the last write).
    func stepQuery(
        token: LeaseToken?, spans: [SpanRecord], traceEnd: (TraceID, Date)?, journal: [PostgresQuery],
        riders: PostgresQuery? = nil
    ) -> PostgresQuery {
        // The riders (a CTE list, unfenced: see `RiderQueue`) go first, where their binds need
        // no renumbering.
        var parts: [PostgresQuery] = (riders.map { [$0] } ?? []) + [leaseCTE(token)]
        if !spans.isEmpty {
            parts.append(
                """
                s AS (INSERT INTO bridge.spans \(Self.spanColumns) \(Self.spanRows(spans))
                      WHERE EXISTS (SELECT 1 FROM lease) ON CONFLICT (span_id) DO NOTHING)
                """)
        }
        if let (traceId, at) = traceEnd {
            parts.append(
                """
                t AS (UPDATE bridge.traces SET ended_at = \(PostgresTimestamp.format(at))::timestamptz, updated_at = now()
                      WHERE trace_id = \(traceId) AND EXISTS (SELECT 1 FROM lease))
                """)
        }
        for (i, write) in journal.enumerated() { parts.append("j\(literal: i) AS (\(write))") }
        return "WITH \(parts, separator: ",\n") SELECT count(*) AS ok FROM lease"
    }

    /// The journal head's new checkpoint (a CTE body of `stepQuery`).
    func checkpointWrite(taskKey: TaskKey, traceId: TraceID, checkpoint: String, workerId: String) -> PostgresQuery {
        """
        UPDATE bridge.run_journals SET checkpoint = \(checkpoint)::jsonb, steps = steps + 1, worker_id = \(workerId),
            updated_at = now()
        WHERE task_key = \(taskKey) AND trace_id = \(traceId) AND EXISTS (SELECT 1 FROM lease)
        """
    }

    /// A finished call's row (a CTE body of `stepQuery`, or with `fenced` false a statement of
    /// the writing SQL tool's transaction, which checked the lease itself).
    func callWrite(taskKey: TaskKey, traceId: TraceID, call: JournaledCall, fenced: Bool = true) -> PostgresQuery {
        let data = (try? Self.storableJSON(call)) ?? "{}"
        let guardClause: PostgresQuery = fenced ? " WHERE EXISTS (SELECT 1 FROM lease)" : ""
        return """
            INSERT INTO bridge.journal_calls (trace_id, call_id, task_key, tool_name, data)
            SELECT \(traceId), \(call.callId), \(taskKey), \(call.name), \(data)::jsonb\(guardClause)
            ON CONFLICT (trace_id, call_id) DO NOTHING
            """
    }

    /// Statements of the finishing transaction (after its guarded task update): the spans left
    /// and the trace's end (then, when the run is over, `dropHead`).
    func finalStatements(spans: [SpanRecord], traceEnd: (TraceID, Date)?) -> [PostgresQuery] {
        var out: [PostgresQuery] = []
        if !spans.isEmpty {
            out.append(
                "INSERT INTO bridge.spans \(Self.spanColumns) \(Self.spanRows(spans)) ON CONFLICT (span_id) DO NOTHING")
        }
        if let (traceId, at) = traceEnd {
            out.append(
                """
                UPDATE bridge.traces SET ended_at = \(PostgresTimestamp.format(at))::timestamptz, updated_at = now()
                WHERE trace_id = \(traceId)
                """)
        }
        return out
    }

    /// Deletes the run's journal head (the run is over), with `riders` in front when given: the
    /// WITH list of a run's held spend (`RiderQueue.sending`), placed first so that nothing of
    /// either is renumbered.
    func dropHead(taskKey: TaskKey, after riders: PostgresQuery? = nil) -> PostgresQuery {
        "\(riders ?? "")DELETE FROM bridge.run_journals WHERE task_key = \(taskKey)"
    }

    /// The journals of runs the application took back while they were interrupted (it finished,
    /// failed or deleted the task, so it is neither pending nor running): up to 100 per pass, the
    /// journal goes (with a paused run's state and approval waits), the spans still open at its
    /// checkpoint are written ended with an error saying so, and the trace is closed. Nil when the task key's type is unknown (the user's
    /// key column is compared as it is, through its index, or not at all).
    func sweepQuery() -> PostgresQuery? {
        let s = config.source
        let keyCast = config.columnTypes.cast(s.table, s.key)
        guard !keyCast.sql.isEmpty else { return nil }
        let statusCast = config.columnTypes.cast(s.table, s.status.column)
        let reason = "the application took the task back (it is no longer pending or running); the run was not resumed"
        // The interrupted stint's execution row, when no reaper ended it (the task left `running`).
        var executions: PostgresQuery = ""
        if let e = config.results.executions {
            var sets: [PostgresQuery] = ["\(identifier: e.columns.status) = \(e.statuses.failedTerminal)"]
            if let c = e.columns.errorType { sets.append("\(identifier: c) = \(FailureType.resumeError.rawValue)") }
            if let c = e.columns.errorMessage { sets.append("\(identifier: c) = \(reason)") }
            if let c = e.columns.completedAt { sets.append("\(identifier: c) = now()") }
            let taskCast = config.columnTypes.cast(e.table, e.taskColumn)
            executions = """
                , abandoned AS (
                    UPDATE \(identifier: e.table) AS e SET \(sets)
                    WHERE e.\(identifier: e.taskColumn) IN (SELECT g.task_key\(taskCast) FROM gone g)
                      AND e.\(identifier: e.columns.status) = \(e.statuses.started)
                )
                """
        }
        return """
            WITH gone AS MATERIALIZED (
                SELECT j.task_key, j.trace_id, j.checkpoint FROM bridge.run_journals j
                WHERE NOT EXISTS (
                    SELECT 1 FROM \(identifier: s.table) t WHERE t.\(identifier: s.key) = j.task_key\(keyCast)
                      AND t.\(identifier: s.status.column) IN (\(s.status.pending)\(statusCast), \(s.status.running)\(statusCast)))
                ORDER BY j.updated_at LIMIT 100
                FOR UPDATE OF j SKIP LOCKED
            ), closed AS (
                INSERT INTO bridge.spans \(Self.spanColumns)
                SELECT o->>'span_id', g.trace_id, o->>'parent_span_id',
                       to_timestamp(978307200 + (o->>'started_at')::float8), now(), o->'data',
                       jsonb_build_object('message', 'Run not resumed', 'data', jsonb_build_object('error', \(reason)::text))
                FROM gone g CROSS JOIN LATERAL jsonb_array_elements(
                    CASE WHEN jsonb_typeof(g.checkpoint->'open_spans') = 'array' THEN g.checkpoint->'open_spans' ELSE '[]'::jsonb END) o
                ON CONFLICT (span_id) DO NOTHING
            ), dropped AS (
                DELETE FROM bridge.run_journals j WHERE j.task_key IN (SELECT task_key FROM gone)
            ), unpaused AS (
                DELETE FROM bridge.run_states r WHERE r.task_key IN (SELECT task_key FROM gone)
            ), ended AS (
                UPDATE bridge.traces tr SET ended_at = now(), updated_at = now()
                WHERE tr.trace_id IN (SELECT trace_id FROM gone) AND tr.ended_at IS NULL
            )\(executions)
            SELECT count(*) AS n FROM gone
            """
    }

    /// One sweep pass (see `sweepQuery`); the number of journals dropped.
    public func sweep(on conn: PostgresConnection) async throws -> Int {
        guard let q = sweepQuery() else { return 0 }
        return try await conn.query(q).one().decode(Int.self, "n")
    }

    /// Every statement a durable run or the lease keeper runs per step or per pass that touches
    /// the task table, with sample binds, for the EXPLAIN test.
    public func hotPathStatements(taskKey: TaskKey) -> [(name: String, query: PostgresQuery)] {
        let span = SpanRecord(
            id: "span_000000000000000000000001", traceId: "trace_x", parentId: nil, startedAt: Date(),
            endedAt: Date(), spanData: ["type": "custom"], error: nil)
        var out: [(String, PostgresQuery)] = [
            (
                "journal checkpoint",
                stepQuery(
                    token: "t1", spans: [span], traceEnd: nil,
                    journal: checkpointWrite(
                        taskKey: taskKey, traceId: "trace_x", checkpoint: "{}",
                        workerId: "w"))
            ),
            (
                "journal call",
                stepQuery(
                    token: "t1", spans: [span], traceEnd: nil,
                    journal: callWrite(
                        taskKey: taskKey, traceId: "trace_x",
                        call: JournaledCall(callId: "c", name: "t", output: "", raw: false)))
            ),
        ]
        if let sweep = sweepQuery() { out.append(("journal sweep", sweep)) }
        let trace = TraceRecord(id: "trace_x", workflowName: "w", groupId: nil, metadata: [:])
        if let start = startRunQuery(
            taskKey: taskKey, token: "t1", attempt: 1, agentId: nil, specJSON: "{}", workerId: "w",
            task: [config.source.key: taskKey.json], trace: trace, startedAt: Date())
        {
            out.append(("journal start", start))
        }
        return out
    }

    /// A journal that cannot be resumed (unreadable, or the mappings changed): the head goes and
    /// the trace is closed, in the transaction that fails the task.
    func abandonStatements(taskKey: TaskKey, traceId: TraceID) -> [PostgresQuery] {
        [
            dropHead(taskKey: taskKey),
            "UPDATE bridge.traces SET ended_at = now(), updated_at = now() WHERE trace_id = \(traceId) AND ended_at IS NULL",
        ]
    }
}

/// Model calls' spend, which needs no round trip of its own and no lease (the money is spent
/// whoever owns the task now): held as values and sent as CTEs at the front of the next
/// statement a run makes anyway. Held under a lock; whoever takes them sends them.
public final class RiderQueue: Sendable {
    private struct State {
        var held: [ModelCallSpend] = []
        /// What the last `sending` took, for `unsend` when its statement did not commit.
        var lastSent: [ModelCallSpend] = []
    }
    private let state = Mutex(State())

    public init() {}

    func ride(_ spend: ModelCallSpend) { state.withLock { $0.held.append(spend) } }

    /// Empties the queue; with `keep`, what it held is kept for `unsend`. Without, what the last
    /// `sending` took is forgotten: its statement is over (committed, or unsent already).
    private func drain(keep: Bool = false) -> [ModelCallSpend] {
        state.withLock { state in
            state.lastSent = keep ? state.held : []
            defer { state.held.removeAll() }
            return state.held
        }
    }

    /// What is held (the caller sends it, e.g. as `ModelCallSpend.ctes`).
    func take() -> [ModelCallSpend] { drain() }

    /// Holds again what the last `sending` took (its transaction rolled back), once: a second
    /// `unsend` holds nothing more, so no call is recorded twice.
    func unsend() {
        state.withLock { state in
            state.held = state.lastSent + state.held
            state.lastSent = []
        }
    }

    /// What is held, as the start of a statement (`WITH` and the CTE list), or nil when nothing
    /// is; kept for `unsend` until the next `sending`.
    func sending() -> PostgresQuery? {
        let held = drain(keep: true)
        return held.isEmpty ? nil : ModelCallSpend.ctes(held, with: true)
    }

    /// What is held, as one statement of its own (nil when nothing is).
    func statement() -> PostgresQuery? {
        let held = drain()
        return held.isEmpty ? nil : ModelCallSpend.alone(held)
    }
}

/// The worker's request to its runs to stop at their next step boundary (SIGTERM).
public final class StopSignal: Sendable {
    private let stopped = Mutex(false)
    public init() {}
    public func stop() { stopped.withLock { $0 = true } }
    public var isStopped: Bool { stopped.withLock { $0 } }
}

/// One durable run's journal and ledger sink: spans are held from one step to the next and
/// written with the step's journal row, in one fenced statement; what is held when the run ends
/// goes into the finishing transaction (or is dropped when the run is interrupted: the resumed
/// run records those steps again).
final class DurableJournal: RunJournal, SpanSink, Sendable {
    let store: RunJournalStore
    let connection: PostgresConnection
    let taskKey: TaskKey
    let traceId: TraceID
    let token: LeaseToken?
    let workerId: String
    let stop: StopSignal?
    private let finished: [CallID: JournaledCall]
    /// What the run recorded since its last journal write.
    private struct Held {
        var spans: [SpanRecord] = []
        var traceEndedAt: Date?
        var recorder: TraceRecorder?
        var calls: [JournaledCall] = []
    }
    private let state = Mutex(Held())
    /// The run's trace row is written already (a fresh run's `RunJournalStore.startRun`).
    private let traceWritten: Bool
    /// Tools whose finished calls may wait for the run's next journal write instead of one of
    /// their own: read-only SQL tools (a resumed run runs the SELECT again, nothing happens
    /// twice) and, under a lease, writing SQL tools (their row committed with their statement).
    private let deferredTools: Set<String>
    /// Unfenced statements for the next write (a model call's spend).
    let riders = RiderQueue()

    init(
        store: RunJournalStore, connection: PostgresConnection, taskKey: TaskKey, traceId: TraceID, token: LeaseToken?,
        workerId: String, stop: StopSignal?, finished: [JournaledCall], traceWritten: Bool = false,
        deferredTools: Set<String> = []
    ) {
        self.traceWritten = traceWritten
        self.deferredTools = deferredTools
        self.store = store
        self.connection = connection
        self.taskKey = taskKey
        self.traceId = traceId
        self.token = token
        self.workerId = workerId
        self.stop = stop
        self.finished = Dictionary(finished.map { ($0.callId, $0) }, uniquingKeysWith: { a, _ in a })
    }

    func attach(_ recorder: TraceRecorder) { state.withLock { $0.recorder = recorder } }

    // MARK: SpanSink

    func traceStarted(_ trace: TraceRecord, taskId: TaskKey?, at: Date) async throws {
        if traceWritten { return }
        try await Ledger(connection: connection).insertTrace(trace, taskId: taskId, startedAt: at)
    }

    func spanEnded(_ span: SpanRecord) async throws { state.withLock { $0.spans.append(span) } }

    func traceEnded(_ traceId: TraceID, at: Date) async throws { state.withLock { $0.traceEndedAt = at } }

    /// Not held: a call in progress is announced at once (nothing is written).
    func spanStarted(_ start: SpanStart) async throws { try await Ledger(connection: connection).spanStarted(start) }

    // MARK: RunJournal

    var stopRequested: Bool { stop?.isStopped ?? false }

    func finishedCall(_ callId: CallID) -> JournaledCall? { finished[callId] }

    func checkpoint(_ checkpoint: RunCheckpoint) async throws {
        var cp = checkpoint
        let recorder = state.withLock { $0.recorder }
        if let recorder { cp.openSpans = .array(await recorder.openSpans().map(\.journalJSON)) }
        let text = try RunJournalStore.storableJSON(text: cp.journalJSON.compact)
        try await write(store.checkpointWrite(taskKey: taskKey, traceId: traceId, checkpoint: text, workerId: workerId))
    }

    func callFinished(_ call: JournaledCall) async throws {
        if deferredTools.contains(call.name) {
            state.withLock { $0.calls.append(call) }
            return
        }
        try await write(store.callWrite(taskKey: taskKey, traceId: traceId, call: call))
    }

    func stepFinished(_ record: JournaledCall, deferred: Bool) async throws {
        if deferred {
            state.withLock { $0.calls.append(record) }
            return
        }
        try await write(store.callWrite(taskKey: taskKey, traceId: traceId, call: record))
    }

    /// Statically: which of `spec`'s tools `DurableJournal` may journal with the next step.
    static func deferredTools(of spec: RunSpec, leased: Bool) -> Set<String> {
        Set(
            spec.tools.compactMap { name, tool in
                guard case .sql(let sql) = tool.implementation else { return nil }
                return !sql.writes || leased ? name : nil
            })
    }

    func exactlyOnce(callId: CallID, toolName: String) -> ExactlyOnceWrite? {
        guard let token else { return nil }
        let (store, taskKey, traceId) = (self.store, self.taskKey, self.traceId)
        return ExactlyOnceWrite(fence: store.tasks.leaseCheck(token)) { output in
            store.callWrite(
                taskKey: taskKey, traceId: traceId,
                call: JournaledCall(callId: callId, name: toolName, output: output, raw: true), fenced: false)
        }
    }

    /// Writes the held spans with `journal`, fenced; throws `JournalFenced` when the lease is gone.
    func write(_ journal: PostgresQuery?) async throws {
        let (spans, calls) = state.withLock { held -> ([SpanRecord], [JournaledCall]) in
            defer {
                held.spans.removeAll()
                held.calls.removeAll()
            }
            return (held.spans, held.calls)
        }
        let writes =
            calls.map { store.callWrite(taskKey: taskKey, traceId: traceId, call: $0) } + (journal.map { [$0] } ?? [])
        let spend = riders.take()
        let ok: PostgresRows
        do {
            ok = try await connection.query(
                store.stepQuery(
                    token: token, spans: spans, traceEnd: nil, journal: writes,
                    riders: spend.isEmpty ? nil : ModelCallSpend.ctes(spend)))
        } catch {
            // The server refused the statement, so the spend riding on it was not written either;
            // the calls were paid all the same: it goes in a statement of its own (best effort, like
            // any spend record; not held again, so spend the server refuses cannot block the steps).
            if error.kind == .server, !spend.isEmpty {
                _ = try? await connection.query(ModelCallSpend.alone(spend))
            }
            throw error
        }
        guard try ok.first?.decode(Int.self, "ok") == 1 else {
            throw JournalFenced("the lease on task \(taskKey) is gone; its journal write was refused")
        }
        if !spans.isEmpty { BridgeMetrics.spansRecorded(spans.count) }
    }

    /// Writes what is held now (before an approval pause), fenced.
    func flush() async throws { try await write(nil) }

    /// What the finishing transaction writes: the held spans, the trace's end and the journal
    /// head's deletion (the run ended).
    func finalStatements() -> [PostgresQuery] {
        let (spans, end, calls) = state.withLock { held -> ([SpanRecord], Date?, [JournaledCall]) in
            defer { held = Held(recorder: held.recorder) }
            return (held.spans, held.traceEndedAt, held.calls)
        }
        if !spans.isEmpty { BridgeMetrics.spansRecorded(spans.count) }
        var statements =
            calls.map { store.callWrite(taskKey: taskKey, traceId: traceId, call: $0, fenced: false) }
            + store.finalStatements(spans: spans, traceEnd: end.map { (traceId, $0) })
        // The riders go in front of the last statement, so that the finishing transaction holds
        // what they lock (a group's spend row) for as short a time as it can.
        statements.append(store.dropHead(taskKey: taskKey, after: riders.sending()))
        return statements
    }

    /// Drops what is held (an interrupted run: the resumed one records those steps again).
    func discard() {
        state.withLock { held in held = Held(recorder: held.recorder) }
    }
}
