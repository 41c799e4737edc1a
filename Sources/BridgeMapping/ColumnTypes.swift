import BridgeCore
import BridgePostgres

/// The real SQL types of the columns the mappings name, read from the catalog once at start-up
/// (`format_type`, e.g. `uuid`, `bigint`, `text`, `character varying(64)`).
///
/// Hot-path statements compare a key column with a bound value. Casting the column
/// (`"id"::text = $1`) hides its index and scans the whole table; instead the value is bound
/// with the column's type, on the parameter side: `"id" = $1::uuid`, `"id" = ANY($1::uuid[])`.
/// A column whose type is unknown (types not loaded, e.g. a configuration built in code) gets no
/// cast at all, and PostgreSQL infers the parameter's type from the column, which also keeps
/// the index; so `cast` never puts a wrong type on a value. The type names come from the
/// catalog, so the casts are SQL fragments (queries without binds), not values.
public struct ColumnTypes: Sendable, Equatable {
    /// Type names keyed by `table` (as the mappings spell it) and column.
    public private(set) var types: [String: [String: String]]

    public init(types: [String: [String: String]] = [:]) { self.types = types }

    /// The column's SQL type, when loaded.
    public func type(_ table: String, _ column: String) -> String? { types[table]?[column] }

    /// `::type` to append to a parameter compared with `table.column` (empty when unknown).
    public func cast(_ table: String, _ column: String) -> PostgresQuery {
        // Empty default: no cast when the type is unknown (the server infers it).
        PostgresQuery(unsafeSQL: type(table, column).map { "::" + $0 } ?? "")
    }

    /// `::type[]` to append to an array parameter compared with `= ANY(…)` (empty when unknown).
    public func arrayCast(_ table: String, _ column: String) -> PostgresQuery {
        // Empty default: no cast when the type is unknown (the server infers it).
        PostgresQuery(unsafeSQL: type(table, column).map { "::" + $0 + "[]" } ?? "")
    }

    /// `::type[]` for an array that PostgreSQL cannot type from a comparison (`unnest(…)`), with
    /// `::text[]` when the column's type is unknown.
    public func unnestCast(_ table: String, _ column: String) -> PostgresQuery {
        PostgresQuery(unsafeSQL: "::" + (type(table, column) ?? "text") + "[]")
    }

    /// The tables whose column types the worker's statements need.
    public static func tables(of config: MappingConfig) -> [String] {
        var out = [config.source.table]
        if let e = config.results.executions { out.append(e.table) }
        if let a = config.source.agentSelection { out.append(a.table) }
        if let h = config.handoffsTable { out.append(h.table) }
        if let l = config.backfill?.logs { out.append(l.table) }
        if let b = config.budgets { out.append(b.table) }
        if let t = config.sessions?.table { out.append(t) }
        if let a = config.approvals { out.append(a.table) }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// Reads the types of every column of the mappings' tables in one catalog query.
    public static func load(for config: MappingConfig, connection: PostgresConnection) async throws(PostgresError)
        -> ColumnTypes
    {
        let tables = tables(of: config)
        let names = PostgresArray.text(tables)
        let quoted = PostgresArray.text(tables.map(PostgresQuery.quoteIdentifier))
        let rows = try await connection.query(
            """
            SELECT t.name AS tbl, a.attname AS col, format_type(a.atttypid, a.atttypmod) AS type
            FROM unnest(\(names)::text[], \(quoted)::text[]) AS t(name, quoted)
            JOIN pg_attribute a ON a.attrelid = to_regclass(t.quoted) AND a.attnum > 0 AND NOT a.attisdropped
            """)
        var types: [String: [String: String]] = [:]
        for r in rows {
            guard let t = r["tbl"], let c = r["col"], let ty = r["type"] else { continue }
            types[t, default: [:]][c] = ty
        }
        return ColumnTypes(types: types)
    }
}
