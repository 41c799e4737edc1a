// The migration lint: its findings, the statement effects it classifies, the catalog facts it
// checks against and the rules, all over one token stream.
import BridgeCore
import BridgePostgres

/// One lint result for a statement of a migration file.
public struct LintFinding: Sendable, Equatable, Codable, CustomStringConvertible {
    /// Errors stop `up` (unless `--allow-lint`); warnings are advice.
    public enum Severity: String, Sendable, Codable { case error, warning }

    /// The rule id, e.g. `index-not-concurrent`; `-- bridge:lint-ignore RULE reason` names it.
    public var rule: String
    public var severity: Severity
    public var file: String
    public var line: Int
    /// What is wrong and what to do instead.
    public var message: String
    /// The reason given in a `-- bridge:lint-ignore` comment; an ignored finding never blocks.
    public var ignoredBecause: String?

    /// True when this finding stops `up`.
    public var blocks: Bool { severity == .error && ignoredBecause == nil }

    public var description: String {
        var s = "\(file):\(line): \(severity.rawValue) [\(rule)] \(message)"
        if let why = ignoredBecause { s += " (ignored: \(why))" }
        return s
    }
}

/// What a statement does to the table it touches, from cheapest to most disruptive.
public enum StatementEffect: String, Sendable, Codable, Comparable {
    /// Creates an object, or changes a table created earlier in this run (no rows to touch).
    case newObject = "new-object"
    /// Changes the catalog only; holds its lock for a moment.
    case metadataOnly = "metadata-only"
    /// Runs concurrently with reads and writes (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT).
    case concurrent
    /// Reads every row while holding a lock that blocks writes (or all access).
    case scan
    /// Blocks writes for as long as it runs (a non-concurrent index build).
    case blocksWrites = "blocks-writes"
    /// Rewrites every row under an ACCESS EXCLUSIVE lock.
    case rewrite
    /// Not classified (data changes, functions, grants, ...).
    case other

    private var rank: Int {
        switch self {
        case .newObject: 0
        case .other: 1
        case .metadataOnly: 2
        case .concurrent: 3
        case .scan: 4
        case .blocksWrites: 5
        case .rewrite: 6
        }
    }

    public static func < (a: StatementEffect, b: StatementEffect) -> Bool { a.rank < b.rank }
}

/// Facts about the live database that the lint checks statements against.
@MemberwiseInit
public struct CatalogSnapshot: Sendable {
    /// What the catalog says about one existing table.
    public struct Table: Sendable, Codable, Equatable {
        /// The table as the catalog names it (`public.tasks`).
        public var qualifiedName: String
        /// `pg_class.reltuples` (−1 or 0 when never analysed).
        public var estimatedRows: Double
        /// `pg_total_relation_size` in bytes.
        public var totalBytes: Int64

        /// The table's column names; nil when not read (then no column is checked).
        public var columns: Set<String>?
        /// Each column's type as `format_type` prints it (`timestamp with time zone`); nil when
        /// not read (then no type is compared).
        public var columnTypes: [String: String]?

        public init(
            qualifiedName: String, estimatedRows: Double, totalBytes: Int64, columns: Set<String>? = nil,
            columnTypes: [String: String]? = nil
        ) {
            self.qualifiedName = qualifiedName
            self.estimatedRows = estimatedRows
            self.totalBytes = totalBytes
            self.columns = columns ?? columnTypes.map { Set($0.keys) }
            self.columnTypes = columnTypes
        }

        /// "public.tasks (~1200 rows, 2.1 MB)".
        public var summary: String {
            let rows = estimatedRows < 0 ? "never analysed" : "~\(Int(estimatedRows)) rows"
            return "\(qualifiedName) (\(rows), \(Self.formatBytes(totalBytes)))"
        }

        static func formatBytes(_ b: Int64) -> String {
            let units = ["bytes", "kB", "MB", "GB", "TB"]
            var v = Double(b)
            var u = 0
            while v >= 1024, u < units.count - 1 {
                v /= 1024
                u += 1
            }
            return u == 0 ? "\(b) bytes" : "\((v * 10).rounded() / 10) \(units[u])"
        }
    }

    /// `server_version_num`, e.g. 150018.
    public var serverVersion: Int
    /// Existing tables keyed by the name as the migration writes it (``TableName/key``).
    public var tables: [String: Table] = [:]
    /// Names of volatile functions among those the statements call.
    public var volatileFunctions: Set<String> = CatalogSnapshot.knownVolatileFunctions

