import ArgumentParser
import BridgeCore
import BridgeMapping
import BridgeMonitor
import BridgePostgres
import BridgeTraceModel
import BridgeTracing
import BridgeWorker
import Foundation

extension Bridge.Trace {
    /// `bridge trace tail`: spans as they land in the ledger.
    struct Tail: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print spans as they land in the ledger, one line each; --follow keeps streaming.",
            discussion: """
                Each line: start time, trace, agent, span type, tool (or model, or handoff target), \
                for tool calls a short input → output, duration and error. With --follow, a model \
                call in progress is shown when it starts (duration `running…`, announced by the \
                worker with NOTIFY bridge_span_started; nothing is stored), and again as a span \
                when it ends. --json prints each span \
                in the Agents SDK's export format instead, one JSON object per line.

                First the newest --lines spans of the last day are printed (default 10); --follow then \
                polls every --interval seconds (default 0.25) with a cursor on (created_at, span_id) \
                (migration 0030's index), so new spans appear within a second and an idle follow \
                costs the same on a ledger of any size. Spans of transactions that commit late are \
                still printed (each poll re-reads from the oldest open transaction's start, at most \
                60 s back). A lost connection is retried. --task and --workspace (the trace's \
                group id, i.e. the mappings' group_column) narrow the output. A --task with no trace \
                is looked up in the task table of --mappings: no such task is an error (exit 2).

                Exit status: 0 ok (Ctrl-C ends --follow); 2 bad flags or connection, no such task, or \
                bridge's migrations missing.

                Reference: docs/monitoring.md
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Flag(name: [.customShort("f"), .long], help: "Keep printing new spans as they land (until interrupted).")
        var follow = false

        @Option(help: ArgumentHelp("Only spans of this task's traces.", valueName: "id"))
        var task: TaskKey?

        @Option(help: ArgumentHelp("Only spans of traces of this workspace (group id).", valueName: "id"))
        var workspace: String?

        @Option(help: .mappings("where a --task that has no trace yet is looked up"))
        var mappings: String = "mappings"

        @Flag(help: "Print each span as the SDK's span JSON, one per line.")
        var json = false

        @Option(
            name: [.customShort("n"), .long], help: ArgumentHelp("Print this many recent spans first.", valueName: "n"))
        var lines: Int = 10

        @Option(help: .duration("Time between polls with --follow (seconds, or e.g. 250ms)."))
        var interval: Duration = .milliseconds(250)

        func validate() throws {
            guard lines >= 0 else { throw ValidationError("--lines must not be negative") }
            guard interval >= .milliseconds(50) && interval <= .seconds(60) else {
                throw ValidationError("--interval must be between 0.05 and 60")
            }
        }

        func run() async throws {
            try await runReportingErrors {
                let config = connection.config(applicationName: "bridge-trace-tail")
                var tail = SpanTail(filter: SpanTail.Filter(taskId: task, workspace: workspace))
                var conn = try await PostgresConnection.connect(config)
                do {
                    if let task, try await !Self.hasTrace(task: task, on: conn) {
                        try await requireTask(task, on: conn)
                        if !follow {
                            FileHandle.standardError.write(
                                Data("bridge trace tail: task \(task) has no trace yet\n".utf8))
                        }
                    }
                    await emit(try await tail.start(on: conn, last: lines))
                } catch let e as PostgresError where e.code == .undefinedTable || e.code == .undefinedColumn {
                    await conn.close()
                    throw UsageError(
                        "\(e.message.trimmingCharacters(in: .whitespacesAndNewlines)): run bridge migrate first")
                }
                guard follow else { return await conn.close() }
                // Model calls in progress arrive as notices (text output only: --json prints
                // finished spans alone); waiting for them is also the pause between polls.
                let listenConfig = connection.config(applicationName: "bridge-trace-tail-listen")
                var listener = json ? nil : await Self.listener(listenConfig)
                var failures = 0
                while true {
                    if let l = listener {
                        do {
                            let notes = try await l.waitForNotifications(timeout: interval.inSeconds)
                            await emit(notes.compactMap { SpanStart(payload: $0.payload).flatMap(tail.inProgress) })
                        } catch {
                            await l.close()
                            listener = nil
                        }
                    } else {
                        try await Task.sleep(for: interval)
                    }
                    do {
                        await emit(try await tail.poll(on: conn))
                        failures = 0
                    } catch {
                        failures += 1
                        if failures == 1 {
                            FileHandle.standardError.write(Data("bridge trace tail: \(error); reconnecting\n".utf8))
                        }
                        await conn.close()
                        try await Task.sleep(for: .milliseconds(min(5000, 250 * (1 << min(failures, 5)))))
                        if let c = try? await PostgresConnection.connect(config) { conn = c }
                        if listener == nil && !json { listener = await Self.listener(listenConfig) }
                    }
                }
            }
        }

        /// A connection listening for `SpanStart` notices, or nil when none can be had.
        static func listener(_ config: ConnectionConfig) async -> PostgresConnection? {
            guard let c = try? await PostgresConnection.connect(config) else { return nil }
            do { try await c.listen(SpanStart.channel) } catch {
                await c.close()
                return nil
            }
            return c
        }

        /// Whether some trace of `task` is in the ledger (`bridge.traces (task_id)`, indexed).
        static func hasTrace(task: TaskKey, on conn: PostgresConnection) async throws -> Bool {
            try await conn.query("SELECT EXISTS (SELECT 1 FROM bridge.traces WHERE task_id = \(task)) AS ok").one()
                .decode(Bool.self, "ok")
        }

        /// A task without a trace must at least exist in the user's task table (else a typo would
        /// print nothing and succeed): throws naming `table.key` when it does not.
        func requireTask(_ task: TaskKey, on conn: PostgresConnection) async throws {
            let config: MappingConfig
            do { config = try MappingLoader.load(directory: mappings) } catch {
                throw UsageError(
                    "--task \(task): no trace of it in bridge.traces, and its task table cannot be read"
                        + " from --mappings \(mappings): \(error)")
            }
            var rows: [Row] = []
            do {
                rows = try await TaskStore(config: config).peek(on: conn, keys: [task], limit: 1)

            } catch let e as PostgresError where e.sqlState?.hasPrefix("22") == true {
                // Class 22: not even a value of the key's type (a uuid, say): no such task.
            }
            guard rows.isEmpty else { return }
            throw UsageError(
                "--task: no task with \(config.source.table).\(config.source.key) = \(TextSafety.printable(task.text))")

        }

        /// Writes straight to standard output (unbuffered), so a pipe sees each span at once.
        func emit(_ spans: [TailSpan]) async {
            guard !spans.isEmpty else { return }
            await StandardOutput.shared.write(
                spans.map { json ? $0.record.exportJSON.compact : $0.line }.joined(separator: "\n") + "\n")
        }
    }
}
