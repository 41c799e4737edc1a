import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTracing
import FoundationEssentials

extension ExecApp {
    /// `--backfill`: rebuilds the traces of finished, untraced tasks from stored records. The
    /// enabled exporters deliver the rebuilt traces like any others while the batches run, and
    /// get `flushTimeout` at the end; what is left stays in the ledger for `bridge export`.
    public func backfill(
        options: BackfillOptions, traceFile: String? = nil, progress: ProgressReporter,
        flushTimeout: Duration = .seconds(10)
    ) async throws -> (BackfillSummary, [ExportReport]) {
        let backfiller = try Backfiller(
            config: config, secrets: Secrets.collect(connection: connectionConfig, environment: environment))
        let httpClient = HTTPClient(configuration: httpLimits.clientConfiguration())
        defer { httpClient.shutdown() }
        let (session, _) = try startExports(traceFile: traceFile, client: httpClient, progress: progress)
        let summary: BackfillSummary
        do {
            summary = try await withConnections(options.connectionCount) { conns in
                try await backfiller.run(on: conns, options: options, progress: progress)
            }
        } catch {
            _ = await session.finish(flushTimeout: flushTimeout)
            throw error
        }
        return (summary, await session.finish(flushTimeout: flushTimeout))
    }

    /// `count` connections, open while `body` runs.
    func withConnections<T: Sendable>(_ count: Int, _ body: ([PostgresConnection]) async throws -> T) async throws -> T
    {
        try await PostgresConnection.withConnection(connectionConfig) { first in
            count <= 1 ? try await body([first]) : try await withConnections(count - 1) { try await body([first] + $0) }
        }
    }

    /// `--backfill --dry-run`: what would be rebuilt. Reads only.
    public func backfillPreview(options: BackfillOptions, sampleSize: Int = 3) async throws -> BackfillPreview {
        let backfiller = try Backfiller(config: config)
        return try await PostgresConnection.withConnection(connectionConfig) { conn in
            try await backfiller.preview(on: conn, options: options, sampleSize: sampleSize)
        }
    }

    /// `--backfill --rerun`: runs historical tasks through `model` again as new executions.
    public func rerun(
        options: BackfillOptions, model choice: ModelChoice, traceFile: String?,
        progress: ProgressReporter
    ) async throws -> RerunSummary {
        let cc = connectionConfig
        let env = environment
        var sinks: [any SpanSink] = []
        if let traceFile { sinks.append(try FileExporter(path: traceFile)) }
        let httpClient = HTTPClient(configuration: httpLimits.clientConfiguration())
        defer { httpClient.shutdown() }
        // No fleet gate around a rerun's calls: the HTTP client retries its own 429s.
        let model = try modelProvider(choice, client: httpClient)
        let secrets = Secrets.collect(connection: cc, environment: env)
        let mcpServers = try await Self.startMCPServers(
            config, environment: env, client: httpClient, progress: progress)
        let rerunner = try Rerunner(
            config: config, connect: { try await PostgresConnection.connect(cc) }, model: model,
            tools: { conn in
                CompositeToolExecutor(
                    sql: SQLToolExecutor(connection: { conn }),
                    http: HTTPToolExecutor(client: httpClient, environment: env),
                    command: CommandToolExecutor(environment: env))
            },
            extraSinks: sinks, secrets: secrets, mcp: mcpServers)
        do {
            let summary = try await rerunner.run(options: options, progress: progress)
            await mcpServers.shutdown()
            return summary
        } catch {
            await mcpServers.shutdown()
            throw error
        }
    }
}
