import BridgeCore
import BridgeHTTP
import Foundation
import Synchronization

/// MCP's Streamable HTTP transport over bridge's libcurl client: every message is a POST to
/// the endpoint, answered with `application/json` or with an SSE stream (`text/event-stream`)
/// that carries the response; `Mcp-Session-Id` from the `initialize` answer is sent on every
/// later request, with `MCP-Protocol-Version`. A 404 for a session means it expired: the
/// channel is dead and the server is initialized again. `close` ends the session with DELETE.
final class MCPHTTPChannel: MCPChannel, Sendable {
    let serverName: String
    let url: String
    let headers: HTTPHeaders
    let client: HTTPClient
    /// Header values that came from the environment (never printed).
    let secrets: [String]
    let pending = MCPPending()
    /// The session the server gave, the revision it answered with, and whether it is usable.
    private let state = Mutex((sessionId: String?.none, protocolVersion: String?.none, alive: true))

    init(serverName: String, url: String, headers: HTTPHeaders, secrets: [String], client: HTTPClient) {
        self.serverName = serverName
        self.url = url
        self.headers = headers
        self.secrets = secrets
        self.client = client
    }

    var isAlive: Bool { state.withLock { $0.alive } }

    func setProtocolVersion(_ version: String) { state.withLock { $0.protocolVersion = version } }

    func request(_ method: String, params: JSONValue, timeout: Duration) async throws(MCPError) -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        return try await exchange(
            pending, method, params: params, timeout: timeout,
            send: { [self] (id, message) async throws(MCPError) in
                let response = try await post(message, deadline: deadline)
                if method == "initialize", let sid = response.headers["Mcp-Session-Id"] {
                    state.withLock { $0.sessionId = sid }
                }
                for m in try Self.messages(in: response, serverName: serverName) where m["method"] == nil {
                    pending.deliver(m)
                }
                if pending.isWaiting(id) {
                    pending.complete(
                        id,
                        .failure(.protocolViolation("MCP server '\(serverName)' answered \(method) without a response"))
                    )
                }
            })
    }

    func notify(_ method: String, params: JSONValue) async throws(MCPError) {
        _ = try await post(
            ["jsonrpc": "2.0", "method": .string(method), "params": params],
            deadline: ContinuousClock.now + .seconds(10))
    }

    func close() async {
        let sid = state.withLock { state -> String? in
            state.alive = false
            return state.sessionId
        }
        guard let sid else { return }
        var h = headers
        h.add("Mcp-Session-Id", sid)
        _ = try? await client.execute(
            HTTPRequest(
                method: "DELETE", url: url, headers: h,
                deadline: ContinuousClock.now + .seconds(2)))
    }

    private func post(_ message: JSONValue, deadline: ContinuousClock.Instant) async throws(MCPError) -> HTTPResponse {
        var h = headers
        h.add("Content-Type", "application/json")
        h.add("Accept", "application/json, text/event-stream")
        let (sid, version) = state.withLock { ($0.sessionId, $0.protocolVersion) }
        if let sid { h.add("Mcp-Session-Id", sid) }
        if let version { h.add("MCP-Protocol-Version", version) }
        let request = HTTPRequest(
            method: .post, url: url, headers: h, body: Array(message.compact.utf8), deadline: deadline,
            maxResponseBytes: MCPProtocol.maxMessageBytes)
        let response: HTTPResponse
        do {
            response = try await client.execute(request)
        } catch {
            let text = Redaction.scrub(error.description, secrets: secrets)
            switch error {
            case .timeout: throw .timeout(method: message["method"]?.stringValue ?? "request", ms: 0)
            case .cancelled: throw .disconnected("cancelled")
            default: throw .unavailable("MCP server '\(serverName)' at \(url): \(text)")
            }
        }
        if response.status == 404, sid != nil {
            state.withLock { $0.alive = false }
            throw .disconnected("MCP server '\(serverName)' ended the session (HTTP 404)")
        }
        guard response.isSuccess else {
            let body = Redaction.scrub(String(response.bodyText.prefix(300)), secrets: secrets)
            let error = MCPError.unavailable(
                "MCP server '\(serverName)' at \(url) answered HTTP \(response.status): \(body)")
            if response.status >= 500 || response.status == 401 || response.status == 403 {
                state.withLock { $0.alive = false }
            }
            throw error
        }
        return response
    }

    /// The JSON-RPC messages of a response: one JSON body (an object or a batch), or the
    /// `data` of each SSE event.
    static func messages(in response: HTTPResponse, serverName: String) throws(MCPError) -> [JSONValue] {
        if response.status == 202 || response.body.isEmpty { return [] }
        let type = (response.headers["Content-Type"] ?? "").lowercased()
        var texts: [String] = []
        if type.hasPrefix("text/event-stream") {
            texts = SSEParser.events(in: response.body).filter { ($0.event ?? "").isEmpty || $0.event == "message" }
                .map(\.data)
        } else {
            texts = [response.bodyText]
        }
        var out: [JSONValue] = []
        for text in texts where !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            let v: JSONValue
            do { v = try JSONValue.parse(text) } catch {
                throw .protocolViolation("MCP server '\(serverName)' sent a message that is not JSON (\(error))")
            }
            if let batch = v.arrayValue { out += batch } else { out.append(v) }
        }
        return out
    }
}
