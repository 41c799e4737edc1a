import BridgeCore
import BridgeTraceModel
import BridgePostgres
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
            throw MappingErrors([MappingIssue(file: dir, line: 0, column: 0, path: "",
                                              message: "cannot read the mappings directory")])
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
            let problem = ref.column.map { PostgresQuery.identifierProblem($0) }
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
            return MappingIssue(location, "the SQL of \(what) must be exactly one statement; a second one starts at line \(second.line), column \(second.column) of the query")
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
    /// Where each entry of `agents`/`tools` names things (for cross-checks).
    /// A file did not parse, so missing sections may be in it.
    var unparsedFiles = false

    static let topKeys = ["version", "source", "results", "tracing", "handoffs_table", "backfill", "agents", "tools",
                          "guardrails", "approvals", "mcp_servers"]

    mutating func parse(file: String, text: String) {
        files.append(file)
        let r = YAMLReader(file: file, text: text)
        defer {
            issues += r.issues
            locations.merge(r.locations) { a, _ in a }
        }
        if text.utf8.count > MappingLoader.maxFileBytes {
            r.issues.append(MappingIssue(file: file, line: 1, column: 1, path: "",
                                         message: "the file is \(text.utf8.count) bytes; mapping files are limited to \(MappingLoader.maxFileBytes) bytes"))
            unparsedFiles = true
            return
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let e as YamlError {
            let (mark, problem) = Self.describe(e)
            r.issues.append(MappingIssue(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, path: "",
                                         message: "YAML syntax error: \(problem)"))
            unparsedFiles = true
            return
        } catch {
            r.issues.append(MappingIssue(file: file, line: 0, column: 0, path: "", message: "YAML error: \(error)"))
            unparsedFiles = true
            return
        }
        guard let root else {
            r.issues.append(MappingIssue(file: file, line: 1, column: 1, path: "", message: "empty file (expected 'version: 1')"))
            return
        }
        // Aliases share nodes, so a small file can stand for an exponential tree ("billion
        // laughs"); everything below walks the expanded tree, so bound it first.
        if let heavy = MappingLoader.nodeOverBudget(root, budget: MappingLoader.maxExpandedNodes) {
            let mark = heavy.mark
            r.issues.append(MappingIssue(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, path: "",
                                         message: "aliases expand this file to more than \(MappingLoader.maxExpandedNodes) YAML nodes (the budget); the node here is repeated through aliases (*name) too often"))
            unparsedFiles = true
            return
        }
        guard let m = r.map(root, "", allowed: Self.topKeys) else { return }
        if let v = m.required("version") {
            if v.tagName != .int || v.int != MappingLoader.currentVersion {
                r.issue(v, "version", "unsupported version '\(v.scalar?.string ?? YAMLReader.kind(v))' (this bridge reads version \(MappingLoader.currentVersion))")
            }
        }
        for key in ["source", "results", "tracing", "handoffs_table", "backfill", "approvals"] {
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
                if let s = Self.parseMCPServer(r, item, "mcp_servers[\(i)]", baseDirectory: directory) { mcpServers.append(s) }
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
        case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            let ctx = context.map { "\($0.text) (from line \($0.mark.line), column \($0.mark.column)): " } ?? ""
            return (mark, ctx + problem)
        case let .duplicatedKeysInMapping(duplicates, context):
            return (context.mark, "duplicate key(s) \(duplicates.sorted().map { "'\($0)'" }.joined(separator: ", "))")
        case let .reader(problem, _, _, _):
            return (nil, problem)
        default:
            return (nil, "\(e)")
        }
    }

    // MARK: Sections

    static func parseSource(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> SourceMapping? {
        guard let m = r.map(node, "source", allowed: ["table", "key", "status", "group_column", "priority",
                                                        "created_at_column", "agent_selection", "input"]) else { return nil }
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
        if let a = m.map("agent_selection", allowed: ["table", "key", "task_column", "match_column", "fallback_column",
                                                      "group_column", "default_agent"]) {
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
        return SourceMapping(table: m.name("table") ?? "tasks", key: m.name("key") ?? "id", status: status,
                             groupColumn: m.name("group_column"), priority: priority,
                             createdAtColumn: m.name("created_at_column"), agentSelection: selection, input: input,
                             origin: origin)
    }

    static func parseResults(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> ResultsMapping? {
        guard let m = r.map(node, "results", allowed: ["result_column", "completed_at_column", "trace_id_column",
                                                         "executions"]) else { return nil }
        var out = ResultsMapping(resultColumn: m.name("result_column") ?? "result",
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
        guard let m = r.map(node, "handoffs_table", allowed: ["table", "source_column", "target_column",
                                                                "description_column"]) else { return nil }
        let table = m.name("table", required: true)
        let src = m.name("source_column", required: true)
        let dst = m.name("target_column", required: true)
        let desc = m.name("description_column")
        guard let table, let src, let dst else { return nil }
        return HandoffsTableMapping(table: table, sourceColumn: src, targetColumn: dst, descriptionColumn: desc,
                                    origin: origin)
    }

    // MARK: Agents

    /// The `model_settings` keys bridge accepts: the Agents SDK's `ModelSettings` fields and the
    /// request parameters of the Responses and Chat Completions APIs. Anything else a provider
    /// takes goes under `extra_args` (or `extra_body`).
    public static let modelSettingsKeys = [
        // Agents SDK ModelSettings
        "temperature", "top_p", "frequency_penalty", "presence_penalty", "tool_choice", "parallel_tool_calls",
        "truncation", "max_tokens", "reasoning", "verbosity", "metadata", "store", "include_usage",
        "response_include", "top_logprobs", "extra_query", "extra_body", "extra_headers", "extra_args",
        // Responses API
        "max_output_tokens", "previous_response_id", "service_tier", "user", "prompt_cache_key",
        "safety_identifier", "background", "max_tool_calls", "prompt", "text", "include", "conversation",
        // Chat Completions API
        "seed", "stop", "n", "logit_bias", "logprobs", "max_completion_tokens", "modalities", "prediction",
        "reasoning_effort", "web_search_options", "audio",
    ]

    static let agentKeys = ["name", "match", "instructions", "model", "model_settings", "model_api", "tools",
                            "handoffs", "handoff_description", "max_turns", "tool_use_behavior", "output_type",
                            "input_guardrails", "output_guardrails", "mcp_servers"]

    static func parseAgent(_ r: YAMLReader, _ node: Node, _ path: String) -> AgentMapping? {
        guard let m = r.map(node, path, allowed: agentKeys) else { return nil }
        let name = m.name("name", required: true)
        let instructions = m.template("instructions") ?? Template("")
        var settings: [String: JSONValue] = [:]
        if let n = m.node("model_settings") {
            // Unknown keys (a typo such as `temprature`) are errors, with a suggestion; provider
            // extras go under `extra_args` / `extra_body`, which are merged into the request.
            if case .mapping = n { _ = r.map(n, m.path("model_settings"), allowed: Self.modelSettingsKeys) }
            if case .mapping = n, let o = r.json(n, m.path("model_settings"))?.objectValue { settings = o }
            else if case .mapping = n {} else { r.issue(n, m.path("model_settings"), "expected a mapping, got \(YAMLReader.kind(n))") }
        }
        let apiName = m.name("model_api")
        let api = apiName.flatMap(ModelAPI.init(rawValue:))
        if let apiName, api == nil {
            r.issue(m.node("model_api"), m.path("model_api"), "unknown model_api '\(apiName)' (expected responses or chat_completions)")
        }
        var handoffs: [HandoffMapping] = []
        if let list = m.node("handoffs").flatMap({ r.list($0, m.path("handoffs")) }) {
            for (i, item) in list.enumerated() {
                let p = "\(m.path("handoffs"))[\(i)]"
                if case .scalar = item {
                    if let a = r.name(item, p) { handoffs.append(HandoffMapping(agent: a)) }
                } else if let h = r.map(item, p, allowed: ["agent", "description"]) {
                    if let a = h.name("agent", required: true) {
                        handoffs.append(HandoffMapping(agent: a, description: h.string("description")))
                    }
                }
            }
        }
        var behavior = ToolUseBehavior.runLLMAgain
        if let n = m.node("tool_use_behavior") {
            let p = m.path("tool_use_behavior")
            if case .scalar = n {
                switch r.string(n, p) {
                case "run_llm_again": behavior = .runLLMAgain
                case "stop_on_first_tool": behavior = .stopOnFirstTool
                case let other?:
                    r.issue(n, p, "unknown tool_use_behavior '\(other)' (expected run_llm_again, stop_on_first_tool or {stop_at_tool_names: [...]})")
                case nil: break
                }
            } else if let b = r.map(n, p, allowed: ["stop_at_tool_names"]) {
                if let names = b.required("stop_at_tool_names").flatMap({ r.strings($0, b.path("stop_at_tool_names")) }) {
                    behavior = .stopAtToolNames(names)
                }
            }
        }
        let outputType = m.node("output_type").flatMap { parseOutputType(r, $0, m.path("output_type")) }
        guard let name else { return nil }
        return AgentMapping(name: name, match: m.name("match"), instructions: instructions,
                            model: m.name("model") ?? "gpt-4.1", modelSettings: settings, modelAPI: api,
                            tools: m.strings("tools") ?? [], handoffs: handoffs,
                            handoffDescription: m.string("handoff_description"), maxTurns: m.int("max_turns", min: 1),
                            toolUseBehavior: behavior, outputType: outputType,
                            inputGuardrails: m.strings("input_guardrails") ?? [],
                            outputGuardrails: m.strings("output_guardrails") ?? [],
                            mcpServers: m.strings("mcp_servers") ?? [], origin: r.location(node, path))
    }

    /// `output_type: {name, schema, strict (default true), columns: {field: task column}}`.
    static func parseOutputType(_ r: YAMLReader, _ node: Node, _ path: String) -> OutputSchemaSpec? {
        guard let m = r.map(node, path, allowed: ["name", "schema", "strict", "columns"]) else { return nil }
        let name = m.name("name", required: true)
        if let name, !isAPIName(name) {
            r.issue(m.node("name"), m.path("name"), "output_type name '\(name)' must match ^[a-zA-Z0-9_-]{1,64}$")
        }
        let strict = m.bool("strict") ?? true
        var schema: JSONValue?
        if let n = m.required("schema"), let json = r.json(n, m.path("schema")) {
            schema = json
            SchemaChecker(reader: r, strict: strict).checkTop(json, node: n, path: m.path("schema"))
        }
        let columns = m.node("columns").flatMap { r.stringMap($0, m.path("columns")) } ?? [:]
        let properties = schema?["properties"]?.objectValue ?? [:]
        for field in columns.keys.sorted() where properties[field] == nil {
            r.issue(m.node("columns"), m.path("columns"), "'\(field)' is not a top-level property of the output_type schema")
        }
        guard let name, let schema else { return nil }
        return OutputSchemaSpec(name: name, schema: schema, strict: strict, columns: columns)
    }

    static func isAPIName(_ name: String) -> Bool {
        !name.isEmpty && name.count <= 64
            && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }
    }

    // MARK: Guardrails

    /// `{name, sql: {query, timeout_ms}}` or `{name, agent: <agent name>}`.
    static func parseGuardrail(_ r: YAMLReader, _ node: Node, _ path: String) -> GuardrailMapping? {
        guard let m = r.map(node, path, allowed: ["name", "sql", "agent", "run_in_parallel"]) else { return nil }
        let name = m.name("name", required: true)
        let kinds = ["sql", "agent"].filter { m.has($0) }
        if kinds.count != 1 {
            r.issue(node, path, kinds.isEmpty ? "missing kind: give exactly one of sql or agent"
                : "give exactly one of sql or agent, not both")
        }
        var implementation: GuardrailImplementation?
        switch kinds.first {
        case "sql":
            if let s = m.map("sql", allowed: ["query", "timeout_ms"]), let q = s.name("query", required: true) {
                var spec = SQLToolSpec(sql: q, writes: false, maxRows: 1)
                spec.timeoutMs = s.int("timeout_ms", min: 1) ?? spec.timeoutMs
                let params = spec.namedParameters
                let qNode = s.node("query")
                for arg in params.argumentNames where !["input", "output"].contains(arg) {
                    r.issue(qNode, s.path("query"), "SQL parameter ':\(arg)' is not available to a guardrail (use :input, :output or :task.column)")
                }
                for bad in params.unknownRoots {
                    r.issue(qNode, s.path("query"), "SQL parameter ':\(bad)' has an unknown root (use :input, :output or :task.column)")
                }
                if let p = params.positionalParameters.first {
                    r.issue(qNode, s.path("query"), "positional parameter '\(p)' is not allowed; use :input, :output or :task.column")
                }
                implementation = .sql(spec)
            }
        case "agent":
            if let a = m.name("agent", required: true) { implementation = .agent(a) }
        default: break
        }
        guard let name, let implementation else { return nil }
        return GuardrailMapping(name: name, implementation: implementation, runInParallel: m.bool("run_in_parallel") ?? true,
                                origin: r.location(node, path))
    }

    // MARK: Tools

    static let toolKeys = ["name", "description", "parameters", "strict", "sql", "http", "command", "hosted",
                           "needs_approval"]
    static let hostedTypes = ["web_search", "file_search", "code_interpreter"]

    static func parseTool(_ r: YAMLReader, _ node: Node, _ path: String) -> ToolMapping? {
        guard let m = r.map(node, path, allowed: toolKeys) else { return nil }
        let name = m.name("name", required: true)
        if let name, !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }) || name.count > 64 {
            r.issue(m.node("name"), m.path("name"), "tool name '\(name)' must match ^[a-zA-Z0-9_-]{1,64}$")
        }
        let kinds = ["sql", "http", "command", "hosted"].filter { m.has($0) }
        if kinds.count != 1 {
            r.issue(node, path, kinds.isEmpty
                ? "missing implementation: give exactly one of sql, http, command or hosted"
                : "give exactly one implementation, found \(kinds.joined(separator: " and "))")
        }
        let strict = m.bool("strict") ?? true
        var implementation: ToolImplementation?
        switch kinds.first {
        case "sql":
            if let s = m.map("sql", allowed: ["query", "writes", "timeout_ms", "max_rows", "max_bytes"]) {
                var spec = SQLToolSpec(sql: "")
                if let q = s.name("query", required: true) {
                    spec.sql = q
                    spec.writes = s.bool("writes") ?? false
                    spec.timeoutMs = s.int("timeout_ms", min: 1) ?? spec.timeoutMs
                    spec.maxRows = s.int("max_rows", min: 1) ?? spec.maxRows
                    spec.maxBytes = s.int("max_bytes", min: 1) ?? spec.maxBytes
                    implementation = .sql(spec)
                }
            }
        case "http":
            if let h = m.map("http", allowed: ["url", "headers", "timeout_ms", "max_bytes"]) {
                if let url = h.name("url", required: true) {
                    if !(url.hasPrefix("http://") || url.hasPrefix("https://")) || URL(string: url)?.host == nil {
                        r.issue(h.node("url"), h.path("url"), "not an http(s) URL: '\(url)'")
                    }
                    var spec = HTTPToolSpec(url: url)
                    spec.headers = h.node("headers").flatMap { r.stringMap($0, h.path("headers")) } ?? [:]
                    spec.timeoutMs = h.int("timeout_ms", min: 1) ?? spec.timeoutMs
                    spec.maxBytes = h.int("max_bytes", min: 1) ?? spec.maxBytes
                    implementation = .http(spec)
                }
            }
        case "command":
            if let c = m.map("command", allowed: ["argv", "timeout_ms", "max_bytes", "env"]) {
                if let argv = c.required("argv").flatMap({ r.strings($0, c.path("argv")) }) {
                    if argv.isEmpty { r.issue(c.node("argv"), c.path("argv"), "must name a program") }
                    var spec = CommandToolSpec(argv: argv)
                    spec.env = c.strings("env") ?? []
                    for name in spec.env where !ChildEnvironment.isValidName(name) {
                        r.issue(c.node("env"), c.path("env"), "'\(name)' is not an environment variable name (^[A-Za-z_][A-Za-z0-9_]*$)")
                    }
                    spec.timeoutMs = c.int("timeout_ms", min: 1) ?? spec.timeoutMs
                    spec.maxBytes = c.int("max_bytes", min: 1) ?? spec.maxBytes
                    implementation = .command(spec)
                }
            }
        case "hosted":
            if let h = m.map("hosted", allowed: ["type", "vector_store_ids"]) {
                if let type = h.name("type", required: true) {
                    let ids = h.strings("vector_store_ids") ?? []
                    if !hostedTypes.contains(type) {
                        r.issue(h.node("type"), h.path("type"), "unknown hosted tool type '\(type)' (expected \(hostedTypes.joined(separator: ", ")))")
                    } else if type == "file_search" && ids.isEmpty {
                        r.issue(h.node, h.path, "file_search needs vector_store_ids")
                    } else if type != "file_search" && h.has("vector_store_ids") {
                        r.issue(h.keyNode("vector_store_ids"), h.path("vector_store_ids"), "only file_search takes vector_store_ids")
                    }
                    implementation = .hosted(HostedToolSpec(type: type, vectorStoreIds: ids))
                }
            }
        default: break
        }
        let isHosted: Bool = { if case .hosted? = implementation { return true }; return kinds == ["hosted"] }()
        var description = ""
        if isHosted {
            for key in ["parameters", "strict"] where m.has(key) {
                r.issue(m.keyNode(key), m.path(key), "hosted tools take no \(key)")
            }
            description = m.string("description") ?? ""
        } else if let d = m.string("description", required: true) {
            description = d
            if d.trimmingSpaces.isEmpty { r.issue(m.node("description"), m.path("description"), "must not be empty") }
        }
        var parameters: JSONValue = isHosted ? .object([:]) : ToolMapping.emptyParameters
        if !isHosted, let p = m.node("parameters") {
            if let json = r.json(p, m.path("parameters")) {
                parameters = json
                SchemaChecker(reader: r, strict: strict).checkTop(json, node: p, path: m.path("parameters"))
            }
        }
        if case .sql(let spec)? = implementation {
            let params = spec.namedParameters
            let qNode = m.node("sql").flatMap { $0.mapping?["query"] }
            let qPath = m.path("sql") + ".query"
            let properties = parameters["properties"]?.objectValue ?? [:]
            for arg in params.argumentNames where properties[arg] == nil {
                r.issue(qNode, qPath, "SQL parameter ':\(arg)' is not a property of the tool's parameters schema")
            }
            for bad in params.unknownRoots {
                r.issue(qNode, qPath, "SQL parameter ':\(bad)' has an unknown root (use :argument or :task.column)")
            }
            if let p = params.positionalParameters.first {
                r.issue(qNode, qPath, "positional parameter '\(p)' is not allowed; use :argument or :task.column")
            }
            if let second = ToolStatement.secondStatement(in: spec.sql) {
                var loc = r.location(qNode, qPath)
                (loc.line, loc.column) = r.filePosition(of: second, in: qNode)
                r.issues.append(MappingIssue(loc, "a tool's SQL must be exactly one statement; a second one starts here (line \(second.line), column \(second.column) of the query)"))
            }
        }
        var approval = ApprovalRule.never
        if let n = m.node("needs_approval") {
            let p = m.path("needs_approval")
            if case .scalar = n {
                if let b = r.bool(n, p) { approval = b ? .always : .never }
            } else if let a = r.map(n, p, allowed: ["sql"]), let q = a.name("sql", required: true) {
                let spec = SQLToolSpec(sql: q, writes: false, maxRows: 1)
                let properties = parameters["properties"]?.objectValue ?? [:]
                for arg in spec.namedParameters.argumentNames where properties[arg] == nil {
                    r.issue(a.node("sql"), a.path("sql"), "SQL parameter ':\(arg)' is not a property of the tool's parameters schema")
                }
                for bad in spec.namedParameters.unknownRoots {
                    r.issue(a.node("sql"), a.path("sql"), "SQL parameter ':\(bad)' has an unknown root (use :argument or :task.column)")
                }
                approval = .sql(spec)
            }
            if isHosted && approval != .never {
                r.issue(m.keyNode("needs_approval"), p, "hosted tools run at the model provider and cannot wait for approval")
            }
        }
        guard let name, let implementation else { return nil }
        return ToolMapping(ToolSpec(name: name, description: description, parameters: parameters, strict: strict,
                                    implementation: implementation, needsApproval: approval),
                           origin: r.location(node, path))
    }

    /// `approvals: {table, key, status: {column, pending, approved, rejected, expired}, expires_at_column,
    /// expires_after, response_column, responded_at_column, group_column, columns, values}`.
    static func parseApprovals(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> ApprovalsMapping? {
        guard let m = r.map(node, "approvals", allowed: ["table", "key", "status", "expires_at_column", "expires_after",
                                                           "response_column", "responded_at_column", "group_column",
                                                           "columns", "values"]) else { return nil }
        var a = ApprovalsMapping(origin: origin)
        a.table = m.name("table", required: true) ?? a.table
        a.key = m.name("key") ?? a.key
        if let st = m.map("status", allowed: ["column", "pending", "approved", "rejected", "expired"]) {
            a.statusColumn = st.name("column") ?? a.statusColumn
            a.pending = st.name("pending") ?? a.pending
            a.approved = st.name("approved") ?? a.approved
            a.rejected = st.name("rejected") ?? a.rejected
            a.expired = st.name("expired")
            let values = [a.pending, a.approved, a.rejected] + (a.expired.map { [$0] } ?? [])
            if Set(values).count != values.count {
                r.issue(st.node, st.path, "the pending, approved, rejected and expired values must all differ")
            }
        }
        a.expiresAtColumn = m.name("expires_at_column")
        if let n = m.node("expires_after") {
            if let text = r.string(n, m.path("expires_after")) {
                if let seconds = durationSeconds(text) { a.expiresAfterSeconds = seconds } else {
                    r.issue(n, m.path("expires_after"), "expected a duration such as 30m, 24h or 7d, got '\(text)'")
                }
            }
        }
        a.responseColumn = m.name("response_column")
        a.respondedAtColumn = m.name("responded_at_column")
        a.groupColumn = m.name("group_column")
        if let c = m.node("columns").flatMap({ r.stringMap($0, m.path("columns")) }) {
            for k in c.keys.sorted() where !ApprovalsMapping.contentNames.contains(k) {
                r.issue(m.node("columns"), m.path("columns"),
                        "unknown key '\(k)' (expected \(ApprovalsMapping.contentNames.joined(separator: ", ")))")
            }
            a.columns = c
        }
        a.values = m.node("values").flatMap { r.stringMap($0, m.path("values")) } ?? [:]
        return a
    }

    /// `90s`, `30m`, `24h`, `7d`, or plain seconds.
    static func durationSeconds(_ text: String) -> Double? {
        let t = text.trimmingSpaces
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let u = t.last, let f = units[u], let n = Double(t.dropLast()), n > 0 { return n * f }
        if let n = Double(t), n > 0 { return n }
        return nil
    }

    // MARK: Cross-checks

    mutating func finish() -> MappingConfig? {
        let firstFile = files.first ?? "<mappings>"
        func issue(_ loc: MappingLocation, _ message: String) { issues.append(MappingIssue(loc, message)) }
        func loc(_ origin: MappingLocation, _ path: String) -> MappingLocation {
            let full = origin.path.isEmpty ? path : origin.path + "." + path
            return locations[origin.file + "#" + full] ?? origin
        }
        if unparsedFiles { return nil }
        if source == nil && sections["source"] == nil {
            issue(MappingLocation(file: firstFile, line: 1, column: 1, path: ""), "missing section 'source' (in any mapping file)")
        }
        if results == nil && sections["results"] == nil {
            issue(MappingLocation(file: firstFile, line: 1, column: 1, path: ""), "missing section 'results' (in any mapping file)")
        }
        if agents.isEmpty && !issues.contains(where: { $0.path.hasPrefix("agents") }) {
            issue(MappingLocation(file: firstFile, line: 1, column: 1, path: ""), "no agents defined (in any mapping file)")
        }
        // Duplicate names.
        var agentByName: [String: AgentMapping] = [:]
        var agentByMatch: [String: AgentMapping] = [:]
        for a in agents {
            if let first = agentByName[a.name] {
                issue(loc(a.origin, "name"), "duplicate agent name '\(a.name)' (first defined at \(first.origin))")
            } else { agentByName[a.name] = a }
            if let first = agentByMatch[a.match], first.name != a.name {
                issue(loc(a.origin, a.match == a.name ? "name" : "match"),
                      "agents '\(first.name)' and '\(a.name)' both match '\(a.match)'")
            } else if agentByMatch[a.match] == nil { agentByMatch[a.match] = a }
        }
        var toolByName: [String: ToolMapping] = [:]
        for t in tools {
            if let first = toolByName[t.name] {
                issue(loc(t.origin, "name"), "duplicate tool name '\(t.name)' (first defined at \(first.origin))")
            } else { toolByName[t.name] = t }
        }
        var serverByName: [String: MCPServerMapping] = [:]
        for server in mcpServers {
            if let first = serverByName[server.name] {
                issue(loc(server.origin, "name"), "duplicate MCP server name '\(server.name)' (first defined at \(first.origin))")
            } else { serverByName[server.name] = server }
            for (i, t) in (server.allowedTools ?? []).enumerated() where toolByName[t] != nil {
                issue(loc(server.origin, "tool_filter.allowed[\(i)]"),
                      "MCP tool '\(t)' has the same name as the YAML tool defined at \(toolByName[t]!.origin)")
            }
        }
        // References from agents.
        for a in agents {
            for (i, name) in a.mcpServers.enumerated() {
                let l = loc(a.origin, "mcp_servers[\(i)]")
                if serverByName[name] == nil {
                    var msg = "unknown MCP server '\(name)'"
                    if let near = nearest(name, in: mcpServers.map(\.name)) { msg += " (did you mean '\(near)'?)" }
                    issue(l, msg)
                } else if a.mcpServers[..<i].contains(name) {
                    issue(l, "MCP server '\(name)' is listed twice")
                }
            }
            var handoffToolNames: [String: String] = [:]
            for (i, h) in a.handoffs.enumerated() {
                let l = loc(a.origin, "handoffs[\(i)]")
                let at = locations[l.file + "#" + l.path + ".agent"] ?? l
                guard agentByName[h.agent] != nil else {
                    var msg = "unknown agent '\(h.agent)'"
                    if let near = nearest(h.agent, in: agents.map(\.name)) { msg += " (did you mean '\(near)'?)" }
                    issue(at, msg)
                    continue
                }
                let toolName = HandoffSpec.defaultToolName(for: h.agent)
                if let other = handoffToolNames[toolName] {
                    issue(at, "handoffs to '\(other)' and '\(h.agent)' would both be called '\(toolName)'")
                }
                handoffToolNames[toolName] = h.agent
            }
            for (i, name) in a.tools.enumerated() {
                let l = loc(a.origin, "tools[\(i)]")
                guard let t = toolByName[name] else {
                    var msg = "unknown tool '\(name)'"
                    if let near = nearest(name, in: tools.map(\.name)) { msg += " (did you mean '\(near)'?)" }
                    issue(l, msg)
                    continue
                }
                if a.tools[..<i].contains(name) { issue(l, "tool '\(name)' is listed twice") }
                if handoffToolNames[name] != nil { issue(l, "tool '\(name)' has the same name as a handoff tool") }
                if case .hosted(let h) = t.implementation, a.modelAPI == .chatCompletions {
                    issue(l, "hosted tool '\(name)' (\(h.type)) needs model_api responses, but this agent uses chat_completions")
                }
            }
            if case .stopAtToolNames(let names) = a.toolUseBehavior {
                // With MCP servers, their tools count too: checked against the live servers.
                for (i, n) in names.enumerated() where !a.tools.contains(n) && a.mcpServers.isEmpty {
                    issue(loc(a.origin, "tool_use_behavior.stop_at_tool_names[\(i)]"),
                          "'\(n)' is not one of this agent's tools")
                }
            }
        }
        for (l, message) in Self.guardrailIssues(guardrails, agents: agents, agentByName: agentByName, loc: loc) {
            issue(l, message)
        }
        if approvals == nil, sections["approvals"] == nil, let t = tools.first(where: { !$0.needsApproval.isNever }) {
            issue(loc(t.origin, "needs_approval"), "tool '\(t.name)' needs approval, but no 'approvals' section says where requests go")
        }
        if let s = source, let d = s.agentSelection?.defaultAgent, agentByName[d] == nil {
            var msg = "unknown agent '\(d)'"
            if let near = nearest(d, in: agents.map(\.name)) { msg += " (did you mean '\(near)'?)" }
            issue(loc(s.origin, "agent_selection.default_agent"), msg)
        }
        if let h = handoffsTable, source != nil, source?.agentSelection == nil {
            issue(h.origin, "handoffs_table needs source.agent_selection (edges are matched through agent rows)")
        }
        guard let source, let results else { return nil }
        return MappingConfig(version: MappingLoader.currentVersion, source: source, results: results,
                             tracing: tracing ?? TracingMapping(), handoffsTable: handoffsTable, agents: agents,
                             tools: tools, files: files, locations: locations, backfill: backfill,
                             mcpServers: mcpServers)
            .with(guardrails: guardrails, approvals: approvals)
    }

    /// Guardrail names are unique; agents name existing guardrails; an agent guardrail names an
    /// agent whose output_type has a boolean `tripwire_triggered`.
    static func guardrailIssues(_ guardrails: [GuardrailMapping], agents: [AgentMapping],
                                agentByName: [String: AgentMapping],
                                loc: (MappingLocation, String) -> MappingLocation) -> [(MappingLocation, String)] {
        var out: [(MappingLocation, String)] = []
        func issue(_ l: MappingLocation, _ m: String) { out.append((l, m)) }
        var byName: [String: GuardrailMapping] = [:]
        for g in guardrails {
            if let first = byName[g.name] {
                issue(loc(g.origin, "name"), "duplicate guardrail name '\(g.name)' (first defined at \(first.origin))")
            } else { byName[g.name] = g }
            guard case .agent(let agentName) = g.implementation else { continue }
            guard let agent = agentByName[agentName] else {
                var msg = "unknown agent '\(agentName)'"
                if let near = nearest(agentName, in: Array(agentByName.keys).sorted()) { msg += " (did you mean '\(near)'?)" }
                issue(loc(g.origin, "agent"), msg)
                continue
            }
            let tripwire = agent.outputType?.schema["properties"]?["tripwire_triggered"]
            let required = (agent.outputType?.schema["required"]?.arrayValue ?? []).contains("tripwire_triggered")
            if tripwire?["type"]?.stringValue != "boolean" || !required {
                issue(loc(g.origin, "agent"), "guardrail agent '\(agentName)' needs an output_type with a required boolean property 'tripwire_triggered'")
            }
        }
        for a in agents {
            for (key, names) in [("input_guardrails", a.inputGuardrails), ("output_guardrails", a.outputGuardrails)] {
                for (i, n) in names.enumerated() where byName[n] == nil {
                    var msg = "unknown guardrail '\(n)'"
                    if let near = nearest(n, in: guardrails.map(\.name)) { msg += " (did you mean '\(near)'?)" }
                    issue(loc(a.origin, "\(key)[\(i)]"), msg)
                }
            }
        }
        return out
    }
}
