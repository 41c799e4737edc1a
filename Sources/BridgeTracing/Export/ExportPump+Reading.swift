import BridgeCore
import BridgeMetrics
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

// Reading: the exporter's stored position and the next batch after it (see `ExportPump`).
extension ExportPump {
    /// The exporter's stored position, read at every poll (a primary-key read of a small
    /// table), so a `retryRejected` from another process takes effect at the next poll.
    func currentPosition() async throws -> ExportPositions {
        try await ExportPositions.load(exporter: exporter.name, connection: connection)
    }

    /// Moves the stored position from `old` to `new`, unless someone else moved it meanwhile
    /// (`retryRejected` moves it back): the next poll starts from the stored one.
    func save(_ new: ExportPositions, replacing old: ExportPositions) async throws {
        try await connection.query(
            """
            INSERT INTO bridge.export_positions AS p (exporter, trace_txid, trace_id, span_txid, span_id)
            VALUES (\(exporter.name), \(new.trace.txid.postgresValue)::xid8, \(new.trace.id),
                    \(new.span.txid.postgresValue)::xid8, \(new.span.id))
            ON CONFLICT (exporter) DO UPDATE SET trace_txid = EXCLUDED.trace_txid, trace_id = EXCLUDED.trace_id,
                span_txid = EXCLUDED.span_txid, span_id = EXCLUDED.span_id, updated_at = now()
            WHERE p.trace_txid IS NOT DISTINCT FROM \(old.trace.txid.postgresValue)::xid8 AND p.trace_id = \(old.trace.id)
              AND p.span_txid IS NOT DISTINCT FROM \(old.span.txid.postgresValue)::xid8 AND p.span_id = \(old.span.id)
            """)
    }

    /// What one poll read: the items to send, where the exporter is after them, and whether
    /// any row was read at all (an empty batch can still move the position).
    struct Read {
        var batch = ExportBatch()
        var next: ExportPositions
        var progressed = false
    }

    /// Up to `batchSize` items after the exporter's position, traces first, then spans, read
    /// in one statement (`readStatement`), so the horizon and the rows share one snapshot.
    ///
    /// The horizon `h` is the oldest transaction still running. Rows written by transactions
    /// below it ("safe" rows) are all committed and no more can appear there, so the position
    /// moves over them in (txid, id) order. Rows at or above it ("recent" rows: written since
    /// the oldest running transaction began) are read by an anti-join on the delivery rows,
    /// so a long-running transaction elsewhere never holds delivery back; the position passes
    /// them later, when they are safe, skipping the ones delivered.
    ///
    /// Traces come first: spans are read only when every trace this snapshot sees that is
    /// undelivered is in the batch, so a trace object always goes before its spans (a span's
    /// trace committed before the span was written).
    func nextBatch(from: ExportPositions) async throws -> Read {
        let limit = max(1, exporter.batchSize)
        let rows = try await connection.query(Self.readStatement(exporter: exporter.name, from: from, limit: limit))
        var read = Read(next: from)
        guard let horizon = try rows.first?.decode(String.self, "horizon") else { return read }
        // `part` is NULL only on the row that carries nothing but the horizon.
        let parts = try Dictionary(grouping: rows.filter { $0["part"] != nil }, by: { try $0.decode(Int.self, "part") })
        let safeTraces = parts[1] ?? []
        let recentTraces = parts[2] ?? []
        var safeSpans = parts[3] ?? []
        var recentSpans = parts[4] ?? []
        let exhausted = ExportPosition(txid: horizon, id: "")
        read.next.trace = safeTraces.count == limit ? try ExportPosition(row: safeTraces[limit - 1]) : exhausted
        let spanRoom = limit - safeTraces.count - recentTraces.count
        if spanRoom > 0 {
            if safeSpans.count >= spanRoom {
                safeSpans = Array(safeSpans.prefix(spanRoom))
                recentSpans = []
                read.next.span = try ExportPosition(row: safeSpans[spanRoom - 1])
            } else {
                recentSpans = Array(recentSpans.prefix(spanRoom - safeSpans.count))
                read.next.span = exhausted
            }
        }
        // Progress: rows were read, or the position left the rows stored before migration
        // 0047 (saved even when nothing was read, so they are never walked again).
        let leftLegacy =
            (from.trace.txid == nil && read.next.trace.txid != nil)
            || (from.span.txid == nil && read.next.span.txid != nil)
        read.progressed =
            !(safeTraces.isEmpty && recentTraces.isEmpty && safeSpans.isEmpty && recentSpans.isEmpty) || leftLegacy
        for row in safeTraces + recentTraces where try !row.decode(Bool.self, "done") {
            read.batch.traces.append(try Self.trace(row))
        }
        for row in safeSpans + recentSpans where try !row.decode(Bool.self, "done") {
            let record = try Ledger.span(row)
            var trace = try Self.trace(row)
            trace.id = record.traceId
            read.batch.spans.append(ExportSpan(record: record, trace: trace))
        }
        return read
    }