    /// Functions known to be volatile, used when no catalog is at hand.
    public static let knownVolatileFunctions: Set<String> = [
        "random", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4",
        "clock_timestamp", "timeofday", "nextval", "txid_current", "setseed", "random_normal",
    ]
}

/// A possibly schema-qualified table name as written in a statement.
public struct TableName: Sendable, Hashable {
    /// Each part, unquoted words folded to lower case.
    public var parts: [String]
    /// `schema.table` or `table`, for display and as a dictionary key.
    public var key: String { parts.joined(separator: ".") }
    /// The quoted form for `to_regclass`, resolved with the session's search_path.
    public var regclassText: String { parts.map(PostgresQuery.quoteIdentifier).joined(separator: ".") }
}

/// The lint's verdict on one statement.
public struct StatementAnalysis: Sendable {
    /// The worst effect among the statement's actions.
    public var effect: StatementEffect
    /// The table the statement changes, when it changes one.
    public var table: TableName?
    /// Human-readable facts: lock taken, table size, why an effect applies.
    public var notes: [String]
    /// Lint findings for this statement.
    public var findings: [LintFinding]
}

/// Checks migration statements for changes that would block or rewrite a live table.
///
/// Knows which tables are new in this run (created by an earlier statement or file), so
/// plain `CREATE INDEX` on them is fine. Everything else is checked against a
/// ``CatalogSnapshot`` of the live database.
public struct Linter: Sendable {
    /// The catalog facts used.
    public var catalog: CatalogSnapshot
    /// Tables created earlier in this run.
    public private(set) var newTables: Set<String> = []
    /// Columns added to existing tables earlier in this run, by table key.
    public private(set) var addedColumns: [String: Set<String>] = [:]

    public init(catalog: CatalogSnapshot) { self.catalog = catalog }

    /// Every table name the statements refer to after CREATE INDEX … ON, ALTER TABLE and
    /// similar, so the caller can look them up in the catalog first.
    public static func referencedTables(_ files: [MigrationFile]) -> Set<TableName> {
        var out: Set<TableName> = []
        for f in files { for s in f.statements { if let t = target(of: s.tokens)?.table { out.insert(t) } } }
        return out
    }

    /// Every function name called in a DEFAULT expression.
    public static func referencedFunctions(_ files: [MigrationFile]) -> Set<String> {
        var out: Set<String> = []
        for f in files {
            for s in f.statements {
                let t = s.tokens
                for i in t.indices.dropLast() where t[i].kind == .word && t[i + 1].isPunctuation("(") {
                    out.insert(t[i].text.lowercased())
                }
            }
        }
        return out
    }

    /// Analyses every statement of `file` and returns one analysis per statement, plus
    /// file-level findings attached to the first affected statement.
    public mutating func analyze(_ file: MigrationFile) -> [StatementAnalysis] {
        var out: [StatementAnalysis] = []
        let mixed = !file.runsWithoutTransaction && file.statements.contains { $0.nonTransactionalReason != nil }
        for statement in file.statements {
            var a = analyze(statement, file: file.fileName)
            if let reason = statement.nonTransactionalReason, mixed {
                a.findings.append(
                    LintFinding(
                        rule: "mixed-transaction", severity: .error, file: file.fileName, line: statement.line,
                        message: "\(reason) cannot run in a transaction, but the file's other statements need one; "
                            + "move it to its own file marked `-- bridge:no-transaction`"))
            }
            if !file.runsWithoutTransaction, let k = statement.leadingKeywords(2).first,
                ["BEGIN", "COMMIT", "ROLLBACK", "END", "START", "ABORT"].contains(k)
            {
                a.findings.append(
                    LintFinding(
                        rule: "explicit-transaction", severity: .error, file: file.fileName, line: statement.line,
                        message: "\(k) in a migration file: bridge already runs each file in one transaction; remove it"
                    ))
            }
            a.findings = applyIgnores(a.findings, comments: statement.comments)
            out.append(a)
        }
        return out
    }

