import BridgeCore
import BridgeTestSupport
import Foundation
import Synchronization
import Testing

/// `bridge exec` with streamed model calls (the default) against a stand-in that streams its
/// events slowly: `trace tail --follow` shows each model call while it runs, `/metrics` gets
/// the time to first token; `--no-stream` sends plain requests.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct StreamingCLITests {
    @Test(.timeLimit(.minutes(3)))
    func tailShowsCallsInProgressAndMetricsGetTheTimeToFirstToken() async throws {
        let url = try await ExecCLITests.migratedReference()
        // The worker ends with its work, and /metrics with it: every model call after the first
        // waits (on the stand-in's own thread) until the test has scraped a time to first token,
        // so the scrape cannot fall between the worker's last call and its exit.
        let scraped = Latch()
        let server = try TestHTTPServer { request in
            guard request.path == "/v1/responses", let body = request.json else {
                return .json(["error": ["message": "not here"]], status: 404)
            }
            if scraped.arrivals() > 1 { scraped.wait(upTo: .seconds(120)) }
            return .modelReply(ResponsesStandIn.reply(to: body), for: request, pause: .milliseconds(40))
        }
        defer { server.stop() }
        defer { scraped.open() }
        let poll = PollingConnection(url)
        let tail = try BackgroundBridge(["trace", "tail", "--follow", "-n", "0", "--database-url", url])
        defer { tail.send(SIGKILL) }
        #expect(
            await LeaseFixture.waitUntil(timeout: 30) {
                try poll.count("application_name = 'bridge-trace-tail-listen'", table: "pg_stat_activity") == 1
            }, "\(tail.output)")
        let worker = try BackgroundBridge(
            [
                "exec", "--limit", "2", "--database-url", url, "--mappings", BridgeBinary.mappings,
                "--metrics-addr", "127.0.0.1:0",
            ],
            environment: BridgeBinary.openAIEnvironment(server, key: "sk-test-stream-e2e"))
        defer { worker.send(SIGKILL) }
        let metricsURL = try #require(await MonitorFixture.metricsURL(worker), "\(worker.output)")
        // Scraped while the worker runs: streamed calls observed their time to first token.
        // Until the worker ends: MCP start-up alone can take many seconds on a loaded machine.
        var observed = 0.0
        while observed == 0, worker.isRunning {
            if let body = try? await MonitorFixture.scrape(metricsURL).body {
                observed = Exposition(body).sum("bridge_model_time_to_first_token_seconds_count")
            }
            if observed == 0 { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(observed > 0, "\(worker.output.suffix(2000))")
        scraped.open()
        let ended = await worker.wait(timeout: 120)
        #expect(ended?.status == 0, "\(worker.output.suffix(2000))")
        #expect(server.requests.allSatisfy { $0.json?["stream"] == true })

        // Each response span was first printed running, then as a span with its duration.
        let spans = try poll.count(
            "span_data->>'type' = 'response' AND span_data ? 'time_to_first_token_ms'", table: "bridge.spans")
        @Sendable func lines(running: Bool) -> [Substring] {
            tail.output.split(separator: "\n").filter {
                running ? $0.contains("running…") : $0.contains("response") && !$0.contains("running…")
            }
        }
        #expect(
            await LeaseFixture.waitUntil(timeout: 30) { lines(running: false).count >= spans },
            "\(tail.output.suffix(3000))")
        let running = lines(running: true)
        #expect(!running.isEmpty, "\(tail.output.suffix(3000))")
        #expect(running.allSatisfy { $0.contains("response") && $0.contains("gpt-4.1") })
        #expect(running.count == spans, "one running line per streamed response span")
        #expect(lines(running: false).count >= running.count)
        tail.send(SIGTERM)
    }

    @Test func noStreamSendsPlainRequests() async throws {
        let url = try await ExecCLITests.migratedReference()
        let server = try TestHTTPServer { request in
            guard request.path == "/v1/responses", let body = request.json else {
                return .json(["error": ["message": "not here"]], status: 404)
            }
            return .modelReply(ResponsesStandIn.reply(to: body), for: request)
        }
        defer { server.stop() }
        let r = try await BridgeBinary.run(
            ["exec", "--no-stream", "--limit", "1", "--database-url", url, "--mappings", BridgeBinary.mappings],
            environment: BridgeBinary.openAIEnvironment(server, key: "sk-test-no-stream"))
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!server.requests.isEmpty)
        #expect(server.requests.allSatisfy { $0.json?["stream"] == nil && $0.header("Accept") == "application/json" })
        let c = try await TestDatabase.connect(url)
        let n = try await c.query(
            "SELECT count(*) FILTER (WHERE span_data ? 'time_to_first_token_ms') AS ttft, count(*) AS n FROM bridge.spans WHERE span_data->>'type' = 'response'"
        ).first
        await c.close()
        #expect(n?.int("ttft") == 0 && (n?.int("n") ?? 0) > 0)
    }
}

/// Opens once; `wait(upTo:)` blocks its (non-pool) thread until then. Counts its callers.
private final class Latch: Sendable {
    private let state = Mutex((isOpen: false, arrivals: 0))

    /// This caller's number, from 1.
    func arrivals() -> Int {
        state.withLock {
            $0.arrivals += 1
            return $0.arrivals
        }
    }

    func open() { state.withLock { $0.isOpen = true } }

    func wait(upTo limit: Duration) {
        let deadline = ContinuousClock.now + limit
        while !state.withLock({ $0.isOpen }) && ContinuousClock.now < deadline { usleep(10_000) }
    }
}
