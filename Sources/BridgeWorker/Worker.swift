import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTracing
import Foundation

/// Settings for one `bridge exec` process.
public struct WorkerOptions: Sendable {
    /// Runs at most this many tasks at once (and never claims more than free slots).
    public var concurrency: Int
    /// A task that failed retriably this many times is marked failed.
    public var maxAttempts: Int
    /// Only these task keys (empty: all pending tasks).
    public var taskKeys: [String]
    /// Stop after this many tasks (nil: drain everything).
    public var limit: Int?

    public init(concurrency: Int = 4, maxAttempts: Int = 3, taskKeys: [String] = [], limit: Int? = nil) {
        self.concurrency = concurrency
        self.maxAttempts = maxAttempts
        self.taskKeys = taskKeys
        self.limit = limit
    }
}

/// What one `bridge exec` did.
public struct WorkerSummary: Sendable {
    public var completed = 0
    public var failed = 0
    public var retried = 0
    public var stale = 0
    public var toolCalls = 0
    public var spans = 0
    public var elapsed: Double = 0
    /// One report per exporter that ran (what it delivered, what it left in the ledger).
    public var exports: [ExportReport] = []

    public var line: String {
        String(format: "completed %d, failed %d, retried %d, tool calls %d, spans %d, elapsed %.2fs",
               completed, failed, retried, toolCalls, spans, elapsed)
    }
}

