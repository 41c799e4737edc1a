import BridgeCore
import BridgePostgres
import BridgeTraceModel
import Foundation
import Yams

/// Loads and validates the mappings: every `*.yaml` file of a directory, sorted by name.
///
/// Each file has `version: 1` and any of the sections `source`, `results`, `tracing`,
/// `handoffs_table`, `backfill`, `agents` and `tools`. A section may appear in one file only; the
/// `agents` and `tools` lists merge across files. Every problem is reported (not just the
/// first) as a `MappingIssue` quoting `file:line:column` and the key path.
public enum MappingLoader {
    /// The only format version this build reads.
    public static let currentVersion = 1

    /// Loads every `*.yaml` file in `directory` (sorted by name). Issues quote each file as
    /// `directory/name.yaml`.
    public static func load(directory: String) throws(MappingErrors) -> MappingConfig {
        let dir = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        } catch {
            throw MappingErrors([
                MappingIssue(
                    file: dir, line: 0, column: 0, path: "",
                    message: "cannot read the mappings directory")
            ])
        }
        var documents: [(file: String, text: String)] = []
        var issues: [MappingIssue] = []
        for name in names {
            let path = dir + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else {
                issues.append(MappingIssue(file: path, line: 0, column: 0, path: "", message: "cannot read the file"))
                continue
            }
            guard let text = String(data: data, encoding: .utf8) else {
                issues.append(MappingIssue(file: path, line: 0, column: 0, path: "", message: "not valid UTF-8"))
                continue
            }
            documents.append((path, text))
        }
        if names.isEmpty {
            issues.append(MappingIssue(file: dir, line: 0, column: 0, path: "", message: "no *.yaml mapping files"))
        }
        do {
            let config = try load(documents: documents)
            if issues.isEmpty { return config }
        } catch {
            issues += error.issues
        }
        throw MappingErrors(issues)
    }

    /// The largest mapping file read, in bytes.
    public static let maxFileBytes = 1_048_576
    /// How many YAML nodes one file may expand to once aliases are followed.
    public static let maxExpandedNodes = 250_000

    /// The node at which a walk of `root`, following aliases, passes `budget` nodes; nil when
    /// the whole expanded tree fits. Stops as soon as the budget is spent.
    static func nodeOverBudget(_ root: Node, budget: Int) -> Node? {
        var left = budget
        func walk(_ node: Node) -> Node? {
            left -= 1
            if left < 0 { return node }
            switch node {
            case .mapping(let m):
                for (k, v) in m {
                    if let hit = walk(k) ?? walk(v) { return hit.mark == nil ? node : hit }
                }
            case .sequence(let s):
                for v in s {
                    if let hit = walk(v) { return hit.mark == nil ? node : hit }
                }
            case .scalar, .alias: break
            }
            return nil
        }
        return walk(root)
    }

    /// Every table and column name the mappings give must be an identifier (tables may be
    /// `schema.table`): they are quoted wherever they reach SQL, migrations included, and text
    /// such as `tasks; DROP TABLE x` is refused before anything runs.
    static func identifierIssues(_ config: MappingConfig) -> [MappingIssue] {
        var out: [MappingIssue] = []
        for ref in MappingValidator.references(config) {
            let problem =
                ref.column.map { PostgresQuery.identifierProblem($0) }
                ?? PostgresQuery.qualifiedIdentifierProblem(ref.table)
            if let problem {
                let issue = MappingIssue(ref.location, problem)
                if !out.contains(issue) { out.append(issue) }
            }
        }
        return out
    }

    /// Guardrail SQL and needs_approval predicates must be one statement too (tool SQL is
    /// checked as it is read, with the second statement's own position).
    static func statementIssues(_ config: MappingConfig) -> [MappingIssue] {
        MappingValidator.sqlPieces(config).compactMap { spec, location, what in
            guard !what.hasPrefix("tool "), let second = ToolStatement.secondStatement(in: spec.sql) else { return nil }
            return MappingIssue(
                location,
                "the SQL of \(what) must be exactly one statement; a second one starts at line \(second.line), column \(second.column) of the query"
            )
        }
    }

    /// Loads mappings from in-memory documents, in the given order.
    public static func load(documents: [(file: String, text: String)]) throws(MappingErrors) -> MappingConfig {
        var state = LoadState()
        for doc in documents { state.parse(file: doc.file, text: doc.text) }
        let config = state.finish()
        if let config { state.issues += identifierIssues(config) + statementIssues(config) }
        let order = Dictionary(documents.enumerated().map { ($1.file, $0) }, uniquingKeysWith: { a, _ in a })
        let issues = state.issues.enumerated().sorted { a, b in
            let (x, y) = (a.element, b.element)
            let (fx, fy) = (order[x.file] ?? Int.max, order[y.file] ?? Int.max)
            if fx != fy { return fx < fy }
            if x.line != y.line { return x.line < y.line }
            if x.column != y.column { return x.column < y.column }
            return a.offset < b.offset
        }.map(\.element)
        if let config, issues.isEmpty { return config }
        throw MappingErrors(issues)
    }
}

