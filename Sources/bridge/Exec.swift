import ArgumentParser
import BridgeCore
import BridgeMonitor
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import BridgeWorker
import Foundation

extension Bridge {
    /// `bridge exec`: the DatabaseToSDKBridge worker.
    struct Exec: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run pending tasks through their agents, traced span for span.",
            discussion: """
                Claims pending task rows (FOR NO KEY UPDATE SKIP LOCKED in a short autocommitted \
                statement, so several workers can run at once), turns each into a run spec through the \
                YAML mappings, runs it with its tools and handoffs, records every span in bridge.spans \
                as it ends, and writes the result, the execution row and the trace id back in one \
                transaction. Exits when nothing is left to claim, including sub-tasks created during \
                the run. Finished tasks are never touched.

                Without --offline the runs call OpenAI: the Responses API by default, or Chat \
                Completions with --model-api chat-completions (or per agent with model_api), at \
                OPENAI_BASE_URL (default https://api.openai.com/v1) with OPENAI_API_KEY, \
                OPENAI_ORG_ID and OPENAI_PROJECT_ID. 408, 409, 429, 5xx and transport errors are retried \
                with backoff; running out of retries leaves the task for a later attempt \
                (failed_retriable), other 4xx fail it (failed_terminal).

                Leases: each claim records a random token, an expiry (--lease, extended by a heartbeat \
                every lease/3) and the worker id; every write is guarded on the token, so a stale \
                worker's late result is discarded. Any worker returns expired leases to pending (or \
                failed after --max-attempts); retriable failures wait an exponential backoff with \
                jitter (at least the model's Retry-After). Without --watch, exec exits once nothing \
                is claimable, running, waiting for a retry or leased by another worker.

                --watch keeps running: LISTEN/NOTIFY when migrations/optional is applied (backstop \
                poll every 20 s), else a poll every 2 s; connections are re-established after a \
                database restart. SIGTERM/SIGINT: stop claiming, let runs finish within \
                --drain-timeout, release the rest to pending, exit 0; a second signal exits at once.

                --offline uses the built-in deterministic model (no network, no key): each agent calls \
                all its function tools once, then takes its handoffs, then answers.

                Exit status: 0 every task completed (also after a graceful shutdown), 1 a task failed, \
                2 bad flags, mappings or connection (nothing is touched then), 128+N after a second \
                signal N.

                Reference: docs/exec.md
                """
        )

        @OptionGroup var connection: ConnectionOptions

        @Option(help: ArgumentHelp("Directory of *.yaml agent and tool mappings.", valueName: "dir"))
        var mappings: String = "mappings"

        @Flag(help: "Use the built-in deterministic offline model (no network, no API key).")
        var offline = false

        @Option(
            help: ArgumentHelp(
                "responses (default) or chat-completions (for OpenAI-compatible servers such as vLLM, Ollama, LiteLLM); an agent's model_api wins.",
                valueName: "api"))
        var modelAPI: String = "responses"

        @Flag(help: "Print one run spec per task as a JSON line and change nothing.")
        var dryRun = false

        @Option(
            help: ArgumentHelp(
                "Only this task id (repeatable). With --dry-run the task may be in any status.",
                valueName: "id"))
        var task: [TaskKey] = []

        @OptionGroup var worker: WorkerFlags

        @Option(
            help: ArgumentHelp(
                "With --offline: wait this long before each model answer (tests, benchmarks).",
                valueName: "ms"))
        var offlineLatencyMs: Int = 0

        @Option(help: "Stop after this many tasks.")
        var limit: Int?

        @Option(
            help: ArgumentHelp(
                "Also append every trace and span as JSONL in the Agents SDK's export format.",
                valueName: "path"))
        var traceFile: String?

        @Flag(help: "Only the summary line, no per-task lines.")
        var quiet = false

        @Option(
            help: ArgumentHelp(
                "Serve Prometheus metrics on GET http://HOST:PORT/metrics while running (e.g. 127.0.0.1:9464; port 0 picks a free one, logged on stderr).",
                valueName: "host:port"))
        var metricsAddr: String?

        // Exporters (openai, otlp, file): see `bridge export`.
        @Option(
            help: .duration(
                "How long the exporters get to deliver what is left after the last task; the rest stays in the ledger for `bridge export`."
            ))
        var flushTimeout: Duration = .seconds(10)

        @OptionGroup var http: HTTPFlags

        @OptionGroup(title: "Backfill") var backfillFlags: BackfillFlags

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
            guard ModelAPI(name: modelAPI) != nil else {
                throw ValidationError("--model-api must be responses or chat-completions, not '\(modelAPI)'")
            }
            guard flushTimeout >= .zero else { throw ValidationError("--flush-timeout must not be negative") }
            guard offlineLatencyMs >= 0 else { throw ValidationError("--offline-latency-ms must not be negative") }
        }

        func run() async throws {
            try await runReportingErrors {
                let env = Environment.process
                if backfillFlags.backfill { return try await runBackfill(env) }
                try requireModelKey(env)
                let app = try await prepareApp(env, applicationName: "bridge-exec", taskKeys: task)
                if !dryRun {
                    try app.validate(model: model)
                    try await app.requireTasks(task)
                }
                if dryRun {
                    for line in try await app.dryRun(keys: task, limit: limit ?? 1_000) { print(line) }
                    return
                }
                let options = worker.options(taskKeys: task, limit: limit)
                let metrics: MetricsServer?
                do {
                    metrics = try metricsAddr.map { try PrometheusEndpoint.serve(hostPort: $0) }
                } catch let error as MetricsServerError {
                    throw UsageError("--metrics-addr \(error.reason)")
                }
                defer { metrics?.stop() }
                if let metrics { Self.log("metrics on http://\(metrics.address)/metrics") }
                let push = try OTLPMetricsPusher.fromEnvironment(env, instance: options.workerId)
                if let push {
                    PrometheusEndpoint.bootstrap()
                    push.start(exposition: PrometheusEndpoint.exposition, log: { Self.log($0) })
                }
                if metrics != nil || push != nil {
                    PrometheusEndpoint.registerKnown(
                        tools: app.config.tools.map(\.spec.name), models: app.config.agents.map(\.model))
                }
                let shutdown = ShutdownRequest()
                let signals = ShutdownSignals(request: shutdown, log: { Self.log($0) })
                defer { signals.cancel() }
                let summary: WorkerSummary
                do {
                    summary = try await app.execute(
                        options: options, model: model, traceFile: traceFile,
                        progress: .standardError(quiet: quiet, prefix: "bridge exec: "),
                        flushTimeout: flushTimeout, shutdown: shutdown)
                } catch {
                    await push?.finish(exposition: PrometheusEndpoint.exposition())
                    throw error
                }
                if let push, let error = await push.finish(exposition: PrometheusEndpoint.exposition()) {
                    Self.log("metrics: last OTLP push to \(push.endpoint) failed: \(error)")
                }
                print("bridge exec: \(summary.line)")
                Self.printExports(summary.exports)
                // Traces that did not arrive are failed work too (an exporter that stopped on
                // its configuration, or whose receiver rejected every span).
                let exportFailed = summary.exports.contains { $0.allRejected || $0.error != nil }
                if summary.failed > 0 || exportFailed { throw ExitCode(ExitStatus.failed.rawValue) }
            }
        }

        /// The model the runs call: the built-in offline one, or OpenAI's API named by --model-api.
        var model: ExecApp.ModelChoice {
            offline
                ? .offline(latency: .milliseconds(offlineLatencyMs)) : .openAI(ModelAPI(name: modelAPI) ?? .responses)
        }

        /// Runs that would call OpenAI without a key fail here, before anything is touched.
        func requireModelKey(_ env: Environment) throws {
            if !offline && !dryRun, let why = ModelProviders.missingKeyExplanation(environment: env) {
                throw UsageError(why)
            }
        }

        /// The mappings loaded and checked against the database, with the HTTP bounds of the flags.
        func prepareApp(_ env: Environment, applicationName: String, taskKeys: [TaskKey] = []) async throws -> ExecApp {
            var app = try await ExecApp.prepare(
                mappingsDirectory: mappings, connection: connection.config(applicationName: applicationName),
                environment: env, taskKeys: taskKeys)
            app.httpLimits = http.limits
            return app
        }

        static func log(_ line: String) { FileHandle.standardError.write(Data("bridge exec: \(line)\n".utf8)) }

        /// What each exporter delivered, and what it left in the ledger for `bridge export`.
        static func printExports(_ reports: [ExportReport]) {
            for report in reports {
                print(
                    "bridge exec: export \(report.exporter): delivered \(report.stats.deliveredSpans) spans, \(report.stats.deliveredTraces) traces"
                        + (report.stats.rejectedSpans + report.stats.rejectedTraces > 0
                            ? ", rejected \(report.stats.rejectedSpans) spans, \(report.stats.rejectedTraces) traces"
                            : ""))
                if let error = report.error {
                    FileHandle.standardError.write(Data("bridge exec: export \(report.exporter): \(error)\n".utf8))
                }
                if let line = report.leftoverLine {
                    FileHandle.standardError.write(Data("bridge exec: \(line)\n".utf8))
                }
                if let line = report.allRejectedLine {
                    FileHandle.standardError.write(Data("bridge exec: \(line)\n".utf8))
                }
            }
        }
    }
}

