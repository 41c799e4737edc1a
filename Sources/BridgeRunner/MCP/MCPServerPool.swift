import BridgeCore
import BridgeHTTP
import BridgeMapping
import FoundationEssentials

/// One MCP server as a worker uses it: started on first use, initialized once, shared by all
/// runs; restarted with `RetryBackoff` after it crashed or its connection broke.
actor MCPServerConnection {
    let config: MCPServerMapping
    let environment: Environment
    let client: HTTPClient?
    private var channel: (any MCPChannel)?
    private var starting: Task<any MCPChannel, any Error>?
    private var cachedTools: [MCPTool]?
    /// Consecutive failed starts or crashes; reset by a successful request.
    private var failures = 0
    private var notBefore: ContinuousClock.Instant?
    /// What the server answered to `initialize`.
    private(set) var negotiatedVersion: String?

    /// Restart backoff: about 0.5 s after the first crash, doubling up to 30 s.
    static let backoffBase = 0.5
    static let backoffCap = 30.0

    init(config: MCPServerMapping, environment: Environment, client: HTTPClient?) {
        self.config = config
        self.environment = environment
        self.client = client
    }

    var timeout: Duration { .milliseconds(config.timeoutMs) }

    func listTools() async throws(MCPError) -> [MCPTool] {
        if config.cacheToolsList, let cachedTools { return cachedTools }
        var tools: [MCPTool] = []
        var cursor: String?
        var pages = 0
        // timeout_ms bounds the whole listing, every page of it (once the server is up).
        _ = try await ready()
        let deadline = ContinuousClock.now + timeout
        repeat {
            pages += 1
            guard pages <= MCPProtocol.maxListPages else {
                throw .protocolViolation(
                    "MCP server '\(config.name)' returned more than \(MCPProtocol.maxListPages) pages of tools")
            }
            let params: JSONValue = cursor.map { ["cursor": .string($0)] } ?? [:]
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { throw .timeout(method: "tools/list", ms: config.timeoutMs) }
            let result = try await request("tools/list", params: params, timeout: left)
            guard let list = result["tools"]?.arrayValue else {
                throw .protocolViolation("MCP server '\(config.name)' answered tools/list without a tools list")
            }
            for t in list {
                guard let name = t["name"]?.stringValue else {
                    throw .protocolViolation("MCP server '\(config.name)' listed a tool without a name")
                }
                var schema = t["inputSchema"] ?? ["type": "object"]
                if schema.objectValue == nil { schema = ["type": "object"] }
                tools.append(MCPTool(name: name, description: t["description"]?.stringValue ?? "", inputSchema: schema))
            }
            cursor = result["nextCursor"]?.stringValue
        } while cursor != nil
        let admitted = tools.filter { config.admits($0.name) }
        if config.cacheToolsList { cachedTools = admitted }
        return admitted
    }

    func call(tool: String, arguments: JSONValue, meta: JSONValue = [:]) async throws(MCPError) -> MCPCallResult {
        var params: [String: JSONValue] = ["name": .string(tool), "arguments": arguments]
        if let m = meta.objectValue, !m.isEmpty { params["_meta"] = meta }
        let result = try await request("tools/call", params: .object(params))
        guard let content = result["content"]?.arrayValue else {
            throw .protocolViolation("MCP server '\(config.name)' answered tools/call without content")
        }
        let structured = result["structuredContent"].flatMap { $0.isNull ? nil : $0 }
        return MCPCallResult(
            content: content, structuredContent: structured, isError: result["isError"]?.boolValue ?? false)
    }

    /// Starts and initializes the server now (what the first request would do).
    func initialize() async throws(MCPError) {
        _ = try await ready()
    }

    /// Closes the session and stops a stdio server; later requests start it again.
    func shutdown() async {
        starting?.cancel()
        let c = channel
        channel = nil
        await c?.close()
    }

    private func request(_ method: String, params: JSONValue, timeout: Duration? = nil) async throws(MCPError)
        -> JSONValue
    {
        let ch = try await ready()
        do {
            let result = try await ch.request(method, params: params, timeout: timeout ?? self.timeout)
            failures = 0
            return result
        } catch {
            if !ch.isAlive { noteCrash(ch) }
            throw error
        }
    }

    /// A dead channel is dropped once; the next start waits for the backoff.
    private func noteCrash(_ ch: any MCPChannel) {
        guard let current = channel, current as AnyObject === ch as AnyObject else { return }
        channel = nil
        cachedTools = nil
        backOff()
    }

    /// One more failure in a row: the next start waits for the backoff.
    private func backOff() {
        failures += 1
        notBefore =
            ContinuousClock.now
            + .seconds(RetryBackoff.delay(attempt: failures, base: Self.backoffBase, cap: Self.backoffCap))
    }

    /// The running, initialized channel: started (or restarted after the backoff) if needed.
    private func ready() async throws(MCPError) -> any MCPChannel {
        if let c = channel {
            if c.isAlive { return c }
            noteCrash(c)
        }
        if let starting {
            do { return try await starting.value } catch { throw Self.mcpError(error) }
        }
        if let notBefore {
            let wait = notBefore - ContinuousClock.now
            if wait > .zero {
                guard wait < timeout else {
                    throw .unavailable(
                        "MCP server '\(config.name)' is restarting after a failure; try again in \(wait.milliseconds / 1000 + 1) s"
                    )
                }
                try? await Task.sleep(for: wait)
            }
        }
        let task = Task { () async throws -> any MCPChannel in try await self.start() }
        starting = task
        defer { starting = nil }
        do {
            let c = try await task.value
            channel = c
            return c
        } catch {
            backOff()
            throw Self.mcpError(error)
        }
    }

    static func mcpError(_ error: any Error) -> MCPError {
        (error as? MCPError) ?? .unavailable("\(error)")
    }

    /// Starts the transport and runs the `initialize` handshake.
    private func start() async throws(MCPError) -> any MCPChannel {
        let ch: any MCPChannel
        switch config.transport {
        case .stdio(let command, let args, let env, let cwd):
            ch = try await MCPStdioChannel.start(
                serverName: config.name, command: command, args: args,
                environment: ChildEnvironment.make(from: environment, allow: env),
                cwd: cwd)
        case .streamableHTTP(let url, let headers):
            guard let client else { throw .unavailable("MCP server '\(config.name)': no HTTP client") }
            var h = HTTPHeaders()
            var secrets: [String] = []
            for (name, template) in headers.sorted(by: { $0.key < $1.key }) {
                do {
                    let (value, used) = try HTTPToolExecutor.expand(
                        template, header: name, tool: "mcp server \(config.name)",
                        environment: environment)
                    h.add(name, value)
                    secrets += used
                } catch {
                    throw .unavailable(error.message)
                }
            }
            ch = MCPHTTPChannel(serverName: config.name, url: url, headers: h, secrets: secrets, client: client)
        }
        do throws(MCPError) {
            let result = try await ch.request(
                "initialize",
                params: [
                    "protocolVersion": .string(MCPProtocol.latestVersion), "capabilities": [:],
                    "clientInfo": MCPProtocol.clientInfo,
                ], timeout: timeout)
            guard let version = result["protocolVersion"]?.stringValue, MCPProtocol.supportedVersions.contains(version)
            else {
                throw .protocolViolation(
                    "MCP server '\(config.name)' answered initialize with protocol version \(result["protocolVersion"]?.compact ?? "none"), which bridge does not support (\(MCPProtocol.supportedVersions.sorted().joined(separator: ", ")))"
                )
            }
            negotiatedVersion = version
            ch.setProtocolVersion(version)
            try await ch.notify("notifications/initialized", params: [:])
            return ch
        } catch {
            await ch.close()
            if case .disconnected = error, let stdio = ch as? MCPStdioChannel {
                throw .unavailable(stdio.exitMessage(during: "initialize"))
            }
            throw error
        }
    }
}