    private func applyIgnores(_ findings: [LintFinding], comments: [SQLToken]) -> [LintFinding] {
        var ignores: [String: String] = [:]
        for c in comments {
            let body = SQLSplitter.commentBody(c.text)
            guard body.lowercased().hasPrefix("bridge:lint-ignore") else { continue }
            let rest = body.dropFirst("bridge:lint-ignore".count).split(separator: " ", maxSplits: 1)
            guard let rule = rest.first else { continue }
            ignores[String(rule)] = rest.count > 1 ? String(rest[1]) : "(no reason given)"
        }
        return findings.map { f in
            var f = f
            if let why = ignores[f.rule] { f.ignoredBecause = why }
            return f
        }
    }

    // MARK: - Statement analysis

    enum Verb { case createTable, createIndex, alterTable, other }

    /// The table a statement targets and what kind of statement it is.
    static func target(of t: [SQLToken]) -> (verb: Verb, table: TableName?, index: Int)? {
        let kw = t.keywords
        guard let first = kw.first else { return nil }
        var i = 1
        func skip(_ words: String...) { while i < kw.count, words.contains(kw[i]) { i += 1 } }
        func skipIfNotExists() {
            if i + 2 < kw.count, kw[i] == "IF", kw[i + 1] == "NOT", kw[i + 2] == "EXISTS" { i += 3 }
            if i + 1 < kw.count, kw[i] == "IF", kw[i + 1] == "EXISTS" { i += 2 }
        }
        if first == "CREATE" {
            skip("OR", "REPLACE", "GLOBAL", "LOCAL", "TEMP", "TEMPORARY", "UNLOGGED", "UNIQUE")
            guard i < kw.count else { return nil }
            if kw[i] == "TABLE" {
                i += 1
                skipIfNotExists()
                guard let (name, next) = qualifiedName(t, i) else { return nil }
                return (.createTable, name, next)
            }
            if kw[i] == "INDEX" {
                guard let on = kw[i...].firstIndex(of: "ON") else { return nil }
                i = on + 1
                skip("ONLY")
                guard let (name, next) = qualifiedName(t, i) else { return nil }
                return (.createIndex, name, next)
            }
            return (.other, nil, i)
        }
        if first == "ALTER", kw.count > 1, kw[1] == "TABLE" {
            i = 2
            skipIfNotExists()
            skip("ONLY")
            guard let (name, next) = qualifiedName(t, i) else { return nil }
            return (.alterTable, name, next)
        }
        return (.other, nil, 0)
    }

    static func qualifiedName(_ t: [SQLToken], _ start: Int) -> (TableName, Int)? {
        var parts: [String] = []
        var i = start
        while i < t.count {
            let tok = t[i]
            switch tok.kind {
            case .word: parts.append(tok.text.lowercased())
            case .quotedIdentifier: parts.append(tok.text)
            default: return nil
            }
            i += 1
            if i < t.count, t[i].isPunctuation(".") { i += 1 } else { break }
        }
        return parts.isEmpty ? nil : (TableName(parts: parts), i)
    }

    /// A check's finding, reported as it is found.
    typealias Report = (_ rule: String, _ severity: LintFinding.Severity, _ message: String) -> Void

    mutating func analyze(_ statement: SQLStatement, file: String) -> StatementAnalysis {
        let t = statement.tokens
        let kw = t.keywords
        var a = StatementAnalysis(effect: .other, table: nil, notes: [], findings: [])
        func finding(_ rule: String, _ severity: LintFinding.Severity, _ message: String) {
            a.findings.append(
                LintFinding(rule: rule, severity: severity, file: file, line: statement.line, message: message))
        }

        if let (effect, notes) = Self.analyzeWithoutTarget(kw, finding: finding) {
            a.effect = effect
            a.notes += notes
            return a
        }
        guard let (verb, table, next) = Self.target(of: t), let table else {
            if let k = kw.first, ["INSERT", "UPDATE", "DELETE", "COPY"].contains(k) {
                a.notes.append("changes rows; keep data backfills small or batch them outside migrations")
            }
            return a
        }
        a.table = table
        let isNew = newTables.contains(table.key)
        let existing = isNew ? nil : catalog.tables[table.key]
        if let existing { a.notes.append("table \(existing.summary)") }
        // A statement on a table that is neither in the live catalog nor created earlier in this
        // run will fail when it runs (`ALTER TABLE IF EXISTS` excepted): say so now, so `plan`
        // exits 1 and `up` refuses before any file is applied.
        let toleratesMissing = verb == .alterTable && kw.dropFirst(2).starts(with: ["IF", "EXISTS"])
        if verb != .createTable, existing == nil, !isNew, !toleratesMissing {
            finding(
                "missing-relation", .error,
                "will fail: relation \(table.key) does not exist, and no earlier statement of this run creates it")
        }

        switch verb {
        case .createTable:
            newTables.insert(table.key)
            a.effect = .newObject
            a.notes.append("new table")
        case .createIndex:
            let (effect, note) = analyzeCreateIndex(
                Array(t[next...]), concurrent: kw.prefix(4).contains("CONCURRENTLY"), table: table,
                existing: existing, isNew: isNew, finding: finding)
            a.effect = effect
            a.notes.append(note)
        case .alterTable:
            guard let existing else {
                a.effect = .newObject
                a.notes.append(isNew ? "table created in this run" : "table \(table.key) does not exist yet")
                return a
            }
            let (effect, notes) = analyzeAlterTable(
                Array(t[next...]), table: table, existing: existing, finding: finding)
            a.effect = effect
            a.notes += notes
        case .other:
            break
        }
        return a
    }

