import BridgeCore
import BridgeMapping
import BridgeMetrics
import BridgePostgres
import BridgeRunner
import BridgeTracing
import Foundation

/// Settings for one `bridge exec` process.
public struct WorkerOptions: Sendable {
    /// Runs at most this many tasks at once (and never claims more than free slots).
    public var concurrency: Int
    /// A task that failed retriably (or whose lease expired) this many times is marked failed.
    public var maxAttempts: Int
    /// Only these task keys (empty: all pending tasks).
    public var taskKeys: [String]
    /// Stop after this many tasks (nil: drain everything).
    public var limit: Int?
    /// How long a claim is valid without a heartbeat (heartbeats run every lease/3).
    public var leaseSeconds: Double
    /// Keep running and wait for new tasks (LISTEN/NOTIFY when installed, plus polling).
    public var watch: Bool
    /// On SIGTERM/SIGINT: how long in-flight runs may take before they are released.
    public var drainTimeout: Double
    /// Backstop polling interval; nil: 2 s without NOTIFY, 20 s with it.
    public var pollInterval: Double?
    /// Retry backoff: first delay and cap, in seconds.
    public var retryBaseSeconds: Double
    public var retryMaxSeconds: Double
    /// Recorded on every claim (`bridge_worker_id`).
    public var workerId: String

    public init(concurrency: Int = 4, maxAttempts: Int = 3, taskKeys: [String] = [], limit: Int? = nil,
                leaseSeconds: Double = 60, watch: Bool = false, drainTimeout: Double = 30, pollInterval: Double? = nil,
                retryBaseSeconds: Double = 2, retryMaxSeconds: Double = 300, workerId: String = WorkerIdentity.make()) {
        self.concurrency = concurrency
        self.maxAttempts = maxAttempts
        self.taskKeys = taskKeys
        self.limit = limit
        self.leaseSeconds = leaseSeconds
        self.watch = watch
        self.drainTimeout = drainTimeout
        self.pollInterval = pollInterval
        self.retryBaseSeconds = retryBaseSeconds
        self.retryMaxSeconds = retryMaxSeconds
        self.workerId = workerId
    }
}

/// What one `bridge exec` did.
public struct WorkerSummary: Sendable {
    public var completed = 0
    public var failed = 0
    public var retried = 0
    /// Results discarded because the lease was lost (reaped, or finished elsewhere).
    public var stale = 0
    /// Runs handed back to pending at shutdown.
    public var released = 0
    /// Runs that paused for an approval (their tasks wait in the database, holding no lease).
    public var paused = 0
    /// Paused runs resumed after their approvals were decided.
    public var resumed = 0
    /// Expired leases (of any worker) this worker's reaper returned to pending or failed.
    public var reaped = 0
    public var toolCalls = 0
    public var spans = 0
    public var elapsed: Double = 0
    /// One report per exporter that ran (what it delivered, what it left in the ledger).
    public var exports: [ExportReport] = []

    public var line: String {
        var s = String(format: "completed %d, failed %d, retried %d, tool calls %d, spans %d, elapsed %.2fs",
                       completed, failed, retried, toolCalls, spans, elapsed)
        if stale > 0 { s += ", discarded \(stale) (lease lost)" }
        if released > 0 { s += ", released \(released)" }
        if paused > 0 { s += ", waiting for approval \(paused)" }
        if resumed > 0 { s += ", resumed \(resumed)" }
        if reaped > 0 { s += ", reaped \(reaped)" }
        return s
    }
}

/// The channel the opt-in trigger (`migrations/optional/0010_task_notify.sql`) notifies.
public let taskNotifyChannel = "bridge_tasks"

