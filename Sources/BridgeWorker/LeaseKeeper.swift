import BridgeMetrics
import BridgePostgres
import FoundationEssentials

/// What the lease keeper needs from the worker whose leases it keeps.
protocol LeaseHolder: Actor {
    /// The lease tokens of the runs in flight.
    func heldTokens() -> [LeaseToken]
    /// These leases are gone (`reason` says why): their runs are cancelled and write nothing.
    func lose(_ tokens: [LeaseToken], reason: String)
    /// A reaper pass returned expired leases (of any worker) to pending or failed them.
    func noteReaped(_ reaped: TaskStore.Reaped) async
}

/// The lease keeper: the heartbeat and the reaper, on a connection of its own.
///
/// Every lease/3 it extends all of the holder's leases in one statement and tells the holder
/// which are gone (reaped, or finished elsewhere), then reaps expired leases of any worker. When
/// the database cannot be reached for a whole lease, every run is given up: its lease may have
/// been reaped and its result would be refused. It survives losing the database and runs until
/// its task is cancelled.
struct LeaseKeeper: Sendable {
    let store: TaskStore
    let connect: @Sendable () async throws -> PostgresConnection
    let lease: Duration
    let maxAttempts: Int
    let progress: ProgressReporter
    /// Durable runs' journals: each pass also drops those of runs the application took back.
    var journals: RunJournalStore? = nil

    func run(for holder: some LeaseHolder) async {
        let slot = ConnectionSlot(connect: connect)
        let interval = max(.milliseconds(200), lease / 3)
        var lastOK = ContinuousClock.now
        var failing = false
        // Reap once at start: a restarted worker picks up what a dead one left.
        let reapAtStart: @Sendable (PostgresConnection) async throws -> TaskStore.Reaped = {
            [store, maxAttempts] c in try await store.reap(on: c, maxAttempts: maxAttempts)
        }
        if let r = try? await slot.use(reapAtStart) {
            await holder.noteReaped(r)
        }
        var sweeping = false
        if let journals { sweeping = (try? await slot.use { c in try await journals.isMigrated(on: c) }) ?? false }
        func sweep() async {
            guard sweeping, let journals else { return }
            if let n = try? await slot.use({ c in try await journals.sweep(on: c) }), n > 0 {
                progress.log(
                    "journal sweep: \(n) interrupted run(s) the application took back (finished or deleted) will not resume"
                )
            }
        }
        await sweep()
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { break }
            let tokens = await holder.heldTokens()
            do {
                let alive = try await slot.use { [store, lease] c in
                    try await store.heartbeat(on: c, tokens: tokens, lease: lease)
                }
                lastOK = ContinuousClock.now
                BridgeMetrics.leases(alive.count)
                if failing { progress.log("heartbeat: database reachable again") }
                failing = false
                await holder.lose(
                    tokens.filter { !alive.contains($0) }, reason: "lease lost (reaped or finished elsewhere)")
                let r = try await slot.use { [store, maxAttempts] c in
                    try await store.reap(on: c, maxAttempts: maxAttempts)
                }
                await holder.noteReaped(r)
                await sweep()
            } catch {
                if !failing { progress.log("heartbeat failed (\(error)); retrying") }
                failing = true
                if ContinuousClock.now - lastOK > lease {
                    await holder.lose(
                        await holder.heldTokens(), reason: "lease not renewed for \(lease.secondsText)")
                }
            }
        }
        await slot.close()
    }
}
