import BridgeCore
import BridgePostgres

/// Checks loaded mappings against a live database: every table and column they name exists,
/// and every SQL tool prepares (parses, resolves names and infers parameter types) without
/// running.
public enum MappingValidator {
    /// A table or column the mappings name, and where.
    public struct Reference: Sendable, Equatable {
        public var table: String
        /// nil: the table itself.
        public var column: String?
        public var location: MappingLocation
    }

    /// Every table and column reference in `config`, in YAML order.
    public static func references(_ config: MappingConfig) -> [Reference] {
        var list = ReferenceList(config: config)
        list.addSource()
        list.addResults()
        list.addSectionTables()
        list.addTemplatesAndSQL()
        list.addApprovals()
        list.addSessions()
        return list.out
    }

    /// Every SQL statement the mappings hold, where it was written, and what it belongs to.
    public static func sqlPieces(_ config: MappingConfig) -> [(
        spec: SQLToolSpec, location: MappingLocation, what: String
    )] {
        var out: [(spec: SQLToolSpec, location: MappingLocation, what: String)] = []
        for t in config.tools {
            if case .sql(let spec) = t.implementation {
                out.append((spec, config.location(t.origin, "sql.query"), "tool '\(t.name)'"))
            }
            if case .sql(let spec) = t.needsApproval {
                out.append(
                    (
                        spec, config.location(t.origin, "needs_approval.sql"),
                        "the needs_approval predicate of tool '\(t.name)'"
                    ))
            }
        }
        for g in config.guardrails {
            if case .sql(let spec) = g.implementation {
                out.append((spec, config.location(g.origin, "sql.query"), "guardrail '\(g.name)'"))
            }
        }
        for t in config.tools {
            for (key, g) in t.spec.guardrailEntries {
                if case .sql(let spec) = g.check.implementation {
                    out.append(
                        (
                            spec, config.location(t.origin, "\(key).sql.query"),
                            "guardrail '\(g.name)' of tool '\(t.name)'"
                        ))
                }
            }
        }
        return out
    }

    /// Checks `config` against the database behind `connection`. Returns every problem; an
    /// empty list means the mappings fit the schema.
    public static func checkLive(_ config: MappingConfig, connection: PostgresConnection) async -> [MappingIssue] {
        var issues: [MappingIssue] = []
        var columnsByTable: [String: Set<String>?] = [:]
        let refs = references(config)
        for ref in refs {
            if columnsByTable[ref.table] == nil {
                do {
                    columnsByTable[ref.table] = .some(try await columns(of: ref.table, connection: connection))
                } catch {
                    issues.append(
                        MappingIssue(ref.location, "cannot read the columns of \(ref.table): \(error.message)"))
                    columnsByTable[ref.table] = .some(nil)
                    continue
                }
            }
            guard let known = columnsByTable[ref.table] ?? nil else { continue }
            if known.isEmpty {
                if ref.column == nil { issues.append(MappingIssue(ref.location, "table \(ref.table) does not exist")) }
                continue
            }
            if let c = ref.column, !known.contains(c) {
                var msg = "column \(ref.table).\(c) does not exist"
                if ref.location.path.hasSuffix("trace_id_column") || ref.location.path.hasSuffix("columns.trace_id") {
                    msg += " (bridge migrate adds it)"
                } else if let near = nearest(c, in: known.sorted()) {
                    msg += " (did you mean \(ref.table).\(near)?)"
                }
                if !issues.contains(MappingIssue(ref.location, msg)) { issues.append(MappingIssue(ref.location, msg)) }
            }
        }
        // Tables that do not exist are reported once (at the table reference); column
        // references to them add nothing.
        // Every piece of SQL (tools, guardrails, needs_approval predicates) is checked by
        // preparing it, never by running it: see `PostgresConnection.checkPrepares`.
        for (spec, location, what) in sqlPieces(config) {
            // A second statement is reported by the loader, with its position.
            if ToolStatement.secondStatement(in: spec.sql) != nil { continue }
            do {
                let columns = try await connection.checkPrepares(spec.positionalSQL().sql)
                if what.hasPrefix("guardrail "), let problem = guardrailColumnProblem(columns) {
                    issues.append(MappingIssue(location, "the SQL of \(what) \(problem)"))
                }
                if what.hasPrefix("the needs_approval predicate"),
                    let decisive = columns.first(where: { $0.name == "needs_approval" }) ?? columns.first,
                    decisive.type != "boolean"
                {
                    issues.append(
                        MappingIssue(
                            location,
                            "the SQL of \(what) returns \(decisive.name) as \(decisive.type):"
                                + " it must be boolean (anything else would make every call wait)"))
                }
            } catch {
                issues.append(MappingIssue(location, "the SQL of \(what) does not prepare: \(error.message)"))
            }
        }
        // Session rows: the roles and constant values bridge writes must fit the table's CHECK
        // constraints, and its required columns must be mapped.
        if config.sessions?.table != nil, !issues.contains(where: { $0.path.hasPrefix("sessions") }) {
            issues += await sessionIssues(config, connection: connection)
        }
        // The budget limit: a read-only expression over the budget table's row, as a number.
        if let b = config.budgets, !issues.contains(where: { $0.path.hasPrefix("budgets") }) {
            do {
                try await connection.checkPrepares(
                    "SELECT (\(b.limit))::float8 FROM \(PostgresQuery.quoteIdentifier(b.table))")
            } catch {
                issues.append(
                    MappingIssue(
                        config.location(b.origin, "limit"),
                        "the budget limit expression does not prepare over \(b.table): \(error.message)"))
            }
        }
        return issues
    }

