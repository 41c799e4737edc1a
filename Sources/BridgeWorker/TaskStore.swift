import BridgeCore
import BridgePostgres
import Foundation

/// A task row as JSON values keyed by column name (from `to_jsonb(row)`).
public typealias Row = [String: JSONValue]

/// The worker's SQL against the user's tables. Every value is bound; table and column names
/// come from the mappings and are quoted as identifiers.
public struct TaskStore: Sendable {
    public let layout: TaskLayout

    public init(layout: TaskLayout) { self.layout = layout }

    private var t: String { PostgresQuery.quoteQualified(layout.table) }
    private func q(_ name: String) -> String { PostgresQuery.quoteIdentifier(name) }

    /// ORDER BY for claiming: priority (most urgent first), then age, then key.
    private var claimOrder: String {
        var parts: [String] = []
        if let p = layout.priorityColumn, !layout.priorityOrder.isEmpty {
            // Literals are from the mappings (not task data); they are escaped as SQL literals.
            let cases = layout.priorityOrder.enumerated().map { "WHEN \(Self.literal($1)) THEN \($0)" }.joined(separator: " ")
            parts.append("CASE \(q(p)) \(cases) ELSE \(layout.priorityOrder.count) END")
        }
        if let c = layout.createdAtColumn { parts.append(q(c)) }
        parts.append(q(layout.key))
        return parts.joined(separator: ", ")
    }

    static func literal(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }

    /// Claims up to `limit` pending tasks in one short autocommitted statement: a MATERIALIZED
    /// CTE picks rows with FOR NO KEY UPDATE SKIP LOCKED (so concurrent workers never claim the
    /// same task and the application's foreign-key checks are not blocked), and the UPDATE marks
    /// them running. Returns the claimed rows.
    public func claim(on conn: PostgresConnection, limit: Int) async throws -> [Row] {
        let sql = PostgresQuery(sql: """
            WITH picked AS MATERIALIZED (
                SELECT \(q(layout.key)) AS k FROM \(t)
                WHERE \(q(layout.statusColumn)) = $1
                ORDER BY \(claimOrder)
                LIMIT $2
                FOR NO KEY UPDATE SKIP LOCKED
            )
            UPDATE \(t) AS x SET \(q(layout.statusColumn)) = $3
            FROM picked WHERE x.\(q(layout.key)) = picked.k
            RETURNING to_jsonb(x.*)::text AS row
            """, binds: [.text(layout.pending), .text(String(limit)), .text(layout.running)])
        let rows = try await conn.query(sql)
        return try Self.parseRows(rows)
    }

    /// Reads tasks without claiming them (for --dry-run): the given keys, or the pending ones.
    public func peek(on conn: PostgresConnection, keys: [String], limit: Int) async throws -> [Row] {
        let sql: PostgresQuery
        if keys.isEmpty {
            sql = PostgresQuery(sql: """
                SELECT to_jsonb(x.*)::text AS row FROM \(t) AS x WHERE \(q(layout.statusColumn)) = $1
                ORDER BY \(claimOrder) LIMIT $2
                """, binds: [.text(layout.pending), .text(String(limit))])
        } else {
            sql = PostgresQuery(sql: """
                SELECT to_jsonb(x.*)::text AS row FROM \(t) AS x WHERE \(q(layout.key))::text = ANY($1::text[])
                ORDER BY \(q(layout.key))
                """, binds: [.text(Self.textArray(keys))])
        }
        let rows = try await conn.query(sql)
        return try Self.parseRows(rows)
    }

    /// The agent rows a task's run may need: the rows of the task's group (workspace) when the
    /// agents table has the group column, else all rows.
    public func agentRows(on conn: PostgresConnection, task: Row) async throws -> [Row] {
        guard let table = layout.agentTable else { return [] }
        var sql = PostgresQuery(sql: "SELECT to_jsonb(a.*)::text AS row FROM \(PostgresQuery.quoteQualified(table)) AS a")
        if let gc = layout.agentGroupColumn, let group = layout.groupColumn, let value = task[group], !value.isNull {
            sql.sql += " WHERE a.\(q(gc))::text = $1"
            sql.binds = [.text(value.templateText)]
        }
        let rows = try await conn.query(sql)
        return try Self.parseRows(rows)
    }

