import BridgeCore
import BridgeMapping
import BridgeMetrics
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import Foundation
import Synchronization

/// The run executor: runs one claimed task end to end. It builds the task's run spec (or loads
/// a paused run's stored state), inserts the attempt's execution row, runs it traced, and writes
/// the outcome back, every write guarded on the lease's token. It never throws: every failure
/// ends as a `TaskOutcome` and, while the lease holds, on the task row.
///
/// The attempt's connection comes from the pool for exactly the attempt's scope
/// (`RunConnectionPool.withConnection`): it goes back to the pool however the attempt ends, or
/// is closed when the database failed under it.
struct RunExecutor: Sendable {
    let config: MappingConfig
    let bridge: DatabaseToSDKBridge
    let store: TaskStore
    let approvals: ApprovalStore
    /// Fresh connections for recording an infrastructure failure (the pooled one may be broken).
    let connect: @Sendable () async throws -> PostgresConnection
    let pool: RunConnectionPool
    let model: any ModelProvider
    let toolsFactory: @Sendable (PostgresConnection) -> any ToolExecutor
    let mcp: (any MCPToolSource)?
    /// Values never to be recorded in spans (API keys, the database password).
    let secrets: [String]
    let options: WorkerOptions
    /// Fleet-wide limits, budgets and spend (nil: none of `pricing`, `limits`, `budgets`).
    var fleet: FleetLimits? = nil
    /// Whether `bridge.model_calls` exists (migration 0055).
    var recordsSpend = false
    var progress: ProgressReporter? = nil
    /// Durable runs: their journals (when `bridge migrate` created the tables) and the worker's
    /// request to stop at the next step boundary.
    let journals: RunJournalStore
    let stop: StopSignal
    let durability = DurabilityCheck()
    /// Conversation memory (`sessions`), nil without the section.
    var sessions: SessionStore? { SessionStore(config: config) }

    /// Whether the journal tables exist, asked once per worker.
    final class DurabilityCheck: Sendable {
        private let known = Mutex<Bool?>(nil)
        func enabled(_ journals: RunJournalStore, on c: PostgresConnection) async throws -> Bool {
            if let k = known.withLock({ $0 }) { return k }
            let k = try await journals.isMigrated(on: c)
            known.withLock { $0 = k }
            return k
        }
    }

    /// How far an attempt got: what its failure record needs when the database fails under it.
    struct Attempt {
        var startedAt = Date()
        var traceId: TraceID?
        var executionKey: String?
        /// Whether the pool gave it a connection at all.
        var connected = false
    }

    /// Runs `claim` (a paused run of it when `resuming`). `isLost` says whether the lease behind
    /// a token is gone (the lease keeper decides; a lost run writes nothing).
    func run(
        _ claim: TaskStore.Claim, resuming: Bool,
        isLost: @escaping @Sendable (LeaseToken) async -> Bool
    ) async -> TaskOutcome {
        var attempt = Attempt()
        do {
            return try await pool.withConnection { c in
                attempt.connected = true
                do {
                    return try await run(claim, resuming: resuming, on: c, attempt: &attempt, isLost: isLost)
                } catch is TaskStore.LeaseLost {
                    return .stale(taskKey: claim.key, traceId: attempt.traceId)
                }
            }
        } catch {
            return await infrastructureFailure(error, claim: claim, attempt: attempt, isLost: isLost)
        }
    }

    /// How an attempt starts: the run spec, and what the run goes on from.
    private struct Start {
        var spec: RunSpec
        /// A paused run whose approvals are decided: its stored state and the decisions.
        var resumed: (state: ApprovalStore.Stored, decisions: [ApprovalDecision])?
        /// The calls a durable run's journal holds as finished (replayed, not run again).
        var journalCalls: [JournaledCall] = []
        /// An interrupted run's last journaled model response (nil: it goes on from the start).
        var checkpoint: RunCheckpoint?
        /// An interrupted run going on from its journal: what its `resume` span shows.
        var resumeInfo: ResumeInfo?
        /// Whether the statement that wrote the journal head also wrote the trace.
        var traceWritten = false
    }

