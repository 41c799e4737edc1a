import BridgeCore
import BridgeMapping
import CBridgeSpawn
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Runs `command` tools: starts `argv` directly (no shell), writes the tool's JSON arguments
/// (compact) to its stdin, and returns its stdout as the tool's output.
///
/// - `argv[0]` containing a `/` is used as is; otherwise it is looked up on `PATH` from the
///   injected `Environment`. The child sees only PATH, HOME, LANG and TZ from it plus the
///   tool's `env:` allowlist (`ChildEnvironment`): never API keys or `PG*` by default.
/// - `timeout_ms` bounds the run: the child's process group gets SIGTERM, then SIGKILL after
///   `killGracePeriod`, and the call fails with a `ToolFailure`. The child runs under
///   `bridge_spawn`'s supervisor: what it leaves behind is stopped too, and never keeps the
///   call waiting (its output is read for at most a second after the child exits).
/// - Output over `max_bytes` stops the child the same way and is a `ToolFailure` (not a
///   truncation).
/// - A non-zero exit (or death by a signal) is a `ToolFailure` with the exit code and the
///   start of stderr; a missing or non-executable program is a `ToolFailure` naming it.
///
/// Nothing blocks Swift's cooperative pool: the pipes are read and written, and the child
/// reaped, on a thread of its own.
public struct CommandToolExecutor: ToolExecutor {
    public let environment: Environment
    /// Time between SIGTERM and SIGKILL when a command is stopped.
    public let killGracePeriod: Duration
    /// How much of stderr a failure quotes.
    public static let stderrPrefixBytes = 2_048

    public init(environment: Environment = .process, killGracePeriod: Duration = .seconds(1)) {
        self.environment = environment
        self.killGracePeriod = killGracePeriod
    }

    public func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        guard case .command(let spec) = tool.implementation else {
            throw ToolFailure("tool '\(tool.name)' is not a command tool")
        }
        guard let program = spec.argv.first, !program.isEmpty else {
            throw ToolFailure("tool '\(tool.name)' has an empty argv")
        }
        guard let path = Self.resolve(program, environment: environment) else {
            throw ToolFailure("command not found: \(program)", data: ["argv0": .string(program)])
        }
        var childEnvironment = ChildEnvironment.make(from: environment, allow: spec.env)
        // The call's stable key: a repeat after an interruption carries the same one.
        if !context.idempotencyKey.isEmpty {
            childEnvironment[IdempotencyKey.environmentVariable] = context.idempotencyKey
        }
        let run = CommandRun(
            path: path, arguments: Array(spec.argv.dropFirst()),
            environment: childEnvironment,
            stdin: Array(arguments.compact.utf8), maxStdout: max(0, spec.maxBytes),
            stderrPrefix: Self.stderrPrefixBytes)
        let outcome = try await run.run(timeout: .milliseconds(max(1, spec.timeoutMs)), grace: killGracePeriod)
        let stderrText = String(decoding: outcome.stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if outcome.timedOut {
            throw ToolFailure(
                "command timed out after \(spec.timeoutMs) ms and was killed",
                data: ["argv0": .string(program), "timeout_ms": .number(Double(spec.timeoutMs))])
        }
        if outcome.stdoutExceeded {
            throw ToolFailure(
                "command output exceeds max_bytes (\(spec.maxBytes) bytes); the command was stopped",
                data: ["argv0": .string(program), "max_bytes": .number(Double(spec.maxBytes))])
        }
        switch outcome.termination {
        case .exit(0):
            let (text, replaced) = TextSafety.decode(outcome.stdout)
            context.notes.add(replaced)
            return text
        case .exit(let code):
            throw ToolFailure(
                "command exited with status \(code)" + (stderrText.isEmpty ? "" : ": \(stderrText)"),
                data: ["exit_code": .number(Double(code)), "stderr": .string(stderrText)])
        case .signal(let signal):
            throw ToolFailure(
                "command was killed by signal \(signal)" + (stderrText.isEmpty ? "" : ": \(stderrText)"),
                data: ["signal": .number(Double(signal)), "stderr": .string(stderrText)])
        }
    }

    /// The executable for `program`: itself when it contains `/`, else the first executable
    /// `PATH` entry (default `/usr/local/bin:/usr/bin:/bin`). Nil when there is none.
    static func resolve(_ program: String, environment: Environment) -> String? {
        let files = FileManager.default
        if program.contains("/") {
            var isDirectory: ObjCBool = false
            guard files.fileExists(atPath: program, isDirectory: &isDirectory), !isDirectory.boolValue,
                files.isExecutableFile(atPath: program)
            else { return nil }
            return program
        }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(program)"
            var isDirectory: ObjCBool = false
            if files.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
                files.isExecutableFile(atPath: candidate)
            {
                return candidate
            }
        }
        return nil
    }
}

