import CBridgeSpawn
import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// How a child process ended.
public enum ChildTermination: Equatable, Sendable, CustomStringConvertible {
    case exit(Int32)
    case signal(Int32)

    /// From a `waitpid` status.
    public init(waitStatus status: Int32) {
        self = status & 0x7f == 0 ? .exit((status >> 8) & 0xff) : .signal(status & 0x7f)
    }

    /// "exited with status N" or "was killed by signal N".
    public var description: String {
        switch self {
        case .exit(let code): return "exited with status \(code)"
        case .signal(let sig): return "was killed by signal \(sig)"
        }
    }
}

/// Why a child could not be started: the text of the failing step ("pipe: …", or the errno of
/// fork or exec).
public struct ChildStartError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
    public init(reason: String) { self.reason = reason }
}

/// bridge's one way to run a child process (command tools, MCP stdio servers, the tests' helper).
///
/// - No shell: `Command.path` is executed with `Command.argv` and exactly `Command.environment`
///   (callers build it with `ChildEnvironment`: a minimal environment plus an allowlist).
/// - The child runs under `bridge_spawn`'s supervisor (CBridgeSpawn): it leads a process group of
///   its own; when it exits, or is stopped, the supervisor (a subreaper) stops its group and
///   whatever it left behind, even a grandchild that called setsid(); the supervisor dies with
///   the thread that spawned it (PR_SET_PDEATHSIG), and the child with the supervisor, so a
///   killed bridge leaves no orphans.
/// - One thread of its own per child spawns it (the death signal is tied to that thread), feeds
///   its stdin, reads stdout and stderr into `Handlers` and reaps it: nothing blocks Swift's
///   cooperative pool. Output is read for at most `Options.drainAfterExit` after the exit,
///   whoever still holds the pipes.
/// - `Options.deadline` bounds the whole run: then the group gets SIGTERM, and SIGKILL after
///   `Options.grace`.
///
/// swift-subprocess is not used: it has no way to set PR_SET_PDEATHSIG or a subreaper between
/// fork and exec on Linux (see the README's Dependencies).
public final class ChildProcess: Sendable {
    /// What to run.
    @MemberwiseInit
    public struct Command: Sendable {
        /// The executable (see `resolve`).
        public var path: String
        /// The whole argument vector, `argv[0]` first.
        public var argv: [String]
        /// Exactly the child's environment.
        public var environment: [String: String]
        /// The working directory; nil: bridge's.
        public var directory: String? = nil
    }

    /// The child's stdin: these bytes, then end of file (written as the child reads them, and
    /// dropped when it exits first), or a pipe that the owner writes with `write(_:)`.
    public enum Input: Sendable {
        case bytes([UInt8])
        case pipe
    }

    public struct Options: Sendable {
        /// Between SIGTERM and SIGKILL when the child is stopped.
        public var grace: Duration = .seconds(1)
        /// How long output is still read once the child has exited.
        public var drainAfterExit: Duration = .seconds(1)
        /// From the start to the end of the run: then the child is stopped and `timedOut` holds.
        public var deadline: Duration?
        /// When stdout ends while the child runs, the supervisor itself is killed if it has not
        /// ended this much later (it stops the child and what it left first; see `Handlers`).
        public var killAfterStdoutCloses: Duration?
        /// Under the supervisor (the default). Without it (the tests run bridge itself so, to see
        /// what bridge leaves behind) the child is forked directly, leads its own process group
        /// and gets SIGKILL when its I/O thread ends, but nothing it leaves behind is stopped;
        /// `stop` signals its process group (SIGTERM, or SIGKILL `now`).
        public var supervised = true
        /// The I/O thread's name and stack size (handlers run on it).
        public var threadName = "bridge-child-io"
        public var stackSize = 256 * 1024
        public init() {}
    }

    /// Called on the child's I/O thread, one at a time.
    public struct Handlers: Sendable {
        public var stdout: @Sendable (ChildProcess, ArraySlice<UInt8>) -> Void = { _, _ in }
        public var stderr: @Sendable (ChildProcess, ArraySlice<UInt8>) -> Void = { _, _ in }
        /// Once, when stdout reaches end of file while the child still runs.
        public var stdoutClosed: @Sendable (ChildProcess) -> Void = { _ in }
        /// Once, after the exit and the last output, before `wait` returns.
        public var exited: @Sendable (ChildProcess, ChildTermination) -> Void = { _, _ in }
        public init() {}
    }

