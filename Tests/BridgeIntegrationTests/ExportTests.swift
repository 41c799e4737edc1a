import BridgeCore
import BridgeHTTP
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeTracing

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ExportOpenAITests {
    static let key = "sk-test-tracing-key-123"

    func exporter(_ server: TestHTTPServer, client: HTTPClient, batchSize: Int = 128) -> OpenAITracesExporter {
        OpenAITracesExporter(
            apiKey: Self.key, baseURL: server.url("/v1"), organization: "org-1", project: "proj-1",
            client: client, batchSize: batchSize)
    }

    @Test func retriesOutageAndDeliversEverythingOnceSanitised() async throws {
        let fx = try await ExportLedger.make()
        let outage = TestHTTPServer.sequence(
            [
                .text("unavailable", status: 503), .text("unavailable", status: 503),
                .json(["error": ["message": "slow down"]], status: 429, headers: [("retry-after-ms", "1")]),
            ], then: { _ in .json([:]) })
        try await withStandIn(answering: outage) { server, client in
            let log = SleepLog()
            let pump = try await fx.pump(
                exporter(server, client: client, batchSize: 10), sleeps: log, secrets: [Self.key])
            let stats = try await pump.drain()
            #expect(stats.deliveredSpans == fx.spanIds.count && stats.deliveredTraces == fx.traceIds.count)
            #expect(stats.retries == 3 && stats.rejectedSpans == 0)
            #expect(try await pump.backlog().isEmpty)
            // The 429's retry-after-ms was honoured; the 503s used the backoff.
            #expect(log.sleeps.count == 3 && log.sleeps.last == .milliseconds(1))

            // Every trace and span reached the stand-in exactly once (the first three requests failed).
            let requests = server.requests
            let delivered = ingestedIds(requests, acceptedFrom: 3)
            #expect(delivered.count == fx.spanIds.count + fx.traceIds.count)
            #expect(Set(delivered) == fx.spanIds.union(fx.traceIds))
            #expect(requests.allSatisfy { ($0.json?["data"]?.arrayValue?.count ?? 0) <= 10 })
            for r in requests {
                #expect(r.method == "POST" && r.path == "/v1/traces/ingest")
                #expect(r.header("Authorization") == "Bearer \(Self.key)")
                #expect(r.header("OpenAI-Beta") == "traces=v1")
                #expect(r.header("OpenAI-Organization") == "org-1" && r.header("OpenAI-Project") == "proj-1")
                #expect(r.header("Content-Type") == "application/json")
            }
            // Trace objects come before the spans of their trace.
            for trace in fx.traceIds {
                let t = try #require(delivered.firstIndex(of: trace))
                let spanIndexes = try await fx.conn.query("SELECT span_id FROM bridge.spans WHERE trace_id = \(trace)")
                    .compactMap { delivered.firstIndex(of: $0["span_id"] ?? "") }
                #expect(spanIndexes.allSatisfy { $0 > t })
            }

            // Shapes and sanitisation.
            let items = requests.dropFirst(3).flatMap { $0.json?["data"]?.arrayValue ?? [] }
            let byId = Dictionary(items.map { ($0["id"]?.stringValue ?? "", $0) }, uniquingKeysWith: { a, _ in a })
            let trace = try #require(byId[fx.traceIds.first!])
            #expect(
                trace["object"] == "trace" && trace["workflow_name"] == "bridge tasks" && trace["group_id"] == "ws-1")
            #expect(trace["metadata"]?.objectValue?.values.allSatisfy { $0.stringValue != nil } == true)
            let big = try #require(byId[fx.bigInputSpan])
            #expect(big["object"] == "trace.span")
            let input = try #require(big["span_data"]?["input"]?.stringValue)
            #expect(input.hasSuffix("... [truncated]") && input.hasPrefix("éééééééééé"))
            #expect(OpenAISanitizer.size(.string(input)) <= 100_000 && OpenAISanitizer.size(.string(input)) > 99_000)
            #expect(
                big["span_data"]?["usage"] == [
                    "input_tokens": 7, "output_tokens": 3, "details": ["total_tokens": 10, "requests": 1],
                ])
            #expect(byId[fx.responseSpan]?["span_data"] == ["type": "response", "response_id": "resp_123"])
            // Generations of the runs: usage reshaped, nothing but the two counts at the top.
            let generations = items.filter { $0["span_data"]?["type"] == "generation" }
            #expect(generations.count == 3 * 2 + 1)
            for g in generations {
                let usage = try #require(g["span_data"]?["usage"]?.objectValue)
                #expect(Set(usage.keys).isSubset(of: ["input_tokens", "output_tokens", "details"]))
            }
            // Custom task/turn spans: no top-level usage (the SDK leaves their free-form data alone).
            let customs = items.filter { $0["span_data"]?["type"] == "custom" }
            #expect(customs.count == 3 * 3)
            #expect(customs.allSatisfy { $0["span_data"]?["usage"] == nil })

            // One delivered row per item; the first batch took four attempts.
            #expect(
                try await fx.count(
                    "SELECT count(*) FROM bridge.span_deliveries WHERE exporter = 'openai' AND status = 'delivered'")
                    == fx.spanIds.count)
            #expect(
                try await fx.count(
                    "SELECT count(*) FROM bridge.trace_deliveries WHERE exporter = 'openai' AND status = 'delivered'")
                    == fx.traceIds.count)
            #expect(try await fx.count("SELECT max(attempts) FROM bridge.trace_deliveries") == 4)
            #expect(
                try await fx.count(
                    "SELECT count(*) FROM bridge.exporters WHERE name = 'openai' AND target LIKE 'http://127.0.0.1:%/v1/traces/ingest'"
                ) == 1)
            // A second drain finds nothing.
            #expect(try await pump.drain().requests == 0)
        }
        await fx.conn.close()
    }

    @Test func badRequestRejectsOnlyTheOffendingItemWithTheServersMessage() async throws {
        let fx = try await ExportLedger.make(runs: 2)
        let bad = fx.failedToolSpan
        let rejectingBad: TestHTTPServer.Handler = { request in
            if request.bodyText.contains(bad) {
                // Servers sometimes echo credentials; the stored message must not keep the key.
                return .json(
                    [
                        "error": [
                            "message": .string(
                                "Unknown parameter: 'data[0].span_data.mcp_data' (key \(ExportOpenAITests.key))"),
                            "type": "invalid_request_error",
                        ]
                    ], status: 400)
            }
            return .json([:])
        }
        try await withStandIn(answering: rejectingBad) { server, client in
            let ex = exporter(server, client: client)
            let pump = try await fx.pump(ex, secrets: ex.secrets)
            let stats = try await pump.drain()
            #expect(stats.rejectedSpans == 1 && stats.rejectedTraces == 0)
            #expect(stats.deliveredSpans == fx.spanIds.count - 1)
            let row = try #require(
                try await fx.conn.query("SELECT span_id, error FROM bridge.span_deliveries WHERE status = 'rejected'")
                    .first
            )
            #expect(row["span_id"] == bad)
            #expect(row["error"]?.contains("HTTP 400: Unknown parameter: 'data[0].span_data.mcp_data'") == true)
            #expect(row["error"]?.contains(ExportOpenAITests.key) == false)
            #expect(row["error"]?.contains("***") == true)
            #expect(try await pump.backlog().isEmpty)
        }
        await fx.conn.close()
    }

    @Test func payloadTooLargeSplitsTheBatch() async throws {
        let fx = try await ExportLedger.make(runs: 2)
        let splitting: TestHTTPServer.Handler = { request in
            (request.json?["data"]?.arrayValue?.count ?? 0) > 4 ? .text("payload too large", status: 413) : .json([:])
        }
        try await withStandIn(answering: splitting) { server, client in
            let pump = try await fx.pump(exporter(server, client: client, batchSize: 16))
            let stats = try await pump.drain()
            #expect(stats.rejectedSpans == 0 && stats.rejectedTraces == 0)
            #expect(stats.deliveredSpans == fx.spanIds.count)
            let accepted = server.requests.filter { ($0.json?["data"]?.arrayValue?.count ?? 0) <= 4 }
            #expect(Set(ingestedIds(accepted)) == fx.spanIds.union(fx.traceIds))
            #expect(ingestedIds(accepted).count == fx.spanIds.count + fx.traceIds.count)
        }
        await fx.conn.close()
    }

    @Test func unauthorizedStopsThePumpAndKeepsEverything() async throws {
        let fx = try await ExportLedger.make(runs: 1)
        try await withStandIn(always: .json(["error": ["message": "Incorrect API key provided"]], status: 401)) {
            server, client in
            let pump = try await fx.pump(exporter(server, client: client))
            await #expect(throws: ExportFatalError.self) { try await pump.drain() }
            #expect(try await pump.backlog() == ExportBacklog(traces: 1, spans: fx.spanIds.count))
            #expect(try await fx.count("SELECT count(*) FROM bridge.span_deliveries") == 0)
        }
        await fx.conn.close()
    }

    @Test func killedWhileTheEndpointIsDownLosesNothing() async throws {
        let fx = try await ExportLedger.make()
        // The first batch gets through, then the endpoint goes down.
        let down = try TestHTTPServer(
            handler: TestHTTPServer.sequence([.json([:])], then: { _ in .text("down", status: 503) }))
        let client = HTTPClient()
        defer { client.shutdown() }
        let first = try await TestDatabase.connect(fx.url)
        let pump = try await fx.pump(exporter(down, client: client, batchSize: 8), on: first)
        let running = Task { try await pump.drain() }
        try await eventually("three failed attempts") { down.requests.count >= 4 }
        running.cancel()  // the process is killed mid-way
        _ = await running.result
        await first.close()  // its session (and export lock) ends with it
        down.stop()
        let left = try await ExportPump.backlog(exporter: "openai", connection: fx.conn)
        #expect(left.spans + left.traces == fx.spanIds.count + fx.traceIds.count - 8)

        // The endpoint is back: a fresh pump (`bridge export`) delivers the rest.
        let up = try TestHTTPServer { _ in .json([:]) }
        defer { up.stop() }
        let second = try await TestDatabase.connect(fx.url)
        let again = try await fx.pump(exporter(up, client: client, batchSize: 8), on: second)
        try await again.drain()
        let all = ingestedIds(Array(down.requests.prefix(1))) + ingestedIds(up.requests)
        #expect(all.count == fx.spanIds.count + fx.traceIds.count)
        #expect(Set(all) == fx.spanIds.union(fx.traceIds))
        #expect(try await again.backlog().isEmpty)
        await second.close()
        await fx.conn.close()
    }

    @Test func oneProcessExportsAtATime() async throws {
        let fx = try await ExportLedger.make(runs: 1)
        try await withStandIn(always: .json([:])) { server, client in
            let other = try await TestDatabase.connect(fx.url)
            let a = ExportPump(exporter: exporter(server, client: client), connection: fx.conn)
            let b = ExportPump(exporter: exporter(server, client: client), connection: other)
            #expect(try await a.tryLock())
            #expect(try await b.tryLock() == false)
            await a.unlock()
            #expect(try await b.tryLock())
            await other.close()
        }
        await fx.conn.close()
    }
}

