import BridgeCore
import BridgePostgres

/// A place in the ledger's export order: rows by (txid, id), where `txid` is the writing
/// transaction (`bridge.spans.txid`, `bridge.traces.txid`, migration 0047) and `id` the row's
/// primary key. Rows stored before migration 0047 have no txid and come first, in id order.
/// A position is exclusive: the rows after it are still to be read.
@MemberwiseInit
public struct ExportPosition: Sendable, Equatable, CustomStringConvertible {
    /// The xid8 as text; nil while among the rows stored before migration 0047.
    public var txid: String?
    /// The last id read (`""`: before every row of `txid`).
    public var id: String

    /// Before every row.
    public static let start = ExportPosition(txid: nil, id: "")

    public var description: String { "\(txid ?? "legacy")/\(id)" }

    /// The position of a row read with `txid::text AS cursor_txid` and `id`.
    init(row: PostgresRow) throws(PostgresDecodingError) {
        self.init(txid: try row.optional(String.self, "cursor_txid"), id: try row.decode(String.self, "id"))
    }

    /// "After this position" on alias `a` (key column `key`): served by the `(txid, key)`
    /// index. `legacyOnly`: only the rows stored before migration 0047 that are after it.
    func after(alias a: String, key: String, legacyOnly: Bool = false) -> PostgresQuery {
        guard let txid else {
            let legacy: PostgresQuery = "\(alias: a).txid IS NULL AND \(alias: a).\(identifier: key) > \(id)"
            return legacyOnly ? legacy : "((\(legacy)) OR \(alias: a).txid IS NOT NULL)"
        }
        return "(\(alias: a).txid, \(alias: a).\(identifier: key)) > (\(txid)::xid8, \(id))"
    }
}

/// An exporter's positions in `bridge.traces` and `bridge.spans` (`bridge.export_positions`).
@MemberwiseInit
public struct ExportPositions: Sendable, Equatable {
    public var trace: ExportPosition = .start
    public var span: ExportPosition = .start

    /// The stored positions of `exporter`; from the start when it has none yet.
    public static func load(exporter: String, connection: PostgresConnection) async throws -> ExportPositions {
        guard
            let r = try await connection.query(
                """
                SELECT trace_txid::text AS trace_txid, trace_id, span_txid::text AS span_txid, span_id
                FROM bridge.export_positions WHERE exporter = \(exporter)
                """
            ).from("bridge.export_positions").first
        else { return ExportPositions() }
        return ExportPositions(
            trace: ExportPosition(
                txid: try r.optional(String.self, "trace_txid"), id: try r.decode(String.self, "trace_id")),
            span: ExportPosition(
                txid: try r.optional(String.self, "span_txid"), id: try r.decode(String.self, "span_id")))
    }
}
