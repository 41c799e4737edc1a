import BridgeCore
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials
import Yams

// Reading `agents` and `guardrails` entries (see `MappingLoader` for the whole format).
extension LoadState {
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

    static let agentKeys = [
        "name", "match", "instructions", "model", "model_settings", "model_api", "tools",
        "handoffs", "handoff_description", "max_turns", "tool_use_behavior", "output_type",
        "input_guardrails", "output_guardrails", "mcp_servers",
    ]

    static func parseAgent(_ r: YAMLReader, _ node: Node, _ path: String) -> AgentMapping? {
        guard let m = r.map(node, path, allowed: agentKeys) else { return nil }
        let name = m.name("name", required: true)
        let instructions = m.template("instructions") ?? Template("")
        var settings: [String: JSONValue] = [:]
        if let n = m.node("model_settings") {
            // Unknown keys (a typo such as `temprature`) are errors, with a suggestion; provider
            // extras go under `extra_args` / `extra_body`, which are merged into the request.
            if case .mapping = n { _ = r.map(n, m.path("model_settings"), allowed: Self.modelSettingsKeys) }
            if case .mapping = n, let o = r.json(n, m.path("model_settings"))?.objectValue {
                settings = o
            } else if case .mapping = n {
            } else {
                r.issue(n, m.path("model_settings"), "expected a mapping, got \(YAMLReader.kind(n))")
            }
        }
        let apiName = m.name("model_api")
        let api = apiName.flatMap(ModelAPI.init(rawValue:))
        if let apiName, api == nil {
            r.issue(
                m.node("model_api"), m.path("model_api"),
                "unknown model_api '\(apiName)' (expected responses or chat_completions)")
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
                    r.issue(
                        n, p,
                        "unknown tool_use_behavior '\(other)' (expected run_llm_again, stop_on_first_tool or {stop_at_tool_names: [...]})"
                    )
                case nil: break
                }
            } else if let b = r.map(n, p, allowed: ["stop_at_tool_names"]) {
                if let names = b.required("stop_at_tool_names").flatMap({ r.strings($0, b.path("stop_at_tool_names")) })
                {
                    behavior = .stopAtToolNames(names)
                }
            }
        }
        let outputType = m.node("output_type").flatMap { parseOutputType(r, $0, m.path("output_type")) }
        guard let name else { return nil }
        return AgentMapping(
            name: name, match: m.name("match") ?? name, instructions: instructions,
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
            r.issue(
                m.node("columns"), m.path("columns"), "'\(field)' is not a top-level property of the output_type schema"
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
        guard let m = r.map(node, path, allowed: ["name", "sql", "agent", "run_in_parallel"]) else { return nil }
        let name = m.name("name", required: true)
        let implementation = parseGuardrailCheck(r, m, node, path, parameters: ["input", "output"])
        guard let name, let implementation else { return nil }
        return GuardrailMapping(
            name: name, implementation: implementation, runInParallel: m.bool("run_in_parallel") ?? true,
            origin: r.location(node, path))
    }

    /// A guardrail's check, agent-level or tool-level: exactly one of `sql: {query, timeout_ms}`
    /// (a one-statement read-only query over `parameters` and `:task.column`) or `agent: <name>`.
    static func parseGuardrailCheck(
        _ r: YAMLReader, _ m: MapReader, _ node: Node, _ path: String, parameters: [String]
    ) -> GuardrailImplementation? {
        let kinds = ["sql", "agent"].filter { m.has($0) }
        if kinds.count != 1 {
            r.issue(
                node, path,
                kinds.isEmpty
                    ? "missing kind: give exactly one of sql or agent"
                    : "give exactly one of sql or agent, not both")
        }
        let available = (parameters.map { ":" + $0 } + [":task.column"]).joined(separator: ", ")
        switch kinds.first {
        case "sql":
            guard let s = m.map("sql", allowed: ["query", "timeout_ms"]), let q = s.name("query", required: true)
            else { return nil }
            var spec = SQLToolSpec.check(q)
            spec.timeoutMs = s.int("timeout_ms", min: 1) ?? spec.timeoutMs
            let params = spec.namedParameters
            let qNode = s.node("query")
            for arg in params.argumentNames where !parameters.contains(arg) {
                r.issue(
                    qNode, s.path("query"),
                    "SQL parameter ':\(arg)' is not available to a guardrail (use \(available))")
            }
            for bad in params.unknownRoots {
                r.issue(qNode, s.path("query"), "SQL parameter ':\(bad)' has an unknown root (use \(available))")
            }
            if let p = params.positionalParameters.first {
                r.issue(qNode, s.path("query"), "positional parameter '\(p)' is not allowed; use \(available)")
            }
            return .sql(spec)
        case "agent":
            return m.name("agent", required: true).map { .agent($0) }
        default:
            return nil
        }
    }
}