    /// The one statement of a poll (also EXPLAINed by the hot-path tests): `part` 1 = safe
    /// traces, 2 = recent traces, 3 = safe spans, 4 = recent spans, each in (txid, id) order,
    /// at most `limit` rows each (one row with only `horizon` when nothing is left); `done` says whether a row read has a delivery row already.
    /// Every part is a range scan of the `(txid, id)` index (migration 0048) after the
    /// position or from the horizon, so a poll costs O(batch) at any ledger size.
    public static func readStatement(exporter: String, from p: ExportPositions, limit: Int) -> PostgresQuery {
        let n: PostgresQuery = "\(limit)::int"
        let h: PostgresQuery = "(SELECT x FROM h)"
        let traceCols: PostgresQuery = """
            t.txid, t.trace_id AS id, t.trace_id, t.workflow_name, t.group_id, t.metadata::text AS metadata, NULL::text AS span_id,
            NULL::text AS parent_id, NULL::timestamptz AS started_at, NULL::timestamptz AS ended_at,
            NULL::text AS span_data, NULL::text AS error
            """
        let spanCols: PostgresQuery = """
            s.txid, s.span_id AS id, s.trace_id, t.workflow_name, t.group_id, t.metadata::text AS metadata, s.span_id,
            s.parent_id, s.started_at, s.ended_at, s.span_data::text AS span_data, s.error::text AS error
            """
        let traceFrom: PostgresQuery = "bridge.traces t"
        let spanFrom: PostgresQuery = "bridge.spans s JOIN bridge.traces t ON t.trace_id = s.trace_id"
        // Whether a row has its delivery row: a scalar probe of the delivery table's primary key
        // per row read (never an anti-join or hashed subplan, which would read every delivery).
        let traceDone: PostgresQuery =
            "(SELECT true FROM bridge.trace_deliveries d WHERE d.exporter = \(exporter) AND d.trace_id = t.trace_id) IS NOT NULL"
        let spanDone: PostgresQuery =
            "(SELECT true FROM bridge.span_deliveries d WHERE d.exporter = \(exporter) AND d.span_id = s.span_id) IS NOT NULL"
        /// The safe rows after `pos`: below the horizon, and first, while the position is
        /// among them, the rows stored before migration 0047 (txid NULL).
        func safe(
            _ pos: ExportPosition, a: String, key: String, cols: PostgresQuery, from: PostgresQuery,
            done: PostgresQuery,
            filter: PostgresQuery
        ) -> PostgresQuery {
            let select: PostgresQuery = "SELECT \(cols), \(done) AS done"
            let order: PostgresQuery = "ORDER BY \(alias: a).txid, \(alias: a).\(identifier: key) LIMIT \(n)"
            guard pos.txid != nil else {
                return """
                    SELECT * FROM (
                      (\(select), 0 AS o FROM \(from) WHERE \(pos.after(alias: a, key: key, legacyOnly: true))\(filter) \(order))
                      UNION ALL
                      (\(select), 1 AS o FROM \(from) WHERE \(alias: a).txid < \(h)\(filter) \(order))
                    ) u ORDER BY o, txid, id LIMIT \(n)
                    """
            }
            return """
                \(select), 1 AS o FROM \(from)
                WHERE \(pos.after(alias: a, key: key)) AND \(alias: a).txid < \(h)\(filter) \(order)
                """
        }
        func recent(
            a: String, key: String, cols: PostgresQuery, from: PostgresQuery, done: PostgresQuery,
            filter: PostgresQuery
        ) -> PostgresQuery {
            """
            SELECT \(cols), false AS done, 1 AS o FROM \(from)
            WHERE \(alias: a).txid >= \(h)\(filter) AND NOT \(done) ORDER BY \(alias: a).txid, \(alias: a).\(identifier: key) LIMIT \(n)
            """
        }
        // Spans are read only when the traces left room (a one-time filter: no scan otherwise).
        // Every part has the constant limit, so the planner takes the index's order; the
        // caller takes what fits.
        let traceCount: PostgresQuery = "(SELECT count(*) FROM ts) + (SELECT count(*) FROM tr)"
        let spanFilter: PostgresQuery = " AND s.ended_at IS NOT NULL AND \(traceCount) < \(n)"
        let recentSpanFilter: PostgresQuery =
            " AND s.ended_at IS NOT NULL AND \(traceCount) + (SELECT count(*) FROM ss) < \(n)"
        return """
            WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS x),
            ts AS (\(safe(p.trace, a: "t", key: "trace_id", cols: traceCols, from: traceFrom, done: traceDone, filter: ""))),
            tr AS (\(recent(a: "t", key: "trace_id", cols: traceCols, from: traceFrom, done: traceDone, filter: ""))),
            ss AS (\(safe(p.span, a: "s", key: "span_id", cols: spanCols, from: spanFrom, done: spanDone, filter: spanFilter))),
            sr AS (\(recent(a: "s", key: "span_id", cols: spanCols, from: spanFrom, done: spanDone, filter: recentSpanFilter)))
            SELECT q.*, q.txid::text AS cursor_txid, h.x::text AS horizon FROM h LEFT JOIN (
              SELECT 1 AS part, * FROM ts UNION ALL SELECT 2, * FROM tr UNION ALL SELECT 3, * FROM ss UNION ALL SELECT 4, * FROM sr
            ) q ON true ORDER BY q.part, q.o, q.txid, q.id
            """
    }

    /// A trace from a row; metadata values that are not strings become their JSON text, so
    /// the metadata stays flat string-to-string as the ingest API requires.
    static func trace(_ row: PostgresRow) throws(PostgresDecodingError) -> TraceRecord {
        let meta = try row.decode(JSONValue.self, "metadata")
        guard let object = meta.objectValue else {
            throw PostgresDecodingError(
                column: "metadata", expected: "a JSON object", problem: .badValue(meta.compact), row: row)
        }
        return TraceRecord(
            id: try row.decode(TraceID.self, "trace_id"), workflowName: try row.decode(String.self, "workflow_name"),
            groupId: try row.optional(String.self, "group_id"),
            metadata: object.compactMapValues { $0.isNull ? nil : ($0.stringValue ?? $0.compact) })
    }
}