    private struct State {
        /// The supervisor's pid once spawned (the child's when not `supervised`; 0 before).
        var supervisor: pid_t = 0
        /// The supervisor's wait status once reaped: from then on it is never signalled (its pid
        /// may be another process's).
        var reaped: Int32?
        /// A signal asked for before the spawn, sent right after it.
        var pendingSignal: (Int32, toGroup: Bool)?
        var timedOut = false
        /// The write end of stdin with `Input.pipe`.
        var inputFD: Int32 = -1
        var ended: ChildTermination?
        var waiters: [Int: @Sendable (ChildTermination?) -> Void] = [:]
        var nextWaiter = 0
        var cancelledWaiters: Set<Int> = []
    }

    public let command: Command
    let input: Input
    let options: Options
    let handlers: Handlers
    private let state = Mutex(State())

    /// A child not yet started (`start`): `stop` may already be called.
    public init(_ command: Command, input: Input = .bytes([]), options: Options = Options(), handlers: Handlers) {
        self.command = command
        self.input = input
        self.options = options
        self.handlers = handlers
    }

    /// Spawns the child on its own I/O thread and returns once it runs.
    public func start() async throws(ChildStartError) {
        let started: Result<Void, ChildStartError> = await withCheckedContinuation { c in
            launch { c.resume(returning: $0) }
        }
        try started.get()
    }

