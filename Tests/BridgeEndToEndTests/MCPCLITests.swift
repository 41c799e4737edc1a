import BridgeCore
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

/// MCP servers through the built binary: `mappings check` lists their tools, `exec` traces
/// their calls, `verify` counts them, and a killed worker leaves no server behind.
@Suite(
    .serialized,
    .enabled(
        if: TestDatabase.isAvailable && ProcessInfo.processInfo.environment["BRIDGE_MCP_PYTHON"] != nil,
        "needs BRIDGE_TEST_DATABASE_URL and BRIDGE_MCP_PYTHON (scripts/test.sh)"))
struct MCPCLITests {
    static var python: String { ProcessInfo.processInfo.environment["BRIDGE_MCP_PYTHON"] ?? "python3" }
    static var fixture: String {
        TestDatabase.projectRoot.appendingPathComponent("Tests/Fixtures/mcp/fastmcp_server.py").path
    }

    /// The shipped mappings with `mcp.yaml` replaced by `mcpYAML`, and `agents.yaml` edited by `agentsEdit`.
    static func mappings(_ mcpYAML: String, agentsEdit: @escaping (String) -> String = { $0 }) throws -> URL {
        try TestMappings.copy(prefix: "bridge-mcp", editing: ["mcp.yaml": { _ in mcpYAML }, "agents.yaml": agentsEdit])
    }

    /// The test FastMCP server as `team_tools`, offering only `allowed`.
    static func fixtureServer(allowed: [String]) -> String {
        """
        version: 1
        mcp_servers:
          - name: team_tools
            stdio: {command: "\(python)", args: ["\(fixture)", stdio]}
            tool_filter: {allowed: [\(allowed.joined(separator: ", "))]}
            timeout_ms: 180000
        """
    }

    @Test func checkListsToolsAndReportsMissingAndCollidingNames() async throws {
        let url = try await ExecCLITests.migratedReference()
        let shipped = try await BridgeBinary.run([
            "mappings", "check", "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        #expect(shipped.status == 0, "\(shipped.stderr)")
        #expect(shipped.stdout.contains("1 MCP servers with 2 tools"), "\(shipped.stdout)")

        let broken = try Self.mappings(
            Self.fixtureServer(allowed: ["echo", "ecko"]) + """

                  - name: other
                    stdio: {command: "\(Self.python)", args: ["\(Self.fixture)", stdio]}
                    tool_filter: {allowed: [echo]}
                    timeout_ms: 180000
                  - name: gone
                    stdio: {command: no-such-mcp-server}
                """,
            agentsEdit: {
                // The Researcher uses team_tools; give it the second server too, and a third that cannot start.
                $0.replacingOccurrences(of: "mcp_servers: [team_tools]", with: "mcp_servers: [team_tools, other]")
            })
        defer { try? FileManager.default.removeItem(at: broken) }
        let r = try await BridgeBinary.run(["mappings", "check", "--database-url", url, "--mappings", broken.path])
        #expect(r.status == 2)
        #expect(
            r.stderr.contains(
                "mcp.yaml:5:35: mcp_servers[0].tool_filter.allowed[1]: MCP server 'team_tools' has no tool 'ecko' (did you mean 'echo'?)"
            ), "\(r.stderr)")
        #expect(
            r.stderr.contains("agents.yaml:")
                && r.stderr.contains(
                    "tool 'echo' of MCP server 'other' has the same name as tool 'echo' of MCP server 'team_tools'"),
            "\(r.stderr)")
        #expect(
            r.stderr.contains(
                "cannot list the tools of MCP server 'gone': cannot start MCP server 'gone': command not found: no-such-mcp-server"
            ), "\(r.stderr)")