    /// A step of the attempt: what it goes on with, or the outcome it ended with.
    private enum Step<Value> {
        case goOn(Value)
        case ended(TaskOutcome)
    }

    /// The attempt on its connection, step by step: where it starts (`startAttempt`), the run
    /// traced (`runTraced`), then its outcome: stopped (lost lease or shutdown), paused for
    /// approvals, or finished (`finishRun`). Writes that find the lease gone return a stale
    /// outcome or throw `TaskStore.LeaseLost`, which the caller turns into one.
    private func run(
        _ claim: TaskStore.Claim, resuming: Bool, on c: PostgresConnection, attempt: inout Attempt,
        isLost: @Sendable (LeaseToken) async -> Bool
    ) async throws -> TaskOutcome {
        let durable = try await durability.enabled(journals, on: c)
        let start: Start
        switch try await startAttempt(claim, resuming: resuming, durable: durable, on: c, attempt: &attempt) {
        case .goOn(let s): start = s
        case .ended(let outcome): return outcome
        }
        let spec = start.spec
        attempt.traceId = spec.traceId
        let journal =
            durable
            ? DurableJournal(
                store: journals, connection: c, taskKey: claim.key, traceId: spec.traceId, token: claim.token,
                workerId: options.workerId, stop: stop, finished: start.journalCalls, traceWritten: start.traceWritten,
                deferredTools: DurableJournal.deferredTools(of: spec, leased: true))
            : nil
        let tally = CostTally()
        let (result, spanCount, openSpans) = try await runTraced(claim, start, journal: journal, tally: tally, on: c)
        if let stopped = try await stopped(
            result, claim, spec: spec, journal: journal, durable: durable, attempt: attempt, isLost: isLost, on: c)
        {
            return stopped
        }
        if result.status == .paused, let paused = result.paused {
            do { try await journal?.flush() } catch is JournalFenced {
                return .stale(taskKey: claim.key, traceId: spec.traceId)
            }
            let requests = try await approvals.pause(
                on: c, task: claim.row, taskKey: claim.key, token: claim.token,
                executionKey: attempt.executionKey, spec: spec, paused: paused,
                openSpans: openSpans)
            return .paused(
                taskKey: claim.key, traceId: spec.traceId, requests: requests, toolCalls: result.toolCalls,
                spans: spanCount)
        }
        return try await finishRun(
            result, claim, start, journal: journal, tally: tally, spans: spanCount, attempt: attempt, on: c)
    }

    /// Where the attempt starts: an interrupted run goes on from its journal; a paused run
    /// whose approvals are decided goes on from its stored state; any other task starts anew.
    private func startAttempt(
        _ claim: TaskStore.Claim, resuming: Bool, durable: Bool, on c: PostgresConnection, attempt: inout Attempt
    ) async throws -> Step<Start> {
        let head = durable ? try await journals.head(on: c, taskKey: claim.key) : nil
        // A run resumed after an approval whose stint was interrupted before its next
        // checkpoint: it goes through the decisions again (its finished calls replayed).
        var resuming = resuming
        var resumedAgain = false
        if !resuming, let head, config.approvals != nil,
            let pausedAt = try await approvals.pausedAt(on: c, taskKey: claim.key),
            head.checkpoint == nil || head.updatedAt <= pausedAt
        {
            resuming = true
            resumedAgain = true
        }
        if let head, !resuming { return try await startFromJournal(head, claim, on: c, attempt: &attempt) }
        if resuming {
            return try await startAfterApprovals(claim, durable: durable, again: resumedAgain, on: c, attempt: &attempt)
        }
        return try await startAnew(claim, durable: durable, on: c, attempt: &attempt)
    }