    /// Handoff edges whose source is one of `agentIds`.
    public func handoffEdges(on conn: PostgresConnection, agentIds: [String]) async throws -> [(source: String, target: String, description: String?)] {
        guard let h = layout.handoffs, !agentIds.isEmpty else { return [] }
        let desc = h.descriptionColumn.map { "\(q($0))::text" } ?? "NULL::text"
        let sql = PostgresQuery(sql: """
            SELECT \(q(h.sourceColumn))::text AS s, \(q(h.targetColumn))::text AS t, \(desc) AS d
            FROM \(PostgresQuery.quoteQualified(h.table))
            WHERE \(q(h.sourceColumn))::text = ANY($1::text[]) AND \(q(h.targetColumn)) IS NOT NULL
            """, binds: [.text(Self.textArray(agentIds))])
        return try await conn.query(sql).compactMap { r in
            guard let s = r["s"], let t = r["t"] else { return nil }
            return (s, t, r["d"])
        }
    }

    /// The number of earlier attempts (execution rows) for a task.
    public func previousAttempts(on conn: PostgresConnection, taskKey: String) async throws -> Int {
        guard let e = layout.executions else { return 0 }
        let sql = PostgresQuery(sql: """
            SELECT count(*) AS n FROM \(PostgresQuery.quoteQualified(e.table)) WHERE \(q(e.taskColumn))::text = $1
            """, binds: [.text(taskKey)])
        return try await conn.query(sql).first?.int("n") ?? 0
    }

    /// Inserts the attempt's execution row with status `started`; returns its key.
    public func startExecution(on conn: PostgresConnection, task: Row, traceId: String, agentId: String?,
                               attempt: Int, startedAt: Date) async throws -> String? {
        guard let e = layout.executions else { return nil }
        var cols: [String] = [q(e.taskColumn)]
        var vals: [PostgresValue] = [.text(task[layout.key]?.templateText ?? "")]
        func add(_ col: String?, _ v: PostgresValue) {
            guard let col else { return }
            cols.append(q(col))
            vals.append(v)
        }
        add(e.status, .text("started"))
        add(e.traceId, .text(traceId))
        add(e.startedAt, .text(PostgresTimestamp.format(startedAt)))
        add(e.agentId, agentId.map { .text($0) } ?? .null)
        if let g = layout.groupColumn { add(e.workspaceId, task[g].map { $0.isNull ? .null : .text($0.templateText) } ?? .null) }
        add(e.retryCount, .text(String(attempt - 1)))
        let placeholders = (1...vals.count).map { "$\($0)" }.joined(separator: ", ")
        let sql = PostgresQuery(sql: """
            INSERT INTO \(PostgresQuery.quoteQualified(e.table)) (\(cols.joined(separator: ", ")))
            VALUES (\(placeholders)) RETURNING \(q(e.key))::text AS k
            """, binds: vals)
        return try await conn.query(sql).first?["k"]
    }

    /// The outcome of one attempt, written atomically with the task's new state.
    public struct Outcome: Sendable {
        public enum Status: String, Sendable { case completed, failedRetriable = "failed_retriable", failedTerminal = "failed_terminal" }
        public var status: Status
        /// The task's next status value (completed, failed, or pending for a retry).
        public var taskStatus: String
        public var result: JSONValue
        public var tokenUsage: JSONValue
        public var errorMessage: String?
        public var errorType: String?
        public var completedAt: Date
        public var durationSeconds: Double

        public init(status: Status, taskStatus: String, result: JSONValue, tokenUsage: JSONValue, errorMessage: String?,
                    errorType: String?, completedAt: Date, durationSeconds: Double) {
            self.status = status
            self.taskStatus = taskStatus
            self.result = result
            self.tokenUsage = tokenUsage
            self.errorMessage = errorMessage
            self.errorType = errorType
            self.completedAt = completedAt
            self.durationSeconds = durationSeconds
        }
    }

