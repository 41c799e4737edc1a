import BridgePostgres
import Foundation
import Synchronization

/// Wakes the worker's main loop: a run finished, a notification arrived, a lease was reaped,
/// shutdown was asked for. A ring with nobody waiting is kept for the next `wait`.
actor Doorbell {
    private var rung = false
    private var waiter: (id: Int, continuation: CheckedContinuation<Void, Never>)?
    /// The waiter's deadline: a sleeping task, cancelled as soon as the waiter is woken.
    private(set) var timer: Task<Void, Never>?
    private var nextId = 0

    func ring() {
        if waiter != nil {
            wake()
        } else {
            rung = true
        }
    }

    /// Returns at the next ring, or after `timeout` seconds.
    func wait(timeout: Double) async {
        if rung {
            rung = false
            return
        }
        nextId += 1
        let id = nextId
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            waiter = (id, c)
            timer = Task { [weak self] in
                try? await Task.sleep(for: .seconds(max(0, timeout)))
                guard !Task.isCancelled else { return }
                await self?.expire(id)
            }
        }
    }

    private func expire(_ id: Int) {
        guard let w = waiter, w.id == id else { return }
        wake()
    }

    private func wake() {
        guard let w = waiter else { return }
        waiter = nil
        timer?.cancel()
        timer = nil
        w.continuation.resume()
    }
}

/// One lazily (re)opened connection: a connection error closes it, and the next use opens a
/// new one. Used by the claim loop, the heartbeat/reaper and the listener, so that losing the
/// database at any point is survived.
actor ConnectionSlot {
    private let connect: @Sendable () async throws -> PostgresConnection
    private var connection: PostgresConnection?

    init(connect: @escaping @Sendable () async throws -> PostgresConnection) {
        self.connect = connect
    }

    func use<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let c: PostgresConnection
        if let existing = connection {
            c = existing
        } else {
            c = try await connect()
            connection = c
        }
        do {
            return try await body(c)
        } catch {
            let open = await c.isOpen
            if (error as? PostgresError)?.kind != .server || !open {
                connection = nil
                await c.close()
            }
            throw error
        }
    }

    func close() async {
        if let c = connection { await c.close() }
        connection = nil
    }
}

/// Connections for runs, reused between runs (a run's SQL tools and ledger writes use its
/// connection). A connection idle for more than a second is checked with `SELECT 1` before it
/// is handed out, so a database restart costs no attempt. Connections are lent only for a
/// scope (`withConnection`), so none is ever checked back in by hand or forgotten.
actor RunConnectionPool {
    private let connect: @Sendable () async throws -> PostgresConnection
    private let capacity: Int
    private var idle: [(PostgresConnection, ContinuousClock.Instant)] = []

    init(capacity: Int, connect: @escaping @Sendable () async throws -> PostgresConnection) {
        self.capacity = capacity
        self.connect = connect
    }

    /// Runs `body` on a connection from the pool and takes it back however `body` ends: into
    /// the pool when `body` returns (closed instead if it is broken or left in a transaction),
    /// closed when `body` throws (a connection that failed is not trusted with the next run).
    nonisolated func withConnection<T>(_ body: (PostgresConnection) async throws -> T) async throws -> T {
        let c = try await checkout()
        let result: T
        do {
            result = try await body(c)
        } catch {
            await c.close()
            throw error
        }
        await checkin(c)
        return result
    }

    /// Connections waiting in the pool.
    var idleCount: Int { idle.count }

    private func checkout() async throws -> PostgresConnection {
        while let (c, since) = idle.popLast() {
            let open = await c.isOpen
            let inTx = await c.inTransaction
            guard open, !inTx else {
                await c.close()
                continue
            }
            if ContinuousClock.now - since > .seconds(1) {
                do { try await c.simpleQuery("SELECT 1") } catch {
                    await c.close()
                    continue
                }
            }
            return c
        }
        return try await connect()
    }

    private func checkin(_ c: PostgresConnection) async {
        let open = await c.isOpen
        let inTx = await c.inTransaction
        if idle.count < capacity, open, !inTx {
            idle.append((c, ContinuousClock.now))
        } else {
            await c.close()
        }
    }

    func closeAll() async {
        for (c, _) in idle { await c.close() }
        idle.removeAll()
    }
}

/// The worker id recorded on each claim: host, process id and a random suffix.
public enum WorkerIdentity {
    public static func make() -> String {
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return "\(host):\(getpid()):\(suffix)"
    }
}

/// A request, from outside the worker, to stop it gracefully: no more claims, in-flight runs
/// get the drain timeout, then they are released. The command decides when (its signal
/// policy); requesting more than once is the same as once, and a request made before the
/// worker starts stops it as soon as it does.
public final class ShutdownRequest: Sendable {
    /// Whether it was requested, and what runs when it is.
    private let state = Mutex((requested: false, handlers: [@Sendable () -> Void]()))

    public init() {}

    /// Asks for the shutdown. Safe from any thread, including a signal source's queue.
    public func request() {
        let run = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.requested else { return [] }
            state.requested = true
            defer { state.handlers = [] }
            return state.handlers
        }
        for h in run { h() }
    }

    /// Runs `handler` at the request (at once if it was made already).
    func onRequest(_ handler: @escaping @Sendable () -> Void) {
        let now = state.withLock { state -> Bool in
            if !state.requested { state.handlers.append(handler) }
            return state.requested
        }
        if now { handler() }
    }
}
