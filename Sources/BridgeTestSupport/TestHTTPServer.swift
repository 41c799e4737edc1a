// Over 400 lines: the tests' loopback HTTP/1.1 server (requests, scripted responses, threads
// per connection), kept in one file so no test depends on an HTTP server library.
import BridgeCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A request as `TestHTTPServer` received it.
public struct TestHTTPRequest: Sendable {
    public var method: String
    /// The request target as sent, query included (`/v1/traces?x=1`).
    public var target: String
    /// Header fields in the order received.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Which accepted connection carried it (1-based, in accept order).
    public var connectionID: Int

    /// The target without its query string.
    public var path: String {
        String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// The body as UTF-8 text.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

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
    public struct Part: Sendable {
        public var pause: Duration
        public var bytes: [UInt8]
        public init(pause: Duration = .zero, bytes: [UInt8]) {
            self.pause = pause
            self.bytes = bytes
        }
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
/// One thread accepts; each connection gets its own thread and may carry many requests
/// (keep-alive). Requests need a `Content-Length` body (or none); `Expect: 100-continue` is
/// honoured; chunked request bodies are answered with 501. Every request is recorded
/// (`requests`) before the handler runs, so tests can assert what was sent.
///
/// ```swift
/// let server = try TestHTTPServer { request in .json(["ok": true]) }
/// defer { server.stop() }
/// ... server.url("/v1/responses") ...
/// ```
public final class TestHTTPServer: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is guarded by `lock`.

    /// Answers one request; runs on the connection's thread and may block.
    public typealias Handler = @Sendable (TestHTTPRequest) -> TestHTTPResponse

    /// The bound port on 127.0.0.1.
    public let port: Int
    private let handler: Handler
    private let listenFD: Int32
    private let lock = NSLock()
    private var stopped = false
    private var openConnections: Set<Int32> = []
    private var received: [TestHTTPRequest] = []
    private var accepted = 0
    private let acceptDone = DispatchSemaphore(value: 0)

    /// Largest request head (request line + headers) accepted.
    public static let maxHeadBytes = 64 * 1024

    /// Binds 127.0.0.1 on an ephemeral port and starts accepting.
    public init(handler: @escaping Handler) throws {
        self.handler = handler
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestHTTPServerError("socket: \(Self.errnoText())") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(fd, 256) == 0 else {
            let text = Self.errnoText()
            close(fd)
            throw TestHTTPServerError("bind/listen on 127.0.0.1: \(text)")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            close(fd)
            throw TestHTTPServerError("getsockname: \(Self.errnoText())")
        }
        self.listenFD = fd
        self.port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in self.acceptLoop() }
        thread.name = "test-http-accept"
        thread.start()
    }

    deinit { stop() }

    /// `http://127.0.0.1:<port>`
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// `baseURL` + `path` (which should start with `/`).
    public func url(_ path: String) -> String { baseURL + path }

    /// Every request received so far, in arrival order.
    public var requests: [TestHTTPRequest] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    /// How many connections were accepted so far.
    public var connectionCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return accepted
    }

