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
    var sections: [String: MappingLocation] = [:]
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

    static let topKeys = [
        "version", "source", "results", "tracing", "handoffs_table", "backfill", "agents", "tools",
        "guardrails", "approvals", "mcp_servers", "pricing", "limits", "budgets", "sessions",
    ]

    mutating func parse(file: String, text: String) {
        files.append(file)
        let r = YAMLReader(file: file, text: text)
        defer {
            issues += r.issues
            locations.merge(r.locations) { a, _ in a }
        }
        if text.utf8.count > MappingLoader.maxFileBytes {
            r.issues.append(
                MappingIssue(
                    file: file, line: 1, column: 1, path: "",
                    message:
                        "the file is \(text.utf8.count) bytes; mapping files are limited to \(MappingLoader.maxFileBytes) bytes"
                ))
            unparsedFiles = true
            return
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
            return
        } catch {
            r.issues.append(MappingIssue(file: file, line: 0, column: 0, path: "", message: "YAML error: \(error)"))
            unparsedFiles = true
            return
        }
        guard let root else {
            r.issues.append(
                MappingIssue(file: file, line: 1, column: 1, path: "", message: "empty file (expected 'version: 1')"))
            return
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
            return
        }
        guard let m = r.map(root, "", allowed: Self.topKeys) else { return }
        if let v = m.required("version") {
            if v.tagName != .int || v.int != MappingLoader.currentVersion {
                r.issue(
                    v, "version",
                    "unsupported version '\(v.scalar?.string ?? YAMLReader.kind(v))' (this bridge reads version \(MappingLoader.currentVersion))"
                )
            }
        }
        for key in [
            "source", "results", "tracing", "handoffs_table", "backfill", "approvals", "pricing", "limits", "budgets",
            "sessions",
        ] {
            guard let node = m.node(key) else { continue }
            let here = r.location(m.keyNode(key), key)
            if let first = sections[key] {
                r.issue(m.keyNode(key), key, "section '\(key)' is already defined at \(first)")
                continue
            }
            sections[key] = here
            switch key {
            case "source": source = Self.parseSource(r, node, here)
            case "results": results = Self.parseResults(r, node, here)
            case "tracing": tracing = Self.parseTracing(r, node)
            case "backfill": backfill = Self.parseBackfill(r, node, here)
            case "approvals": approvals = Self.parseApprovals(r, node, here)
            case "pricing": pricing = Self.parsePricing(r, node, here)
            case "limits": limits = Self.parseLimits(r, node, here)
            case "budgets": budgets = Self.parseBudgets(r, node, here)
            case "sessions": sessions = Self.parseSessions(r, node, here)
            default: handoffsTable = Self.parseHandoffsTable(r, node, here)
            }
        }
        if let list = m.node("agents").flatMap({ r.list($0, "agents") }) {
            for (i, item) in list.enumerated() {
                if let a = Self.parseAgent(r, item, "agents[\(i)]") { agents.append(a) }
            }
        }
        if let list = m.node("tools").flatMap({ r.list($0, "tools") }) {
            for (i, item) in list.enumerated() {
                if let t = Self.parseTool(r, item, "tools[\(i)]") { tools.append(t) }
            }
        }
        if let list = m.node("guardrails").flatMap({ r.list($0, "guardrails") }) {
            for (i, item) in list.enumerated() {
                if let g = Self.parseGuardrail(r, item, "guardrails[\(i)]") { guardrails.append(g) }
            }
        }
        if let list = m.node("mcp_servers").flatMap({ r.list($0, "mcp_servers") }) {
            let directory = Self.absoluteDirectory(of: file)
            for (i, item) in list.enumerated() {
                if let s = Self.parseMCPServer(r, item, "mcp_servers[\(i)]", baseDirectory: directory) {
                    mcpServers.append(s)
                }
            }
        }
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
        guard
            let m = r.map(
                node, "source",
                allowed: [
                    "table", "key", "status", "group_column", "priority",
                    "created_at_column", "agent_selection", "input",
                ])
        else { return nil }
        var status = StatusMapping()
        if let s = m.map("status", allowed: ["column", "pending", "running", "completed", "failed"]) {
            status.column = s.name("column") ?? status.column
            status.pending = s.name("pending") ?? status.pending
            status.running = s.name("running") ?? status.running
            status.completed = s.name("completed") ?? status.completed
            status.failed = s.name("failed") ?? status.failed
            let values = [status.pending, status.running, status.completed, status.failed]
            if Set(values).count != values.count {
                r.issue(s.node, s.path, "the pending, running, completed and failed values must all differ")
            }
        }
        var priority: PriorityMapping?
        if let p = m.map("priority", allowed: ["column", "order"]) {
            let column = p.name("column", required: true)
            let order = p.required("order").flatMap { r.strings($0, p.path("order")) }
            if let o = order, o.isEmpty { r.issue(p.node("order"), p.path("order"), "must list at least one value") }
            if let column, let order { priority = PriorityMapping(column: column, order: order) }
        }
        var selection: AgentSelectionMapping?
        if let a = m.map(
            "agent_selection",
            allowed: [
                "table", "key", "task_column", "match_column", "fallback_column",
                "group_column", "default_agent",
            ])
        {
            var s = AgentSelectionMapping()
            s.table = a.name("table") ?? s.table
            s.key = a.name("key") ?? s.key
            s.taskColumn = a.name("task_column")
            s.matchColumn = a.name("match_column") ?? s.matchColumn
            s.fallbackColumn = a.name("fallback_column")
            s.groupColumn = a.name("group_column")
            s.defaultAgent = a.name("default_agent")
            selection = s
        }
        let input = m.template("input", required: true)
        guard let input else { return nil }
        return SourceMapping(
            table: m.name("table") ?? "tasks", key: m.name("key") ?? "id", status: status,
            groupColumn: m.name("group_column"), priority: priority,
            createdAtColumn: m.name("created_at_column"), agentSelection: selection, input: input,
            origin: origin)
    }

    static func parseResults(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> ResultsMapping? {
        guard
            let m = r.map(
                node, "results",
                allowed: [
                    "result_column", "completed_at_column", "trace_id_column",
                    "executions",
                ])
        else { return nil }
        var out = ResultsMapping(
            resultColumn: m.name("result_column") ?? "result",
            completedAtColumn: m.name("completed_at_column"),
            traceIdColumn: m.name("trace_id_column"), origin: origin)
        if let e = m.map("executions", allowed: ["table", "key", "task_column", "columns", "statuses"]) {
            var ex = ExecutionsMapping()
            ex.table = e.name("table") ?? ex.table
            ex.key = e.name("key") ?? ex.key
            ex.taskColumn = e.name("task_column") ?? ex.taskColumn
            if let c = e.map("columns", allowed: ExecutionColumns.logicalNames) {
                var cols = ExecutionColumns()
                cols.status = c.name("status") ?? cols.status
                cols.traceId = c.name("trace_id")
                cols.startedAt = c.name("started_at")
                cols.completedAt = c.name("completed_at")
                cols.durationSeconds = c.name("duration_seconds")
                cols.tokenUsage = c.name("token_usage")
                cols.result = c.name("result")
                cols.errorMessage = c.name("error_message")
                cols.errorType = c.name("error_type")
                cols.agentId = c.name("agent_id")
                cols.workspaceId = c.name("workspace_id")
                cols.retryCount = c.name("retry_count")
                ex.columns = cols
            }
            if let s = e.map("statuses", allowed: ["started", "completed", "failed_retriable", "failed_terminal"]) {
                ex.statuses.started = s.name("started") ?? ex.statuses.started
                ex.statuses.completed = s.name("completed") ?? ex.statuses.completed
                ex.statuses.failedRetriable = s.name("failed_retriable") ?? ex.statuses.failedRetriable
                ex.statuses.failedTerminal = s.name("failed_terminal") ?? ex.statuses.failedTerminal
            }
            out.executions = ex
        }
        return out
    }

    static func parseTracing(_ r: YAMLReader, _ node: Node) -> TracingMapping? {
        guard let m = r.map(node, "tracing", allowed: ["workflow_name", "include_sensitive_data"]) else { return nil }
        var t = TracingMapping()
        t.workflowName = m.name("workflow_name") ?? t.workflowName
        t.includeSensitiveData = m.bool("include_sensitive_data") ?? t.includeSensitiveData
        return t
    }

    static func parseHandoffsTable(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> HandoffsTableMapping? {
        guard
            let m = r.map(
                node, "handoffs_table",
                allowed: [
                    "table", "source_column", "target_column",
                    "description_column",
                ])
        else { return nil }
        let table = m.name("table", required: true)
        let src = m.name("source_column", required: true)
        let dst = m.name("target_column", required: true)
        let desc = m.name("description_column")
        guard let table, let src, let dst else { return nil }
        return HandoffsTableMapping(
            table: table, sourceColumn: src, targetColumn: dst, descriptionColumn: desc,
            origin: origin)
    }
}
