import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

/// `/metrics` as Prometheus's own checker sees it: `promtool check metrics` (Debian's
/// `prometheus` package, installed by scripts/install-deps.sh) passes before the first task and
/// after a run, and every family and known label value is there at 0 from the first scrape.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct PromtoolCLITests {
    static var promtool: String? {
        ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// promtool's verdict on `text` (exit status, its complaints).
    static func check(_ text: String) async throws -> TestProcess.Result {
        let promtool = try #require(
            promtool, "promtool is not installed (scripts/install-deps.sh installs Debian's prometheus)")
        return try await TestProcess.run(promtool, ["check", "metrics"], stdin: text)
    }

    @Test(.timeLimit(.minutes(3)))
    func metricsPassPromtoolWithEveryFamilyAtZeroFromTheStart() async throws {
        let url = try await LeaseFixture.database()
        let poll = PollingConnection(url)
        let worker = try BackgroundBridge(
            [
                "exec", "--offline", "--watch", "--poll-interval", "0.2", "--database-url", url,
                "--mappings", BridgeBinary.mappings, "--metrics-addr", "127.0.0.1:0",
            ],
            environment: BridgeBinary.environment(["OTEL_EXPORTER_OTLP_ENDPOINT": nil]))
        defer { worker.send(SIGKILL) }
        let metricsURL = try #require(await MonitorFixture.metricsURL(worker), "\(worker.output)")
        let before = try await MonitorFixture.scrape(metricsURL).body
        let verdict = try await Self.check(before)
        #expect(verdict.status == 0, "promtool: \(verdict.stdout)\(verdict.stderr)\n\(before)")

        let families = Set(
            before.split(separator: "\n").filter { $0.hasPrefix("# TYPE ") }.map { String($0.split(separator: " ")[2]) }
        )
        let helped = Set(
            before.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { String($0.split(separator: " ")[2]) }
        )
        let expected: Set<String> = [
            "bridge_tasks_claimed_total", "bridge_tasks_completed_total", "bridge_tasks_failed_total",
            "bridge_tasks_retried_total",
            "bridge_tasks_reaped_total", "bridge_tool_calls_total", "bridge_model_calls_total",
            "bridge_model_tokens_total",
            "bridge_spans_recorded_total", "bridge_spans_exported_total", "bridge_spans_rejected_total",
            "bridge_task_duration_seconds",
            "bridge_tool_duration_seconds", "bridge_model_latency_seconds", "bridge_model_time_to_first_token_seconds",
            "bridge_runs_in_flight", "bridge_leases",
            "bridge_export_backlog_spans",
        ]
        #expect(expected.subtracting(families).isEmpty, "missing at start: \(expected.subtracting(families).sorted())")
        #expect(families.subtracting(helped).isEmpty, "no HELP: \(families.subtracting(helped).sorted())")
        let e = Exposition(before)
        #expect(
            e.values("bridge_tasks_failed_total", label: "error_type").isSuperset(of: [
                "ModelError", "MaxTurnsExceeded", "LeaseExpired",
            ]))
        #expect(e.values("bridge_spans_rejected_total", label: "exporter") == ["openai", "otlp", "file"])
        #expect(e.values("bridge_export_backlog_spans", label: "exporter") == ["openai", "otlp", "file"])
        #expect(e.values("bridge_tool_calls_total", label: "tool").contains("get_team_roles_and_status"))
        #expect(e.values("bridge_model_calls_total", label: "model").contains("gpt-4.1"))
        #expect(e.sum("bridge_tasks_failed_total") == 0 && e.sum("bridge_tool_calls_total") == 0)

        // After real work too (histograms with observations, more label values).
        try await TestDatabase.insertTasks(url, 2)
        #expect(
            await LeaseFixture.waitUntil(timeout: 90) { try poll.count("status NOT IN ('completed', 'failed')") == 0 },
            "\(worker.output.suffix(2000))")
        let after = try await MonitorFixture.scrape(metricsURL).body
        let again = try await Self.check(after)
        #expect(again.status == 0, "promtool: \(again.stdout)\(again.stderr)")
        #expect(Exposition(after).sum("bridge_tool_calls_total") > 0)
    }
}
