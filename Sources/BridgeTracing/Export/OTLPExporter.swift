import BridgeTraceModel
import BridgeCore
import BridgeHTTP
import FoundationEssentials

/// Sends spans to an OpenTelemetry collector or backend (Langfuse, Jaeger, Tempo, Logfire)
/// over OTLP/HTTP with JSON bodies, named after the GenAI semantic conventions.
///
/// - Ids: `traceId` is the 32 hex characters of `trace_…`; `spanId`/`parentSpanId` the first
///   16 of the 24 hex characters of `span_…` (the full SDK id is kept as `openai.agents.span_id`).
/// - Names: `invoke_agent {agent}`, `chat {model}` (kind CLIENT), `execute_tool {tool}`,
///   `agent_handoff`, and the custom span's name (`task`, `turn`) with its data as `bridge.data.*`.
/// - Trace objects have no OTLP counterpart: the workflow name, group id and metadata ride on
///   the trace's root span (`bridge.workflow_name`, `bridge.group_id`, `bridge.metadata.*`),
///   and the trace object is acknowledged with the batch that carried it.
/// - Answers: 429, 502, 503, 504 retried honouring `Retry-After` (so are other 5xx and transport
///   failures: a collector's outage must not lose spans); 401/403/404 fatal; other 4xx reject.
///   `partialSuccess.rejectedSpans > 0` does not say which spans were dropped, so the pump
///   records the whole batch as delivered with the receiver's message (all of it rejected when
///   every span was dropped).
public struct OTLPExporter: TraceExporter {
    public let name = "otlp"
    public let endpoint: String
    let headers: [(String, String)]
    let client: HTTPClient
    /// The resource's `service.name` (`OTEL_SERVICE_NAME`).
    public var serviceName = "bridge"
    public var batchSize = 512
    /// Deadline of one request.
    public var requestTimeout: Duration = .seconds(30)

    public init(endpoint: String, headers: [(String, String)] = [], client: HTTPClient) {
        self.endpoint = endpoint
        self.headers = headers
        self.client = client
    }

    /// The endpoint without user info or query (which may hold credentials).
    public var target: String {
        guard var c = URLComponents(string: endpoint) else { return endpoint }
        c.user = nil
        c.password = nil
        c.query = nil
        return c.string ?? endpoint
    }

    /// Header values are treated as secrets (they usually carry API keys).
    public var secrets: [String] { headers.map(\.1).filter { $0.count >= 3 } }

    /// Configured by `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (+ `/v1/traces`); headers from `OTEL_EXPORTER_OTLP_HEADERS`
    /// and `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (which wins per key); `OTEL_SERVICE_NAME`.
    public static func fromEnvironment(_ env: Environment, client: HTTPClient) -> OTLPExporter? {
        guard let (endpoint, headers) = configuration(signal: "traces", env) else { return nil }
        var exporter = OTLPExporter(endpoint: endpoint, headers: headers, client: client)
        if let service = env["OTEL_SERVICE_NAME"] { exporter.serviceName = service }
        return exporter
    }