/// Accumulates sections across files, then cross-checks names.
struct LoadState {
    var issues: [MappingIssue] = []
    var locations: [String: MappingLocation] = [:]
    var files: [String] = []
    var sections: [Keys.Top: MappingLocation] = [:]
    var source: SourceMapping?
    var results: ResultsMapping?
    var tracing: TracingMapping?
    var handoffsTable: HandoffsTableMapping?
    var backfill: BackfillMapping?
    var agents: [AgentMapping] = []
    var tools: [ToolMapping] = []
    var guardrails: [GuardrailMapping] = []
    var approvals: ApprovalsMapping?
    var mcpServers: [MCPServerMapping] = []
    var pricing: Pricing?
    var limits: LimitsMapping?
    var budgets: BudgetMapping?
    var sessions: SessionsMapping?
    /// Where each entry of `agents`/`tools` names things (for cross-checks).
    /// A file did not parse, so missing sections may be in it.
    var unparsedFiles = false

    mutating func parse(file: String, text: String) {
        files.append(file)
        let r = YAMLReader(file: file, text: text)
        defer {
            issues += r.issues
            locations.merge(r.locations) { a, _ in a }
        }
        guard let root = compose(r, text: text), let m = r.map(root, "", Keys.Top.self) else { return }
        if let v = m.value(.version), v.tagName != .int || v.int != MappingLoader.currentVersion {
            r.issue(
                v, "version",
                "unsupported version '\(v.scalar?.string ?? YAMLReader.kind(v))' (this bridge reads version \(MappingLoader.currentVersion))"
            )
        }
        // The sections written once first, then the lists that merge across files.
        for key in Keys.Top.allCases where !key.isList { read(key, of: m, r) }
        for key in Keys.Top.allCases where key.isList { read(key, of: m, r) }
    }

    /// The file's YAML tree; nil, with an issue, when it is too large, does not parse, is empty
    /// or expands too far through aliases (all but the empty file count as unparsed: a missing
    /// section may be in them).
    mutating func compose(_ r: YAMLReader, text: String) -> Node? {
        let file = r.file
        if text.utf8.count > MappingLoader.maxFileBytes {
            r.issues.append(
                MappingIssue(
                    file: file, line: 1, column: 1, path: "",
                    message:
                        "the file is \(text.utf8.count) bytes; mapping files are limited to \(MappingLoader.maxFileBytes) bytes"
                ))
            unparsedFiles = true
            return nil
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            let (mark, problem) = Self.describe(e)
            r.issues.append(
                MappingIssue(
                    file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, path: "",
                    message: "YAML syntax error: \(problem)"))
            unparsedFiles = true
            return nil
        } catch {
            r.issues.append(MappingIssue(file: file, line: 0, column: 0, path: "", message: "YAML error: \(error)"))
            unparsedFiles = true
            return nil
        }
        guard let root else {
            r.issues.append(
                MappingIssue(file: file, line: 1, column: 1, path: "", message: "empty file (expected 'version: 1')"))
            return nil
        }
        // Aliases share nodes, so a small file can stand for an exponential tree ("billion
        // laughs"); everything below walks the expanded tree, so bound it first.
        if let heavy = MappingLoader.nodeOverBudget(root, budget: MappingLoader.maxExpandedNodes) {
            let mark = heavy.mark
            r.issues.append(
                MappingIssue(
                    file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, path: "",
                    message:
                        "aliases expand this file to more than \(MappingLoader.maxExpandedNodes) YAML nodes (the budget); the node here is repeated through aliases (*name) too often"
                ))
            unparsedFiles = true
            return nil
        }
        return root
    }

    /// Reads top-level `key` of a file: a section (which only one file may write) or a list.
    mutating func read(_ key: Keys.Top, of m: MapReader<Keys.Top>, _ r: YAMLReader) {
        guard key != .version, let node = m.node(key) else { return }
        let here = r.location(m.keyNode(key), key.rawValue)
        if !key.isList {
            if let first = sections[key] {
                r.issue(m.keyNode(key), key.rawValue, "section '\(key.rawValue)' is already defined at \(first)")
                return
            }
            sections[key] = here
        }
        switch key {
        case .version: break  // checked before the sections
        case .source: source = Self.parseSource(r, node, here)
        case .results: results = Self.parseResults(r, node, here)
        case .tracing: tracing = Self.parseTracing(r, node)
        case .handoffsTable: handoffsTable = Self.parseHandoffsTable(r, node, here)
        case .backfill: backfill = Self.parseBackfill(r, node, here)
        case .approvals: approvals = Self.parseApprovals(r, node, here)
        case .pricing: pricing = Self.parsePricing(r, node, here)
        case .limits: limits = Self.parseLimits(r, node, here)
        case .budgets: budgets = Self.parseBudgets(r, node, here)
        case .sessions: sessions = Self.parseSessions(r, node, here)
        case .agents: agents += Self.entries(r, node, key) { Self.parseAgent(r, $0, $1) }
        case .tools: tools += Self.entries(r, node, key) { Self.parseTool(r, $0, $1) }
        case .guardrails: guardrails += Self.entries(r, node, key) { Self.parseGuardrail(r, $0, $1) }
        case .mcpServers:
            let directory = Self.absoluteDirectory(of: r.file)
            mcpServers += Self.entries(r, node, key) {
                Self.parseMCPServer(r, $0, $1, baseDirectory: directory)
            }
        }
    }

