import BridgeCore
import BridgeMapping
import BridgeRunner
import BridgeTestSupport
import Foundation
import Testing

extension MCPFixture {
    static var isV1Available: Bool {
        if pythonV1 != nil { return true }
        if Environment.process["BRIDGE_REQUIRE_MCP"] == "1" {
            fatalError("BRIDGE_REQUIRE_MCP=1 but BRIDGE_MCP_V1_PYTHON is not set; run scripts/test.sh")
        }
        return false
    }
}

/// The example MCP server (examples/team_tools_server.py) and the test server run on the current
/// major version of the official Python SDK (mcp 2.x, `MCPServer`) and on the previous one (1.x,
/// `FastMCP`), each from its cached virtualenv (scripts/mcp-venv.sh 2 and 1).
@Suite(
    .serialized,
    .enabled(
        if: MCPFixture.isAvailable && MCPFixture.isV1Available,
        "needs BRIDGE_MCP_PYTHON and BRIDGE_MCP_V1_PYTHON (scripts/test.sh)"))
struct MCPSDKVersionTests {
    static var examples: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("examples").path
    }

    static func sdkVersion(_ python: String) async throws -> String {
        let script = "import importlib.metadata as m; print(m.version('mcp'))"
        return try await TestProcess.run(python, ["-c", script]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test(arguments: ["2", "1"]) func theExampleServerWorksOnBothMajorVersions(_ major: String) async throws {
        let python = try #require(major == "2" ? MCPFixture.python : MCPFixture.pythonV1)
        #expect(try await Self.sdkVersion(python).hasPrefix(major + "."))
        let example = MCPServerMapping(
            name: "team_tools",
            transport: .stdio(
                command: python, args: [Self.examples + "/team_tools_server.py"], env: [], cwd: Self.examples),
            timeoutMs: 180_000)
        // Generous timeouts: importing the SDK takes seconds of CPU, many times that on a loaded machine.
        let pool = MCPServerPool(
            servers: [example, MCPFixture.fastmcp(timeoutMs: 180_000, python: python)], client: nil)
        #expect(try await pool.tools(server: "team_tools").map(\.name) == ["estimate_reading_time", "format_citation"])
        let citation = try await pool.call(
            server: "team_tools", tool: "format_citation",
            arguments: ["title": "On  MCP", "url": "https://example.org/mcp"])
        #expect(citation.content.first?["text"] == "On MCP. <https://example.org/mcp>")
        // The test server: plain results, structured output, an image, and a tool error.
        #expect(
            try await pool.call(server: "team", tool: "echo", arguments: ["text": "hé"]).content.first?["text"] == "hé")
        let sum = try await pool.call(server: "team", tool: "add", arguments: ["a": 2, "b": 3])
        #expect(sum.structuredContent == ["result": 5])
        let image = try await pool.call(server: "team", tool: "pixel", arguments: [:])
        #expect(image.content.first?["type"] == "image")
        let failed = try await pool.call(server: "team", tool: "fail", arguments: ["reason": "no"])
        #expect(failed.isError)
        #expect(failed.content.first?["text"]?.stringValue?.contains("refused: no") == true)
        await pool.shutdown()
    }
}
