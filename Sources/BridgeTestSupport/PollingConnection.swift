import BridgePostgres
import CBridgeLibPQ
import Foundation
import Synchronization

/// A plain blocking libpq connection for the conditions `OffPool` polls on a thread of its own.
///
/// One connection serves a whole poll, instead of a psql process (a fork and a new backend) per
/// check: on a loaded 2-core machine a dozen tests polling every 50 ms that way cost the server
/// hundreds of connections a second. Never use it from async code, where a blocking call would
/// hold a thread of the cooperative pool; there, use `TestDatabase.connect`.
public final class PollingConnection: Sendable {
    private let url: String
    /// The libpq handle; held while a query runs on it.
    private let handle = Mutex<OpaquePointer?>(nil)

    /// Connects at the first query (on the polling thread, not here).
    public init(_ url: String) { self.url = url }

    deinit { handle.withLock { if let conn = $0 { PQfinish(conn) } } }

    /// The first column of the first row `sql` returns (nil for no row or NULL).
    public func scalar(_ sql: String) throws -> String? {
        try handle.withLock { (handle: inout OpaquePointer?) throws -> String? in
            // Connects at the first query; after a lost connection (a server restart), reconnects.
            if handle == nil { handle = PQconnectdb(url) }
            guard let conn = handle else {
                throw PostgresError(kind: .client, message: "libpq could not allocate a connection")
            }
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
