import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import FoundationEssentials

/// What one `--backfill --rerun` did.
public struct RerunSummary: Sendable, Equatable {
    public var completed = 0
    public var failed = 0
    public var spans = 0
    public var elapsed: Duration = .zero

    public init() {}

    public var line: String {
        String(
            format: "re-ran %d historical tasks as new executions: %d completed, %d failed, %d spans, elapsed %.2fs",
            completed + failed, completed, failed, spans, elapsed.inSeconds)
    }
}

/// `bridge exec --backfill --rerun`: runs historical (finished, untraced) tasks through the
/// model again, each as a NEW execution row with its own trace (attempt = earlier execution
/// rows + 1). The task's result, status and completed_at are never written; only its trace id
/// column, when still null, receives the new trace id, which is what keeps a second run from
/// paying for the same tasks again. Tools run for real (SQL tools with `writes: true` write).
public struct Rerunner: Sendable {
    let config: MappingConfig
    let backfiller: Backfiller
    let bridge: DatabaseToSDKBridge
    let store: TaskStore
    let connect: @Sendable () async throws -> PostgresConnection
    let model: any ModelProvider
    let toolsFactory: @Sendable (PostgresConnection) -> any ToolExecutor
    let mcp: (any MCPToolSource)?
    let extraSinks: [any SpanSink]
    let secrets: [String]

    public init(
        config: MappingConfig, connect: @escaping @Sendable () async throws -> PostgresConnection,
        model: any ModelProvider, tools: @escaping @Sendable (PostgresConnection) -> any ToolExecutor,
        extraSinks: [any SpanSink] = [], secrets: [String] = [],
        mcp: (any MCPToolSource)? = nil
    ) throws(ExecSetupError) {
        self.config = config
        self.backfiller = try Backfiller(config: config)
        self.bridge = DatabaseToSDKBridge(config: config)
        self.store = TaskStore(config: config)
        self.connect = connect
        self.model = model
        self.toolsFactory = tools
        self.mcp = mcp
        self.extraSinks = extraSinks
        self.secrets = secrets
    }

    /// Selects matching tasks in keyset batches and runs them one by one.
    public func run(options: BackfillOptions, progress: ProgressReporter) async throws -> RerunSummary {
        let started = ContinuousClock.now
        var summary = RerunSummary()
        let conn = try await connect()
        do {
            try await runBatches(conn, options: options, progress: progress, started: started, summary: &summary)
        } catch {
            await conn.close()
            throw error
        }
        await conn.close()
        progress.finish()
        summary.elapsed = ContinuousClock.now - started
        return summary
    }

    private func runBatches(
        _ conn: PostgresConnection, options: BackfillOptions, progress: ProgressReporter,
        started: ContinuousClock.Instant, summary: inout RerunSummary
    ) async throws {
        let matching = try await backfiller.count(on: conn, options: options)
        let total = options.limit.map { min($0, matching) } ?? matching
        progress.status("\(total) task(s) to run again")
        var cursor: TaskKey?
        var done = 0
        while done < total {
            let rows = try await select(
                conn, cursor: cursor, limit: min(options.batchSize, total - done), since: options.since)
            guard !rows.isEmpty else { break }
            for (key, row) in rows {
                cursor = key
                let (ok, spans) = await runOne(row, key: key, progress: progress)
                if ok { summary.completed += 1 } else { summary.failed += 1 }
                summary.spans += spans
                done += 1
                progress.update(
                    Backfiller.progressLine(done: done, total: total, elapsed: ContinuousClock.now - started))
            }
        }
    }

    func select(_ conn: PostgresConnection, cursor: TaskKey?, limit: Int, since: Date?) async throws -> [(
        TaskKey, Row
    )] {
        let s = config.source
        let key = PostgresQuery.identifier(s.key)
        var sql: PostgresQuery = """
            SELECT t.\(key)::text AS k, to_jsonb(t.*)::text AS row FROM \(identifier: s.table) t
            WHERE \(backfiller.history.filter(alias: "t"))
            """
        if let cursor { sql += " AND t.\(key) > \(cursor)\(config.columnTypes.cast(s.table, s.key))" }
        if let since { sql += " AND \(backfiller.history.sinceCondition(alias: "t", since))" }
        sql += " ORDER BY t.\(key) LIMIT \(limit)::bigint"
        let rows = try await conn.query(sql)
        return try Self.pairs(rows)
    }

