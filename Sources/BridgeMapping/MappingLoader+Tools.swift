import BridgeCore
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials
import Yams

// Reading `tools` entries: SQL, HTTP, command and hosted tools and their `needs_approval`.
extension LoadState {
    static let toolKeys = [
        "name", "description", "parameters", "strict", "sql", "http", "command", "hosted",
        "needs_approval", "input_guardrails", "output_guardrails",
    ]
    static let hostedTypes = ["web_search", "file_search", "code_interpreter"]

    static func parseTool(_ r: YAMLReader, _ node: Node, _ path: String) -> ToolMapping? {
        guard let m = r.map(node, path, allowed: toolKeys) else { return nil }
        let name = m.name("name", required: true)
        if let name,
            !name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
                || name.count > 64
        {
            r.issue(m.node("name"), m.path("name"), "tool name '\(name)' must match ^[a-zA-Z0-9_-]{1,64}$")
        }
        let kinds = ["sql", "http", "command", "hosted"].filter { m.has($0) }
        if kinds.count != 1 {
            r.issue(
                node, path,
                kinds.isEmpty
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
                        r.issue(
                            c.node("env"), c.path("env"),
                            "'\(name)' is not an environment variable name (^[A-Za-z_][A-Za-z0-9_]*$)")
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
                        r.issue(
                            h.node("type"), h.path("type"),
                            "unknown hosted tool type '\(type)' (expected \(hostedTypes.joined(separator: ", ")))")
                    } else if type == "file_search" && ids.isEmpty {
                        r.issue(h.node, h.path, "file_search needs vector_store_ids")
                    } else if type != "file_search" && h.has("vector_store_ids") {
                        r.issue(
                            h.keyNode("vector_store_ids"), h.path("vector_store_ids"),
                            "only file_search takes vector_store_ids")
                    }
                    implementation = .hosted(HostedToolSpec(type: type, vectorStoreIds: ids))
                }
            }
        default: break
        }
        let isHosted: Bool = {
            if case .hosted? = implementation { return true }
            return kinds == ["hosted"]
        }()
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
                r.issues.append(
                    MappingIssue(
                        loc,
                        "a tool's SQL must be exactly one statement; a second one starts here (line \(second.line), column \(second.column) of the query)"
                    ))
            }
        }
        var approval = ApprovalRule.never
        if let n = m.node("needs_approval") {
            let p = m.path("needs_approval")
            if case .scalar = n {
                if let b = r.bool(n, p) { approval = b ? .always : .never }
            } else if let a = r.map(n, p, allowed: ["sql"]), let q = a.name("sql", required: true) {
                let spec = SQLToolSpec.check(q)
                let properties = parameters["properties"]?.objectValue ?? [:]
                for arg in spec.namedParameters.argumentNames where properties[arg] == nil {
                    r.issue(
                        a.node("sql"), a.path("sql"),
                        "SQL parameter ':\(arg)' is not a property of the tool's parameters schema")
                }
                for bad in spec.namedParameters.unknownRoots {
                    r.issue(
                        a.node("sql"), a.path("sql"),
                        "SQL parameter ':\(bad)' has an unknown root (use :argument or :task.column)")
                }
                approval = .sql(spec)
            }
            if isHosted && approval != .never {
                r.issue(
                    m.keyNode("needs_approval"), p,
                    "hosted tools run at the model provider and cannot wait for approval")
            }
        }
        let inputGuardrails = parseToolGuardrails(r, m, "input_guardrails")
        let outputGuardrails = parseToolGuardrails(r, m, "output_guardrails")
        if isHosted {
            for key in ["input_guardrails", "output_guardrails"] where m.has(key) {
                r.issue(m.keyNode(key), m.path(key), "hosted tools run at the model provider; bridge cannot guard them")
            }
        }
        guard let name, let implementation else { return nil }
        var spec = ToolSpec(
            name: name, description: description, parameters: parameters, strict: strict,
            implementation: implementation, needsApproval: approval)
        spec.inputGuardrails = inputGuardrails.flatMap { $0.isEmpty ? nil : $0 }
        spec.outputGuardrails = outputGuardrails.flatMap { $0.isEmpty ? nil : $0 }
        return ToolMapping(spec, origin: r.location(node, path))
    }

    /// `approvals: {table, key, status: {column, pending, approved, rejected, expired}, expires_at_column,
    /// expires_after, response_column, responded_at_column, group_column, columns, values}`.
    static func parseApprovals(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> ApprovalsMapping? {
        guard
            let m = r.map(
                node, "approvals",
                allowed: [
                    "table", "key", "status", "expires_at_column", "expires_after",
                    "response_column", "responded_at_column", "group_column",
                    "columns", "values",
                ])
        else { return nil }
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
                if let seconds = durationSeconds(text) {
                    a.expiresAfterSeconds = seconds
                } else {
                    r.issue(n, m.path("expires_after"), "expected a duration such as 30m, 24h or 7d, got '\(text)'")
                }
            }
        }
        a.responseColumn = m.name("response_column")
        a.respondedAtColumn = m.name("responded_at_column")
        a.groupColumn = m.name("group_column")
        if let c = m.node("columns").flatMap({ r.stringMap($0, m.path("columns")) }) {
            for k in c.keys.sorted() where !ApprovalsMapping.contentNames.contains(k) {
                r.issue(
                    m.node("columns"), m.path("columns"),
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
}