/// One child process run to completion: stdin written, stdout and stderr collected, the exit
/// awaited, with a timeout. The child runs under `bridge_spawn`'s supervisor, like MCP servers:
/// whatever it leaves behind (a grandchild that called setsid() and holds stdout) is stopped when
/// it exits, and its pipes are read for at most `drainAfterExit` after that.
///
/// `@unchecked Sendable`: the mutable state below `lock` is only touched with it held.
final class CommandRun: @unchecked Sendable {
    enum Termination: Equatable {
        case exit(Int32)
        case signal(Int32)
    }

    struct Outcome {
        var termination: Termination
        var stdout: [UInt8]
        var stderr: [UInt8]
        var timedOut: Bool
        var stdoutExceeded: Bool
    }

    let path: String
    let arguments: [String]
    let environment: [String: String]
    let stdin: [UInt8]
    let maxStdout: Int
    let stderrPrefix: Int
    static let drainAfterExit: Duration = .seconds(1)

    private let lock = NSLock()
    private var stdout: [UInt8] = []
    private var stderr: [UInt8] = []
    private var timedOut = false
    private var stdoutExceeded = false
    private var exited = false
    private var status: Int32 = 0
    /// The supervisor's exit (and the only way to signal it: never once it is reaped).
    private var watch: ChildExitWatch?
    private var stopRequested = false
    private var startError: String?

    init(
        path: String, arguments: [String], environment: [String: String], stdin: [UInt8], maxStdout: Int,
        stderrPrefix: Int
    ) {
        self.path = path
        self.arguments = arguments
        self.environment = environment
        self.stdin = stdin
        self.maxStdout = maxStdout
        self.stderrPrefix = stderrPrefix
    }

