import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Why `HTTPServer` could not start ("cannot listen: Address already in use").
public struct HTTPServerError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// bridge's one HTTP/1.1 server: the Prometheus endpoint (`MetricsServer`) and the tests'
/// loopback stand-ins (`TestHTTPServer`) are both this one.
///
/// One thread serves every connection at once through `poll(2)` on non-blocking sockets, so a
/// client that trickles its request, or never sends one, holds up nobody else:
/// - each connection may have one deadline for the whole exchange (`Limits.requestDeadline`
///   from accept to the last byte of the answer); a request head still incomplete then gets 408;
/// - a request head over `Limits.maxHead` bytes gets 431, a body over `Limits.maxBody` 413, a
///   chunked request body 501, a request line that is not HTTP 400 (and the connection closes);
/// - at most `Limits.maxConnections` are kept open: past that, the oldest one that has sent
///   nothing is closed, so a flood of idle connections cannot lock a request out (nor exhaust
///   file descriptors: when `accept` runs out of them, the oldest goes too); a connection is
///   read as soon as it is accepted, so a request already sent is answered at once.
/// Requests need a `Content-Length` body (or none); `Expect: 100-continue` is honoured; a
/// connection carries requests one after the other (keep-alive) until an answer closes it.
/// After a closing answer the server stops writing and reads until the client closes (at most a
/// second), so an answer to a request it did not read in full is not lost to a reset.
///
/// Each request goes to the `Responder` with an `HTTPServerExchange` to answer it through, on the
/// serving thread (`.inline`: it must not block) or on a thread of its own (`.threadPerRequest`:
/// it may block, and answer in pieces). `stop()` wakes the serving thread, which closes every
/// socket and ends. Every blocking call runs on these threads, never on Swift's cooperative pool.
public final class HTTPServer: Sendable {
    public typealias Responder = @Sendable (HTTPServerRequest, HTTPServerExchange) -> Void

    /// What one client may take.
    public struct Limits: Sendable {
        /// From accept to the last byte of the answer; nil: none.
        public var requestDeadline: Duration? = .seconds(5)
        /// The largest request head (request line and headers) read.
        public var maxHead = 8 * 1024
        /// The largest request body read.
        public var maxBody = 1 << 20
        /// Connections kept open at once.
        public var maxConnections = 512
        public init() {}
    }

    /// Where responders run.
    public enum Dispatch: Sendable {
        /// On the serving thread: quick and never blocking.
        case inline
        /// On a new thread per request.
        case threadPerRequest
    }

    /// What a responder asked for, carried to the serving thread.
    enum Action {
        case send([UInt8])
        case end(close: Bool)
        case abort
    }

    private struct Shared {
        /// The serving thread, once it runs: what it posts needs no wake-up.
        var loopThread: pthread_t?
        var stopped = false
        var outbox: [(connection: Int, action: Action)] = []
        var accepted = 0
    }

    /// `host:port` actually bound (`[v6]:port` for IPv6; the port filled in when 0 was asked for).
    public let address: String
    /// The bound port.
    public let port: Int
    let listenFD: Int32
    let wakeRead: Int32
    private let wakeWrite: Int32
    let limits: Limits
    let dispatch: Dispatch
    let responder: Responder
    private let shared = Mutex(Shared())
    private let finished = DispatchSemaphore(value: 0)