/// The DatabaseToSDKBridge worker: claims pending tasks under leases, turns each into a run
/// spec, runs it traced, and writes the result, the execution row and the trace id back,
/// guarded on the lease's token.
///
/// Three loops share the actor: the claim loop (never more claims than free slots), the
/// heartbeat (extends all of this worker's leases in one statement every lease/3, cancels runs
/// whose lease is gone, and runs the reaper), and in watch mode the listener (LISTEN on
/// `bridge_tasks`, health-checked, reconnected with backoff). Each has its own connection and
/// survives losing the database.
public actor Worker {
    let config: MappingConfig
    let bridge: DatabaseToSDKBridge
    let store: TaskStore
    let approvals: ApprovalStore
    let connect: @Sendable () async throws -> PostgresConnection
    let model: any ModelProvider
    let toolsFactory: @Sendable (PostgresConnection) -> any ToolExecutor
    let mcp: (any MCPToolSource)?
    let progress: ProgressReporter
    let options: WorkerOptions
    /// Values never to be recorded in spans (API keys, the database password).
    let secrets: [String]

    private var summary = WorkerSummary()

    struct Running {
        var key: String
        var task: Task<Void, Never>
        var claimedAt = Date()
    }

    /// In-flight runs by lease token.
    private var running: [String: Running] = [:]
    /// Tokens whose lease is gone (their runs are cancelled and write nothing).
    private var lost: Set<String> = []
    private var processed = 0
    private var shuttingDown = false
    private var loopsStopped = false
    /// Whether the listener is connected and the NOTIFY trigger is installed.
    private var notifyActive = false
    private let doorbell = Doorbell()
    private let pool: RunConnectionPool

    public init(config: MappingConfig, connect: @escaping @Sendable () async throws -> PostgresConnection,
                model: any ModelProvider, tools: @escaping @Sendable (PostgresConnection) -> any ToolExecutor,
                progress: ProgressReporter, options: WorkerOptions, secrets: [String] = [],
                mcp: (any MCPToolSource)? = nil) {
        self.config = config
        self.bridge = DatabaseToSDKBridge(config: config)
        self.store = TaskStore(config: config)
        self.approvals = ApprovalStore(config: config)
        self.connect = connect
        self.model = model
        self.toolsFactory = tools
        self.mcp = mcp
        self.progress = progress
        self.options = options
        self.secrets = secrets
        self.pool = RunConnectionPool(capacity: options.concurrency, connect: connect)
    }

    /// Asks the worker to stop: no more claims; in-flight runs get `drainTimeout` to finish,
    /// then they are cancelled and their tasks released to pending. Safe from any thread.
    public nonisolated func requestShutdown() {
        Task { await self.beginShutdown() }
    }

    private func beginShutdown() async {
        guard !shuttingDown else { return }
        shuttingDown = true
        progress.status("shutting down: no new claims; waiting up to \(Self.seconds(options.drainTimeout)) for \(running.count) run(s)")
        await doorbell.ring()
    }

    /// Claims and runs tasks. Without `watch`, returns once nothing is left: nothing to claim,
    /// nothing running, no retry waiting for its backoff and no task leased by another worker
    /// (a dead worker's leases expire and are reaped, then run here). With `watch`, runs until
    /// `requestShutdown()`.
    public func drain() async throws -> WorkerSummary {
        let started = Date()
        let claimer = ConnectionSlot(connect: connect)
        let heartbeat = Task { await self.heartbeatLoop() }
        let listener: Task<Void, Never>? = options.watch ? Task { await self.listenLoop() } : nil
        var failures = 0
        var lastError = ""
        while !shuttingDown {
            let budget = options.limit.map { max(0, $0 - processed - running.count) } ?? Int.max
            if budget == 0 && running.isEmpty { break }
            let free = min(options.concurrency - running.count, budget)
            var claimed = 0
            var outstanding: TaskStore.Outstanding?
            do {
                var free = free
                if free > 0 && config.approvals != nil {
                    let slots = free
                    let ready = try await claimer.use { [approvals] c in try await approvals.ready(on: c, limit: slots) }
                    for taskKey in ready where options.taskKeys.isEmpty || options.taskKeys.contains(taskKey) {
                        let claim = try await claimer.use { [approvals, options] c in
                            try await approvals.claim(on: c, taskKey: taskKey, workerId: options.workerId,
                                                      leaseSeconds: options.leaseSeconds)
                        }
                        if let claim {
                            start(claim, resuming: true)
                            summary.resumed += 1
                            claimed += 1
                            free -= 1
                        }
                    }
                }
                if free > 0 {
                    let slots = free
                    let claims = try await claimer.use { [store, options] c in
                        try await store.claim(on: c, limit: slots, workerId: options.workerId,
                                              leaseSeconds: options.leaseSeconds, keys: options.taskKeys)
                    }
                    claimed += claims.count
                    BridgeMetrics.tasksClaimed(claims.count)
                    for claim in claims { start(claim) }
                }
                if !options.watch && claimed == 0 && running.isEmpty {
                    outstanding = try await claimer.use { [store, options] c in
                        try await store.outstanding(on: c, keys: options.taskKeys)
                    }
                }
                if failures > 0 { progress.status("database reachable again") }
                failures = 0
            } catch {
                failures += 1
                let message = "\(error)"
                if failures == 1 || message != lastError {
                    progress.status("cannot claim (\(message)); retrying")
                }
                lastError = message
                await doorbell.wait(timeout: RetryBackoff.delay(attempt: failures + 1, base: 0.25, cap: 5, jitter: 1...1))
                continue
            }
            // A full batch: there may be more right away.
            if claimed > 0 && claimed == free { continue }
            if let outstanding {
                if outstanding.isEmpty { break }
                // Wait for retries to come due and for other workers' leases to end or expire.
                await doorbell.wait(timeout: min(1, max(0.05, outstanding.nextRetryIn ?? 1)))
                continue
            }
            await doorbell.wait(timeout: pollInterval)
        }
        if shuttingDown { await drainInFlight() }
        // Without a shutdown, the loop only ends with nothing running.
        loopsStopped = true
        heartbeat.cancel()
        listener?.cancel()
        _ = await heartbeat.value
        _ = await listener?.value
        await claimer.close()
        await pool.closeAll()
        progress.finish()
        summary.elapsed = Date().timeIntervalSince(started)
        return summary
    }

    private var pollInterval: Double {
        if let p = options.pollInterval { return p }
        return notifyActive ? 20 : 2
    }

    /// Shutdown: let in-flight runs finish within `drainTimeout`, then cancel the rest, which
    /// release their tasks to pending (token-checked), and wait for those writes.
    private func drainInFlight() async {
        let deadline = Date().addingTimeInterval(options.drainTimeout)
        while !running.isEmpty, Date() < deadline {
            await doorbell.wait(timeout: min(1, deadline.timeIntervalSinceNow))
        }
        guard !running.isEmpty else { return }
        progress.status("drain timeout: releasing \(running.count) unfinished task(s) to pending")
        for r in running.values {
            r.task.cancel()
        }
        let hardDeadline = Date().addingTimeInterval(max(10, options.leaseSeconds / 3))
        while !running.isEmpty, Date() < hardDeadline {
            await doorbell.wait(timeout: 0.5)
        }
    }

    private func start(_ claim: TaskStore.Claim, resuming: Bool = false) {
        let task = Task { [self] in
            let outcome = await self.runOne(claim, resuming: resuming)
            await self.finished(claim.token, outcome)
        }
        running[claim.token] = Running(key: claim.key, task: task)
        BridgeMetrics.runsInFlight(running.count)
    }

    private func finished(_ token: String, _ outcome: TaskOutcome) async {
        let claimedAt = running.removeValue(forKey: token)?.claimedAt
        BridgeMetrics.runsInFlight(running.count)
        if let end = outcome.metric, let claimedAt { BridgeMetrics.taskEnded(end, seconds: Date().timeIntervalSince(claimedAt)) }
        lost.remove(token)
        processed += 1
        record(outcome)
        progress.update("\(summary.completed) completed, \(summary.failed) failed, \(running.count) running")
        await doorbell.ring()
    }

    func isLost(_ token: String) -> Bool { lost.contains(token) }

    /// Marks leases as lost and cancels their runs.
    private func lose(_ tokens: [String], reason: String) {
        for t in tokens {
            guard let r = running[t], !lost.contains(t) else { continue }
            lost.insert(t)
            progress.log("task \(r.key): \(reason); cancelling its run")
            r.task.cancel()
        }
    }

    private func noteReaped(_ r: TaskStore.Reaped) async {
        guard r.requeued + r.failed > 0 else { return }
        summary.reaped += r.requeued + r.failed
        BridgeMetrics.tasksReaped(r.requeued + r.failed)
        progress.log("reaper: \(r.requeued) expired lease(s) back to pending, \(r.failed) failed after \(options.maxAttempts) attempts")
        await doorbell.ring()
    }

    // MARK: - Heartbeat and reaper

    /// Every lease/3: extend this worker's leases in one statement, cancel runs whose lease is
    /// gone, and reap expired leases. When the database cannot be reached for a whole lease,
    /// every run is cancelled: its lease may have been reaped and its result would be refused.
    private func heartbeatLoop() async {
        let slot = ConnectionSlot(connect: connect)
        let interval = max(0.2, options.leaseSeconds / 3)
        var lastOK = Date()
        var failing = false
        // Reap once at start: a restarted worker picks up what a dead one left.
        if let r = try? await slot.use({ [store, options] c in try await store.reap(on: c, maxAttempts: options.maxAttempts) }) {
            await noteReaped(r)
        }
        while !loopsStopped && !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            if loopsStopped || Task.isCancelled { break }
            let tokens = Array(running.keys)
            do {
                let alive = try await slot.use { [store, options] c in
                    try await store.heartbeat(on: c, tokens: tokens, leaseSeconds: options.leaseSeconds)
                }
                lastOK = Date()
                BridgeMetrics.leases(alive.count)
                if failing { progress.log("heartbeat: database reachable again") }
                failing = false
                lose(tokens.filter { !alive.contains($0) }, reason: "lease lost (reaped or finished elsewhere)")
                let r = try await slot.use { [store, options] c in try await store.reap(on: c, maxAttempts: options.maxAttempts) }
                await noteReaped(r)
            } catch {
                if !failing { progress.log("heartbeat failed (\(error)); retrying") }
                failing = true
                if Date().timeIntervalSince(lastOK) > options.leaseSeconds {
                    lose(Array(running.keys), reason: "lease not renewed for \(Self.seconds(options.leaseSeconds))")
                }
            }
        }
        await slot.close()
    }

    // MARK: - Listener

    /// LISTEN on `bridge_tasks` on a dedicated connection; ring the doorbell on every
    /// notification and after every (re)connect (notifications sent while disconnected are
    /// lost, so look for work at once). Health-checked with `SELECT 1` every 10 s; reconnects
    /// with exponential backoff and jitter.
    private func listenLoop() async {
        var conn: PostgresConnection?
        var failures = 0
        var lastCheck = Date()
        var everConnected = false
        while !loopsStopped && !Task.isCancelled {
            do {
                if conn == nil {
                    let c = try await connect()
                    conn = c
                    try await c.listen(taskNotifyChannel)
                    let trigger = try await store.hasNotifyTrigger(on: c)
                    notifyActive = trigger
                    if everConnected {
                        progress.log("listener: reconnected")
                    } else if !trigger {
                        progress.log("listener: NOTIFY trigger not installed (migrations/optional); polling every \(Self.seconds(pollInterval))")
                    }
                    everConnected = true
                    failures = 0
                    lastCheck = Date()
                    await doorbell.ring()
                }
                guard let c = conn else { continue }
                let notes = try await c.waitForNotifications(timeout: 0.5)
                if !notes.isEmpty { await doorbell.ring() }
                if Date().timeIntervalSince(lastCheck) > 10 {
                    try await c.simpleQuery("SELECT 1")
                    lastCheck = Date()
                }
            } catch {
                notifyActive = false
                if let c = conn { await c.close() }
                conn = nil
                failures += 1
                let wait = RetryBackoff.delay(attempt: failures, base: 0.5, cap: 15)
                progress.log("listener: \(error); reconnecting in \(Self.seconds(wait))")
                try? await Task.sleep(for: .milliseconds(Int(wait * 1000)))
            }
        }
        if let c = conn { await c.close() }
    }

    static func seconds(_ s: Double) -> String { String(format: "%.1fs", s) }

    enum TaskOutcome: Sendable {
        case completed(taskKey: String, traceId: String, toolCalls: Int, spans: Int)
        case failed(taskKey: String, traceId: String?, message: String, retried: Bool, toolCalls: Int, spans: Int,
                    errorType: FailureType)
        case stale(taskKey: String, traceId: String?)
        case released(taskKey: String)
        case paused(taskKey: String, traceId: String, requests: [String], toolCalls: Int, spans: Int)

        /// How `bridge_tasks_*_total` counts it (nil: the attempt's result was not written here).
        var metric: BridgeMetrics.TaskEnd? {
            switch self {
            case .completed: .completed
            case .failed(_, _, _, let retried, _, _, let type): retried ? .retried(errorType: type) : .failed(errorType: type)
            case .stale, .released, .paused: nil
            }
        }
    }

    private func record(_ o: TaskOutcome) {
        switch o {
        case .completed(let key, let trace, let tools, let spans):
            summary.completed += 1
            summary.toolCalls += tools
            summary.spans += spans
            progress.log("completed task \(key) trace \(trace)")
        case .failed(let key, let trace, let message, let retried, let tools, let spans, _):
            if retried { summary.retried += 1 } else { summary.failed += 1 }
            summary.toolCalls += tools
            summary.spans += spans
            progress.log("\(retried ? "will retry" : "failed") task \(key)\(trace.map { " trace \($0)" } ?? ""): \(message)")
        case .stale(let key, let trace):
            summary.stale += 1
            progress.log("task \(key): lease lost; the late result\(trace.map { " of \($0)" } ?? "") was discarded")
        case .paused(let key, let trace, let requests, let tools, let spans):
            summary.paused += 1
            summary.toolCalls += tools
            summary.spans += spans
            progress.log("task \(key) waits for approval (request\(requests.count == 1 ? "" : "s") \(requests.joined(separator: ", "))) trace \(trace)")
        case .released(let key):
            summary.released += 1
            progress.log("task \(key): released to pending (shutdown)")
        }
    }

    // MARK: - One run

    /// Runs one claimed task end to end. Never throws: every failure is recorded on the task,
    /// and every write is guarded on the lease token.
    nonisolated func runOne(_ claim: TaskStore.Claim, resuming: Bool = false) async -> TaskOutcome {
        let task = claim.row
        let key = claim.key
        let token = claim.token
        let attempt = claim.attempt
        var startedAt = Date()
        var conn: PostgresConnection?
        var traceId: String?
        var executionKey: String?
        do {
            let c = try await pool.checkout()
            conn = c
            let spec: RunSpec
            var resumed: (state: ApprovalStore.Stored, decisions: [ApprovalDecision])?
            if resuming {
                // A paused run whose requests are decided: continue it from its stored state.
                guard let loaded = try await approvals.load(on: c, taskKey: key) else {
                    let msg = "task \(key) was waiting for an approval, but its stored run state is gone"
                    let written = try await finishFailed(c, key: key, token: token, executionKey: nil, traceId: nil,
                                                         startedAt: startedAt, type: .resumeError, message: msg,
                                                         retriable: false, attempt: attempt)
                    await pool.checkin(c)
                    if !written { return .stale(taskKey: key, traceId: nil) }
                    return .failed(taskKey: key, traceId: nil, message: msg, retried: false, toolCalls: 0, spans: 0,
                                   errorType: .resumeError)
                }
                resumed = (state: loaded.0, decisions: loaded.1)
                spec = loaded.0.spec
                executionKey = loaded.0.executionKey
                startedAt = loaded.0.openSpans.first { $0.data["name"] == "task" }?.startedAt ?? startedAt
            } else {
            let (agents, edges) = try await bridge.loadAgentsAndEdges(for: task, connection: c)
            do {
                spec = try bridge.runSpec(task: task, agentRows: agents, handoffEdges: edges, attempt: attempt)
            } catch {
                let msg = Redaction.scrub("cannot build run spec for task \(key): \(error)", secrets: secrets)
                let written = try await finishFailed(c, key: key, token: token, executionKey: nil, traceId: nil, startedAt: startedAt,
                                                     type: .configurationError, message: msg, retriable: false, attempt: attempt)
                await pool.checkin(c)
                if !written { return .stale(taskKey: key, traceId: nil) }
                return .failed(taskKey: key, traceId: nil, message: msg, retried: false, toolCalls: 0, spans: 0,
                               errorType: .configurationError)
            }
            executionKey = try await store.startExecution(on: c, task: task, token: token, traceId: spec.traceId,
                                                          agentId: spec.metadata["agent_id"], attempt: attempt, startedAt: startedAt)
            }
            traceId = spec.traceId
            let resume = resumed.map { TracedRun.Resume(paused: $0.state.paused, decisions: $0.decisions,
                                                        openSpans: $0.state.openSpans) }
            let (result, spanCount, openSpans) = try await TracedRun(model: model, secrets: secrets, mcp: mcp)
                .run(spec, task: task, taskKey: key, connection: c, tools: toolsFactory(c), resume: resume)
            // Cancelled: the lease is gone (write nothing: a newer attempt may own the task), or
            // the worker is shutting down (release the task, token-checked).
            if await isLost(token) {
                await pool.checkin(c)
                return .stale(taskKey: key, traceId: spec.traceId)
            }
            if result.status == .failed && (Task.isCancelled || result.error?.type == .cancelled) {
                let released = try await release(c, key: key, token: token, executionKey: executionKey, startedAt: startedAt,
                                                  message: "released at shutdown before the run finished")
                await pool.checkin(c)
                return released ? .released(taskKey: key) : .stale(taskKey: key, traceId: spec.traceId)
            }
            if result.status == .paused, let paused = result.paused {
                let requests = try await approvals.pause(on: c, task: task, taskKey: key, token: token,
                                                         executionKey: executionKey, spec: spec, paused: paused,
                                                         openSpans: openSpans)
                await pool.checkin(c)
                return .paused(taskKey: key, traceId: spec.traceId, requests: requests, toolCalls: result.toolCalls,
                               spans: spanCount)
            }
            let completedAt = Date()
            let outcome: TaskStore.Outcome
            let retried: Bool
            switch result.status {
            case .completed:
                retried = false
                var completed = TaskStore.Outcome(
                    status: .completed, taskStatus: .completed,
                    result: TracedRun.resultJSON(result, traceId: spec.traceId),
                    tokenUsage: result.usage.json, errorMessage: nil, errorType: nil, completedAt: completedAt,
                    durationSeconds: completedAt.timeIntervalSince(startedAt))
                completed.columns = TracedRun.resultColumns(result, spec: spec)
                outcome = completed
            case .failed, .paused:
                let failure = result.error ?? RunFailure(type: .runError, message: "unknown failure", retriable: false)
                retried = failure.retriable && attempt < options.maxAttempts
                outcome = TaskStore.Outcome(
                    status: failure.retriable ? .failedRetriable : .failedTerminal,
                    taskStatus: retried ? .pending : .failed,
                    result: TracedRun.resultJSON(result, traceId: spec.traceId),
                    tokenUsage: result.usage.json, errorMessage: failure.message, errorType: failure.type,
                    completedAt: completedAt, durationSeconds: completedAt.timeIntervalSince(startedAt),
                    retryAfterSeconds: retried ? backoff(attempt: attempt, retryAfter: failure.retryAfter) : nil)
            }
            let written = try await store.finish(on: c, taskKey: key, token: token, executionKey: executionKey,
                                                 traceId: spec.traceId, outcome: outcome)
            if written, let resumed {
                try await approvals.finished(on: c, taskKey: key,
                                             expiredRequests: resumed.decisions.filter { $0.outcome == .expired }.map(\.requestId))
            }
            await pool.checkin(c)
            if !written { return .stale(taskKey: key, traceId: spec.traceId) }
            if result.status == .completed {
                return .completed(taskKey: key, traceId: spec.traceId, toolCalls: result.toolCalls, spans: spanCount)
            }
            return .failed(taskKey: key, traceId: spec.traceId, message: outcome.execution.errorMessage ?? "", retried: retried,
                           toolCalls: result.toolCalls, spans: spanCount, errorType: outcome.execution.errorType ?? .runError)
        } catch is TaskStore.LeaseLost {
            if let c = conn { await pool.checkin(c) }
            return .stale(taskKey: key, traceId: traceId)
        } catch {
            // Infrastructure failure (database, ledger): put the task back (token-checked) so it is
            // not stuck running, on a fresh connection if this one broke; the lease covers the
            // case where the database stays unreachable.
            let message = Redaction.scrub("\(error)", secrets: secrets)
            if let c = conn { await c.close() }
            if await isLost(token) { return .stale(taskKey: key, traceId: traceId) }
            var written = false
            for pause in [0.0, 0.5, 2.0] {
                if pause > 0 { try? await Task.sleep(for: .milliseconds(Int(pause * 1000))) }
                guard let c = try? await connect() else { continue }
                let ok = try? await finishFailed(c, key: key, token: token, executionKey: executionKey, traceId: nil,
                                                 startedAt: startedAt, type: .infrastructureError, message: message,
                                                 retriable: true, attempt: attempt)
                await c.close()
                if let ok { written = ok; break }
            }
            if !written && conn == nil {
                return .failed(taskKey: key, traceId: traceId, message: message + " (the lease will return the task)",
                               retried: true, toolCalls: 0, spans: 0, errorType: .infrastructureError)
            }
            return .failed(taskKey: key, traceId: traceId, message: message, retried: attempt < options.maxAttempts,
                           toolCalls: 0, spans: 0, errorType: .infrastructureError)
        }
    }

    nonisolated func backoff(attempt: Int, retryAfter: Double?) -> Double {
        RetryBackoff.delay(attempt: attempt, base: options.retryBaseSeconds, cap: options.retryMaxSeconds, retryAfter: retryAfter)
    }

    /// Hands a task back to pending without a backoff (shutdown), token-checked.
    nonisolated func release(_ c: PostgresConnection, key: String, token: String, executionKey: String?, startedAt: Date,
                             message: String) async throws -> Bool {
        let now = Date()
        let outcome = TaskStore.Outcome(
            status: .failedRetriable, taskStatus: .pending,
            result: ["error": .string(message), "error_type": .string(FailureType.released.rawValue)], tokenUsage: [:],
            errorMessage: message, errorType: .released, completedAt: now, durationSeconds: now.timeIntervalSince(startedAt))
        return try await store.finish(on: c, taskKey: key, token: token, executionKey: executionKey, traceId: nil, outcome: outcome)
    }

    nonisolated func finishFailed(_ c: PostgresConnection, key: String, token: String, executionKey: String?, traceId: String?,
                                  startedAt: Date, type: FailureType, message: String, retriable: Bool, attempt: Int) async throws -> Bool {
        let now = Date()
        let again = retriable && attempt < options.maxAttempts
        let outcome = TaskStore.Outcome(
            status: retriable ? .failedRetriable : .failedTerminal, taskStatus: again ? .pending : .failed,
            result: ["error": .string(message), "error_type": .string(type.rawValue)], tokenUsage: [:],
            errorMessage: message, errorType: type, completedAt: now, durationSeconds: now.timeIntervalSince(startedAt),
            retryAfterSeconds: again ? backoff(attempt: attempt, retryAfter: nil) : nil)
        return try await store.finish(on: c, taskKey: key, token: token, executionKey: executionKey, traceId: traceId, outcome: outcome)
    }
}
