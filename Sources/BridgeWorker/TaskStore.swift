import BridgeCore
import BridgeMapping
import BridgePostgres
import Foundation

/// A task row as JSON values keyed by column name (from `to_jsonb(row)`).
public typealias Row = [String: JSONValue]

/// The worker's SQL against the user's tables, driven by the mappings. Every value is bound;
/// table and column names come from the mappings and are quoted as identifiers.
public struct TaskStore: Sendable {
    public let config: MappingConfig

    public init(config: MappingConfig) { self.config = config }

    private var source: SourceMapping { config.source }
    private var t: String { PostgresQuery.quoteQualified(source.table) }
    private func q(_ name: String) -> String { PostgresQuery.quoteIdentifier(name) }

    /// ORDER BY for claiming: priority (most urgent first, values bound from `binds`), then
    /// age, then key.
    private func claimOrder(firstParam: Int) -> (sql: String, binds: [PostgresValue]) {
        var parts: [String] = []
        var binds: [PostgresValue] = []
        if let p = source.priority, !p.order.isEmpty {
            let cases = p.order.enumerated().map { i, value -> String in
                binds.append(.text(value))
                return "WHEN $\(firstParam + binds.count - 1) THEN \(i)"
            }.joined(separator: " ")
            parts.append("CASE \(q(p.column))::text \(cases) ELSE \(p.order.count) END")
        }
        if let c = source.createdAtColumn { parts.append(q(c)) }
        parts.append(q(source.key))
        return (parts.joined(separator: ", "), binds)
    }

    /// Claims up to `limit` pending tasks in one short autocommitted statement: a MATERIALIZED
    /// CTE picks rows with FOR NO KEY UPDATE SKIP LOCKED (so concurrent workers never claim the
    /// same task and the application's foreign-key checks are not blocked), and the UPDATE marks
    /// them running. `keys` restricts the claim to those task keys. Returns the claimed rows.
    public func claim(on conn: PostgresConnection, limit: Int, keys: [String] = []) async throws -> [Row] {
        let order = claimOrder(firstParam: 5)
        let keyFilter = "AND (cardinality($4::text[]) = 0 OR \(q(source.key))::text = ANY($4::text[]))"
        let sql = PostgresQuery(sql: """
            WITH picked AS MATERIALIZED (
                SELECT \(q(source.key)) AS k FROM \(t)
                WHERE \(q(source.status.column)) = $1 \(keyFilter)
                ORDER BY \(order.sql)
                LIMIT $2
                FOR NO KEY UPDATE SKIP LOCKED
            )
            UPDATE \(t) AS x SET \(q(source.status.column)) = $3
            FROM picked WHERE x.\(q(source.key)) = picked.k
            RETURNING to_jsonb(x.*)::text AS row
            """, binds: [.text(source.status.pending), .text(String(limit)), .text(source.status.running),
                         .text(Self.textArray(keys))] + order.binds)
        let rows = try await conn.query(sql)
        return try Self.parseRows(rows)
    }

    /// Reads tasks without claiming them (for --dry-run): the given keys, or the pending ones.
    public func peek(on conn: PostgresConnection, keys: [String], limit: Int) async throws -> [Row] {
        let sql: PostgresQuery
        if keys.isEmpty {
            let order = claimOrder(firstParam: 3)
            sql = PostgresQuery(sql: """
                SELECT to_jsonb(x.*)::text AS row FROM \(t) AS x WHERE \(q(source.status.column)) = $1
                ORDER BY \(order.sql) LIMIT $2
                """, binds: [.text(source.status.pending), .text(String(limit))] + order.binds)
        } else {
            sql = PostgresQuery(sql: """
                SELECT to_jsonb(x.*)::text AS row FROM \(t) AS x WHERE \(q(source.key))::text = ANY($1::text[])
                ORDER BY \(q(source.key))
                """, binds: [.text(Self.textArray(keys))])
        }
        let rows = try await conn.query(sql)
        return try Self.parseRows(rows)
    }

    /// The number of earlier attempts (execution rows) for a task.
    public func previousAttempts(on conn: PostgresConnection, taskKey: String) async throws -> Int {
        guard let e = config.results.executions else { return 0 }
        let sql = PostgresQuery(sql: """
            SELECT count(*) AS n FROM \(PostgresQuery.quoteQualified(e.table)) WHERE \(q(e.taskColumn))::text = $1
            """, binds: [.text(taskKey)])
        return try await conn.query(sql).first?.int("n") ?? 0
    }