    /// An interrupted run (worker killed or stopped, or a retriable failure): it goes on from
    /// its journal, in its trace, with the spec it started with, if the mappings as they are
    /// now still describe it; else it fails, and its journal is dropped.
    private func startFromJournal(
        _ head: RunJournalStore.Head, _ claim: TaskStore.Claim, on c: PostgresConnection, attempt: inout Attempt
    ) async throws -> Step<Start> {
        let (task, key, token) = (claim.row, claim.key, claim.token)
        let stored: RunSpec
        let checkpoint: RunCheckpoint?
        do {
            guard head.format == RunCheckpoint.format else {
                throw JournalFenced(
                    "it was written in journal format \(head.format); this bridge reads format \(RunCheckpoint.format)")
            }
            stored = try JSONDecoder().decode(RunSpec.self, from: Data(head.spec.utf8))
            checkpoint = try head.checkpoint.map {
                try JSONDecoder().decode(RunCheckpoint.self, from: Data($0.utf8))
            }
        } catch {
            let message = Redaction.scrub(
                "the run journal of task \(key) cannot be resumed: \(error)", secrets: secrets)
            return .ended(
                try await failBeforeRun(
                    c, claim, startedAt: attempt.startedAt, type: .resumeError, message: message,
                    also: journals.abandonStatements(taskKey: key, traceId: head.traceId)))
        }
        // The mappings as they are now must still describe the journaled run.
        let (agents, edges) = try await bridge.loadAgentsAndEdges(for: task, connection: c)
        let current = try? bridge.runSpec(
            task: task, agentRows: agents, handoffEdges: edges, attempt: claim.attempt)
        let change =
            current.map {
                ResumeCheck.changes(
                    stored: stored, current: $0, agent: checkpoint?.position.agent ?? stored.startingAgent)
            }
            ?? "the task's run spec can no longer be built"
        if let change {
            let message = Redaction.scrub(
                "task \(key) was interrupted, but the mappings changed since: \(change); not resumed",
                secrets: secrets)
            return .ended(
                try await failBeforeRun(
                    c, claim, startedAt: attempt.startedAt, type: .resumeError, message: message,
                    also: journals.abandonStatements(taskKey: key, traceId: head.traceId)))
        }
        var start = Start(spec: stored, checkpoint: checkpoint)
        start.journalCalls = try await journals.calls(on: c, traceId: stored.traceId)
        start.resumeInfo = ResumeInfo(
            previousWorker: head.workerId, worker: options.workerId, lastStepAt: head.updatedAt,
            attempt: claim.attempt)
        attempt.executionKey = try await store.startExecution(
            on: c, task: task, token: token, traceId: stored.traceId, agentId: stored.metadata["agent_id"],
            attempt: claim.attempt, startedAt: attempt.startedAt)
        try await journals.resumed(on: c, taskKey: key, token: token, workerId: options.workerId)
        return .goOn(start)
    }

    /// A paused run whose requests are decided: it goes on from its stored state, under its
    /// execution row (`again`: an interrupted resumed stint, whose execution row was ended by
    /// the reaper or the release, gets a new one).
    private func startAfterApprovals(
        _ claim: TaskStore.Claim, durable: Bool, again: Bool, on c: PostgresConnection, attempt: inout Attempt
    ) async throws -> Step<Start> {
        let key = claim.key
        guard let loaded = try await approvals.load(on: c, taskKey: key) else {
            return .ended(
                try await failBeforeRun(
                    c, claim, startedAt: attempt.startedAt, type: .resumeError,
                    message: "task \(key) was waiting for an approval, but its stored run state is gone"))
        }
        var start = Start(spec: loaded.0.spec, resumed: (state: loaded.0, decisions: loaded.1))
        attempt.executionKey = loaded.0.executionKey
        attempt.startedAt = loaded.0.openSpans.first { $0.data["name"] == "task" }?.startedAt ?? attempt.startedAt
        if durable { start.journalCalls = try await journals.calls(on: c, traceId: start.spec.traceId) }
        if again {
            attempt.startedAt = Date()
            attempt.executionKey = try await store.startExecution(
                on: c, task: claim.row, token: claim.token, traceId: start.spec.traceId,
                agentId: start.spec.metadata["agent_id"], attempt: claim.attempt, startedAt: attempt.startedAt)
        }
        return .goOn(start)
    }

