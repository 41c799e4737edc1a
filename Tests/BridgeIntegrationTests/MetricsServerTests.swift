import BridgeCore
import BridgeMonitor
import BridgeTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A blocking loopback client for `MetricsServer` probes (used off the cooperative pool).
final class RawClient: @unchecked Sendable {
    // @unchecked Sendable: one thread uses a client at a time.
    let fd: Int32

    /// Connects to 127.0.0.1:`port`; `receiveTimeout` bounds each read (the test's own guard).
    init(port: Int, receiveTimeout: Int = 30) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw RawClientError("socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            let text = String(cString: strerror(errno))
            close(fd)
            throw RawClientError("connect: \(text)")
        }
    }

    deinit { close(fd) }

    /// Sends all of `text`; false when the server closed the connection.
    @discardableResult
    func send(_ text: String) -> Bool { send(Array(text.utf8)) }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }

    /// Reads until the server closes (or the receive timeout): the whole answer.
    func readAll() -> String {
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            data += chunk[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Whether the server has answered or closed (without waiting).
    var serverSpoke: Bool {
        var byte: UInt8 = 0
        let n = recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)
    }

    /// One whole exchange: sends `request`, returns the answer.
    static func exchange(port: Int, _ request: String) async throws -> String {
        try await OffPool.run {
            let client = try RawClient(port: port)
            client.send(request)
            return client.readAll()
        }
    }
}

struct RawClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A slow client trickling a request head, one header line every `pause`, on its own thread,
/// until told to stop or the server answers or closes.
final class Trickler: @unchecked Sendable {
    // @unchecked Sendable: the fields are only touched with `lock` held.
    private let lock = NSLock()
    private var stopRequested = false
    private var result: (answer: String, linesSent: Int)?
    private let done = DispatchSemaphore(value: 0)

    init(port: Int, pause: TimeInterval, maxLines: Int) throws {
        let client = try RawClient(port: port)
        Thread { [self] in
            var sent = 0
            var answer = ""
            if client.send("GET /metrics HTTP/1.1\r\nHost: x\r\n") {
                while sent < maxLines && !self.stopping {
                    if client.serverSpoke {
                        answer = client.readAll()
                        break
                    }
                    guard client.send("X-Slow-\(sent): \(sent)\r\n") else {
                        answer = client.readAll()
                        break
                    }
                    sent += 1
                    Thread.sleep(forTimeInterval: pause)
                }
            }
            self.lock.withLock { self.result = (answer, sent) }
            self.done.signal()
        }.start()
    }

    private var stopping: Bool { lock.withLock { stopRequested } }

    /// Whether it is still trickling (the server neither answered nor closed yet).
    var running: Bool { lock.withLock { result == nil } }

    /// Stops trickling and returns what the server answered (empty when nothing) and how many
    /// header lines were sent.
    func finish() async throws -> (answer: String, linesSent: Int) {
        lock.withLock { stopRequested = true }
        return try await OffPool.run {
            self.done.wait()
            return self.lock.withLock { self.result! }
        }
    }

    /// Waits until the server answers or closes (or `maxLines` were sent).
    func waitForServer() async throws -> (answer: String, linesSent: Int) {
        try await OffPool.run {
            self.done.wait()
            return self.lock.withLock { self.result! }
        }
    }
}

/// The `/metrics` listener under attack (issue 23 item 2): slow clients, idle floods and
/// oversized heads must not keep a scrape from being answered.
@Suite(.serialized)
struct MetricsServerTests {
    static let exposition = "# TYPE probe_total counter\nprobe_total 7\n"

    static func server(_ limits: MetricsServer.Limits = MetricsServer.Limits()) throws -> (MetricsServer, Int) {
        let server = try MetricsServer(hostPort: "127.0.0.1:0", limits: limits) { Array(exposition.utf8) }
        let port = try #require(Int(server.address.split(separator: ":").last ?? ""))
        return (server, port)
    }