    /// Statements judged as a whole, before looking for the table they act on: VACUUM FULL and
    /// CLUSTER, DROP TABLE, and CREATE of a schema, function, view or type. Nil for others.
    private static func analyzeWithoutTarget(_ kw: [String], finding: Report) -> (StatementEffect, [String])? {
        if kw.first == "VACUUM" && kw.contains("FULL") || kw.first == "CLUSTER" {
            finding(
                "rewrite-table", .error,
                "\(kw[0]) rewrites the whole table while blocking reads and writes; use pg_repack or run it in a maintenance window"
            )
            return (.rewrite, ["rewrites the table under ACCESS EXCLUSIVE"])
        }
        if kw.starts(with: ["DROP", "TABLE"]) {
            finding("drop-table", .warning, "drops a table; make sure no deployed code still reads it")
            return (.metadataOnly, ["ACCESS EXCLUSIVE lock, brief"])
        }
        if kw.first == "CREATE",
            kw.dropFirst().prefix(3).contains("SCHEMA") || kw.dropFirst().prefix(3).contains("FUNCTION")
                || kw.dropFirst().prefix(3).contains("VIEW") || kw.dropFirst().prefix(3).contains("TYPE")
        {
            return (.newObject, [])
        }
        return nil
    }

    /// CREATE INDEX: its columns must exist, and on a live table only CONCURRENTLY keeps
    /// writes going. `rest` is what follows the table name.
    private func analyzeCreateIndex(
        _ rest: [SQLToken], concurrent: Bool, table: TableName, existing: CatalogSnapshot.Table?, isNew: Bool,
        finding: Report
    ) -> (StatementEffect, String) {
        if let known = existing?.columns {
            for column in Self.indexColumns(rest)
            where !known.contains(column) && addedColumns[table.key]?.contains(column) != true {
                finding(
                    "missing-column", .error,
                    "will fail: column \(table.key).\(column) does not exist, and no earlier statement of this run adds it"
                )
            }
        }
        if existing == nil {
            return (
                .newObject, isNew ? "index on a table created in this run" : "table \(table.key) does not exist yet"
            )
        }
        if concurrent {
            return (.concurrent, "SHARE UPDATE EXCLUSIVE lock: reads and writes continue; statement_timeout 0")
        }
        finding(
            "index-not-concurrent", .error,
            "CREATE INDEX on existing table \(table.key) blocks writes while it builds; "
                + "use CREATE INDEX CONCURRENTLY in a file marked `-- bridge:no-transaction`")
        return (.blocksWrites, "SHARE lock: blocks writes for the whole build")
    }

    /// ALTER TABLE on a live table: the strongest of its actions' effects and all their notes.
    /// The columns it adds are remembered, so later statements of the run may use them.
    private mutating func analyzeAlterTable(
        _ rest: [SQLToken], table: TableName, existing: CatalogSnapshot.Table, finding: Report
    ) -> (StatementEffect, [String]) {
        var effect = StatementEffect.metadataOnly
        var notes: [String] = []
        for action in Self.splitActions(rest) {
            if let column = Self.addedColumn(action) {
                if let conflict = Self.addColumnConflict(action, column: column, table: existing) {
                    finding(conflict.rule, .error, conflict.message(table.key, column))
                }
                addedColumns[table.key, default: []].insert(column)
            }
            let (actionEffect, actionNotes) = analyzeAction(action, table: table, finding: finding)
            effect = max(effect, actionEffect)
            notes += actionNotes
        }
        return (effect, notes)
    }

