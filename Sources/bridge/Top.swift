import ArgumentParser
import BridgeCore
import BridgeMapping
import BridgeMonitor
import BridgePostgres
import Foundation

extension Bridge {
    /// `bridge top`: a live view of every worker's activity, read from the database.
    struct Top: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Live view of tasks, tool and model calls, export lag and workers (all workers, from the database).",
            discussion: """
                Refreshed every second on a terminal: tasks pending, waiting for a retry, waiting \
                for an approval (with migration 0020) and running (with runs completed and failed \
                in the last minute); tool calls per minute \
                by tool with p50/p95 durations and error rates; model calls and tokens per minute by \
                model; per exporter the undelivered spans of the last 10 minutes, the oldest one's \
                age and the p95 delivery lag; and the workers alive, from their leases. Every \
                statement reads a bounded recent window through an index (migration 0030), so the \
                view costs the same on a ledger of any size; task counts stop at 100000.

                When standard output is not a terminal (or with --once) one snapshot is printed and \
                bridge top exits; --json prints that snapshot as JSON. Ctrl-C quits.

                Exit status: 0 ok; 2 bad flags, mappings or connection, or bridge's migrations missing.

                Reference: docs/monitoring.md
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(help: .mappings("the task table and its status column"))
        var mappings: String = "mappings"

        @Flag(help: "Print one snapshot as JSON and exit.")
        var json = false

        @Flag(help: "Print one snapshot and exit, even on a terminal.")
        var once = false

        @Option(help: .duration("Time between refreshes (seconds, or e.g. 500ms)."))
        var interval: Duration = .seconds(1)

        func validate() throws {
            guard interval >= .milliseconds(100) else { throw ValidationError("--interval must be at least 0.1") }
        }

        func run() async throws {
            try await runReportingErrors {
                let queries = TopQueries(config: try MappingLoader.load(directory: mappings))
                let config = connection.config(applicationName: "bridge-top")
                let live = !json && !once && isatty(STDOUT_FILENO) == 1
                if !live {
                    let snapshot = try await PostgresConnection.withConnection(config) {
                        try await Self.read(queries, $0)
                    }
                    print(json ? snapshot.json.compact : snapshot.render(width: 200), terminator: json ? "\n" : "")
                    return
                }
                try await Self.loop(queries, config: config, interval: interval)
            }
        }

        /// Redraws every `interval` until interrupted; a lost connection is shown and retried.
        static func loop(_ queries: TopQueries, config: ConnectionConfig, interval: Duration) async throws {
            var conn = try await PostgresConnection.connect(config)
            _ = try await read(queries, conn)  // bad schema: exit 2 before drawing
            while true {
                var frame: String
                do {
                    frame = try await read(queries, conn).render(width: terminalWidth())
                } catch let error as UsageError {
                    throw error
                } catch {
                    frame = "bridge top: \(TextSafety.printable("\(error)")); reconnecting…\n"
                    await conn.close()
                    if let c = try? await PostgresConnection.connect(config) { conn = c }
                }
                await StandardOutput.shared.write("\u{1B}[H\u{1B}[2J" + frame)
                try await Task.sleep(for: interval)
            }
        }

        static func read(_ queries: TopQueries, _ conn: PostgresConnection) async throws -> TopSnapshot {
            do {
                return try await queries.read(on: conn)
            } catch let e as PostgresError where e.code == .undefinedTable || e.code == .undefinedColumn {
                throw UsageError(
                    "\(e.message.trimmingCharacters(in: .whitespacesAndNewlines)): run bridge migrate first")
            }
        }

        static func terminalWidth() -> Int {
            var size = winsize()
            guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 20 else { return 100 }
            return Int(size.ws_col)
        }
    }
}
