// The read side of `bridge exec --backfill`: the two set-based SELECTs of a batch (the task rows
// with their latest execution row, then their tool-call log rows) and the rows they return.
import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// One finished task as its stored records tell it: what a backfilled trace is rebuilt from.
/// Built by `BackfillHistory` (tests through `@testable import`, with the memberwise inits).
public struct HistoricalRun: Sendable, Equatable {
    /// The task's key.
    public var taskKey: TaskKey
    /// The group (workspace) column as text.
    public var groupId: String?
    /// The task's agent column (`agent_selection.task_column`) as text.
    public var agentKey: String?
    /// The task's agent row, if one matched: its match column (nil when NULL).
    public var agentRow: AgentRow?
    /// `agent_selection.fallback_column` as text.
    public var fallback: String?
    public var failed = false
    public var completedAt: Date?
    public var createdAt: Date?
    /// The latest execution row (the run the task's result came from).
    public var execution: Execution?
    /// Tool calls from the logs, in order (by start time, then log key).
    public var toolCalls: [ToolCall] = []

    public struct AgentRow: Sendable, Equatable {
        public var match: String?
    }

    public struct Execution: Sendable, Equatable {
        public var key: String
        public var startedAt: Date?
        public var completedAt: Date?
        public var durationSeconds: Double?
        /// The token usage column (an object with `input_tokens`, … as the Responses API writes it).
        public var usage: JSONValue?
        public var errorMessage: String?
        /// How many execution rows the task has.
        public var attempts = 1
    }

    public struct ToolCall: Sendable, Equatable {
        public var name: String
        /// The record's arguments: a JSON string is taken as it is, anything else as compact JSON.
        public var arguments: JSONValue?
        public var output: String?
        public var error: String?
        public var startedAt: Date?
        public var durationMs: Double?

        /// The start moved by the duration; the start alone without a duration, or with one that
        /// makes no instant bridge can store (`1e300`).
        public var endedAt: Date? {
            startedAt.map { s in durationMs.flatMap { PostgresTimestamp.moved(s, by: $0 / 1000) } ?? s }
        }
    }
}

/// The backfill's SELECTs. Names from the mappings are quoted identifiers, every value is
/// bound, and keys are bound with their column's type, so the task key, the partial index of
/// migration 0009 and the log table's task column index serve them.
struct BackfillHistory: Sendable {
    let config: MappingConfig

    /// Finished (completed or failed per the mappings) and without a trace id.
    func filter(alias a: String) -> PostgresQuery {
        let s = config.source
        let trace = config.results.traceIdColumn ?? "openai_trace_id"
        return
            "\(alias: a).\(identifier: trace) IS NULL AND \(alias: a).\(identifier: s.status.column) IN (\(s.status.completed), \(s.status.failed))"
    }

    /// `--since`: on the task's completed_at column if mapped, else its created_at column. The
    /// instant is bound as UTC text with its zone, so the session's TimeZone does not move it.
    func sinceCondition(alias a: String, _ since: Date) -> PostgresQuery {
        let column = config.results.completedAtColumn ?? config.source.createdAtColumn ?? config.source.key
        return "\(alias: a).\(identifier: column) >= \(since)::timestamptz"
    }

    /// `value` (a timestamptz) when bridge can read it back, else NULL. The user's history may
    /// hold `infinity`, a BC date or a year past 9999, which the server prints in forms no
    /// instant bridge stores can take; such a time is left out, as token usage that is not JSON
    /// is, instead of one row stopping the backfill. The bounds are `PostgresTimestamp.range`;
    /// the session's TimeZone is UTC, so what lies inside prints with a four-digit year.
    static func readable(_ value: PostgresQuery) -> PostgresQuery {
        """
        CASE WHEN \(value) >= '0001-01-01 00:00:00+00'::timestamptz
              AND \(value) < '10000-01-01 00:00:00+00'::timestamptz THEN \(value) END
        """
    }

    /// Tasks that match the backfill filter now.
    func countStatement(since: Date?) -> PostgresQuery {
        var sql: PostgresQuery =
            "SELECT count(*) AS n FROM \(identifier: config.source.table) t WHERE \(filter(alias: "t"))"
        if let since { sql += " AND \(sinceCondition(alias: "t", since))" }
        return sql
    }