    /// The column an `ADD [COLUMN] [IF NOT EXISTS] name …` action adds, if it adds one.
    static func addedColumn(_ t: [SQLToken]) -> String? {
        var i = 0
        guard t.first?.keyword == "ADD" else { return nil }
        i = 1
        if i < t.count, t[i].keyword == "COLUMN" { i += 1 }
        if i + 2 < t.count, t[i].keyword == "IF", t[i + 1].keyword == "NOT", t[i + 2].keyword == "EXISTS" { i += 3 }
        guard i < t.count else { return nil }
        switch t[i].kind {
        case .word:
            let k = t[i].text.uppercased()
            return ["CONSTRAINT", "FOREIGN", "CHECK", "UNIQUE", "PRIMARY", "EXCLUDE"].contains(k)
                ? nil : t[i].text.lowercased()
        case .quotedIdentifier: return t[i].text
        default: return nil
        }
    }

    /// What is wrong with `ADD [COLUMN] [IF NOT EXISTS] column type …` on a live table that already
    /// has that column: without IF NOT EXISTS the statement fails; with it the add is skipped
    /// silently, so a different declared type is a conflict that later statements and the
    /// application run into. Only built-in types are compared (a user-defined or unreadable type
    /// is never flagged).
    static func addColumnConflict(_ t: [SQLToken], column: String, table: CatalogSnapshot.Table?)
        -> (rule: String, message: (String, String) -> String)?
    {
        guard let table, let live = table.columnTypes?[column] ?? (table.columns?.contains(column) == true ? "" : nil)
        else { return nil }
        let kw = t.keywords
        let ifNotExists = kw.prefix(5).joined(separator: " ").contains("IF NOT EXISTS")
        if !ifNotExists {
            return (
                "duplicate-column",
                { "will fail: column \($0).\($1) already exists (add IF NOT EXISTS, or drop the statement)" }
            )
        }
        guard !live.isEmpty,
            let nameIndex = t.firstIndex(where: {
                ($0.kind == .word && $0.text.lowercased() == column)
                    || ($0.kind == .quotedIdentifier && $0.text == column)
            }),
            let declared = Self.canonicalType(Array(t[(nameIndex + 1)...])), let current = Self.canonicalType(live)
        else { return nil }
        guard declared != current else { return nil }
        return (
            "type-conflict",
            {
                "type conflict: column \($0).\($1) already exists as \(live); ADD COLUMN IF NOT EXISTS declares \(declared) and will be skipped, so the column stays \(live)"
            }
        )
    }

    /// Built-in type names and their aliases, mapped to `format_type`'s spelling.
    static let typeAliases: [String: String] = [
        "int": "integer", "int4": "integer", "integer": "integer", "serial": "integer", "serial4": "integer",
        "int8": "bigint", "bigint": "bigint", "bigserial": "bigint", "serial8": "bigint",
        "int2": "smallint", "smallint": "smallint", "smallserial": "smallint", "serial2": "smallint",
        "bool": "boolean", "boolean": "boolean", "text": "text", "uuid": "uuid", "json": "json", "jsonb": "jsonb",
        "bytea": "bytea", "date": "date", "float8": "double precision", "double precision": "double precision",
        "float4": "real", "real": "real", "numeric": "numeric", "decimal": "numeric",
        "varchar": "character varying", "character varying": "character varying", "char": "character",
        "character": "character",
        "timestamptz": "timestamp with time zone", "timestamp with time zone": "timestamp with time zone",
        "timestamp": "timestamp without time zone", "timestamp without time zone": "timestamp without time zone",
        "timetz": "time with time zone", "time with time zone": "time with time zone",
        "time": "time without time zone", "time without time zone": "time without time zone",
        "interval": "interval", "inet": "inet", "cidr": "cidr", "tsvector": "tsvector", "xml": "xml",
    ]

