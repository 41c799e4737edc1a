import BridgeCore
import BridgeMapping
import BridgePostgres
import FoundationEssentials

/// Runs `sql` tools: compiles the statement with its binds, runs it inside a transaction
/// (`READ ONLY` unless the tool says `writes: true`) with a local `statement_timeout`, and
/// returns the rows as JSON array text, capped at `max_rows` rows and `max_bytes` bytes.
///
/// Output shapes:
/// - rows: `[{"col": value, …}, …]` (JSON types as PostgreSQL's `json_agg` gives them);
/// - more than `max_rows` rows: `{"max_rows":N,"rows":[…first N…],"truncated":true}`;
/// - a write without `RETURNING`: `{"affected_rows":N}`;
/// - more than `max_bytes` bytes: the text cut to fit, ending in `… [truncated: …]`.
/// Failures throw `ToolFailure` quoting the SQLSTATE (25006 for a write in a read-only tool,
/// 57014 for a timeout).
public struct SQLToolExecutor: ToolExecutor {
    /// Gives the connection a tool call runs on. Calls on one connection are serialised by
    /// its actor, so several tools may share one.
    public typealias ConnectionProvider = @Sendable () async throws -> PostgresConnection
    /// Compiles a tool's SQL with the call's arguments and the task row.
    public typealias Compiler = @Sendable (SQLToolSpec, JSONValue, [String: JSONValue]) throws -> PostgresQuery

    /// `SQLToolSpec.compile(arguments:task:)` from the mapping layer.
    public static let defaultCompile: Compiler = { spec, arguments, task in
        try spec.compile(arguments: arguments, task: task)
    }

    let connection: ConnectionProvider
    let compile: Compiler

    public init(connection: @escaping ConnectionProvider, compile: @escaping Compiler = SQLToolExecutor.defaultCompile)
    {
        self.connection = connection
        self.compile = compile
    }

