import BridgeCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `--metrics-addr` could not be served (bad address, port in use).
public struct MetricsServerError: InputError {
    public var message: String
    init(_ message: String) { self.message = message }
}

/// A minimal HTTP/1.1 listener for Prometheus scrapes: `GET /metrics` answers with `body()`
/// in the text exposition format; `/` points there; anything else is 404 (405 for methods
/// other than GET and HEAD). One connection at a time, `Connection: close`, request heads up
/// to 8 KiB, 5 s to send one: a scrape endpoint, not a web server.
///
/// Every blocking socket call runs on the server's own thread, never on Swift's cooperative
/// pool. `stop()` closes the socket and ends the thread.
public final class MetricsServer: @unchecked Sendable {
    // @unchecked Sendable: `stopped` is guarded by `lock`; the rest is immutable.
    public typealias Body = @Sendable () -> [UInt8]

    /// `host:port` actually bound (the port filled in when 0 was asked for).
    public let address: String
    private let listenFD: Int32
    private let body: Body
    private let lock = NSLock()
    private var stopped = false

    static let maxHead = 8 * 1024

    /// Binds `hostPort` (`127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`, `localhost:0`) and
    /// starts serving.
    public init(hostPort: String, body: @escaping Body) throws {
        let (host, port) = try Self.split(hostPort)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, port, &hints, &list)
        guard rc == 0, let first = list else {
            throw MetricsServerError("--metrics-addr \(hostPort): cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var bound: Int32 = -1
        var info: UnsafeMutablePointer<addrinfo>? = first
        while let ai = info {
            let fd = socket(ai.pointee.ai_family, ai.pointee.ai_socktype, ai.pointee.ai_protocol)
            if fd >= 0 {
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                if bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0, listen(fd, 16) == 0 {
                    bound = fd
                    break
                }
                lastError = String(cString: strerror(errno))
                close(fd)
            }
            info = ai.pointee.ai_next
        }
        guard bound >= 0 else { throw MetricsServerError("--metrics-addr \(hostPort): cannot listen: \(lastError)") }
        self.listenFD = bound
        self.body = body
        self.address = Self.localAddress(bound) ?? hostPort
        let thread = Thread { [self] in self.acceptLoop() }
        thread.name = "bridge-metrics"
        thread.stackSize = 1 << 20
        thread.start()
    }

    deinit { stop() }

    /// Stops accepting and closes the socket (idempotent).
    public func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped else { return }
        stopped = true
        shutdown(listenFD, Int32(SHUT_RDWR))
        close(listenFD)
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    /// `HOST:PORT` → (host, port); `[v6]:PORT` too. Exit 2 with the reason otherwise.
    static func split(_ hostPort: String) throws -> (host: String, port: String) {
        let bad = MetricsServerError("--metrics-addr must be HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), not '\(hostPort)'")
        guard let colon = hostPort.lastIndex(of: ":") else { throw bad }
        var host = String(hostPort[..<colon])
        let port = String(hostPort[hostPort.index(after: colon)...])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(":") || hostPort.hasPrefix("["),
              let n = Int(port), (0...65535).contains(n) else { throw bad }
        return (host, port)
    }

    static func localAddress(_ fd: Int32) -> String? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard ok == 0 else { return nil }
        var hostBuffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var portBuffer = [CChar](repeating: 0, count: Int(NI_MAXSERV))
        let rc = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &hostBuffer, socklen_t(hostBuffer.count), &portBuffer, socklen_t(portBuffer.count),
                            NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard rc == 0 else { return nil }
        let host = Self.text(hostBuffer)
        let port = Self.text(portBuffer)
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func acceptLoop() {
        while !isStopped {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                return
            }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            serve(fd)
            close(fd)
        }
    }

    private func serve(_ fd: Int32) {
        guard let head = readHead(fd) else { return }
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3 else { return respond(fd, 400, "bad request\n") }
        let method = String(parts[0])
        let path = String(parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        guard method == "GET" || method == "HEAD" else { return respond(fd, 405, "only GET\n", extra: "Allow: GET, HEAD\r\n") }
        switch path {
        case "/metrics":
            respond(fd, 200, body(), contentType: "text/plain; version=0.0.4; charset=utf-8", headOnly: method == "HEAD")
        case "/":
            respond(fd, 200, "bridge exec metrics: GET /metrics\n", headOnly: method == "HEAD")
        default:
            respond(fd, 404, "not found: try /metrics\n", headOnly: method == "HEAD")
        }
    }

    /// Reads up to the blank line ending the request head; nil on timeout, EOF or oversize.
    private func readHead(_ fd: Int32) -> String? {
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 2048)
        let end: [UInt8] = Array("\r\n\r\n".utf8)
        while data.count < Self.maxHead {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            data += chunk[0..<n]
            if data.count >= 4, data.suffix(from: max(0, data.count - n - 3)).firstRange(of: end) != nil {
                return String(decoding: data, as: UTF8.self)
            }
        }
        return nil
    }

    private func respond(_ fd: Int32, _ status: Int, _ text: String, extra: String = "", headOnly: Bool = false) {
        respond(fd, status, Array(text.utf8), contentType: "text/plain; charset=utf-8", extra: extra, headOnly: headOnly)
    }

    private func respond(_ fd: Int32, _ status: Int, _ payload: [UInt8], contentType: String, extra: String = "",
                         headOnly: Bool = false) {
        let reason = [200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"][status] ?? "Error"
        let head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(payload.count)\r\n"
            + extra + "Connection: close\r\n\r\n"
        let bytes = Array(head.utf8) + (headOnly ? [] : payload)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            sent += n
        }
    }
}
