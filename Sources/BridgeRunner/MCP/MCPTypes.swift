import BridgeCore
import Foundation
import Synchronization

/// The Model Context Protocol as bridge's client speaks it (revision 2025-06-18, and the
/// earlier revisions a server may answer with).
public enum MCPProtocol {
    /// The revision bridge asks for in `initialize`.
    public static let latestVersion = "2025-06-18"
    /// Revisions bridge accepts from a server (the server may answer with an older one).
    public static let supportedVersions: Set<String> = ["2025-06-18", "2025-03-26", "2024-11-05"]
    /// The `clientInfo` sent in `initialize`.
    public static let clientInfo: JSONValue = ["name": "bridge", "version": "1"]
    /// Pages of `tools/list` read at most (a server that keeps returning cursors is broken).
    public static let maxListPages = 100
    /// The longest JSON-RPC message accepted from a server.
    public static let maxMessageBytes = 16 * 1024 * 1024
}

/// A tool as an MCP server lists it.
public struct MCPTool: Sendable, Equatable {
    public var name: String
    public var description: String
    public var inputSchema: JSONValue
}

/// The result of `tools/call`.
@MemberwiseInit
public struct MCPCallResult: Sendable, Equatable {
    /// Content blocks: `{type: text|image|audio|resource|resource_link, …}`.
    public var content: [JSONValue]
    public var structuredContent: JSONValue? = nil
    public var isError: Bool = false
}

/// Why an MCP request failed.
public enum MCPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The server answered with a JSON-RPC error.
    case rpc(code: Int, message: String)
    /// No answer within the server's `timeout_ms` (the request was cancelled on the server).
    case timeout(method: String, ms: Int)
    /// The server process exited or the connection broke; the server is restarted with backoff.
    case disconnected(String)
    /// The server could not be started or reached.
    case unavailable(String)
    /// The server broke the protocol (bad JSON, unsupported version, malformed result).
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .rpc(_, let message): return message
        case .timeout(let method, let ms): return "Timed out while waiting for response to \(method). Waited \(ms) ms."
        case .disconnected(let why): return why
        case .unavailable(let why): return why
        case .protocolViolation(let why): return why
        }
    }

    /// Worth trying again later (the run is retried, or the model is told to try again).
    public var retriable: Bool {
        switch self {
        case .rpc, .protocolViolation: return false
        case .timeout, .disconnected, .unavailable: return true
        }
    }
}

/// Where agents find MCP tools: one connection per server, shared by every run of a worker.
public protocol MCPToolSource: Sendable {
    /// The server's tools after its `tool_filter` (read once with `cache_tools_list`).
    func tools(server: String) async throws(MCPError) -> [MCPTool]
    /// Calls `tool` on `server`.
    func call(server: String, tool: String, arguments: JSONValue) async throws(MCPError) -> MCPCallResult
    /// Whether `server` wants `structuredContent` given to the model.
    func usesStructuredContent(server: String) -> Bool
    /// Calls `tool` on `server` with `meta` as the request's `_meta` (bridge's idempotency key).
    func call(server: String, tool: String, arguments: JSONValue, meta: JSONValue) async throws(MCPError)
        -> MCPCallResult
}

extension MCPToolSource {
    /// Sources that take no `_meta` call without it.
    public func call(server: String, tool: String, arguments: JSONValue, meta: JSONValue) async throws(MCPError)
        -> MCPCallResult
    {
        try await call(server: server, tool: tool, arguments: arguments)
    }
}

/// A JSON-RPC connection to one started, not yet initialized MCP server.
protocol MCPChannel: Sendable {
    /// Sends a request and waits for its result (`timeout` bounds the wait; a timed-out or
    /// cancelled request is cancelled on the server with `notifications/cancelled`).
    func request(_ method: String, params: JSONValue, timeout: Duration) async throws(MCPError) -> JSONValue
    func notify(_ method: String, params: JSONValue) async throws(MCPError)
    /// False once the server exited or the connection broke for good.
    var isAlive: Bool { get }
    /// Records the negotiated protocol version (sent as a header over HTTP).
    func setProtocolVersion(_ version: String)
    /// Ends the session: a stdio server's input is closed, then SIGTERM, then SIGKILL.
    func close() async
}

