import BridgeCore
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials
import Yams

// Reading `agents` and `guardrails` entries (see `MappingLoader` for the whole format).
extension LoadState {
    /// The `model_settings` keys bridge accepts (see `Keys.ModelSetting`).
    public static let modelSettingsKeys = Keys.ModelSetting.names

    static let agentKeys = Keys.Agent.names

    static func parseAgent(_ r: YAMLReader, _ node: Node, _ path: String) -> AgentMapping? {
        guard let m = r.map(node, path, Keys.Agent.self) else { return nil }
        let name = m.name(.name)
        let instructions = m.template(.instructions) ?? Template("")
        var settings: [String: JSONValue] = [:]
        if let n = m.node(.modelSettings) {
            // Unknown keys (a typo such as `temprature`) are errors, with a suggestion; provider
            // extras go under `extra_args` / `extra_body`, which are merged into the request.
            if case .mapping = n {
                _ = r.map(n, m.path(.modelSettings), Keys.ModelSetting.self)
                settings = r.json(n, m.path(.modelSettings))?.objectValue ?? [:]
            } else {
                r.issue(n, m.path(.modelSettings), "expected a mapping, got \(YAMLReader.kind(n))")
            }
        }
        let apiName = m.name(.modelAPI)
        let api = apiName.flatMap(ModelAPI.init(rawValue:))
        if let apiName, api == nil {
            r.issue(
                m.node(.modelAPI), m.path(.modelAPI),
                "unknown model_api '\(apiName)' (expected responses or chat_completions)")
        }
        let handoffs = parseHandoffs(r, m)
        let behavior = parseToolUseBehavior(r, m)
        let outputType = m.node(.outputType).flatMap { parseOutputType(r, $0, m.path(.outputType)) }
        guard let name else { return nil }
        var agent = AgentMapping(
            name: name, match: m.name(.match) ?? name, instructions: instructions,
            modelSettings: settings, modelAPI: api,
            tools: m.strings(.tools) ?? [], handoffs: handoffs,
            handoffDescription: m.string(.handoffDescription), maxTurns: m.int(.maxTurns),
            toolUseBehavior: behavior, outputType: outputType,
            inputGuardrails: m.strings(.inputGuardrails) ?? [],
            outputGuardrails: m.strings(.outputGuardrails) ?? [],
            mcpServers: m.strings(.mcpServers) ?? [], origin: r.location(node, path))
        m.read(into: &agent)
        return agent
    }

    /// `handoffs: [<agent name> | {agent, description}]`.
    static func parseHandoffs(_ r: YAMLReader, _ m: MapReader<Keys.Agent>) -> [HandoffMapping] {
        guard let list = m.node(.handoffs).flatMap({ r.list($0, m.path(.handoffs)) }) else { return [] }
        var handoffs: [HandoffMapping] = []
        for (i, item) in list.enumerated() {
            let p = "\(m.path(.handoffs))[\(i)]"
            if case .scalar = item {
                if let a = r.name(item, p) { handoffs.append(HandoffMapping(agent: a)) }
            } else if let h = r.map(item, p, Keys.Handoff.self), let a = h.name(.agent) {
                handoffs.append(HandoffMapping(agent: a, description: h.string(.description)))
            }
        }
        return handoffs
    }

    /// `tool_use_behavior: run_llm_again | stop_on_first_tool | {stop_at_tool_names: [...]}`.
    static func parseToolUseBehavior(_ r: YAMLReader, _ m: MapReader<Keys.Agent>) -> ToolUseBehavior {
        guard let n = m.node(.toolUseBehavior) else { return .runLLMAgain }
        let p = m.path(.toolUseBehavior)
        if case .scalar = n {
            switch r.string(n, p) {
            case "run_llm_again": return .runLLMAgain
            case "stop_on_first_tool": return .stopOnFirstTool
            case let other?:
                r.issue(
                    n, p,
                    "unknown tool_use_behavior '\(other)' (expected run_llm_again, stop_on_first_tool or {stop_at_tool_names: [...]})"
                )
            case nil: break
            }
        } else if let b = r.map(n, p, Keys.ToolUseBehavior.self), let names = b.strings(.stopAtToolNames) {
            return .stopAtToolNames(names)
        }
        return .runLLMAgain
    }

    /// `output_type: {name, schema, strict (default true), columns: {field: task column}}`.
    static func parseOutputType(_ r: YAMLReader, _ node: Node, _ path: String) -> OutputSchemaSpec? {
        guard let m = r.map(node, path, Keys.OutputType.self) else { return nil }
        let name = m.name(.name)
        if let name, !isAPIName(name) {
            r.issue(m.node(.name), m.path(.name), "output_type name '\(name)' must match ^[a-zA-Z0-9_-]{1,64}$")
        }
        let strict = m.boolOrDefault(.strict)
        var schema: JSONValue?
        if let n = m.value(.schema), let json = r.json(n, m.path(.schema)) {
            schema = json
            SchemaChecker(reader: r, strict: strict).checkTop(json, node: n, path: m.path(.schema))
        }
        let columns = m.stringMap(.columns) ?? [:]
        let properties = schema?["properties"]?.objectValue ?? [:]
        for field in columns.keys.sorted() where properties[field] == nil {
            r.issue(
                m.node(.columns), m.path(.columns), "'\(field)' is not a top-level property of the output_type schema"
            )
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
        guard let m = r.map(node, path, Keys.Guardrail.self) else { return nil }
        let name = m.name(.name)
        let implementation = parseGuardrailCheck(r, m, node, path, parameters: ["input", "output"])
        guard let name, let implementation else { return nil }
        var guardrail = GuardrailMapping(name: name, implementation: implementation, origin: r.location(node, path))
        m.read(into: &guardrail)
        return guardrail
    }

    /// A guardrail's check, agent-level or tool-level: exactly one of `sql: {query, timeout_ms}`
    /// (a one-statement read-only query over `parameters` and `:task.column`) or `agent: <name>`.
    static func parseGuardrailCheck<Key: GuardrailCheckKeys>(
        _ r: YAMLReader, _ m: MapReader<Key>, _ node: Node, _ path: String, parameters: [String]
    ) -> GuardrailImplementation? {
        let kinds = [Key.sql, Key.agent].filter { m.has($0) }
        if kinds.count != 1 {
            r.issue(
                node, path,
                kinds.isEmpty
                    ? "missing kind: give exactly one of sql or agent"
                    : "give exactly one of sql or agent, not both")
        }
        let available = (parameters.map { ":" + $0 } + [":task.column"]).joined(separator: ", ")
        switch kinds.first {
        case Key.sql?:
            guard let s = m.map(Key.sql, Keys.GuardrailSQL.self), let q = s.name(.query) else { return nil }
            var spec = SQLToolSpec.check(q)
            s.read(into: &spec)
            let params = spec.namedParameters
            let (qNode, qPath) = (s.node(.query), s.path(.query))
            for arg in params.argumentNames where !parameters.contains(arg) {
                r.issue(qNode, qPath, "SQL parameter ':\(arg)' is not available to a guardrail (use \(available))")
            }
            for bad in params.unknownRoots {
                r.issue(qNode, qPath, "SQL parameter ':\(bad)' has an unknown root (use \(available))")
            }
            if let p = params.positionalParameters.first {
                r.issue(qNode, qPath, "positional parameter '\(p)' is not allowed; use \(available)")
            }
            return .sql(spec)
        case Key.agent?:
            return m.name(Key.agent, required: true).map { .agent($0) }
        default:
            return nil
        }
    }
}
