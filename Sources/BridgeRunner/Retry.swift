import BridgeCore
import BridgeHTTP
import FoundationEssentials

/// How the model providers retry a failed call, after openai-python's client.
///
/// Retried: HTTP 408, 409, 429 and 5xx, transport failures and timeouts — unless the server
/// answers `x-should-retry: false` (and `x-should-retry: true` makes any status retriable).
/// Other 4xx are never retried.
///
/// The wait before retry n (0-based) is `retry-after-ms`, else `retry-after` (seconds) when
/// the server sent one, capped at `maxRetryAfter`; otherwise `initialDelay × 2ⁿ` capped at
/// `maxDelay`, times a jitter factor in [0.75, 1].
public struct RetryPolicy: Sendable {
    /// Retries after the first attempt (default 2, as openai-python: 3 attempts in all).
    public var maxRetries: Int
    /// Default 0.5 s.
    public var initialDelay: Duration
    /// Default 8 s.
    public var maxDelay: Duration
    /// The longest server-requested wait honoured (default 60 s); longer ones are cut to it.
    public var maxRetryAfter: Duration
    /// Waits; tests inject one that returns at once. Default `Task.sleep`.
    public var sleep: @Sendable (Duration) async throws -> Void
    /// A 429 is not retried here but thrown at once with its reset time, because fleet-wide
    /// limits (`limits` in the mappings) make every worker wait for it (`MeteredModel`).
    public var rateLimitsShared = false

    public init(
        maxRetries: Int = 2, initialDelay: Duration = .milliseconds(500), maxDelay: Duration = .seconds(8),
        maxRetryAfter: Duration = .seconds(60),
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.maxRetries = max(0, maxRetries)
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.maxRetryAfter = maxRetryAfter
        self.sleep = sleep
    }

    /// The wait before retry `retry` (0-based), given what the server asked for.
    public func delay(retry: Int, retryAfter: Duration?) -> Duration {
        if let retryAfter, retryAfter >= .zero { return min(retryAfter, maxRetryAfter) }
        return RetryBackoff.delay(attempt: retry + 1, base: initialDelay, cap: maxDelay, jitter: 0.75...1)
    }
}

/// POSTs JSON to an OpenAI-style API with `RetryPolicy`, and turns every failure into a
/// `ModelProviderError` whose text never contains the API key.
///
/// Outcomes:
/// - 2xx with a JSON body: returned.
/// - 2xx with a body that is not JSON: retried once (a garbled answer from a proxy or an
///   overloaded server is usually transient), then a terminal error.
/// - a retriable status or transport failure: retried; when retries run out, an error with
///   `retriable: true` (the worker records `failed_retriable`).
/// - any other status: a terminal error quoting the API's own `error.message`.
struct OpenAITransport: Sendable {
    let settings: OpenAISettings
    let client: HTTPClient

    /// POSTs `body` to `{baseURL}{path}` and returns the parsed JSON answer.
    func post(_ path: String, body: JSONValue) async throws(ModelProviderError) -> JSONValue {
        try await post(path, body: body, stream: nil).json
    }