extension MCPChannel {
    /// One request: a new id from `pending`, the JSON-RPC message handed to `send` (with its
    /// id), and the wait for its response. A request abandoned (timed out or cancelled) is
    /// cancelled on the server with `notifications/cancelled`.
    func exchange(
        _ pending: MCPPending, _ method: String, params: JSONValue, timeout: Duration,
        send: @escaping @Sendable (_ id: Int, _ message: JSONValue) async throws(MCPError) -> Void
    ) async throws(MCPError) -> JSONValue {
        let id = pending.allocate()
        let message: JSONValue = [
            "jsonrpc": "2.0", "id": .number(Double(id)), "method": .string(method), "params": params,
        ]
        return try await pending.wait(
            id, method: method, timeout: timeout,
            send: { () async throws(MCPError) in try await send(id, message) },
            onAbandon: { [self] reason in
                Task {
                    try? await notify(
                        "notifications/cancelled",
                        params: ["requestId": .number(Double(id)), "reason": .string(reason)])
                }
            })
    }
}

extension Duration {
    var milliseconds: Int {
        let (s, atto) = components
        return max(0, Int(s) * 1000 + Int(atto / 1_000_000_000_000_000))
    }
}

/// Request ids and pending continuations, shared by the transports.
final class MCPPending: Sendable {
    private struct State {
        var nextId = 0
        var waiting: [Int: CheckedContinuation<JSONValue, any Error>] = [:]
        var failure: MCPError?
    }
    private let state = Mutex(State())

    func allocate() -> Int {
        state.withLock {
            $0.nextId += 1
            return $0.nextId
        }
    }

    /// Registers `id`; fails at once when the channel already failed.
    func register(_ id: Int, _ c: CheckedContinuation<JSONValue, any Error>) {
        let failed: MCPError? = state.withLock {
            if let failure = $0.failure { return failure }
            $0.waiting[id] = c
            return nil
        }
        if let failed { c.resume(throwing: failed) }
    }

    /// Completes `id` (a late answer to a request that already timed out is ignored).
    func complete(_ id: Int, _ result: Result<JSONValue, MCPError>) {
        guard let c = state.withLock({ $0.waiting.removeValue(forKey: id) }) else { return }
        switch result {
        case .success(let v): c.resume(returning: v)
        case .failure(let e): c.resume(throwing: e)
        }
    }

    func isWaiting(_ id: Int) -> Bool { state.withLock { $0.waiting[id] != nil } }

    /// Fails every waiting request, and every later one, with `error`.
    func failAll(_ error: MCPError) {
        let all = state.withLock { state in
            if state.failure == nil { state.failure = error }
            defer { state.waiting = [:] }
            return state.waiting
        }
        for (_, c) in all { c.resume(throwing: error) }
    }

    var failed: MCPError? { state.withLock { $0.failure } }

    /// A response message: its result or its error, for the request it names.
    func deliver(_ message: JSONValue) {
        guard let id = message["id"]?.intValue else { return }
        if let e = message["error"], !e.isNull {
            complete(
                id, .failure(.rpc(code: e["code"]?.intValue ?? 0, message: e["message"]?.stringValue ?? e.compact)))
        } else if let r = message["result"] {
            complete(id, .success(r))
        } else {
            complete(id, .failure(.protocolViolation("a response without result or error")))
        }
    }

    /// Registers `id`, runs `send` (which writes the request, and over HTTP also delivers the
    /// answer), and waits for the answer, failing it with `.timeout` after `timeout` and on
    /// task cancellation; `onAbandon` is then told why (to send `notifications/cancelled`).
    func wait(
        _ id: Int, method: String, timeout: Duration, send: @escaping @Sendable () async throws(MCPError) -> Void,
        onAbandon: @escaping @Sendable (String) -> Void
    ) async throws(MCPError) -> JSONValue {
        // The deadline is a task that sleeps; every way out of this function cancels it, so a
        // request answered in time leaves nothing behind (the sleep ends at once, and with it
        // the task and what it holds).
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            guard !Task.isCancelled, isWaiting(id) else { return }
            complete(id, .failure(.timeout(method: method, ms: timeout.milliseconds)))
            onAbandon("timeout")
        }
        defer { timer.cancel() }
        do {
            return try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<JSONValue, any Error>) in
                    register(id, c)
                    Task { [self] in
                        do throws(MCPError) { try await send() } catch { complete(id, .failure(error)) }
                    }
                }
            } onCancel: { [self] in
                if isWaiting(id) {
                    complete(id, .failure(.disconnected("cancelled")))
                    onAbandon("cancelled")
                }
            }
        } catch let e as MCPError {
            throw e
        } catch {
            throw .protocolViolation("\(error)")
        }
    }
}
