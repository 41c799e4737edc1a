import BridgePostgres

/// A position in the ledger (`bridge.spans` or `bridge.traces`) that only moves forward.
///
/// Every ledger row records the transaction that wrote it (`txid`, xid8) and a sequence value
/// (`seq`), both by column default (`migrations/0012_ledger_cursor.sql`). Readers order rows by
/// (txid, seq) and read only rows whose transaction is below the **safe horizon**, the oldest
/// transaction still running (`pg_snapshot_xmin(pg_current_snapshot())`): every transaction
/// below it has committed or rolled back, so no row can still appear behind a reader that has
/// passed it. A plain `seq > last` cursor would skip a row whose transaction took its sequence
/// value early and committed late. The price: a long-running writing transaction anywhere in
/// the database holds the horizon back, and readers wait (they never skip) until it ends.
///
/// Reading after a position is one range scan of the `(txid, seq)` index
/// (`migrations/0013_ledger_indexes.sql`), so it costs O(rows read) at any ledger size.
/// Rows stored before the cursor existed have NULL `txid`: `legacy` readers walk them once
/// by primary key.
public struct LedgerPosition: Sendable, Equatable, CustomStringConvertible {
    /// The writing transaction's id (xid8 as text).
    public var txid: String
    public var seq: Int64

    public init(txid: String, seq: Int64) {
        self.txid = txid
        self.seq = seq
    }

    public var description: String { "\(txid)/\(seq)" }

    /// The SQL of the safe horizon: rows whose `txid` is below it can be read in order.
    public static let horizonSQL = "pg_snapshot_xmin(pg_current_snapshot())"

    /// The condition "after `position` (from the start when nil) and below the safe horizon"
    /// on alias `a`, binding through `b`. Served by the `(txid, seq)` index.
    public static func after(_ position: LedgerPosition?, alias a: String, _ b: inout SQLBinder) -> String {
        let below = "\(a).txid < \(horizonSQL)"
        guard let position else { return "\(a).txid IS NOT NULL AND \(below)" }
        return "(\(a).txid, \(a).seq) > (\(b.bind(position.txid))::xid8, \(b.bind(.text(String(position.seq))))::bigint) AND \(below)"
    }

    /// The position of a row read with `txid::text AS cursor_txid, seq AS cursor_seq`.
    public init?(row: PostgresRow) {
        guard let t = row["cursor_txid"], let s = row["cursor_seq"].flatMap({ Int64($0) }) else { return nil }
        self.init(txid: t, seq: s)
    }
}
