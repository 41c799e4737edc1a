import BridgeCore
import CBridgeLibPQ
import Foundation

/// One PostgreSQL connection over libpq.
///
/// The actor runs on its own dedicated thread (`ThreadExecutor`), so every blocking libpq
/// call happens off Swift's cooperative pool, and actor isolation gives the connection one
/// user at a time. Each call is synchronous inside the actor, so a statement or a
/// `transaction { }` body is never interleaved with another caller's work.
/// Every `PGresult` is cleared before a call returns.
public actor PostgresConnection {
    private let executor: ThreadExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    // Owned by this actor's thread only.
    private nonisolated(unsafe) var handle: OpaquePointer?
    private var secrets: [String] = []
    /// The server's version number, e.g. 150018 for 15.18.
    public private(set) var serverVersion: Int = 0
    /// The backend process id of this session.
    public private(set) var backendPID: Int32 = 0
    /// Where this connection went, with the password redacted.
    public nonisolated let redactedTarget: String

    private init(config: ConnectionConfig) {
        self.executor = ThreadExecutor(name: "bridge-pg")
        self.redactedTarget = config.redacted
    }

    /// Opens a connection and applies the session settings.
    public static func connect(_ config: ConnectionConfig) async throws(PostgresError) -> PostgresConnection {
        let conn = PostgresConnection(config: config)
        do {
            try await conn.open(config)
        } catch {
            await conn.close()
            throw error
        }
        return conn
    }

    /// Opens a connection, runs `body` with it and closes it afterwards, also when `body` throws.
    public static func withConnection<T: Sendable>(
        _ config: ConnectionConfig, _ body: (PostgresConnection) async throws -> T
    ) async throws -> T {
        let conn = try await connect(config)
        do {
            let value = try await body(conn)
            await conn.close()
            return value
        } catch {
            await conn.close()
            throw error
        }
    }

    private func open(_ config: ConnectionConfig) throws(PostgresError) {
        // Parsed first: libpq's own parse errors would repeat the string, password included.
        _ = try config.parsedOptions()
        secrets = Secrets.collect(connection: config, environment: .process)
        let keys = ["dbname", "application_name", "connect_timeout", "client_encoding"]
        let values = [config.conninfo, config.applicationName, String(config.connectTimeout), "UTF8"]
        var cKeys = keys.map { strdup($0) }
        var cValues = values.map { strdup($0) }
        cKeys.append(nil)
        cValues.append(nil)
        defer {
            for p in cKeys { free(p) }
            for p in cValues { free(p) }
        }
        let conn = cKeys.withUnsafeBufferPointer { kp in
            cValues.withUnsafeBufferPointer { vp in
                kp.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: kp.count) { k in
                    vp.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: vp.count) { v in
                        PQconnectdbParams(k, v, 1)
                    }
                }
            }
        }
        handle = conn
        guard let conn, PQstatus(conn) == CONNECTION_OK else {
            let raw = handle.flatMap { PQerrorMessage($0) }.map { String(cString: $0) } ?? "out of memory"
            let msg = Redaction.scrub(raw.trimmingCharacters(in: .whitespacesAndNewlines), secrets: secrets)
            throw PostgresError(kind: .connection, message: "cannot connect to \(config.redacted): \(msg)")
        }
        serverVersion = Int(PQserverVersion(conn))
        backendPID = PQbackendPID(conn)
        for (name, value) in config.sessionSettings {
            try set(name, value)
        }
        // Timestamps are read in the server's ISO output (`PostgresTimestamp.parse`); a database
        // or role may default to another style (`SQL, DMY`), and PGDATESTYLE may ask for one.
        // Last, so no session setting undoes it. A pooler such as PgBouncer keeps DateStyle for
        // the client across server connections. A server (or proxy) that does not report the
        // style is set too: unknown is not ISO.
        let style = PQparameterStatus(conn, "DateStyle").map { String(cString: $0) }
        if style?.hasPrefix("ISO") != true {
            try set("DateStyle", "ISO")
        }
    }

    /// Closes the connection. Safe to call twice.
    public func close() {
        if let handle { PQfinish(handle) }
        handle = nil
        executor.shutdown()
    }

    deinit {
        if let handle { PQfinish(handle) }
        executor.shutdown()
    }

    /// Whether the connection is open and healthy.
    public var isOpen: Bool {
        guard let handle else { return false }
        return PQstatus(handle) == CONNECTION_OK
    }

    /// Runs one statement with its binds (extended protocol) and returns its rows.
    @discardableResult
    public func query(_ query: PostgresQuery) throws(PostgresError) -> PostgresRows {
        let conn = try requireHandle()
        // libpq takes C strings: every text value is copied into one buffer, each ended by a NUL,
        // one allocation a statement (a C copy of each value was two allocations and two frees a
        // bind, about 770 instructions).
        var bytes: [UInt8] = []
        bytes.reserveCapacity(
            query.binds.reduce(0) { n, b in if case .text(let s) = b { n + s.utf8.count + 1 } else { n } })
        var starts: [Int?] = []
        starts.reserveCapacity(query.binds.count)
        for (i, bind) in query.binds.enumerated() {
            guard case .text(let t) = bind else {
                starts.append(nil)
                continue
            }
            // A U+0000 would silently cut the value there.
            if Self.containsNUL(t) {
                throw PostgresError(
                    kind: .client,
                    message: "bind $\(i + 1) contains a NUL character (U+0000), which PostgreSQL text cannot hold",
                    statement: query.sql)
            }
            starts.append(bytes.count)
            bytes.append(contentsOf: t.utf8)
            bytes.append(0)
        }
        let result: OpaquePointer? = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { text in
                let values: [UnsafePointer<CChar>?] = starts.map { start in start.map { text.baseAddress! + $0 } }
                return values.withUnsafeBufferPointer { v in
                    PQexecParams(conn, query.sql, Int32(values.count), nil, v.baseAddress, nil, nil, 0)
                }
            }
        }
        return try consume(result, statement: query.sql)
    }

    /// Whether `s` holds a U+0000 (memchr over the UTF-8 when contiguous: binds can be megabytes).
    static func containsNUL(_ s: String) -> Bool {
        s.utf8.withContiguousStorageIfAvailable { b in
            b.baseAddress.map { memchr($0, 0, b.count) != nil } ?? false
        } ?? s.utf8.contains(0)
    }

    /// Checks that `sql` is one statement that parses, resolves its names and infers its
    /// parameter types, without running it: it is prepared as the unnamed statement (extended
    /// protocol, so a second statement is refused and nothing executes) inside a READ ONLY
    /// transaction that is always rolled back. The unnamed statement is replaced by the next
    /// one, so nothing is left behind. Needs a session with no open transaction.
    /// Returns the columns the statement would return (from its Describe), with their types as
    /// `format_type` spells them (`boolean`, `bigint`, `text`, …).
    @discardableResult
    public func checkPrepares(_ sql: String) throws(PostgresError) -> [PreparedColumn] {
        let conn = try requireHandle()
        guard !inTransaction else {
            throw PostgresError(kind: .client, message: "checkPrepares needs a session with no open transaction")
        }
        try simpleQuery("BEGIN READ ONLY")
        defer { _ = try? simpleQuery("ROLLBACK") }
        _ = try consume(PQprepare(conn, "", sql, 0, nil), statement: sql)
        guard let described = PQdescribePrepared(conn, "") else { throw connectionError(statement: sql) }
        var fields: [(name: String, oid: UInt32)] = []
        if PQresultStatus(described) == PGRES_COMMAND_OK {
            for f in 0..<PQnfields(described) {
                fields.append((String(cString: PQfname(described, f)), UInt32(PQftype(described, f))))
            }
            PQclear(described)
        } else {
            _ = try consume(described, statement: sql)  // throws the server's error
        }
        guard !fields.isEmpty else { return [] }
        let oids = "{" + Set(fields.map(\.oid)).map(String.init).joined(separator: ",") + "}"
        let names = try query(
            "SELECT oid::text AS oid, format_type(oid, NULL) AS name FROM pg_type WHERE oid = ANY(\(oids)::oid[])")
        var typeNames: [UInt32: String] = [:]
        for r in names.rows { if let o = r[0].flatMap({ UInt32($0) }), let n = r[1] { typeNames[o] = n } }
        return fields.map { PreparedColumn(name: $0.name, type: typeNames[$0.oid] ?? "oid \($0.oid)") }
    }

    /// Runs SQL text exactly as written (simple protocol), for trusted SQL from migration
    /// files and for statements that take no values. Returns the last result's rows.
    @discardableResult
    public func simpleQuery(_ sql: String) throws(PostgresError) -> PostgresRows {
        let conn = try requireHandle()
        guard PQsendQuery(conn, sql) == 1 else { throw connectionError(statement: sql) }
        var last = PostgresRows(columns: [], rows: [], affectedRows: 0)
        var firstError: PostgresError?
        while let result = PQgetResult(conn) {
            do {
                last = try consume(result, statement: sql)
            } catch {
                if firstError == nil { firstError = error }
            }
        }
        if let firstError { throw firstError }
        return last
    }

    /// `SET name = value` with the value quoted as a literal (settings cannot be bound).
    public func set(_ name: String, _ value: String) throws(PostgresError) {
        let literal = "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
        try simpleQuery("SET \(PostgresQuery.quoteIdentifier(name)) = \(literal)")
    }

    /// Runs `body` inside BEGIN … COMMIT on this connection, rolling back if it throws.
    /// The body runs synchronously on the connection's thread, so nothing interleaves.
    public func transaction<T: Sendable>(
        readOnly: Bool = false,
        _ body: @Sendable (isolated PostgresConnection) throws -> T
    ) throws -> T {
        try simpleQuery(readOnly ? "BEGIN READ ONLY" : "BEGIN")
        do {
            let value = try body(self)
            try simpleQuery("COMMIT")
            return value
        } catch {
            _ = try? simpleQuery("ROLLBACK")
            throw error
        }
    }

    /// Runs `body` inside BEGIN READ ONLY … ROLLBACK: whatever it does or throws, the
    /// transaction is rolled back, so checks and previews cannot write.
    public func readOnlyRolledBack<T: Sendable>(
        _ body: @Sendable (isolated PostgresConnection) throws -> T
    ) throws -> T {
        try simpleQuery("BEGIN READ ONLY")
        defer { _ = try? simpleQuery("ROLLBACK") }
        return try body(self)
    }

    /// Whether a transaction block is open on this session.
    public var inTransaction: Bool {
        guard let handle else { return false }
        let s = PQtransactionStatus(handle)
        return s == PQTRANS_INTRANS || s == PQTRANS_INERROR
    }

    // MARK: - LISTEN / NOTIFY

    /// `LISTEN channel` on this session. Notifications are then collected by
    /// `waitForNotifications(timeout:)`; use a connection dedicated to listening.
    public func listen(_ channel: String) throws(PostgresError) {
        try simpleQuery("LISTEN \(PostgresQuery.quoteIdentifier(channel))")
    }

    /// Waits up to `timeout` seconds for notifications and returns those that arrived (empty
    /// on timeout). The wait is a `poll` on the connection's socket, on this connection's own
    /// thread, never on Swift's cooperative pool; keep `timeout` short (it blocks this actor).
    /// Throws a `.connection` error when the connection is broken (e.g. the server restarted).
    public func waitForNotifications(timeout: Double) throws(PostgresError) -> [PostgresNotification] {
        let conn = try requireHandle()
        var out = drainNotifications(conn)
        if !out.isEmpty { return out }
        let fd = PQsocket(conn)
        guard fd >= 0 else { throw connectionError(statement: nil) }
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let rc = poll(&pfd, 1, Int32(max(0, timeout * 1000)))
        if rc < 0 && errno != EINTR { throw PostgresError(kind: .connection, message: "poll failed: errno \(errno)") }
        if rc > 0 {
            guard PQconsumeInput(conn) == 1 else { throw connectionError(statement: nil) }
            if PQstatus(conn) != CONNECTION_OK { throw connectionError(statement: nil) }
            out = drainNotifications(conn)
        }
        return out
    }

    private func drainNotifications(_ conn: OpaquePointer) -> [PostgresNotification] {
        var out: [PostgresNotification] = []
        while let n = PQnotifies(conn) {
            let note = n.pointee
            out.append(
                PostgresNotification(
                    channel: String(cString: note.relname),
                    // Empty default: a NOTIFY without a payload.
                    payload: note.extra.map { String(cString: $0) } ?? "",
                    backendPID: note.be_pid))
            PQfreemem(n)
        }
        return out
    }

    // MARK: - Internals

    private func requireHandle() throws(PostgresError) -> OpaquePointer {
        guard let handle else { throw PostgresError(kind: .client, message: "connection is closed") }
        if PQstatus(handle) != CONNECTION_OK {
            throw connectionError(statement: nil)
        }
        return handle
    }

    private func connectionError(statement: String?) -> PostgresError {
        let raw = handle.flatMap { PQerrorMessage($0) }.map { String(cString: $0) } ?? "connection lost"
        var e = PostgresError(
            kind: .connection,
            message: Redaction.scrub(raw.trimmingCharacters(in: .whitespacesAndNewlines), secrets: secrets))
        e.statement = statement
        return e
    }

    private func consume(_ result: OpaquePointer?, statement: String) throws(PostgresError) -> PostgresRows {
        guard let result else { throw connectionError(statement: statement) }
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        switch status {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY, PGRES_SINGLE_TUPLE:
            let nFields = Int(PQnfields(result))
            let nRows = Int(PQntuples(result))
            var columns: [String] = []
            columns.reserveCapacity(nFields)
            for f in 0..<nFields { columns.append(String(cString: PQfname(result, Int32(f)))) }
            var rows: [[String?]] = []
            rows.reserveCapacity(nRows)
            for r in 0..<nRows {
                var row: [String?] = []
                row.reserveCapacity(nFields)
                for f in 0..<nFields {
                    if PQgetisnull(result, Int32(r), Int32(f)) == 1 {
                        row.append(nil)
                    } else {
                        row.append(String(cString: PQgetvalue(result, Int32(r), Int32(f))))
                    }
                }
                rows.append(row)
            }
            // Empty default: no count in the tag; the row count stands.
            let tuples = PQcmdTuples(result).map { String(cString: $0) } ?? ""
            return PostgresRows(
                columns: columns, rows: rows, affectedRows: Int(tuples) ?? nRows, statement: statement)
        default:
            throw serverError(result, statement: statement)
        }
    }

    private func serverError(_ result: OpaquePointer, statement: String) -> PostgresError {
        func field(_ code: Int32) -> String? {
            PQresultErrorField(result, code).map { String(cString: $0) }
        }
        let fallback = PQresultErrorMessage(result).map { String(cString: $0) } ?? "unknown error"
        let message = field(Int32(UInt8(ascii: "M"))) ?? fallback.trimmingCharacters(in: .whitespacesAndNewlines)
        var e = PostgresError(
            kind: field(Int32(UInt8(ascii: "C"))) == nil ? .connection : .server,
            message: Redaction.scrub(message, secrets: secrets),
            sqlState: field(Int32(UInt8(ascii: "C"))),
            severity: field(Int32(UInt8(ascii: "V"))) ?? field(Int32(UInt8(ascii: "S"))),
            detail: field(Int32(UInt8(ascii: "D"))).map { Redaction.scrub($0, secrets: secrets) },
            hint: field(Int32(UInt8(ascii: "H"))),
            position: field(Int32(UInt8(ascii: "P"))).flatMap { Int($0) },
            statement: statement
        )
        e.schemaName = field(Int32(UInt8(ascii: "s")))
        e.tableName = field(Int32(UInt8(ascii: "t")))
        e.columnName = field(Int32(UInt8(ascii: "c")))
        e.constraintName = field(Int32(UInt8(ascii: "n")))
        return e
    }
}

/// One `NOTIFY` received by a listening connection.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    /// The backend that sent it.
    public var backendPID: Int32
}
