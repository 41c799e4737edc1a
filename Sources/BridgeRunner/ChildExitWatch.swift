import CBridgeSpawn
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The exit of a child started with `bridge_spawn` (its supervisor), watched by the thread that
/// polls the child's pipes: the exit is a pollable descriptor (pidfd) where the kernel has them,
/// and is otherwise checked every 100 ms. Once the child has exited its pipes are read for at most
/// `drain` more: whatever still holds them then escaped the supervisor, and is not waited for.
/// Polled on the child's own I/O thread (`waitpid` never runs on Swift's cooperative pool);
/// `signal` may be called from anywhere, and never reaches a pid that was already reaped (by
/// then it may be another process's, or one of bridge's own threads).
///
/// `@unchecked Sendable`: `status` and `drainUntil` are only touched with `lock` held.
final class ChildExitWatch: @unchecked Sendable {
    let pid: pid_t
    private let lock = NSLock()
    let drain: Duration
    private let pidfd: Int32
    private let clock = ContinuousClock()
    /// The wait status, once reaped.
    private var status: Int32?
    private var drainUntil: ContinuousClock.Instant?

    init(pid: pid_t, drain: Duration) {
        self.pid = pid
        self.drain = drain
        pidfd = bridge_pidfd_open(pid)
    }

    deinit { if pidfd >= 0 { _ = close(pidfd) } }

    /// Reaps the child if it has exited; never blocks.
    func check() {
        lock.withLock {
            guard status == nil else { return }
            var st: Int32 = 0
            var r: pid_t
            repeat { r = waitpid(pid, &st, WNOHANG) } while r < 0 && errno == EINTR
            if r == pid {
                status = st
                drainUntil = clock.now + drain
            } else if r < 0 && errno == ECHILD {
                // Reaped by someone else's waitpid(-1): gone, its status unknown (never poll on).
                status = Self.unknownStatus
                drainUntil = clock.now + drain
            }
        }
    }

    /// Sends `sig` to the child, unless it has been reaped (reaping and signalling hold the
    /// same lock, so the pid cannot be reused in between).
    func signal(_ sig: Int32) {
        lock.withLock { if status == nil { _ = kill(pid, sig) } }
    }

    /// True once the child has exited and its pipes are closed (`pipesOpen` false) or the drain
    /// time is over.
    func isFinished(pipesOpen: Bool) -> Bool {
        guard let drainUntil = lock.withLock({ drainUntil }) else { return false }
        return !pipesOpen || clock.now >= drainUntil
    }

    var hasExited: Bool { lock.withLock { status != nil } }

    /// What to add to the poll set while the child runs.
    var pollEntry: pollfd? {
        !hasExited && pidfd >= 0 ? pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0) : nil
    }

    func isExitEntry(_ entry: pollfd) -> Bool { pidfd >= 0 && entry.fd == pidfd }

    /// The poll timeout (ms, -1 for none) that wakes the thread for the drain deadline, the
    /// exit check without pidfd, and `other`.
    func pollTimeout(other: ContinuousClock.Instant? = nil) -> Int32 {
        let (exited, drainUntil) = lock.withLock { (status != nil, self.drainUntil) }
        var deadline = drainUntil ?? other
        if let other, let d = deadline { deadline = min(d, other) }
        if !exited, pidfd < 0 {
            let tick = clock.now + .milliseconds(100)
            deadline = min(deadline ?? tick, tick)
        }
        guard let deadline else { return -1 }
        let ms = clock.now.duration(to: deadline).components
        return Int32(clamping: max(0, ms.seconds * 1000 + ms.attoseconds / 1_000_000_000_000_000 + 1))
    }

    /// The wait status; after poll itself failed, kills the supervisor and waits for it first.
    func killAndWait() -> Int32 {
        signal(SIGKILL)
        while true {
            check()
            if let status = lock.withLock({ status }) { return status }
            usleep(10_000)
        }
    }

    /// The status of a child that something else reaped: exit status 255.
    static let unknownStatus: Int32 = 255 << 8

    /// "exited with status N" or "was killed by signal N".
    static func describe(_ status: Int32) -> String {
        status & 0x7f == 0 ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(status & 0x7f)"
    }
}
