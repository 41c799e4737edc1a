import BridgeCore
import CBridgeSpawn
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// An MCP server run as a child process, speaking newline-delimited JSON-RPC on its stdin and
/// stdout (MCP's stdio transport).
///
/// - No shell: `command` is resolved on the child's `PATH` and started with `args` directly.
/// - The child's environment is exactly `environment` (see `MCPStdioChannel.environment`).
/// - The child runs under a supervisor (`bridge_spawn`): a subreaper that stops the server's
///   process group and whatever it left behind (a grandchild that called setsid() and holds
///   stdout) when the server exits or is stopped, and that is itself stopped when its I/O
///   thread ends, which includes bridge being killed (PR_SET_PDEATHSIG): no orphans.
/// - One I/O thread per server reads stdout (messages) and stderr (the last few KB are kept
///   for error messages), so nothing blocks Swift's cooperative pool; writes go through a
///   serial dispatch queue. Reading stops at most `drainAfterExit` after the supervisor exits,
///   whoever still holds the pipes.
/// - When the server exits, every request in flight fails at once with `.disconnected`; when
///   it breaks the protocol (a line that is not JSON, a message over 16 MiB) they fail at once
///   with `.protocolViolation` and the server is stopped.
final class MCPStdioChannel: MCPChannel, @unchecked Sendable {
    // @unchecked Sendable: the mutable state below is touched with `lock` held; the
    // descriptors are written only by `writeQueue` and read only by the I/O thread.
    let serverName: String
    let pending = MCPPending()
    private let lock = NSLock()
    /// The supervisor's exit (and the only way to signal it: never once it is reaped).
    private var watch: ChildExitWatch?
    private var alive = false
    private var stdinFD: Int32 = -1
    private var stderrTail: [UInt8] = []
    private var exitDescription: String?
    /// Why bridge stopped the server, when it did (kept over the signal that stopped it).
    private var stopReason: String?
    private var closing = false
    private let exited = DispatchGroup()
    private let writeQueue = DispatchQueue(label: "bridge.mcp.stdio.write")
    static let stderrTailBytes = 4_096
    static let killGrace: Duration = .seconds(2)

    private init(serverName: String) { self.serverName = serverName }

    /// Starts `command` and returns once it runs (or throws `.unavailable` when it cannot start).
    static func start(
        serverName: String, command: String, args: [String], environment: [String: String],
        cwd: String?
    ) async throws(MCPError) -> MCPStdioChannel {
        guard let path = CommandToolExecutor.resolve(command, environment: Environment(environment)) else {
            throw .unavailable("cannot start MCP server '\(serverName)': command not found: \(command)")
        }
        let channel = MCPStdioChannel(serverName: serverName)
        let started: Result<Void, MCPError> = await withCheckedContinuation { c in
            let thread = Thread {
                channel.run(path: path, argv: [command] + args, environment: environment, cwd: cwd) {
                    c.resume(returning: $0)
                }
            }
            thread.name = "bridge-mcp-\(serverName)"
            // Messages are parsed on this thread: room for the parser at its deepest (512 levels,
            // which a debug build needs about 1 MiB for). Only what is touched is committed.
            thread.stackSize = 4 * 1024 * 1024
            thread.start()
        }
        try started.get()
        return channel
    }

    var isAlive: Bool { lock.withLock { alive } }

    func setProtocolVersion(_ version: String) {}

    func request(_ method: String, params: JSONValue, timeout: Duration) async throws(MCPError) -> JSONValue {
        let id = pending.allocate()
        let message: JSONValue = [
            "jsonrpc": "2.0", "id": .number(Double(id)), "method": .string(method), "params": params,
        ]
        return try await pending.wait(
            id, method: method, timeout: timeout,
            send: { [self] () async throws(MCPError) in
                try await write(message)
            },
            onAbandon: { [self] reason in
                Task {
                    try? await notify(
                        "notifications/cancelled",
                        params: ["requestId": .number(Double(id)), "reason": .string(reason)])
                }
            })
    }

    func notify(_ method: String, params: JSONValue) async throws(MCPError) {
        try await write(["jsonrpc": "2.0", "method": .string(method), "params": params])
    }

    /// Writes one message and a newline (on `writeQueue`: a full pipe blocks that queue only).
    private func write(_ message: JSONValue) async throws(MCPError) {
        let bytes = Array((message.compact + "\n").utf8)
        let error: MCPError? = await withCheckedContinuation { c in
            writeQueue.async { [self] in
                let fd = lock.withLock { alive ? stdinFD : -1 }
                guard fd >= 0 else {
                    c.resume(returning: .disconnected(exitMessage()))
                    return
                }
                var written = 0
                while written < bytes.count {
                    let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
                    if n > 0 {
                        written += n
                    } else if n < 0, errno == EINTR {
                        continue
                    } else {
                        c.resume(returning: .disconnected(exitMessage()))
                        return
                    }
                }
                c.resume(returning: nil)
            }
        }
        if let error { throw error }
    }

