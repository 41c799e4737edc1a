import BridgeCore
@testable import BridgeMapping
@testable import BridgeRunner
import BridgeTraceModel
import Foundation
import Testing

/// Issue 23's probes that need no database: each runs the attack and checks the message.
@Suite struct Hardening3Tests {
    /// MCP servers offering fixed tool lists.
    struct FixedMCP: MCPToolSource {
        var servers: [String: [String]]
        func tools(server: String) async throws(MCPError) -> [MCPTool] {
            (servers[server] ?? []).map { MCPTool(name: $0, description: "", inputSchema: ["type": "object"]) }
        }
        func call(server: String, tool: String, arguments: JSONValue) async throws(MCPError) -> MCPCallResult {
            MCPCallResult(content: [], structuredContent: nil, isError: false)
        }
        func usesStructuredContent(server: String) -> Bool { false }
    }

    static func clash(_ servers: [String: [String]], order: [String]) async -> String {
        var spec = Fixture.team()
        spec.agents["Project Manager"]?.mcpServers = order
        let runner = AgentRunner(model: OfflineModel(), tools: FakeTools(), observer: EventLog(), mcp: FixedMCP(servers: servers))
        let result = await runner.run(spec, taskRow: ["id": "42"])
        #expect(result.status == .failed)
        return result.error?.message ?? ""
    }

    /// Item 8: the collision message says what the MCP tool clashes with.
    @Test func mcpToolNameClashesSayWhatTheyClashWith() async {
        let yaml = await Self.clash(["alpha": ["get_team_roles_and_status"]], order: ["alpha"])
        #expect(yaml == "MCP server 'alpha' offers tools whose names agent Project Manager already uses: "
                + "get_team_roles_and_status (also a YAML tool of the agent)", "\(yaml)")
        let handoff = await Self.clash(["alpha": ["transfer_to_researcher"]], order: ["alpha"])
        #expect(handoff.hasSuffix("transfer_to_researcher (also a handoff of the agent)"), "\(handoff)")
        let servers = await Self.clash(["alpha": ["x", "y"], "beta": ["x"]], order: ["alpha", "beta"])
        #expect(servers == "Duplicate tool names found across MCP servers: x (MCP server 'beta' and 'alpha' of agent Project Manager)",
                "\(servers)")
    }
}
