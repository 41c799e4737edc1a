import BridgeCore
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials
import Yams

// Reading `tools` entries: SQL, HTTP, command and hosted tools and their `needs_approval`.
extension LoadState {
    static let hostedTypes = ["web_search", "file_search", "code_interpreter"]

    static func parseTool(_ r: YAMLReader, _ node: Node, _ path: String) -> ToolMapping? {
        guard let m = r.map(node, path, Keys.Tool.self) else { return nil }
        let name = m.name(.name)
        if let name, !isAPIName(name) {
            r.issue(m.node(.name), m.path(.name), "tool name '\(name)' must match ^[a-zA-Z0-9_-]{1,64}$")
        }
        let kinds = Keys.Tool.implementations.filter { m.has($0) }
        if kinds.count != 1 {
            r.issue(
                node, path,
                kinds.isEmpty
                    ? "missing implementation: give exactly one of sql, http, command or hosted"
                    : "give exactly one implementation, found \(kinds.map(\.rawValue).joined(separator: " and "))")
        }
        let strict = m.boolOrDefault(.strict)
        let implementation = kinds.first.flatMap { parseImplementation(r, m, $0) }
        let isHosted: Bool = {
            if case .hosted? = implementation { return true }
            return kinds == [.hosted]
        }()
        var description = ""
        if isHosted {
            for key in [Keys.Tool.parameters, .strict] where m.has(key) {
                r.issue(m.keyNode(key), m.path(key), "hosted tools take no \(key.rawValue)")
            }
            // Empty default: a hosted tool needs no description.
            description = m.string(.description) ?? ""
        } else if let d = m.string(.description, required: true) {
            description = d
            if d.trimmingSpaces.isEmpty { r.issue(m.node(.description), m.path(.description), "must not be empty") }
        }
        var parameters: JSONValue = isHosted ? .object([:]) : ToolMapping.emptyParameters
        if !isHosted, let p = m.node(.parameters), let json = r.json(p, m.path(.parameters)) {
            parameters = json
            SchemaChecker(reader: r, strict: strict).checkTop(json, node: p, path: m.path(.parameters))
        }
        if case .sql(let spec)? = implementation { checkToolSQL(r, m, spec, parameters: parameters) }
        let approval = parseNeedsApproval(r, m, parameters: parameters, isHosted: isHosted)
        let inputGuardrails = parseToolGuardrails(r, m, .inputGuardrails)
        let outputGuardrails = parseToolGuardrails(r, m, .outputGuardrails)
        if isHosted {
            for key in [Keys.Tool.inputGuardrails, .outputGuardrails] where m.has(key) {
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

    /// The tool's implementation under `kind` (`sql`, `http`, `command` or `hosted`).
    static func parseImplementation(_ r: YAMLReader, _ m: MapReader<Keys.Tool>, _ kind: Keys.Tool)
        -> ToolImplementation?
    {
        switch kind {
        case .sql:
            guard let s = m.map(.sql, Keys.ToolSQL.self), let q = s.name(.query) else { return nil }
            var spec = SQLToolSpec(sql: q)
            s.read(into: &spec)
            return .sql(spec)
        case .http:
            guard let h = m.map(.http, Keys.ToolHTTP.self), let url = h.name(.url) else { return nil }
            if !(url.hasPrefix("http://") || url.hasPrefix("https://")) || URL(string: url)?.host == nil {
                r.issue(h.node(.url), h.path(.url), "not an http(s) URL: '\(url)'")
            }
            var spec = HTTPToolSpec(url: url)
            spec.headers = h.stringMap(.headers) ?? [:]
            h.read(into: &spec)
            return .http(spec)
        case .command:
            guard let c = m.map(.command, Keys.ToolCommand.self), let argv = c.strings(.argv) else { return nil }
            if argv.isEmpty { r.issue(c.node(.argv), c.path(.argv), "must name a program") }
            var spec = CommandToolSpec(argv: argv)
            spec.env = c.strings(.env) ?? []
            for name in spec.env where !ChildEnvironment.isValidName(name) {
                r.issue(
                    c.node(.env), c.path(.env),
                    "'\(name)' is not an environment variable name (^[A-Za-z_][A-Za-z0-9_]*$)")
            }
            c.read(into: &spec)
            return .command(spec)
        case .hosted:
            guard let h = m.map(.hosted, Keys.HostedTool.self), let type = h.name(.type) else { return nil }
            let ids = h.strings(.vectorStoreIds) ?? []
            if !hostedTypes.contains(type) {
                r.issue(
                    h.node(.type), h.path(.type),
                    "unknown hosted tool type '\(type)' (expected \(hostedTypes.joined(separator: ", ")))")
            } else if type == "file_search" && ids.isEmpty {
                r.issue(h.node, h.path, "file_search needs vector_store_ids")
            } else if type != "file_search" && h.has(.vectorStoreIds) {
                r.issue(
                    h.keyNode(.vectorStoreIds), h.path(.vectorStoreIds), "only file_search takes vector_store_ids")
            }
            return .hosted(HostedToolSpec(type: type, vectorStoreIds: ids))
        default:
            return nil
        }
    }

    /// A SQL tool's parameters are properties of its schema or `:task.column`; it is one statement.
    static func checkToolSQL(_ r: YAMLReader, _ m: MapReader<Keys.Tool>, _ spec: SQLToolSpec, parameters: JSONValue) {
        let params = spec.namedParameters
        let qNode = m.node(.sql).flatMap { $0.mapping?["query"] }
        let qPath = m.path(.sql) + ".query"
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

    /// `needs_approval: true | false | {sql: <query over :argument and :task.column>}`.
    static func parseNeedsApproval(
        _ r: YAMLReader, _ m: MapReader<Keys.Tool>, parameters: JSONValue, isHosted: Bool
    ) -> ApprovalRule {
        guard let n = m.node(.needsApproval) else { return .never }
        var approval = ApprovalRule.never
        let p = m.path(.needsApproval)
        if case .scalar = n {
            if let b = r.bool(n, p) { approval = b ? .always : .never }
        } else if let a = r.map(n, p, Keys.NeedsApproval.self), let q = a.name(.sql) {
            let spec = SQLToolSpec.check(q)
            let properties = parameters["properties"]?.objectValue ?? [:]
            for arg in spec.namedParameters.argumentNames where properties[arg] == nil {
                r.issue(
                    a.node(.sql), a.path(.sql),
                    "SQL parameter ':\(arg)' is not a property of the tool's parameters schema")
            }
            for bad in spec.namedParameters.unknownRoots {
                r.issue(
                    a.node(.sql), a.path(.sql),
                    "SQL parameter ':\(bad)' has an unknown root (use :argument or :task.column)")
            }
            approval = .sql(spec)
        }
        if isHosted && approval != .never {
            r.issue(
                m.keyNode(.needsApproval), p,
                "hosted tools run at the model provider and cannot wait for approval")
        }
        return approval
    }

    /// `approvals: {table, key, status: {column, pending, approved, rejected, expired}, expires_at_column,
    /// expires_after, response_column, responded_at_column, group_column, columns, values}`.
    static func parseApprovals(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> ApprovalsMapping? {
        guard let m = r.map(node, "approvals", Keys.Approvals.self) else { return nil }
        var a = ApprovalsMapping(origin: origin)
        a.table = m.name(.table) ?? a.table
        m.read(into: &a)
        if let st = m.map(.status, Keys.ApprovalStatus.self) {
            st.read(into: &a)
            let values = [a.pending, a.approved, a.rejected] + (a.expired.map { [$0] } ?? [])
            if Set(values).count != values.count {
                r.issue(st.node, st.path, "the pending, approved, rejected and expired values must all differ")
            }
        }
        if let c = m.stringMap(.columns, keys: ApprovalsMapping.contentNames) { a.columns = c }
        a.values = m.stringMap(.values) ?? [:]
        return a
    }
}