    /// `start` for a thread that may block (never Swift's cooperative pool).
    public func startBlocking() throws(ChildStartError) {
        final class Outcome: Sendable {
            let result = Mutex<Result<Void, ChildStartError>?>(nil)
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        launch { result in
            outcome.result.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        try outcome.result.withLock { $0 }!.get()
    }

    private func launch(_ started: @escaping @Sendable (Result<Void, ChildStartError>) -> Void) {
        let thread = Thread { [self] in ChildPump.run(self, started: started) }
        thread.name = options.threadName
        thread.stackSize = options.stackSize
        thread.start()
    }

    // MARK: Control (from anywhere)

    /// Asks the supervisor to stop the child, its process group and what it left behind:
    /// SIGTERM, SIGKILL after the grace; `now`: SIGKILL at once. Unsupervised: SIGTERM (or
    /// SIGKILL `now`) to the child's process group.
    public func stop(now: Bool) {
        if options.supervised {
            send(now ? SIGINT : SIGTERM, toGroup: false)
        } else {
            send(now ? SIGKILL : SIGTERM, toGroup: true)
        }
    }

    /// Kills the supervisor itself (the child gets SIGKILL through its death signal);
    /// unsupervised, the child's process group.
    public func kill() { send(SIGKILL, toGroup: !options.supervised) }

    /// Sends `sig` to the process started: the supervisor, or the child itself when unsupervised.
    public func signal(_ sig: Int32) { send(sig, toGroup: false) }

    /// The pid of the process started (the supervisor, or the child when unsupervised); nil
    /// before the spawn.
    public var pid: pid_t? { state.withLock { $0.supervisor == 0 ? nil : $0.supervisor } }

    /// Sends `sig` to the process started (or its group), unless it has been reaped (reaping and
    /// signalling hold the same lock, so the pid cannot be reused in between); asked before the
    /// spawn, right after it.
    private func send(_ sig: Int32, toGroup: Bool) {
        state.withLock { s in
            if s.supervisor == 0 {
                if s.pendingSignal == nil || sig == SIGKILL || sig == SIGINT { s.pendingSignal = (sig, toGroup) }
            } else if s.reaped == nil {
                _ = Glibc.kill(toGroup ? -s.supervisor : s.supervisor, sig)
            }
        }
    }

    /// Whether the deadline passed before the run ended.
    public var timedOut: Bool { state.withLock { $0.timedOut } }

    /// How it ended, once it has (the output read and `Handlers.exited` run).
    public var termination: ChildTermination? { state.withLock { $0.ended } }

    // MARK: Input.pipe (from one serial context: writes and the close never overlap)

    /// Writes all of `bytes` to the child's stdin, blocking while the pipe is full; false when
    /// the input is closed or the child stopped reading.
    public func write(_ bytes: [UInt8]) -> Bool {
        let fd = state.withLock { $0.inputFD }
        guard fd >= 0 else { return false }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n > 0 {
                written += n
            } else if n < 0, errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    /// Closes the child's stdin (end of file for it). Also the owner's duty after the exit.
    public func closeInput() {
        let fd = state.withLock { s in
            defer { s.inputFD = -1 }
            return s.inputFD
        }
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    // MARK: Waiting

    /// Waits for the end of the run (not on a thread: the caller is suspended); nil when the
    /// task is cancelled first.
    public func wait() async -> ChildTermination? {
        let id = state.withLock { s in
            defer { s.nextWaiter += 1 }
            return s.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<ChildTermination?, Never>) in
                let now: ChildTermination?? = state.withLock { s in
                    if let ended = s.ended { return .some(ended) }
                    if s.cancelledWaiters.remove(id) != nil { return .some(nil) }
                    s.waiters[id] = { c.resume(returning: $0) }
                    return .none
                }
                if let now { c.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLock { s in
                let w = s.waiters.removeValue(forKey: id)
                if w == nil, s.ended == nil { s.cancelledWaiters.insert(id) }
                return w
            }
            waiter?(nil)
        }
    }

    /// Waits for the end of the run, whether the task is cancelled or not.
    func ended() async -> ChildTermination {
        await withCheckedContinuation { (c: CheckedContinuation<ChildTermination, Never>) in
            let now: ChildTermination? = state.withLock { s in
                if let ended = s.ended { return ended }
                s.waiters[-1 - s.nextWaiter] = { c.resume(returning: $0!) }
                s.nextWaiter += 1
                return nil
            }
            if let now { c.resume(returning: now) }
        }
    }

    /// `wait`, for at most `limit`; nil when the run has not ended by then.
    public func wait(within limit: Duration) async -> ChildTermination? {
        await withTaskGroup(of: ChildTermination?.self) { group in
            group.addTask { await self.wait() }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    /// `wait` for a thread that may block (never Swift's cooperative pool).
    public func waitBlocking() -> ChildTermination {
        let done = DispatchSemaphore(value: 0)
        let ended: ChildTermination? = state.withLock { s in
            if let ended = s.ended { return ended }
            s.waiters[-1 - s.nextWaiter] = { _ in done.signal() }
            s.nextWaiter += 1
            return nil
        }
        if let ended { return ended }
        done.wait()
        return state.withLock { $0.ended }!
    }

    // MARK: For the I/O thread (ChildPump)

    /// Records the spawned supervisor, and sends the signal asked for before.
    func spawned(_ supervisor: pid_t, inputFD: Int32) {
        let pending = state.withLock { s in
            s.supervisor = supervisor
            s.inputFD = inputFD
            return s.pendingSignal
        }
        if let pending { send(pending.0, toGroup: pending.toGroup) }
    }

    /// Reaps the supervisor if it has exited (never blocks); its wait status once reaped.
    func reap() -> Int32? {
        state.withLock { s in
            if let reaped = s.reaped { return reaped }
            var status: Int32 = 0
            var r: pid_t
            repeat { r = waitpid(s.supervisor, &status, WNOHANG) } while r < 0 && errno == EINTR
            if r == s.supervisor {
                s.reaped = status
            } else if r < 0 && errno == ECHILD {
                // Reaped by someone else's waitpid(-1): gone, its status unknown (exit 255).
                s.reaped = 255 << 8
            }
            return s.reaped
        }
    }

    /// The deadline passed: marks the run timed out.
    func expire() { state.withLock { $0.timedOut = true } }

    /// The run is over: records how it ended and wakes every waiter.
    func finish(_ termination: ChildTermination) {
        let waiters = state.withLock { s in
            s.ended = termination
            defer { s.waiters = [:] }
            return Array(s.waiters.values)
        }
        for waiter in waiters { waiter(termination) }
    }

    // MARK: Finding programs

    /// The executable for `program`: itself when it contains `/`, else the first executable
    /// `PATH` entry (default `/usr/local/bin:/usr/bin:/bin`). Nil when there is none.
    public static func resolve(_ program: String, environment: Environment) -> String? {
        func isExecutableFile(_ path: String) -> Bool {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
                && FileManager.default.isExecutableFile(atPath: path)
        }
        if program.contains("/") { return isExecutableFile(program) ? program : nil }
        let path = environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(program)"
            if isExecutableFile(candidate) { return candidate }
        }
        return nil
    }
}