    /// A new run: its spec built from the task (with its session's history), then its journal
    /// head (durable), trace and execution row written.
    private func startAnew(
        _ claim: TaskStore.Claim, durable: Bool, on c: PostgresConnection, attempt: inout Attempt
    ) async throws -> Step<Start> {
        let (task, key, token) = (claim.row, claim.key, claim.token)
        let (agents, edges) = try await bridge.loadAgentsAndEdges(for: task, connection: c)
        var spec: RunSpec
        do {
            spec = try bridge.runSpec(task: task, agentRows: agents, handoffEdges: edges, attempt: claim.attempt)
        } catch {
            let message = Redaction.scrub("cannot build run spec for task \(key): \(error)", secrets: secrets)
            return .ended(
                try await failBeforeRun(
                    c, claim, startedAt: attempt.startedAt, type: .configurationError,
                    message: message))
        }
        // The session's history goes into the spec before the journal stores it, so a
        // resumed run sees the same history.
        if let sessions, let session = spec.session {
            do {
                spec.session?.items = try await sessions.load(on: c, key: session.id)
            } catch let e as SessionStore.KeyError {
                let message = Redaction.scrub("cannot read the session of task \(key): \(e)", secrets: secrets)
                return .ended(
                    try await failBeforeRun(
                        c, claim, startedAt: attempt.startedAt, type: .configurationError, message: message))
            }
        }
        // The journal first: an execution row always names the trace its run keeps. A
        // durable run writes its journal head, trace and execution row in one statement.
        var started = false
        if durable {
            var trace = TraceRecord(spec: spec)
            trace.metadata = trace.metadata.mapValues { Redaction.scrub($0, secrets: secrets) }
            (attempt.executionKey, started) = try await journals.startRun(
                on: c, taskKey: key, token: token, spec: spec, workerId: options.workerId, task: task,
                trace: trace, startedAt: attempt.startedAt)
            if !started {
                try await journals.start(
                    on: c, taskKey: key, token: token, spec: spec, workerId: options.workerId)
            }
        }
        if !started {
            attempt.executionKey = try await store.startExecution(
                on: c, task: task, token: token, traceId: spec.traceId, agentId: spec.metadata["agent_id"],
                attempt: claim.attempt, startedAt: attempt.startedAt)
        }
        return .goOn(Start(spec: spec, traceWritten: started))
    }

    /// Runs the attempt traced. Every model call is priced and passes the fleet's limits and
    /// the group's budget; tools pass the tool limits.
    private func runTraced(
        _ claim: TaskStore.Claim, _ start: Start, journal: DurableJournal?, tally: CostTally, on c: PostgresConnection
    ) async throws -> (result: RunResult, spans: Int, openSpans: [TraceRecorder.OpenSpan]) {
        let spec = start.spec
        var model = self.model
        if let fleet {
            let group = config.source.groupColumn.flatMap { claim.row[$0] }.flatMap {
                $0.isNull ? nil : $0.templateText
            }
            let gate = RunGate(
                limits: fleet, connection: c, taskKey: claim.key, attempt: claim.attempt, group: group,
                recordsSpend: recordsSpend, progress: progress, riders: journal?.riders)
            model = MeteredModel(inner: model, pricing: config.pricing, gate: gate, tally: tally)
            BridgeMetrics.registerCost(
                models: spec.agents.values.map(\.model).filter { config.pricing.models[$0] != nil }, group: group ?? "")
        }
        var tools = toolsFactory(c)
        var mcp = self.mcp
        if let toolLimits = config.limits?.tools, !toolLimits.isEmpty {
            tools = LimitedTools(inner: tools, limits: toolLimits, connection: c)
            mcp = mcp.map { LimitedMCP(inner: $0, limits: toolLimits, connection: c) }
        }
        let resume = start.resumed.map {
            TracedRun.Resume(
                paused: $0.state.paused, decisions: $0.decisions,
                openSpans: $0.state.openSpans)
        }
        return try await TracedRun(model: model, secrets: secrets, mcp: mcp)
            .run(
                spec, task: claim.row, taskKey: claim.key, connection: c, tools: tools, resume: resume,
                durable: journal.map {
                    TracedRun.Durable(journal: $0, checkpoint: start.checkpoint, info: start.resumeInfo)
                })
    }