    /// What is wrong with a SQL guardrail's result columns, from its prepared statement: it
    /// must return a boolean `tripwire_triggered` (a text 'yes', a 1 or a `count(*)` would never
    /// be read as a tripwire). Nil when it does.
    static func guardrailColumnProblem(_ columns: [PreparedColumn]) -> String? {
        let found = columns.filter { $0.name == "tripwire_triggered" }
        if found.isEmpty {
            let names = columns.map(\.name).joined(separator: ", ")
            return "returns no column tripwire_triggered (it returns \(names.isEmpty ? "no columns" : names)):"
                + " a guardrail's query must return a boolean tripwire_triggered"
        }
        if found.count > 1 { return "returns tripwire_triggered \(found.count) times: return it once, as a boolean" }
        if found[0].type != "boolean" {
            return "returns tripwire_triggered as \(found[0].type): it must be boolean"
                + " (e.g. `count(*) > 0 AS tripwire_triggered`)"
        }
        return nil
    }

    /// Column names of `table` (`name` or `schema.name`, searched in the search path); empty
    /// when the table does not exist.
    static func columns(of table: String, connection: PostgresConnection) async throws(PostgresError) -> Set<String> {
        let parts = table.split(separator: ".", maxSplits: 1).map(String.init)
        let schema = parts.count == 2 ? parts[0] : ""
        let name = parts.count == 2 ? parts[1] : parts[0]
        let rows = try await connection.query(
            """
            WITH t AS (
              SELECT table_schema FROM information_schema.tables
              WHERE table_name = \(name)
                AND (table_schema = \(schema) OR (\(schema) = '' AND table_schema = ANY (current_schemas(false))))
              ORDER BY array_position(current_schemas(false), table_schema::name) NULLS LAST
              LIMIT 1)
            SELECT c.column_name::text AS column_name
            FROM information_schema.columns c JOIN t ON c.table_schema = t.table_schema
            WHERE c.table_name = \(name)
            """)
        return Set(rows.compactMap { $0["column_name"] })
    }
}

extension SQLToolSpec {
    /// The SQL with named parameters replaced by `$n` (each name numbered once) and the
    /// parameter paths in `$n` order. Used to prepare the statement when checking.
    public func positionalSQL() -> (sql: String, parameters: [[String]]) {
        var text = ""
        var order: [[String]] = []
        for piece in namedParameters.pieces {
            switch piece {
            case .sql(let s): text += s
            case .parameter(let p):
                if let i = order.firstIndex(of: p) {
                    text += "$\(i + 1)"
                } else {
                    order.append(p)
                    text += "$\(order.count)"
                }
            }
        }
        return (text, order)
    }
}

/// Collects the tables and columns `config` names, section by section (see
/// `MappingValidator.references`).
struct ReferenceList {
    let config: MappingConfig
    var out: [MappingValidator.Reference] = []

    /// The task table.
    var t: String { config.source.table }

    mutating func add(_ table: String, _ column: String?, _ origin: MappingLocation, _ path: String) {
        out.append(.init(table: table, column: column, location: config.location(origin, path)))
    }

    mutating func addSource() {
        let s = config.source
        add(t, nil, s.origin, "table")
        add(t, s.key, s.origin, "key")
        add(t, s.status.column, s.origin, "status.column")
        if let g = s.groupColumn { add(t, g, s.origin, "group_column") }
        if let p = s.priority { add(t, p.column, s.origin, "priority.column") }
        if let c = s.createdAtColumn { add(t, c, s.origin, "created_at_column") }
        for c in s.input.columns(root: "task") { add(t, c, s.origin, "input") }
        if let a = s.agentSelection {
            add(a.table, nil, s.origin, "agent_selection.table")
            add(a.table, a.key, s.origin, "agent_selection.key")
            add(a.table, a.matchColumn, s.origin, "agent_selection.match_column")
            if let g = a.groupColumn { add(a.table, g, s.origin, "agent_selection.group_column") }
            if let c = a.taskColumn { add(t, c, s.origin, "agent_selection.task_column") }
            if let c = a.fallbackColumn { add(t, c, s.origin, "agent_selection.fallback_column") }
            for c in s.input.columns(root: "agent") { add(a.table, c, s.origin, "input") }
        }
    }

