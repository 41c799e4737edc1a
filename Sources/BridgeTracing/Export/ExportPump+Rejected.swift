import BridgeCore
import BridgeMetrics
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

// Rejected items: counting them and sending them again (`bridge export --retry-rejected`).
extension ExportPump {
    /// How many traces and spans `exporter` has recorded as rejected (all time).
    public static func rejectedCount(exporter: String, connection: PostgresConnection) async throws -> ExportBacklog {
        let row = try await connection.query(
            """
            SELECT (SELECT count(*) FROM bridge.trace_deliveries WHERE exporter = \(exporter) AND status = \(DeliveryStatus.rejected)) AS traces,
                   (SELECT count(*) FROM bridge.span_deliveries WHERE exporter = \(exporter) AND status = \(DeliveryStatus.rejected)) AS spans
            """
        ).one()
        return ExportBacklog(traces: try row.decode(Int.self, "traces"), spans: try row.decode(Int.self, "spans"))
    }

    /// Makes every `rejected` row of `exporter` undelivered again, so the next pump sends those
    /// items once more (after the cause was fixed): their delivery rows are deleted and the
    /// exporter's position moves back to just before the earliest of them (the delivered rows
    /// in between are read again and passed over, not sent again). One transaction; a pump
    /// running meanwhile notices the moved position (`save`). Returns how many rows were cleared.
    public static func retryRejected(exporter: String, connection: PostgresConnection) async throws -> Int {
        try await connection.transaction { c in
            var n = 0
            let kinds: [(table: PostgresQuery, key: String, deliveries: PostgresQuery, column: String)] = [
                ("bridge.traces", "trace_id", "bridge.trace_deliveries", "trace"),
                ("bridge.spans", "span_id", "bridge.span_deliveries", "span"),
            ]
            for (table, key, deliveries, column) in kinds {
                let rows = try c.query(
                    """
                    WITH gone AS (
                        DELETE FROM \(deliveries) WHERE exporter = \(exporter) AND status = \(DeliveryStatus.rejected) RETURNING \(identifier: key) AS id
                    ), earliest AS (
                        SELECT x.txid, x.\(identifier: key) AS id FROM \(table) x JOIN gone g ON g.id = x.\(identifier: key)
                        ORDER BY x.txid NULLS FIRST, x.\(identifier: key) LIMIT 1
                    ), target AS (
                        -- Just before the earliest: before its transaction's rows, or (rows stored
                        -- before migration 0047) after the legacy row before it.
                        SELECT e.txid, CASE WHEN e.txid IS NOT NULL THEN '' ELSE coalesce((
                                 SELECT x.\(identifier: key) FROM \(table) x WHERE x.txid IS NULL AND x.\(identifier: key) < e.id
                                 ORDER BY x.txid DESC, x.\(identifier: key) DESC LIMIT 1), '') END AS id
                        FROM earliest e
                    ), moved AS (
                        UPDATE bridge.export_positions p SET \(identifier: column + "_txid") = t.txid, \(identifier: column + "_id") = t.id, updated_at = now()
                        FROM target t
                        WHERE p.exporter = \(exporter)
                          AND CASE WHEN t.txid IS NULL THEN p.\(identifier: column + "_txid") IS NOT NULL OR p.\(identifier: column + "_id") > t.id
                                   ELSE (p.\(identifier: column + "_txid"), p.\(identifier: column + "_id")) > (t.txid, t.id) END
                        RETURNING 1
                    )
                    SELECT (SELECT count(*) FROM gone) AS n, (SELECT count(*) FROM moved) AS moved
                    """)
                n += try rows.one().decode(Int.self, "n")
            }
            return n
        }
    }
}
