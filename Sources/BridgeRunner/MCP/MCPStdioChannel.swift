import BridgeCore
import Foundation
import Synchronization

/// An MCP server run as a child process, speaking newline-delimited JSON-RPC on its stdin and
/// stdout (MCP's stdio transport).
///
/// - No shell: `command` is resolved on the child's `PATH` and started with `args` directly.
/// - The child's environment is exactly `environment` (see `MCPStdioChannel.environment`).
/// - The child runs through `ChildProcess` (BridgeCore): under a supervisor that stops the
///   server's process group and whatever it left behind (a grandchild that called setsid() and
///   holds stdout) when the server exits or is stopped, and that is itself stopped when the
///   child's I/O thread ends, which includes bridge being killed (PR_SET_PDEATHSIG): no orphans.
/// - The child's I/O thread reads stdout (messages) and stderr (the last few KB are kept for
///   error messages), so nothing blocks Swift's cooperative pool; writes go through a serial
///   dispatch queue. Reading stops at most `drainAfterExit` after the supervisor exits,
///   whoever still holds the pipes.
/// - When the server exits, every request in flight fails at once with `.disconnected`; when
///   it breaks the protocol (a line that is not JSON, a message over 16 MiB) they fail at once
///   with `.protocolViolation` and the server is stopped.
final class MCPStdioChannel: MCPChannel, Sendable {
    let serverName: String
    let pending = MCPPending()
    private struct State {
        var child: ChildProcess?
        var alive = false
        var stderrTail: [UInt8] = []
        var exitDescription: String?
        /// Why bridge stopped the server, when it did (kept over the signal that stopped it).
        var stopReason: String?
        var closing = false
        /// The message read so far (its line not yet ended), on the I/O thread.
        var line: [UInt8] = []
        /// The rest of an over-long line is dropped.
        var discarding = false
    }
    private let state = Mutex(State())
    /// Writes and the close of the server's input, in order (a full pipe blocks this queue only).
    private let writeQueue = DispatchQueue(label: "bridge.mcp.stdio.write")
    static let stderrTailBytes = 4_096
    static let killGrace: Duration = .seconds(2)
    /// How long output is still read once the server's supervisor has exited: anything that
    /// still holds the pipes then escaped it, and is not waited for.
    static let drainAfterExit: Duration = .seconds(1)

    private init(serverName: String) { self.serverName = serverName }

    /// Starts `command` and returns once it runs (or throws `.unavailable` when it cannot start).
    static func start(
        serverName: String, command: String, args: [String], environment: [String: String],
        cwd: String?
    ) async throws(MCPError) -> MCPStdioChannel {
        guard let path = ChildProcess.resolve(command, environment: Environment(environment)) else {
            throw .unavailable("cannot start MCP server '\(serverName)': command not found: \(command)")
        }
        let channel = MCPStdioChannel(serverName: serverName)
        var options = ChildProcess.Options()
        options.grace = killGrace
        options.drainAfterExit = drainAfterExit
        // Output closed: the server is gone or useless. It is stopped (close() does so itself),
        // and its supervisor too if that never ends.
        options.killAfterStdoutCloses = killGrace * 5
        options.threadName = "bridge-mcp-\(serverName)"
        // Messages are parsed on the I/O thread: room for the parser at its deepest (512 levels,
        // which a debug build needs about 1 MiB for). Only what is touched is committed.
        options.stackSize = 4 * 1024 * 1024
        var handlers = ChildProcess.Handlers()
        handlers.stdout = { _, chunk in channel.received(chunk) }
        handlers.stderr = { _, chunk in channel.receivedStderr(chunk) }
        handlers.stdoutClosed = { child in if !channel.state.withLock({ $0.closing }) { child.stop(now: false) } }
        handlers.exited = { child, termination in channel.exited(child, termination) }
        let child = ChildProcess(
            ChildProcess.Command(path: path, argv: [command] + args, environment: environment, directory: cwd),
            input: .pipe, options: options, handlers: handlers)
        channel.state.withLock {
            $0.child = child
            $0.alive = true
        }
        do {
            try await child.start()
        } catch {
            throw .unavailable("cannot start MCP server '\(serverName)' (\(path)): \(error.reason)")
        }
        return channel
    }

    var isAlive: Bool { state.withLock { $0.alive } }

    func setProtocolVersion(_ version: String) {}

    func request(_ method: String, params: JSONValue, timeout: Duration) async throws(MCPError) -> JSONValue {
        try await exchange(
            pending, method, params: params, timeout: timeout,
            send: { [self] (_, message) async throws(MCPError) in try await write(message) })
    }

    func notify(_ method: String, params: JSONValue) async throws(MCPError) {
        try await write(["jsonrpc": "2.0", "method": .string(method), "params": params])
    }

