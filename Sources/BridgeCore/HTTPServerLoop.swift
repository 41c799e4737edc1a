import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// `HTTPServer`'s serving thread: accepts, reads and parses requests, hands them to the
/// responder, writes what it answers, and enforces the limits. Owned by that thread alone.
final class HTTPServerLoop {
    /// One accepted connection.
    final class Connection {
        enum Phase {
            /// Reading a request.
            case reading
            /// The responder has the request; what it sent is written as the socket takes it.
            case responding
            /// The answer is out and the connection closing: reading until the client closes.
            case draining
        }
        let fd: Int32
        let id: Int
        var deadline: ContinuousClock.Instant?
        var phase = Phase.reading
        var input: [UInt8] = []
        /// How far `input` was searched for the end of the head.
        var scanned = 0
        var head: HTTPRequestHead?
        var continued = false
        var output: [UInt8] = []
        var sent = 0
        /// Set when the responder ended the exchange (close: whether the connection closes).
        var ending: Bool?
        var closed = false
        init(fd: Int32, id: Int, deadline: ContinuousClock.Instant?) {
            self.fd = fd
            self.id = id
            self.deadline = deadline
        }
    }

    let server: HTTPServer
    let limits: HTTPServer.Limits
    let clock = ContinuousClock()
    /// Open connections, oldest first, and by id.
    var connections: [Connection] = []
    var byID: [Int: Connection] = [:]
    var openCount = 0
    /// Connections closed since `connections` last dropped the closed ones.
    var closedSinceSweep = 0
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)

    init(server: HTTPServer) {
        self.server = server
        limits = server.limits
    }

    func run() {
        server.loopStarted()
        defer {
            for connection in connections where !connection.closed { close(connection.fd) }
            connections = []
            server.closeDescriptors()
        }
        var fds: [pollfd] = []
        while true {
            let (actions, stopped) = server.takeOutbox()
            if stopped { return }
            apply(actions)
            if closedSinceSweep > 0 {
                connections.removeAll { $0.closed }
                closedSinceSweep = 0
            }
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: server.wakeRead, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: server.listenFD, events: Int16(POLLIN), revents: 0))
            var nearest: ContinuousClock.Instant?
            for connection in connections {
                // poll skips a negative descriptor: nothing to wait for while a responder works.
                let events = Self.events(connection)
                fds.append(pollfd(fd: events == nil ? -1 : connection.fd, events: events ?? 0, revents: 0))
                if let deadline = connection.deadline, nearest.map({ deadline < $0 }) ?? true { nearest = deadline }
            }
            let timeout = pollTimeout(until: nearest)
            let ready = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, nfds_t($0.count), timeout) }
            if ready < 0 {
                if errno != EINTR { usleep(10_000) }
                continue
            }
            if fds[0].revents != 0 { drainWake() }
            // Connections first (their pollfds are in `connections` order), then new ones.
            for (index, connection) in connections.enumerated() where fds[index + 2].revents != 0 { step(connection) }
            if fds[1].revents != 0 { acceptAll() }
            let now = clock.now
            for connection in connections where !connection.closed {
                if let deadline = connection.deadline, deadline <= now { expire(connection) }
            }
        }
    }

    /// What to poll a connection for; nil while its responder works and nothing is to be sent.
    private static func events(_ connection: Connection) -> Int16? {
        switch connection.phase {
        case .reading, .draining: return Int16(POLLIN)
        case .responding: return connection.output.isEmpty ? nil : Int16(POLLOUT)
        }
    }

    /// Until `nearest` (the nearest deadline), at most a second.
    private func pollTimeout(until nearest: ContinuousClock.Instant?) -> Int32 {
        guard let nearest else { return 1000 }
        let (seconds, attoseconds) = clock.now.duration(to: nearest).components
        let ms = max(0, seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
        return Int32(min(1000, ms))
    }

    private func drainWake() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while buffer.withUnsafeMutableBytes({ read(server.wakeRead, $0.baseAddress, $0.count) }) > 0 {}
    }

    // MARK: Accepting

    /// Accepts every pending connection; past `maxConnections` (or out of descriptors) the
    /// oldest connection still waiting for its request is closed to make room.
    private func acceptAll() {
        while true {
            let fd = accept(server.listenFD, nil, nil)
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
            guard HTTPServer.setNonBlocking(fd) else {
                close(fd)
                continue
            }
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let connection = Connection(
                fd: fd, id: server.accepted(), deadline: limits.requestDeadline.map { clock.now + $0 })
            connections.append(connection)
            byID[connection.id] = connection
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

    // MARK: Reading

    /// Moves one connection on after `poll` reported it ready.
    private func step(_ connection: Connection) {
        guard !connection.closed else { return }
        switch connection.phase {
        case .reading:
            let open = readAvailable(connection)
            parse(connection)
            // The client closed (or failed) before a whole request: nothing to answer. After a
            // whole one, the end of file is read again once the answer is out.
            if !open, connection.phase == .reading { finish(connection) }
        case .responding:
            flush(connection)
        case .draining:
            connection.input = []
            if !readAvailable(connection) { finish(connection) }
        }
    }

    /// Reads what the socket has (while a head is awaited, no more than `maxHead` and a bit);
    /// false at end of file or on an error.
    private func readAvailable(_ connection: Connection) -> Bool {
        while connection.head != nil || connection.input.count <= limits.maxHead || connection.phase == .draining {
            let n = chunk.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                if connection.phase != .draining { connection.input += chunk[0..<n] }
                continue
            }
            if n < 0 && errno == EINTR { continue }
            return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
        }
        return true
    }

    /// Takes the next request from what was read, if it is all there, to the responder.
    private func parse(_ connection: Connection) {
        if connection.head == nil {
            switch HTTPRequestHead.parse(connection.input, scanFrom: connection.scanned, maxHead: limits.maxHead) {
            case .incomplete:
                connection.scanned = connection.input.count
                return
            case .refused(let status, let text):
                return refuse(connection, status, text)
            case .head(let head):
                guard head.contentLength >= 0 else { return refuse(connection, 400, "bad Content-Length\n") }
                guard head.contentLength <= limits.maxBody else {
                    return refuse(connection, 413, "request body over \(limits.maxBody) bytes\n")
                }
                connection.head = head
            }
        }
        guard let head = connection.head else { return }
        let end = head.bodyStart + head.contentLength
        guard connection.input.count >= end else {
            if !connection.continued, head.header("Expect")?.lowercased() == "100-continue" {
                connection.continued = true
                connection.output += Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
                flush(connection)
            }
            return
        }
        let request = HTTPServerRequest(
            method: head.method, target: head.target, headers: head.headers,
            body: Array(connection.input[head.bodyStart..<end]), connectionID: connection.id)
        connection.input.removeFirst(end)
        connection.head = nil
        connection.scanned = 0
        connection.continued = false
        connection.phase = .responding
        respond(request, on: connection)
    }

    private func respond(_ request: HTTPServerRequest, on connection: Connection) {
        let exchange = HTTPServerExchange(server: server, connection: connection.id, method: request.method)
        let responder = server.responder
        switch server.dispatch {
        case .inline:
            responder(request, exchange)
            apply(server.takeOutbox().actions)
        case .threadPerRequest:
            let thread = Thread { responder(request, exchange) }
            thread.name = "bridge-http-request-\(connection.id)"
            thread.stackSize = 512 * 1024
            thread.start()
        }
    }

    /// Answers with `status` and closes.
    private func refuse(_ connection: Connection, _ status: Int, _ text: String) {
        connection.phase = .responding
        connection.output += HTTPServerResponse.text(text, status: status).encoded(close: true)
        connection.ending = true
        flush(connection)
    }

    /// The deadline passed: a request still unread gets 408 (if the socket takes it at once).
    private func expire(_ connection: Connection) {
        guard connection.phase == .reading else { return finish(connection) }
        // A second more for the 408 to go out and the client to close.
        connection.deadline = clock.now + .seconds(1)
        let limit = limits.requestDeadline.map { "\($0)" } ?? "the deadline"
        refuse(connection, 408, "request not received within \(limit)\n")
    }

    // MARK: Writing

    /// Carries out what responders asked for.
    private func apply(_ actions: [(connection: Int, action: HTTPServer.Action)]) {
        for (id, action) in actions {
            guard let connection = byID[id], !connection.closed, connection.phase == .responding,
                connection.ending == nil
            else { continue }
            switch action {
            case .send(let bytes): connection.output += bytes
            case .end(let close): connection.ending = close
            case .abort: finish(connection)
            }
            if !connection.closed { flush(connection) }
        }
    }

    /// Sends what the socket takes; once all is sent and the exchange ended, reads the next
    /// request, or stops writing and drains the client.
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
        connection.sent = 0
        guard let close = connection.ending else { return }
        connection.ending = nil
        if close {
            connection.phase = .draining
            shutdown(connection.fd, Int32(SHUT_WR))
            // The client has little left to send: at most a second more to read it.
            connection.deadline = min(connection.deadline ?? .now + .seconds(1), clock.now + .seconds(1))
        } else {
            connection.phase = .reading
            parse(connection)
        }
    }

    private func finish(_ connection: Connection) {
        guard !connection.closed else { return }
        connection.closed = true
        byID[connection.id] = nil
        openCount -= 1
        closedSinceSweep += 1
        close(connection.fd)
    }
}