    /// The batch: up to `limit` matching tasks after `cursor` in key order (locked
    /// `FOR NO KEY UPDATE SKIP LOCKED` when `lock`), with their agent row's match value and
    /// their latest execution row. One row per task, in key order.
    func batchStatement(cursor: TaskKey?, limit: Int, since: Date?, lock: Bool) -> PostgresQuery {
        let s = config.source
        let key = PostgresQuery.identifier(s.key)
        var pickedWhere = filter(alias: "t")
        if let cursor { pickedWhere += " AND t.\(key) > \(cursor)\(config.columnTypes.cast(s.table, s.key))" }
        if let since { pickedWhere += " AND \(sinceCondition(alias: "t", since))" }
        func text(_ column: String?) -> PostgresQuery { column.map { "t.\(identifier: $0)::text" } ?? "NULL::text" }
        func time(_ column: String?, of a: String = "t") -> PostgresQuery {
            column.map { Self.readable("\(alias: a).\(identifier: $0)::timestamptz") } ?? "NULL::timestamptz"
        }
        let sel = s.agentSelection
        let agentRef: PostgresQuery = sel?.taskColumn.map { "t.\(identifier: $0)" } ?? "NULL::text"
        var sql: PostgresQuery = """
            WITH picked AS MATERIALIZED (
              SELECT t.\(key) AS k, t.\(key)::text AS task_key, \(text(s.groupColumn)) AS group_id, \(agentRef) AS agent_ref,
                     \(text(sel?.taskColumn)) AS agent_key, \(text(sel?.fallbackColumn)) AS fallback,
                     t.\(identifier: s.status.column)::text = \(s.status.failed) AS failed,
                     \(time(config.results.completedAtColumn)) AS t_completed, \(time(s.createdAtColumn)) AS t_created
              FROM \(identifier: s.table) t
              WHERE \(pickedWhere)
              ORDER BY t.\(key) LIMIT \(limit)::bigint
              \(lock ? "FOR NO KEY UPDATE OF t SKIP LOCKED" : "" as PostgresQuery)
            )
            SELECT p.task_key, p.group_id, p.agent_key, p.fallback, p.failed, p.t_completed, p.t_created,
            """
        if let sel, sel.taskColumn != nil {
            sql +=
                " ag.\(identifier: sel.matchColumn)::text AS agent_match, ag.\(identifier: sel.key) IS NOT NULL AS agent_row,"
        } else {
            sql += " NULL::text AS agent_match, false AS agent_row,"
        }
        if let e = config.results.executions {
            let c = e.columns
            func col(_ name: String?, _ type: String) -> PostgresQuery {
                name.map { "e.\(identifier: $0)::\(catalogType: type)" } ?? "NULL::\(catalogType: type)"
            }
            let order: PostgresQuery =
                // Empty default: without a started-at column the key alone orders.
                (c.startedAt.map { "e.\(identifier: $0) DESC NULLS LAST, " } ?? "") + "e.\(identifier: e.key) DESC"
            sql += """
                 x.exec_key, x.x_started, x.x_completed, x.x_duration, x.x_usage, x.x_error, x.attempts
                FROM picked p
                LEFT JOIN LATERAL (
                  SELECT e.\(identifier: e.key)::text AS exec_key, \(time(c.startedAt, of: "e")) AS x_started,
                         \(time(c.completedAt, of: "e")) AS x_completed, \(col(c.durationSeconds, "double precision")) AS x_duration,
                         \(col(c.tokenUsage, "text")) AS x_usage, \(col(c.errorMessage, "text")) AS x_error,
                         count(*) OVER () AS attempts
                  FROM \(identifier: e.table) e WHERE e.\(identifier: e.taskColumn) = p.k
                  ORDER BY \(order) LIMIT 1
                ) x ON true
                """
        } else {
            sql += " NULL::text AS exec_key\nFROM picked p"
        }
        if let sel, sel.taskColumn != nil {
            sql += "\nLEFT JOIN \(identifier: sel.table) ag ON ag.\(identifier: sel.key) = p.agent_ref"
        }
        sql += "\nORDER BY p.k"
        return sql
    }

