import BridgeCore
import BridgeMapping
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
///   `killGracePeriod`, and the call fails with a `ToolFailure`.
/// - Output over `max_bytes` stops the child the same way and is a `ToolFailure` (not a
///   truncation).
/// - A non-zero exit (or death by a signal) is a `ToolFailure` with the exit code and the
///   start of stderr; a missing or non-executable program is a `ToolFailure` naming it.
///
/// Nothing blocks Swift's cooperative pool: the pipes are read and written on Dispatch
/// queues and the exit arrives through `Process.terminationHandler`.
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
        if !context.idempotencyKey.isEmpty { childEnvironment[IdempotencyKey.environmentVariable] = context.idempotencyKey }
        let run = CommandRun(path: path, arguments: Array(spec.argv.dropFirst()),
                             environment: childEnvironment,
                             stdin: Array(arguments.compact.utf8), maxStdout: max(0, spec.maxBytes),
                             stderrPrefix: Self.stderrPrefixBytes)
        let outcome = try await run.run(timeout: .milliseconds(max(1, spec.timeoutMs)), grace: killGracePeriod)
        let stderrText = String(decoding: outcome.stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if outcome.timedOut {
            throw ToolFailure("command timed out after \(spec.timeoutMs) ms and was killed",
                              data: ["argv0": .string(program), "timeout_ms": .number(Double(spec.timeoutMs))])
        }
        if outcome.stdoutExceeded {
            throw ToolFailure("command output exceeds max_bytes (\(spec.maxBytes) bytes); the command was stopped",
                              data: ["argv0": .string(program), "max_bytes": .number(Double(spec.maxBytes))])
        }
        switch outcome.termination {
        case .exit(0):
            let (text, replaced) = TextSafety.decode(outcome.stdout)
            context.notes.add(replaced)
            return text
        case .exit(let code):
            throw ToolFailure("command exited with status \(code)" + (stderrText.isEmpty ? "" : ": \(stderrText)"),
                              data: ["exit_code": .number(Double(code)), "stderr": .string(stderrText)])
        case .signal(let signal):
            throw ToolFailure("command was killed by signal \(signal)" + (stderrText.isEmpty ? "" : ": \(stderrText)"),
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
                  files.isExecutableFile(atPath: program) else { return nil }
            return program
        }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(program)"
            var isDirectory: ObjCBool = false
            if files.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue,
               files.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }
}

/// One child process run to completion: stdin written, stdout and stderr collected, the exit
/// awaited, with a timeout.
///
/// `@unchecked Sendable`: the mutable state below `lock` is only touched with it held.
final class CommandRun: @unchecked Sendable {
    enum Termination: Equatable { case exit(Int32), signal(Int32) }

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

    private let lock = NSLock()
    private var stdout: [UInt8] = []
    private var stderr: [UInt8] = []
    private var timedOut = false
    private var stdoutExceeded = false
    private var exited = false
    private var pid: pid_t = 0
    private var stopRequested = false
    private var startError: String?

    init(path: String, arguments: [String], environment: [String: String], stdin: [UInt8], maxStdout: Int, stderrPrefix: Int) {
        self.path = path
        self.arguments = arguments
        self.environment = environment
        self.stdin = stdin
        self.maxStdout = maxStdout
        self.stderrPrefix = stderrPrefix
    }

    func run(timeout: Duration, grace: Duration) async throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = environment
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors

        let done = DispatchGroup()
        done.enter()  // the exit
        done.enter()  // the I/O thread
        process.terminationHandler = { [self] _ in
            lock.withLock { exited = true }
            done.leave()
        }
        let queue = DispatchQueue.global()

