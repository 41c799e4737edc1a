import BridgeCore
import BridgeHTTP
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeTracing

@Suite struct OpenAISanitizerTests {
    func span(_ data: JSONValue) -> JSONValue {
        SpanRecord(
            id: SpanID("span_" + String(repeating: "a", count: 24)),
            traceId: TraceID("trace_" + String(repeating: "b", count: 32)),
            parentId: nil, startedAt: Date(timeIntervalSince1970: 1), endedAt: Date(timeIntervalSince1970: 2),
            spanData: data, error: nil
        ).exportJSON
    }

    @Test func smallFieldsAreUntouched() {
        let item = span(["type": "function", "name": "f", "input": "{}", "output": "ok", "mcp_data": nil])
        #expect(OpenAISanitizer.sanitize(item) == item)
        let trace: JSONValue = [
            "object": "trace", "id": "trace_x", "workflow_name": "w", "group_id": nil, "metadata": [:],
        ]
        #expect(OpenAISanitizer.sanitize(trace) == trace)
        // bridge's notes are not SDK fields: the ingest gets the SDK's shape.
        let noted = span([
            "type": "function", "name": "f", "input": "{}", "output": "ok", "mcp_data": nil, "call_id": "call_1",
            "text_replaced": true,
        ])
        #expect(OpenAISanitizer.sanitize(noted) == item)
    }

    @Test func longStringsAreCutToTheLimitWithTheSuffix() {
        let long = String(repeating: "ab\"", count: 50_000)  // 150,000 characters, 200,002 bytes of JSON
        let out = OpenAISanitizer.sanitize(
            span(["type": "function", "name": "f", "input": .string(long), "output": nil]))
        let input = out["span_data"]?["input"]?.stringValue ?? ""
        #expect(input.hasSuffix("... [truncated]"))
        #expect(long.hasPrefix(String(input.dropLast(15))))
        #expect(OpenAISanitizer.size(.string(input)) <= 100_000)
        #expect(OpenAISanitizer.size(.string(input)) > 99_000)
        // Multi-byte characters are counted as UTF-8 and never split.
        let emoji = String(repeating: "🙂", count: 40_000)
        let cut = OpenAISanitizer.truncateField(.string(emoji)).stringValue ?? ""
        #expect(OpenAISanitizer.size(.string(cut)) <= 100_000)
        #expect(cut.dropLast(15).allSatisfy { $0 == "🙂" })
    }

    @Test func largeMessageListsKeepTheirShape() {
        let messages: JSONValue = .array(
            (0..<5).map { i in ["role": "user", "content": .string(String(repeating: "m", count: 30_000 + i))] })
        let out = OpenAISanitizer.truncateField(messages)
        #expect(OpenAISanitizer.size(out) <= 100_000)
        let kept = out.arrayValue ?? []
        // As in the SDK: the largest member is cut to what is left of the budget, which can be
        // nothing at all (an empty object) before the next one is cut to fit.
        #expect(kept.count == 5 && kept.filter { $0 != [:] }.allSatisfy { $0["role"] == "user" })
        #expect(kept.filter { $0 == [:] }.count == 1)
        #expect(kept.contains { $0["content"]?.stringValue?.hasSuffix("... [truncated]") == true })
        #expect(OpenAISanitizer.truncateField(["a": 1]) == ["a": 1])
    }