    /// Stops accepting, closes every connection and cuts delays short. Safe to call twice.
    public func stop() {
        lock.lock()
        if stopped {
            lock.unlock()
            return
        }
        stopped = true
        shutdown(listenFD, Int32(SHUT_RDWR))
        for fd in openConnections { shutdown(fd, Int32(SHUT_RDWR)) }
        lock.unlock()
        _ = acceptDone.wait(timeout: .now() + 5)
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    // MARK: - Canned handlers

    /// Answers with `scripted` in order, one per request, then with `then` for every later one.
    /// For retry tests: `.sequence([.text("", status: 503), .text("", status: 429)], then: { _ in .json([:]) })`.
    public static func sequence(_ scripted: [TestHTTPResponse], then fallback: @escaping Handler) -> Handler {
        let script = Script(scripted)
        return { request in script.next() ?? fallback(request) }
    }

    /// Dispatches on the path (query ignored): `["/v1/traces": handler, ...]`; other paths get
    /// `fallback` (404 by default).
    public static func routes(
        _ table: [String: Handler],
        fallback: @escaping Handler = { _ in .text("not found", status: 404) }
    ) -> Handler {
        { request in (table[request.path] ?? fallback)(request) }
    }

    private final class Script: @unchecked Sendable {
        // @unchecked Sendable: `items` is guarded by `lock`.
        private let lock = NSLock()
        private var items: [TestHTTPResponse]
        init(_ items: [TestHTTPResponse]) { self.items = items }
        func next() -> TestHTTPResponse? {
            lock.lock()
            defer { lock.unlock() }
            return items.isEmpty ? nil : items.removeFirst()
        }
    }

    // MARK: - Threads

    private func acceptLoop() {
        defer {
            close(listenFD)
            acceptDone.signal()
        }
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                return
            }
            lock.lock()
            if stopped {
                lock.unlock()
                close(fd)
                return
            }
            accepted += 1
            let id = accepted
            openConnections.insert(fd)
            lock.unlock()
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let thread = Thread { [self] in self.serve(fd: fd, connectionID: id) }
            thread.name = "test-http-conn-\(id)"
            thread.stackSize = 512 * 1024
            thread.start()
        }
    }

    private func serve(fd: Int32, connectionID: Int) {
        defer {
            lock.lock()
            openConnections.remove(fd)
            close(fd)
            lock.unlock()
        }
        var buffer: [UInt8] = []
        while !isStopped {
            guard let request = readRequest(fd: fd, buffer: &buffer, connectionID: connectionID) else { return }
            lock.lock()
            received.append(request)
            lock.unlock()
            let response = handler(request)
            if response.delay > .zero, !sleep(response.delay) { return }
            if response.disconnect { return }
            let clientCloses = request.header("Connection")?.lowercased() == "close"
            let close = response.closeConnection || clientCloses
            if let parts = response.parts {
                var head = response
                head.body = []
                head.chunked = true
                let headBytes = encode(head, method: request.method, close: close)
                guard writeAll(fd: fd, bytes: Array(headBytes.dropLast(5))) else { return }  // no "0\r\n\r\n"
                for part in parts where !part.bytes.isEmpty {
                    guard sleep(part.pause) else { return }
                    let chunk = Array((String(part.bytes.count, radix: 16) + "\r\n").utf8) + part.bytes + [13, 10]
                    guard writeAll(fd: fd, bytes: chunk) else { return }
                }
                switch response.end {
                case .complete:
                    guard writeAll(fd: fd, bytes: Array("0\r\n\r\n".utf8)), !close else { return }
                    continue
                case .cut:
                    return
                case .stall:
                    _ = sleep(.seconds(3600))
                    return
                }
            }
            let bytes = encode(response, method: request.method, close: close)
            if let pause = response.trickle {
                let bodyStart = bytes.count - response.body.count
                guard writeAll(fd: fd, bytes: Array(bytes[..<bodyStart])) else { return }
                for byte in bytes[bodyStart...] {
                    guard sleep(pause), writeAll(fd: fd, bytes: [byte]) else { return }
                }
                if close { return }
                continue
            }
            guard writeAll(fd: fd, bytes: bytes), !close else { return }
        }
    }

    /// Reads one request; nil on EOF, error, stop, or a request this server refuses (after
    /// answering it).
    private func readRequest(fd: Int32, buffer: inout [UInt8], connectionID: Int) -> TestHTTPRequest? {
        let terminator: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while true {
            if let found = Self.find(terminator, in: buffer) {
                headEnd = found
                break
            }
            if buffer.count > Self.maxHeadBytes {
                _ = writeAll(
                    fd: fd, bytes: encode(.text("request head too large", status: 431), method: "GET", close: true))
                return nil
            }
            guard readMore(fd: fd, into: &buffer) else { return nil }
        }
        guard let headEnd else { return nil }
        let head = String(decoding: buffer[..<headEnd], as: UTF8.self)
        buffer.removeFirst(headEnd + 4)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count == 3 else {
            _ = writeAll(fd: fd, bytes: encode(.text("bad request line", status: 400), method: "GET", close: true))
            return nil
        }
        var headers: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append(
                (
                    name: String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                    value: String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)
                ))
        }
        var request = TestHTTPRequest(
            method: String(requestLine[0]), target: String(requestLine[1]),
            headers: headers, body: [], connectionID: connectionID)
        if request.header("Transfer-Encoding") != nil {
            _ = writeAll(
                fd: fd,
                bytes: encode(
                    .text("chunked request bodies are not supported", status: 501), method: "GET", close: true))
            return nil
        }
        let length = request.header("Content-Length").flatMap { Int($0) } ?? 0
        if length > 0, request.header("Expect")?.lowercased() == "100-continue" {
            guard writeAll(fd: fd, bytes: Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)) else { return nil }
        }
        while buffer.count < length {
            guard readMore(fd: fd, into: &buffer) else { return nil }
        }
        request.body = Array(buffer[..<length])
        buffer.removeFirst(length)
        return request
    }

    private func readMore(fd: Int32, into buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                buffer.append(contentsOf: chunk[..<n])
                return true
            }
            if n < 0, errno == EINTR { continue }
            return false
        }
    }

    private func writeAll(fd: Int32, bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw in
                send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                offset += n
            } else if n < 0, errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    private func encode(_ response: TestHTTPResponse, method: String, close: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\n"
        for (name, value) in response.headers
        where !["content-length", "transfer-encoding"].contains(name.lowercased()) {
            head += "\(name): \(value)\r\n"
        }
        head += response.chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: \(response.body.count)\r\n"
        if close { head += "Connection: close\r\n" }
        head += "\r\n"
        var bytes = Array(head.utf8)
        guard method != "HEAD" else { return bytes }
        if response.chunked {
            var offset = 0
            while offset < response.body.count {
                let end = min(offset + 16 * 1024, response.body.count)
                bytes += Array((String(end - offset, radix: 16) + "\r\n").utf8)
                bytes += response.body[offset..<end]
                bytes += [13, 10]
                offset = end
            }
            bytes += Array("0\r\n\r\n".utf8)
        } else {
            bytes += response.body
        }
        return bytes
    }

    /// Sleeps `duration` in short slices; false when `stop()` interrupted it.
    private func sleep(_ duration: Duration) -> Bool {
        let end = ContinuousClock.now + duration
        while ContinuousClock.now < end {
            if isStopped { return false }
            let left = end - ContinuousClock.now
            Thread.sleep(
                forTimeInterval: min(
                    0.01, max(0, Double(left.components.seconds) + Double(left.components.attoseconds) / 1e18)))
        }
        return !isStopped
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return i }
        }
        return nil
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 408: return "Request Timeout"
        case 409: return "Conflict"
        case 413: return "Payload Too Large"
        case 422: return "Unprocessable Entity"
        case 429: return "Too Many Requests"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        default: return "Status"
        }
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }
}

/// Why `TestHTTPServer` could not start.
public struct TestHTTPServerError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
