import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeRunner
import BridgeTracing
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension MCPError {
    var isProtocolViolation: Bool { if case .protocolViolation = self { true } else { false } }
    var isDisconnected: Bool { if case .disconnected = self { true } else { false } }
    var isTimeout: Bool { timedOut != nil }
    /// The request that timed out and its limit, when this is a timeout.
    var timedOut: (method: String, ms: Int)? {
        if case .timeout(let method, let ms) = self { (method, ms) } else { nil }
    }
}

/// A Python with the official MCP SDK (scripts/mcp-venv.sh; scripts/test.sh exports it).
enum MCPFixture {
    static var python: String? { Environment.process["BRIDGE_MCP_PYTHON"] }

    static var isAvailable: Bool {
        if python != nil { return true }
        if Environment.process["BRIDGE_REQUIRE_MCP"] == "1" {
            fatalError("BRIDGE_REQUIRE_MCP=1 but BRIDGE_MCP_PYTHON is not set; run scripts/test.sh")
        }
        return false
    }

    static func script(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/mcp/\(name)").path
    }

    /// The FastMCP test server over stdio.
    /// A Python with the previous major version of the SDK (mcp 1.x), which the example supports too.
    static var pythonV1: String? { Environment.process["BRIDGE_MCP_V1_PYTHON"] }

    static func fastmcp(
        _ name: String = "team", allowed: [String]? = nil, blocked: [String] = [], env: [String] = [],
        timeoutMs: Int = 180_000, cache: Bool = false, python: String? = nil
    ) -> MCPServerMapping {
        MCPServerMapping(
            name: name,
            transport: .stdio(
                command: python ?? Self.python!, args: [script("fastmcp_server.py"), "stdio"],
                env: env, cwd: nil),
            allowedTools: allowed, blockedTools: blocked, cacheToolsList: cache, timeoutMs: timeoutMs)
    }

    // Generous timeouts: starting Python and importing the SDK takes seconds of CPU, many times
    // that while the whole suite loads the machine; they only matter when a test fails.
    static func raw(_ mode: String, timeoutMs: Int = 180_000) -> MCPServerMapping {
        MCPServerMapping(
            name: "raw", transport: .stdio(command: python!, args: [script("raw_server.py"), mode], env: [], cwd: nil),
            timeoutMs: timeoutMs)
    }

    /// A server over Streamable HTTP at `url`, named "remote".
    static func remote(
        _ url: String, headers: [String: String] = [:], allowed: [String]? = nil, timeoutMs: Int
    ) -> MCPServerMapping {
        MCPServerMapping(
            name: "remote", transport: .streamableHTTP(url: url, headers: headers), allowedTools: allowed,
            timeoutMs: timeoutMs)
    }

    static func isRunning(_ pid: Int32) -> Bool { kill(pid, 0) == 0 }

    /// The error `body` fails with, when it is of the expected kind (e.g. `\.isProtocolViolation`);
    /// otherwise nil, with an issue recorded (`expected` says what should have failed).
    static func failure<T>(
        _ kind: KeyPath<MCPError, Bool>, _ expected: Comment, sourceLocation: SourceLocation = #_sourceLocation,
        _ body: () async throws -> T
    ) async -> MCPError? {
        do {
            _ = try await body()
            Issue.record(expected, sourceLocation: sourceLocation)
        } catch {
            if let error = error as? MCPError, error[keyPath: kind] { return error }
            Issue.record("unexpected \(error) (\(expected))", sourceLocation: sourceLocation)
        }
        return nil
    }

    /// Lists `server`'s tools in `pool`, expecting a protocol violation (never retriable); its
    /// message, or "" with an issue recorded.
    static func protocolViolation(
        listing server: String, in pool: MCPServerPool, sourceLocation: SourceLocation = #_sourceLocation
    ) async -> String {
        let error = await failure(\.isProtocolViolation, "expected a protocol error", sourceLocation: sourceLocation) {
            try await pool.tools(server: server)
        }
        #expect(error?.retriable != true, sourceLocation: sourceLocation)
        return error?.description ?? ""
    }

