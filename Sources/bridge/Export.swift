import ArgumentParser
import BridgeCore
import BridgeHTTP
import BridgePostgres
import BridgeTracing
import Foundation

extension Bridge {
    /// `bridge export`: delivers whatever the ledger still holds undelivered.
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deliver the ledger's undelivered traces and spans to every enabled exporter.",
            discussion: """
                The ledger (bridge.traces, bridge.spans) is the outbox: a span is undelivered for an \
                exporter until bridge.span_deliveries holds a row for it, `delivered` or `rejected` with \
                the receiver's message. This command sends what a crash, a kill, an ingest outage or an \
                exceeded --flush-timeout left behind, then exits.

                Exporters:
                  openai  OPENAI_TRACING_API_KEY (else OPENAI_API_KEY) is set and OPENAI_AGENTS_DISABLE_TRACING \
                is not 1/true; POST {OPENAI_BASE_URL}/traces/ingest (default https://api.openai.com/v1).
                  otlp    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces \
                (OTLP/HTTP JSON); OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME.
                  file    --trace-file PATH: JSONL in the Agents SDK's export format.

                429, 5xx and transport failures are retried with backoff (honouring Retry-After) for as \
                long as the command runs. A 4xx rejects only the items concerned (batches are split to \
                find them). 401/403/404 stop that exporter and leave its items undelivered.

                Exit status: 0 everything is delivered, 1 items were rejected (now or before; see \
                --retry-rejected), remain undelivered or an exporter failed, 2 bad flags, no exporter \
                enabled or no ledger.

                Reference: docs/export.md
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(
            name: .customLong("exporter"),
            help: ArgumentHelp("Only this exporter (openai, otlp, file; repeatable).", valueName: "name"))
        var exporters: [String] = []

        @Option(help: ArgumentHelp("Enable the file exporter: append JSONL to this file.", valueName: "path"))
        var traceFile: String?

        @Flag(help: "Keep running: look for new spans every --poll-interval seconds.")
        var watch = false

        @Option(help: .duration("Time between looks with --watch (seconds, or e.g. 500ms)."))
        var pollInterval: Duration = .seconds(1)

        @Option(help: .duration("Give up after this long (what is left stays in the ledger). Default: no limit."))
        var timeout: Duration?

        @Flag(help: "Send items recorded as rejected again (after fixing the cause).")
        var retryRejected = false

        @Flag(help: "Only the summary lines.")
        var quiet = false

        func validate() throws {
            let known: Set<String> = ["openai", "otlp", "file"]
            for name in exporters where !known.contains(name) {
                throw ValidationError("unknown exporter '\(name)' (known: openai, otlp, file)")
            }
            guard pollInterval > .zero else { throw ValidationError("--poll-interval must be positive") }
            if let timeout, timeout < .zero { throw ValidationError("--timeout must not be negative") }
            if watch, timeout != nil { throw ValidationError("--timeout cannot be combined with --watch") }
        }

        func run() async throws {
            try await runReportingErrors {
                let env = Environment.process
                let client = HTTPClient()
                defer { client.shutdown() }
                let only = exporters.isEmpty ? nil : Set(exporters)
                let enabled = try ExporterSetup.enabled(
                    environment: env, traceFile: traceFile, client: client, only: only)
                for name in exporters where !enabled.contains(where: { $0.name == name }) {
                    throw UsageError("exporter \(name) is not enabled: \(Self.howToEnable(name))")
                }
                guard !enabled.isEmpty else {
                    throw UsageError(
                        "no exporter is enabled: set OPENAI_API_KEY (or OPENAI_TRACING_API_KEY), OTEL_EXPORTER_OTLP_ENDPOINT, or pass --trace-file"
                    )
                }
                let config = connection.config(applicationName: "bridge-export")
                let ok = try await PostgresConnection.withConnection(config) { conn in
                    guard try await conn.ledgerHas([.spanDeliveries]) else {
                        throw UsageError(
                            "bridge.span_deliveries does not exist in \(config.redacted): run `bridge migrate` first")
                    }
                    if retryRejected {
                        for e in enabled {
                            let n = try await ExportPump.retryRejected(exporter: e.name, connection: conn)
                            if n > 0 { log("\(e.name): \(n) rejected items will be sent again") }
                        }
                    }
                    let quiet = self.quiet
                    let options = ExportPumpOptions(
                        onEvent: { event in
                            if !quiet { FileHandle.standardError.write(Data("bridge export: \(event.line)\n".utf8)) }
                        }, secrets: ExporterSetup.secrets(of: enabled))
                    let session = ExportSession.start(
                        exporters: enabled, connect: { try await PostgresConnection.connect(config) },
                        options: options, pollInterval: pollInterval,
                        waitForLock: true)
                    let reports: [ExportReport]
                    if watch {
                        reports = await session.wait()
                    } else {
                        reports = await session.finish(
                            flushTimeout: timeout ?? .seconds(86_400 * 365))
                    }
                    var ok = true
                    for r in reports {
                        let rejected = try await ExportPump.rejectedCount(exporter: r.exporter, connection: conn)
                        var line =
                            "bridge export: \(r.exporter) (\(r.target)): delivered \(r.stats.deliveredSpans) spans, \(r.stats.deliveredTraces) traces"
                        if let b = r.backlog { line += "; left \(b.spans) spans, \(b.traces) traces" }
                        if !rejected.isEmpty {
                            line += "; rejected \(rejected.spans) spans, \(rejected.traces) traces in all"
                        }
                        print(line)
                        if let error = r.error {
                            FileHandle.standardError.write(Data("bridge export: \(r.exporter): \(error)\n".utf8))
                        }
                        if r.error != nil || r.backlog.map({ !$0.isEmpty }) ?? true || !rejected.isEmpty { ok = false }
                    }
                    return ok
                }
                if !ok { throw ExitCode(ExitStatus.failed.rawValue) }
            }
        }

        func log(_ line: String) {
            if !quiet { FileHandle.standardError.write(Data("bridge export: \(line)\n".utf8)) }
        }

        static func howToEnable(_ name: String) -> String {
            switch name {
            case "openai":
                return "set OPENAI_TRACING_API_KEY or OPENAI_API_KEY (and not OPENAI_AGENTS_DISABLE_TRACING=1)"
            case "otlp": return "set OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT"
            default: return "pass --trace-file PATH"
            }
        }
    }
}