    public func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        guard case .sql(let spec) = tool.implementation else {
            throw ToolFailure("tool \(tool.name) is not a SQL tool")
        }
        let compiled: PostgresQuery
        do {
            compiled = try compile(spec, arguments, context.taskRow)
        } catch let failure as ToolFailure {
            throw failure
        } catch {
            throw ToolFailure("cannot compile the SQL of tool \(tool.name): \(error)")
        }
        let conn: PostgresConnection
        do {
            conn = try await connection()
        } catch {
            throw ToolFailure("no database connection for tool \(tool.name): \(error)")
        }
        let query = Self.trimmed(compiled)
        let returnsRows = Self.returnsRows(query.sql)
        let maxRows = max(0, spec.maxRows)
        let timeout = String(max(0, spec.timeoutMs))
        let maxBytes = spec.maxBytes
        // A writing tool of a durable run: the lease check, the statement and the call's journal
        // row commit together (exactly once: a resumed run replays the row, never the statement).
        let once = spec.writes ? context.exactlyOnce : nil
        let text: String
        do {
            text = try await conn.transaction(readOnly: !spec.writes) { c -> String in
                if let once, try c.query(once.fence).count != 1 {
                    throw ToolFailure("the task's lease is gone; the statement was not run")
                }
                let output = try Self.run(query, returnsRows: returnsRows, maxRows: maxRows, timeout: timeout, on: c)
                if let once { try c.query(once.record(Self.capBytes(output, maxBytes: maxBytes))) }
                return output
            }
        } catch let e as PostgresError {
            var data: [String: JSONValue] = ["tool_name": .string(tool.name)]
            if let s = e.sqlState { data["sqlstate"] = .string(s) }
            if e.code == .readOnlySQLTransaction {
                // PostgreSQL names the wrapping SELECT; name the statement the tool wrote.
                let verb = ToolStatement.writingVerb(in: spec.sql) ?? "a data-modifying statement"
                throw ToolFailure(
                    "SQL tool \(tool.name) failed: its SQL runs \(verb), but the tool is read-only (writes: false) (SQLSTATE 25006)",
                    data: .object(data))
            }
            throw ToolFailure("SQL tool \(tool.name) failed: \(e.description)", data: .object(data))
        }
        return Self.capBytes(text, maxBytes: spec.maxBytes)
    }

    /// The statement inside the tool's transaction, with its local timeout; its output text.
    static func run(
        _ query: PostgresQuery, returnsRows: Bool, maxRows: Int, timeout: String,
        on c: isolated PostgresConnection
    ) throws(PostgresError) -> String {
        try c.query("SELECT set_config('statement_timeout', \(timeout), true)")
        if returnsRows {
            try c.simpleQuery("SAVEPOINT bridge_sql_tool")
            do {
                let rows = try c.query(Self.wrapped(query, maxRows: maxRows))
                let n = rows.first?.int("n") ?? 0
                let json = rows.first?["rows"] ?? "[]"
                return n > maxRows ? "{\"max_rows\":\(maxRows),\"rows\":\(json),\"truncated\":true}" : json
            } catch  where error.code == .featureNotSupported {
                // Not wrappable (e.g. a WITH holding a data-modifying statement): run it as written.
                try c.simpleQuery("ROLLBACK TO SAVEPOINT bridge_sql_tool")
            }
        }
        return Self.plainOutput(try c.query(query), maxRows: maxRows)
    }

    /// Drops trailing comments, semicolons and whitespace so the statement can be nested.
    static func trimmed(_ q: PostgresQuery) -> PostgresQuery {
        PostgresQuery(unsafeSQL: ToolStatement.trimmed(q.sql), binds: q.binds)
    }

    /// Whether the statement yields rows: SELECT/WITH/VALUES/TABLE, or anything with RETURNING.
    static func returnsRows(_ sql: String) -> Bool {
        var s = Substring(sql)
        while true {
            s = s.drop(while: { $0.isWhitespace || $0 == "(" })
            if s.hasPrefix("--") {
                s = s.drop(while: { $0 != "\n" })
            } else if s.hasPrefix("/*"), let end = s.range(of: "*/") {
                s = s[end.upperBound...]
            } else {
                break
            }
        }
        let keyword = s.prefix(while: { $0.isLetter }).lowercased()
        if ["select", "with", "values", "table"].contains(keyword) { return true }
        return sql.range(of: #"\breturning\b"#, options: [.regularExpression, .caseInsensitive]) != nil
    }

    /// `WITH r AS (<query>) …`: counts up to `maxRows + 1` rows and aggregates the first
    /// `maxRows` as JSON, in the statement's own order.
    static func wrapped(_ q: PostgresQuery, maxRows: Int) -> PostgresQuery {
        """
        WITH bridge_result AS (\(q)
        ), bridge_limited AS (SELECT * FROM bridge_result LIMIT \(maxRows + 1)) \
        SELECT (SELECT count(*) FROM bridge_limited) AS n, \
        coalesce((SELECT json_agg(bridge_row) FROM (SELECT * FROM bridge_limited LIMIT \(maxRows)) bridge_row), '[]'::json)::text AS rows
        """
    }

    /// Rows of a statement run as written: values as strings (PostgreSQL's text format).
    static func plainOutput(_ rows: PostgresRows, maxRows: Int) -> String {
        if rows.columns.isEmpty { return "{\"affected_rows\":\(rows.affectedRows)}" }
        let objects: [JSONValue] = rows.rows.prefix(maxRows).map { values in
            var o: [String: JSONValue] = [:]
            for (i, c) in rows.columns.enumerated() { o[c] = values[i].map(JSONValue.string) ?? .null }
            return .object(o)
        }
        let json = JSONValue.array(objects).compact
        return rows.count > maxRows ? "{\"max_rows\":\(maxRows),\"rows\":\(json),\"truncated\":true}" : json
    }

    /// Cuts `text` to at most `maxBytes` UTF-8 bytes (on a character boundary), ending with a
    /// marker that says so.
    public static func capBytes(_ text: String, maxBytes: Int) -> String {
        guard maxBytes > 0, text.utf8.count > maxBytes else { return text }
        let suffix = "… [truncated: output exceeded max_bytes=\(maxBytes)]"
        let budget = max(0, maxBytes - suffix.utf8.count)
        var kept = ""
        var used = 0
        for ch in text {
            let n = ch.utf8.count
            if used + n > budget { break }
            kept.append(ch)
            used += n
        }
        return kept + suffix
    }
}

/// Dispatches each tool call by implementation kind. Hosted tools are run by the model
/// provider and never by bridge.
@MemberwiseInit
public struct CompositeToolExecutor: ToolExecutor {
    public var sql: (any ToolExecutor)? = nil
    public var http: (any ToolExecutor)? = nil
    public var command: (any ToolExecutor)? = nil

    public func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        let executor: (any ToolExecutor)?
        let kind: String
        switch tool.implementation {
        case .sql:
            executor = sql
            kind = "sql"
        case .http:
            executor = http
            kind = "http"
        case .command:
            executor = command
            kind = "command"
        case .hosted(let h):
            throw ToolFailure("tool \(tool.name) is the hosted tool \(h.type); the model provider runs it, not bridge")
        }
        guard let executor else { throw ToolFailure("no executor for \(kind) tools is configured (tool \(tool.name))") }
        return try await executor.execute(tool, arguments: arguments, context: context)
    }
}