    /// Where OTLP/HTTP sends `signal` (`traces`, `metrics`), as the OpenTelemetry SDKs read the
    /// environment: `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` as is, else `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// + `/v1/<signal>`; headers from `OTEL_EXPORTER_OTLP_HEADERS`, overridden per key by
    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS`. Nil when no endpoint is set.
    public static func configuration(signal: String, _ env: Environment) -> (endpoint: String, headers: [(String, String)])? {
        let upper = signal.uppercased()
        let endpoint: String
        if let e = env["OTEL_EXPORTER_OTLP_\(upper)_ENDPOINT"] {
            endpoint = e
        } else if var base = env["OTEL_EXPORTER_OTLP_ENDPOINT"] {
            while base.hasSuffix("/") { base.removeLast() }
            endpoint = base + "/v1/" + signal
        } else {
            return nil
        }
        var headers = parseHeaders(env["OTEL_EXPORTER_OTLP_HEADERS"] ?? "")
        for (k, v) in parseHeaders(env["OTEL_EXPORTER_OTLP_\(upper)_HEADERS"] ?? "") {
            headers.removeAll { $0.0.lowercased() == k.lowercased() }
            headers.append((k, v))
        }
        return (endpoint, headers)
    }

    /// `k=v,k2=v2` with percent-encoded values; entries without `=` or with an empty key are skipped.
    public static func parseHeaders(_ text: String) -> [(String, String)] {
        text.split(separator: ",").compactMap { entry in
            guard let eq = entry.firstIndex(of: "=") else { return nil }
            let key = entry[..<eq].trimmingCharacters(in: .whitespaces)
            let raw = entry[entry.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { return nil }
            return (key.removingPercentEncoding ?? key, raw.removingPercentEncoding ?? raw)
        }
    }

    public func send(_ batch: ExportBatch) async -> ExportResult {
        if batch.spans.isEmpty { return .delivered() }  // trace objects only: nothing to send
        var h = HTTPHeaders(headers)
        h.replaceOrAdd("Content-Type", "application/json")
        var request = HTTPRequest.postJSON(endpoint, body(batch), headers: h)
        request.deadline = .now + requestTimeout
        let result: ExportResult
        do {
            let response = try await client.execute(request)
            result = Self.interpret(response)
        } catch {
            result = OpenAITracesExporter.classify(error)
        }
        return OpenAITracesExporter.scrubbed(result, secrets: secrets)
    }

    static func interpret(_ response: HTTPResponse) -> ExportResult {
        guard (200..<300).contains(response.status) else {
            return OpenAITracesExporter.classify(response, retriable: { $0 == 429 || $0 >= 500 })
        }
        guard let partial = (try? response.json())?["partialSuccess"] else { return .delivered() }
        let rejected = partial["rejectedSpans"].flatMap { $0.intValue ?? $0.stringValue.flatMap { Int($0) } } ?? 0
        let message = partial["errorMessage"]?.stringValue ?? ""
        if rejected > 0 { return .partial(rejectedSpans: rejected, message: message.isEmpty ? "(no message)" : message) }
        return .delivered(warning: message.isEmpty ? nil : "receiver warning: \(message)")
    }

    // MARK: - Encoding

    /// The `ExportTraceServiceRequest` JSON for `batch`'s spans.
    public func body(_ batch: ExportBatch) -> JSONValue {
        [
            "resourceSpans": [[
                "resource": ["attributes": .array([Self.attribute("service.name", .string(serviceName))])],
                "scopeSpans": [[
                    "scope": ["name": "bridge"],
                    "spans": .array(batch.spans.map(Self.span)),
                ]],
            ]],
        ]
    }

    /// One OTLP span.
    public static func span(_ s: ExportSpan) -> JSONValue {
        let r = s.record
        let data = r.spanData.objectValue ?? [:]
        let type = data["type"]?.stringValue ?? ""
        var attrs: [(String, JSONValue)] = [("openai.agents.span_id", .string(r.id)), ("openai.agents.span_type", .string(type))]
        var name = type.isEmpty ? "span" : type
        var kind = 1  // SPAN_KIND_INTERNAL
        func str(_ k: String) -> String? { data[k]?.stringValue }
        switch r.kind {
        case .agent:
            let agent = str("name") ?? ""
            name = "invoke_agent \(agent)"
            attrs += [("gen_ai.operation.name", "invoke_agent"), ("gen_ai.agent.name", .string(agent))]
            if let t = data["tools"], !t.isNull { attrs.append(("bridge.agent.tools", t)) }
            if let h = data["handoffs"], !h.isNull { attrs.append(("bridge.agent.handoffs", h)) }
            if let o = str("output_type") { attrs.append(("bridge.agent.output_type", .string(o))) }
        case .generation, .response:
            let model = str("model")
            name = model.map { "chat \($0)" } ?? "chat"
            kind = 3  // SPAN_KIND_CLIENT
            attrs += [("gen_ai.operation.name", "chat"), ("gen_ai.provider.name", "openai")]
            if let model { attrs.append(("gen_ai.request.model", .string(model))) }
            if let id = str("response_id") { attrs.append(("gen_ai.response.id", .string(id))) }
            if let usage = data["usage"]?.objectValue {
                if let n = usage["input_tokens"], n.doubleValue != nil { attrs.append(("gen_ai.usage.input_tokens", n)) }
                if let n = usage["output_tokens"], n.doubleValue != nil { attrs.append(("gen_ai.usage.output_tokens", n)) }
            }
            if let input = data["input"], !input.isNull { attrs.append(("gen_ai.input.messages", .string(input.compact))) }
            if let output = data["output"], !output.isNull { attrs.append(("gen_ai.output.messages", .string(output.compact))) }
            if let config = data["model_config"], config != [:], !config.isNull {
                attrs.append(("bridge.model_config", .string(config.compact)))
            }
        case .function:
            let tool = str("name") ?? ""
            name = "execute_tool \(tool)"
            attrs += [("gen_ai.operation.name", "execute_tool"), ("gen_ai.tool.name", .string(tool)), ("gen_ai.tool.type", "function")]
            if let input = data["input"], !input.isNull { attrs.append(("gen_ai.tool.call.arguments", .string(input.templateText))) }
            if let output = data["output"], !output.isNull { attrs.append(("gen_ai.tool.call.result", .string(output.templateText))) }
        case .handoff:
            name = "agent_handoff"
            if let from = str("from_agent") { attrs += [("gen_ai.handoff.from_agent", .string(from)), ("gen_ai.agent.name", .string(from))] }
            if let to = str("to_agent") { attrs.append(("gen_ai.handoff.to_agent", .string(to))) }
        case .custom:
            name = str("name") ?? "custom"
            flatten(data["data"] ?? .null, prefix: "bridge.data", into: &attrs)
        case .guardrail, .mcpTools, .transcription, .speech, .speechGroup, nil:
            for (k, v) in data.sorted(by: { $0.key < $1.key }) where k != "type" {
                flatten(v, prefix: "bridge.\(type).\(k)", into: &attrs)
            }
        }
        if r.parentId == nil {
            attrs.append(("bridge.workflow_name", .string(s.trace.workflowName)))
            if let g = s.trace.groupId { attrs.append(("bridge.group_id", .string(g))) }
            for (k, v) in s.trace.metadata.sorted(by: { $0.key < $1.key }) { attrs.append(("bridge.metadata.\(k)", .string(v))) }
        }
        var out: [String: JSONValue] = [
            "traceId": .string(TraceID.otlp(r.traceId)),
            "spanId": .string(SpanID.otlp(r.id)),
            "name": .string(name),
            "kind": .number(Double(kind)),
            "startTimeUnixNano": .string(unixNanos(r.startedAt)),
            "endTimeUnixNano": .string(unixNanos(r.endedAt)),
            "attributes": .array(attrs.map { attribute($0.0, $0.1) }),
        ]
        if let p = r.parentId { out["parentSpanId"] = .string(SpanID.otlp(p)) }
        if let e = r.error, !e.isNull {
            out["status"] = ["code": 2, "message": .string(e["message"]?.stringValue ?? "error")]
            if let d = e["data"], !d.isNull { out["attributes"] = .array((out["attributes"]?.arrayValue ?? []) + [attribute("bridge.error.data", .string(d.compact))]) }
        }
        return .object(out)
    }

    /// Nested objects become dotted keys; arrays of scalars stay arrays; others become JSON text.
    static func flatten(_ v: JSONValue, prefix: String, into attrs: inout [(String, JSONValue)]) {
        switch v {
        case .null: return
        case .object(let o):
            for (k, child) in o.sorted(by: { $0.key < $1.key }) { flatten(child, prefix: "\(prefix).\(k)", into: &attrs) }
        default: attrs.append((prefix, v))
        }
    }

    /// Unix time in nanoseconds as a decimal string (microsecond precision, as stored).
    public static func unixNanos(_ d: Date) -> String {
        let micros = Int64((d.timeIntervalSince1970 * 1_000_000).rounded())
        return String(micros * 1_000)
    }

    /// `{"key": k, "value": {"stringValue"|"intValue"|"doubleValue"|"boolValue"|"arrayValue": …}}`.
    static func attribute(_ key: String, _ value: JSONValue) -> JSONValue {
        ["key": .string(key), "value": anyValue(value)]
    }

    static func anyValue(_ v: JSONValue) -> JSONValue {
        switch v {
        case .string(let s): return ["stringValue": .string(s)]
        case .bool(let b): return ["boolValue": .bool(b)]
        case .number(let n):
            // OTLP JSON carries int64 as a decimal string, so exact integers stay exact.
            if let i = n.int64 { return ["intValue": .string(String(i))] }
            if n.isInteger { return ["stringValue": .string(n.text)] }
            return ["doubleValue": .number(n.double)]
        case .array(let a) where a.allSatisfy({ $0.objectValue == nil && $0.arrayValue == nil }):
            return ["arrayValue": ["values": .array(a.map(anyValue))]]
        case .null: return ["stringValue": ""]
        default: return ["stringValue": .string(v.compact)]
        }
    }
}
