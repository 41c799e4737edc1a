import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTracing
import Foundation

extension ExecApp {
    /// `--backfill`: rebuilds the traces of finished, untraced tasks from stored records.
    public func backfill(options: BackfillOptions, progress: ProgressReporter) async throws -> BackfillSummary {
        let backfiller = try Backfiller(config: config)
        let conn = try await PostgresConnection.connect(connectionConfig)
        do {
            let summary = try await backfiller.run(on: conn, options: options, progress: progress)
            await conn.close()
            return summary
        } catch {
            await conn.close()
            throw error
        }
    }

    /// `--backfill --dry-run`: what would be rebuilt. Reads only.
    public func backfillPreview(options: BackfillOptions, sampleSize: Int = 3) async throws -> BackfillPreview {
        let backfiller = try Backfiller(config: config)
        let conn = try await PostgresConnection.connect(connectionConfig)
        do {
            let preview = try await backfiller.preview(on: conn, options: options, sampleSize: sampleSize)
            await conn.close()
            return preview
        } catch {
            await conn.close()
            throw error
        }
    }

    /// `--backfill --rerun`: runs historical tasks through `model` again as new executions.
    public func rerun(options: BackfillOptions, model choice: ModelChoice, traceFile: String?,
                      progress: ProgressReporter) async throws -> RerunSummary {
        let cc = connectionConfig
        let env = environment
        var sinks: [any SpanSink] = []
        if let traceFile { sinks.append(try FileExporter(path: traceFile)) }
        let httpClient = HTTPClient()
        defer { httpClient.shutdown() }
        let model: any ModelProvider = switch choice {
        case .offline(let latency): OfflineModel(latency: latency)
        case .openAI(let api): try ModelProviders.make(environment: env, defaultAPI: api, client: httpClient)
        }
        let secrets = ["OPENAI_API_KEY", "OPENAI_TRACING_API_KEY", "PGPASSWORD"].compactMap { env[$0] }
            + Self.password(in: cc.conninfo).map { [$0] }.orEmpty
        let rerunner = try Rerunner(
            config: config, connect: { try await PostgresConnection.connect(cc) }, model: model,
            tools: { conn in
                CompositeToolExecutor(sql: SQLToolExecutor(connection: { conn }),
                                      http: HTTPToolExecutor(client: httpClient, environment: env),
                                      command: CommandToolExecutor())
            },
            extraSinks: sinks, secrets: secrets)
        return try await rerunner.run(options: options, progress: progress)
    }
}
