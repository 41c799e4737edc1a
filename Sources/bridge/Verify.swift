import ArgumentParser
import BridgeCore
import BridgeTraceModel
import BridgeVerify
import FoundationEssentials

extension ReportFormat: ExpressibleByArgument {}

extension Bridge {
    /// `bridge verify`: the tracing validation checklist, for CI.
    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the tracing validation checklist against the database (for CI).",
            discussion: """
                Reconciles the task and execution rows, the run transcripts and the spans (ledger, \
                delivery records, or an exported span file) in six checks: tools_traced, \
                handoffs_traced, tool_io_captured, trace_ids_correlate, export_delivered, tool_timing. \
                Each check is one set-based SQL statement; all run in one read-only snapshot.

                Scope: finished executions (completed, failed_retriable, failed_terminal) and ended \
                traces; --since, --task and --workspace narrow it. Historical executions that \
                predate bridge (no trace id, finished before bridge first traced the task) are not \
                checked.

                Exit status: 0 no check failed (skipped checks do not fail), 1 a check failed, \
                2 bad flags, mappings, spans file or connection.

                Reference: docs/verify.md
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(help: .mappings("table and column names"))
        var mappings: String = "mappings"

        @Option(
            help: ArgumentHelp(
                "Only executions and traces since then: a duration (30m, 24h, 7d) or a timestamp.",
                valueName: "when"))
        var since: String?

        @Option(help: ArgumentHelp("Only this task id.", valueName: "id"))
        var task: TaskKey?

        @Option(
            help: ArgumentHelp("Only tasks of this workspace (the mappings' source.group_column).", valueName: "id"))
        var workspace: String?

        @Option(
            help: ArgumentHelp(
                "Also require every stored trace, with all its spans, in this file (SDK JSONL or OTLP JSON).",
                valueName: "file"))
        var spans: String?

        @Option(
            help: ArgumentHelp(
                "Limit for the p95 lag from span end to exporter acknowledgement, in seconds.", valueName: "seconds"))
        var maxExportLag: Double = 30

        @Option(
            help: ArgumentHelp(
                "Database connections to spread the checks over (they share one snapshot).",
                valueName: "n"))
        var jobs: Int = 2

        @Option(help: ArgumentHelp("Output format: text, json, junit or markdown.", valueName: "format"))
        var format: ReportFormat = .text

        @Option(help: ArgumentHelp("Write the report to this file instead of standard output.", valueName: "file"))
        var output: String?

        /// --since parsed (nil when not given); throws what is wrong with it.
        func sinceValue() throws -> Since? {
            guard let since else { return nil }
            guard let value = Since.parse(since) else {
                throw ValidationError("--since '\(since)': \(Since.expected)")
            }
            return value
        }

        func validate() throws {
            _ = try sinceValue()
            guard (1...16).contains(jobs) else { throw ValidationError("--jobs must be between 1 and 16") }
            guard maxExportLag > 0, maxExportLag.isFinite else {
                throw ValidationError("--max-export-lag must be positive")
            }
        }

        func run() async throws {
            let since = try sinceValue()
            try await runReportingErrors {
                var options = VerifyOptions()
                options.scope = VerifyScope(since: since, task: task, workspace: workspace)
                options.spansFile = spans
                options.maxExportLagSeconds = maxExportLag
                options.connections = jobs
                let report = try await Verifier.run(
                    mappingsDirectory: mappings,
                    connection: connection.config(applicationName: "bridge-verify"),
                    options: options)
                let text = format.render(report)
                if let output {
                    try await writeOutputFile(text, to: output)
                    print("bridge verify: \(report.ok ? "ok" : "FAILED"), report written to \(output)")
                } else {
                    print(text, terminator: "")
                }
                if !report.ok { throw ExitCode(ExitStatus.failed.rawValue) }
            }
        }
    }
}
