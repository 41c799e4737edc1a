// The tests' loopback HTTP/1.1 stand-in: scripted responses over bridge's own HTTPServer.
import BridgeCore
import Foundation
import Synchronization

/// A request as `TestHTTPServer` received it.
public typealias TestHTTPRequest = HTTPServerRequest

extension HTTPServerRequest {
    /// The body parsed as JSON, or nil when it is not JSON.
    public var json: JSONValue? { try? JSONValue.parse(Data(body)) }
}

/// What `TestHTTPServer` answers to one request.
public struct TestHTTPResponse: Sendable {
    public var status: Int
    /// Sent as given; `Content-Length` (and `Connection: close` when closing) are added.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Waits this long before answering (for timeout tests); `stop()` cuts it short.
    public var delay: Duration
    /// Closes the connection after this response.
    public var closeConnection: Bool
    /// Closes the connection without answering at all (a transport failure for the client).
    public var disconnect: Bool
    /// Sends the body with `Transfer-Encoding: chunked` (no `Content-Length`), so the client
    /// cannot know its size in advance.
    public var chunked: Bool
    /// Sends the head at once, then the body one byte at a time with this pause between bytes
    /// (a server that trickles, for stall tests); `stop()` cuts it short.
    public var trickle: Duration?
    /// A streamed body (server-sent events): sent with `Transfer-Encoding: chunked`, one chunk
    /// per part, each after its pause; `body` is then ignored. See `sse(_:pause:end:)`.
    public var parts: [Part]?
    /// How a streamed body ends.
    public var end: StreamEnd = .complete

    /// One chunk of a streamed body, sent after `pause`.
    @MemberwiseInit
    public struct Part: Sendable {
        public var pause: Duration = .zero
        public var bytes: [UInt8]
    }

    /// How a streamed body ends: with the terminating chunk (`complete`), by closing the
    /// connection without it (`cut`), or not at all until the client gives up or `stop()`
    /// (`stall`).
    public enum StreamEnd: Sendable { case complete, cut, stall }

    public init(
        status: Int = 200, headers: [(String, String)] = [], body: [UInt8] = [],
        delay: Duration = .zero, closeConnection: Bool = false, disconnect: Bool = false,
        chunked: Bool = false, trickle: Duration? = nil
    ) {
        self.trickle = trickle
        self.status = status
        self.headers = headers.map { (name: $0.0, value: $0.1) }
        self.body = body
        self.delay = delay
        self.closeConnection = closeConnection
        self.disconnect = disconnect
        self.chunked = chunked
    }

    /// A `text/plain` response.
    public static func text(_ text: String, status: Int = 200, headers: [(String, String)] = []) -> TestHTTPResponse {
        TestHTTPResponse(
            status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers, body: Array(text.utf8))
    }

    /// An `application/json` response with `json` encoded compactly.
    public static func json(_ json: JSONValue, status: Int = 200, headers: [(String, String)] = []) -> TestHTTPResponse
    {
        TestHTTPResponse(
            status: status, headers: [("Content-Type", "application/json")] + headers, body: Array(json.compact.utf8))
    }

    /// Closes the connection without a response.
    public static var disconnect: TestHTTPResponse { TestHTTPResponse(disconnect: true) }

    /// Returns a copy that waits `delay` before answering.
    public func delayed(_ delay: Duration) -> TestHTTPResponse {
        var copy = self
        copy.delay = delay
        return copy
    }
}

/// An in-process HTTP/1.1 server on 127.0.0.1 with an ephemeral port, for tests that must
/// not touch the network: it stands in for model APIs, trace ingest and OTLP endpoints.
///
/// bridge's own `HTTPServer` (the one behind `/metrics`), without deadlines or connection
/// limits, each request answered on a thread of its own (the handler may block). Connections
/// may carry many requests (keep-alive). Requests need a `Content-Length` body (or none);
/// `Expect: 100-continue` is honoured; chunked request bodies are answered with 501. Every
/// request is recorded (`requests`) before the handler runs, so tests can assert what was sent.
///
/// ```swift
/// let server = try TestHTTPServer { request in .json(["ok": true]) }
/// defer { server.stop() }
/// ... server.url("/v1/responses") ...
/// ```
public final class TestHTTPServer: Sendable {
    /// Answers one request; runs on a thread of its own and may block.
    public typealias Handler = @Sendable (TestHTTPRequest) -> TestHTTPResponse

    /// The bound port on 127.0.0.1.
    public let port: Int
    private let server: HTTPServer
    private let received: Recorded<TestHTTPRequest>

    /// Largest request head (request line + headers) accepted.
    public static let maxHeadBytes = 64 * 1024