    /// The tool-call log rows of the tasks `taskKeys`, numbered per task by start time, then log
    /// key (the `function:<n>` slot of their span ids).
    func toolCallStatement(taskKeys: [TaskKey]) -> PostgresQuery? {
        guard let l = config.backfill?.logs else { return nil }
        let k = l.toolCall
        let types = config.columnTypes
        let content: PostgresQuery = "l.\(identifier: l.contentColumn)::jsonb"
        let created: PostgresQuery =
            l.createdAtColumn.map { Self.readable("l.\(identifier: $0)::timestamptz") } ?? "NULL::timestamptz"
        let startKey: PostgresQuery = "\(k.startedAt)"
        let fromJSON: PostgresQuery = """
            CASE WHEN (x.j ->> \(startKey)) ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}'
                 THEN (x.j ->> \(startKey))::timestamptz END
            """
        let durKey: PostgresQuery = "\(k.durationMs)"
        let typeMatch: PostgresQuery =
            "l.\(identifier: l.typeColumn) = ANY(\(l.toolCallTypes)\(types.arrayCast(l.table, l.typeColumn)))"
        return """
            SELECT c.task_key, c.name, c.args, c.output, c.error, c.started_at, c.duration_ms
            FROM (
              SELECT l.\(identifier: l.taskColumn)::text AS task_key, l.\(identifier: l.key)::text AS log_key,
                     x.j ->> \(k.name) AS name, (x.j -> \(k.arguments))::text AS args,
                     x.j ->> \(k.output) AS output, x.j ->> \(k.error) AS error,
                     coalesce(\(Self.readable(fromJSON)), \(created)) AS started_at,
                     CASE WHEN jsonb_typeof(x.j -> \(durKey)) = 'number' THEN (x.j ->> \(durKey))::double precision END AS duration_ms
              FROM \(identifier: l.table) l
              CROSS JOIN LATERAL (SELECT \(content) AS j) x
              WHERE l.\(identifier: l.taskColumn) = ANY(\(taskKeys)\(types.arrayCast(l.table, l.taskColumn))) AND \(typeMatch)
            ) c
            ORDER BY c.task_key, c.started_at, c.log_key
            """
    }

    /// Reads one batch: the tasks, then (when the mappings name a log table) their tool calls.
    func read(on c: isolated PostgresConnection, cursor: TaskKey?, limit: Int, since: Date?, lock: Bool)
        throws -> [HistoricalRun]
    {
        let rows = try c.query(batchStatement(cursor: cursor, limit: limit, since: since, lock: lock))
        var runs = try rows.from(config.source.table).map(Self.run)
        guard !runs.isEmpty, let calls = toolCallStatement(taskKeys: runs.map(\.taskKey)) else { return runs }
        var byTask: [TaskKey: [HistoricalRun.ToolCall]] = [:]
        for r in try c.query(calls) {
            // The log rows are the user's history, read as they are: a call without a name is
            // shown as `unknown_tool`, and arguments that are not JSON are left out.
            byTask[try r.decode(TaskKey.self, "task_key"), default: []].append(
                HistoricalRun.ToolCall(
                    name: try r.optional(String.self, "name") ?? "unknown_tool",
                    arguments: try r.optional(String.self, "args").flatMap { try? JSONValue.parse($0) },
                    output: try r.optional(String.self, "output"), error: try r.optional(String.self, "error"),
                    startedAt: try r.optional(Date.self, "started_at"),
                    durationMs: try r.optional(Double.self, "duration_ms")))
        }
        for i in runs.indices { runs[i].toolCalls = byTask[runs[i].taskKey] ?? [] }
        return runs
    }

    /// A run from a row of `batchStatement`. `failed` is NULL when the task's status is NULL,
    /// which is not the failed status; token usage that is not JSON is left out (the user's
    /// history, read as it is).
    static func run(_ r: PostgresRow) throws(PostgresDecodingError) -> HistoricalRun {
        var run = HistoricalRun(
            taskKey: try r.decode(TaskKey.self, "task_key"), groupId: try r.optional(String.self, "group_id"),
            agentKey: try r.optional(String.self, "agent_key"),
            agentRow: try r.decode(Bool.self, "agent_row")
                ? .init(match: try r.optional(String.self, "agent_match")) : nil,
            fallback: try r.optional(String.self, "fallback"), failed: try r.optional(Bool.self, "failed") ?? false,
            completedAt: try r.optional(Date.self, "t_completed"), createdAt: try r.optional(Date.self, "t_created"))
        if let key = try r.optional(String.self, "exec_key") {
            run.execution = .init(
                key: key, startedAt: try r.optional(Date.self, "x_started"),
                completedAt: try r.optional(Date.self, "x_completed"),
                durationSeconds: try r.optional(Double.self, "x_duration"),
                usage: try r.optional(String.self, "x_usage").flatMap { try? JSONValue.parse($0) },
                errorMessage: try r.optional(String.self, "x_error"), attempts: try r.decode(Int.self, "attempts"))
        }
        return run
    }
}
