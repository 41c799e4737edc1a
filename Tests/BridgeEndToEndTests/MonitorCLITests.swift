import BridgeCore
import BridgeHTTP
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

/// Prometheus text exposition, parsed just enough for the tests: sample name + labels → value.
struct Exposition {
    var samples: [(name: String, labels: [String: String], value: Double)] = []

    init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else {
                continue
            }
            let series = line[..<space]
            var labels: [String: String] = [:]
            var name = String(series)
            if let brace = series.firstIndex(of: "{") {
                name = String(series[..<brace])
                let inner = series[series.index(after: brace)..<(series.lastIndex(of: "}") ?? series.endIndex)]
                for pair in inner.split(separator: ",") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    if kv.count == 2 { labels[String(kv[0])] = String(kv[1].dropFirst().dropLast()) }
                }
            }
            samples.append((name, labels, value))
        }
    }

    /// The sum of `name`'s samples whose labels include `matching`.
    func sum(_ name: String, _ matching: [String: String] = [:]) -> Double {
        samples.filter { s in s.name == name && matching.allSatisfy { s.labels[$0.key] == $0.value } }.reduce(0) {
            $0 + $1.value
        }
    }

    /// `label`'s values among `name`'s samples.
    func values(_ name: String, label: String) -> Set<String> {
        Set(samples.filter { $0.name == name }.compactMap { $0.labels[label] })
    }
}

/// Records when each JSON line's `id` first appears in a background process's output.
final class OutputSampler: @unchecked Sendable {
    // @unchecked Sendable: the fields are only touched with `lock` held.
    private let lock = NSLock()
    private var firstSeen: [String: Date] = [:]
    private var duplicates: [String] = []
    private var stopped = false

    init(worker: BackgroundBridge) {
        let thread = Thread { [self] in
            var lines = 0
            while true {
                let out = worker.output.split(separator: "\n").filter { $0.hasPrefix("{") }
                let now = Date()
                lock.lock()
                for line in out.dropFirst(lines) {
                    let id = (try? JSONValue.parse(String(line)))?["id"]?.stringValue ?? "?"
                    if firstSeen[id] != nil { duplicates.append(id) } else { firstSeen[id] = now }
                }
                let done = stopped
                lock.unlock()
                lines = out.count
                if done { return }
                Thread.sleep(forTimeInterval: 0.01)
            }
        }
        thread.start()
    }

    /// How many ids were seen so far.
    var seenCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return firstSeen.count
    }

    func stop() -> (firstSeen: [String: Date], duplicates: [String]) {
        lock.lock()
        stopped = true
        let result = (firstSeen, duplicates)
        lock.unlock()
        return result
    }
}

enum MonitorFixture {
    /// Waits for `bridge exec --metrics-addr …:0` to log where it serves.
    static func metricsURL(_ worker: BackgroundBridge) async -> String? {
        @Sendable func line() -> Substring? {
            worker.output.split(separator: "\n").first { $0.contains("metrics on http://") }
        }
        _ = await LeaseFixture.waitUntil(timeout: 30) { line() != nil }
        return line()?.split(separator: " ").last.map(String.init)
    }