    static func waitGone(_ pid: Int32) async -> Bool {
        for _ in 0..<100 {
            if !isRunning(pid) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }
}

@Suite(.serialized, .enabled(if: MCPFixture.isAvailable, "needs BRIDGE_MCP_PYTHON (scripts/test.sh)"))
struct MCPStdioTests {
    @Test func listsAndCallsFastMCPTools() async throws {
        let pool = MCPServerPool(servers: [MCPFixture.fastmcp()], environment: .process, client: nil)
        let tools = try await pool.tools(server: "team")
        #expect(Set(tools.map(\.name)).isSuperset(of: ["echo", "add", "pixel", "fail", "crash", "sleep"]))
        let echo = try #require(tools.first { $0.name == "echo" })
        #expect(echo.description == "Returns the text unchanged.")
        #expect(echo.inputSchema["properties"]?["text"]?["type"] == "string")
        // FastMCP's schemas are not strict-compatible (no additionalProperties: false): sent non-strict, as given.
        let (parameters, strict) = MCPToolOutput.functionParameters(echo)
        #expect(!strict)
        #expect(parameters == echo.inputSchema)

        let said = try await pool.call(server: "team", tool: "echo", arguments: ["text": "héllo 'x'"])
        #expect(said.isError == false)
        #expect(said.content.first?["text"] == "héllo 'x'")
        let converted = MCPToolOutput.convert(said, useStructuredContent: false)
        #expect(converted.modelOutput == [["type": "input_text", "text": "héllo 'x'"]])
        #expect(converted.spanOutput == #"{'type': 'text', 'text': "héllo 'x'"}"#)

        let sum = try await pool.call(server: "team", tool: "add", arguments: ["a": 2, "b": 3])
        #expect(sum.content.first?["text"] == "5")
        #expect(sum.structuredContent == ["result": 5])
        #expect(MCPToolOutput.convert(sum, useStructuredContent: true).modelOutput == #"{"result": 5}"#)

        let image = try await pool.call(server: "team", tool: "pixel", arguments: [:])
        let imageOut = MCPToolOutput.convert(image, useStructuredContent: false)
        #expect(imageOut.modelOutput.arrayValue?.first?["type"] == "input_image")
        #expect(
            imageOut.modelOutput.arrayValue?.first?["image_url"]?.stringValue?.hasPrefix("data:image/png;base64,iVBOR")
                == true)

        let failed = try await pool.call(server: "team", tool: "fail", arguments: ["reason": "no"])
        #expect(failed.isError)
        #expect(failed.content.first?["text"]?.stringValue?.contains("refused: no") == true)
        await pool.shutdown()
    }

    @Test func childGetsOnlyTheMinimalEnvironmentAndTheAllowlist() async throws {
        var env = Environment.process.values
        env["TEAM_TOKEN"] = "t0ken"
        env["NOT_ALLOWED_SECRET"] = "s3cret"
        let pool = MCPServerPool(
            servers: [MCPFixture.fastmcp(env: ["TEAM_TOKEN"])], environment: Environment(env), client: nil)
        for (name, expected) in [("TEAM_TOKEN", "t0ken"), ("NOT_ALLOWED_SECRET", "<unset>")] {
            let r = try await pool.call(server: "team", tool: "env_probe", arguments: ["name": .string(name)])
            #expect(r.content.first?["text"]?.stringValue == expected)
        }
        await pool.shutdown()
    }

    @Test func filtersAndPagination() async throws {
        let allowed = MCPServerPool(servers: [MCPFixture.fastmcp(allowed: ["echo", "add", "nope"])], client: nil)
        #expect(try await allowed.tools(server: "team").map(\.name).sorted() == ["add", "echo"])
        await allowed.shutdown()
        let blocked = MCPServerPool(servers: [MCPFixture.fastmcp(blocked: ["crash"])], client: nil)
        #expect(try await !blocked.tools(server: "team").map(\.name).contains("crash"))
        await blocked.shutdown()

        let paged = MCPServerPool(servers: [MCPFixture.raw("paged")], client: nil)
        let tools = try await paged.tools(server: "raw")
        #expect(tools.map(\.name) == ["t0", "t1", "t2", "t3", "t4"])
        // These schemas meet the strict rules as given: sent strict.
        #expect(MCPToolOutput.functionParameters(tools[0]).strict)
        await paged.shutdown()
    }