    /// Inserts the attempt's execution row with the `started` status; returns its key.
    public func startExecution(on conn: PostgresConnection, task: Row, traceId: String, agentId: String?,
                               attempt: Int, startedAt: Date) async throws -> String? {
        guard let e = config.results.executions else { return nil }
        var cols: [String] = [q(e.taskColumn)]
        var vals: [PostgresValue] = [.text(task[source.key]?.templateText ?? "")]
        func add(_ col: String?, _ v: PostgresValue) {
            guard let col else { return }
            cols.append(q(col))
            vals.append(v)
        }
        add(e.columns.status, .text(e.statuses.started))
        add(e.columns.traceId, .text(traceId))
        add(e.columns.startedAt, .text(PostgresTimestamp.format(startedAt)))
        add(e.columns.agentId, agentId.map { .text($0) } ?? .null)
        if let g = source.groupColumn {
            add(e.columns.workspaceId, task[g].map { $0.isNull ? .null : .text($0.templateText) } ?? .null)
        }
        add(e.columns.retryCount, .text(String(attempt - 1)))
        let placeholders = (1...vals.count).map { "$\($0)" }.joined(separator: ", ")
        let sql = PostgresQuery(sql: """
            INSERT INTO \(PostgresQuery.quoteQualified(e.table)) (\(cols.joined(separator: ", ")))
            VALUES (\(placeholders)) RETURNING \(q(e.key))::text AS k
            """, binds: vals)
        return try await conn.query(sql).first?["k"]
    }

    /// The outcome of one attempt, written atomically with the task's new state.
    public struct Outcome: Sendable {
        public enum Status: Sendable { case completed, failedRetriable, failedTerminal }
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

    /// Thrown inside `finish` when the task is no longer `running` (the transaction rolls back).
    public struct StaleTask: Error {}

    /// Writes the task's final status, result and trace id together with its execution row, in
    /// one transaction. The task update is guarded on the task still being `running`, so a task
    /// changed by someone else meanwhile is never overwritten: then nothing is written and the
    /// result is false. A retry (`taskStatus` = pending) leaves result and trace id alone.
    public func finish(on conn: PostgresConnection, taskKey: String, executionKey: String?, traceId: String?,
                       outcome: Outcome) async throws -> Bool {
        let config = self.config
        do {
            return try await conn.transaction { c in
                let s = config.source
                var sets: [String] = ["\(PostgresQuery.quoteIdentifier(s.status.column)) = $1"]
                var binds: [PostgresValue] = [.text(outcome.taskStatus)]
                func add(_ col: String?, _ v: PostgresValue, cast: String = "") {
                    guard let col else { return }
                    binds.append(v)
                    sets.append("\(PostgresQuery.quoteIdentifier(col)) = $\(binds.count)\(cast)")
                }
                if outcome.taskStatus != s.status.pending {
                    add(config.results.resultColumn, .text(outcome.result.compact), cast: "::jsonb")
                    add(config.results.completedAtColumn, .text(PostgresTimestamp.format(outcome.completedAt)), cast: "::timestamptz")
                    if let traceId { add(config.results.traceIdColumn, .text(traceId)) }
                }
                binds.append(.text(taskKey))
                let keyParam = binds.count
                binds.append(.text(s.status.running))
                let update = PostgresQuery(sql: """
                    UPDATE \(PostgresQuery.quoteQualified(s.table)) SET \(sets.joined(separator: ", "))
                    WHERE \(PostgresQuery.quoteIdentifier(s.key))::text = $\(keyParam)
                      AND \(PostgresQuery.quoteIdentifier(s.status.column)) = $\(binds.count)
                    """, binds: binds)
                guard try c.query(update).affectedRows == 1 else { throw StaleTask() }
                guard let e = config.results.executions, let executionKey else { return true }
                var esets: [String] = []
                var ebinds: [PostgresValue] = []
                func eadd(_ col: String?, _ v: PostgresValue, cast: String = "") {
                    guard let col else { return }
                    ebinds.append(v)
                    esets.append("\(PostgresQuery.quoteIdentifier(col)) = $\(ebinds.count)\(cast)")
                }
                let status: String = switch outcome.status {
                case .completed: e.statuses.completed
                case .failedRetriable: e.statuses.failedRetriable
                case .failedTerminal: e.statuses.failedTerminal
                }
                eadd(e.columns.status, .text(status))
                eadd(e.columns.completedAt, .text(PostgresTimestamp.format(outcome.completedAt)), cast: "::timestamptz")
                eadd(e.columns.durationSeconds, .text(String(outcome.durationSeconds)), cast: "::double precision")
                eadd(e.columns.tokenUsage, .text(outcome.tokenUsage.compact), cast: "::jsonb")
                eadd(e.columns.result, .text(outcome.result.compact), cast: "::jsonb")
                eadd(e.columns.errorMessage, outcome.errorMessage.map { .text($0) } ?? .null)
                eadd(e.columns.errorType, outcome.errorType.map { .text($0) } ?? .null)
                ebinds.append(.text(executionKey))
                try c.query(PostgresQuery(sql: """
                    UPDATE \(PostgresQuery.quoteQualified(e.table)) SET \(esets.joined(separator: ", "))
                    WHERE \(PostgresQuery.quoteIdentifier(e.key))::text = $\(ebinds.count)
                    """, binds: ebinds))
                return true
            }
        } catch is StaleTask {
            return false
        }
    }

    // Parsing is kept out of the async functions above: a throwing closure right after a
    // typed-throws await crashes the Swift 6.3 optimizer (coroutine splitting) in release builds.
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