/// The DatabaseToSDKBridge worker: claims pending tasks, turns each into a run spec, runs it
/// traced, and writes the result, the execution row and the trace id back.
public actor Worker {
    let config: MappingConfig
    let bridge: DatabaseToSDKBridge
    let store: TaskStore
    let connect: @Sendable () async throws -> PostgresConnection
    let model: any ModelProvider
    let toolsFactory: @Sendable (PostgresConnection) -> any ToolExecutor
    let extraSinks: [any SpanSink]
    let progress: ProgressReporter
    let options: WorkerOptions
    /// Values never to be recorded in spans (API keys, the database password).
    let secrets: [String]

    private var summary = WorkerSummary()

    public init(config: MappingConfig, connect: @escaping @Sendable () async throws -> PostgresConnection,
                model: any ModelProvider, tools: @escaping @Sendable (PostgresConnection) -> any ToolExecutor,
                extraSinks: [any SpanSink], progress: ProgressReporter, options: WorkerOptions, secrets: [String] = []) {
        self.config = config
        self.bridge = DatabaseToSDKBridge(config: config)
        self.store = TaskStore(config: config)
        self.connect = connect
        self.model = model
        self.toolsFactory = tools
        self.extraSinks = extraSinks
        self.progress = progress
        self.options = options
        self.secrets = secrets
    }

    /// Claims and runs tasks until none is left to claim (including sub-tasks created by the
    /// runs themselves), then returns the summary.
    public func drain() async throws -> WorkerSummary {
        let started = Date()
        let claimer = try await connect()
        do {
            try await claimLoop(claimer)
        } catch {
            await claimer.close()
            throw error
        }
        await claimer.close()
        progress.finish()
        summary.elapsed = Date().timeIntervalSince(started)
        return summary
    }

    /// Claims at most the free slots, runs the claimed tasks concurrently, and claims again
    /// whenever a run finishes, until nothing is running and nothing is left to claim.
    private func claimLoop(_ claimer: PostgresConnection) async throws {
        var inFlight = 0
        var processed = 0
        try await withThrowingTaskGroup(of: TaskOutcome.self) { group in
            while true {
                let budget = options.limit.map { max(0, $0 - processed - inFlight) } ?? Int.max
                let free = min(options.concurrency - inFlight, budget)
                var claimed: [Row] = []
                if free > 0 {
                    claimed = try await store.claim(on: claimer, limit: free, keys: options.taskKeys)
                }
                for row in claimed {
                    inFlight += 1
                    group.addTask { await self.runOne(row) }
                }
                if inFlight == 0 { break }
                // Wait for one run to finish, then look for more work.
                if let outcome = try await group.next() {
                    inFlight -= 1
                    processed += 1
                    record(outcome)
                    progress.update("bridge exec: \(summary.completed) completed, \(summary.failed) failed, \(inFlight) running")
                }
            }
        }
    }

    enum TaskOutcome: Sendable {
        case completed(taskKey: String, traceId: String, toolCalls: Int, spans: Int)
        case failed(taskKey: String, traceId: String?, message: String, retried: Bool, toolCalls: Int, spans: Int)
        case stale(taskKey: String)
    }

    private func record(_ o: TaskOutcome) {
        switch o {
        case .completed(let key, let trace, let tools, let spans):
            summary.completed += 1
            summary.toolCalls += tools
            summary.spans += spans
            progress.log("completed task \(key) trace \(trace)")
        case .failed(let key, let trace, let message, let retried, let tools, let spans):
            if retried { summary.retried += 1 } else { summary.failed += 1 }
            summary.toolCalls += tools
            summary.spans += spans
            progress.log("\(retried ? "will retry" : "failed") task \(key)\(trace.map { " trace \($0)" } ?? ""): \(message)")
        case .stale(let key):
            summary.stale += 1
            progress.log("task \(key) changed while running; its result was discarded")
        }
    }

    /// Runs one claimed task end to end. Never throws: every failure is recorded on the task.
    nonisolated func runOne(_ task: Row) async -> TaskOutcome {
        let status = config.source.status
        let key = task[config.source.key]?.templateText ?? "?"
        let startedAt = Date()
        var conn: PostgresConnection?
        do {
            let c = try await connect()
            conn = c
            let attempt = try await store.previousAttempts(on: c, taskKey: key) + 1
            let (agents, edges) = try await bridge.loadAgentsAndEdges(for: task, connection: c)
            let spec: RunSpec
            do {
                spec = try bridge.runSpec(task: task, agentRows: agents, handoffEdges: edges, attempt: attempt)
            } catch {
                let msg = "cannot build run spec for task \(key): \(error)"
                _ = try await finishFailed(c, key: key, executionKey: nil, traceId: nil, startedAt: startedAt,
                                           type: "ConfigurationError", message: msg, retriable: false, attempt: attempt)
                await c.close()
                return .failed(taskKey: key, traceId: nil, message: msg, retried: false, toolCalls: 0, spans: 0)
            }
            let executionKey = try await store.startExecution(on: c, task: task, traceId: spec.traceId,
                                                              agentId: spec.metadata["agent_id"], attempt: attempt, startedAt: startedAt)
            let ledger = Ledger(connection: c)
            let recorder = TraceRecorder(spec: spec, ledger: ledger, includeSensitiveData: spec.traceIncludeSensitiveData,
                                         extraSinks: extraSinks, secrets: secrets)
            let runner = AgentRunner(model: model, tools: toolsFactory(c), observer: recorder)
            let result = await runner.run(spec, taskRow: task)
            try await ledger.storeTranscript(traceId: spec.traceId, taskId: key, attempt: attempt, items: result.transcript)
            let spanCount = await recorder.spanCount
            let sinkErrors = await recorder.sinkErrors
            if !sinkErrors.isEmpty {
                // A span that did not reach the ledger would be lost: fail the attempt, retriably.
                throw LedgerWriteError(message: "recording spans failed: \(sinkErrors.joined(separator: "; "))")
            }
            let completedAt = Date()
            let outcome: TaskStore.Outcome
            let retried: Bool
            switch result.status {
            case .completed:
                retried = false
                outcome = TaskStore.Outcome(
                    status: .completed, taskStatus: status.completed,
                    result: ["output": .string(result.finalOutput ?? ""), "usage": result.usage.json,
                             "trace_id": .string(spec.traceId), "last_agent": .string(result.lastAgent)],
                    tokenUsage: result.usage.json, errorMessage: nil, errorType: nil, completedAt: completedAt,
                    durationSeconds: completedAt.timeIntervalSince(startedAt))
            case .failed:
                let failure = result.error ?? RunFailure(type: "RunError", message: "unknown failure", retriable: false)
                retried = failure.retriable && attempt < options.maxAttempts
                outcome = TaskStore.Outcome(
                    status: failure.retriable ? .failedRetriable : .failedTerminal,
                    taskStatus: retried ? status.pending : status.failed,
                    result: ["error": .string(failure.message), "error_type": .string(failure.type),
                             "usage": result.usage.json, "trace_id": .string(spec.traceId)],
                    tokenUsage: result.usage.json, errorMessage: failure.message, errorType: failure.type,
                    completedAt: completedAt, durationSeconds: completedAt.timeIntervalSince(startedAt))
            }
            let written = try await store.finish(on: c, taskKey: key, executionKey: executionKey, traceId: spec.traceId, outcome: outcome)
            await c.close()
            if !written { return .stale(taskKey: key) }
            if result.status == .completed {
                return .completed(taskKey: key, traceId: spec.traceId, toolCalls: result.toolCalls, spans: spanCount)
            }
            return .failed(taskKey: key, traceId: spec.traceId, message: outcome.errorMessage ?? "", retried: retried,
                           toolCalls: result.toolCalls, spans: spanCount)
        } catch {
            // Infrastructure failure (database, ledger): put the task back so it is not stuck running.
            let message = "\(error)"
            if let c = conn {
                _ = try? await finishFailed(c, key: key, executionKey: nil, traceId: nil, startedAt: startedAt,
                                            type: "InfrastructureError", message: message, retriable: true, attempt: 1)
                await c.close()
            }
            return .failed(taskKey: key, traceId: nil, message: message, retried: true, toolCalls: 0, spans: 0)
        }
    }

    nonisolated func finishFailed(_ c: PostgresConnection, key: String, executionKey: String?, traceId: String?, startedAt: Date,
                                  type: String, message: String, retriable: Bool, attempt: Int) async throws -> Bool {
        let status = config.source.status
        let now = Date()
        let again = retriable && attempt < options.maxAttempts
        let outcome = TaskStore.Outcome(
            status: retriable ? .failedRetriable : .failedTerminal, taskStatus: again ? status.pending : status.failed,
            result: ["error": .string(message), "error_type": .string(type)], tokenUsage: [:],
            errorMessage: message, errorType: type, completedAt: now, durationSeconds: now.timeIntervalSince(startedAt))
        return try await store.finish(on: c, taskKey: key, executionKey: executionKey, traceId: traceId, outcome: outcome)
    }
}

/// Spans could not be written to the ledger.
struct LedgerWriteError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