    /// The declared type at the start of `t` (up to the first constraint keyword), in
    /// `format_type`'s spelling with any modifier and array brackets; nil for a type this lint
    /// does not know.
    static func canonicalType(_ t: [SQLToken]) -> String? {
        let stops: Set<String> = [
            "NOT", "NULL", "DEFAULT", "REFERENCES", "PRIMARY", "UNIQUE", "CHECK", "CONSTRAINT",
            "GENERATED", "COLLATE", "USING", "STORAGE", "COMPRESSION",
        ]
        var words: [String] = []
        var suffix = ""
        var depth = 0
        for tok in t {
            if tok.kind == .comment { continue }
            if depth == 0, let k = tok.keyword, stops.contains(k) { break }
            if tok.isPunctuation("(") { depth += 1 }
            if depth > 0 || tok.kind == .punctuation {
                suffix += tok.text
                if tok.isPunctuation(")") { depth -= 1 }
                continue
            }
            guard tok.kind == .word, suffix.isEmpty else { return nil }
            words.append(tok.text.lowercased())
        }
        return canonicalType(words.joined(separator: " ") + suffix)
    }

    /// `format_type` text (or a declared type) in one canonical spelling; nil when unknown.
    static func canonicalType(_ text: String) -> String? {
        var s = text.lowercased().replacingOccurrences(of: " (", with: "(")
        var brackets = ""
        while s.hasSuffix("[]") {
            brackets += "[]"
            s.removeLast(2)
        }
        var modifier = ""
        // `timestamp(3) with time zone`: the modifier may sit inside the name.
        if let open = s.firstIndex(of: "("), let close = s[open...].firstIndex(of: ")") {
            modifier = String(s[open...close]).replacingOccurrences(of: " ", with: "")
            s = String(s[..<open]) + " " + String(s[s.index(after: close)...])
        }
        s = s.split(separator: " ").joined(separator: " ")
        guard let base = typeAliases[s] else { return nil }
        return base + modifier + brackets
    }

    /// The plain column names of a `CREATE INDEX … ON table [USING method] (…)` column list
    /// (expressions and anything unusual are skipped: only names are checked).
    static func indexColumns(_ t: [SQLToken]) -> [String] {
        var i = 0
        if i < t.count, t[i].keyword == "USING" { i += 2 }
        guard i < t.count, t[i].isPunctuation("(") else { return [] }
        var out: [String] = []
        var element: [SQLToken] = []
        var depth = 0
        func flush() {
            let rest = element.dropFirst().compactMap(\.keyword)
            let modifiers: Set<String> = ["ASC", "DESC", "NULLS", "FIRST", "LAST"]
            if let first = element.first, element.dropFirst().allSatisfy({ $0.kind == .word }),
                rest.allSatisfy(modifiers.contains)
            {
                if first.kind == .word { out.append(first.text.lowercased()) }
                if first.kind == .quotedIdentifier { out.append(first.text) }
            }
            element = []
        }
        i += 1
        while i < t.count {
            let tok = t[i]
            if tok.isPunctuation("(") { depth += 1 }
            if tok.isPunctuation(")") {
                if depth == 0 {
                    flush()
                    break
                }
                depth -= 1
            }
            if depth == 0, tok.isPunctuation(",") { flush() } else { element.append(tok) }
            i += 1
        }
        return out
    }

    /// Splits ALTER TABLE actions at top-level commas.
    static func splitActions(_ t: [SQLToken]) -> [[SQLToken]] {
        var out: [[SQLToken]] = [[]]
        var depth = 0
        for tok in t {
            if tok.isPunctuation("(") { depth += 1 }
            if tok.isPunctuation(")") { depth -= 1 }
            if depth == 0, tok.isPunctuation(",") {
                out.append([])
                continue
            }
            out[out.count - 1].append(tok)
        }
        return out.filter { !$0.isEmpty }
    }

