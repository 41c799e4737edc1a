import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

/// What a user sees when the OTLP receiver does not take bridge's spans: `bridge exec` says so
/// in one line and exits 1, and `bridge verify` and `bridge top` say it loudly afterwards.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct OTLPCLITests {
    func exec(_ url: String, _ receiver: TestHTTPServer, _ extra: [String: String?] = [:]) async throws
        -> TestProcess.Result
    {
        var env: [String: String?] = ["OTEL_EXPORTER_OTLP_ENDPOINT": receiver.baseURL, "OTEL_METRICS_EXPORTER": "none"]
        for (k, v) in extra { env[k] = v }
        return try await BridgeBinary.run(
            [
                "exec", "--offline", "--database-url", url, "--mappings", BridgeBinary.mappings,
                "--flush-timeout", "20",
            ], environment: BridgeBinary.environment(env))
    }

    @Test func aReceiverThatWantsAnotherProtocolIsNamedInOneLine() async throws {
        let url = try await LeaseFixture.database()
        try await TestDatabase.insertTasks(url, 1)
        // Phoenix's answer to JSON.
        let phoenixLike = try TestHTTPServer { r in
            r.header("Content-Type") == "application/x-protobuf"
                ? .json([:]) : .text("Unsupported content type: application/json", status: 415)
        }
        defer { phoenixLike.stop() }
        let r = try await exec(url, phoenixLike, ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"])
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        let lines = r.stderr.split(separator: "\n").filter { $0.contains("HTTP 415") }
        #expect(
            lines.count == 1 && lines.first?.contains("set OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf") == true,
            "\(r.stderr)")
        #expect(phoenixLike.requests.filter { $0.path == "/v1/traces" }.count == 1)
        // The default (protobuf) is taken; the spans left behind are delivered by `bridge export`.
        let again = try await BridgeBinary.run(
            ["export", "--database-url", url],
            environment: BridgeBinary.environment(["OTEL_EXPORTER_OTLP_ENDPOINT": phoenixLike.baseURL]))
        #expect(again.status == 0, "\(again.stdout)\(again.stderr)")
        let c = try await TestDatabase.connect(url)
        let rows = try await c.simpleQuery(
            """
            SELECT (SELECT count(*) FROM bridge.spans) AS spans,
                   (SELECT count(*) FROM bridge.span_deliveries WHERE exporter = 'otlp' AND status = 'delivered') AS delivered,
                   (SELECT count(*) FROM bridge.trace_deliveries WHERE exporter = 'otlp' AND status = 'delivered') AS traces
            """)
        await c.close()
        #expect(rows.first?.int("spans") == rows.first?.int("delivered") && rows.first?.int("traces") == 1)
    }

    @Test func aRunWhoseEverySpanWasRejectedIsReportedLoudly() async throws {
        let url = try await LeaseFixture.database()
        try await TestDatabase.insertTasks(url, 2)
        // An empty request passes, any span is refused: a payload problem, every span rejected.
        let picky = try TestHTTPServer { r in r.body.count > 200 ? .text("span refused", status: 400) : .json([:]) }
        defer { picky.stop() }
        let r = try await exec(url, picky)
        #expect(r.status == 1, "\(r.stdout)\(r.stderr)")
        #expect(r.stderr.contains("otlp: EVERY span was rejected"), "\(r.stderr)")

        let verify = try await BridgeBinary.run(["verify", "--database-url", url, "--mappings", BridgeBinary.mappings])
        #expect(verify.status == 1 && verify.stdout.contains("otlp: EVERY span was rejected"), "\(verify.stdout)")
        let top = try await BridgeBinary.run(["top", "--database-url", url, "--mappings", BridgeBinary.mappings])
        #expect(top.status == 0 && top.stdout.contains("!! otlp: ALL"), "\(top.stdout)")
        let json = try await BridgeBinary.run([
            "top", "--json", "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        let otlp = try JSONValue.parse(json.stdout)["exporters"]?.arrayValue?.first { $0["exporter"] == "otlp" }
        #expect(otlp?["all_rejected"] == true, "\(json.stdout)")
        // Every trace says rejected too.
        let c = try await TestDatabase.connect(url)
        let traces = try await c.simpleQuery(
            "SELECT status, count(*) AS n FROM bridge.trace_deliveries WHERE exporter = 'otlp' GROUP BY 1")
        await c.close()
        #expect(traces.count == 1 && traces.first?["status"] == "rejected" && traces.first?.int("n") == 2, "\(traces)")
    }
}
