import BridgePostgres
import CBridgeLibPQ
import Foundation

/// A plain blocking libpq connection for the conditions `OffPool` polls on a thread of its own.
///
/// One connection serves a whole poll, instead of a psql process (a fork and a new backend) per
/// check: on a loaded 2-core machine a dozen tests polling every 50 ms that way cost the server
/// hundreds of connections a second. Never use it from async code, where a blocking call would
/// hold a thread of the cooperative pool; there, use `TestDatabase.connect`.
public final class PollingConnection: @unchecked Sendable {
    // @unchecked Sendable: `conn` is only touched with `lock` held.
    private let lock = NSLock()
    private let url: String
    private var conn: OpaquePointer?

    /// Connects at the first query (on the polling thread, not here).
    public init(_ url: String) { self.url = url }

    deinit { if let conn { PQfinish(conn) } }

    /// The first column of the first row `sql` returns (nil for no row or NULL).
    public func scalar(_ sql: String) throws -> String? {
        try lock.withLock {
            // Connects at the first query; after a lost connection (a server restart), reconnects.
            if conn == nil { conn = PQconnectdb(url) }
            guard let conn else { throw PostgresError(kind: .client, message: "libpq could not allocate a connection") }
            if PQstatus(conn) != CONNECTION_OK { PQreset(conn) }
            guard PQstatus(conn) == CONNECTION_OK else {
                throw PostgresError(kind: .connection, message: String(cString: PQerrorMessage(conn)))
            }
            guard let res = PQexec(conn, sql) else {
                throw PostgresError(kind: .client, message: "libpq returned no result")
            }
            defer { PQclear(res) }
            let status = PQresultStatus(res)
            guard status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK else {
                throw PostgresError(kind: .server, message: String(cString: PQresultErrorMessage(res)))
            }
            guard PQntuples(res) > 0, PQnfields(res) > 0, PQgetisnull(res, 0, 0) == 0 else { return nil }
            return String(cString: PQgetvalue(res, 0, 0))
        }
    }

    /// `count(*)` of the rows of `table` where `condition` holds.
    public func count(_ condition: String, table: String = "tasks") throws -> Int {
        let text = try scalar("SELECT count(*) FROM \(table) WHERE \(condition)")
        guard let n = text.flatMap({ Int($0) }) else {
            throw PostgresError(kind: .client, message: "not a count: \(text ?? "NULL")")
        }
        return n
    }
}
