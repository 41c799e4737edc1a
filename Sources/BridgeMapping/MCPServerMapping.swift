import BridgeCore
import FoundationEssentials
import Yams

/// One entry of `mcp_servers`: an MCP server whose tools agents that name it may call.
///
/// ```yaml
/// mcp_servers:
///   - name: team_tools
///     stdio: {command: python3, args: [tools_server.py], env: [HOME]}
///     # or: streamable_http: {url: "http://127.0.0.1:8765/mcp", headers: {Authorization: "Bearer ${env:TOKEN}"}}
///     tool_filter: {allowed: [get_team_roles_and_status]}   # or blocked: [...]
///     cache_tools_list: true
///     timeout_ms: 30000
/// ```
@MemberwiseInit
public struct MCPServerMapping: Sendable, Equatable {
    public var name: String
    public var transport: MCPTransportMapping
    /// Only these tools (nil: all).
    public var allowedTools: [String]? = nil
    /// Never these tools.
    public var blockedTools: [String] = []
    /// Read the tool list once per worker (the SDK's `cache_tools_list`, default false).
    public var cacheToolsList: Bool = false
    /// Bound on each request (initialize, tools/list, tools/call), and on starting the server.
    public var timeoutMs: Int = MCPServerMapping.defaultTimeoutMs
    /// Give the model `structuredContent` instead of the content blocks when a result has it
    /// (the SDK's `use_structured_content`, default false).
    public var useStructuredContent: Bool = false
    public var origin: MappingLocation = .unknown

    public static let defaultTimeoutMs = 30_000
    /// The longest `timeout_ms` accepted: one hour.
    public static let maxTimeoutMs = 3_600_000

    /// Whether OpenAI accepts `name` as a function name (`^[a-zA-Z0-9_-]{1,64}$`), which an
    /// MCP tool's name becomes.
    public static func isValidToolName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { c in
                (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F
                    || c == 0x2D
            }
    }

    /// The issue with an MCP tool name OpenAI refuses, showing it escaped and shortened.
    public static func invalidToolNameMessage(server: String, tool name: String) -> String {
        var shown = JSONValue.string(String(name.prefix(40))).compact
        if name.count > 40 { shown += "… (\(name.count) characters)" }
        return "MCP server '\(server)' offers a tool named \(shown), which OpenAI refuses as a function name "
            + "(it must match ^[a-zA-Z0-9_-]{1,64}$; leave it out with tool_filter)"
    }

    /// The filter: allowed (when given) and not blocked, as the SDK's static filter.
    public func admits(_ tool: String) -> Bool {
        if let allowedTools, !allowedTools.contains(tool) { return false }
        return !blockedTools.contains(tool)
    }
}

/// How bridge reaches an MCP server.
public enum MCPTransportMapping: Sendable, Equatable {
    /// A child process speaking JSON-RPC on stdin/stdout: no shell, a minimal environment
    /// (PATH, HOME, LANG, TZ) plus the variables named in `env`.
    case stdio(command: String, args: [String], env: [String], cwd: String?)
    /// An MCP endpoint URL; header values may use `${env:VAR}`.
    case streamableHTTP(url: String, headers: [String: String])
}

extension LoadState {
    static func parseMCPServer(_ r: YAMLReader, _ node: Node, _ path: String, baseDirectory: String)
        -> MCPServerMapping?
    {
        guard let m = r.map(node, path, Keys.MCPServer.self) else { return nil }
        let name = m.name(.name)
        if let name, !isAPIName(name) {
            r.issue(m.node(.name), m.path(.name), "server name '\(name)' must match ^[a-zA-Z0-9_-]{1,64}$")
        }
        let kinds = [Keys.MCPServer.stdio, .streamableHTTP].filter { m.has($0) }
        if kinds.count != 1 {
            r.issue(
                node, path,
                kinds.isEmpty
                    ? "missing transport: give exactly one of stdio or streamable_http"
                    : "give exactly one transport, found stdio and streamable_http")
        }
        var transport: MCPTransportMapping?
        if kinds.first == .stdio, let s = m.map(.stdio, Keys.MCPStdio.self) {
            let command = s.name(.command)
            let args = s.strings(.args) ?? []
            let env = s.strings(.env) ?? []
            for (i, v) in env.enumerated() where !ChildEnvironment.isValidName(v) {
                r.issue(s.node(.env), s.path(.env) + "[\(i)]", "'\(v)' is not an environment variable name")
            }
            // A relative cwd is relative to the mappings directory, so the mappings can be run from anywhere.
            var cwd = s.name(.cwd)
            if let c = cwd, !c.hasPrefix("/") { cwd = baseDirectory + "/" + c }
            if let command { transport = .stdio(command: command, args: args, env: env, cwd: cwd ?? baseDirectory) }
        } else if kinds.first == .streamableHTTP, let h = m.map(.streamableHTTP, Keys.MCPHTTP.self) {
            if let url = h.name(.url) {
                if !(url.hasPrefix("http://") || url.hasPrefix("https://")) || URL(string: url)?.host == nil {
                    r.issue(h.node(.url), h.path(.url), "not an http(s) URL: '\(url)'")
                }
                let headers = h.stringMap(.headers) ?? [:]
                transport = .streamableHTTP(url: url, headers: headers)
            }
        }
        var allowed: [String]?
        var blocked: [String] = []
        if let f = m.map(.toolFilter, Keys.MCPToolFilter.self) {
            allowed = f.strings(.allowed)
            blocked = f.strings(.blocked) ?? []
        }
        guard let name, let transport else { return nil }
        var server = MCPServerMapping(
            name: name, transport: transport, allowedTools: allowed, blockedTools: blocked,
            origin: r.location(node, path))
        m.read(into: &server)
        return server
    }
}
