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
/// in the text exposition format; anything else is 404 (405 for methods other than GET and
/// HEAD). `Connection: close`: a scrape endpoint, not a web server.
///
/// One thread serves every connection at once through `poll(2)` on non-blocking sockets, so a
/// client that trickles its request, or never sends one, holds up nobody else:
/// - each connection has one deadline for the whole exchange (`Limits.requestDeadline` from
///   accept to the last byte of the answer); a request head still incomplete then gets 408;
/// - a request head over `Limits.maxHead` bytes gets 431;
/// - at most `Limits.maxConnections` are kept open: past that, the oldest one that has sent
///   nothing is closed, so a flood of idle connections cannot lock a scrape out (nor exhaust
///   file descriptors: when `accept` runs out of them, the oldest goes too); a connection is
///   read as soon as it is accepted, so a request already sent is answered at once.
/// After answering, the server stops writing and reads until the client closes (or the
/// deadline), so an answer to a request it did not read in full is not lost to a reset.
///
/// Every blocking call runs on the server's own thread, never on Swift's cooperative pool.
/// `stop()` wakes it, and it closes every socket and ends.
public final class MetricsServer: @unchecked Sendable {
    // @unchecked Sendable: `stopped` is guarded by `lock`; the connections are only touched
    // by the serving thread; the rest is immutable.
    public typealias Body = @Sendable () -> [UInt8]

    /// What one client may take.
    public struct Limits: Sendable {
        /// From accept to the last byte of the answer.
        public var requestDeadline: Duration = .seconds(5)
        /// The largest request head (request line and headers) read.
        public var maxHead = 8 * 1024
        /// Connections kept open at once.
        public var maxConnections = 512
        public init() {}
    }