    func run(timeout: Duration, grace: Duration) async throws -> Outcome {
        let done = DispatchGroup()
        done.enter()
        // The child is started, fed, drained and reaped on a thread of its own: blocking pipe I/O
        // and waitpid parked on Dispatch's global queues starve them (their width grows slowly),
        // and on the cooperative pool they starve Swift concurrency.
        let io = Thread { [self] in
            runChild(timeout: timeout, grace: grace)
            done.leave()
        }
        io.name = "bridge-command-io"
        io.stackSize = 256 * 1024
        io.start()

        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                done.notify(queue: .global()) { continuation.resume() }
            }
        } onCancel: {
            self.stop(now: false)
        }
        if let reason = lock.withLock({ startError }) {
            throw ToolFailure("cannot start \(path): \(reason)", data: ["argv0": .string(path)])
        }
        try Task.checkCancellation()
        return lock.withLock {
            let termination: Termination = status & 0x7f == 0 ? .exit((status >> 8) & 0xff) : .signal(status & 0x7f)
            return Outcome(
                termination: termination, stdout: stdout, stderr: stderr,
                timedOut: timedOut, stdoutExceeded: stdoutExceeded)
        }
    }

    /// On the I/O thread: spawns the child (its supervisor's death signal is tied to this
    /// thread), arms the timeout, pumps the pipes until the exit, and records the status.
    private func runChild(timeout: Duration, grace: Duration) {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
        var inPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard bridge_pipe_cloexec(&inPipe) == 0, bridge_pipe_cloexec(&outPipe) == 0, bridge_pipe_cloexec(&errPipe) == 0
        else {
            let why = String(cString: strerror(errno))
            for fd in inPipe + outPipe + errPipe where fd >= 0 { _ = close(fd) }
            lock.withLock { startError = "pipe: \(why)" }
            return
        }
        var spawnError: Int32 = 0
        let child: pid_t = withCStrings([path] + arguments) { cArgv in
            withCStrings(environment.map { "\($0.key)=\($0.value)" }.sorted()) { cEnv in
                bridge_spawn(
                    path, cArgv, cEnv, nil, inPipe[0], outPipe[1], errPipe[1],
                    Int32(clamping: Self.milliseconds(grace)), &spawnError)
            }
        }
        _ = close(inPipe[0])
        _ = close(outPipe[1])
        _ = close(errPipe[1])
        guard child > 0 else {
            _ = close(inPipe[1])
            _ = close(outPipe[0])
            _ = close(errPipe[0])
            lock.withLock { startError = String(cString: strerror(spawnError)) }
            return
        }
        let exit = ChildExitWatch(pid: child, drain: Self.drainAfterExit)
        let stopEarly = lock.withLock {
            watch = exit
            return stopRequested
        }
        // After the exit, a late timer finds `exited` set and does nothing.
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Self.milliseconds(timeout))) { [self] in
            let expired = lock.withLock {
                if !exited { timedOut = true }
                return timedOut
            }
            if expired { stop(now: false) }
        }
        if stopEarly { stop(now: false) }
        let st = pumpPipes(stdin: inPipe[1], stdout: outPipe[0], stderr: errPipe[0], exit: exit)
        lock.withLock {
            exited = true
            status = st
        }
    }

    /// Asks the child's supervisor to stop it and whatever it started: SIGTERM to its process
    /// group, SIGKILL after the grace (or at once with `now`).
    private func stop(now: Bool) {
        let target = lock.withLock { () -> ChildExitWatch? in
            stopRequested = true
            return watch
        }
        target?.signal(now ? SIGINT : SIGTERM)
    }

    private func appendStdout(_ chunk: ArraySlice<UInt8>) {
        lock.lock()
        let overflow = stdout.count + chunk.count > maxStdout
        if overflow {
            let firstOverflow = !stdoutExceeded
            stdoutExceeded = true
            lock.unlock()
            if firstOverflow { stop(now: true) }
            return
        }
        stdout.append(contentsOf: chunk)
        lock.unlock()
    }

    private func appendStderr(_ chunk: ArraySlice<UInt8>) {
        lock.lock()
        let room = stderrPrefix - stderr.count
        if room > 0 { stderr.append(contentsOf: chunk.prefix(room)) }
        lock.unlock()
    }

    /// Writes `stdin` to the child and reads its stdout and stderr, multiplexed with `poll` on
    /// non-blocking descriptors, until the child (its supervisor) has exited and they closed, or
    /// `drainAfterExit` after the exit; closes all three and returns the wait status. SIGPIPE is
    /// blocked on this thread, so a child that exits without reading its input makes the write
    /// fail with EPIPE instead of killing bridge, and the process-wide disposition (which
    /// children inherit) is untouched.
    private func pumpPipes(stdin input: Int32, stdout output: Int32, stderr errors: Int32, exit: ChildExitWatch)
        -> Int32
    {
        var inFD: Int32? = input
        var outFD: Int32? = output
        var errFD: Int32? = errors
        for fd in [input, output, errors] {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        var written = 0
        if stdin.isEmpty {
            _ = close(input)
            inFD = nil
        }
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)

        /// Reads what is available; false at EOF or on an error.
        func readAvailable(_ fd: Int32, _ consume: (ArraySlice<UInt8>) -> Void) -> Bool {
            while true {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    consume(buffer[..<n])
                } else if n < 0, errno == EINTR {
                    continue
                } else if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                    return true
                } else {
                    return false
                }
            }
        }

        while true {
            exit.check()
            if exit.isFinished(pipesOpen: outFD != nil || errFD != nil) { break }
            if exit.hasExited, let fd = inFD {
                // Nobody will read the rest of the input.
                _ = close(fd)
                inFD = nil
            }
            var fds: [pollfd] = []
            if let fd = inFD { fds.append(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)) }
            if let fd = outFD { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if let fd = errFD { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if let e = exit.pollEntry { fds.append(e) }
            if poll(&fds, nfds_t(fds.count), exit.pollTimeout()) < 0 {
                if errno == EINTR { continue }
                break
            }
            for entry in fds where entry.revents != 0 && !exit.isExitEntry(entry) {
                if entry.fd == inFD {
                    var failed = entry.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0
                    while !failed, written < stdin.count {
                        let n = stdin.withUnsafeBytes { write(entry.fd, $0.baseAddress! + written, $0.count - written) }
                        if n > 0 {
                            written += n
                        } else if n < 0, errno == EINTR {
                            continue
                        } else if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                            break
                        } else {
                            failed = true
                        }
                    }
                    if failed || written == stdin.count {
                        _ = close(entry.fd)
                        inFD = nil
                    }
                } else if entry.fd == outFD {
                    if !readAvailable(entry.fd, { appendStdout($0) }) {
                        _ = close(entry.fd)
                        outFD = nil
                    }
                } else if entry.fd == errFD {
                    if !readAvailable(entry.fd, { appendStderr($0) }) {
                        _ = close(entry.fd)
                        errFD = nil
                    }
                }
            }
        }
        for fd in [inFD, outFD, errFD].compactMap({ $0 }) { _ = close(fd) }
        // Discard a SIGPIPE left pending by a failed write.
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        while sigtimedwait(&pipeSignal, nil, &zero) == SIGPIPE {}
        // Only when poll itself failed is the supervisor still there.
        return exit.killAndWait()
    }

    private static func milliseconds(_ d: Duration) -> Int {
        let (s, atto) = d.components
        return max(0, Int(s) * 1000 + Int(atto / 1_000_000_000_000_000))
    }
}