    /// One action of an ALTER TABLE on a live table: its effect and notes.
    private func analyzeAction(_ t: [SQLToken], table: TableName, finding: Report) -> (StatementEffect, [String]) {
        let kw = t.keywords
        let constraintWords: Set<String> = ["CONSTRAINT", "FOREIGN", "CHECK", "UNIQUE", "PRIMARY", "EXCLUDE"]
        guard let verb = kw.first else { return (.metadataOnly, []) }

        if verb == "ADD" {
            if kw.count > 1 && constraintWords.contains(kw[1]) {
                return Self.analyzeAddConstraint(kw, table: table, finding: finding)
            }
            return analyzeAddColumn(t, table: table, finding: finding)
        }
        if verb == "ALTER" { return Self.analyzeAlterColumn(kw, table: table, finding: finding) }
        if verb == "VALIDATE" {
            return (.concurrent, ["VALIDATE CONSTRAINT scans under SHARE UPDATE EXCLUSIVE: reads and writes continue"])
        }
        if verb == "DROP", kw.count > 1, kw[1] == "COLUMN" || (kw[1] != "CONSTRAINT" && kw[1] != "DEFAULT") {
            finding(
                "drop-column", .warning, "drops a column of \(table.key); make sure no deployed code still reads it")
            return (.metadataOnly, ["DROP COLUMN: metadata-only, brief ACCESS EXCLUSIVE lock"])
        }
        if verb == "SET", kw.count > 1, ["TABLESPACE", "LOGGED", "UNLOGGED"].contains(kw[1]) {
            finding("rewrite-table", .error, "SET \(kw[1]) rewrites \(table.key) under ACCESS EXCLUSIVE")
            return (.rewrite, ["rewrites the table"])
        }
        return (.metadataOnly, ["metadata-only, brief ACCESS EXCLUSIVE lock"])
    }

    /// `ADD CONSTRAINT …`, `ADD FOREIGN KEY …` and the like: a constraint that validates or
    /// indexes existing rows must be added NOT VALID or USING INDEX.
    private static func analyzeAddConstraint(_ kw: [String], table: TableName, finding: Report) -> (
        StatementEffect, [String]
    ) {
        let text = kw.joined(separator: " ")
        let notValid = text.contains("NOT VALID")
        if kw.contains("FOREIGN") {
            if notValid {
                return (.metadataOnly, ["FOREIGN KEY NOT VALID: brief SHARE ROW EXCLUSIVE lock on both tables"])
            }
            finding(
                "fk-not-valid", .error,
                "FOREIGN KEY on existing table \(table.key) without NOT VALID scans it while locking both tables; "
                    + "add it NOT VALID, then VALIDATE CONSTRAINT in a later statement")
            return (.scan, ["validates every row under SHARE ROW EXCLUSIVE on both tables"])
        }
        if kw.contains("CHECK") {
            if notValid { return (.metadataOnly, ["CHECK NOT VALID: metadata-only"]) }
            finding(
                "constraint-not-valid", .error,
                "CHECK on existing table \(table.key) without NOT VALID scans it under ACCESS EXCLUSIVE; "
                    + "add it NOT VALID, then VALIDATE CONSTRAINT")
            return (.scan, ["scans every row under ACCESS EXCLUSIVE"])
        }
        if kw.contains("UNIQUE") || kw.contains("PRIMARY") || kw.contains("EXCLUDE") {
            if text.contains("USING INDEX") { return (.metadataOnly, ["uses an existing index"]) }
            finding(
                "unique-not-using-index", .error,
                "a UNIQUE/PRIMARY KEY/EXCLUDE constraint on existing table \(table.key) builds an index "
                    + "while blocking writes; build a unique index CONCURRENTLY first, then ADD CONSTRAINT … USING INDEX"
            )
            return (.blocksWrites, ["builds an index under ACCESS EXCLUSIVE"])
        }
        return (.metadataOnly, [])
    }

    /// `ADD [COLUMN] [IF NOT EXISTS] name type …`: a default, serial, generated, inline
    /// REFERENCES or UNIQUE column can rewrite, scan or lock the table.
    private func analyzeAddColumn(_ t: [SQLToken], table: TableName, finding: Report) -> (StatementEffect, [String]) {
        let kw = t.keywords
        let text = kw.joined(separator: " ")
        var effect = StatementEffect.metadataOnly
        var notes: [String] = []
        let typeWords = Set(kw)
        let serial = !typeWords.isDisjoint(with: [
            "SERIAL", "BIGSERIAL", "SMALLSERIAL", "SERIAL4", "SERIAL8", "SERIAL2",
        ])
        if let d = kw.firstIndex(of: "DEFAULT") {
            (effect, notes) = analyzeColumnDefault(t, at: d, table: table, finding: finding)
        } else if serial {
            effect = .rewrite
            notes.append("serial column fills nextval() for every row")
            finding(
                "volatile-default", .error,
                "a serial column on existing table \(table.key) rewrites it; add a plain column and backfill")
        } else {
            notes.append("ADD COLUMN without a default: metadata-only, brief ACCESS EXCLUSIVE lock")
        }
        if kw.contains("GENERATED") {
            effect = .rewrite
            notes.append("a generated or identity column rewrites the table")
            finding(
                "generated-column", .error,
                "a GENERATED column on existing table \(table.key) rewrites it under ACCESS EXCLUSIVE")
        }
        if text.contains("NOT NULL"), !kw.contains("DEFAULT") {
            finding(
                "not-null-without-default", .warning, "NOT NULL without a default fails if \(table.key) has rows")
        }
        if kw.contains("REFERENCES") {
            effect = max(effect, .scan)
            finding(
                "fk-not-valid", .error,
                "an inline REFERENCES on existing table \(table.key) is validated at once with a lock on both tables; "
                    + "add the column, then ADD CONSTRAINT … FOREIGN KEY … NOT VALID and VALIDATE separately")
        }
        if kw.contains("PRIMARY") || kw.contains("UNIQUE") {
            effect = max(effect, .blocksWrites)
            finding(
                "unique-not-using-index", .error,
                "a UNIQUE/PRIMARY KEY column on existing table \(table.key) builds an index while blocking writes")
        }
        return (effect, notes)
    }