/// The flags of `bridge exec` that shape the claim loop: how many runs at once, how long a claim
/// holds, how a shutdown drains, how often the loop looks for work.
struct WorkerFlags: ParsableArguments {
    @Option(help: "Run at most this many tasks at once.")
    var concurrency: Int = 4

    @Option(help: "Attempts before a retriable failure marks the task failed.")
    var maxAttempts: Int = 3

    @Option(
        help: .duration(
            "How long a claim stays valid without a heartbeat (heartbeat every lease/3); seconds, or 90s, 2min."))
    var lease: Duration = .seconds(60)

    @Flag(help: "Keep running and pick up new tasks as they arrive (until SIGTERM/SIGINT).")
    var watch = false

    @Option(help: .duration("On SIGTERM/SIGINT, how long in-flight runs may take before they are released."))
    var drainTimeout: Duration = .seconds(30)

    @Option(help: .duration("Backstop polling interval (default 2s without NOTIFY, 20s with it)."))
    var pollInterval: Duration?

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard maxAttempts >= 1 else { throw ValidationError("--max-attempts must be at least 1") }
        guard lease >= .seconds(1) else { throw ValidationError("--lease must be at least 1 second") }
        guard drainTimeout >= .zero else { throw ValidationError("--drain-timeout must not be negative") }
        if let pollInterval, pollInterval <= .zero { throw ValidationError("--poll-interval must be positive") }
    }

    /// The worker's options from these flags, for these tasks (all when empty) and at most
    /// `limit` of them.
    func options(taskKeys: [TaskKey], limit: Int?) -> WorkerOptions {
        var options = WorkerOptions()
        options.concurrency = concurrency
        options.maxAttempts = maxAttempts
        options.taskKeys = taskKeys
        options.limit = limit
        options.lease = lease
        options.watch = watch
        options.drainTimeout = drainTimeout
        options.pollInterval = pollInterval
        return options
    }
}

