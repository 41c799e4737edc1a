import BridgeCore
import BridgePostgres

/// Whether the task table has an index that serves the claim order: equality on the status
/// column (or a partial index on it) and the priority column, then created_at, then the key
/// (`migrations/0011_claim_index.sql` builds one). Without it every claim sorts the pending rows.
public enum ClaimIndex {
    /// The index columns the claim order needs after its equality columns.
    static func orderColumns(_ s: SourceMapping) -> [String] { [s.createdAtColumn].compactMap { $0 } + [s.key] }

    /// True when an index with columns `columns` (and partial predicate `predicate`) serves
    /// the claim order of `source`.
    public static func serves(_ source: SourceMapping, columns: [String], predicate: String?) -> Bool {
        var equality: Set<String> = [source.status.column]
        if let p = source.priority { equality.insert(p.column) }
        let lead = columns.prefix { equality.contains($0) }
        let rest = Array(columns.dropFirst(lead.count))
        let order = orderColumns(source)
        guard rest.count >= order.count, Array(rest.prefix(order.count)) == order else { return false }
        if let p = source.priority, !p.order.isEmpty, !lead.contains(p.column) { return false }
        return lead.contains(source.status.column) || (predicate?.contains(source.status.column) ?? false)
    }

    /// A warning (not an error: claims still work, only slower on large tables) when no valid
    /// index of the task table serves the claim order; nil when one does or the table is missing.
    public static func warning(_ config: MappingConfig, connection: PostgresConnection) async throws
        -> MappingIssue?
    {
        let s = config.source
        let rows = try await connection.query(
            """
            SELECT i.indexrelid::regclass::text AS name,
                   array_to_string(array_agg(a.attname ORDER BY k.ord), ',') AS cols,
                   pg_get_expr(i.indpred, i.indrelid) AS pred
            FROM pg_index i
            CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
            LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = to_regclass(\(PostgresQuery.quoteIdentifier(s.table))) AND i.indisvalid
            GROUP BY i.indexrelid, i.indpred, i.indrelid
            """)
        if rows.isEmpty { return nil }
        if let g = config.limits?.fairnessGroup {
            // Fair claims: status, then the group (the loose index scan), then the claim order.
            let fair = try rows.contains { r in
                let cols = try r.decode(String.self, "cols").split(separator: ",").map(String.init)
                let predicate = try r.optional(String.self, "pred")
                return cols.count > 2 && cols[0] == s.status.column && cols[1] == g
                    && serves(s, columns: [cols[0]] + cols.dropFirst(2), predicate: predicate)
            }
            if !fair {
                return MappingIssue(
                    config.location(config.limits?.origin ?? s.origin, "fairness.group"),
                    "warning: no index of \(s.table) serves fair claims (\(s.status.column), \(g), then the claim order); every claim reads the pending rows of all groups. "
                        + "Apply migrations/fairness with `bridge migrate` and these mappings (0058_fair_claim_index.sql builds it concurrently)"
                )
            }
        }
        for r in rows {
            let cols = try r.decode(String.self, "cols").split(separator: ",").map(String.init)
            if serves(s, columns: cols, predicate: try r.optional(String.self, "pred")) { return nil }
        }
        let wanted = ([s.status.column] + [s.priority?.column].compactMap { $0 } + orderColumns(s)).joined(
            separator: ", ")
        return MappingIssue(
            config.location(s.origin, "source"),
            "warning: no index of \(s.table) serves the claim order (\(wanted)); every claim sorts the pending rows. "
                + "Apply migrations/0011_claim_index.sql with `bridge migrate` and these mappings (it builds the index concurrently)"
        )
    }
}
