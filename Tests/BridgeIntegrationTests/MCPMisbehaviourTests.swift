import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeRunner
import BridgeTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// MCP stdio servers that misbehave (issue 23): a grandchild that escapes with setsid() and
/// holds stdout, messages that are not JSON, too deep or too large. Each fails at once with
/// what it is, and leaves no process behind.
@Suite(.serialized, .enabled(if: MCPFixture.isAvailable, "needs BRIDGE_MCP_PYTHON (scripts/test.sh)"))
struct MCPMisbehaviourTests {
    static func forkHolder() throws -> (MCPServerMapping, pidFile: String) {
        let pidFile = TemporaryPath.unique("mcp-holder")
        let config = MCPServerMapping(
            name: "raw",
            transport: .stdio(
                command: MCPFixture.python!,
                args: [MCPFixture.script("raw_server.py"), "fork_holder", pidFile],
                env: [], cwd: nil), timeoutMs: 180_000)
        return (config, pidFile)
    }

    static func grandchild(_ pidFile: String) throws -> Int32 {
        defer { try? FileManager.default.removeItem(atPath: pidFile) }
        return try #require(
            Int32((try? String(contentsOfFile: pidFile, encoding: .utf8)) ?? ""), "no pid in \(pidFile)")
    }

    /// The server runs while its setsid() grandchild holds stdout; closing the pool stops both
    /// (the hang guard is the time limit: the grandchild would hold the pipe for 300 s).
    @Test(.timeLimit(.minutes(3))) func shutdownStopsAGrandchildThatHoldsStdout() async throws {
        let (config, pidFile) = try Self.forkHolder()
        let pool = MCPServerPool(servers: [config], client: nil)
        #expect(try await pool.tools(server: "raw").count == 5)
        let holder = try Self.grandchild(pidFile)
        #expect(MCPFixture.isRunning(holder))
        await pool.shutdown()
        #expect(await MCPFixture.waitGone(holder), "grandchild \(holder) outlived the pool")
    }

    /// The server exits by itself with its grandchild still holding stdout: the call fails with
    /// the server's exit status at once, and the grandchild is stopped.
    @Test(.timeLimit(.minutes(3))) func aServerThatExitsLeavingAGrandchildFailsTheCallAtOnce() async throws {
        let (config, pidFile) = try Self.forkHolder()
        let pool = MCPServerPool(servers: [config], client: nil)
        #expect(try await pool.tools(server: "raw").count == 5)
        let holder = try Self.grandchild(pidFile)
        let error = await MCPFixture.failure(\.isDisconnected, "expected the exit to fail the call") {
            try await pool.call(server: "raw", tool: "exit", arguments: [:])
        }
        if let error {
            #expect(error.description.contains("MCP server 'raw' exited with status 5"), "\(error)")
        }
        #expect(await MCPFixture.waitGone(holder), "grandchild \(holder) outlived its server")
        await pool.shutdown()
    }

    /// Not JSON, or JSON nested deeper than the parser goes: a protocol error naming the server,
    /// at once (the 60 s timeout would say "Timed out").
    @Test(arguments: [("bad_json", "sent invalid JSON (malformed JSON: "), ("deep_json", "nesting too deep")])
    func invalidOrTooDeepJSONIsAProtocolErrorAtOnce(mode: String, expected: String) async throws {
        let pool = MCPServerPool(servers: [MCPFixture.raw(mode)], client: nil)
        let why = await MCPFixture.protocolViolation(listing: "raw", in: pool)
        #expect(why.hasPrefix("MCP server 'raw' sent invalid JSON"), "\(why)")
        #expect(why.contains(expected), "\(why)")
        await pool.shutdown()
    }

    /// What exec does before claiming: a server that cannot start, exits or breaks the
    /// protocol is an error; one that only does not answer in time is a timeout (exec goes on).
    @Test func initializeAllReportsEachServerThatCannotBeInitialized() async throws {
        let gone = MCPServerMapping(
            name: "gone", transport: .stdio(command: "no-such-mcp-server", args: [], env: [], cwd: nil))
        var silent = MCPFixture.raw("silent", timeoutMs: 500)
        silent.name = "silent"
        var old = MCPFixture.raw("old_version")
        old.name = "old"
        let pool = MCPServerPool(servers: [gone, silent, old, MCPFixture.raw("paged")], client: nil)
        let failed = await pool.initializeAll(["gone", "silent", "old", "raw"])
        #expect(failed["gone"] == .unavailable("cannot start MCP server 'gone': command not found: no-such-mcp-server"))
        #expect(failed["silent"] == .timeout(method: "initialize", ms: 500))
        guard case .protocolViolation? = failed["old"] else {
            Issue.record("\(String(describing: failed["old"]))")
            return
        }
        #expect(failed["raw"] == nil)
        // The one that started stays up.
        #expect(try await pool.tools(server: "raw").count == 5)
        await pool.shutdown()
    }

    /// timeout_ms bounds a whole tools/list: three pages 4 s apart do not fit in 10 s, though
    /// each page does (10 s leaves Python room to start on a loaded machine).
    @Test func timeoutBoundsTheWholeListing() async throws {
        let pool = MCPServerPool(servers: [MCPFixture.raw("slow_pages", timeoutMs: 10_000)], client: nil)
        let error = await MCPFixture.failure(\.isTimeout, "expected a timeout") { try await pool.tools(server: "raw") }
        if let error { #expect(error.timedOut?.method == "tools/list") }
        await pool.shutdown()
    }

    /// A message over 16 MiB is reported as what it is, not as the SIGKILL that stopped the server.
    @Test func anOversizedMessageIsReportedAsSuch() async throws {
        let pool = MCPServerPool(servers: [MCPFixture.raw("huge")], client: nil)
        let why = await MCPFixture.protocolViolation(listing: "raw", in: pool)
        #expect(why == "MCP server 'raw' sent a message over 16777216 bytes and was stopped", "\(why)")
        #expect(!why.contains("signal"))
        await pool.shutdown()
    }
}

/// The same over Streamable HTTP: a body that is not JSON, or too deep, is a protocol error at
/// once, naming the server and why.
@Suite struct MCPHTTPMisbehaviourTests {
    @Test(arguments: [
        ("this is not JSON", "malformed JSON"),
        (String(repeating: "[", count: 700) + String(repeating: "]", count: 700), "nesting too deep"),
    ])
    func invalidOrTooDeepJSONOverHTTPIsAProtocolErrorAtOnce(body: String, expected: String) async throws {
        let server = try TestHTTPServer { _ in .text(body, headers: [("Content-Type", "application/json")]) }
        defer { server.stop() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let pool = MCPServerPool(
            servers: [MCPFixture.remote(server.baseURL + "/mcp", timeoutMs: 180_000)], client: client)
        let why = await MCPFixture.protocolViolation(listing: "remote", in: pool)
        #expect(why.hasPrefix("MCP server 'remote' sent a message that is not JSON ("), "\(why)")
        #expect(why.contains(expected), "\(why)")
        await pool.shutdown()
    }
}