    /// The `DEFAULT` at token `d` of an added column: a volatile function in it (per the
    /// catalog) rewrites every row, and so does any default before PostgreSQL 11.
    private func analyzeColumnDefault(_ t: [SQLToken], at d: Int, table: TableName, finding: Report) -> (
        StatementEffect, [String]
    ) {
        let kw = t.keywords
        let stops: Set<String> = [
            "NOT", "NULL", "CONSTRAINT", "CHECK", "REFERENCES", "PRIMARY", "UNIQUE", "GENERATED", "COLLATE",
        ]
        var end = d + 1
        var depth = 0
        while end < t.count {
            if t[end].isPunctuation("(") { depth += 1 }
            if t[end].isPunctuation(")") { depth -= 1 }
            if depth == 0, stops.contains(kw[end]) { break }
            end += 1
        }
        let expr = Array(t[(d + 1)..<end])
        let volatile = expr.indices.dropLast().compactMap { i -> String? in
            guard expr[i].kind == .word, expr[i + 1].isPunctuation("(") else { return nil }
            let name = expr[i].text.lowercased()
            return catalog.volatileFunctions.contains(name) ? name : nil
        }.first
        if let volatile {
            finding(
                "volatile-default", .error,
                "ADD COLUMN with volatile default \(volatile)() on existing table \(table.key) rewrites it; "
                    + "add the column without a default (or with a constant one), then backfill in batches")
            return (.rewrite, ["volatile default \(volatile)() rewrites every row under ACCESS EXCLUSIVE"])
        }
        if catalog.serverVersion < 110000 {
            finding(
                "default-rewrites-pre11", .error,
                "ADD COLUMN with a default rewrites \(table.key) on PostgreSQL \(catalog.serverVersion / 10000); "
                    + "add the column without a default, then SET DEFAULT and backfill")
            return (.rewrite, ["a default rewrites the table before PostgreSQL 11"])
        }
        return (
            .metadataOnly,
            ["ADD COLUMN with a non-volatile default: metadata-only on PostgreSQL 11+, brief ACCESS EXCLUSIVE lock"]
        )
    }

    /// `ALTER [COLUMN] …`: a type change rewrites the table and SET NOT NULL scans it.
    private static func analyzeAlterColumn(_ kw: [String], table: TableName, finding: Report) -> (
        StatementEffect, [String]
    ) {
        if kw.contains("TYPE") {
            finding(
                "alter-column-type", .error,
                "changing a column type on existing table \(table.key) rewrites it under ACCESS EXCLUSIVE; "
                    + "add a new column, backfill, and switch over")
            return (.rewrite, ["ALTER COLUMN TYPE rewrites every row (and its indexes) under ACCESS EXCLUSIVE"])
        }
        if kw.joined(separator: " ").contains("SET NOT NULL") {
            finding(
                "set-not-null", .error,
                "SET NOT NULL on existing table \(table.key) scans it under ACCESS EXCLUSIVE; "
                    + "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, then SET NOT NULL (PostgreSQL 12+ skips the scan)"
            )
            return (.scan, ["SET NOT NULL scans every row under ACCESS EXCLUSIVE"])
        }
        return (.metadataOnly, ["metadata-only, brief ACCESS EXCLUSIVE lock"])
    }
}
