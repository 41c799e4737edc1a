import BridgeCore
import BridgeHTTP
import BridgeTraceModel
import FoundationEssentials

/// Sends spans to an OpenTelemetry collector or backend (Phoenix, Langfuse, Jaeger, Tempo,
/// Logfire) over OTLP/HTTP: protobuf by default, JSON on request, gzip when asked; spans named
/// and described by the GenAI semantic conventions plus OpenInference's attributes (see
/// `OTLPSpanMapping`).
///
/// - Ids: `traceId` is the 32 hex characters of `trace_…`; `spanId`/`parentSpanId` the first
///   16 of the 24 hex characters of `span_…` (the full SDK id is kept as `openai.agents.span_id`).
/// - Trace objects have no OTLP counterpart: the workflow name, group id and metadata ride on
///   the trace's root span, and the trace object is acknowledged with the batch that carried it
///   (its delivery row turns `rejected` when any of its spans is rejected).
/// - Answers: 408, 429 and 5xx retried honouring `Retry-After` (so are transport failures: a
///   collector's outage must not lose spans); 401/403/404 fatal; 415 fatal with the protocol
///   variable to change; 413 splits the batch; another 4xx is probed once with an empty request
///   (the pump's `refused`). `partialSuccess.rejectedSpans > 0` does not say which spans were
///   dropped, so the pump records the whole batch as delivered with the receiver's message (all
///   of it rejected when every span was dropped).
public struct OTLPExporter: TraceExporter {
    public let name = "otlp"
    public let endpoint: String
    let headers: [(String, String)]
    let client: HTTPClient
    /// The resource's `service.name` (`OTEL_SERVICE_NAME`).
    public var serviceName = "bridge"
    /// Phoenix's project (`openinference.project.name`): `PHOENIX_PROJECT_NAME`, else the service name.
    public var projectName: String?
    /// More resource attributes (`OTEL_RESOURCE_ATTRIBUTES`).
    public var resourceAttributes: [(String, String)] = []
    public var encoding: OTLPProtocol = .protobuf
    public var compression: OTLPCompression = .none
    /// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` / `OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT`: longer
    /// string values are cut to this many characters; nil: no limit (the SDKs' default).
    public var valueLengthLimit: Int?
    /// `BRIDGE_OTLP_CONVENTIONS`: GenAI, OpenInference or both attribute sets (default both).
    public var conventions: OTLPConventions = .both
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

    /// Configured as the OpenTelemetry SDKs read the environment (see `Configuration`), plus
    /// `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `PHOENIX_PROJECT_NAME` and
    /// `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`. Nil when no endpoint is set; throws
    /// `OTLPConfigurationError` (exit 2) for a value it cannot use.
    public static func fromEnvironment(_ env: Environment, client: HTTPClient) throws -> OTLPExporter? {
        guard let c = try Configuration(signal: "traces", env) else { return nil }
        var exporter = OTLPExporter(endpoint: c.endpoint, headers: c.headers, client: client)
        exporter.encoding = c.encoding
        exporter.compression = c.compression
        // Empty default: an unset variable adds no attributes.
        exporter.resourceAttributes = parseHeaders(env["OTEL_RESOURCE_ATTRIBUTES"] ?? "")
        if let service = env["OTEL_SERVICE_NAME"]
            ?? exporter.resourceAttributes.last(where: { $0.0 == "service.name" })?.1
        {
            exporter.serviceName = service
        }
        exporter.projectName = env["PHOENIX_PROJECT_NAME"]
        if let raw = env["BRIDGE_OTLP_CONVENTIONS"]?.trimmingCharacters(in: .whitespaces), !raw.isEmpty {
            guard let c = OTLPConventions(rawValue: raw.lowercased()) else {
                throw OTLPConfigurationError(
                    message: "BRIDGE_OTLP_CONVENTIONS=\(raw): expected both (the default), genai or openinference")
            }
            exporter.conventions = c
        }
        for key in ["OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"] {
            guard let raw = env[key], exporter.valueLengthLimit == nil else { continue }
            guard let n = Int(raw.trimmingCharacters(in: .whitespaces)), n >= 0 else {
                throw OTLPConfigurationError(
                    message: "\(key)=\(raw): expected a whole number of characters (0 or more)")
            }
            exporter.valueLengthLimit = n
        }
        return exporter
    }

