import CBridgeSpawn
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A `ChildProcess`'s I/O thread: spawns the child under its supervisor, writes its input,
/// reads its output into the handlers with `poll` on non-blocking descriptors, enforces the
/// deadline and reaps it. Lives on that one thread (nothing here is shared).
struct ChildPump {
    let child: ChildProcess
    let clock = ContinuousClock()
    /// Readable when the supervisor exits (pidfd), or -1: then its exit is checked every 100 ms.
    let pidfd: Int32
    var input: [UInt8]
    var written = 0
    var inFD: Int32?
    var outFD: Int32?
    var errFD: Int32?
    var deadline: ContinuousClock.Instant?
    var killAt: ContinuousClock.Instant?
    var drainUntil: ContinuousClock.Instant?
    var buffer = [UInt8](repeating: 0, count: 64 * 1024)

    /// The thread's body: spawn, report the start, pump, finish.
    static func run(_ child: ChildProcess, started: (Result<Void, ChildStartError>) -> Void) {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        // A child that exits without reading its input makes a write fail with EPIPE instead of
        // killing bridge; the process-wide disposition (which children inherit) is untouched.
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
        let spawned: (pid_t, (input: Int32, output: Int32, errors: Int32))
        switch spawn(child.command, options: child.options) {
        case .failure(let error):
            started(.failure(error))
            return
        case .success(let s):
            spawned = s
        }
        let (supervisor, fds) = spawned
        var pump = ChildPump(child: child, supervisor: supervisor, fds: fds)
        var inputFD: Int32 = -1
        if case .pipe = child.input { inputFD = fds.input }
        child.spawned(supervisor, inputFD: inputFD)
        started(.success(()))
        let status = pump.pump()
        // Discard a SIGPIPE left pending by a failed write.
        var zero = timespec(tv_sec: 0, tv_nsec: 0)
        while sigtimedwait(&pipeSignal, nil, &zero) == SIGPIPE {}
        let termination = ChildTermination(waitStatus: status)
        child.handlers.exited(child, termination)
        child.finish(termination)
    }