    /// Writes one message and a newline (on `writeQueue`: a full pipe blocks that queue only).
    private func write(_ message: JSONValue) async throws(MCPError) {
        let bytes = Array((message.compact + "\n").utf8)
        let error: MCPError? = await withCheckedContinuation { c in
            writeQueue.async { [self] in
                let child = state.withLock { $0.alive && !$0.closing ? $0.child : nil }
                guard let child, child.write(bytes) else {
                    c.resume(returning: .disconnected(exitMessage()))
                    return
                }
                c.resume(returning: nil)
            }
        }
        if let error { throw error }
    }

    /// How the server ended (`during` a request, when given), with the end of its stderr.
    func exitMessage(during method: String? = nil) -> String {
        let (how, tail) = state.withLock { ($0.exitDescription, $0.stderrTail) }
        var text =
            "MCP server '\(serverName)' " + (how ?? "closed its connection") + (method.map { " during \($0)" } ?? "")
        let err = String(decoding: tail, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if !err.isEmpty { text += "; stderr: " + String(err.suffix(600)) }
        return text
    }

    func close() async {
        let (child, alive) = state.withLock { s in
            s.closing = true
            return (s.child, s.alive)
        }
        // The spec's shutdown: close the server's input, wait, SIGTERM, wait, SIGKILL.
        // Queued behind any write in progress, never waited for here: a write blocked on a server
        // that stopped reading would otherwise hold this (cooperative) thread until the kill below,
        // which never comes. The kill ends such a write (EPIPE), and then the input is closed.
        writeQueue.async { child?.closeInput() }
        guard let child, alive else { return }
        guard await child.wait(within: Self.killGrace) == nil else { return }
        // The supervisor stops the server (SIGTERM, SIGKILL after the grace) and whatever it left
        // behind; it is killed itself only if that never ends.
        child.stop(now: false)
        guard await child.wait(within: Self.killGrace * 5) == nil else { return }
        child.kill()
        // Bounded: the I/O thread stops reading soon after the exit (`drainAfterExit`).
        _ = await child.wait()
    }

    // MARK: On the child's I/O thread

    /// The server has exited (and its output is read): requests in flight fail.
    private func exited(_ child: ChildProcess, _ termination: ChildTermination) {
        state.withLock { s in
            s.alive = false
            // Why bridge stopped it (a message over the limit, invalid JSON) says more than the signal.
            s.exitDescription = s.stopReason ?? termination.description
        }
        writeQueue.async { child.closeInput() }
        pending.failAll(.disconnected(exitMessage()))
    }

    /// The end of stderr is kept for error messages.
    private func receivedStderr(_ chunk: ArraySlice<UInt8>) {
        state.withLock { s in
            s.stderrTail.append(contentsOf: chunk)
            if s.stderrTail.count > Self.stderrTailBytes {
                s.stderrTail.removeFirst(s.stderrTail.count - Self.stderrTailBytes)
            }
        }
    }

    /// Splits stdout into newline-delimited messages and handles each one.
    private func received(_ chunk: ArraySlice<UInt8>) {
        let (lines, overflow) = state.withLock { s -> ([[UInt8]], Bool) in
            var lines: [[UInt8]] = []
            var start = chunk.startIndex
            for i in chunk.indices where chunk[i] == UInt8(ascii: "\n") {
                if !s.discarding { lines.append(s.line + chunk[start..<i]) }
                s.discarding = false
                s.line.removeAll(keepingCapacity: true)
                start = i + 1
            }
            if !s.discarding { s.line.append(contentsOf: chunk[start...]) }
            guard s.line.count > MCPProtocol.maxMessageBytes else { return (lines, false) }
            s.line = []
            s.discarding = true
            return (lines, true)
        }
        for line in lines { handle(line) }
        if overflow {
            // A message this large is a broken server: stop it, and drop the rest of the line.
            fail("sent a message over \(MCPProtocol.maxMessageBytes) bytes and was stopped")
        }
    }

    /// The server broke the protocol: every request in flight (and any later one) fails at once
    /// with `why`, nothing more it sends is read, and it is stopped.
    private func fail(_ why: String) {
        let first = state.withLock { s in
            let first = s.stopReason == nil
            if first { s.stopReason = why }
            s.alive = false
            return first
        }
        guard first else { return }
        pending.failAll(.protocolViolation("MCP server '\(serverName)' \(why)"))
        state.withLock { $0.child }?.stop(now: true)
    }

    /// One line from the server: a response, a request (ping is answered, others refused) or
    /// a notification (ignored). Anything that is not JSON is a broken server.
    private func handle(_ line: [UInt8]) {
        guard state.withLock({ $0.stopReason == nil }) else { return }
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