    /// How OTLP/HTTP sends one signal (`traces`, `metrics`), as the OpenTelemetry SDKs read the
    /// environment: `OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT` as is, else `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// + `/v1/<signal>`; headers from `OTEL_EXPORTER_OTLP_HEADERS`, overridden per key by
    /// `OTEL_EXPORTER_OTLP_<SIGNAL>_HEADERS`; `…_PROTOCOL` and `…_COMPRESSION` likewise, the
    /// signal's own variable first.
    public struct Configuration: Sendable {
        public var endpoint: String
        public var headers: [(String, String)]
        public var encoding: OTLPProtocol
        public var compression: OTLPCompression

        /// Nil when no endpoint is set.
        public init?(signal: String, _ env: Environment) throws {
            let upper = signal.uppercased()
            if let e = env["OTEL_EXPORTER_OTLP_\(upper)_ENDPOINT"] {
                endpoint = e
            } else if var base = env["OTEL_EXPORTER_OTLP_ENDPOINT"] {
                while base.hasSuffix("/") { base.removeLast() }
                endpoint = base + "/v1/" + signal
            } else {
                return nil
            }
            // Empty default: an unset variable adds no headers.
            headers = parseHeaders(env["OTEL_EXPORTER_OTLP_HEADERS"] ?? "")
            for (k, v) in parseHeaders(env["OTEL_EXPORTER_OTLP_\(upper)_HEADERS"] ?? "") {
                headers.removeAll { $0.0.lowercased() == k.lowercased() }
                headers.append((k, v))
            }
            func setting(_ what: String) -> (name: String, value: String)? {
                for name in ["OTEL_EXPORTER_OTLP_\(upper)_\(what)", "OTEL_EXPORTER_OTLP_\(what)"] {
                    if let v = env[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty { return (name, v) }
                }
                return nil
            }
            encoding = .protobuf
            if let (name, value) = setting("PROTOCOL") {
                guard let p = OTLPProtocol(rawValue: value.lowercased()) else {
                    let hint =
                        value.lowercased() == "grpc"
                        ? " (bridge speaks OTLP over HTTP only; a Collector's port 4318 takes it)" : ""
                    throw OTLPConfigurationError(
                        message: "\(name)=\(value): expected http/protobuf (the default) or http/json\(hint)")
                }
                encoding = p
            }
            compression = .none
            if let (name, value) = setting("COMPRESSION") {
                guard let c = OTLPCompression(rawValue: value.lowercased()) else {
                    throw OTLPConfigurationError(message: "\(name)=\(value): expected gzip or none")
                }
                compression = c
            }
        }

        /// The variable that sets this signal's protocol (for messages).
        public static func protocolVariable(signal: String) -> String {
            "OTEL_EXPORTER_OTLP_\(signal.uppercased())_PROTOCOL"
        }
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
        return await post(encoded(batch.spans.map(span)))
    }

    /// An empty `ExportTraceServiceRequest`: a receiver that refuses even this refuses the
    /// endpoint, the protocol or the credentials, not a span.
    public func probe() async -> ExportResult? { await post(encoded([])) }

    /// The request body for `spans` in the configured encoding (before compression).
    public func encoded(_ spans: [OTLPSpan]) -> [UInt8] {
        switch encoding {
        case .protobuf: return OTLPTraceEncoder.protobuf(resource: resource, scope: "bridge", version: "", spans: spans)
        case .json:
            return Array(
                OTLPTraceEncoder.json(resource: resource, scope: "bridge", version: "", spans: spans).compact.utf8)
        }
    }

    func post(_ body: [UInt8]) async -> ExportResult {
        var h = HTTPHeaders(headers)
        h.replaceOrAdd("Content-Type", encoding.contentType)
        var payload = body
        if compression == .gzip {
            payload = Gzip.compress(body)
            h.replaceOrAdd("Content-Encoding", "gzip")
        }
        var request = HTTPRequest(method: .post, url: endpoint, headers: h, body: payload)
        request.deadline = .now + requestTimeout
        let result: ExportResult
        do {
            let response = try await client.execute(request)
            result = interpret(response)
        } catch {
            result = OpenAITracesExporter.classify(error)
        }
        return OpenAITracesExporter.scrubbed(result, secrets: secrets)
    }