    private init(child: ChildProcess, supervisor: pid_t, fds: (input: Int32, output: Int32, errors: Int32)) {
        self.child = child
        pidfd = bridge_pidfd_open(supervisor)
        outFD = fds.output
        errFD = fds.errors
        for fd in [fds.input, fds.output, fds.errors] {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        switch child.input {
        case .pipe:
            _ = fcntl(fds.input, F_SETFL, fcntl(fds.input, F_GETFL) & ~O_NONBLOCK)
            input = []
        case .bytes(let bytes):
            input = bytes
            if bytes.isEmpty { _ = close(fds.input) } else { inFD = fds.input }
        }
        deadline = child.options.deadline.map { clock.now + $0 }
    }

    /// Creates the pipes and starts the supervisor; the parent's ends of stdin, stdout, stderr.
    private static func spawn(_ command: ChildProcess.Command, options: ChildProcess.Options) -> Result<
        (pid_t, (input: Int32, output: Int32, errors: Int32)), ChildStartError
    > {
        var inPipe: [Int32] = [-1, -1]
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard bridge_pipe_cloexec(&inPipe) == 0, bridge_pipe_cloexec(&outPipe) == 0, bridge_pipe_cloexec(&errPipe) == 0
        else {
            let why = String(cString: strerror(errno))
            for fd in inPipe + outPipe + errPipe where fd >= 0 { _ = close(fd) }
            return .failure(ChildStartError(reason: "pipe: \(why)"))
        }
        var spawnError: Int32 = 0
        let graceMs = Int32(clamping: milliseconds(options.grace))
        let supervisor: pid_t = withCStrings(command.argv) { cArgv in
            withCStrings(command.environment.map { "\($0.key)=\($0.value)" }.sorted()) { cEnv in
                bridge_spawn(
                    command.path, cArgv, cEnv, command.directory, inPipe[0], outPipe[1], errPipe[1], graceMs,
                    options.supervised ? 1 : 0, &spawnError)
            }
        }
        for fd in [inPipe[0], outPipe[1], errPipe[1]] { _ = close(fd) }
        guard supervisor > 0 else {
            for fd in [inPipe[1], outPipe[0], errPipe[0]] { _ = close(fd) }
            return .failure(ChildStartError(reason: String(cString: strerror(spawnError))))
        }
        return .success((supervisor, (inPipe[1], outPipe[0], errPipe[0])))
    }

    /// Pumps until the supervisor has exited and stdout and stderr are closed, or
    /// `drainAfterExit` after the exit; closes the descriptors and returns the wait status.
    private mutating func pump() -> Int32 {
        defer { if pidfd >= 0 { _ = close(pidfd) } }
        while true {
            if drainUntil == nil, child.reap() != nil { drainUntil = clock.now + child.options.drainAfterExit }
            if let drainUntil, (outFD == nil && errFD == nil) || clock.now >= drainUntil { break }
            enforceLimits()
            var fds: [pollfd] = []
            if let fd = inFD { fds.append(pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)) }
            if let fd = outFD { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if let fd = errFD { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
            if drainUntil == nil, pidfd >= 0 { fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
            if poll(&fds, nfds_t(fds.count), pollTimeout()) < 0 {
                if errno == EINTR { continue }
                break
            }
            for entry in fds where entry.revents != 0 && entry.fd != pidfd {
                if entry.fd == inFD {
                    writeInput(failed: entry.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0)
                } else if entry.fd == outFD {
                    if !readAvailable(entry.fd, child.handlers.stdout) { closeStdout() }
                } else if entry.fd == errFD {
                    if !readAvailable(entry.fd, child.handlers.stderr) {
                        _ = close(entry.fd)
                        errFD = nil
                    }
                }
            }
        }
        for fd in [inFD, outFD, errFD].compactMap({ $0 }) { _ = close(fd) }
        // Only when poll itself failed is the supervisor still there.
        while true {
            if let status = child.reap() { return status }
            child.kill()
            usleep(10_000)
        }
    }

    /// The deadline, the kill after stdout closed, and input nobody will read any more.
    private mutating func enforceLimits() {
        let now = clock.now
        if let d = deadline, now >= d {
            deadline = nil
            child.expire()
            child.stop(now: false)
        }
        if let k = killAt, drainUntil == nil, now >= k {
            killAt = nil
            child.kill()
        }
        if drainUntil != nil, let fd = inFD {
            _ = close(fd)
            inFD = nil
        }
    }

    private mutating func closeStdout() {
        if let fd = outFD { _ = close(fd) }
        outFD = nil
        guard drainUntil == nil else { return }
        child.handlers.stdoutClosed(child)
        if let after = child.options.killAfterStdoutCloses { killAt = clock.now + after }
    }

    /// Writes what the pipe takes of the input; closes it when all is written or the child
    /// stopped reading.
    private mutating func writeInput(failed: Bool) {
        guard let fd = inFD else { return }
        var failed = failed
        while !failed, written < input.count {
            let n = input.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
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
        if failed || written == input.count {
            _ = close(fd)
            inFD = nil
        }
    }

    /// Reads what is available into `consume`; false at end of file or on an error.
    private mutating func readAvailable(
        _ fd: Int32, _ consume: @Sendable (ChildProcess, ArraySlice<UInt8>) -> Void
    ) -> Bool {
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                consume(child, buffer[..<n])
            } else if n < 0, errno == EINTR {
                continue
            } else if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                return true
            } else {
                return false
            }
        }
    }

    /// The poll timeout (ms, -1 for none): the drain's end, the deadline, the kill after stdout
    /// closed, and every 100 ms while the exit cannot be polled (no pidfd).
    private func pollTimeout() -> Int32 {
        var next = [drainUntil, deadline, killAt].compactMap { $0 }.min()
        if drainUntil == nil, pidfd < 0 {
            let tick = clock.now + .milliseconds(100)
            next = min(next ?? tick, tick)
        }
        guard let next else { return -1 }
        return Int32(clamping: Self.milliseconds(clock.now.duration(to: next)) + 1)
    }

    static func milliseconds(_ d: Duration) -> Int {
        let (s, atto) = d.components
        return max(0, Int(s) * 1000 + Int(atto / 1_000_000_000_000_000))
    }
}

/// Calls `body` with a NULL-terminated C array of the strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