    /// Writes the task's final status, result and trace id together with its execution row,
    /// in one transaction. The task update is guarded on the task still being `running`, so a
    /// task changed by someone else meanwhile is never overwritten; returns false then (and
    /// nothing is written).
    public func finish(on conn: PostgresConnection, taskKey: String, executionKey: String?, traceId: String?,
                       outcome: Outcome) async throws -> Bool {
        let layout = self.layout
        return try await conn.transaction { c in
            var sets: [String] = ["\(PostgresQuery.quoteIdentifier(layout.statusColumn)) = $1"]
            var binds: [PostgresValue] = [.text(outcome.taskStatus)]
            func add(_ col: String?, _ v: PostgresValue, cast: String = "") {
                guard let col else { return }
                binds.append(v)
                sets.append("\(PostgresQuery.quoteIdentifier(col)) = $\(binds.count)\(cast)")
            }
            let finished = outcome.taskStatus != layout.pending
            if finished {
                add(layout.resultColumn, .text(outcome.result.compact), cast: "::jsonb")
                add(layout.completedAtColumn, .text(PostgresTimestamp.format(outcome.completedAt)), cast: "::timestamptz")
                if let traceId { add(layout.traceIdColumn, .text(traceId)) }
            }
            binds.append(.text(taskKey))
            let keyParam = binds.count
            binds.append(.text(layout.running))
            let runningParam = binds.count
            let update = PostgresQuery(sql: """
                UPDATE \(PostgresQuery.quoteQualified(layout.table)) SET \(sets.joined(separator: ", "))
                WHERE \(PostgresQuery.quoteIdentifier(layout.key))::text = $\(keyParam)
                  AND \(PostgresQuery.quoteIdentifier(layout.statusColumn)) = $\(runningParam)
                """, binds: binds)
            let updated = try c.query(update).affectedRows
            guard updated == 1 else { throw StaleTask() }
            if let e = layout.executions, let executionKey {
                var esets: [String] = []
                var ebinds: [PostgresValue] = []
                func eadd(_ col: String?, _ v: PostgresValue, cast: String = "") {
                    guard let col else { return }
                    ebinds.append(v)
                    esets.append("\(PostgresQuery.quoteIdentifier(col)) = $\(ebinds.count)\(cast)")
                }
                eadd(e.status, .text(outcome.status.rawValue))
                eadd(e.completedAt, .text(PostgresTimestamp.format(outcome.completedAt)), cast: "::timestamptz")
                eadd(e.durationSeconds, .text(String(outcome.durationSeconds)), cast: "::double precision")
                eadd(e.tokenUsage, .text(outcome.tokenUsage.compact), cast: "::jsonb")
                eadd(e.result, .text(outcome.result.compact), cast: "::jsonb")
                eadd(e.errorMessage, outcome.errorMessage.map { .text($0) } ?? .null)
                eadd(e.errorType, outcome.errorType.map { .text($0) } ?? .null)
                if !esets.isEmpty {
                    ebinds.append(.text(executionKey))
                    try c.query(PostgresQuery(sql: """
                        UPDATE \(PostgresQuery.quoteQualified(e.table)) SET \(esets.joined(separator: ", "))
                        WHERE \(PostgresQuery.quoteIdentifier(e.key))::text = $\(ebinds.count)
                        """, binds: ebinds))
                }
            }
            return true
        }
    }

    /// Thrown inside `finish` when the task is no longer `running` (the transaction rolls back).
    public struct StaleTask: Error {}

    // Parsing is kept out of the async functions: a throwing closure right after a typed-throws
    // await crashes the Swift 6.3 optimizer (coroutine splitting) in release builds.
    static func parseRows(_ rows: PostgresRows) throws -> [Row] {
        var out: [Row] = []
        out.reserveCapacity(rows.count)
        for r in rows { out.append(try parseRow(r["row"])) }
        return out
    }

    static func parseRow(_ text: String?) throws -> Row {
        guard let text, case .object(let o) = try JSONValue.parse(text) else {
            throw PostgresError(kind: .client, message: "expected a JSON row, got \(text ?? "NULL")")
        }
        return o
    }

    /// A PostgreSQL text[] literal for binding (`{"a","b"}`), with quotes and backslashes escaped.
    static func textArray(_ items: [String]) -> String {
        "{" + items.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
            .joined(separator: ",") + "}"
    }
}
