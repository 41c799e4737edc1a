import ArgumentParser
import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgePostgres
import BridgeRunner
import Foundation

extension Bridge.Mappings {
    /// `bridge mappings check`.
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the mappings, statically and against the live database, and report every problem.",
            discussion: """
                Reports each problem as file:line:column: key.path: message — unknown keys, unknown agent \
                or tool names, duplicates, bad JSON Schemas, templates, and (unless --static-only) tables \
                and columns that do not exist in the database, and MCP servers: each one in mcp_servers is \
                started or connected to (bounded by its timeout_ms) and its tools listed, so a tool_filter \
                naming a missing tool, an MCP tool whose name OpenAI refuses (^[a-zA-Z0-9_-]{1,64}$), or one \
                whose name collides with a YAML tool, a handoff or another server's tool of the same agent, \
                is reported. When all is well, each MCP server's tools are listed by name.

                Exit status: 0 no problems, 2 problems found or the database is unreachable.

                Reference: docs/mappings.md
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(help: .mappings())
        var mappings: String = "mappings"

        @Flag(help: "Skip the checks against the database and the MCP servers.")
        var staticOnly = false

        func run() async throws {
            try await runReportingErrors {
                let config = try MappingLoader.load(directory: mappings)
                var issues: [MappingIssue] = []
                var mcpTools: [String: [String]] = [:]
                if !staticOnly {
                    issues = try await PostgresConnection.withConnection(
                        connection.config(applicationName: "bridge-mappings")
                    ) { conn in
                        await MappingValidator.checkLive(config, connection: conn)
                    }
                    let client = HTTPClient()
                    let report = await MCPMappingCheck.check(config, environment: .process, client: client)
                    client.shutdown()
                    issues += report.issues
                    mcpTools = report.tools
                }
                if !issues.isEmpty { throw MappingErrors(issues) }
                for warning in SpendChecks.warnings(config) {
                    FileHandle.standardError.write(Data((warning.description + "\n").utf8))
                }
                if !staticOnly,
                    let warning = try await PostgresConnection.withConnection(
                        connection.config(applicationName: "bridge-mappings"),
                        { conn in try await ClaimIndex.warning(config, connection: conn) })
                {
                    FileHandle.standardError.write(Data((warning.description + "\n").utf8))
                }
                let mcp =
                    config.mcpServers.isEmpty
                    ? ""
                    : ", \(config.mcpServers.count) MCP servers"
                        + (staticOnly ? "" : " with \(mcpTools.values.reduce(0) { $0 + $1.count }) tools")
                print(
                    "\(mappings): ok (\(config.agents.count) agents, \(config.tools.count) tools\(mcp), \(config.files.count) files)"
                )
                // Each server's tools as the agents get them (after its tool_filter).
                for server in config.mcpServers where !staticOnly {
                    let tools = mcpTools[server.name] ?? []
                    print(
                        "  MCP server \(server.name): " + (tools.isEmpty ? "no tools" : tools.joined(separator: ", ")))
                }
            }
        }
    }
}
