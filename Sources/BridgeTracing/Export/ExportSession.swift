import BridgeCore
import BridgeHTTP
import BridgePostgres
import FoundationEssentials

/// The exporters the environment and flags enable, in a fixed order (openai, otlp, file).
public enum ExporterSetup {
    /// `openai` when a tracing key is set (and tracing is not disabled), `otlp` when an OTLP
    /// endpoint is set, `file` when `traceFile` is given. `only` restricts to those names.
    public static func enabled(
        environment env: Environment, traceFile: String?, client: HTTPClient,
        only: Set<String>? = nil
    ) throws -> [any TraceExporter] {
        var out: [any TraceExporter] = []
        if let e = OpenAITracesExporter.fromEnvironment(env, client: client) { out.append(e) }
        if let e = try OTLPExporter.fromEnvironment(env, client: client) { out.append(e) }
        if let traceFile { out.append(try FileExporter(path: traceFile)) }
        if let only { out = out.filter { only.contains($0.name) } }
        return out
    }

    /// Every credential the exporters send, to keep out of messages.
    public static func secrets(of exporters: [any TraceExporter]) -> [String] {
        exporters.flatMap { e -> [String] in
            if let o = e as? OpenAITracesExporter { return o.secrets }
            if let o = e as? OTLPExporter { return o.secrets }
            return []
        }
    }
}

/// What one exporter achieved in a session, and what it left in the ledger.
public struct ExportReport: Sendable, Equatable {
    public var exporter: String
    public var target: String
    public var stats: ExportStats
    /// Undelivered after the session (nil when it could not be counted).
    public var backlog: ExportBacklog?
    /// Why the pump stopped early (misconfiguration, database error), if it did.
    public var error: String?
    /// True when another process held this exporter's lock all along.
    public var lockedOut: Bool

    /// True when this session's answers rejected every span it sent (nothing arrived).
    public var allRejected: Bool { stats.rejectedSpans > 0 && stats.deliveredSpans == 0 }

    /// The loud line for `allRejected`, or nil.
    public var allRejectedLine: String? {
        allRejected
            ? "\(exporter): EVERY span was rejected (\(stats.rejectedSpans)); nothing arrived at \(target); `bridge verify` shows why"
            : nil
    }

    /// `N spans not yet exported; run `bridge export``, or nil when nothing is left.
    public var leftoverLine: String? {
        guard let b = backlog, !b.isEmpty else { return nil }
        return "\(exporter): \(b.spans) spans and \(b.traces) traces not yet exported; run `bridge export`"
    }
}

/// Runs one pump per exporter in the background while `bridge exec` works, then flushes:
/// `finish(flushTimeout:)` lets every pump drain what is left, cancels whatever is still going
/// when the timeout passes, and reports the backlog (which stays in the ledger for
/// `bridge export`).
public final class ExportSession: Sendable {
    let tasks: [Task<ExportReport, Never>]
    let signal: StopSignal

    init(tasks: [Task<ExportReport, Never>], signal: StopSignal) {
        self.tasks = tasks
        self.signal = signal
    }

    /// Starts a pump per exporter, each on its own connection; they poll every `pollInterval`.
    ///
    /// When another process holds an exporter's lock (it exports for everyone), that pump
    /// idles; at `finish` it waits for the lock until the timeout only with `waitForLock`
    /// (`bridge export`), else it stops at once (`bridge exec`: the other process delivers).
    public static func start(
        exporters: [any TraceExporter], connect: @escaping @Sendable () async throws -> PostgresConnection,
        options: ExportPumpOptions, pollInterval: Duration = .seconds(1),
        waitForLock: Bool = false
    ) -> ExportSession {
        let signal = StopSignal()
        let tasks = exporters.map { exporter in
            Task {
                await run(
                    exporter, connect: connect, options: options, pollInterval: pollInterval, signal: signal,
                    waitForLock: waitForLock)
            }
        }
        return ExportSession(tasks: tasks, signal: signal)
    }

    /// Asks the pumps for a last drain, waits at most `flushTimeout`, then cancels them.
    public func finish(flushTimeout: Duration) async -> [ExportReport] {
        await signal.stop()
        let tasks = self.tasks
        let timer = Task {
            try? await Task.sleep(for: flushTimeout)
            if !Task.isCancelled { for t in tasks { t.cancel() } }
        }
        var reports: [ExportReport] = []
        for t in tasks { reports.append(await t.value) }
        timer.cancel()
        return reports
    }

    /// Waits until every pump has stopped by itself (`--watch`: only a fatal error stops one).
    public func wait() async -> [ExportReport] {
        var reports: [ExportReport] = []
        for t in tasks { reports.append(await t.value) }
        return reports
    }

    /// Cancels every pump at once (what is unsent stays in the ledger).
    public func cancel() { for t in tasks { t.cancel() } }

    static func run(
        _ exporter: any TraceExporter, connect: @Sendable () async throws -> PostgresConnection,
        options: ExportPumpOptions, pollInterval: Duration, signal: StopSignal,
        waitForLock: Bool
    ) async -> ExportReport {
        var report = ExportReport(
            exporter: exporter.name, target: exporter.target, stats: ExportStats(exporter: exporter.name),
            backlog: nil, error: nil, lockedOut: true)
        let conn: PostgresConnection
        do { conn = try await connect() } catch {
            report.error = "cannot connect: \(error)"
            return report
        }
        let pump = ExportPump(exporter: exporter, connection: conn, options: options)
        var toldWaiting = false
        do {
            try await pump.register()
            while true {
                // Read before draining, so the drain that follows a stop is the last one.
                let stopped = await signal.isStopped
                if try await pump.tryLock() {
                    report.lockedOut = false
                    try await pump.drain()
                    if stopped { break }
                } else {
                    if !toldWaiting {
                        toldWaiting = true
                        options.onEvent(.waitingForLock(exporter: exporter.name))
                    }
                    if stopped && !waitForLock { break }
                }
                if stopped {
                    try await Task.sleep(for: pollInterval)  // waiting for the lock
                } else {
                    await signal.sleep(for: pollInterval)
                }
                try Task.checkCancellation()
            }
        } catch is CancellationError {
            // The flush timeout passed: what is unsent stays in the ledger.
        } catch let e as HTTPError where e == .cancelled {
        } catch {
            report.error = Redaction.scrub("\(error)", secrets: options.secrets)
        }
        report.stats = await pump.stats
        report.backlog = try? await pump.backlog()
        await pump.unlock()
        await conn.close()
        return report
    }
}

/// A stop flag whose `sleep(for:)` ends early when the flag is set (or the task is cancelled).
actor StopSignal {
    private(set) var isStopped = false
    private var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var woken: Set<Int> = []
    private var next = 0

    func stop() {
        isStopped = true
        let all = waiters
        waiters = [:]
        for c in all.values { c.resume() }
    }

    func sleep(for d: Duration) async {
        if isStopped || Task.isCancelled { return }
        let id = next
        next += 1
        let timer = Task { [weak self] in
            try? await Task.sleep(for: d)
            if !Task.isCancelled { await self?.wake(id) }
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                if woken.remove(id) != nil || isStopped { c.resume() } else { waiters[id] = c }
            }
        } onCancel: {
            Task { await self.wake(id) }
        }
        timer.cancel()
    }

    private func wake(_ id: Int) {
        if let c = waiters.removeValue(forKey: id) { c.resume() } else { woken.insert(id) }
    }
}
