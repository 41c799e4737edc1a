// Over 400 lines: the backfill's one set-based statement per batch (read, rebuild, insert, mark)
// is kept whole in one place, with its options, summary and progress; splitting the statement
// across files would hide how its CTEs feed each other.
import BridgeCore
import BridgeTraceModel
import BridgeMapping
import BridgePostgres
import Foundation

/// Settings for one `bridge exec --backfill` process.
public struct BackfillOptions: Sendable {
    /// Tasks per batch (one statement, one short transaction each).
    public var batchSize: Int
    /// Rebuild at most this many tasks (nil: all).
    public var limit: Int?
    /// Only tasks finished at or after this time (a `timestamptz` literal, parsed by PostgreSQL).
    public var since: String?
    /// Pause between batches, to leave room for the application on a busy database.
    public var pauseMilliseconds: Int

    public init(batchSize: Int = 1_000, limit: Int? = nil, since: String? = nil, pauseMilliseconds: Int = 0) {
        self.batchSize = batchSize
        self.limit = limit
        self.since = since
        self.pauseMilliseconds = pauseMilliseconds
    }
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
    /// Matching tasks still without a trace id when the run ended (locked by someone else,
    /// changed meanwhile, or beyond `--limit`).
    public var remaining = 0
    public var elapsed: TimeInterval = 0

    public init() {}

    public var line: String {
        String(format: "backfilled %d tasks (%d traces, %d spans, %d execution rows) in %d batches, %d left, elapsed %.2fs",
               tasks, traces, spans, executions, batches, remaining, elapsed)
    }
}

/// What `--dry-run` reports: the counts and a few rebuilt traces (SDK export objects).
public struct BackfillPreview: Sendable {
    public var tasks: Int
    public var spans: Int
    public var functionSpans: Int
    /// One JSON object per sampled task: `{"trace": {...}, "spans": [...]}`.
    public var sample: [String]
}

/// `bridge exec --backfill`: rebuilds the traces of historical runs from the records already
/// stored, without calling any model.
///
/// Tasks are selected by the mappings' status values (completed or failed) and a null trace id
/// column, walked in keyset batches on the task key. Each batch is ONE statement (so one short
/// implicit transaction): it locks the batch's task rows (`FOR NO KEY UPDATE SKIP LOCKED`,
/// never waiting for the application), reads their latest execution row and tool-call log
/// rows, inserts traces and spans set-based (`INSERT … SELECT` with `jsonb_build_object`,
/// `ON CONFLICT DO NOTHING`), and writes the trace id onto the task and that execution row,
/// guarded on the column still being null. Results and statuses are never written.
///
/// Ids are deterministic: the trace id is `trace_` + the first 32 hex of
/// SHA-256("bridge-backfill:<task key>") (a namespace of its own, so it never equals the id of
/// an attempt run by `bridge exec`, which hashes "bridge-trace:<key>:<attempt>"), and each span
/// id is `span_` + the first 24 hex of SHA-256("<trace id>:<slot>") with slot `task`, `agent`,
/// `turn:1`, `turn:2` or `function:<n>` (n-th tool call by start time, then log key). The state
/// of the backfill is the trace id column itself: a killed run loses at most its open batch
/// (rolled back), and the next run starts again from the first task still without a trace id.
public struct Backfiller: Sendable {
    public let config: MappingConfig

    public init(config: MappingConfig) throws(ExecSetupError) {
        guard config.results.traceIdColumn != nil else {
            throw ExecSetupError("--backfill needs results.trace_id_column in the mappings: the trace id column is what makes a backfill resumable and idempotent")
        }
        self.config = config
    }

    // MARK: Running

    /// Runs batches until no matching task is left (or `limit` tasks are done).
    public func run(on conn: PostgresConnection, options: BackfillOptions, progress: ProgressReporter) async throws -> BackfillSummary {
        let started = Date()
        try await conn.set("TimeZone", "UTC")
        var summary = BackfillSummary()
        let matching = try await count(on: conn, options: options)
        let total = options.limit.map { min($0, matching) } ?? matching
        progress.status("\(total) task(s) to rebuild")
        var cursor: String?
        var done = 0
        var lastLog = Date.distantPast
        while done < total {
            let want = min(options.batchSize, total - done)
            let r = try await conn.query(statement(mode: .apply, cursor: cursor, limit: want, since: options.since))
            guard let row = r.first, let picked = row.int("picked"), picked > 0 else { break }
            done += picked
            summary.batches += 1
            summary.tasks += row.int("tasks") ?? 0
            summary.executions += row.int("executions") ?? 0
            summary.traces += row.int("traces") ?? 0
            summary.spans += row.int("spans") ?? 0
            cursor = row["cursor"]
            let line = Self.progressLine(done: done, total: total, elapsed: Date().timeIntervalSince(started))
            progress.update(line)
            if Date().timeIntervalSince(lastLog) >= 1 || done >= total {
                progress.statusWhenNotLive(line)
                lastLog = Date()
            }
            if options.pauseMilliseconds > 0 {
                try await Task.sleep(nanoseconds: UInt64(options.pauseMilliseconds) * 1_000_000)
            }
        }
        progress.finish()
        summary.remaining = try await count(on: conn, options: BackfillOptions(since: options.since))
        summary.elapsed = Date().timeIntervalSince(started)
        return summary
    }

