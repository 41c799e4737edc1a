import BridgeCore
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials
import Yams

// The checks across sections and files once everything is read, and the merged `MappingConfig`.
extension LoadState {
    mutating func finish() -> MappingConfig? {
        if unparsedFiles { return nil }
        missingSectionIssues()
        let names = uniqueNames()
        for a in agents { agentReferenceIssues(a, names) }
        for (l, message) in Self.guardrailIssues(
            guardrails, agents: agents, tools: tools, agentByName: names.agents, loc: loc)
        {
            issue(l, message)
        }
        crossSectionIssues(agentByName: names.agents)
        guard let source, let results else { return nil }
        var config = MappingConfig(
            version: MappingLoader.currentVersion, source: source, results: results,
            tracing: tracing ?? TracingMapping(), handoffsTable: handoffsTable, agents: agents,
            tools: tools, guardrails: guardrails, approvals: approvals, backfill: backfill,
            mcpServers: mcpServers, files: files, locations: locations)
        config.pricing = pricing ?? Pricing()
        config.limits = limits
        config.budgets = budgets
        config.sessions = sessions
        return config
    }

    mutating func issue(_ loc: MappingLocation, _ message: String) { issues.append(MappingIssue(loc, message)) }

    /// Where `path` under `origin` was written (else `origin`).
    func loc(_ origin: MappingLocation, _ path: String) -> MappingLocation {
        let full = origin.path.isEmpty ? path : origin.path + "." + path
        return locations[origin.file + "#" + full] ?? origin
    }

    /// `source`, `results` and an agent must be in some file.
    mutating func missingSectionIssues() {
        let top = MappingLocation(file: files.first ?? "<mappings>", line: 1, column: 1, path: "")
        if source == nil && sections[.source] == nil {
            issue(top, "missing section 'source' (in any mapping file)")
        }
        if results == nil && sections[.results] == nil {
            issue(top, "missing section 'results' (in any mapping file)")
        }
        if agents.isEmpty && !issues.contains(where: { $0.path.hasPrefix("agents") }) {
            issue(top, "no agents defined (in any mapping file)")
        }
    }

    /// Agents, tools and MCP servers by name, with an issue for each duplicate name or match,
    /// and for an MCP tool filter naming a YAML tool.
    mutating func uniqueNames() -> (
        agents: [String: AgentMapping], tools: [String: ToolMapping], servers: [String: MCPServerMapping]
    ) {
        let agentByName = byName(agents, "agent", \.name, \.origin)
        var agentByMatch: [String: AgentMapping] = [:]
        for a in agents {
            if let first = agentByMatch[a.match], first.name != a.name {
                issue(
                    loc(a.origin, a.match == a.name ? "name" : "match"),
                    "agents '\(first.name)' and '\(a.name)' both match '\(a.match)'")
            } else if agentByMatch[a.match] == nil {
                agentByMatch[a.match] = a
            }
        }
        let toolByName = byName(tools, "tool", \.name, \.origin)
        let serverByName = byName(mcpServers, "MCP server", \.name, \.origin)
        for server in mcpServers {
            for (i, t) in (server.allowedTools ?? []).enumerated() where toolByName[t] != nil {
                issue(
                    loc(server.origin, "tool_filter.allowed[\(i)]"),
                    "MCP tool '\(t)' has the same name as the YAML tool defined at \(toolByName[t]!.origin)")
            }
        }
        return (agentByName, toolByName, serverByName)
    }

    /// `items` by name (the first of each name), with an issue at every later one of a name
    /// (`kind`, e.g. "tool", says what they are).
    mutating func byName<Item>(
        _ items: [Item], _ kind: String, _ name: KeyPath<Item, String>, _ origin: KeyPath<Item, MappingLocation>
    ) -> [String: Item] {
        var out: [String: Item] = [:]
        for item in items {
            if let first = out[item[keyPath: name]] {
                issue(
                    loc(item[keyPath: origin], "name"),
                    "duplicate \(kind) name '\(item[keyPath: name])' (first defined at \(first[keyPath: origin]))")
            } else {
                out[item[keyPath: name]] = item
            }
        }
        return out
    }

