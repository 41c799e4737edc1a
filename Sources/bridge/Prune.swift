import ArgumentParser
import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTracing
import BridgeVerify
import BridgeWorker
import Foundation
import Synchronization

extension Bridge {
    /// `bridge prune`: retention for the ledger.
    struct Prune: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Remove old traces, their spans, transcripts and delivery records from the ledger.",
            discussion: """
                Deletes traces that started more than --older-than ago, in batches of --batch-size \
                traces. Each batch is one short transaction that reaches only its own rows through \
                indexes, skips rows a worker holds (SKIP LOCKED) and waits at most --lock-timeout for \
                any lock (then retries with backoff), so exec, export and the application carry on. \
                Interrupting it is safe: finished batches stay deleted, the next run goes on.

                Kept, whatever their age, checked in the statement that deletes: traces of runs \
                that have not finished, of tasks that hold a lease (the task table of --mappings), \
                that an exporter seen since the cutoff has not delivered in full (unless \
                --include-undelivered), of runs paused for an approval, and that received a span \
                after the cutoff. The user's task rows keep their \
                trace ids.

                Each prune is recorded in bridge.prunes. `bridge verify` then checks only executions \
                and traces newer than the newest cutoff and says so in its report; `bridge export` \
                never sees pruned spans (by default only delivered ones are pruned).

                --dry-run counts what would go in a READ ONLY transaction that is rolled back.

                Exit status: 0 done, 1 a batch failed (what was deleted before stays deleted), \
                2 bad flags or no ledger (run `bridge migrate`).

                Reference: docs/prune.md
                """
        )

        @OptionGroup var connection: ConnectionOptions

        // .unconditional: `--older-than -1h` reaches validate() (a negative duration), instead of
        // the parser taking -1h for a flag and saying "Missing value".
        @Option(
            parsing: .unconditional,
            help: .duration("Remove traces that started longer ago than this: 12h, 30d, 8w (at least 1h)."))
        var olderThan: String

        @Option(help: .mappings("the task table, whose leased tasks keep their traces"))
        var mappings: String = "mappings"

        @Flag(help: "Only count what would be removed; change nothing.")
        var dryRun = false

        @Flag(help: "Also remove traces that an active exporter has not delivered yet (they are then never exported).")
        var includeUndelivered = false

        @Option(help: ArgumentHelp("Traces per batch (one short transaction each).", valueName: "n"))
        var batchSize: Int = 1000

        @Option(
            help: ArgumentHelp(
                "Longest wait for a lock held by someone else, in milliseconds, before the batch is retried.",
                valueName: "ms"))
        var lockTimeout: Int = 2000

        @Flag(help: "Only the summary line.")
        var quiet = false

        /// The shortest --older-than: a younger trace may belong to a run still in progress.
        static let minimumSeconds: Double = 3600

        /// --older-than in seconds; throws what is wrong with it.
        func olderThanSeconds() throws -> Double {
            if olderThan.hasPrefix("-") {
                throw ValidationError(
                    "--older-than '\(olderThan)': a duration cannot be negative; give how old a trace must be"
                        + " to go, at least 1h (e.g. 12h, 30d, 8w)")
            }
            guard case .duration(let seconds, _)? = Since.parse(olderThan) else {
                throw ValidationError("--older-than '\(olderThan)': expected a duration like 12h, 30d or 8w")
            }
            guard seconds >= Self.minimumSeconds else {
                throw ValidationError("--older-than '\(olderThan)': at least 1h, so that no running trace is removed")
            }
            return seconds
        }

        func validate() throws {
            _ = try olderThanSeconds()
            guard (1...100_000).contains(batchSize) else {
                throw ValidationError("--batch-size must be between 1 and 100000")
            }
            guard (1...600_000).contains(lockTimeout) else {
                throw ValidationError("--lock-timeout must be between 1 and 600000 ms")
            }
        }

        func run() async throws {
            let seconds = try olderThanSeconds()
            try await runReportingErrors {
                // The task table tells which traces belong to runs that still hold a lease: without
                // it prune cannot tell, so it does not start.
                let tasks = TaskStore(config: try MappingLoader.load(directory: mappings))
                let config = connection.config(applicationName: "bridge-prune")
                let dryRun = self.dryRun
                let verb = dryRun ? "would remove" : "removed"
                let progress = ProgressReporter.standardError(quiet: quiet, prefix: "")
                let result = try await PostgresConnection.withConnection(config) { conn in
                    // The cutoff comes from the server's clock, like every other time bridge compares.
                    let cutoff = try await conn.query(
                        """
                        SELECT now() - make_interval(secs => \(seconds)::double precision) AS t
                        """
                    ).one().decode(Date.self, "t")
                    var options = PruneOptions(cutoff: cutoff)
                    options.batchSize = batchSize
                    options.includeUndelivered = includeUndelivered
                    options.dryRun = dryRun
                    options.lockTimeoutMs = lockTimeout
                    options.leasedTaskKeys = tasks.leasedKeysQuery
                    progress.log(
                        "bridge prune: traces started before \(PostgresTimestamp.format(cutoff))\(dryRun ? " (dry run)" : "")"
                    )
                    let clock = ContinuousClock()
                    let start = clock.now
                    let throttle = LogThrottle(every: .seconds(5))
                    let pruner = LedgerPruner(connection: conn, options: options)
                    return try await pruner.run { p in
                        guard p.examined > 0 else { return }
                        let elapsed = (clock.now - start).inSeconds
                        let rate = elapsed > 0 ? Int(Double(p.spans) / elapsed) : 0
                        let pct = p.candidates > 0 ? min(100, p.examined * 100 / p.candidates) : 100
                        let line =
                            "bridge prune: \(pct)% of \(p.candidates) old traces; \(verb) \(p.traces) traces, \(p.spans) spans (\(rate) spans/s)"
                        if progress.isLive {
                            progress.update(line)
                        } else if throttle.due() {
                            progress.log(line)
                        }
                    }
                }
                progress.finish()
                print(
                    "bridge prune: \(verb) \(result.traces) traces, \(result.spans) spans, \(result.transcripts) transcripts, "
                        + "\(result.deliveries) delivery records; kept \(result.kept) old traces (unfinished, leased, undelivered, paused, still active or locked)"
                )
            }
        }

        /// True at most once per interval (progress lines for logs, which get no live line).
        final class LogThrottle: Sendable {
            private let every: Duration
            private let last = Mutex(ContinuousClock.now)

            init(every: Duration) { self.every = every }

            func due() -> Bool {
                last.withLock { last in
                    guard ContinuousClock.now - last >= every else { return false }
                    last = ContinuousClock.now
                    return true
                }
            }
        }
    }
}
