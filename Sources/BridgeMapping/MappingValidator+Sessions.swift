import BridgeCore
import BridgePostgres

extension MappingValidator {
    /// What the session rows bridge writes would break in the application's table, found
    /// without writing: every CHECK constraint over only the role column and the constant
    /// `values` columns is evaluated (in a read-only transaction that is rolled back) for each
    /// role bridge writes (user, assistant, and tool when mapped), and every NOT NULL column
    /// without a default must be mapped. A constraint that cannot be evaluated is an issue.
    /// Constraints on the run's own text (content, data) are PostgreSQL's to enforce at finish.
    static func sessionIssues(_ config: MappingConfig, connection: PostgresConnection) async -> [MappingIssue] {
        guard let s = config.sessions, let table = s.table, let roleColumn = s.item["role"] else { return [] }
        let loc: @Sendable (String) -> MappingLocation = { config.location(s.origin, $0) }
        let regclass = PostgresQuery.quoteIdentifier(table)
        do {
            return try await connection.readOnlyRolledBack { c in
                let (types, required) = try requiredColumnIssues(c, s, table: table, regclass: regclass, loc: loc)
                var issues = required
                for con in try checkConstraints(c, regclass: regclass) {
                    issues += try constraintIssues(
                        con, c, s, table: table, roleColumn: roleColumn, types: types, loc: loc)
                }
                return issues
            }
        } catch {
            return [MappingIssue(loc("table"), "cannot read the constraints of \(table): \(error)")]
        }
    }

    /// The types of `table`'s columns, and an issue for each NOT NULL column without a default
    /// that the session rows would leave out.
    static func requiredColumnIssues(
        _ c: isolated PostgresConnection, _ s: SessionsMapping, table: String, regclass: String,
        loc: (String) -> MappingLocation
    ) throws -> (types: [String: String], issues: [MappingIssue]) {
        let columns = try c.query(
            """
            SELECT a.attname::text AS col, format_type(a.atttypid, a.atttypmod) AS type,
                   a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' AS required
            FROM pg_attribute a WHERE a.attrelid = to_regclass(\(regclass)) AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY a.attnum
            """)
        var types: [String: String] = [:]
        var issues: [MappingIssue] = []
        let written = Set([s.sessionColumn] + Array(s.item.values) + Array(s.values.keys))
        for r in columns {
            let col = try r.decode(String.self, "col")
            types[col] = try r.decode(String.self, "type")
            if try r.decode(Bool.self, "required") && !written.contains(col) {
                issues.append(
                    MappingIssue(
                        loc("item"),
                        "\(table).\(col) is NOT NULL without a default: map it in sessions.item or sessions.values"
                    ))
            }
        }
        return (types, issues)
    }

    /// The CHECK constraints of the table, each with the columns it reads.
    static func checkConstraints(_ c: isolated PostgresConnection, regclass: String) throws -> [(
        name: String, expr: String, columns: [String]
    )] {
        let checks = try c.query(
            """
            SELECT con.conname::text AS name, pg_get_expr(con.conbin, con.conrelid) AS expr, a.attname::text AS col
            FROM pg_constraint con JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY(con.conkey)
            WHERE con.conrelid = to_regclass(\(regclass)) AND con.contype = 'c'
            ORDER BY con.conname, a.attnum
            """)
        var constraints: [(name: String, expr: String, columns: [String])] = []
        for r in checks {
            let name = try r.decode(String.self, "name")
            let expr = try r.decode(String.self, "expr")
            let col = try r.decode(String.self, "col")
            if let i = constraints.firstIndex(where: { $0.name == name }) {
                constraints[i].columns.append(col)
            } else {
                constraints.append((name, expr, [col]))
            }
        }
        return constraints
    }

    /// Evaluates constraint `con` over the constant part of every row and each role value
    /// bridge writes, when it reads only those columns.
    static func constraintIssues(
        _ con: (name: String, expr: String, columns: [String]), _ c: isolated PostgresConnection,
        _ s: SessionsMapping, table: String, roleColumn: String, types: [String: String],
        loc: (String) -> MappingLocation
    ) throws -> [MappingIssue] {
        let constants = s.values
        let roles = ["user", "assistant", "tool"].compactMap { role in s.roles[role].map { (role, $0) } }
        let known = Set(constants.keys).union([roleColumn])
        guard con.columns.allSatisfy(known.contains) else { return [] }
        let cases: [(role: String?, value: String?)] =
            con.columns.contains(roleColumn) ? roles.map { ($0.0, $0.1) } : [(nil, nil)]
        var issues: [MappingIssue] = []
        for (role, value) in cases {
            var row: [PostgresQuery] = []
            for col in con.columns {
                let type = PostgresQuery(unsafeSQL: "::" + (types[col] ?? "text"))
                let v = col == roleColumn ? (value ?? "") : (constants[col] ?? "")
                row.append("\(v)\(type) AS \(identifier: col)")
            }
            let probe: PostgresQuery = "SELECT (\(unsafeRaw: con.expr)) IS NOT FALSE AS ok FROM (SELECT \(row)) AS x"
            let what =
                role.map { "role \($0) as '\(value ?? "")'" }
                ?? con.columns.map { "\($0) = '\(constants[$0] ?? "")'" }.joined(separator: ", ")
            let path = role.map { "roles.\($0)" } ?? "values"
            // A value the column's type refuses aborts the statement: a savepoint keeps the
            // transaction usable for the next probe.
            try c.simpleQuery("SAVEPOINT bridge_session_probe")
            do {
                let ok = try c.query(probe).first?["ok"]
                try c.simpleQuery("RELEASE SAVEPOINT bridge_session_probe")
                if ok != "t" {
                    issues.append(
                        MappingIssue(
                            loc(path),
                            "bridge writes \(what) into \(table), which its CHECK constraint \(con.name) refuses (\(con.expr))"
                                + (role == nil ? "" : ": map sessions.roles.\(role!) to a value it allows")
                                + (role == "tool"
                                    ? ", or leave tool unmapped (tool calls then go into item.tools_used)" : "")))
                }
            } catch {
                _ = try? c.simpleQuery("ROLLBACK TO SAVEPOINT bridge_session_probe")
                issues.append(
                    MappingIssue(
                        loc(path), "cannot check \(what) against \(table)'s CHECK constraint \(con.name): \(error)"))
            }
        }
        return issues
    }
}