    /// The entries of list `key` that `parse` reads (given each item and its path, `key[i]`).
    static func entries<T>(_ r: YAMLReader, _ node: Node, _ key: Keys.Top, _ parse: (Node, String) -> T?) -> [T] {
        guard let list = r.list(node, key.rawValue) else { return [] }
        return list.enumerated().compactMap { i, item in parse(item, "\(key.rawValue)[\(i)]") }
    }

    /// The absolute directory of `file` (relative `cwd`s of MCP servers are resolved against it).
    static func absoluteDirectory(of file: String) -> String {
        var dir = (file as NSString).deletingLastPathComponent
        if dir.isEmpty { dir = "." }
        if !dir.hasPrefix("/") { dir = FileManager.default.currentDirectoryPath + "/" + dir }
        return (dir as NSString).standardizingPath
    }

    static func describe(_ e: YamlError) -> (Mark?, String) {
        switch e {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
            .composer(let context, let problem, let mark, _):
            // Empty default: no context, no prefix.
            let ctx = context.map { "\($0.text) (from line \($0.mark.line), column \($0.mark.column)): " } ?? ""
            return (mark, ctx + problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return (context.mark, "duplicate key(s) \(duplicates.sorted().map { "'\($0)'" }.joined(separator: ", "))")
        case .reader(let problem, _, _, _):
            return (nil, problem)
        default:
            return (nil, "\(e)")
        }
    }

    // MARK: Sections

    static func parseSource(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> SourceMapping? {
        guard let m = r.map(node, "source", Keys.Source.self) else { return nil }
        var status = StatusMapping()
        if let s = m.map(.status, Keys.Status.self) {
            status = s.read()
            let values = [status.pending, status.running, status.completed, status.failed]
            if Set(values).count != values.count {
                r.issue(s.node, s.path, "the pending, running, completed and failed values must all differ")
            }
        }
        var priority: PriorityMapping?
        if let p = m.map(.priority, Keys.Priority.self) {
            let column = p.name(.column)
            let order = p.strings(.order)
            if let o = order, o.isEmpty { r.issue(p.node(.order), p.path(.order), "must list at least one value") }
            if let column, let order { priority = PriorityMapping(column: column, order: order) }
        }
        let selection = m.map(.agentSelection, Keys.AgentSelection.self)?.read()
        guard let input = m.template(.input) else { return nil }
        var out = SourceMapping(input: input, origin: origin)
        m.read(into: &out)
        out.status = status
        out.priority = priority
        out.agentSelection = selection
        return out
    }

    static func parseResults(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> ResultsMapping? {
        guard let m = r.map(node, "results", Keys.Results.self) else { return nil }
        var out = ResultsMapping(origin: origin)
        m.read(into: &out)
        out.executions = m.map(.executions, Keys.Executions.self).map(parseExecutions)
        return out
    }

    static func parseExecutions(_ e: MapReader<Keys.Executions>) -> ExecutionsMapping {
        var ex = e.read()
        if let c = e.map(.columns, Keys.ExecutionColumn.self) { ex.columns = c.read() }
        if let s = e.map(.statuses, Keys.ExecutionStatus.self) { ex.statuses = s.read() }
        return ex
    }

    static func parseTracing(_ r: YAMLReader, _ node: Node) -> TracingMapping? {
        guard let m = r.map(node, "tracing", Keys.Tracing.self) else { return nil }
        return m.read()
    }

    static func parseHandoffsTable(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> HandoffsTableMapping? {
        guard let m = r.map(node, "handoffs_table", Keys.HandoffsTable.self) else { return nil }
        let table = m.name(.table)
        let src = m.name(.sourceColumn)
        let dst = m.name(.targetColumn)
        let desc = m.name(.descriptionColumn)
        guard let table, let src, let dst else { return nil }
        return HandoffsTableMapping(
            table: table, sourceColumn: src, targetColumn: dst, descriptionColumn: desc,
            origin: origin)
    }
}