        // The child is started, fed and drained on a thread of its own:
        // - Swift's and Dispatch's worker threads block most signals (SIGTERM, SIGINT, …) and
        //   posix_spawn passes the spawning thread's mask on, so a child spawned there could
        //   not be stopped with SIGTERM; this thread clears its mask for the spawn.
        // - Blocking pipe I/O parked on Dispatch's global queues starves them (their width
        //   grows slowly) and on the cooperative pool it starves Swift concurrency.
        let io = Thread { [self] in
            var none = sigset_t(), previous = sigset_t()
            sigemptyset(&none)
            pthread_sigmask(SIG_SETMASK, &none, &previous)
            let started: Bool
            do {
                try process.run()
                started = true
            } catch {
                lock.withLock { startError = "\(error.localizedDescription)" }
                started = false
            }
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            guard started else {
                for handle in [input.fileHandleForWriting, output.fileHandleForReading, errors.fileHandleForReading] {
                    try? handle.close()
                }
                done.leave()  // no exit will come
                done.leave()
                return
            }
            let stopEarly = lock.withLock {
                pid = process.processIdentifier
                return stopRequested
            }
            // After the exit, a late timer finds `exited` set and does nothing.
            queue.asyncAfter(deadline: .now() + .milliseconds(Self.milliseconds(timeout))) { [self] in
                let expired = lock.withLock {
                    if !exited { timedOut = true }
                    return timedOut
                }
                if expired { stop(grace: grace) }
            }
            if stopEarly { stop(grace: grace) }
            pumpPipes(stdin: input.fileHandleForWriting, stdout: output.fileHandleForReading, stderr: errors.fileHandleForReading)
            done.leave()
        }
        io.name = "bridge-command-io"
        io.stackSize = 256 * 1024
        io.start()

        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                done.notify(queue: queue) { continuation.resume() }
            }
        } onCancel: {
            self.stop(grace: grace)
        }
        if let reason = lock.withLock({ startError }) {
            throw ToolFailure("cannot start \(path): \(reason)", data: ["argv0": .string(path)])
        }
        try Task.checkCancellation()

        let termination: Termination = process.terminationReason == .uncaughtSignal
            ? .signal(process.terminationStatus) : .exit(process.terminationStatus)
        return lock.withLock {
            Outcome(termination: termination, stdout: stdout, stderr: stderr,
                    timedOut: timedOut, stdoutExceeded: stdoutExceeded)
        }
    }

    /// SIGTERM to the child's process group (Foundation starts it in its own group), then
    /// SIGKILL after `grace` if it is still there.
    private func stop(grace: Duration) {
        lock.lock()
        stopRequested = true
        let target = pid
        let alreadyExited = exited
        lock.unlock()
        guard target > 0, !alreadyExited else { return }
        kill(-target, SIGTERM)
        kill(target, SIGTERM)
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Self.milliseconds(grace))) { [self] in
            lock.lock()
            let stillRunning = !exited
            lock.unlock()
            // The group outlives the leader if a grandchild ignores SIGTERM; kill it regardless.
            kill(-target, SIGKILL)
            if stillRunning { kill(target, SIGKILL) }
        }
    }

    private func appendStdout(_ chunk: ArraySlice<UInt8>) {
        lock.lock()
        let overflow = stdout.count + chunk.count > maxStdout
        if overflow {
            let firstOverflow = !stdoutExceeded
            stdoutExceeded = true
            lock.unlock()
            if firstOverflow { stop(grace: .milliseconds(200)) }
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

    /// Writes `stdin` to the child and reads its stdout and stderr to EOF, multiplexed with
    /// `poll` on non-blocking descriptors; closes all three. SIGPIPE is blocked on this thread,
    /// so a child that exits without reading its input makes the write fail with EPIPE instead
    /// of killing bridge, and the process-wide disposition (which children inherit) is untouched.
    private func pumpPipes(stdin input: FileHandle, stdout output: FileHandle, stderr errors: FileHandle) {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)

        var inFD: Int32? = input.fileDescriptor
        var outFD: Int32? = output.fileDescriptor
        var errFD: Int32? = errors.fileDescriptor
        for fd in [inFD, outFD, errFD].compactMap({ $0 }) {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        var written = 0
        if stdin.isEmpty {
            try? input.close()
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

        while inFD != nil || outFD != nil || errFD != nil {
            var fds: [pollfd] = []
            if let fd = inFD { fds.append(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)) }
            if let fd = outFD { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if let fd = errFD { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            for entry in fds where entry.revents != 0 {
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
                        try? input.close()
                        inFD = nil
                    }
                } else if entry.fd == outFD {
                    if !readAvailable(entry.fd, { appendStdout($0) }) {
                        try? output.close()
                        outFD = nil
                    }
                } else if entry.fd == errFD {
                    if !readAvailable(entry.fd, { appendStderr($0) }) {
                        try? errors.close()
                        errFD = nil
                    }
                }
            }
        }
        if inFD != nil { try? input.close() }
        if outFD != nil { try? output.close() }
        if errFD != nil { try? errors.close() }
        // Discard a SIGPIPE left pending by a failed write.
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        while sigtimedwait(&pipeSignal, nil, &zero) == SIGPIPE {}
    }

    private static func milliseconds(_ d: Duration) -> Int {
        let (s, atto) = d.components
        return max(0, Int(s) * 1000 + Int(atto / 1_000_000_000_000_000))
    }
}
