import ArgumentParser
import BridgePostgres
import BridgeVerify

extension Bridge.Trace {
    /// `bridge trace show ID`: the span tree, as text or as an HTML timeline.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a trace's span tree (by trace id or task id); --html writes a timeline page.",
            discussion: """
                ID is a trace id (trace_…) or a task id; for a task, its newest trace is shown and the \
                other attempts are listed. The text shows every span with its duration and start \
                offset: agents, turns, model calls, tool calls with shortened arguments and results, \
                handoffs and errors. --html writes one self-contained page (no external assets) with \
                a Gantt-style timeline; click a span for its details.

                Exit status: 0 shown, 2 unknown id, bad flags or connection.

                Reference: docs/monitoring.md
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Argument(help: ArgumentHelp("A trace id or a task id.", valueName: "id"))
        var id: String

        @Option(help: ArgumentHelp("Write the HTML timeline to this file.", valueName: "file"))
        var html: String?

        func run() async throws {
            try await runReportingErrors {
                let id = self.id
                let doc = try await PostgresConnection.withConnection(
                    connection.config(applicationName: "bridge-trace")
                ) { conn in
                    try await TraceDocument.load(id: id, on: conn)
                }
                if let html {
                    try await writeOutputFile(TraceHTML.render(doc), to: html)
                    print("bridge trace show: \(doc.trace.id) (\(doc.spans.count) spans) written to \(html)")
                } else {
                    print(TraceText.render(doc), terminator: "")
                }
            }
        }
    }
}