    /// Binds 127.0.0.1 on an ephemeral port and starts accepting.
    public init(handler: @escaping Handler) throws {
        var limits = HTTPServer.Limits()
        limits.requestDeadline = nil
        limits.maxHead = Self.maxHeadBytes
        limits.maxBody = .max
        limits.maxConnections = .max
        let received = Recorded<TestHTTPRequest>([])
        self.received = received
        do {
            server = try HTTPServer(
                host: "127.0.0.1", port: "0", limits: limits, dispatch: .threadPerRequest, threadName: "test-http"
            ) { request, exchange in
                received.items.withLock { $0.append(request) }
                Self.answer(request, with: handler(request), through: exchange)
            }
        } catch {
            throw TestHTTPServerError("bind/listen on 127.0.0.1: \(error.message)")
        }
        port = server.port
    }

    deinit { stop() }

    /// `http://127.0.0.1:<port>`
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// `baseURL` + `path` (which should start with `/`).
    public func url(_ path: String) -> String { baseURL + path }

    /// Every request received so far, in arrival order.
    public var requests: [TestHTTPRequest] { received.items.withLock { $0 } }

    /// How many connections were accepted so far.
    public var connectionCount: Int { server.connectionCount }

    /// Stops accepting, closes every connection and cuts delays short. Safe to call twice.
    public func stop() { server.stop() }

    // MARK: - Canned handlers

    /// Answers with `scripted` in order, one per request, then with `then` for every later one.
    /// For retry tests: `.sequence([.text("", status: 503), .text("", status: 429)], then: { _ in .json([:]) })`.
    public static func sequence(_ scripted: [TestHTTPResponse], then fallback: @escaping Handler) -> Handler {
        let script = Recorded(scripted)
        return { request in
            script.items.withLock { $0.isEmpty ? nil : $0.removeFirst() } ?? fallback(request)
        }
    }

    /// Dispatches on the path (query ignored): `["/v1/traces": handler, ...]`; other paths get
    /// `fallback` (404 by default).
    public static func routes(
        _ table: [String: Handler],
        fallback: @escaping Handler = { _ in .text("not found", status: 404) }
    ) -> Handler {
        { request in (table[request.path] ?? fallback)(request) }
    }

    // MARK: - Answering (on the request's thread)

    private static func answer(
        _ request: TestHTTPRequest, with response: TestHTTPResponse, through exchange: HTTPServerExchange
    ) {
        if response.delay > .zero, !sleep(response.delay, exchange) { return exchange.abort() }
        if response.disconnect { return exchange.abort() }
        let close = response.closeConnection || request.header("Connection")?.lowercased() == "close"
        var message = HTTPServerResponse(
            status: response.status, headers: response.headers, body: response.body, chunked: response.chunked)
        if let parts = response.parts {
            message.body = []
            message.chunked = true
            exchange.send(message.encodedHead(close: close))
            for part in parts where !part.bytes.isEmpty {
                guard sleep(part.pause, exchange) else { return exchange.abort() }
                exchange.send(HTTPServerResponse.chunk(part.bytes))
            }
            switch response.end {
            case .complete:
                exchange.send(HTTPServerResponse.lastChunk)
                exchange.end(close: close)
            case .cut:
                exchange.end(close: true)
            case .stall:
                _ = sleep(.seconds(3600), exchange)
                exchange.abort()
            }
            return
        }
        guard let pause = response.trickle else { return exchange.respond(message, close: close) }
        let bytes = message.encoded(close: close, headOnly: request.method == "HEAD")
        let bodyStart = bytes.count - (request.method == "HEAD" ? 0 : response.body.count)
        exchange.send(Array(bytes[..<bodyStart]))
        for byte in bytes[bodyStart...] {
            guard sleep(pause, exchange) else { return exchange.abort() }
            exchange.send([byte])
        }
        exchange.end(close: close)
    }
    /// Sleeps `duration` in short slices; false when `stop()` interrupted it.
    private static func sleep(_ duration: Duration, _ exchange: HTTPServerExchange) -> Bool {
        let end = ContinuousClock.now + duration
        while ContinuousClock.now < end {
            if exchange.serverStopped { return false }
            Thread.sleep(forTimeInterval: min(0.01, max(0, (end - ContinuousClock.now).inSeconds)))
        }
        return !exchange.serverStopped
    }
}

/// A list shared between threads.
private final class Recorded<Item: Sendable>: Sendable {
    let items: Mutex<[Item]>
    init(_ items: [Item]) { self.items = Mutex(items) }
}

/// Why `TestHTTPServer` could not start.
public struct TestHTTPServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