@Suite(
    .enabled(
        if: TestDatabase.isAvailable && OTLPDecoder.isAvailable,
        "needs BRIDGE_TEST_DATABASE_URL and BRIDGE_OTEL_PYTHON (scripts/test.sh)"))
struct ExportOTLPAndFileTests {
    @Test func otlpReceivesEverySpanWithHexIdsAndGenAIAttributes() async throws {
        let fx = try await ExportLedger.make()
        let busyOnce = TestHTTPServer.sequence(
            [.text("busy", status: 503, headers: [("Retry-After", "0")])], then: { _ in .json([:]) })
        try await withStandIn(answering: busyOnce) { server, client in
            let env = Environment([
                "OTEL_EXPORTER_OTLP_ENDPOINT": server.url("/otel/"), "OTEL_SERVICE_NAME": "svc",
                "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=abc%20def,x-team=t1",
            ])
            let ex = try #require(try OTLPExporter.fromEnvironment(env, client: client))
            #expect(ex.encoding == .protobuf && ex.compression == .none)
            let pump = try await fx.pump(ex, secrets: ex.secrets)
            let stats = try await pump.drain()
            #expect(stats.deliveredSpans == fx.spanIds.count && stats.retries == 1)
            #expect(try await pump.backlog().isEmpty)

            let accepted = Array(server.requests.dropFirst())
            #expect(
                accepted.allSatisfy {
                    $0.path == "/otel/v1/traces" && $0.header("x-api-key") == "abc def" && $0.header("x-team") == "t1"
                })
            #expect(
                accepted.allSatisfy {
                    $0.header("Content-Type") == "application/x-protobuf" && $0.header("Content-Encoding") == nil
                })
            // Every body parsed by the official definitions (ParseFromString into ExportTraceServiceRequest).
            let decoded = try await OTLPDecoder.decode(accepted, signal: "traces")
            let resource = try #require(decoded.first?["resourceSpans"]?.arrayValue?.first)
            let resourceAttrs = OTLPDecoder.attributes(resource["resource"] ?? .null)
            #expect(
                resourceAttrs["service.name"] == ["stringValue": "svc"]
                    && resourceAttrs["openinference.project.name"] == ["stringValue": "svc"])
            #expect(resource["scopeSpans"]?.arrayValue?.first?["scope"]?["name"] == "bridge")
            let spans = OTLPDecoder.spans(decoded)
            #expect(spans.count == fx.spanIds.count)
            func attrs(_ s: JSONValue) -> [String: JSONValue] {
                Dictionary(
                    (s["attributes"]?.arrayValue ?? []).map { ($0["key"]?.stringValue ?? "", $0["value"] ?? .null) },
                    uniquingKeysWith: { a, _ in a })
            }
            let original = Set(spans.compactMap { attrs($0)["openai.agents.span_id"]?["stringValue"]?.stringValue })
            #expect(original == fx.spanIds)
            let isHex = { (s: String, n: Int) in s.count == n && s.allSatisfy { $0.isHexDigit && !$0.isUppercase } }
            let spanIds = Set(spans.compactMap { $0["spanId"]?.stringValue })
            for s in spans {
                let traceId = try #require(s["traceId"]?.stringValue)
                #expect(isHex(traceId, 32) && fx.traceIds.contains("trace_" + traceId))
                let full = try #require(attrs(s)["openai.agents.span_id"]?["stringValue"]?.stringValue)
                #expect(s["spanId"]?.stringValue == String(full.dropFirst(5).prefix(16)))
                if let p = s["parentSpanId"]?.stringValue { #expect(isHex(p, 16) && spanIds.contains(p)) }
                let start = try #require(s["startTimeUnixNano"]?.stringValue.flatMap { Int64($0) })
                let end = try #require(s["endTimeUnixNano"]?.stringValue.flatMap { Int64($0) })
                #expect(end >= start && start > 1_600_000_000_000_000_000)
            }
            let agent = try #require(spans.first { $0["name"] == "invoke_agent Project Manager" })
            #expect(attrs(agent)["gen_ai.operation.name"] == ["stringValue": "invoke_agent"])
            #expect(attrs(agent)["gen_ai.agent.name"] == ["stringValue": "Project Manager"])
            #expect(agent["kind"] == 1)
            let chat = try #require(
                spans.first {
                    $0["name"] == "chat gpt-4.1"
                        && attrs($0)["openai.agents.span_id"]?["stringValue"]?.stringValue == fx.bigInputSpan
                })
            #expect(chat["kind"] == 3)
            #expect(attrs(chat)["gen_ai.request.model"] == ["stringValue": "gpt-4.1"])
            #expect(attrs(chat)["gen_ai.usage.input_tokens"] == ["intValue": "7"])
            #expect(attrs(chat)["gen_ai.usage.output_tokens"] == ["intValue": "3"])
            let response = try #require(
                spans.first { attrs($0)["openai.agents.span_id"]?["stringValue"]?.stringValue == fx.responseSpan })
            #expect(attrs(response)["gen_ai.response.id"] == ["stringValue": "resp_123"])
            let tool = try #require(spans.first { $0["name"] == "execute_tool lookup" })
            #expect(attrs(tool)["gen_ai.tool.name"] == ["stringValue": "lookup"])
            #expect(attrs(tool)["gen_ai.tool.call.arguments"] == ["stringValue": "{\"q\":1}"])
            #expect(tool["status"] == ["code": 2, "message": "Error running tool"])
            #expect(agent["status"] == ["code": 1])
            let handoff = try #require(spans.first { $0["name"] == "handoff Project Manager -> Researcher" })
            #expect(attrs(handoff)["gen_ai.handoff.from_agent"] == ["stringValue": "Project Manager"])
            #expect(attrs(handoff)["gen_ai.handoff.to_agent"] == ["stringValue": "Researcher"])
            let task = try #require(spans.first { $0["name"] == "task" })
            #expect(task["parentSpanId"] == nil)
            #expect(attrs(task)["bridge.data.sdk_span_type"] == ["stringValue": "task"])
            #expect(attrs(task)["bridge.workflow_name"] == ["stringValue": "bridge tasks"])
            #expect(attrs(task)["bridge.metadata.workspace_id"] == ["stringValue": "ws-1"])
            #expect(spans.contains { $0["name"] == "turn" && attrs($0)["bridge.data.agent_name"] != nil })
            #expect(
                try await fx.count("SELECT count(*) FROM bridge.trace_deliveries WHERE exporter = 'otlp'")
                    == fx.traceIds.count)
            #expect(
                try await fx.conn.query("SELECT target FROM bridge.exporters WHERE name = 'otlp'").first?["target"]
                    == server.url("/otel/v1/traces"))
        }
        await fx.conn.close()
    }

    @Test func fileExporterWritesJSONLAndRecordsDeliveries() async throws {
        let fx = try await ExportLedger.make()
        let path = TemporaryPath.unique("bridge-export", suffix: ".jsonl")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pump = try await fx.pump(try FileExporter(path: path))
        try await pump.drain()
        try await pump.drain()  // nothing twice
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try JSONValue.parse(String($0))
        }
        #expect(lines.count == fx.spanIds.count + fx.traceIds.count)
        #expect(Set(lines.filter { $0["object"] == "trace.span" }.compactMap { $0["id"]?.stringValue }) == fx.spanIds)
        for trace in fx.traceIds {
            let t = try #require(lines.firstIndex { $0["id"] == .string(trace) })
            #expect(!lines[..<t].contains { $0["trace_id"] == .string(trace) })
        }
        // The file keeps the SDK export format unchanged (no ingest sanitisation).
        let big = try #require(lines.first { $0["id"] == .string(fx.bigInputSpan) })
        #expect(big["span_data"]?["input"]?.stringValue?.count == 150_010)
        #expect(
            try await fx.conn.query("SELECT target FROM bridge.exporters WHERE name = 'file'").first?["target"] == path)
        #expect(
            try await fx.count(
                "SELECT count(*) FROM bridge.span_deliveries WHERE exporter = 'file' AND status = 'delivered'")
                == fx.spanIds.count)
        await fx.conn.close()
    }

    /// A session with `exporters` on `fx`'s ledger, polling every 20 ms, retrying every 5 ms.
    private func session(_ fx: ExportLedger, _ exporters: [any TraceExporter]) -> ExportSession {
        let url = fx.url
        return ExportSession.start(
            exporters: exporters, connect: { try await TestDatabase.connect(url) },
            options: ExportPumpOptions(sleep: { _ in try await Task.sleep(for: .milliseconds(5)) }),
            pollInterval: .milliseconds(20))
    }

    /// A span that lands while the session runs.
    private func insertLateSpan(_ fx: ExportLedger) async throws {
        try await Ledger(connection: fx.conn).insertSpan(
            SpanRecord(
                id: SpanID.random(), traceId: TraceID(fx.traceIds.first!), parentId: nil, startedAt: Date(),
                endedAt: Date(),
                spanData: ["type": "custom", "name": "late", "data": [:]], error: nil))
    }

    @Test func sessionFlushesWhatLandedWhileItRan() async throws {
        let fx = try await ExportLedger.make(runs: 2)
        try await withStandIn(always: .json([:])) { good, client in
            let path = TemporaryPath.unique("bridge-session", suffix: ".jsonl")
            defer { try? FileManager.default.removeItem(atPath: path) }
            let session = session(
                fx,
                [
                    OpenAITracesExporter(apiKey: "k-123", baseURL: good.url("/v1"), client: client),
                    try FileExporter(path: path),
                ])
            try await insertLateSpan(fx)
            // Healthy exporters end their last drain well before this; it only bounds a stuck test.
            let reports = await session.finish(flushTimeout: .seconds(600))
            let byName = Dictionary(uniqueKeysWithValues: reports.map { ($0.exporter, $0) })
            #expect(byName["openai"]?.backlog == ExportBacklog(traces: 0, spans: 0))
            #expect(byName["openai"]?.stats.deliveredSpans == fx.spanIds.count + 1)
            #expect(byName["openai"]?.leftoverLine == nil && byName["openai"]?.error == nil)
            #expect(byName["file"]?.backlog?.isEmpty == true)
            #expect(byName["file"]?.leftoverLine == nil && byName["file"]?.error == nil)
        }
        await fx.conn.close()
    }

    @Test func sessionReportsWhatIsLeftWhenTheFlushTimesOut() async throws {
        let fx = try await ExportLedger.make(runs: 2)
        try await withStandIn(always: .text("down", status: 503)) { down, client in
            let session = session(fx, [OTLPExporter(endpoint: down.url("/v1/traces"), client: client)])
            try await insertLateSpan(fx)
            // The pump is connected and retrying (however slow the machine) before the flush starts.
            try await eventually("the OTLP pump tries the receiver", within: .seconds(300)) { !down.requests.isEmpty }
            // The receiver stays down, so the flush always waits the whole timeout.
            let reports = await session.finish(flushTimeout: .seconds(1))
            let otlp = try #require(reports.first)
            #expect(otlp.backlog == ExportBacklog(traces: 2, spans: fx.spanIds.count + 1) && otlp.error == nil)
            #expect(
                otlp.leftoverLine?.contains(
                    "\(fx.spanIds.count + 1) spans and 2 traces not yet exported; run `bridge export`") == true)
            #expect(otlp.stats.deliveredSpans == 0)
        }
        await fx.conn.close()
    }
}