    mutating func addResults() {
        let r = config.results
        add(t, r.resultColumn, r.origin, "result_column")
        if let c = r.completedAtColumn { add(t, c, r.origin, "completed_at_column") }
        if let c = r.traceIdColumn { add(t, c, r.origin, "trace_id_column") }
        if let e = r.executions {
            add(e.table, nil, r.origin, "executions.table")
            add(e.table, e.taskColumn, r.origin, "executions.task_column")
            add(e.table, e.key, r.origin, "executions.key")
            for (logical, column) in e.columns.byLogicalName.sorted(by: { $0.key < $1.key }) {
                add(e.table, column, r.origin, "executions.columns.\(logical)")
            }
        }
    }

    /// `limits.fairness`, `budgets`, `handoffs_table` and `backfill.logs`.
    mutating func addSectionTables() {
        if let g = config.limits?.fairnessGroup, let l = config.limits { add(t, g, l.origin, "fairness.group") }
        if let b = config.budgets {
            add(b.table, nil, b.origin, "table")
            add(b.table, b.key, b.origin, "key")
            if let c = b.spentColumn { add(b.table, c, b.origin, "spent_column") }
        }
        if let h = config.handoffsTable {
            add(h.table, nil, h.origin, "table")
            add(h.table, h.sourceColumn, h.origin, "source_column")
            add(h.table, h.targetColumn, h.origin, "target_column")
            if let d = h.descriptionColumn { add(h.table, d, h.origin, "description_column") }
        }
        if let l = config.backfill?.logs, let b = config.backfill {
            add(l.table, nil, b.origin, "logs.table")
            add(l.table, l.key, b.origin, "logs.key")
            add(l.table, l.taskColumn, b.origin, "logs.task_column")
            add(l.table, l.typeColumn, b.origin, "logs.type_column")
            add(l.table, l.contentColumn, b.origin, "logs.content_column")
            if let c = l.createdAtColumn { add(l.table, c, b.origin, "logs.created_at_column") }
        }
    }

    /// Columns of agents' instructions and output columns, and of every SQL's `:task.column`.
    mutating func addTemplatesAndSQL() {
        for a in config.agents {
            for c in a.instructions.columns(root: "task") { add(t, c, a.origin, "instructions") }
            if let sel = config.source.agentSelection {
                for c in a.instructions.columns(root: "agent") { add(sel.table, c, a.origin, "instructions") }
            }
        }
        for tool in config.tools {
            if case .sql(let spec) = tool.implementation {
                for c in spec.namedParameters.taskColumns { add(t, c, tool.origin, "sql.query") }
            }
        }
        for a in config.agents {
            for (field, column) in (a.outputType?.columns ?? [:]).sorted(by: { $0.key < $1.key }) {
                add(t, column, a.origin, "output_type.columns.\(field)")
            }
        }
        for g in config.guardrails {
            if case .sql(let spec) = g.implementation {
                for c in spec.namedParameters.taskColumns { add(t, c, g.origin, "sql.query") }
            }
        }
        for tool in config.tools {
            for (key, g) in tool.spec.guardrailEntries {
                if case .sql(let spec) = g.check.implementation {
                    for c in spec.namedParameters.taskColumns { add(t, c, tool.origin, "\(key).sql.query") }
                }
            }
        }
        for tool in config.tools {
            if case .sql(let spec) = tool.needsApproval {
                for c in spec.namedParameters.taskColumns { add(t, c, tool.origin, "needs_approval.sql") }
            }
        }
    }

    mutating func addApprovals() {
        guard let a = config.approvals else { return }
        add(a.table, nil, a.origin, "table")
        add(a.table, a.key, a.origin, "key")
        add(a.table, a.statusColumn, a.origin, "status.column")
        for (path, column) in [
            ("expires_at_column", a.expiresAtColumn), ("response_column", a.responseColumn),
            ("responded_at_column", a.respondedAtColumn), ("group_column", a.groupColumn),
        ] {
            if let column { add(a.table, column, a.origin, path) }
        }
        for (k, column) in a.columns.sorted(by: { $0.key < $1.key }) {
            add(a.table, column, a.origin, "columns.\(k)")
        }
        for column in a.values.keys.sorted() { add(a.table, column, a.origin, "values") }
    }

    mutating func addSessions() {
        guard let s = config.sessions else { return }
        for c in s.key.columns(root: "task") { add(t, c, s.origin, "key") }
        if let table = s.table {
            add(table, nil, s.origin, "table")
            add(table, s.sessionColumn, s.origin, "session_column")
            for (k, column) in s.item.sorted(by: { $0.key < $1.key }) { add(table, column, s.origin, "item.\(k)") }
            for column in s.values.keys.sorted() { add(table, column, s.origin, "values.\(column)") }
        }
    }
}