    @Test func crashMidCallFailsTheCallAndTheServerRestarts() async throws {
        let pool = MCPServerPool(servers: [MCPFixture.fastmcp()], client: nil)
        let first = try await pool.call(server: "team", tool: "pid", arguments: [:])
        let firstPid = try #require(Int32(first.content.first?["text"]?.stringValue ?? ""))
        let error = await MCPFixture.failure(\.isDisconnected, "expected the crash to fail the call") {
            try await pool.call(server: "team", tool: "crash", arguments: [:])
        }
        if let error {
            #expect(error.description.contains("exited with status 3"))
            #expect(error.retriable)
        }
        #expect(await MCPFixture.waitGone(firstPid))
        // The next call starts the server again (after the backoff).
        let again = try await pool.call(server: "team", tool: "pid", arguments: [:])
        let secondPid = try #require(Int32(again.content.first?["text"]?.stringValue ?? ""))
        #expect(secondPid != firstPid)
        await pool.shutdown()
        #expect(await MCPFixture.waitGone(secondPid))
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        let silent = MCPServerPool(servers: [MCPFixture.raw("silent", timeoutMs: 500)], client: nil)
        let never = await MCPFixture.failure(\.isTimeout, "expected a timeout") {
            try await silent.tools(server: "raw")
        }
        if let never {
            #expect(never.timedOut?.method == "initialize")
            #expect(never.retriable)
        }
        await silent.shutdown()

        // Python's start-up counts against the first request's timeout: leave it room under load.
        let hanging = MCPServerPool(servers: [MCPFixture.raw("hang_calls", timeoutMs: 3_000)], client: nil)
        #expect(try await hanging.tools(server: "raw").count == 5)
        let hung = await MCPFixture.failure(\.isTimeout, "expected a timeout") {
            try await hanging.call(server: "raw", tool: "t0", arguments: ["x": "1"])
        }
        if let hung {
            #expect(hung.timedOut?.method == "tools/call")
            #expect(hung.timedOut?.ms == 3_000)
        }
        // The server is still alive: listing works without a restart.
        #expect(try await hanging.tools(server: "raw").count == 5)
        await hanging.shutdown()
    }

    @Test func unsupportedProtocolVersionIsRefused() async throws {
        let pool = MCPServerPool(servers: [MCPFixture.raw("old_version")], client: nil)
        let why = await MCPFixture.protocolViolation(listing: "raw", in: pool)
        #expect(why.contains("1999-01-01"), "\(why)")
        await pool.shutdown()
    }

    @Test func missingCommandIsUnavailable() async throws {
        let config = MCPServerMapping(
            name: "gone", transport: .stdio(command: "no-such-mcp-server", args: [], env: [], cwd: nil))
        let pool = MCPServerPool(servers: [config], client: nil)
        await #expect(
            throws: MCPError.unavailable("cannot start MCP server 'gone': command not found: no-such-mcp-server")
        ) {
            _ = try await pool.tools(server: "gone")
        }
    }

    @Test func runnerTracesMCPToolsLikeTheSDK() async throws {
        let pool = MCPServerPool(
            servers: [MCPFixture.fastmcp(allowed: ["echo", "add", "fail"], cache: true)], client: nil)
        var spec = runnerSpec(tools: [:], pmTools: [])
        spec.agents["Project Manager"]?.mcpServers = ["team"]
        let recorder = TraceRecorder(spec: spec, sinks: [], includeSensitiveData: true)
        let result = await AgentRunner(
            model: OfflineModel(), tools: CompositeToolExecutor(), observer: recorder, mcp: pool
        )
        .run(spec, taskRow: [:])
        #expect(result.status == .completed)
        let spans = await recorder.recorded
        let listing = try #require(spans.first { $0.spanData["type"] == "mcp_tools" })
        #expect(listing.spanData == ["type": "mcp_tools", "server": "team", "result": ["echo", "add", "fail"]])
        let agent = try #require(
            spans.first { $0.spanData["type"] == "agent" && $0.spanData["name"] == "Project Manager" })
        #expect(listing.parentId == agent.id)
        #expect(agent.spanData["tools"] == ["echo", "add", "fail"])
        let calls = spans.filter { $0.spanData["type"] == "function" }
        #expect(Set(calls.compactMap { $0.spanData["name"]?.stringValue }) == ["echo", "add", "fail"])
        for call in calls {
            #expect(call.spanData["mcp_data"] == ["server": "team"])
            #expect(call.spanData["input"]?.stringValue != nil)
            #expect(call.spanData["output"]?.stringValue?.hasPrefix("{'type': 'text', 'text': ") == true)
        }
        let fail = try #require(calls.first { $0.spanData["name"] == "fail" })
        #expect(fail.error?["message"] == "Error running tool (non-fatal)")
        // The model got the content parts.
        let outputs = result.transcript.filter { $0["type"] == "function_call_output" }
        #expect(outputs.contains { $0["output"]?.arrayValue?.first?["type"] == "input_text" })
        await pool.shutdown()
    }
}

