import BridgeCore
import BridgeHTTP
import BridgeMapping
import FoundationEssentials

/// `bridge mappings check` for `mcp_servers`: connects to every server (each bounded by its
/// `timeout_ms`), lists its tools, and reports what the YAML gets wrong against them.
public enum MCPMappingCheck {
    public struct Report: Sendable {
        public var issues: [MappingIssue] = []
        /// Tools per server after its filter (servers that could be listed).
        public var tools: [String: [String]] = [:]
    }

    public static func check(_ config: MappingConfig, environment: Environment, client: HTTPClient) async -> Report {
        var report = Report()
        guard !config.mcpServers.isEmpty else { return report }
        let listed = await listUnfiltered(config.mcpServers, environment: environment, client: client)
        for server in config.mcpServers {
            switch listed[server.name] {
            case .failure(let error)?:
                report.issues.append(
                    MappingIssue(
                        config.location(server.origin),
                        "cannot list the tools of MCP server '\(server.name)': \(error)"))
            case .success(let tools)?:
                checkFilter(of: server, against: tools.map(\.name), config: config, into: &report)
            case nil:
                break
            }
        }
        for agent in config.agents where !agent.mcpServers.isEmpty {
            checkNames(of: agent, config: config, into: &report)
        }
        return report
    }

    /// Every server's tools, unfiltered, listed in parallel.
    private static func listUnfiltered(
        _ servers: [MCPServerMapping], environment: Environment, client: HTTPClient
    ) async -> [String: Result<[MCPTool], MCPError>] {
        await withTaskGroup(of: (String, Result<[MCPTool], MCPError>).self) { group in
            for server in servers {
                var unfiltered = server
                unfiltered.allowedTools = nil
                unfiltered.blockedTools = []
                group.addTask {
                    let pool = MCPServerPool(servers: [unfiltered], environment: environment, client: client)
                    let result: Result<[MCPTool], MCPError>
                    do throws(MCPError) { result = .success(try await pool.tools(server: server.name)) } catch {
                        result = .failure(error)
                    }
                    await pool.shutdown()
                    return (server.name, result)
                }
            }
            var out: [String: Result<[MCPTool], MCPError>] = [:]
            for await (name, r) in group { out[name] = r }
            return out
        }
    }

    /// The server's `tool_filter` names tools it has, and the tools it admits have valid names.
    private static func checkFilter(
        of server: MCPServerMapping, against names: [String], config: MappingConfig, into report: inout Report
    ) {
        for (key, list) in [("allowed", server.allowedTools ?? []), ("blocked", server.blockedTools)] {
            for (i, t) in list.enumerated() where !names.contains(t) {
                var msg = "MCP server '\(server.name)' has no tool '\(t)'"
                if let near = nearest(t, in: names) {
                    msg += " (did you mean '\(near)'?)"
                } else {
                    msg += " (it has: \(names.joined(separator: ", ")))"
                }
                report.issues.append(MappingIssue(config.location(server.origin, "tool_filter.\(key)[\(i)]"), msg))
            }
        }
        report.tools[server.name] = names.filter(server.admits)
        for t in names where server.admits(t) && !MCPServerMapping.isValidToolName(t) {
            report.issues.append(
                MappingIssue(
                    config.location(server.origin),
                    MCPServerMapping.invalidToolNameMessage(server: server.name, tool: t)
                ))
        }
    }

    /// The names an agent offers the model are unique (YAML tools, handoffs, every server's
    /// tools), and `stop_at_tool_names` names only them.
    private static func checkNames(of agent: AgentMapping, config: MappingConfig, into report: inout Report) {
        var owner: [String: String] = [:]
        for t in agent.tools { owner[t] = "the YAML tool '\(t)'" }
        for h in agent.handoffs {
            owner[HandoffSpec.defaultToolName(for: h.agent)] = "the handoff tool to '\(h.agent)'"
        }
        for (i, server) in agent.mcpServers.enumerated() {
            for t in report.tools[server] ?? [] {
                if let other = owner[t] {
                    report.issues.append(
                        MappingIssue(
                            config.location(agent.origin, "mcp_servers[\(i)]"),
                            "tool '\(t)' of MCP server '\(server)' has the same name as \(other)"))
                } else {
                    owner[t] = "tool '\(t)' of MCP server '\(server)'"
                }
            }
        }
        if case .stopAtToolNames(let names) = agent.toolUseBehavior {
            for (i, n) in names.enumerated() where owner[n] == nil {
                report.issues.append(
                    MappingIssue(
                        config.location(agent.origin, "tool_use_behavior.stop_at_tool_names[\(i)]"),
                        "'\(n)' is not one of this agent's tools"))
            }
        }
    }
}