    /// How the server ended (`during` a request, when given), with the end of its stderr.
    func exitMessage(during method: String? = nil) -> String {
        let (how, tail) = lock.withLock { (exitDescription, stderrTail) }
        var text =
            "MCP server '\(serverName)' " + (how ?? "closed its connection") + (method.map { " during \($0)" } ?? "")
        let err = String(decoding: tail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if !err.isEmpty { text += "; stderr: " + String(err.suffix(600)) }
        return text
    }

    func close() async {
        let (target, fd) = lock.withLock { () -> (ChildExitWatch?, Int32) in
            closing = true
            let f = stdinFD
            stdinFD = -1
            return (alive ? watch : nil, f)
        }
        // The spec's shutdown: close the server's input, wait, SIGTERM, wait, SIGKILL.
        // Queued behind any write in progress, never waited for here: a write blocked on a server
        // that stopped reading would otherwise hold this (cooperative) thread until the kill below,
        // which never comes. The kill ends such a write (EPIPE), and then the input is closed.
        writeQueue.async { if fd >= 0 { _ = Glibc.close(fd) } }
        guard let target else { return }
        let grace = Self.killGrace.milliseconds
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [self] in
                if exited.wait(timeout: .now() + .milliseconds(grace)) == .timedOut {
                    // The supervisor stops the server (SIGTERM, SIGKILL after the grace) and
                    // whatever it left behind; it is killed itself only if that never ends.
                    target.signal(SIGTERM)
                    if exited.wait(timeout: .now() + .milliseconds(grace * 5)) == .timedOut {
                        target.signal(SIGKILL)
                        // Bounded: the I/O thread stops reading soon after the exit (`drainAfterExit`).
                        exited.wait()
                    }
                }
                c.resume()
            }
        }
    }

    // MARK: The I/O thread

    /// How long output is still read once the server's supervisor has exited: anything that
    /// still holds the pipes then escaped it, and is not waited for.
    static let drainAfterExit: Duration = .seconds(1)

    /// Spawns the child on this thread (its death signal is tied to the thread), reports the
    /// start, then reads stdout and stderr until the child exited and they closed (or
    /// `drainAfterExit` passed), and reaps it.
    private func run(
        path: String, argv: [String], environment: [String: String], cwd: String?,
        started: (Result<Void, MCPError>) -> Void
    ) {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)

        var inPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard bridge_pipe_cloexec(&inPipe) == 0, bridge_pipe_cloexec(&outPipe) == 0, bridge_pipe_cloexec(&errPipe) == 0
        else {
            for fd in inPipe + outPipe + errPipe where fd >= 0 { _ = Glibc.close(fd) }
            started(
                .failure(
                    .unavailable("cannot start MCP server '\(serverName)': pipe: \(String(cString: strerror(errno)))")))
            return
        }
        var spawnError: Int32 = 0
        let child: pid_t = withCStrings(argv) { cArgv in
            withCStrings(environment.map { "\($0.key)=\($0.value)" }.sorted()) { cEnv in
                bridge_spawn(
                    path, cArgv, cEnv, cwd, inPipe[0], outPipe[1], errPipe[1], Int32(Self.killGrace.milliseconds),
                    &spawnError)
            }
        }
        _ = Glibc.close(inPipe[0])
        _ = Glibc.close(outPipe[1])
        _ = Glibc.close(errPipe[1])
        guard child > 0 else {
            _ = Glibc.close(inPipe[1])
            _ = Glibc.close(outPipe[0])
            _ = Glibc.close(errPipe[0])
            let why = String(cString: strerror(spawnError))
            started(.failure(.unavailable("cannot start MCP server '\(serverName)' (\(path)): \(why)")))
            return
        }
        exited.enter()
        let exit = ChildExitWatch(pid: child, drain: Self.drainAfterExit)
        lock.withLock {
            watch = exit
            alive = true
            stdinFD = inPipe[1]
        }
        started(.success(()))
        let status = pump(stdout: outPipe[0], stderr: errPipe[0], exit: exit)
        _ = Glibc.close(outPipe[0])
        _ = Glibc.close(errPipe[0])
        let how = ChildExitWatch.describe(status)
        lock.withLock {
            alive = false
            // Why bridge stopped it (a message over the limit, invalid JSON) says more than the signal.
            exitDescription = stopReason ?? how
            if stdinFD >= 0 {
                writeQueue.async { [fd = stdinFD] in _ = Glibc.close(fd) }
                stdinFD = -1
            }
        }
        pending.failAll(.disconnected(exitMessage()))
        exited.leave()
    }

    /// Asks the supervisor to stop the server: gracefully (SIGTERM, SIGKILL after the grace), or
    /// `now` (SIGKILL), its process group and what it left behind included.
    private func stopServer(now: Bool) {
        lock.withLock { watch }?.signal(now ? SIGINT : SIGTERM)
    }

    /// Reads newline-delimited messages from `out` and keeps the tail of `err` until `child`
    /// (the server's supervisor) has exited and both are closed, or `drainAfterExit` after the
    /// exit; returns its wait status. A server that closes its output is stopped.
    private func pump(stdout out: Int32, stderr err: Int32, exit: ChildExitWatch) -> Int32 {
        var outOpen = true
        var errOpen = true
        var line: [UInt8] = []
        var discarding = false
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var killAt: ContinuousClock.Instant?
        while true {
            exit.check()
            if exit.isFinished(pipesOpen: outOpen || errOpen) { break }
            if !exit.hasExited, !outOpen, killAt == nil {
                // Output closed: the server is gone or useless. Stop it (close() does so itself),
                // and its supervisor too if that never ends.
                if !lock.withLock({ closing }) { stopServer(now: false) }
                killAt = .now + Self.killGrace * 5
            }
            if !exit.hasExited, let k = killAt, ContinuousClock.now >= k {
                exit.signal(SIGKILL)
                killAt = nil
            }
            var fds: [pollfd] = []
            if outOpen { fds.append(pollfd(fd: out, events: Int16(POLLIN), revents: 0)) }
            if errOpen { fds.append(pollfd(fd: err, events: Int16(POLLIN), revents: 0)) }
            if let e = exit.pollEntry { fds.append(e) }
            if poll(&fds, nfds_t(fds.count), exit.pollTimeout(other: killAt)) < 0 {
                if errno == EINTR { continue }
                break
            }
            for entry in fds where entry.revents != 0 && !exit.isExitEntry(entry) {
                let n = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if n < 0, errno == EINTR || errno == EAGAIN { continue }
                if n <= 0 {
                    if entry.fd == out { outOpen = false } else { errOpen = false }
                    continue
                }
                if entry.fd == err {
                    lock.withLock {
                        stderrTail.append(contentsOf: buffer[..<n])
                        if stderrTail.count > Self.stderrTailBytes {
                            stderrTail.removeFirst(stderrTail.count - Self.stderrTailBytes)
                        }
                    }
                    continue
                }
                var start = 0
                for i in 0..<n where buffer[i] == UInt8(ascii: "\n") {
                    if !discarding {
                        line.append(contentsOf: buffer[start..<i])
                        handle(line)
                    }
                    discarding = false
                    line.removeAll(keepingCapacity: true)
                    start = i + 1
                }
                if !discarding { line.append(contentsOf: buffer[start..<n]) }
                if line.count > MCPProtocol.maxMessageBytes {
                    // A message this large is a broken server: stop it, and drop the rest of the line.
                    fail("sent a message over \(MCPProtocol.maxMessageBytes) bytes and was stopped")
                    line = []
                    discarding = true
                }
            }
        }
        // Only when poll itself failed is the supervisor still there.
        return exit.killAndWait()
    }

    /// The server broke the protocol: every request in flight (and any later one) fails at once
    /// with `why`, nothing more it sends is read, and it is stopped.
    private func fail(_ why: String) {
        let first = lock.withLock {
            let first = stopReason == nil
            if first { stopReason = why }
            alive = false
            return first
        }
        guard first else { return }
        pending.failAll(.protocolViolation("MCP server '\(serverName)' \(why)"))
        stopServer(now: true)
    }

    /// One line from the server: a response, a request (ping is answered, others refused) or
    /// a notification (ignored). Anything that is not JSON is a broken server.
    private func handle(_ line: [UInt8]) {
        guard lock.withLock({ stopReason == nil }) else { return }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return }
        let message: JSONValue
        do {
            message = try JSONValue.parse(text)
        } catch {
            let preview = text.count > 200 ? String(text.prefix(200)) + "…" : text
            fail("sent invalid JSON (\(error)) and was stopped: \(String(reflecting: preview))")
            return
        }
        if message["method"] == nil {
            pending.deliver(message)
            return
        }
        guard let id = message["id"], !id.isNull else { return }  // a notification
        let reply: JSONValue =
            message["method"]?.stringValue == "ping"
            ? ["jsonrpc": "2.0", "id": id, "result": [:]]
            : ["jsonrpc": "2.0", "id": id, "error": ["code": -32601, "message": "Method not found"]]
        Task { try? await write(reply) }
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