@Suite(.serialized, .enabled(if: MCPFixture.isAvailable, "needs BRIDGE_MCP_PYTHON (scripts/test.sh)"))
struct MCPStreamableHTTPTests {
    /// Starts the FastMCP server over Streamable HTTP on a free loopback port.
    func startServer() async throws -> (ChildProcess, Int) {
        let port = try Self.freePort()
        let python = MCPFixture.python!
        let p = ChildProcess(
            ChildProcess.Command(
                path: python, argv: [python, MCPFixture.script("fastmcp_server.py"), "http", String(port)],
                environment: ProcessInfo.processInfo.environment),
            handlers: ChildProcess.Handlers())
        try await p.start()
        let client = HTTPClient()
        defer { client.shutdown() }
        // The mcp package's import alone takes seconds of CPU: on a loaded machine, far more.
        let deadline = ContinuousClock.now + .seconds(180)
        while ContinuousClock.now < deadline {
            // Ready when uvicorn itself answers (not some other test's listener on a reused port).
            if p.termination == nil,
                let r = try? await client.execute(
                    HTTPRequest(
                        method: .get, url: "http://127.0.0.1:\(port)/mcp",
                        deadline: .now + .seconds(1))),
                r.headers["server"] == "uvicorn"
            {
                return (p, port)
            }
            if p.termination != nil { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        p.kill()
        throw MCPError.unavailable("the FastMCP HTTP server did not start on port \(port) within 180 s")
    }

    /// A port the kernel just handed out (bound to port 0, then released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { ptr in
            ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard bound else { throw MCPError.unavailable("no free port") }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    @Test func listsAndCallsOverStreamableHTTPWithASession() async throws {
        let (server, port) = try await startServer()
        defer { server.kill() }
        let client = HTTPClient()
        defer { client.shutdown() }
        var env = Environment.process.values
        env["MCP_TEST_TOKEN"] = "tok-123"
        let config = MCPFixture.remote(
            "http://127.0.0.1:\(port)/mcp", headers: ["Authorization": "Bearer ${env:MCP_TEST_TOKEN}"],
            allowed: ["echo", "add", "sleep"], timeoutMs: 120_000)
        let pool = MCPServerPool(servers: [config], environment: Environment(env), client: client)
        #expect(try await pool.tools(server: "remote").map(\.name).sorted() == ["add", "echo", "sleep"])
        let sum = try await pool.call(server: "remote", tool: "add", arguments: ["a": 40, "b": 2])
        #expect(sum.content.first?["text"] == "42")
        // Calls share one session and may overlap.
        async let a = pool.call(server: "remote", tool: "echo", arguments: ["text": "a"])
        async let b = pool.call(server: "remote", tool: "echo", arguments: ["text": "b"])
        let (ra, rb) = try await (a, b)
        #expect(ra.content.first?["text"] == "a" && rb.content.first?["text"] == "b")
        await pool.shutdown()
    }

    @Test func slowHTTPCallTimesOut() async throws {
        let (server, port) = try await startServer()
        defer { server.kill() }
        let client = HTTPClient()
        defer { client.shutdown() }
        let pool = MCPServerPool(
            servers: [MCPFixture.remote("http://127.0.0.1:\(port)/mcp", timeoutMs: 1_000)], client: client)
        let error = await #expect(throws: MCPError.self) {
            try await pool.call(server: "remote", tool: "sleep", arguments: ["seconds": 30])
        }
        #expect(error?.retriable == true, "expected a timeout")
        await pool.shutdown()
    }

    @Test func unreachableServerIsUnavailable() async throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        let pool = MCPServerPool(
            servers: [MCPFixture.remote("http://127.0.0.1:9/mcp", timeoutMs: 2_000)], client: client)
        // Refused at once normally; under heavy load the request's timer may win.
        let error = await #expect(throws: MCPError.self) { try await pool.tools(server: "remote") }
        #expect(error?.retriable == true)
    }
}