    /// `12000/40000 tasks (30%), 2400.0/s, ETA 12s`.
    public static func progressLine(done: Int, total: Int, elapsed: TimeInterval) -> String {
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let pct = total > 0 ? Int((Double(done) / Double(total) * 100).rounded(.down)) : 100
        let eta = rate > 0 ? Int((Double(total - done) / rate).rounded(.up)) : 0
        return String(format: "%d/%d tasks (%d%%), %.0f/s, ETA %@", done, total, pct, rate,
                      Self.duration(eta))
    }

    static func duration(_ s: Int) -> String {
        s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }

    /// Tasks that match the backfill filter now.
    public func count(on conn: PostgresConnection, options: BackfillOptions) async throws -> Int {
        let s = config.source
        var sql: PostgresQuery = """
            SELECT count(*) AS n FROM \(identifier: s.table) t
            WHERE \(filter(alias: "t"))
            """
        if let since = options.since { sql += " AND \(sinceCondition(alias: "t", since))" }
        return try await conn.query(sql).first?.int("n") ?? 0
    }

    /// What a backfill would do, computed by the same SQL without writing: the counts over
    /// every matching task (up to `limit`) and the first `sampleSize` rebuilt traces.
    public func preview(on conn: PostgresConnection, options: BackfillOptions, sampleSize: Int = 3) async throws -> BackfillPreview {
        try await conn.set("TimeZone", "UTC")
        let counts = try await conn.query(statement(mode: .count, cursor: nil, limit: options.limit, since: options.since)).first
        let sample = try await conn.query(statement(mode: .sample, cursor: nil, limit: min(sampleSize, options.limit ?? sampleSize),
                                                    since: options.since))
        return BackfillPreview(tasks: counts?.int("tasks") ?? 0, spans: counts?.int("spans") ?? 0,
                               functionSpans: counts?.int("functions") ?? 0, sample: sample.compactMap { $0["j"] })
    }

    // MARK: SQL

    enum Mode { case apply, count, sample }

    private func q(_ name: String) -> PostgresQuery { .identifier(name) }

    /// Finished (completed or failed per the mappings) and without a trace id.
    func filter(alias a: String) -> PostgresQuery {
        let s = config.source
        let trace = config.results.traceIdColumn ?? "openai_trace_id"
        return "\(unsafeRaw: a).\(q(trace)) IS NULL AND \(unsafeRaw: a).\(q(s.status.column)) IN (\(s.status.completed), \(s.status.failed))"
    }

    /// `--since`: on the task's completed_at column if mapped, else its created_at column.
    func sinceCondition(alias a: String, _ since: String) -> PostgresQuery {
        let column = config.results.completedAtColumn ?? config.source.createdAtColumn ?? config.source.key
        return "\(unsafeRaw: a).\(q(column)) >= \(since)::timestamptz"
    }

    /// A span id computed in SQL from a trace id expression and a slot expression.
    static func spanIdSQL(_ trace: String, _ slot: String) -> PostgresQuery {
        "'span_' || left(encode(sha256(convert_to(\(unsafeRaw: trace) || ':' || \(unsafeRaw: slot), 'UTF8')), 'hex'), 24)"
    }

    /// An ISO 8601 text in the SDK's form (`…+00:00`), for previews.
    static func isoSQL(_ e: String) -> PostgresQuery {
        "to_char((\(unsafeRaw: e)) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
    }