    @Test func usageIsKeptOnlyOnGenerationsReshaped() {
        let usage: JSONValue = [
            "requests": 1, "input_tokens": 10, "output_tokens": 4, "total_tokens": 14,
            "input_tokens_details": ["cached_tokens": 2], "output_tokens_details": ["reasoning_tokens": 0],
        ]
        let gen = OpenAISanitizer.sanitize(
            span(["type": "generation", "input": [], "output": [], "model": "m", "model_config": [:], "usage": usage]))
        #expect(
            gen["span_data"]?["usage"] == [
                "input_tokens": 10, "output_tokens": 4,
                "details": [
                    "requests": 1, "total_tokens": 14, "input_tokens_details": ["cached_tokens": 2],
                    "output_tokens_details": ["reasoning_tokens": 0],
                ],
            ])
        let plain = OpenAISanitizer.sanitize(
            span(["type": "generation", "usage": ["input_tokens": 1, "output_tokens": 2]]))
        #expect(plain["span_data"]?["usage"] == ["input_tokens": 1, "output_tokens": 2])
        let broken = OpenAISanitizer.sanitize(
            span(["type": "generation", "usage": ["input_tokens": "x", "output_tokens": 2]]))
        #expect(broken["span_data"]?["usage"] == nil)
        let nullUsage = OpenAISanitizer.sanitize(span(["type": "generation", "usage": nil]))
        #expect(nullUsage["span_data"]?["usage"] == .null)
        let response = OpenAISanitizer.sanitize(span(["type": "response", "response_id": "r", "usage": usage]))
        #expect(response["span_data"] == ["type": "response", "response_id": "r"])
        // Custom task/turn data is free-form: like the SDK, its nested usage stays.
        let task: JSONValue = [
            "type": "custom", "name": "task", "data": ["sdk_span_type": "task", "name": "w", "usage": ["requests": 1]],
        ]
        #expect(OpenAISanitizer.sanitize(span(task))["span_data"] == task)
    }
}