/// The flags of `bridge exec` that bound every HTTP exchange (model calls, http tools,
/// exporters).
struct HTTPFlags: ParsableArguments {
    @Option(
        help: .duration(
            "How long one model call attempt may take in all, however slowly bytes arrive; a timeout is retried like a 5xx."
        ))
    var modelTimeout: Duration = .seconds(600)

    @Option(help: .duration("How long establishing any HTTP connection may take (model, http tools, exporters)."))
    var httpConnectTimeout: Duration = .seconds(10)

    @Option(
        help: .duration(
            "How long any HTTP request may go without a byte in either direction (default 300s; for streamed model calls 60s, between events)."
        ))
    var httpStallTimeout: Duration?

    @Flag(help: "Model calls wait for the whole answer instead of streaming it (servers that cannot stream).")
    var noStream = false

    @Option(
        help: ArgumentHelp(
            "Bytes per second any HTTP response must keep up over the stall window; a slower trickle fails as a timeout after --http-stall-timeout.",
            valueName: "bytes"))
    var httpMinRate: Int = 64

    func validate() throws {
        guard (1...1_000_000_000).contains(httpMinRate) else {
            throw ValidationError(
                "--http-min-rate must be between 1 and 1000000000 bytes per second, not \(httpMinRate)")
        }
        for (value, flag) in [
            (modelTimeout, "--model-timeout"), (httpConnectTimeout, "--http-connect-timeout"),
            (httpStallTimeout ?? .seconds(300), "--http-stall-timeout"),
        ] where !(value > .zero && value <= .seconds(86_400)) {
            throw ValidationError("\(flag) must be between 0 and 86400 seconds, not \(value.inSeconds)")
        }
    }

    /// The HTTP bounds from the flags.
    var limits: ExecApp.HTTPLimits {
        var l = ExecApp.HTTPLimits()
        l.connect = httpConnectTimeout
        if let httpStallTimeout {
            l.stall = httpStallTimeout
            l.streamStall = l.stall
        }
        l.stream = !noStream
        l.minimumRate = httpMinRate
        l.modelTimeout = modelTimeout
        return l
    }
}