    static func scrape(_ url: String) async throws -> (status: Int, contentType: String, body: String) {
        let client = HTTPClient()
        defer { client.shutdown() }
        let r = try await client.execute(HTTPRequest(url: url))
        return (r.status, r.headers["Content-Type"] ?? "", String(decoding: r.body, as: UTF8.self))
    }
}

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct MonitorCLITests {
    @Test(.timeLimit(.minutes(3)))
    func metricsEndpointCountsEveryToolCallTheLedgerRecorded() async throws {
        let url = try await LeaseFixture.database()
        let poll = PollingConnection(url)
        let worker = try BackgroundBridge([
            "exec", "--offline", "--watch", "--poll-interval", "0.2", "--database-url", url,
            "--mappings", BridgeBinary.mappings, "--metrics-addr", "127.0.0.1:0",
        ])
        defer { worker.send(SIGKILL) }
        let metricsURL = try #require(await MonitorFixture.metricsURL(worker), "\(worker.output)")
        #expect(metricsURL.hasPrefix("http://127.0.0.1:") && metricsURL.hasSuffix("/metrics"))
        let before = try await MonitorFixture.scrape(metricsURL)
        #expect(before.status == 200 && before.contentType.hasPrefix("text/plain"))
        #expect(Exposition(before.body).sum("bridge_tasks_claimed_total") == 0)
        #expect(Exposition(before.body).sum("bridge_tool_calls_total") == 0)

        try await TestDatabase.insertTasks(url, 5)
        // The runs create sub-tasks, which run too: wait until nothing is left.
        #expect(
            await LeaseFixture.waitUntil(timeout: 90) {
                try poll.count("status NOT IN ('completed', 'failed')") == 0
            }, "\(worker.output.suffix(2000))")
        let tasks = try await TestDatabase.count(url, "status = 'completed'")
        let after = Exposition(try await MonitorFixture.scrape(metricsURL).body)

        let c = try await TestDatabase.connect(url)
        let perTool = try await c.simpleQuery(
            """
            SELECT span_data->>'name' AS tool, count(*) AS n, count(*) FILTER (WHERE error IS NOT NULL) AS errors
            FROM bridge.spans WHERE span_data->>'type' = 'function' GROUP BY 1
            """)
        let spans = try await c.simpleQuery("SELECT count(*) AS n FROM bridge.spans").first?.int("n") ?? -1
        let models = try await c.simpleQuery(
            """
            SELECT count(*) AS n, coalesce(sum((span_data->'usage'->>'input_tokens')::bigint), 0) AS input
            FROM bridge.spans WHERE span_data->>'type' = 'generation'
            """
        ).first
        let spent = try await c.simpleQuery(
            """
            SELECT coalesce(sum((span_data->>'cost_usd')::float8), 0) AS usd, count(DISTINCT t.workspace_id) AS groups
            FROM bridge.spans s JOIN bridge.traces tr ON tr.trace_id = s.trace_id
            JOIN public.tasks t ON t.id::text = tr.task_id
            WHERE s.span_data->>'type' IN ('generation', 'response')
            """
        ).first
        await c.close()
        // Spend: the counter sums every span's cost, and each group that ran has its series.
        #expect(abs(after.sum("bridge_cost_usd_total") - (spent?.double("usd") ?? -1)) < 1e-9)
        #expect(after.sum("bridge_cost_usd_total") > 0)
        #expect(after.values("bridge_cost_usd_total", label: "group").count == spent?.int("groups") ?? -1)

        // Exactly one tool-call count per function span, per tool, with the same errors.
        #expect(perTool.count >= 2, "the offline runs call the shipped tools")
        // Every mapped tool has its series from the start; those the runs did not call stay at 0.
        let called = Set(perTool.compactMap { $0["tool"] })
        #expect(after.values("bridge_tool_calls_total", label: "tool").isSuperset(of: called))
        for tool in after.values("bridge_tool_calls_total", label: "tool").subtracting(called) {
            #expect(after.sum("bridge_tool_calls_total", ["tool": tool]) == 0, "\(tool)")
        }
        for row in perTool {
            let tool = row["tool"] ?? ""
            #expect(after.sum("bridge_tool_calls_total", ["tool": tool]) == Double(row.int("n") ?? -1), "\(tool)")
            #expect(
                after.sum("bridge_tool_calls_total", ["tool": tool, "outcome": "error"])
                    == Double(row.int("errors") ?? -1), "\(tool)")
            #expect(
                after.sum("bridge_tool_duration_seconds_count", ["tool": tool]) == Double(row.int("n") ?? -1), "\(tool)"
            )
        }
        #expect(after.sum("bridge_spans_recorded_total") == Double(spans))
        #expect(after.sum("bridge_tasks_claimed_total") == Double(tasks))
        #expect(after.sum("bridge_tasks_completed_total") == Double(tasks))
        #expect(after.sum("bridge_task_duration_seconds_count") == Double(tasks))
        #expect(after.sum("bridge_model_calls_total") == Double(models?.int("n") ?? -1))
        #expect(after.sum("bridge_model_calls_total", ["model": "gpt-4.1", "status": "ok"]) > 0)
        #expect(after.sum("bridge_model_tokens_total", ["direction": "input"]) == Double(models?.int("input") ?? -1))
        #expect(after.sum("bridge_runs_in_flight") == 0)
        // No task or trace ids in any label.
        #expect(
            !after.samples.contains { s in s.labels.values.contains { $0.hasPrefix("trace_") || $0.hasPrefix("span_") }
            })

        // Only GET /metrics is served.
        let other = try await MonitorFixture.scrape(metricsURL.replacingOccurrences(of: "/metrics", with: "/nope"))
        #expect(other.status == 404)
        worker.send(SIGTERM)
        #expect(await worker.wait(timeout: 30)?.status == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func traceTailFollowPrintsEachNewSpanWithinASecond() async throws {
        let url = try await LeaseFixture.database()
        let poll = PollingConnection(url)
        let tail = try BackgroundBridge(["trace", "tail", "--follow", "--json", "-n", "0", "--database-url", url])
        defer { tail.send(SIGKILL) }
        #expect(
            await LeaseFixture.waitUntil(timeout: 30) {
                try poll.count("application_name = 'bridge-trace-tail'", table: "pg_stat_activity") == 1
            }, "\(tail.output)")
        let worker = try BackgroundBridge([
            "exec", "--offline", "--watch", "--poll-interval", "0.2", "--offline-latency-ms", "100",
            "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        defer { worker.send(SIGKILL) }
        #expect(
            await LeaseFixture.waitUntil(timeout: 60) {
                try poll.count(
                    "application_name = 'bridge-exec' AND datname = current_database()", table: "pg_stat_activity")
                    >= 1
            }, "\(worker.output)")
        // When each span id first shows up in the tail's output, sampled on a thread of its own
        // (not the test's busy cooperative pool) every 10 ms.
        let sampler = OutputSampler(worker: tail)
        try await TestDatabase.insertTasks(url, 1)
        #expect(
            await LeaseFixture.waitUntil(timeout: 90) {
                try poll.count("status NOT IN ('completed', 'failed')") == 0
            }, "\(worker.output.suffix(2000))")
        // Every span the run wrote reaches the tail's output (how soon is checked below).
        #expect(
            await LeaseFixture.waitUntil(timeout: 30) {
                try sampler.seenCount >= poll.count("true", table: "bridge.spans")
            }, "\(tail.output.suffix(2000))")
        let (firstSeen, duplicates) = sampler.stop()
        #expect(duplicates.isEmpty, "printed twice: \(duplicates)")
        let c = try await TestDatabase.connect(url)
        let spans = try await c.simpleQuery(
            "SELECT span_id, extract(epoch FROM created_at)::float8 AS at FROM bridge.spans")
        await c.close()
        #expect(spans.count >= 8)
        #expect(Set(firstSeen.keys) == Set(spans.compactMap { $0["span_id"] }))
        // The tail follows by NOTIFY, so a span shows up within a second of its insertion. The
        // median must be; a single span may be later by as long as the suite's own load can stall
        // a process (the bound that catches a tail that polls slowly or misses notifications).
        var delays: [Double] = []
        var late: [String] = []
        for row in spans {
            guard let id = row["span_id"], let at = row.double("at"), let seen = firstSeen[id] else { continue }
            let delay = seen.timeIntervalSince1970 - at
            delays.append(delay)
            if delay > 1.0 { late.append(String(format: "%@ after %.2fs", id, delay)) }
        }
        let median = delays.isEmpty ? Double.infinity : delays.sorted()[delays.count / 2]
        #expect(median <= 1.0, "half the spans printed more than 1 s after insertion: \(late)")
        #expect((delays.max() ?? 0) <= 5.0, "spans printed more than 1 s after insertion: \(late)")
        worker.send(SIGTERM)
        _ = await worker.wait(timeout: 30)
    }

    @Test(.timeLimit(.minutes(3)))
    func topShowsARunningWorkerAndItsToolCalls() async throws {
        let url = try await LeaseFixture.database()
        let poll = PollingConnection(url)
        let worker = try BackgroundBridge([
            "exec", "--offline", "--watch", "--poll-interval", "0.2", "--offline-latency-ms", "1500",
            "--concurrency", "2", "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        defer { worker.send(SIGKILL) }
        try await TestDatabase.insertTasks(url, 3)
        // The snapshot is taken on the polling thread the moment a task runs, so a busy pool
        // cannot delay it until the runs are over.
        let top = ["top", "--database-url", url, "--mappings", BridgeBinary.mappings]
        let (held, running) = try await OffPool.when(
            timeout: .seconds(60),
            {
                try poll.count("status = 'in_progress'") >= 1
            },
            then: { held in
                (
                    held,
                    try TestProcess.run(BridgeBinary.path, top + ["--json"], environment: BridgeBinary.environment())
                )
            })
        #expect(held)
        #expect(running.status == 0, "\(running.stderr)")
        let json = try JSONValue.parse(running.stdout)
        #expect((json["tasks"]?["running"]?.doubleValue ?? 0) >= 1)
        #expect(json["tasks"]?["pending"]?.doubleValue != nil && json["tasks"]?["waiting_retry"]?.doubleValue != nil)
        #expect(
            json["tasks"]?["waiting_approval"]?.doubleValue == 0, "approvals are migrated (0020): the count is shown")
        let workers = json["workers"]?.arrayValue ?? []
        #expect(
            workers.contains {
                ($0["worker"]?.stringValue ?? "").contains(":\(worker.pid):")
                    && $0["alive"] == .bool(true)
            }, "\(running.stdout)")
        #expect(
            await LeaseFixture.waitUntil(timeout: 90) {
                try poll.count("status NOT IN ('completed', 'failed')") == 0
            })
        // Not a terminal: one snapshot, then exit.
        let text = try await BridgeBinary.run(top)
        #expect(text.status == 0, "\(text.stderr)")
        for word in ["TASKS", "TOOL", "get_team_roles_and_status", "MODEL", "gpt-4.1", "EXPORTER", "WORKER"] {
            #expect(text.stdout.contains(word), "\(word): \(text.stdout)")
        }
        worker.send(SIGTERM)
        _ = await worker.wait(timeout: 30)
    }

    @Test(.timeLimit(.minutes(3)), .enabled(if: OTLPDecoder.isAvailable, "needs BRIDGE_OTEL_PYTHON (scripts/test.sh)"))
    func otlpMetricsPushCarriesTheSameToolCounts() async throws {
        let url = try await LeaseFixture.database()
        let collector = try TestHTTPServer { _ in .json([:]) }
        defer { collector.stop() }
        try await TestDatabase.insertTasks(url, 2)
        let env = BridgeBinary.environment([
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url(""),
            "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=secret-123",
            "OTEL_METRIC_EXPORT_INTERVAL": "200", "OTEL_SERVICE_NAME": "bridge-test",
        ])
        let r = try await BridgeBinary.run(
            ["exec", "--offline", "--database-url", url, "--mappings", BridgeBinary.mappings],
            environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let pushes = collector.requests.filter { $0.path == "/v1/metrics" }
        #expect(pushes.allSatisfy { $0.method == "POST" && $0.header("x-api-key") == "secret-123" })
        #expect(pushes.allSatisfy { $0.header("Content-Type") == "application/x-protobuf" })
        // The last push (at exit) carries the final cumulative values (decoded by the official definitions).
        let lastPush = try #require(pushes.last, "no metrics push: \(collector.requests.map(\.path))")
        let last = try #require(try await OTLPDecoder.decode([lastPush], signal: "metrics").first)
        let resource = last["resourceMetrics"]?.arrayValue?.first
        #expect(
            resource?["resource"]?["attributes"]?.arrayValue?.contains {
                $0["key"] == "service.name" && $0["value"]?["stringValue"] == "bridge-test"
            } == true)
        let metrics = resource?["scopeMetrics"]?.arrayValue?.first?["metrics"]?.arrayValue ?? []
        func metric(_ name: String) -> JSONValue? { metrics.first { $0["name"]?.stringValue == name } }
        func attribute(_ point: JSONValue, _ key: String) -> String? {
            point["attributes"]?.arrayValue?.first { $0["key"]?.stringValue == key }?["value"]?["stringValue"]?
                .stringValue
        }
        var calls: [String: Double] = [:]
        for p in metric("bridge_tool_calls_total")?["sum"]?["dataPoints"]?.arrayValue ?? [] {
            calls[attribute(p, "tool") ?? "?", default: 0] += p["asDouble"]?.doubleValue ?? 0
        }
        var durations: [String: Double] = [:]
        for p in metric("bridge_tool_duration_seconds")?["histogram"]?["dataPoints"]?.arrayValue ?? [] {
            let count = Double(p["count"]?.stringValue ?? "0") ?? -1  // proto3 leaves a zero count out
            durations[attribute(p, "tool") ?? "?"] = count
            let buckets = (p["bucketCounts"]?.arrayValue ?? []).compactMap { Double($0.stringValue ?? "") }
            #expect(
                buckets.reduce(0, +) == count && buckets.count == (p["explicitBounds"]?.arrayValue?.count ?? 0) + 1,
                "\(p)")
        }
        let c = try await TestDatabase.connect(url)
        let perTool = try await c.simpleQuery(
            """
            SELECT span_data->>'name' AS tool, count(*) AS n FROM bridge.spans WHERE span_data->>'type' = 'function' GROUP BY 1
            """)
        await c.close()
        let expected = Dictionary(uniqueKeysWithValues: perTool.map { ($0["tool"] ?? "", Double($0.int("n") ?? -1)) })
        // Mapped tools the runs did not call are there at 0 (every known series exists from the start).
        #expect(
            !expected.isEmpty && calls.filter { $0.value > 0 } == expected
                && durations.filter { $0.value > 0 } == expected)
        #expect(Set(calls.keys).isSuperset(of: expected.keys))
        #expect(metric("bridge_runs_in_flight")?["gauge"] != nil)
        #expect(!r.stderr.contains("secret-123") && !r.stdout.contains("secret-123"))
    }

    @Test func badMetricsAddressExitsTwo() async throws {
        let url = try await LeaseFixture.database()
        for addr in ["9464", "127.0.0.1:notaport", "127.0.0.1:70000"] {
            let r = try await BridgeBinary.run([
                "exec", "--offline", "--database-url", url, "--mappings", BridgeBinary.mappings,
                "--metrics-addr", addr,
            ])
            #expect(r.status == 2 && r.stderr.contains("--metrics-addr"), "\(addr): \(r.stderr)")
        }
    }
}