    static func pairs(_ rows: PostgresRows) throws -> [(TaskKey, Row)] {
        var out: [(TaskKey, Row)] = []
        for r in rows { out.append((try r.decode(TaskKey.self, "k"), try TaskStore.parseRow(r["row"]))) }
        return out
    }

    /// One task: a new execution row, the traced run, the execution's outcome and the task's
    /// trace id (if still null) in one transaction. Never throws.
    func runOne(_ task: Row, key: TaskKey, progress: ProgressReporter) async -> (Bool, Int) {
        let c: PostgresConnection
        do {
            c = try await connect()
        } catch {
            progress.log(Redaction.scrub("re-run of task \(key) failed: \(error)", secrets: secrets))
            return (false, 0)
        }
        let outcome = await runOne(task, key: key, on: c, progress: progress)
        await c.close()
        return outcome
    }

    private func runOne(_ task: Row, key: TaskKey, on c: PostgresConnection, progress: ProgressReporter) async -> (
        Bool, Int
    ) {
        do {
            let attempt = try await store.previousAttempts(on: c, taskKey: key) + 1
            let (agents, edges) = try await bridge.loadAgentsAndEdges(for: task, connection: c)
            var spec = try bridge.runSpec(task: task, agentRows: agents, handoffEdges: edges, attempt: attempt)
            spec.metadata["rerun"] = "true"
            let startedAt = Date()
            let executionKey = try await store.startExecution(
                on: c, task: task, token: nil, traceId: spec.traceId,
                agentId: spec.metadata["agent_id"], attempt: attempt,
                startedAt: startedAt)
            let (result, spans, _) = try await TracedRun(
                model: model, extraSinks: extraSinks, secrets: secrets, mcp: mcp
            )
            .run(spec, task: task, taskKey: key, connection: c, tools: toolsFactory(c))
            let completedAt = Date()
            let ok = result.status == .completed
            var failure = result.error
            if let paused = result.paused {
                // A re-run holds no lease and keeps no state: it cannot wait for a human.
                failure = RunFailure(
                    type: .approvalRequired,
                    message:
                        "calls to \(paused.pending.map(\.name).joined(separator: ", ")) need approval; a re-run does not wait for approvals",
                    retriable: false)
            }
            let outcome = TaskStore.ExecutionOutcome(
                status: ok ? .completed : .failedTerminal,
                result: TracedRun.resultJSON(result, traceId: spec.traceId, extra: ["rerun": true]),
                tokenUsage: result.usage.json, errorMessage: ok ? nil : failure?.message,
                errorType: ok ? nil : failure?.type,
                completedAt: completedAt, durationSeconds: completedAt.timeIntervalSince(startedAt))
            try await record(c, taskKey: key, executionKey: executionKey, traceId: spec.traceId, outcome: outcome)
            progress.log(
                "re-ran task \(key) as attempt \(attempt): \(ok ? "completed" : "failed") trace \(spec.traceId)")
            return (ok, spans)
        } catch {
            progress.log(Redaction.scrub("re-run of task \(key) failed: \(error)", secrets: secrets))
            return (false, 0)
        }
    }

    /// The execution row's outcome and the task's trace id (only when null), together.
    func record(
        _ conn: PostgresConnection, taskKey: TaskKey, executionKey: String?, traceId: TraceID,
        outcome: TaskStore.ExecutionOutcome
    ) async throws {
        let config = self.config
        try await conn.transaction { c in
            let s = config.source
            if let tc = config.results.traceIdColumn {
                try c.query(
                    """
                    UPDATE \(identifier: s.table) SET \(identifier: tc) = \(traceId)
                    WHERE \(identifier: s.key) = \(taskKey)\(config.columnTypes.cast(s.table, s.key)) AND \(identifier: tc) IS NULL
                    """)
            }
            if let executionKey,
                let finish = TaskStore.executionUpdate(config, executionKey: executionKey, outcome: outcome)
            {
                try c.query(finish)
            }
        }
    }
}