    @Test(.timeLimit(.minutes(2)))
    func tenTricklingClientsDoNotHoldUpAScrape() async throws {
        var limits = MetricsServer.Limits()
        limits.requestDeadline = .seconds(3600)  // the tricklers outlive the scrape, however slow the machine
        let (server, port) = try Self.server(limits)
        defer { server.stop() }
        let tricklers = try (0..<10).map { _ in try Trickler(port: port, pause: 0.1, maxLines: 100_000) }
        // Before the fix the server read one client at a time: this scrape waited for all ten.
        let scrape = try await RawClient.exchange(port: port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(scrape.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(scrape)")
        #expect(scrape.hasSuffix("\r\n\r\n" + Self.exposition))
        #expect(scrape.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
        // Answered while every slow client was still sending.
        #expect(tricklers.allSatisfy { $0.running })
        for trickler in tricklers {
            let (answer, lines) = try await trickler.finish()
            #expect(answer.isEmpty && lines > 0)
        }
    }

    @Test(.timeLimit(.minutes(2)))
    func aRequestHeadNotDoneWithinTheDeadlineGets408() async throws {
        var limits = MetricsServer.Limits()
        limits.requestDeadline = .seconds(1)
        let (server, port) = try Self.server(limits)
        defer { server.stop() }
        // A header line every 50 ms: each read is quick, the whole request never ends.
        let trickler = try Trickler(port: port, pause: 0.05, maxLines: 2_000)
        let (answer, lines) = try await trickler.waitForServer()
        #expect(answer.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(answer)")
        #expect(lines < 2_000)
        // And the server still serves.
        let scrape = try await RawClient.exchange(port: port, "GET /metrics HTTP/1.1\r\n\r\n")
        #expect(scrape.hasPrefix("HTTP/1.1 200 OK\r\n"))
    }

    @Test(.timeLimit(.minutes(2)))
    func oversizedHeadsGet431AndOnlyMetricsIsServed() async throws {
        let (server, port) = try Self.server()
        defer { server.stop() }
        for size in [9 * 1024, 64 * 1024, 1024 * 1024] {
            let big = "GET /metrics HTTP/1.1\r\nX-Big: " + String(repeating: "a", count: size) + "\r\n\r\n"
            let answer = try await RawClient.exchange(port: port, big)
            #expect(
                answer.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "\(size): \(answer.prefix(200))")
        }
        let root = try await RawClient.exchange(port: port, "GET / HTTP/1.1\r\n\r\n")
        #expect(root.hasPrefix("HTTP/1.1 404 Not Found\r\n"), "\(root)")
        let other = try await RawClient.exchange(port: port, "GET /metricsx HTTP/1.1\r\n\r\n")
        #expect(other.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        let post = try await RawClient.exchange(port: port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        #expect(post.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n") && post.contains("Allow: GET, HEAD\r\n"))
        let garbage = try await RawClient.exchange(port: port, "hello\r\n\r\n")
        #expect(garbage.hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
        let head = try await RawClient.exchange(port: port, "HEAD /metrics HTTP/1.1\r\n\r\n")
        #expect(
            head.hasPrefix("HTTP/1.1 200 OK\r\n") && head.contains("Content-Length: \(Self.exposition.utf8.count)\r\n"))
        #expect(head.hasSuffix("\r\n\r\n"))
        let query = try await RawClient.exchange(port: port, "GET /metrics?x=1 HTTP/1.0\r\n\r\n")
        #expect(query.hasSuffix(Self.exposition))
    }

    @Test(.timeLimit(.minutes(3)))
    func tenThousandIdleConnectionsDoNotLockOutAScrape() async throws {
        // Room for the idle clients and the server's side of the ones it keeps.
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let idle = Int(min(10_000, max(0, Int64(limit.rlim_cur) - 2_000)))
        #expect(idle == 10_000, "RLIMIT_NOFILE \(limit.rlim_cur) allows only \(idle) idle connections")
        let (server, port) = try Self.server()
        defer { server.stop() }
        let scrape = try await OffPool.run {
            var clients: [RawClient] = []
            clients.reserveCapacity(idle)
            for _ in 0..<idle { clients.append(try RawClient(port: port)) }
            // A connect returns once the kernel has the handshake, before the server accepts; on a
            // loaded machine thousands may still wait in the kernel's queue, in no fixed order. The
            // scrape comes after the flood, as a scraper's next visit does.
            let deadline = ContinuousClock.now + .seconds(120)
            while server.connectionCount < idle && ContinuousClock.now < deadline { usleep(10_000) }
            let client = try RawClient(port: port)
            client.send("GET /metrics HTTP/1.1\r\n\r\n")
            let answer = client.readAll()
            withExtendedLifetime(clients) {}
            return answer
        }
        #expect(
            scrape.hasPrefix("HTTP/1.1 200 OK\r\n"), "after \(server.connectionCount) accepted connections: \(scrape)")
        #expect(scrape.hasSuffix(Self.exposition))
    }
}