    /// POSTs `body` and returns the JSON answer; with `stream`, the body asks for a stream and
    /// the events are assembled (per attempt, by a fresh assembler) into the answer the same
    /// call returns without streaming, with the time to first token. A server that answers a
    /// stream request with plain JSON is read as if it had not been asked to stream.
    ///
    /// A stream that carries an error event, or ends before its final event (cut), fails the
    /// attempt like a transport error: retried when retriable, never a partial answer. The
    /// stall window (`OpenAISettings.streamStallTimeout`) applies between bytes of the stream.
    func post(
        _ path: String, body: JSONValue, stream makeAssembler: (@Sendable () -> any ModelStreamAssembler)?
    ) async throws(ModelProviderError) -> (json: JSONValue, timeToFirstToken: Duration?) {
        let policy = settings.retry
        let url = settings.baseURL + path
        let what = "POST \(path)"
        var retry = 0
        var malformedRetried = false
        while true {
            var request = HTTPRequest.postJSON(url, body, headers: settings.headers)
            request.deadline = .now + settings.requestTimeout
            var stream: ModelEventStream?
            if let makeAssembler {
                let s = ModelEventStream(
                    assembler: makeAssembler(), what: what, maxEventBytes: client.configuration.maxResponseBytes)
                stream = s
                request.bodyStream = s
                request.headers.replaceOrAdd("Accept", "text/event-stream")
                if let stall = settings.streamStallTimeout {
                    request.timeout = .init(read: stall, minimumRate: client.configuration.timeout.minimumRate)
                }
            }
            var failure: ModelProviderError
            var retryAfter: Duration?
            var shouldRetry: Bool
            do {
                let response = try await client.execute(request)
                if response.isSuccess, let stream, stream.began {
                    if let f = stream.failure {
                        failure = f
                    } else if stream.finished {
                        return (stream.result(), stream.timeToFirstToken)
                    } else {
                        failure = stream.cut
                    }
                    failure.message = settings.scrub(failure.message)
                    shouldRetry = failure.retriable
                } else if response.isSuccess {
                    do {
                        return (try response.json(), nil)
                    } catch {
                        failure = ModelProviderError(
                            settings.scrub(
                                "\(what): the API answered \(response.status) with a body that is not JSON: \(error)"),
                            retriable: false, statusCode: response.status)
                        shouldRetry = !malformedRetried
                        malformedRetried = true
                    }
                } else {
                    let error = HTTPError.status(code: response.status, body: response.body, headers: response.headers)
                    shouldRetry = error.isRetriable
                    retryAfter = response.headers.retryAfter
                    failure = ModelProviderError(
                        settings.scrub("\(what) failed: \(Self.apiMessage(response))"),
                        retriable: shouldRetry, statusCode: response.status)
                    if response.status == 429 {
                        var f = failure
                        f.rateLimitReset = RateLimitReset.seconds(response.headers)
                        f.retryAfter = retryAfter?.inSeconds
                        failure = f
                        if policy.rateLimitsShared { shouldRetry = false }
                    }
                }
            } catch {
                switch error {
                case _ where stream?.failure != nil:
                    // The stream's own verdict (an error event, an event too large).
                    failure = stream!.failure!
                    failure.message = settings.scrub(failure.message)
                    shouldRetry = failure.retriable
                case .cancelled, .shutdown:
                    throw ModelProviderError(settings.scrub("\(what): \(error)"), retriable: true)
                case .transport, .timeout:
                    shouldRetry = true
                    let during =
                        stream?.began == true ? " (stream stalled or broke after \(stream!.events) events)" : ""
                    failure = ModelProviderError(settings.scrub("\(what): \(error)\(during)"), retriable: true)
                default:
                    throw ModelProviderError(settings.scrub("\(what): \(error)"), retriable: false)
                }
            }
            guard shouldRetry, retry < policy.maxRetries else {
                var f = failure
                if retry > 0 { f.message += " (after \(retry + 1) attempts)" }
                // The server's Retry-After carries over to the task's retry backoff.
                if let retryAfter {
                    f.retryAfter = retryAfter.inSeconds
                }
                throw f
            }
            do {
                try await policy.sleep(policy.delay(retry: retry, retryAfter: retryAfter))
            } catch {
                throw ModelProviderError(
                    settings.scrub("\(what): cancelled while waiting to retry: \(failure.message)"),
                    retriable: true, statusCode: failure.statusCode)
            }
            retry += 1
        }
    }

    /// `HTTP 400 (invalid_request_error, code …): <error.message>` from the API's
    /// `{"error":{"message","type","code"}}`, or the status and a prefix of the body.
    static func apiMessage(_ response: HTTPResponse) -> String {
        if let json = try? response.json(), let error = json["error"] {
            if let message = error["message"]?.stringValue {
                var tags: [String] = []
                if let type = error["type"]?.stringValue { tags.append(type) }
                if let code = error["code"]?.stringValue { tags.append("code \(code)") }
                if let param = error["param"]?.stringValue { tags.append("param \(param)") }
                let suffix = tags.isEmpty ? "" : " (" + tags.joined(separator: ", ") + ")"
                return "HTTP \(response.status)\(suffix): \(message)"
            }
            if let text = error.stringValue { return "HTTP \(response.status): \(text)" }
        }
        let text = HTTPError.prefix(response.body)
        return text.isEmpty ? "HTTP \(response.status)" : "HTTP \(response.status): \(text)"
    }
}

/// When a provider's rate limit resets, from a 429's headers (OpenAI's `x-ratelimit-reset-*`).
public enum RateLimitReset {
    /// Seconds until the provider's limits reset, from a 429's `x-ratelimit-reset-requests` and
    /// `x-ratelimit-reset-tokens` (`1s`, `6m0s`, `20ms`, `1.5s`; the later of the two), else
    /// `retry-after-ms` / `retry-after`; nil when it said nothing.
    public static func seconds(_ headers: HTTPHeaders) -> Double? {
        let resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"].compactMap { headers[$0] }
            .compactMap(parse)
        if let m = resets.max() { return m }
        return headers.retryAfter?.inSeconds
    }

    /// `6m0s`, `1.5s`, `20ms`, `1h2m3s` or a bare number of seconds.
    public static func parse(_ text: String) -> Double? {
        let s = String(text.filter { $0 != " " && $0 != "\t" })
        if let v = Double(s), v >= 0 { return v }
        var total = 0.0
        var number = ""
        var chars = Array(s)
        var i = 0
        var any = false
        while i < chars.count {
            let c = chars[i]
            if c.isNumber || c == "." {
                number.append(c)
                i += 1
                continue
            }
            guard let v = Double(number) else { return nil }
            if c == "m" && i + 1 < chars.count && chars[i + 1] == "s" {
                total += v / 1000
                i += 2
            } else if c == "h" {
                total += v * 3600
                i += 1
            } else if c == "m" {
                total += v * 60
                i += 1
            } else if c == "s" {
                total += v
                i += 1
            } else {
                return nil
            }
            number = ""
            any = true
        }
        chars = []
        guard number.isEmpty, any else { return nil }
        return total
    }

}
