import BridgeCore
import BridgeHTTP
import FoundationEssentials

/// Sends traces and spans to the OpenAI traces ingest endpoint, as the Agents SDK does:
/// `POST {OPENAI_BASE_URL}/traces/ingest` with `{"data": [trace objects, span objects]}`,
/// `Authorization: Bearer`, `OpenAI-Beta: traces=v1` and the organization/project headers.
/// Span objects go through `OpenAISanitizer` (the SDK's size and usage rules).
///
/// Answers: 2xx delivered; 408, 409, 429 and 5xx (and transport failures) retried, honouring
/// `Retry-After`; 401, 403 and 404 mean the key or URL is wrong (fatal: nothing is recorded
/// and the items wait); any other 4xx rejects the items concerned with the server's message.
public struct OpenAITracesExporter: TraceExporter {
    public let name = "openai"
    /// `{base}/traces/ingest`.
    public let endpoint: String
    public var target: String { endpoint }
    public var batchSize: Int
    let apiKey: String
    let organization: String?
    let project: String?
    let client: HTTPClient
    /// Deadline of one request.
    public var requestTimeout: Duration = .seconds(60)

    public static let defaultBaseURL = "https://api.openai.com/v1"

    public init(
        apiKey: String, baseURL: String = defaultBaseURL, organization: String? = nil, project: String? = nil,
        client: HTTPClient, batchSize: Int = 128
    ) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.endpoint = base + "/traces/ingest"
        self.apiKey = apiKey
        self.organization = organization
        self.project = project
        self.client = client
        self.batchSize = batchSize
    }

    /// The exporter the environment asks for, or nil: needs `OPENAI_TRACING_API_KEY` (else
    /// `OPENAI_API_KEY`) and is off when `OPENAI_AGENTS_DISABLE_TRACING` is `1` or `true`.
    public static func fromEnvironment(_ env: Environment, client: HTTPClient) -> OpenAITracesExporter? {
        if let off = env["OPENAI_AGENTS_DISABLE_TRACING"]?.lowercased(), off == "1" || off == "true" { return nil }
        guard let key = env["OPENAI_TRACING_API_KEY"] ?? env["OPENAI_API_KEY"] else { return nil }
        return OpenAITracesExporter(
            apiKey: key, baseURL: env["OPENAI_BASE_URL"] ?? defaultBaseURL,
            organization: env["OPENAI_ORG_ID"], project: env["OPENAI_PROJECT_ID"], client: client)
    }

    /// The secrets this exporter sends (for scrubbing messages).
    public var secrets: [String] { [apiKey] }

    /// `{"data": [...]}`: trace objects, then sanitised span objects.
    public func body(_ batch: ExportBatch) -> JSONValue {
        let data: [JSONValue] =
            batch.traces.map(\.exportJSON)
            + batch.spans.map { OpenAISanitizer.sanitize($0.record.exportJSON) }
        return ["data": .array(data)]
    }

    public func send(_ batch: ExportBatch) async -> ExportResult {
        var headers: HTTPHeaders = ["Authorization": "Bearer \(apiKey)", "OpenAI-Beta": "traces=v1"]
        if let organization { headers.add("OpenAI-Organization", organization) }
        if let project { headers.add("OpenAI-Project", project) }
        var request = HTTPRequest.postJSON(endpoint, body(batch), headers: headers)
        request.deadline = .now + requestTimeout
        let result: ExportResult
        do {
            let response = try await client.execute(request)
            result = Self.classify(response, retriable: { $0 == 408 || $0 == 409 || $0 == 429 || $0 >= 500 })
        } catch {
            result = Self.classify(error)
        }
        return Self.scrubbed(result, secrets: secrets)
    }

    // No `probe()`: the ingest's answer to an empty batch is not documented (the SDK never sends
    // one), so a refused batch is split as before rather than risk stopping on a probe.

    // MARK: - Shared by the HTTP exporters

    /// What an HTTP answer means for the batch.
    static func classify(_ response: HTTPResponse, retriable: (Int) -> Bool, message text: String? = nil)
        -> ExportResult
    {
        let status = response.status
        if (200..<300).contains(status) { return .delivered() }
        let message = "HTTP \(status): \(text ?? serverMessage(response.body))"
        if retriable(status) { return .retry(reason: message, after: response.headers.retryAfter) }
        if status == 401 || status == 403 || status == 404 || status == 407 { return .fatal(reason: message) }
        if status == 413 { return .reject(reason: message) }
        if (400..<500).contains(status) { return .refused(reason: message) }
        // 1xx/3xx (curl follows no redirects here) and unexpected codes: try again later.
        return .retry(reason: message, after: response.headers.retryAfter)
    }

    static func classify(_ error: HTTPError) -> ExportResult {
        switch error {
        case .invalidURL, .invalidRequest, .shutdown: return .fatal(reason: error.description)
        default: return .retry(reason: error.description, after: nil)
        }
    }

    /// The `error.message` (OpenAI) or `message` (OTLP status) of a JSON body, else its text.
    static func serverMessage(_ body: [UInt8]) -> String {
        if let json = try? JSONValue.parse(Data(body)) {
            if let m = json["error"]?["message"]?.stringValue { return m }
            if let m = json["message"]?.stringValue { return m }
            if let m = json["error"]?.stringValue { return m }
        }
        let text = HTTPError.prefix(body, length: 2_000)
        return text.isEmpty ? "(empty body)" : text
    }

    static func scrubbed(_ r: ExportResult, secrets: [String]) -> ExportResult {
        func s(_ t: String) -> String { Redaction.scrub(t, secrets: secrets) }
        switch r {
        case .delivered(let w): return .delivered(warning: w.map(s))
        case .partial(let n, let m): return .partial(rejectedSpans: n, message: s(m))
        case .retry(let reason, let after): return .retry(reason: s(reason), after: after)
        case .reject(let reason): return .reject(reason: s(reason))
        case .refused(let reason): return .refused(reason: s(reason))
        case .fatal(let reason): return .fatal(reason: s(reason))
        }
    }
}