    /// The whole batch as one statement. Every value is bound; names are quoted identifiers
    /// from the mappings.
    func statement(mode: Mode, cursor: String?, limit: Int?, since: String?) -> PostgresQuery {
        let s = config.source
        let r = config.results
        let tasks = PostgresQuery.identifier(s.table)
        let key = q(s.key)
        let traceCol = q(r.traceIdColumn ?? "openai_trace_id")

        // 1. The batch: keyset on the task key, the partial index's filter.
        var pickedWhere = filter(alias: "t")
        if let cursor { pickedWhere += " AND t.\(key) > \(cursor)" }
        if let since { pickedWhere += " AND \(sinceCondition(alias: "t", since))" }
        let lock: PostgresQuery = mode == .apply ? "FOR NO KEY UPDATE OF t SKIP LOCKED" : ""
        let ns: PostgresQuery = "\(TraceID.backfillNamespace)"
        var ctes: [PostgresQuery] = []
        ctes.append("""
            picked AS MATERIALIZED (
              SELECT t.\(key) AS k, t.\(key)::text AS task_key,
                     'trace_' || left(encode(sha256(convert_to(\(ns) || t.\(key)::text, 'UTF8')), 'hex'), 32) AS trace_id
              FROM \(tasks) t
              WHERE \(pickedWhere)
              ORDER BY t.\(key) LIMIT \(limit)::bigint
              \(lock)
            )
            """)

        // 2. Tool calls from the log table.
        if let l = config.backfill?.logs {
            let k = l.toolCall
            let content: PostgresQuery = "l.\(q(l.contentColumn))::jsonb"
            let created: PostgresQuery = l.createdAtColumn.map { "l.\(q($0))::timestamptz" } ?? "NULL::timestamptz"
            let startKey: PostgresQuery = "\(k.startedAt)", durKey: PostgresQuery = "\(k.durationMs)"
            ctes.append("""
                calls AS MATERIALIZED (
                  SELECT c.k, c.trace_id, c.log_key, c.name, c.input, c.output, c.error, c.started_at,
                         coalesce(c.started_at + c.duration_ms * interval '1 millisecond', c.started_at) AS ended_at,
                         row_number() OVER (PARTITION BY c.k ORDER BY c.started_at, c.log_key) AS n
                  FROM (
                    SELECT p.k, p.trace_id, l.\(q(l.key))::text AS log_key,
                           coalesce(x.j ->> \(k.name), 'unknown_tool') AS name,
                           CASE jsonb_typeof(x.args)
                             WHEN 'string' THEN x.args #>> '{}'
                             WHEN 'object' THEN (SELECT '{' || coalesce(string_agg(to_jsonb(e.key)::text || ':' || e.value::text, ','), '') || '}'
                                                 FROM jsonb_each(x.args) AS e)
                             ELSE x.args::text END AS input,
                           x.j ->> \(k.output) AS output,
                           x.j ->> \(k.error) AS error,
                           coalesce(CASE WHEN (x.j ->> \(startKey)) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}'
                                         THEN (x.j ->> \(startKey))::timestamptz END,
                                    \(created)) AS started_at,
                           CASE WHEN jsonb_typeof(x.j -> \(durKey)) = 'number' THEN (x.j ->> \(durKey))::double precision END AS duration_ms
                    FROM picked p
                    JOIN \(identifier: l.table) l ON l.\(q(l.taskColumn)) = p.k
                    CROSS JOIN LATERAL (SELECT \(content) AS j, \(content) -> \(k.arguments) AS args) x
                    WHERE l.\(q(l.typeColumn))::text = ANY(\(PostgresArray.text(l.toolCallTypes))::text[])
                  ) c
                ),
                call_stats AS (
                  SELECT k, count(*) AS n_calls, min(started_at) AS first_start, max(ended_at) AS last_end FROM calls GROUP BY k
                )
                """)
        } else {
            ctes.append("""
                calls AS (
                  SELECT NULL::text AS k0, NULL::text AS trace_id, NULL::text AS name, NULL::text AS input, NULL::text AS output,
                         NULL::text AS error, NULL::timestamptz AS started_at, NULL::timestamptz AS ended_at, 0::bigint AS n
                  WHERE false
                ),
                call_stats AS (
                  SELECT p.k, 0::bigint AS n_calls, NULL::timestamptz AS first_start, NULL::timestamptz AS last_end
                  FROM picked p WHERE false
                )
                """)
        }

        // 3. The latest execution row of each task (the run the task's result came from).
        var execJoin: PostgresQuery = ""
        var execCols: PostgresQuery = """
            NULL::text AS exec_key, NULL::timestamptz AS x_started, NULL::timestamptz AS x_completed,
            NULL::double precision AS x_duration, NULL::jsonb AS x_usage, NULL::text AS x_error, NULL::text AS x_error_type,
            1::bigint AS attempts
            """
        if let e = r.executions {
            let c = e.columns
            func col(_ name: String?, _ type: String) -> PostgresQuery {
                name.map { "e.\(q($0))::\(unsafeRaw: type)" } ?? "NULL::\(unsafeRaw: type)"
            }
            let order: PostgresQuery = (c.startedAt.map { "e.\(q($0)) DESC NULLS LAST, " } ?? "") + "e.\(q(e.key)) DESC"
            execJoin = """
                LEFT JOIN LATERAL (
                  SELECT e.\(q(e.key)) AS exec_key, \(col(c.startedAt, "timestamptz")) AS x_started,
                         \(col(c.completedAt, "timestamptz")) AS x_completed, \(col(c.durationSeconds, "double precision")) AS x_duration,
                         \(col(c.tokenUsage, "jsonb")) AS x_usage, \(col(c.errorMessage, "text")) AS x_error,
                         \(col(c.errorType, "text")) AS x_error_type, count(*) OVER () AS attempts
                  FROM \(identifier: e.table) e WHERE e.\(q(e.taskColumn)) = p.k
                  ORDER BY \(order) LIMIT 1
                ) x ON true
                """
            execCols = "x.exec_key, x.x_started, x.x_completed, x.x_duration, x.x_usage, x.x_error, x.x_error_type, coalesce(x.attempts, 1) AS attempts"
        }

        // 4. The agent: the task's agent row matched against the YAML agents, else the fallback
        // column, else the default agent.
        var agentJoin: PostgresQuery = "", agentKey: PostgresQuery = "NULL::text"
        let matchMap = JSONValue.object(Dictionary(config.agents.map { ($0.match, JSONValue.string($0.name)) },
                                                   uniquingKeysWith: { a, _ in a })).compact
        let mm: PostgresQuery = "\(matchMap)"
        var candidates: [PostgresQuery] = []
        if let sel = s.agentSelection {
            if let tc = sel.taskColumn {
                agentJoin = "LEFT JOIN \(identifier: sel.table) ag ON ag.\(q(sel.key)) = t.\(q(tc))"
                candidates.append("\(mm)::jsonb ->> ag.\(q(sel.matchColumn))::text")
                agentKey = "t.\(q(tc))::text"
            }
            if let fb = sel.fallbackColumn { candidates.append("\(mm)::jsonb ->> t.\(q(fb))::text") }
            if let d = sel.defaultAgent { candidates.append("\(d)::text") }
        }
        if config.agents.count == 1 { candidates.append("\(config.agents[0].name)::text") }
        candidates.append("'agent'")
        let agentName: PostgresQuery = "coalesce(\(candidates))"
        let agentsJSON = JSONValue.object(Dictionary(config.agents.map { a in
            (a.name, JSONValue.object(["tools": .array(a.tools.map(JSONValue.string)),
                                      "handoffs": .array(a.handoffs.map { .string($0.agent) })]))
        }, uniquingKeysWith: { a, _ in a })).compact
        let agentsParam: PostgresQuery = "\(agentsJSON)"

        let group: PostgresQuery = s.groupColumn.map { "t.\(q($0))::text" } ?? "NULL::text"
        let taskCompleted: PostgresQuery = r.completedAtColumn.map { "t.\(q($0))::timestamptz" } ?? "NULL::timestamptz"
        let taskCreated: PostgresQuery = s.createdAtColumn.map { "t.\(q($0))::timestamptz" } ?? "NULL::timestamptz"
        let failed: PostgresQuery = "\(s.status.failed)"
        let sid = Self.spanIdSQL
        ctes.append("""
            base AS MATERIALIZED (
              SELECT p.k, p.task_key, p.trace_id, \(group) AS group_id, \(agentKey) AS agent_key,
                     \(agentName) AS agent_name, t.\(q(s.status.column))::text = \(failed) AS failed,
                     \(execCols), cs.n_calls, cs.first_start, cs.last_end,
                     \(taskCompleted) AS t_completed, \(taskCreated) AS t_created
              FROM picked p JOIN \(tasks) t ON t.\(key) = p.k
              \(agentJoin)
              \(execJoin)
              LEFT JOIN call_stats cs ON cs.k = p.k
            ),
            ends AS (
              SELECT base.*, coalesce(x_completed, x_started + x_duration * interval '1 second', t_completed, last_end) AS end0
              FROM base
            ),
            starts AS (
              SELECT ends.*, coalesce(x_started, end0 - x_duration * interval '1 second', first_start, end0, t_created, now()) AS start0
              FROM ends
            ),
            b AS MATERIALIZED (
              SELECT starts.*, least(start0, first_start) AS t0, greatest(coalesce(end0, start0), last_end) AS t1,
                     \(sid("trace_id", "'task'")) AS s_task, \(sid("trace_id", "'agent'")) AS s_agent,
                     \(sid("trace_id", "'turn:1'")) AS s_turn1,
                     coalesce(n_calls, 0) AS calls,
                     CASE WHEN jsonb_typeof(x_usage) = 'object' AND (x_usage ? 'input_tokens' OR x_usage ? 'output_tokens') THEN
                       jsonb_build_object('input_tokens', coalesce(x_usage -> 'input_tokens', '0'),
                                          'output_tokens', coalesce(x_usage -> 'output_tokens', '0'),
                                          'cached_input_tokens', coalesce(x_usage #> '{input_tokens_details,cached_tokens}', x_usage -> 'cached_tokens', '0'),
                                          'cache_write_input_tokens', 0,
                                          'requests', coalesce(x_usage -> 'requests', '0'),
                                          'total_tokens', coalesce(x_usage -> 'total_tokens', '0'))
                     END AS usage,
                     CASE WHEN failed THEN jsonb_build_object('message', 'Error in agent run', 'data',
                       jsonb_strip_nulls(jsonb_build_object('error', coalesce(x_error, 'the task failed (no error message was recorded)'),
                                                            'error_type', x_error_type)))
                     END AS run_error
              FROM starts
            )
            """)

        // 5. Trace and span rows in the SDK's shapes.
        let workflow: PostgresQuery = "\(config.tracing.workflowName)"
        let version: PostgresQuery = "\(DatabaseToSDKBridge.bridgeVersion)"
        let sensitive: PostgresQuery = "\(config.tracing.includeSensitiveData)"
        ctes.append("""
            trace_rows AS (
              SELECT trace_id, \(workflow)::text AS workflow_name, group_id, task_key, t0 AS started_at, t1 AS ended_at,
                     jsonb_strip_nulls(jsonb_build_object('task_id', task_key, 'attempt', attempts::text,
                                                          'bridge_version', \(version)::text, 'backfilled', 'true',
                                                          'workspace_id', group_id, 'agent_id', agent_key)) AS metadata
              FROM b
            ),
            span_rows AS (
              SELECT s_task AS span_id, trace_id, NULL::text AS parent_id, t0 AS started_at, t1 AS ended_at,
                     jsonb_build_object('type', 'custom', 'name', 'task', 'data',
                       jsonb_build_object('sdk_span_type', 'task', 'name', \(workflow)::text, 'backfilled', true)
                       || CASE WHEN usage IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('usage', usage) END) AS span_data,
                     run_error AS error
              FROM b
              UNION ALL
              SELECT s_agent, trace_id, s_task, t0, t1,
                     jsonb_build_object('type', 'agent', 'name', agent_name,
                                        'handoffs', coalesce(\(agentsParam)::jsonb -> agent_name -> 'handoffs', '[]'::jsonb),
                                        'tools', coalesce(\(agentsParam)::jsonb -> agent_name -> 'tools', '[]'::jsonb),
                                        'output_type', 'str'),
                     run_error
              FROM b
              UNION ALL
              SELECT s_turn1, trace_id, s_agent, t0,
                     CASE WHEN calls > 0 THEN last_end ELSE t1 END,
                     jsonb_build_object('type', 'custom', 'name', 'turn', 'data',
                                        jsonb_build_object('sdk_span_type', 'turn', 'turn', 1, 'agent_name', agent_name)),
                     NULL::jsonb
              FROM b
              UNION ALL
              SELECT \(sid("trace_id", "'turn:2'")), trace_id, s_agent, last_end, t1,
                     jsonb_build_object('type', 'custom', 'name', 'turn', 'data',
                                        jsonb_build_object('sdk_span_type', 'turn', 'turn', 2, 'agent_name', agent_name)),
                     NULL::jsonb
              FROM b WHERE calls > 0
              UNION ALL
              SELECT \(sid("c.trace_id", "'function:' || c.n")), c.trace_id, \(sid("c.trace_id", "'turn:1'")), c.started_at, c.ended_at,
                     jsonb_build_object('type', 'function', 'name', c.name,
                                        'input', CASE WHEN \(sensitive)::boolean THEN c.input END,
                                        'output', CASE WHEN \(sensitive)::boolean THEN c.output END, 'mcp_data', NULL),
                     CASE WHEN c.error IS NOT NULL THEN jsonb_build_object('message', 'Error running tool', 'data',
                       jsonb_build_object('tool_name', c.name,
                                          'error', CASE WHEN \(sensitive)::boolean THEN c.error ELSE 'Tool execution failed. Error details are redacted.' END))
                     END
              FROM calls c
            )
            """)

        var sql: PostgresQuery = "WITH \(ctes, separator: ",\n")"
        switch mode {
        case .apply:
            var updates: PostgresQuery = """
                ,
                ins_traces AS (
                  INSERT INTO bridge.traces (trace_id, workflow_name, group_id, metadata, task_id, started_at, ended_at)
                  SELECT trace_id, workflow_name, group_id, metadata, task_key, started_at, ended_at FROM trace_rows
                  ON CONFLICT (trace_id) DO NOTHING RETURNING 1
                ),
                ins_spans AS (
                  INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data, error)
                  SELECT span_id, trace_id, parent_id, started_at, ended_at, span_data, error FROM span_rows
                  ON CONFLICT (span_id) DO NOTHING RETURNING 1
                ),
                ins_transcripts AS (
                  -- The run's transcript as the logs tell it (a function_call and its output per
                  -- tool call), so `verify` reconciles backfilled traces like any other.
                  INSERT INTO bridge.run_transcripts (trace_id, task_id, attempt, items)
                  SELECT b.trace_id, b.task_key, b.attempts::int,
                         coalesce((SELECT jsonb_agg(v.item ORDER BY c.n, v.ord)
                                   FROM calls c
                                   CROSS JOIN LATERAL (VALUES
                                     (1, jsonb_build_object('type', 'function_call', 'call_id', 'bf_call_' || c.n,
                                                            'name', c.name, 'arguments', coalesce(c.input, '{}'))),
                                     (2, jsonb_build_object('type', 'function_call_output', 'call_id', 'bf_call_' || c.n,
                                                            'output', coalesce(c.output, c.error, '')))) AS v(ord, item)
                                   WHERE c.trace_id = b.trace_id), '[]'::jsonb)
                  FROM b
                  ON CONFLICT (trace_id) DO NOTHING RETURNING 1
                ),
                upd_tasks AS (
                  UPDATE \(tasks) AS u SET \(traceCol) = b.trace_id FROM b
                  WHERE u.\(key) = b.k AND u.\(traceCol) IS NULL RETURNING 1
                )
                """
            var execCount: PostgresQuery = "0"
            if let e = r.executions, let etc = e.columns.traceId {
                updates += """
                    ,
                    upd_execs AS (
                      UPDATE \(identifier: e.table) AS u SET \(q(etc)) = b.trace_id FROM b
                      WHERE u.\(q(e.key)) = b.exec_key AND u.\(q(etc)) IS NULL RETURNING 1
                    )
                    """
                execCount = "(SELECT count(*) FROM upd_execs)"
            }
            sql += updates + """

                SELECT (SELECT count(*) FROM picked) AS picked,
                       (SELECT task_key FROM picked ORDER BY k DESC LIMIT 1) AS cursor,
                       (SELECT count(*) FROM upd_tasks) AS tasks, \(execCount) AS executions,
                       (SELECT count(*) FROM ins_traces) AS traces, (SELECT count(*) FROM ins_spans) AS spans
                """
        case .count:
            sql += """

                SELECT (SELECT count(*) FROM b) AS tasks, (SELECT count(*) FROM span_rows) AS spans,
                       (SELECT count(*) FROM calls) AS functions
                """
        case .sample:
            sql += """

                SELECT jsonb_build_object(
                  'trace', jsonb_build_object('object', 'trace', 'id', tr.trace_id, 'workflow_name', tr.workflow_name,
                                              'group_id', tr.group_id, 'metadata', tr.metadata),
                  'spans', (SELECT jsonb_agg(jsonb_build_object('object', 'trace.span', 'id', s.span_id, 'trace_id', s.trace_id,
                                                                'parent_id', s.parent_id, 'started_at', \(Self.isoSQL("s.started_at")),
                                                                'ended_at', \(Self.isoSQL("s.ended_at")), 'span_data', s.span_data,
                                                                'error', s.error) ORDER BY s.started_at, s.span_id)
                            FROM span_rows s WHERE s.trace_id = tr.trace_id))::text AS j
                FROM trace_rows tr ORDER BY tr.task_key
                """
        }
        return sql
    }
}