    /// A cancelled run: the lease is gone (write nothing: a newer attempt may own the task), or
    /// the worker is shutting down (release the task, token-checked). A durable run's steps
    /// since its last journal write are dropped: the run goes on from its journal. Nil when the
    /// run was not cancelled.
    private func stopped(
        _ result: RunResult, _ claim: TaskStore.Claim, spec: RunSpec, journal: DurableJournal?, durable: Bool,
        attempt: Attempt, isLost: @Sendable (LeaseToken) async -> Bool, on c: PostgresConnection
    ) async throws -> TaskOutcome? {
        if await isLost(claim.token) {
            journal?.discard()
            await Self.sendRiders(journal, on: c)
            return .stale(taskKey: claim.key, traceId: spec.traceId)
        }
        guard result.status == .failed && (Task.isCancelled || result.error?.type == .cancelled) else { return nil }
        journal?.discard()
        await Self.sendRiders(journal, on: c)
        let released = try await release(
            c, claim, executionKey: attempt.executionKey, startedAt: attempt.startedAt,
            durable: durable)
        return released ? .released(taskKey: claim.key) : .stale(taskKey: claim.key, traceId: spec.traceId)
    }

    /// A finished (completed or failed) run: its result written, token-checked, with its last
    /// spans and its journal dropped; a retried durable run keeps its journal and goes on from
    /// it (its last steps are done again).
    private func finishRun(
        _ result: RunResult, _ claim: TaskStore.Claim, _ start: Start, journal: DurableJournal?, tally: CostTally,
        spans spanCount: Int, attempt: Attempt, on c: PostgresConnection
    ) async throws -> TaskOutcome {
        let (key, spec) = (claim.key, start.spec)
        var (outcome, retried) = self.outcome(
            of: result, spec: spec, attempt: claim.attempt, startedAt: attempt.startedAt)
        if case .object(var usage) = outcome.execution.tokenUsage {
            outcome.execution.tokenUsage = .null  // `usage` is then the only copy: set in place
            tally.note(into: &usage)
            outcome.execution.tokenUsage = .object(usage)
        }
        // A budget on hold is not a failure of the task: it waits (pending, its attempt given
        // back) until the application raises the budget; claims skip it meanwhile.
        if result.error?.type == .budgetExceeded, config.budgets?.onExceeded == .hold {
            outcome.taskStatus = .pending
            outcome.refundsAttempt = true
            outcome.retryAfterSeconds = nil
            retried = true
        }
        var also: [PostgresQuery] = []
        if retried {
            journal?.discard()
            await Self.sendRiders(journal, on: c)
        } else {
            also = journal?.finalStatements() ?? []
        }
        let written: Bool
        do {
            written = try await writeResult(
                result, claim, spec: spec, outcome: outcome, executionKey: attempt.executionKey, also: also, on: c)
        } catch let e as PostgresError where e.kind == .server {
            // The server refused the finishing transaction: the spend it carried rolled back with
            // it, and the calls were paid all the same.
            await Self.sendRiders(journal, on: c, again: true)
            throw e
        }
        guard written else {
            // The finishing transaction rolled back, and the spend it carried with it.
            await Self.sendRiders(journal, on: c, again: true)
            return .stale(taskKey: key, traceId: spec.traceId)
        }
        if let resumed = start.resumed {
            try await approvals.finished(
                on: c, taskKey: key,
                expiredRequests: resumed.decisions.filter { $0.outcome == .expired }.map(\.requestId))
        }
        if result.status == .completed {
            return .completed(taskKey: key, traceId: spec.traceId, toolCalls: result.toolCalls, spans: spanCount)
        }
        return .failed(
            taskKey: key, traceId: spec.traceId, message: outcome.execution.errorMessage ?? "", retried: retried,
            toolCalls: result.toolCalls, spans: spanCount, errorType: outcome.execution.errorType ?? .runError)
    }