        let quick = try await BridgeBinary.run(["mappings", "check", "--static-only", "--mappings", broken.path])
        #expect(quick.status == 0, "\(quick.stderr)")
        #expect(quick.stdout.contains("3 MCP servers,"))
    }

    @Test func execTracesMCPCallsAndVerifyCountsThem() async throws {
        let url = try await ExecCLITests.migratedReference()
        let r = try await BridgeBinary.run([
            "exec", "--offline", "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let c = try await TestDatabase.connect(url)
        let listings = try await c.query(
            """
            SELECT s.span_data::text AS d, p.span_data->>'name' AS parent FROM bridge.spans s
            JOIN bridge.spans p ON p.span_id = s.parent_id WHERE s.span_data->>'type' = 'mcp_tools'
            """)
        #expect(!listings.isEmpty)
        for row in listings {
            #expect(
                try JSONValue.parse(row["d"] ?? "") == [
                    "type": "mcp_tools", "server": "team_tools",
                    "result": ["estimate_reading_time", "format_citation"],
                ])
            #expect(row["parent"] == "Researcher")
        }
        let calls = try await c.query(
            """
            SELECT span_data->>'name' AS name, span_data->'mcp_data' AS mcp, span_data->>'output' AS output, error::text AS error
            FROM bridge.spans WHERE span_data->>'type' = 'function' AND span_data->'mcp_data' <> 'null'::jsonb
            """)
        #expect(Set(calls.compactMap { $0["name"] }) == ["estimate_reading_time", "format_citation"])
        for call in calls {
            #expect(call["mcp"] == #"{"server": "team_tools"}"#)
            #expect(call["output"]?.hasPrefix("{'type': 'text', 'text': ") == true, "\(call["output"] ?? "")")
            #expect(call["error"] == nil)
        }
        await c.close()
        let verify = try await BridgeBinary.run([
            "verify", "--database-url", url, "--mappings", BridgeBinary.mappings, "--format", "json",
        ])
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        let report = try JSONValue.parse(verify.stdout)
        let tools = report["checks"]?.arrayValue?.first { $0["id"] == "tools_traced" }
        #expect(tools?["status"] == "pass")
        let timed = report["checks"]?.arrayValue?.first { $0["id"] == "tool_timing" }?["tools"]?.arrayValue ?? []
        #expect(timed.contains { $0["tool"] == "format_citation" })
    }

    @Test func aKilledWorkerLeavesNoServerBehind() async throws {
        let url = try await ExecCLITests.migratedReference()
        let dir = try Self.mappings(Self.fixtureServer(allowed: ["pid"]))
        defer { try? FileManager.default.removeItem(at: dir) }
        for signal in [SIGKILL, SIGTERM] {
            let c = try await TestDatabase.connect(url)
            try await c.simpleQuery("DELETE FROM bridge.spans WHERE span_data->>'name' = 'pid'")
            try await c.simpleQuery(
                "UPDATE tasks SET status = 'pending' WHERE id IN (SELECT id FROM tasks t WHERE t.agent_id IN (SELECT id FROM agents WHERE role = 'Researcher') LIMIT 3)"
            )
            let worker = try BackgroundBridge([
                "exec", "--offline", "--watch", "--database-url", url, "--mappings", dir.path,
            ])
            var serverPid: Int32?
            for _ in 0..<600 where serverPid == nil {
                let out = try await c.query(
                    "SELECT span_data->>'output' AS o FROM bridge.spans WHERE span_data->>'name' = 'pid' LIMIT 1")
                if let o = out.first?["o"], let digits = o.split(whereSeparator: { !$0.isNumber }).first {
                    serverPid = Int32(digits)
                }
                if serverPid == nil { try await Task.sleep(for: .milliseconds(100)) }
            }
            await c.close()
            let pid = try #require(serverPid, "the MCP server never answered: \(worker.output)")
            #expect(kill(pid, 0) == 0, "the server should run while the worker does")
            worker.send(signal)
            _ = await worker.wait(timeout: 60)
            var gone = false
            for _ in 0..<100 where !gone {
                gone = kill(pid, 0) != 0
                if !gone { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(gone, "MCP server \(pid) outlived a worker stopped with signal \(signal)")
        }
    }
}