@Suite struct ExporterConfigTests {
    @Test func openAIFromEnvironment() {
        let client = HTTPClient()
        defer { client.shutdown() }
        #expect(OpenAITracesExporter.fromEnvironment(Environment([:]), client: client) == nil)
        let e = OpenAITracesExporter.fromEnvironment(
            Environment([
                "OPENAI_API_KEY": "sk-model", "OPENAI_TRACING_API_KEY": "sk-trace",
                "OPENAI_BASE_URL": "http://h/v1/",
            ]), client: client)
        #expect(e?.endpoint == "http://h/v1/traces/ingest")
        #expect(e?.secrets == ["sk-trace"])
        #expect(
            OpenAITracesExporter.fromEnvironment(Environment(["OPENAI_API_KEY": "k"]), client: client)?.endpoint
                == "https://api.openai.com/v1/traces/ingest")
        #expect(
            OpenAITracesExporter.fromEnvironment(
                Environment(["OPENAI_API_KEY": "k", "OPENAI_AGENTS_DISABLE_TRACING": "0"]), client: client) != nil)
    }

    @Test(arguments: ["1", "true", "TRUE"])
    func theSDKsSwitchTurnsTheOpenAIExporterOff(_ off: String) {
        let client = HTTPClient()
        defer { client.shutdown() }
        #expect(
            OpenAITracesExporter.fromEnvironment(
                Environment(["OPENAI_API_KEY": "k", "OPENAI_AGENTS_DISABLE_TRACING": off]), client: client) == nil)
    }

    @Test(arguments: [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc: expected http/protobuf"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "br",
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION=br: expected gzip or none"
        ),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "-1", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=-1"),
    ])
    func aBadOTLPVariableIsBadInputNamingIt(_ bad: (key: String, value: String, says: String)) {
        let client = HTTPClient()
        defer { client.shutdown() }
        let error = #expect(throws: OTLPConfigurationError.self) {
            try OTLPExporter.fromEnvironment(
                Environment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", bad.key: bad.value]), client: client)
        }
        #expect(
            error?.description.hasPrefix(bad.says) == true && error?.exitStatus == .badInput,
            "\(error?.description ?? "")")
    }

    @Test func otlpFromEnvironment() throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        #expect(try OTLPExporter.fromEnvironment(Environment([:]), client: client) == nil)
        let base = try OTLPExporter.fromEnvironment(
            Environment(["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"]), client: client)
        #expect(base?.endpoint == "http://c:4318/v1/traces" && base?.serviceName == "bridge")
        #expect(
            base?.encoding == .protobuf && base?.compression == OTLPCompression.none && base?.valueLengthLimit == nil)
        // The signal's own variable wins; values are case-insensitive.
        let json = try OTLPExporter.fromEnvironment(
            Environment([
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "HTTP/JSON", "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
                "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "100", "OTEL_SERVICE_NAME": "svc", "PHOENIX_PROJECT_NAME": "proj",
            ]), client: client)
        #expect(json?.encoding == .json && json?.compression == .gzip && json?.valueLengthLimit == 100)
        #expect(json?.resource.first { $0.key == "openinference.project.name" }?.value == .string("proj"))
        let exact = try OTLPExporter.fromEnvironment(
            Environment([
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://u:p@x/api/public/otel/v1/traces?k=1",
            ]),
            client: client)
        #expect(exact?.endpoint == "https://u:p@x/api/public/otel/v1/traces?k=1")
        #expect(exact?.target == "https://x/api/public/otel/v1/traces")
        let h = OTLPExporter.parseHeaders(" Authorization=Basic%20abc%3D%3D , x=1=2,novalue, =skip")
        #expect(h.map(\.0) == ["Authorization", "x"] && h.map(\.1) == ["Basic abc==", "1=2"])
    }

    @Test func idsAndTimes() {
        #expect(TraceID("trace_0123456789abcdef0123456789abcdef").otlp == "0123456789abcdef0123456789abcdef")
        #expect(SpanID("span_0123456789abcdef01234567").otlp == "0123456789abcdef")
        #expect(TraceID("odd").otlp.count == 32 && SpanID("odd").otlp.count == 16)
        #expect(OTLPExporter.unixNanos(Date(timeIntervalSince1970: 1_700_000_000.123456)) == "1700000000123456000")
    }

    @Test func conventionsChooseTheAttributeSets() throws {
        let client = HTTPClient()
        defer { client.shutdown() }
        let record = SpanRecord(
            id: SpanID("span_" + String(repeating: "a", count: 24)),
            traceId: TraceID("trace_" + String(repeating: "b", count: 32)),
            parentId: nil, startedAt: Date(timeIntervalSince1970: 1), endedAt: Date(timeIntervalSince1970: 2),
            spanData: [
                "type": "generation", "model": "m", "input": [["role": "user", "content": "hi"]],
                "output": [["role": "assistant", "content": "yo"]], "model_config": [:],
                "usage": ["input_tokens": 3, "output_tokens": 4],
            ], error: nil)
        let span = ExportSpan(
            record: record, trace: TraceRecord(id: record.traceId, workflowName: "w", groupId: "g", metadata: [:]))
        func keys(_ conventions: String?) throws -> Set<String> {
            var env = ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"]
            env["BRIDGE_OTLP_CONVENTIONS"] = conventions
            let ex = try #require(try OTLPExporter.fromEnvironment(Environment(env), client: client))
            return Set(ex.span(span).attributes.map(\.key))
        }
        let both = try keys(nil)
        #expect(
            both.isSuperset(of: [
                "gen_ai.usage.input_tokens", "llm.token_count.prompt", "input.value", "gen_ai.input.messages",
                "llm.input_messages.0.message.content", "openinference.span.kind", "gen_ai.conversation.id",
                "session.id",
            ]))
        let genai = try keys("genai")
        #expect(
            genai.contains("gen_ai.usage.input_tokens")
                && !genai.contains { $0.hasPrefix("llm.") || $0.hasPrefix("input.") || $0.hasPrefix("openinference.") })
        let oi = try keys("OpenInference")
        #expect(oi.contains("llm.token_count.prompt") && !oi.contains { $0.hasPrefix("gen_ai.") })
        #expect(genai.contains("openai.agents.span_id") && oi.contains("openai.agents.span_id"))
        #expect(throws: OTLPConfigurationError.self) { try keys("all") }
    }

    /// OpenInference's flattened messages from Responses items: a call's id is its `call_id`
    /// (what the output's `tool_call_id` names), not the item's own `id`.
    @Test func responsesItemsFlattenIntoToolCallsAndToolMessages() {
        var attrs: [OTLPAttribute] = []
        OTLPExporter.messages(
            [
                ["role": "user", "content": "hi"],
                [
                    "type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "lookup",
                    "arguments": "{\"q\":1}", "status": "completed",
                ],
                ["type": "function_call_output", "call_id": "call_1", "output": "found"],
            ], prefix: "llm.input_messages", into: &attrs)
        let flat = Dictionary(attrs.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        let p = "llm.input_messages"
        #expect(flat["\(p).0.message.role"] == .string("user") && flat["\(p).0.message.content"] == .string("hi"))
        #expect(flat["\(p).1.message.role"] == .string("assistant"))
        #expect(flat["\(p).1.message.tool_calls.0.tool_call.id"] == .string("call_1"))
        #expect(flat["\(p).1.message.tool_calls.0.tool_call.function.name"] == .string("lookup"))
        #expect(flat["\(p).1.message.tool_calls.0.tool_call.function.arguments"] == .string("{\"q\":1}"))
        #expect(flat["\(p).2.message.role"] == .string("tool"))
        #expect(flat["\(p).2.message.tool_call_id"] == .string("call_1"))
        #expect(flat["\(p).2.message.content"] == .string("found"))
    }

    @Test func gzipRoundTripsAndTruncationKeepsWholeCharacters() {
        let text = Array(String(repeating: "bridge span ", count: 1000).utf8)
        let packed = Gzip.compress(text)
        #expect(packed.count < text.count / 10 && packed.prefix(2) == [0x1F, 0x8B])
        #expect(Gzip.decompress(packed) == text)
        #expect(Gzip.decompress(Array("not gzip".utf8)) == nil)
        #expect(OTLPValue.string("ééé€").truncated(to: 2) == .string("éé"))
        #expect(OTLPValue.array([.string("abcd"), .int(5)]).truncated(to: 3) == .array([.string("abc"), .int(5)]))
        #expect(OTLPValue.string("abc").truncated(to: nil) == .string("abc"))
    }

    @Test func protobufWireFormat() {
        var w = ProtobufWriter()
        w.int(1, 300)
        w.string(2, "hi")
        w.int(3, -1)
        w.bool(4, false, always: true)
        w.fixed64(5, 1)
        #expect(
            w.bytes == [0x08, 0xAC, 0x02, 0x12, 0x02, 0x68, 0x69, 0x18] + [UInt8](repeating: 0xFF, count: 9) + [
                0x01, 0x20, 0x00,
                0x29, 1, 0, 0, 0, 0, 0, 0, 0,
            ])
        let fields = ProtobufReader.fields(w.bytes) ?? []
        #expect(fields.map(\.0) == [1, 2, 3, 4, 5])
        #expect(fields[0].1.int64 == 300 && fields[1].1.text == "hi" && fields[2].1.int64 == -1)
        #expect(ProtobufReader.fields([0x12, 0x05, 0x68]) == nil)  // length past the end
    }

    @Test func batchHalvesKeepOrder() {
        let t = (0..<3).map { TraceRecord(id: TraceID("trace_\($0)"), workflowName: "w", groupId: nil, metadata: [:]) }
        let s = (0..<4).map { i in
            ExportSpan(
                record: SpanRecord(
                    id: SpanID("span_\(i)"), traceId: "trace_0", parentId: nil, startedAt: Date(), endedAt: Date(),
                    spanData: ["type": "custom"], error: nil), trace: t[0])
        }
        let (a, b) = ExportBatch(traces: t, spans: s).halves()
        #expect(a.traces.map(\.id.text) == ["trace_0", "trace_1", "trace_2"] && a.spans.isEmpty)
        #expect(b.traces.isEmpty && b.spans.map(\.record.id.text) == ["span_0", "span_1", "span_2", "span_3"])
        let (c, d) = b.halves()
        #expect(c.count == 2 && d.count == 2)
    }
}
