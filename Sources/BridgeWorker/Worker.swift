import BridgeCore
import BridgeMapping
import BridgeMetrics
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import FoundationEssentials

/// The DatabaseToSDKBridge worker: claims pending tasks under leases, turns each into a run
/// spec, runs it traced, and writes the result, the execution row and the trace id back,
/// guarded on the lease's token.
///
/// The actor is the claim loop and the registry of runs in flight: it never claims more than
/// its free slots (paused runs whose approvals are decided first), starts each claim on the
/// `RunExecutor`, counts the outcomes, and at shutdown stops claiming, drains and releases.
/// Beside it, on connections of their own, run the `LeaseKeeper` (heartbeat and reaper: it asks
/// the worker, as its `LeaseHolder`, which leases it holds and tells it which are lost) and, in
/// watch mode, the `TaskListener` (LISTEN/NOTIFY). Each survives losing the database.
public actor Worker: LeaseHolder {
    let config: MappingConfig
    let store: TaskStore
    let approvals: ApprovalStore
    let connect: @Sendable () async throws -> PostgresConnection
    let progress: ProgressReporter
    let options: WorkerOptions
    var executor: RunExecutor

    private var summary = WorkerSummary()

    struct Running {
        var key: TaskKey

        var task: Task<Void, Never>
        var claimedAt = ContinuousClock.now
    }

    /// In-flight runs by lease token.
    private var running: [LeaseToken: Running] = [:]
    /// Tokens whose lease is gone (their runs are cancelled and write nothing).
    private var lost: Set<LeaseToken> = []
    private var processed = 0
    private var shuttingDown = false
    /// The groups last found over budget (held), for the log.
    private var heldGroups: [String] = []
    /// Whether the listener is connected and the NOTIFY trigger is installed.
    private var notifyActive = false
    private let doorbell = Doorbell()
    private let pool: RunConnectionPool
    /// Asks durable runs to stop at their next step boundary (shutdown).
    private let stop = StopSignal()

    public init(
        config: MappingConfig, connect: @escaping @Sendable () async throws -> PostgresConnection,
        model: any ModelProvider, tools: @escaping @Sendable (PostgresConnection) -> any ToolExecutor,
        progress: ProgressReporter, options: WorkerOptions, secrets: [String] = [],
        mcp: (any MCPToolSource)? = nil
    ) {
        let store = TaskStore(config: config)
        let approvals = ApprovalStore(config: config)
        self.config = config
        self.store = store
        self.approvals = approvals
        self.connect = connect
        self.progress = progress
        self.options = options
        let pool = RunConnectionPool(capacity: options.concurrency, connect: connect)
        self.pool = pool
        self.executor = RunExecutor(
            config: config, bridge: DatabaseToSDKBridge(config: config), store: store,
            approvals: approvals, connect: connect, pool: pool, model: model,
            toolsFactory: tools, mcp: mcp, secrets: secrets, options: options,
            journals: RunJournalStore(config: config), stop: stop)
        let fleet = FleetLimits(config: config)
        if fleet.isActive {
            executor.fleet = fleet
            executor.recordsSpend = true
            executor.progress = progress
        }
    }

    /// Asks the worker to stop: no more claims; in-flight runs get `drainTimeout` to finish,
    /// then they are cancelled and their tasks released to pending. Safe from any thread.
    public nonisolated func requestShutdown() {
        Task { await self.beginShutdown() }
    }

    private func beginShutdown() async {
        guard !shuttingDown else { return }
        shuttingDown = true
        // Durable runs checkpoint at their next step boundary and are released at once; the
        // drain timeout only bounds the steps in flight.
        stop.stop()
        progress.status(
            "shutting down: no new claims; waiting up to \(options.drainTimeout.secondsText) for \(running.count) run(s)"
        )
        await doorbell.ring()
    }

    /// Claims and runs tasks. Without `watch`, returns once nothing is left: nothing to claim,
    /// nothing running, no retry waiting for its backoff and no task leased by another worker
    /// (a dead worker's leases expire and are reaped, then run here). With `watch`, runs until
    /// `requestShutdown()`.
    public func drain() async throws -> WorkerSummary {
        let started = ContinuousClock.now
        let claimer = ConnectionSlot(connect: connect)
        var keeper = LeaseKeeper(
            store: store, connect: connect, lease: options.lease,
            maxAttempts: options.maxAttempts, progress: progress)
        keeper.journals = RunJournalStore(config: config)
        let heartbeat = Task { await keeper.run(for: self) }
        let listener: Task<Void, Never>? = options.watch ? Task { await listen() } : nil
        await claimLoop(claimer)
        if shuttingDown { await drainInFlight() }
        // Without a shutdown, the loop only ends with nothing running.
        heartbeat.cancel()
        listener?.cancel()
        _ = await heartbeat.value
        _ = await listener?.value
        await claimer.close()
        await pool.closeAll()
        progress.finish()
        summary.elapsed = ContinuousClock.now - started
        return summary
    }

    /// What one round of the claim loop did.
    private struct ClaimRound {
        /// Runs started: paused runs resumed and new claims.
        var claimed = 0
        /// Asked when nothing was claimed and nothing runs (without `watch`): what is left.
        var outstanding: TaskStore.Outstanding?
    }

    /// Claims rounds until shutdown or, without `watch`, until nothing is left, waiting on the
    /// doorbell between rounds. A database it cannot reach is retried with a backoff.
    private func claimLoop(_ claimer: ConnectionSlot) async {
        var failures = 0
        var lastError = ""
        // Whether the last round already found nothing claimable and nothing outstanding.
        var emptyOnce = false
        while !shuttingDown {
            // The reaper runs beside this loop: a lease it returns to pending between the claim
            // and the outstanding check below is neither claimed nor outstanding. Its count
            // reaches this actor a moment after its commit, so the loop ends only after a second
            // round in a row finds nothing: that round's claim sees what the reaper committed.
            let reapedBefore = summary.reaped
            let budget = options.limit.map { max(0, $0 - processed - running.count) } ?? Int.max
            if budget == 0 && running.isEmpty { break }
            let free = min(options.concurrency - running.count, budget)
            let round: ClaimRound
            do {
                round = try await claimRound(free: free, claimer)
                if failures > 0 { progress.status("database reachable again") }
                failures = 0
            } catch {
                failures += 1
                let message = "\(error)"
                if failures == 1 || message != lastError {
                    progress.status("cannot claim (\(message)); retrying")
                }
                lastError = message
                await doorbell.wait(
                    timeout: RetryBackoff.delay(
                        attempt: failures + 1, base: .milliseconds(250), cap: .seconds(5), jitter: 1...1))
                continue
            }
            if round.claimed > 0 { emptyOnce = false }
            // A full batch: there may be more right away.
            if round.claimed > 0 && round.claimed == free { continue }
            if let outstanding = round.outstanding {
                if outstanding.isEmpty {
                    if summary.reaped != reapedBefore || !emptyOnce {
                        emptyOnce = true
                        continue
                    }
                    break
                }
                emptyOnce = false
                // Wait for retries to come due and for other workers' leases to end or expire.
                await doorbell.wait(timeout: .seconds(fractional: min(1, max(0.05, outstanding.nextRetryIn ?? 1))))
                continue
            }
            await doorbell.wait(timeout: pollInterval)
        }
    }

    /// One round for `free` slots: paused runs whose approvals are decided first, then new
    /// claims for the slots left.
    private func claimRound(free: Int, _ claimer: ConnectionSlot) async throws -> ClaimRound {
        var round = ClaimRound()
        var free = free
        if free > 0 && config.approvals != nil {
            let resumed = try await resumeDecided(slots: free, claimer)
            round.claimed += resumed
            free -= resumed
        }
        if free > 0 {
            round.claimed += try await claimNew(slots: free, claimer)
        }
        if !options.watch && round.claimed == 0 && running.isEmpty {
            round.outstanding = try await claimer.use { [store, options] c in
                try await store.outstanding(on: c, keys: options.taskKeys)
            }
        }
        return round
    }

    /// Claims paused runs whose approvals are decided (at most `slots`) and starts them
    /// resuming; returns how many.
    private func resumeDecided(slots: Int, _ claimer: ConnectionSlot) async throws -> Int {
        let ready = try await claimer.use { [approvals] c in try await approvals.ready(on: c, limit: slots) }
        var resumed = 0
        for taskKey in ready where options.taskKeys.isEmpty || options.taskKeys.contains(taskKey) {
            let claim = try await claimer.use { [approvals, options] c in
                try await approvals.claim(
                    on: c, taskKey: taskKey, workerId: options.workerId,
                    lease: options.lease)
            }
            if let claim {
                start(claim, resuming: true)
                summary.resumed += 1
                resumed += 1
            }
        }
        return resumed
    }

    /// Claims up to `slots` new tasks and starts them; returns how many. Groups whose budget is
    /// spent (`on_exceeded: hold`) wait unclaimed.
    private func claimNew(slots: Int, _ claimer: ConnectionSlot) async throws -> Int {
        let (claims, held) = try await claimer.use { [store, options] c in
            let held = try await store.heldGroups(on: c)
            return (
                try await store.claim(
                    on: c, limit: slots, workerId: options.workerId,
                    lease: options.lease, keys: options.taskKeys, held: held), held
            )
        }
        if held != heldGroups {
            heldGroups = held
            let column = config.source.groupColumn ?? "group"
            progress.status(
                held.isEmpty
                    ? "no \(column) is over its budget any more"
                    : "holding the tasks of \(held.count) \(column)(s) over budget until it is raised: \(held.prefix(10).joined(separator: ", "))"
            )
        }
        BridgeMetrics.tasksClaimed(claims.count)
        for claim in claims { start(claim) }
        return claims.count
    }

    private var pollInterval: Duration {
        if let p = options.pollInterval { return p }
        return .seconds(notifyActive ? 20 : 2)
    }

    /// Shutdown: let in-flight runs finish within `drainTimeout`, then cancel the rest, which
    /// release their tasks to pending (token-checked), and wait for those writes.
    private func drainInFlight() async {
        let deadline = ContinuousClock.now + options.drainTimeout
        while !running.isEmpty, ContinuousClock.now < deadline {
            await doorbell.wait(timeout: min(.seconds(1), deadline - ContinuousClock.now))
        }
        guard !running.isEmpty else { return }
        progress.status("drain timeout: releasing \(running.count) unfinished task(s) to pending")
        for r in running.values {
            r.task.cancel()
        }
        let hardDeadline = ContinuousClock.now + max(.seconds(10), options.lease / 3)
        while !running.isEmpty, ContinuousClock.now < hardDeadline {
            await doorbell.wait(timeout: .milliseconds(500))
        }
    }

    private func start(_ claim: TaskStore.Claim, resuming: Bool = false) {
        let task = Task { [self, executor] in
            let outcome = await executor.run(claim, resuming: resuming) { [weak self] token in
                await self?.isLost(token) ?? true
            }
            await self.finished(claim.token, outcome)
        }
        running[claim.token] = Running(key: claim.key, task: task)
        BridgeMetrics.runsInFlight(running.count)
    }

    private func finished(_ token: LeaseToken, _ outcome: TaskOutcome) async {
        let claimedAt = running.removeValue(forKey: token)?.claimedAt
        BridgeMetrics.runsInFlight(running.count)
        if let end = outcome.metric, let claimedAt {
            BridgeMetrics.taskEnded(end, seconds: (ContinuousClock.now - claimedAt).inSeconds)
        }
        lost.remove(token)
        processed += 1
        progress.log(summary.add(outcome))
        progress.update("\(summary.completed) completed, \(summary.failed) failed, \(running.count) running")
        await doorbell.ring()
    }

    func isLost(_ token: LeaseToken) -> Bool { lost.contains(token) }

    // MARK: - LeaseHolder

    func heldTokens() -> [LeaseToken] { Array(running.keys) }

    /// Marks leases as lost and cancels their runs.
    func lose(_ tokens: [LeaseToken], reason: String) {
        for t in tokens {
            guard let r = running[t], !lost.contains(t) else { continue }
            lost.insert(t)
            progress.log("task \(r.key): \(reason); cancelling its run")
            r.task.cancel()
        }
    }

    func noteReaped(_ r: TaskStore.Reaped) async {
        guard r.requeued + r.failed > 0 else { return }
        summary.reaped += r.requeued + r.failed
        BridgeMetrics.tasksReaped(r.requeued + r.failed)
        progress.log(
            "reaper: \(r.requeued) expired lease(s) back to pending, \(r.failed) failed after \(options.maxAttempts) attempts"
        )
        await doorbell.ring()
    }

    /// Watch mode: the listener rings the doorbell at every notification and reconnect.
    private func listen() async {
        let listener = TaskListener(
            store: store, connect: connect, progress: progress,
            pollInterval: options.pollInterval ?? .seconds(2))
        await listener.run(
            wake: { [doorbell] in await doorbell.ring() },
            notifying: { [weak self] active in await self?.setNotifyActive(active) })
    }

    private func setNotifyActive(_ active: Bool) { notifyActive = active }
}