    /// The MCP servers, handoffs, tools and stop_at_tool_names agent `a` names exist, once each.
    mutating func agentReferenceIssues(
        _ a: AgentMapping,
        _ names: (agents: [String: AgentMapping], tools: [String: ToolMapping], servers: [String: MCPServerMapping])
    ) {
        for (i, name) in a.mcpServers.enumerated() {
            let l = loc(a.origin, "mcp_servers[\(i)]")
            if names.servers[name] == nil {
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
            guard names.agents[h.agent] != nil else {
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
            guard let t = names.tools[name] else {
                var msg = "unknown tool '\(name)'"
                if let near = nearest(name, in: tools.map(\.name)) { msg += " (did you mean '\(near)'?)" }
                issue(l, msg)
                continue
            }
            if a.tools[..<i].contains(name) { issue(l, "tool '\(name)' is listed twice") }
            if handoffToolNames[name] != nil { issue(l, "tool '\(name)' has the same name as a handoff tool") }
            if case .hosted(let h) = t.implementation, a.modelAPI == .chatCompletions {
                issue(
                    l,
                    "hosted tool '\(name)' (\(h.type)) needs model_api responses, but this agent uses chat_completions"
                )
            }
        }
        if case .stopAtToolNames(let stops) = a.toolUseBehavior {
            // With MCP servers, their tools count too: checked against the live servers.
            for (i, n) in stops.enumerated() where !a.tools.contains(n) && a.mcpServers.isEmpty {
                issue(
                    loc(a.origin, "tool_use_behavior.stop_at_tool_names[\(i)]"),
                    "'\(n)' is not one of this agent's tools")
            }
        }
    }

    /// What one section needs of another: approvals for needs_approval tools, a default agent
    /// that exists, agent selection for the handoffs table, a group column for budgets.
    mutating func crossSectionIssues(agentByName: [String: AgentMapping]) {
        if approvals == nil, sections[.approvals] == nil, let t = tools.first(where: { !$0.needsApproval.isNever }) {
            issue(
                loc(t.origin, "needs_approval"),
                "tool '\(t.name)' needs approval, but no 'approvals' section says where requests go")
        }
        if let s = source, let d = s.agentSelection?.defaultAgent, agentByName[d] == nil {
            var msg = "unknown agent '\(d)'"
            if let near = nearest(d, in: agents.map(\.name)) { msg += " (did you mean '\(near)'?)" }
            issue(loc(s.origin, "agent_selection.default_agent"), msg)
        }
        if let h = handoffsTable, source != nil, source?.agentSelection == nil {
            issue(h.origin, "handoffs_table needs source.agent_selection (edges are matched through agent rows)")
        }
        if let s = source, let b = budgets, s.groupColumn == nil {
            issue(
                b.origin,
                "budgets need source.group_column (the task column holding the budget's key, e.g. workspace_id)")
        }
    }

    /// Guardrail names are unique; agents name existing guardrails; an agent guardrail names an
    /// agent whose output_type has a boolean `tripwire_triggered`.
    static func guardrailIssues(
        _ guardrails: [GuardrailMapping], agents: [AgentMapping], tools: [ToolMapping],
        agentByName: [String: AgentMapping],
        loc: (MappingLocation, String) -> MappingLocation
    ) -> [(MappingLocation, String)] {
        var out: [(MappingLocation, String)] = []
        func issue(_ l: MappingLocation, _ m: String) { out.append((l, m)) }
        var byName: [String: GuardrailMapping] = [:]
        for g in guardrails {
            if let first = byName[g.name] {
                issue(loc(g.origin, "name"), "duplicate guardrail name '\(g.name)' (first defined at \(first.origin))")
            } else {
                byName[g.name] = g
            }
            guard case .agent(let agentName) = g.implementation else { continue }
            if let problem = guardrailAgentProblem(agentName, agentByName) { issue(loc(g.origin, "agent"), problem) }
        }
        for t in tools {
            for (key, g) in t.spec.guardrailEntries {
                guard case .agent(let agentName) = g.check.implementation else { continue }
                if let problem = guardrailAgentProblem(agentName, agentByName) {
                    issue(loc(t.origin, "\(key).agent"), problem)
                }
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

    /// What is wrong with `agentName` as a guardrail agent (agent-level or tool-level): it must
    /// exist and answer with a required boolean `tripwire_triggered`. Nil when it does.
    static func guardrailAgentProblem(_ agentName: String, _ agentByName: [String: AgentMapping]) -> String? {
        guard let agent = agentByName[agentName] else {
            var msg = "unknown agent '\(agentName)'"
            if let near = nearest(agentName, in: Array(agentByName.keys).sorted()) {
                msg += " (did you mean '\(near)'?)"
            }
            return msg
        }
        let tripwire = agent.outputType?.schema["properties"]?["tripwire_triggered"]
        let required = (agent.outputType?.schema["required"]?.arrayValue ?? []).contains("tripwire_triggered")
        if tripwire?["type"]?.stringValue != "boolean" || !required {
            return
                "guardrail agent '\(agentName)' needs an output_type with a required boolean property 'tripwire_triggered'"
        }
        return nil
    }
}
