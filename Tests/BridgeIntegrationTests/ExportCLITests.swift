import BridgeCore
import BridgeHTTP
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ExportCLITests {
    func run(_ args: [String], env extra: [String: String]) async throws -> TestProcess.Result {
        var env = BridgeBinary.environment()
        for k in [
            "OPENAI_API_KEY", "OPENAI_TRACING_API_KEY", "OPENAI_BASE_URL", "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OPENAI_AGENTS_DISABLE_TRACING",
        ] { env[k] = nil }
        for (k, v) in extra { env[k] = v }
        return try await BridgeBinary.run(args, environment: env)
    }

    @Test func exportDrainsAfterAnOutageAndExitsByWhatIsLeft() async throws {
        let fx = try await ExportLedger.make(runs: 2)
        let server = try TestHTTPServer(
            handler: TestHTTPServer.sequence(
                [
                    .text("", status: 503, headers: [("retry-after", "0")]),
                    .text("", status: 429, headers: [("retry-after", "0")]),
                ],
                then: { r in
                    r.bodyText.contains(fx.failedToolSpan)
                        ? .json(["error": ["message": "bad span"]], status: 400) : .json([:])
                }))
        defer { server.stop() }
        let env = ["OPENAI_API_KEY": "sk-cli-secret-1", "OPENAI_BASE_URL": server.url("/v1")]

        let none = try await run(["export", "--database-url", fx.url], env: [:])
        #expect(none.status == 2 && none.stderr.contains("no exporter is enabled"))

        let r = try await run(["export", "--database-url", fx.url], env: env)
        // One span was rejected: exit 1, and the summary says so.
        #expect(r.status == 1, "\(r.stderr)")
        #expect(
            r.stdout.contains("openai")
                && r.stdout.contains("delivered \(fx.spanIds.count - 1) spans, \(fx.traceIds.count) traces"))
        #expect(r.stdout.contains("rejected 1 spans"))
        #expect(r.stderr.contains("retrying"))
        #expect(!r.stderr.contains("sk-cli-secret-1") && !r.stdout.contains("sk-cli-secret-1"))
        #expect(
            Set(ingestedIds(server.requests, acceptedFrom: 2)).isSuperset(
                of: fx.spanIds.subtracting([fx.failedToolSpan])))
        #expect(try await ExportPump.backlog(exporter: "openai", connection: fx.conn).isEmpty)

        // Nothing left to send; the rejection keeps the exit status at 1 until it is retried.
        let again = try await run(["export", "--database-url", fx.url, "--exporter", "openai"], env: env)
        #expect(again.status == 1 && again.stdout.contains("delivered 0 spans"))
        let notEnabled = try await run(["export", "--database-url", fx.url, "--exporter", "otlp"], env: env)
        #expect(notEnabled.status == 2 && notEnabled.stderr.contains("OTEL_EXPORTER_OTLP_ENDPOINT"))
        await fx.conn.close()
    }

    @Test func execExportsWhileItWorksAndFlushesBeforeExit() async throws {
        let url = try await TestDatabase.createReference(seed: true, workspaces: 1, tasksPerWorkspace: 4)
        let root = TestDatabase.projectRoot.path
        let migrate = try await run(["migrate", "--database-url", url, "--dir", root + "/migrations"], env: [:])
        #expect(migrate.status == 0, "\(migrate.stderr)")
        let ingest = try TestHTTPServer(
            handler: TestHTTPServer.sequence(
                [
                    .text("", status: 503), .text("", status: 503),
                    .text("", status: 429, headers: [("retry-after", "0")]),
                ], then: { _ in .json([:]) }))
        defer { ingest.stop() }
        let otlp = try TestHTTPServer { _ in .json([:]) }
        defer { otlp.stop() }
        let file = TemporaryPath.unique("bridge-exec", suffix: ".jsonl")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try await run(
            [
                "exec", "--offline", "--database-url", url, "--mappings", root + "/mappings", "--trace-file", file,
                "--flush-timeout", "60",
            ],
            env: [
                "OPENAI_API_KEY": "sk-exec-secret", "OPENAI_BASE_URL": ingest.url("/v1"),
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.baseURL,
            ])
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        #expect(!r.stderr.contains("not yet exported"), "\(r.stderr)")
        #expect(!r.stderr.contains("sk-exec-secret") && !r.stdout.contains("sk-exec-secret"))
        let conn = try await TestDatabase.connect(url)
        let spans = Set(try await conn.query("SELECT span_id FROM bridge.spans").map { $0["span_id"] ?? "" })
        let traces = Set(try await conn.query("SELECT trace_id FROM bridge.traces").map { $0["trace_id"] ?? "" })
        #expect(!spans.isEmpty)
        for name in ["openai", "otlp", "file"] {
            #expect(try await ExportPump.backlog(exporter: name, connection: conn).isEmpty, "\(name)")
        }
        // Every trace and span reached the ingest stand-in exactly once after two 503s and a 429.
        let ingested = ingestedIds(ingest.requests, acceptedFrom: 3)
        #expect(ingested.count == spans.count + traces.count)
        #expect(Set(ingested) == spans.union(traces))
        #expect(r.stdout.contains("export openai: delivered \(spans.count) spans"))
        let lines = try String(contentsOfFile: file, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == spans.count + traces.count)
        #expect(
            try await conn.query("SELECT name FROM bridge.exporters ORDER BY name").map { $0["name"] ?? "" } == [
                "file", "openai", "otlp",
            ])
        await conn.close()
    }
}
