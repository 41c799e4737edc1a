import ArgumentParser
import BridgeCore
import BridgeRunner
import BridgeTraceModel
import BridgeVerify
import BridgeWorker
import Foundation

/// The `--backfill` flags of `bridge exec` (kept apart from exec's own flags).
struct BackfillFlags: ParsableArguments {
    @Flag(
        help: ArgumentHelp(
            "Rebuild the traces of finished tasks that have none, from task_executions and the logs named in the mappings' backfill section; no model is called. Resumable and idempotent. A task whose agent cannot be chosen (as bridge exec would fail it) is skipped, named on stderr, and makes the run exit 1."
        ))
    var backfill = false

    @Option(
        help: ArgumentHelp(
            "With --backfill: only tasks finished at or after this time (e.g. 2026-01-01 or 2026-01-01T12:00:00Z; UTC without a zone).",
            valueName: "time"))
    var since: String?

    @Option(
        help:
            "With --backfill: tasks per batch (one short transaction each; two connections work on consecutive batches)."
    )
    var batchSize: Int = 1_000

    @Option(help: "With --backfill: pause between batches, in milliseconds (the backfill then uses one connection).")
    var pauseMs: Int = 0

    @Flag(
        help:
            "With --backfill: re-execute the historical tasks through the model as new executions instead (costs model calls; needs --yes). tasks.result is never overwritten."
    )
    var rerun = false

    @Flag(help: "Confirm --rerun.")
    var yes = false

    /// The instant `--since` names (a date or timestamp, UTC without a zone); nil for anything
    /// else, durations included.
    static func timestamp(_ text: String) -> Date? {
        if case .timestamp(let date, _)? = Since.parse(text) { return date }
        return nil
    }

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard pauseMs >= 0 else { throw ValidationError("--pause-ms must not be negative") }
        if let since, Self.timestamp(since) == nil {
            throw ValidationError(
                "--since '\(since)': expected a date or timestamp like 2026-01-01 or 2026-01-01T12:00:00Z")
        }
        if !backfill {
            for (set, flag) in [(since != nil, "--since"), (rerun, "--rerun"), (yes, "--yes")] where set {
                throw ValidationError("\(flag) needs --backfill")
            }
        }
    }
}

extension Bridge.Exec {
    /// `bridge exec --backfill [--dry-run | --rerun --yes]`.
    func runBackfill(_ env: Environment) async throws {
        let flags = backfillFlags
        if flags.rerun {
            guard flags.yes else {
                throw UsageError(
                    "--rerun sends every selected historical task through the model again: that costs model calls (money) and runs their tools, writing tools included. Count them first with --backfill --dry-run, then confirm with --yes"
                )
            }
            try requireModelKey(env)
        }
        let app = try await prepareApp(env, applicationName: "bridge-backfill")
        var options = BackfillOptions()
        options.batchSize = flags.batchSize
        options.limit = limit
        options.since = flags.since.flatMap(BackfillFlags.timestamp)
        options.pauseMilliseconds = flags.pauseMs
        if dryRun {
            let p = try await app.backfillPreview(options: options)
            for line in p.sample { print(line) }
            Self.printSkipped(p.skippedTasks, count: p.skipped, verb: "would skip")
            print(
                "bridge exec --backfill --dry-run: would \(flags.rerun ? "re-run" : "rebuild") \(p.tasks) task(s): \(p.tasks) traces, \(p.spans) spans (\(p.functionSpans) function spans from tool-call logs)"
                    + (p.skipped > 0 ? ", would skip \(p.skipped) task(s) without a mapped agent" : "")
                    + "; nothing was written")
            return
        }
        if flags.rerun {
            let progress = ProgressReporter.standardError(quiet: quiet, prefix: "bridge exec --backfill --rerun: ")
            try app.validate(model: model)
            let s = try await app.rerun(options: options, model: model, traceFile: traceFile, progress: progress)
            print("bridge exec --backfill --rerun: \(s.line)")
            if s.failed > 0 { throw ExitCode(ExitStatus.failed.rawValue) }
            return
        }
        let progress = ProgressReporter.standardError(quiet: quiet, prefix: "bridge exec --backfill: ")
        let (s, exports) = try await app.backfill(
            options: options, traceFile: traceFile, progress: progress,
            flushTimeout: flushTimeout)
        print("bridge exec --backfill: \(s.line)")
        Self.printExports(exports)
        if s.skipped > 0 {
            Self.printSkipped([], count: s.skipped, verb: "skipped")
            throw ExitCode(ExitStatus.failed.rawValue)
        }
    }

    /// The tasks a backfill left untraced because no agent is mapped for them (listed up to
    /// `BackfillSkip.listed`, then counted), on standard error.
    static func printSkipped(_ listed: [BackfillSkip], count: Int, verb: String) {
        guard count > 0 else { return }
        var text = listed.map { "bridge exec --backfill: \(verb) task \($0.taskId): \($0.reason)\n" }.joined()
        text +=
            "bridge exec --backfill: \(verb) \(count) task(s) without a mapped agent (bridge exec would fail them too); map their agents or set agent_selection.default_agent, then run --backfill again\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
}