    /// Writes a finished run's result (with `also`), token-checked; false when the lease is
    /// gone. A completed run's new items join its session in the same transaction: only a run
    /// whose lease held appends, and only once (a resumed run appends at its own finish).
    private func writeResult(
        _ result: RunResult, _ claim: TaskStore.Claim, spec: RunSpec, outcome: TaskStore.Outcome,
        executionKey: String?, also: [PostgresQuery], on c: PostgresConnection
    ) async throws -> Bool {
        var appended: [PostgresQuery] = []
        if result.status == .completed, outcome.taskStatus == .completed, let sessions, let session = spec.session {
            appended = sessions.appendStatements(key: session.id, items: result.newItems, traceId: spec.traceId)
        }
        do {
            return try await store.finish(
                on: c, taskKey: claim.key, token: claim.token, executionKey: executionKey,
                traceId: spec.traceId, outcome: outcome, also: also + appended)
        } catch let e as PostgresError where !appended.isEmpty && e.sqlState?.hasPrefix("23") == true {
            // The application's table refused the rows (a constraint on the run's own text, or
            // a session row its foreign key does not know): the run's result is still written,
            // without paying for the run again; the session misses this exchange.
            progress?.status(
                Redaction.scrub(
                    "task \(claim.key): session \(spec.session?.id ?? "") refused the run's items (\(e.message)); the result is written without them",
                    secrets: secrets))
            return try await store.finish(
                on: c, taskKey: claim.key, token: claim.token, executionKey: executionKey,
                traceId: spec.traceId, outcome: outcome, also: also)
        }
    }

    /// Sends what `journal` still holds to ride on another statement (a model call's spend) in
    /// a statement of its own: the run makes no more writes. Best effort, like any spend record.
    /// With `again`, what the finishing transaction carried too (it rolled back).
    static func sendRiders(_ journal: DurableJournal?, on c: PostgresConnection, again: Bool = false) async {
        if again { journal?.riders.unsend() }
        guard let statement = journal?.riders.statement() else { return }
        _ = try? await c.query(statement)
    }

    /// What a finished (completed or failed) run writes, and whether a failure is retried.
    private func outcome(
        of result: RunResult, spec: RunSpec, attempt: Int,
        startedAt: Date
    ) -> (TaskStore.Outcome, retried: Bool) {
        let completedAt = Date()
        let resultJSON = TracedRun.resultJSON(result, traceId: spec.traceId)
        let usage = result.usage.json(room: 2)  // room for the cost fields `finishRun` adds
        if result.status == .completed {
            var completed = TaskStore.Outcome(
                status: .completed, taskStatus: .completed, result: resultJSON, tokenUsage: usage,
                errorMessage: nil, errorType: nil, completedAt: completedAt,
                durationSeconds: completedAt.timeIntervalSince(startedAt))
            completed.columns = TracedRun.resultColumns(result, spec: spec)
            return (completed, false)
        }
        let failure = result.error ?? RunFailure(type: .runError, message: "unknown failure", retriable: false)
        let retried = failure.retriable && attempt < options.maxAttempts
        let outcome = TaskStore.Outcome(
            status: failure.retriable ? .failedRetriable : .failedTerminal, taskStatus: retried ? .pending : .failed,
            result: resultJSON, tokenUsage: usage, errorMessage: failure.message, errorType: failure.type,
            completedAt: completedAt, durationSeconds: completedAt.timeIntervalSince(startedAt),
            retryAfterSeconds: retried ? backoff(attempt: attempt, retryAfter: failure.retryAfter) : nil)
        return (outcome, retried)
    }

    /// A failure before the run could start (no spec, no stored state): terminal, no trace.
    private func failBeforeRun(
        _ c: PostgresConnection, _ claim: TaskStore.Claim, startedAt: Date, type: FailureType,
        message: String, also: [PostgresQuery] = []
    ) async throws -> TaskOutcome {
        let written = try await finishFailed(
            c, claim, executionKey: nil, startedAt: startedAt, type: type,
            message: message, retriable: false, also: also)
        guard written else { return .stale(taskKey: claim.key, traceId: nil) }
        return .failed(
            taskKey: claim.key, traceId: nil, message: message, retried: false, toolCalls: 0, spans: 0,
            errorType: type)
    }

