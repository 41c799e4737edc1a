import BridgeCore
import BridgeHTTP
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeTracing

/// OTLP encodings (protobuf, JSON, gzip) and what the exporter does with each answer a
/// receiver can give. Every body is decoded by the official definitions (`OTLPDecoder`).
@Suite(
    .enabled(
        if: TestDatabase.isAvailable && OTLPDecoder.isAvailable,
        "needs BRIDGE_TEST_DATABASE_URL and BRIDGE_OTEL_PYTHON (scripts/test.sh)"))
struct OTLPExportTests {
    func pump(_ fx: ExportLedger, _ env: [String: String], client: HTTPClient) async throws -> ExportPump {
        try await fx.pump(try #require(try OTLPExporter.fromEnvironment(Environment(env), client: client)))
    }

    @Test(arguments: [("http/protobuf", "gzip"), ("http/json", "gzip"), ("http/json", "none")])
    func everyEncodingCarriesTheSameSpans(proto: String, compression: String) async throws {
        let fx = try await ExportLedger.make(runs: 2)
        try await withStandIn(always: .json([:])) { server, client in
            let p = try await pump(
                fx,
                [
                    "OTEL_EXPORTER_OTLP_ENDPOINT": server.baseURL, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": proto,
                    "OTEL_EXPORTER_OTLP_COMPRESSION": compression,
                ], client: client)
            let stats = try await p.drain()
            #expect(stats.deliveredSpans == fx.spanIds.count && stats.rejectedSpans == 0)
            let requests = server.requests
            let type = proto == "http/json" ? "application/json" : "application/x-protobuf"
            #expect(
                requests.allSatisfy {
                    $0.header("Content-Type") == type
                        && $0.header("Content-Encoding") == (compression == "gzip" ? "gzip" : nil)
                })
            let spans = OTLPDecoder.spans(try await OTLPDecoder.decode(requests, signal: "traces"))
            #expect(
                Set(
                    spans.compactMap {
                        OTLPDecoder.attributes($0)["openai.agents.span_id"]?["stringValue"]?.stringValue
                    })
                    == fx.spanIds)
            let chat = try #require(
                spans.first {
                    OTLPDecoder.attributes($0)["openai.agents.span_id"]?["stringValue"]?.stringValue == fx.bigInputSpan
                })
            #expect(OTLPDecoder.attributes(chat)["llm.token_count.total"] == ["intValue": "10"])
            #expect(OTLPDecoder.attributes(chat)["input.value"]?["stringValue"]?.stringValue?.count == 150_010)
        }
        await fx.conn.close()
    }

    @Test func unsupportedMediaTypeStopsWithOneLineNamingTheVariable() async throws {
        let fx = try await ExportLedger.make(runs: 1)
        try await withStandIn(always: .text("Unsupported content type: application/x-protobuf", status: 415)) {
            server, client in
            let p = try await pump(fx, ["OTEL_EXPORTER_OTLP_ENDPOINT": server.baseURL], client: client)
            let error = await #expect(throws: ExportFatalError.self) { try await p.drain() }
            let line = error?.description ?? ""
            #expect(
                line.contains("HTTP 415") && line.contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/json")
                    && !line.contains("\n"), "\(line)")
            #expect(server.requests.count == 1)
            #expect(try await fx.count("SELECT count(*) FROM bridge.span_deliveries") == 0)
            #expect(try await fx.count("SELECT count(*) FROM bridge.trace_deliveries") == 0)
        }
        await fx.conn.close()
    }

    @Test func payloadTooLargeSplitsAndTheTraceIsNotDelivered() async throws {
        let fx = try await ExportLedger.make(runs: 2)
        // Only the 150 kB span is too large on its own.
        let tooLarge: TestHTTPServer.Handler = { r in
            r.body.count > 100_000 ? .text("too large", status: 413) : .json([:])
        }
        try await withStandIn(answering: tooLarge) { server, client in
            let p = try await pump(fx, ["OTEL_EXPORTER_OTLP_ENDPOINT": server.baseURL], client: client)
            try await fx.expectOnlyTheBigSpanRejected(try await p.drain(), why: "HTTP 413")
            // Its trace is rejected (with why); the other trace, whose spans all arrived, is delivered.
            let traces = try await fx.conn.query(
                """
                SELECT d.trace_id, d.status, d.error, (SELECT trace_id FROM bridge.spans WHERE span_id = \(fx.bigInputSpan)) AS big
                FROM bridge.trace_deliveries d WHERE d.exporter = 'otlp'
                """)
            #expect(traces.count == 2)
            for t in traces {
                if t["trace_id"] == t["big"] {
                    #expect(
                        t["status"] == "rejected"
                            && t["error"]?.contains("spans of this trace were rejected: HTTP 413") == true)
                } else {
                    #expect(t["status"] == "delivered")
                }
            }
        }
        await fx.conn.close()
    }

    @Test func aRefusedBatchIsProbedOnceBeforeAnySplit() async throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        // The endpoint refuses everything: one batch, one empty probe, then a fatal error.
        let fx = try await ExportLedger.make(runs: 2)
        let wrong = try TestHTTPServer { _ in .text("bad request", status: 400) }
        defer { wrong.stop() }
        let p = try await pump(fx, ["OTEL_EXPORTER_OTLP_ENDPOINT": wrong.baseURL], client: client)
        let error = await #expect(throws: ExportFatalError.self) { try await p.drain() }
        #expect(error?.description.contains("refuses even an empty request") == true, "\(error?.description ?? "")")
        #expect(wrong.requests.count == 2)
        #expect(try await fx.count("SELECT count(*) FROM bridge.span_deliveries") == 0)
        await fx.conn.close()

        // The payload is the problem (the probe passes): the batch is split to the one span.
        let fx2 = try await ExportLedger.make(runs: 2)
        let marker = Array(String(repeating: "x", count: 64).utf8)
        let picky = try TestHTTPServer { r in
            r.body.count >= marker.count
                && (0...(r.body.count - marker.count)).contains {
                    r.body[$0..<($0 + marker.count)].elementsEqual(marker)
                }
                ? .text("bad span", status: 400) : .json([:])
        }
        defer { picky.stop() }
        let p2 = try await pump(fx2, ["OTEL_EXPORTER_OTLP_ENDPOINT": picky.baseURL], client: client)
        try await fx2.expectOnlyTheBigSpanRejected(try await p2.drain(), why: "HTTP 400")
        await fx2.conn.close()
    }

    /// A partial success, in either encoding a receiver may answer in: OTLP does not say which
    /// spans were dropped, so the batch is delivered and every row keeps the message.
    @Test(arguments: ["application/x-protobuf", "application/json"])
    func partialSuccessIsRecordedPerSpan(answerType: String) async throws {
        let fx = try await ExportLedger.make(runs: 1)
        var partial = ProtobufWriter()
        partial.message(1) { p in
            p.int(1, 2)
            p.string(2, "2 spans too old")
        }
        let protobuf = partial.bytes
        let partialSuccess: TestHTTPServer.Handler = { _ in
            answerType == "application/json"
                ? .json(["partialSuccess": ["rejectedSpans": "2", "errorMessage": "2 spans too old"]])
                : TestHTTPResponse(status: 200, headers: [("Content-Type", answerType)], body: protobuf)
        }
        try await withStandIn(answering: partialSuccess) { server, client in
            let p = try await pump(fx, ["OTEL_EXPORTER_OTLP_ENDPOINT": server.baseURL], client: client)
            try await p.drain()
            #expect(
                try await fx.count(
                    "SELECT count(*) FROM bridge.span_deliveries WHERE status = 'delivered' AND error LIKE '%dropped 2 of%2 spans too old%'"
                ) == fx.spanIds.count)
        }
        await fx.conn.close()
    }

    @Test func truncatedNULAndBrokenUTF8ArriveAsValidProtobuf() async throws {
        try await withStandIn(always: .json([:])) { server, client in
            let ex = try #require(
                try OTLPExporter.fromEnvironment(
                    Environment([
                        "OTEL_EXPORTER_OTLP_ENDPOINT": server.baseURL, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "12",
                    ]), client: client))
            let broken = String(decoding: [0x61, 0xFF, 0xFE, 0x62, 0xC3], as: UTF8.self)  // invalid bytes become U+FFFD
            let record = SpanRecord(
                id: SpanID.random(), traceId: TraceID.forTask("nul", attempt: 1), parentId: nil, startedAt: Date(),
                endedAt: Date(),
                spanData: [
                    "type": "function", "name": .string("t\u{0}ool"),
                    "input": .string("é\u{0}" + broken + String(repeating: "é", count: 40)),
                    "output": .string(broken), "mcp_data": ["server": "docs"], "call_id": "call_7",
                ],
                error: nil)
            let trace = TraceRecord(
                id: record.traceId, workflowName: "w\u{0}", groupId: "g-1",
                metadata: ["task_id": "t-1", "workspace_id": "ws"])
            #expect(await ex.send(ExportBatch(spans: [ExportSpan(record: record, trace: trace)])) == .delivered())
            let span = try #require(
                OTLPDecoder.spans(try await OTLPDecoder.decode(server.requests, signal: "traces")).first)
            let a = OTLPDecoder.attributes(span)
            #expect(span["name"]?.stringValue == "execute_tool t\u{0}ool")
            let input = try #require(a["input.value"]?["stringValue"]?.stringValue)
            #expect(input.unicodeScalars.count == 12 && input.hasPrefix("é\u{0}a\u{FFFD}"))
            #expect(a["output.value"]?["stringValue"]?.stringValue == broken)
            #expect(
                a["gen_ai.tool.call.id"] == ["stringValue": "call_7"] && a["mcp.server.name"] == ["stringValue": "docs"]
            )
            #expect(
                a["gen_ai.conversation.id"] == ["stringValue": "g-1"] && a["bridge.task.id"] == ["stringValue": "t-1"])
            #expect(
                a["bridge.workspace.id"] == ["stringValue": "ws"]
                    && a["openinference.span.kind"] == ["stringValue": "TOOL"])
        }
    }
}