/// The worker's MCP servers (the mappings' `mcp_servers`), each started lazily and shared by
/// every run. `shutdown()` stops them all; call it when the worker is done.
public final class MCPServerPool: MCPToolSource {
    let connections: [String: MCPServerConnection]

    public init(servers: [MCPServerMapping], environment: Environment = .process, client: HTTPClient?) {
        var c: [String: MCPServerConnection] = [:]
        for s in servers { c[s.name] = MCPServerConnection(config: s, environment: environment, client: client) }
        connections = c
    }

    public var isEmpty: Bool { connections.isEmpty }

    private func connection(_ server: String) throws(MCPError) -> MCPServerConnection {
        guard let c = connections[server] else { throw .unavailable("unknown MCP server '\(server)'") }
        return c
    }

    public func tools(server: String) async throws(MCPError) -> [MCPTool] {
        try await connection(server).listTools()
    }

    public func call(server: String, tool: String, arguments: JSONValue) async throws(MCPError) -> MCPCallResult {
        try await connection(server).call(tool: tool, arguments: arguments)
    }

    public func call(server: String, tool: String, arguments: JSONValue, meta: JSONValue) async throws(MCPError)
        -> MCPCallResult
    {
        try await connection(server).call(tool: tool, arguments: arguments, meta: meta)
    }

    public func usesStructuredContent(server: String) -> Bool {
        connections[server]?.config.useStructuredContent ?? false
    }

    /// Starts and initializes the servers named (each bounded by its `timeout_ms`),
    /// concurrently; returns the error of each that could not be. Servers that started stay up
    /// for the runs.
    public func initializeAll(_ servers: [String]) async -> [String: MCPError] {
        await withTaskGroup(of: (String, MCPError?).self) { group in
            for name in Set(servers) {
                guard let c = connections[name] else { continue }
                group.addTask {
                    do throws(MCPError) {
                        try await c.initialize()
                        return (name, nil)
                    } catch { return (name, error) }
                }
            }
            var out: [String: MCPError] = [:]
            for await (name, error) in group { if let error { out[name] = error } }
            return out
        }
    }

    /// Stops every server (stdio children get their input closed, then SIGTERM, then SIGKILL).
    public func shutdown() async {
        await withTaskGroup(of: Void.self) { group in
            for c in connections.values { group.addTask { await c.shutdown() } }
        }
    }
}