    /// Binds `host` (a name or a numeric address) and `port` (0: any free one) and starts
    /// serving on a thread named `threadName`.
    public init(
        host: String, port: String, limits: Limits = Limits(), dispatch: Dispatch = .inline,
        threadName: String = "bridge-http-server", responder: @escaping Responder
    ) throws(HTTPServerError) {
        let bound = try Self.listen(host: host, port: port)
        var pipeFDs: [Int32] = [-1, -1]
        guard pipe(&pipeFDs) == 0,
            pipeFDs.allSatisfy({ fcntl($0, F_SETFD, FD_CLOEXEC) == 0 && Self.setNonBlocking($0) })
        else {
            let text = String(cString: strerror(errno))
            close(bound)
            throw HTTPServerError(message: "cannot serve: \(text)")
        }
        listenFD = bound
        wakeRead = pipeFDs[0]
        wakeWrite = pipeFDs[1]
        self.limits = limits
        self.dispatch = dispatch
        self.responder = responder
        let local = Self.localAddress(bound)
        address =
            local.map { $0.host.contains(":") ? "[\($0.host)]:\($0.port)" : "\($0.host):\($0.port)" }
            ?? "\(host):\(port)"
        self.port = local?.port ?? 0
        let thread = Thread { [self] in
            HTTPServerLoop(server: self).run()
            finished.signal()
        }
        thread.name = threadName
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Stops accepting, closes every connection and waits (up to 5 s) for the serving thread to
    /// end. Idempotent.
    public func stop() {
        let first = shared.withLock { s in
            defer { s.stopped = true }
            if !s.stopped { wake() }
            return !s.stopped
        }
        if first { _ = finished.wait(timeout: .now() + 5) }
    }

    /// Whether `stop()` was called (a responder that waits stops waiting).
    public var isStopped: Bool { shared.withLock { $0.stopped } }

    /// How many connections were accepted so far.
    public var connectionCount: Int { shared.withLock { $0.accepted } }

    /// Numbers an accepted connection (1-based).
    func accepted() -> Int {
        shared.withLock { s in
            s.accepted += 1
            return s.accepted
        }
    }

    /// Queues a responder's action for the serving thread, and wakes it (unless the action comes
    /// from that thread, an inline responder: it takes the queue as soon as the responder
    /// returns); dropped after `stop()`.
    func post(_ connection: Int, _ action: Action) {
        shared.withLock { s in
            guard !s.stopped else { return }
            s.outbox.append((connection, action))
            if let loop = s.loopThread, pthread_equal(loop, pthread_self()) != 0 { return }
            // Under the lock: the serving thread closes the pipe only after `stopped` is set.
            wake()
        }
    }

    /// Called by the serving thread when it starts.
    func loopStarted() { shared.withLock { $0.loopThread = pthread_self() } }

    /// The queued actions, and whether the server is stopping.
    func takeOutbox() -> (actions: [(connection: Int, action: Action)], stopped: Bool) {
        shared.withLock { s in
            defer { s.outbox = [] }
            return (s.outbox, s.stopped)
        }
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Closes the listener and the wake pipe (by the serving thread, at its end).
    func closeDescriptors() {
        close(listenFD)
        close(wakeRead)
        close(wakeWrite)
    }

    // MARK: Sockets

    private static func listen(host: String, port: String) throws(HTTPServerError) -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, port, &hints, &list)
        guard rc == 0, let first = list else {
            throw HTTPServerError(message: "cannot resolve \(host): \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var info: UnsafeMutablePointer<addrinfo>? = first
        while let ai = info {
            let fd = socket(
                ai.pointee.ai_family, ai.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), ai.pointee.ai_protocol)
            if fd >= 0 {
                var one: Int32 = 1
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
                if bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0, Glibc.listen(fd, SOMAXCONN) == 0,
                    setNonBlocking(fd)
                {
                    return fd
                }
                lastError = String(cString: strerror(errno))
                close(fd)
            }
            info = ai.pointee.ai_next
        }
        throw HTTPServerError(message: "cannot listen: \(lastError)")
    }

    private static func localAddress(_ fd: Int32) -> (host: String, port: Int)? {
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
        func text(_ buffer: [CChar]) -> String {
            String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        guard let port = Int(text(portBuffer)) else { return nil }
        return (text(hostBuffer), port)
    }

    static func setNonBlocking(_ fd: Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0
    }
}

/// One request's answer, given from any thread: whole (`respond`), or in pieces (`send`, then
/// `end`), or not at all (`abort`). Whatever comes after the connection closed is dropped.
public struct HTTPServerExchange: Sendable {
    let server: HTTPServer
    let connection: Int
    /// The request's method (a HEAD request's answer has no body).
    public let method: String

    /// Sends `response` and ends the exchange; `close` closes the connection after it.
    public func respond(_ response: HTTPServerResponse, close: Bool) {
        send(response.encoded(close: close, headOnly: method == "HEAD"))
        end(close: close)
    }

    /// Sends raw bytes (an encoded head, body chunks).
    public func send(_ bytes: [UInt8]) { server.post(connection, .send(bytes)) }

    /// Ends the exchange once what was sent is out: the connection then reads the next request,
    /// or (`close`) stops writing and closes.
    public func end(close: Bool) { server.post(connection, .end(close: close)) }

    /// Closes the connection at once, without a word more.
    public func abort() { server.post(connection, .abort) }

    /// Whether the server was stopped (a responder that waits stops waiting).
    public var serverStopped: Bool { server.isStopped }
}