    /// `host:port` actually bound (the port filled in when 0 was asked for).
    public let address: String
    private let listenFD: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let body: Body
    private let limits: Limits
    private let lock = NSLock()
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    /// Binds `hostPort` (`127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`, `localhost:0`) and
    /// starts serving.
    public init(hostPort: String, limits: Limits = Limits(), body: @escaping Body) throws {
        let (host, port) = try Self.split(hostPort)
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, port, &hints, &list)
        guard rc == 0, let first = list else {
            throw MetricsServerError(
                "--metrics-addr \(hostPort): cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var bound: Int32 = -1
        var info: UnsafeMutablePointer<addrinfo>? = first
        while let ai = info {
            let fd = socket(
                ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            if fd >= 0 {
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                if bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0, listen(fd, SOMAXCONN) == 0,
                    Self.setNonBlocking(fd)
                {
                    bound = fd
                    break
                }
                lastError = String(cString: strerror(errno))
                close(fd)
            }
            info = ai.pointee.ai_next
        }
        guard bound >= 0 else { throw MetricsServerError("--metrics-addr \(hostPort): cannot listen: \(lastError)") }
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0,
            pipeFDs.allSatisfy({ fcntl($0, F_SETFD, FD_CLOEXEC) == 0 && Self.setNonBlocking($0) })
        else {
            let text = String(cString: strerror(errno))
            close(bound)
            throw MetricsServerError("--metrics-addr \(hostPort): cannot serve: \(text)")
        }
        self.listenFD = bound
        self.wakeRead = pipeFDs[0]
        self.wakeWrite = pipeFDs[1]
        self.body = body
        self.limits = limits
        self.address = Self.localAddress(bound) ?? hostPort
        let thread = Thread { [self] in self.serveLoop() }
        thread.name = "bridge-metrics"
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Stops accepting, closes every connection and waits (up to 5 s) for the serving thread
    /// to end. Idempotent.
    public func stop() {
        lock.lock()
        guard !stopped else {
            lock.unlock()
            return
        }
        stopped = true
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
        lock.unlock()
        _ = finished.wait(timeout: .now() + 5)
    }

    private var isStopped: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    /// `HOST:PORT` → (host, port); `[v6]:PORT` too. Exit 2 with the reason otherwise.
    static func split(_ hostPort: String) throws -> (host: String, port: String) {
        let bad = MetricsServerError(
            "--metrics-addr must be HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), not '\(hostPort)'")
        guard let colon = hostPort.lastIndex(of: ":") else { throw bad }
        var host = String(hostPort[..<colon])
        let port = String(hostPort[hostPort.index(after: colon)...])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(":") || hostPort.hasPrefix("["),
            let n = Int(port), (0...65535).contains(n)
        else { throw bad }
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
                getnameinfo(
                    $0, length, &hostBuffer, socklen_t(hostBuffer.count), &portBuffer, socklen_t(portBuffer.count),
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

    // MARK: - Serving

    /// One accepted connection, owned by the serving thread.
    private final class Connection {
        enum Phase { case reading, writing, draining }
        let fd: Int32
        var deadline: UInt64
        var phase = Phase.reading
        var input: [UInt8] = []
        var output: [UInt8] = []
        var sent = 0
        var closed = false
        init(fd: Int32, deadline: UInt64) {
            self.fd = fd
            self.deadline = deadline
        }
    }

    private var connections: [Connection] = []
    private var openCount = 0

    private func serveLoop() {
        defer {
            for connection in connections where !connection.closed { close(connection.fd) }
            connections = []
            close(listenFD)
            close(wakeRead)
            close(wakeWrite)
            finished.signal()
        }
        var fds: [pollfd] = []
        while !isStopped {
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0))
            for connection in connections {
                let events = connection.phase == .writing ? POLLOUT : POLLIN
                fds.append(pollfd(fd: connection.fd, events: Int16(events), revents: 0))
            }
            let now = Self.now()
            let nearest = connections.map(\.deadline).min().map { $0 > now ? $0 - now : 0 } ?? 1_000_000_000
            let timeout = Int32(min(1000, (nearest + 999_999) / 1_000_000))
            let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeout) }
            if ready < 0 {
                if errno != EINTR { usleep(10_000) }
                continue
            }
            if fds[0].revents != 0 { drainWake() }
            // Connections first (their pollfds are in `connections` order), then new ones.
            for (index, connection) in connections.enumerated() where fds[index + 2].revents != 0 {
                step(connection)
            }
            if fds[1].revents != 0 { acceptAll() }
            let later = Self.now()
            for connection in connections where !connection.closed && connection.deadline <= later {
                expire(connection)
            }
            connections.removeAll { $0.closed }
        }
    }

    private func drainWake() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, $0.count) }) > 0 {}
    }

    /// Accepts every pending connection; past `maxConnections` (or out of descriptors) the
    /// oldest connection still waiting for its request is closed to make room.
    private func acceptAll() {
        while true {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors: the oldest idle connection makes room, else wait.
                    guard evictOldest() else { return }
                    continue
                default: return
                }
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            guard Self.setNonBlocking(fd) else {
                close(fd)
                continue
            }
            let connection = Connection(fd: fd, deadline: Self.now() + Self.nanoseconds(limits.requestDeadline))
            connections.append(connection)
            openCount += 1
            // A request already there is answered now, before later arrivals can crowd it out.
            step(connection)
            if openCount > limits.maxConnections { _ = evictOldest() }
        }
    }

    /// Closes the oldest open connection that has sent nothing yet (else the oldest still
    /// reading its request, else the oldest open one).
    private func evictOldest() -> Bool {
        let open = connections.lazy.filter { !$0.closed }
        guard
            let victim = open.first(where: { $0.phase == .reading && $0.input.isEmpty })
                ?? open.first(where: { $0.phase == .reading }) ?? open.first
        else { return false }
        finish(victim)
        return true
    }

    /// Moves one connection on after `poll` reported it ready.
    private func step(_ connection: Connection) {
        guard !connection.closed else { return }
        switch connection.phase {
        case .reading:
            var chunk = [UInt8](repeating: 0, count: 4096)
            while connection.input.count <= limits.maxHead {
                let n = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    let from = max(0, connection.input.count - 3)
                    connection.input += chunk[0..<n]
                    if let end = Self.headEnd(connection.input, from: from), end <= limits.maxHead {
                        answer(connection, head: String(decoding: connection.input[..<end], as: UTF8.self))
                        return
                    }
                    continue
                }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
                return finish(connection)  // EOF or error before a whole request
            }
            respond(connection, 431, "request head over \(limits.maxHead) bytes\n")
        case .writing:
            flush(connection)
        case .draining:
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
                if n > 0 { continue }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
                return finish(connection)
            }
        }
    }

    /// The deadline passed: a request still unread gets 408 (if the socket takes it at once).
    private func expire(_ connection: Connection) {
        guard connection.phase == .reading else { return finish(connection) }
        // A second more for the 408 to go out and the client to close.
        connection.deadline = Self.now() + 1_000_000_000
        respond(connection, 408, "request not received within \(limits.requestDeadline)\n")
    }

    private func answer(_ connection: Connection, head: String) {
        let requestLine = head.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = requestLine.split(separator: " ")
        guard parts.count == 3, parts[2].hasPrefix("HTTP/") else { return respond(connection, 400, "bad request\n") }
        let method = String(parts[0])
        let path = String(parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        guard method == "GET" || method == "HEAD" else {
            return respond(connection, 405, "only GET\n", extra: "Allow: GET, HEAD\r\n")
        }
        let headOnly = method == "HEAD"
        if path == "/metrics" {
            respond(
                connection, 200, body(), contentType: "text/plain; version=0.0.4; charset=utf-8", headOnly: headOnly)
        } else {
            respond(connection, 404, "not found: try /metrics\n", headOnly: headOnly)
        }
    }

    private func respond(
        _ connection: Connection, _ status: Int, _ text: String, extra: String = "", headOnly: Bool = false
    ) {
        respond(
            connection, status, Array(text.utf8), contentType: "text/plain; charset=utf-8", extra: extra,
            headOnly: headOnly)
    }

    private func respond(
        _ connection: Connection, _ status: Int, _ payload: [UInt8], contentType: String,
        extra: String = "", headOnly: Bool = false
    ) {
        let reasons = [
            200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 431: "Request Header Fields Too Large",
        ]
        let head =
            "HTTP/1.1 \(status) \(reasons[status] ?? "Error")\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(payload.count)\r\n" + extra + "Connection: close\r\n\r\n"
        connection.input = []
        connection.output = Array(head.utf8) + (headOnly ? [] : payload)
        connection.sent = 0
        connection.phase = .writing
        flush(connection)
    }

    /// Sends what the socket takes; once all is sent, stops writing and drains the client.
    private func flush(_ connection: Connection) {
        while connection.sent < connection.output.count {
            let n = connection.output[connection.sent...].withUnsafeBytes {
                send(connection.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            if n > 0 {
                connection.sent += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return }
            return finish(connection)
        }
        connection.output = []
        connection.phase = .draining
        shutdown(connection.fd, Int32(SHUT_WR))
        // The client has little left to send: at most a second more to read it.
        connection.deadline = min(connection.deadline, Self.now() + 1_000_000_000)
    }

    private func finish(_ connection: Connection) {
        guard !connection.closed else { return }
        connection.closed = true
        openCount -= 1
        close(connection.fd)
    }

    /// The index of the blank line ending the head (searched from `from`), or nil.
    static func headEnd(_ bytes: [UInt8], from: Int) -> Int? {
        guard bytes.count >= 4 else { return nil }
        var i = from
        while i + 3 < bytes.count {
            if bytes[i] == 13, bytes[i + 1] == 10, bytes[i + 2] == 13, bytes[i + 3] == 10 { return i }
            i += 1
        }
        return nil
    }

    static func setNonBlocking(_ fd: Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0
    }

    /// Monotonic nanoseconds.
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}