    /// The database (or the ledger) failed under the attempt: put the task back (token-checked)
    /// so it is not stuck running, on a fresh connection; the lease covers the case where the
    /// database stays unreachable.
    private func infrastructureFailure(
        _ error: any Error, claim: TaskStore.Claim, attempt: Attempt,
        isLost: @Sendable (LeaseToken) async -> Bool
    ) async -> TaskOutcome {
        let message = Redaction.scrub("\(error)", secrets: secrets)
        if await isLost(claim.token) { return .stale(taskKey: claim.key, traceId: attempt.traceId) }
        var written = false
        for pause in [0.0, 0.5, 2.0] {
            if pause > 0 { try? await Task.sleep(for: .milliseconds(Int(pause * 1000))) }
            guard let c = try? await connect() else { continue }
            let ok = try? await finishFailed(
                c, claim, executionKey: attempt.executionKey, startedAt: attempt.startedAt,
                type: .infrastructureError, message: message, retriable: true)
            await c.close()
            if let ok {
                written = ok
                break
            }
        }
        if !written && !attempt.connected {
            return .failed(
                taskKey: claim.key, traceId: attempt.traceId, message: message + " (the lease will return the task)",
                retried: true, toolCalls: 0, spans: 0, errorType: .infrastructureError)
        }
        return .failed(
            taskKey: claim.key, traceId: attempt.traceId, message: message,
            retried: claim.attempt < options.maxAttempts, toolCalls: 0, spans: 0, errorType: .infrastructureError)
    }

    func backoff(attempt: Int, retryAfter: Duration?) -> Double {
        RetryBackoff.delay(
            attempt: attempt, base: options.retryBase.inSeconds, cap: options.retryMax.inSeconds,
            retryAfter: retryAfter?.inSeconds)
    }

    /// Hands a task back to pending without a backoff (shutdown), token-checked.
    private func release(
        _ c: PostgresConnection, _ claim: TaskStore.Claim, executionKey: String?,
        startedAt: Date, durable: Bool
    ) async throws -> Bool {
        let message = "released at shutdown before the run finished"
        let now = Date()
        var outcome = TaskStore.Outcome(
            status: .failedRetriable, taskStatus: .pending,
            result: ["error": .string(message), "error_type": .string(FailureType.released.rawValue)], tokenUsage: [:],
            errorMessage: message, errorType: .released, completedAt: now,
            durationSeconds: now.timeIntervalSince(startedAt))
        outcome.refundsAttempt = durable
        return try await store.finish(
            on: c, taskKey: claim.key, token: claim.token, executionKey: executionKey,
            traceId: nil, outcome: outcome)
    }

    /// Records a failure that is not the run's own (no trace), token-checked: retried with a
    /// backoff while attempts are left, else failed.
    private func finishFailed(
        _ c: PostgresConnection, _ claim: TaskStore.Claim, executionKey: String?, startedAt: Date,
        type: FailureType, message: String, retriable: Bool,
        also: [PostgresQuery] = []
    ) async throws -> Bool {
        let now = Date()
        let again = retriable && claim.attempt < options.maxAttempts
        let outcome = TaskStore.Outcome(
            status: retriable ? .failedRetriable : .failedTerminal, taskStatus: again ? .pending : .failed,
            result: ["error": .string(message), "error_type": .string(type.rawValue)], tokenUsage: [:],
            errorMessage: message, errorType: type, completedAt: now, durationSeconds: now.timeIntervalSince(startedAt),
            retryAfterSeconds: again ? backoff(attempt: claim.attempt, retryAfter: nil) : nil)
        return try await store.finish(
            on: c, taskKey: claim.key, token: claim.token, executionKey: executionKey,
            traceId: nil, outcome: outcome, also: also)
    }
}
