import Foundation

/// A serial executor that runs every job on one dedicated OS thread.
///
/// Actors that wrap blocking C handles (a libpq connection, a curl multi handle) use it as
/// their `unownedExecutor`, so blocking calls never run on Swift's cooperative thread pool
/// and the handle is only ever touched by its own thread.
public final class ThreadExecutor: SerialExecutor, @unchecked Sendable {
    // Unchecked sendability: `jobs`, `stopped` and `running` are only accessed with `condition`
    // locked (an NSCondition, because the executor thread sleeps on it between jobs).
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private var stopped = false
    /// Whether a thread is serving `jobs` (at most one at a time: the executor stays serial).
    private var running = false
    private let name: String

    /// Starts the thread. `name` shows in debuggers and `top -H`.
    public init(name: String) {
        self.name = name
        condition.lock()
        startThread()
        condition.unlock()
    }

    /// Called with `condition` locked.
    private func startThread() {
        running = true
        let thread = Thread { [self] in self.run() }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// Queues a job. After `shutdown()`, once the thread has exited, a late job (a call on a
    /// closed connection) gets a new thread that runs what is queued and exits again, so the
    /// call completes (with the owner's "closed" error) instead of waiting forever.
    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        if running { condition.signal() } else { startThread() }
        condition.unlock()
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Lets the thread exit once the queued jobs have run.
    public func shutdown() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func run() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                running = false
                condition.unlock()
                return
            }
            let batch = jobs
            jobs.removeAll(keepingCapacity: true)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedSerialExecutor()) }
        }
    }
}