    func interpret(_ response: HTTPResponse) -> ExportResult {
        let isProtobuf = response.headers["Content-Type"]?.lowercased().contains("protobuf") ?? false
        guard (200..<300).contains(response.status) else {
            if response.status == 415 {
                let other: OTLPProtocol = encoding == .protobuf ? .json : .protobuf
                return .fatal(
                    reason:
                        "the receiver does not accept \(encoding.rawValue) (HTTP 415: \(Self.message(response, protobuf: isProtobuf))); "
                        + "set \(Configuration.protocolVariable(signal: "traces"))=\(other.rawValue)")
            }
            return OpenAITracesExporter.classify(
                response, retriable: { $0 == 408 || $0 == 429 || $0 >= 500 },
                message: Self.message(response, protobuf: isProtobuf))
        }
        var rejected = 0
        var message = ""
        if isProtobuf {
            // ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1 { int64 rejected_spans = 1; string error_message = 2 } }
            guard let partial = ProtobufReader.fields(response.body)?.first(where: { $0.0 == 1 })?.1.data,
                let fields = ProtobufReader.fields(partial)
            else { return .delivered() }
            for (n, v) in fields {
                if n == 1 { rejected = Int(v.int64 ?? 0) }
                // Empty default: a partial success without a message.
                if n == 2 { message = v.text ?? "" }
            }
        } else {
            guard let partial = (try? response.json())?["partialSuccess"] else { return .delivered() }
            rejected = partial["rejectedSpans"].flatMap { $0.intValue ?? $0.stringValue.flatMap { Int($0) } } ?? 0
            // Empty default: a partial success without a message.
            message = partial["errorMessage"]?.stringValue ?? ""
        }
        if rejected > 0 {
            return .partial(rejectedSpans: rejected, message: message.isEmpty ? "(no message)" : message)
        }
        return .delivered(warning: message.isEmpty ? nil : "receiver warning: \(message)")
    }

    /// The message of an error answer: a `google.rpc.Status` (`string message = 2`) for
    /// protobuf, else what `OpenAITracesExporter.serverMessage` finds.
    static func message(_ response: HTTPResponse, protobuf: Bool) -> String {
        if protobuf, let m = ProtobufReader.fields(response.body)?.first(where: { $0.0 == 2 })?.1.text, !m.isEmpty {
            return String(m.prefix(2_000))
        }
        return OpenAITracesExporter.serverMessage(response.body)
    }

    /// Resource attributes: `service.name`, Phoenix's project, then `OTEL_RESOURCE_ATTRIBUTES`.
    public var resource: [OTLPAttribute] {
        var out = [OTLPAttribute("service.name", .string(serviceName))]
        if conventions != .genai {
            out.append(OTLPAttribute("openinference.project.name", .string(projectName ?? serviceName)))
        }
        out.append(OTLPAttribute("telemetry.sdk.name", .string("bridge")))
        for (k, v) in resourceAttributes where !out.contains(where: { $0.key == k }) {
            out.append(OTLPAttribute(k, .string(v)))
        }
        return out
    }

    /// The `ExportTraceServiceRequest` JSON for `batch`'s spans (whatever the configured encoding).
    public func body(_ batch: ExportBatch) -> JSONValue {
        OTLPTraceEncoder.json(resource: resource, scope: "bridge", version: "", spans: batch.spans.map(span))
    }

    /// Unix time in nanoseconds as a decimal string (microsecond precision, as stored).
    public static func unixNanos(_ d: Date) -> String { String(nanos(d)) }

    /// Unix time in nanoseconds (microsecond precision, as stored).
    public static func nanos(_ d: Date) -> UInt64 {
        let micros = Int64((d.timeIntervalSince1970 * 1_000_000).rounded())
        return UInt64(max(0, micros)) * 1_000
    }
}

/// An OTLP setting bridge cannot use (exit 2).
public struct OTLPConfigurationError: InputError, Sendable {
    public var message: String
    public init(message: String) { self.message = message }
}
