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

    /// POSTs a model request `body`, streamed when `settings.stream` is set: the body then also
    /// says `stream: true` (and `streamFields`), and `assembler` assembles the events.
    func post(
        _ path: String, body: JSONValue, streamedBy assembler: @escaping @Sendable () -> any ModelStreamAssembler,
        streamFields: [String: JSONValue] = [:]
    ) async throws(ModelProviderError) -> (json: JSONValue, timeToFirstToken: Duration?) {
        var body = body
        if settings.stream, var o = body.objectValue {
            o["stream"] = true
            o.merge(streamFields) { _, field in field }
            body = .object(o)
        }
        return try await post(path, body: body, stream: settings.stream ? assembler : nil)
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
            let failed: FailedAttempt
            switch try await attempt(
                url, body: body, what: what, stream: makeAssembler,
                malformedRetried: &malformedRetried)
            {
            case .answer(let json, let timeToFirstToken): return (json, timeToFirstToken)
            case .failed(let f): failed = f
            }
            guard failed.shouldRetry, retry < policy.maxRetries else {
                var f = failed.failure
                if retry > 0 { f.message += " (after \(retry + 1) attempts)" }
                // The server's Retry-After carries over to the task's retry backoff.
                if let retryAfter = failed.retryAfter { f.retryAfter = retryAfter }
                throw f
            }
            do {
                try await policy.sleep(policy.delay(retry: retry, retryAfter: failed.retryAfter))
            } catch {
                throw ModelProviderError(
                    settings.scrub("\(what): cancelled while waiting to retry: \(failed.failure.message)"),
                    retriable: true, statusCode: failed.failure.statusCode)
            }
            retry += 1
        }
    }

    /// How one attempt went: the answer (with the time to first token of a stream), or why it
    /// failed and whether that is worth another attempt.
    private enum Attempt {
        case answer(JSONValue, Duration?)
        case failed(FailedAttempt)
    }

    private struct FailedAttempt {
        var failure: ModelProviderError
        /// What the server asked to wait before the next attempt.
        var retryAfter: Duration? = nil
        var shouldRetry: Bool
    }

    /// One attempt: the request (asking for a stream when `makeAssembler` is given) and what its
    /// answer or its failure means. Throws what is not worth another attempt (cancelled, shut
    /// down, a failure that is not the transport's).
    private func attempt(
        _ url: String, body: JSONValue, what: String, stream makeAssembler: (@Sendable () -> any ModelStreamAssembler)?,
        malformedRetried: inout Bool
    ) async throws(ModelProviderError) -> Attempt {
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
        do {
            let response = try await client.execute(request)
            return answer(response, stream: stream, what: what, malformedRetried: &malformedRetried)
        } catch {
            switch error {
            case _ where stream?.failure != nil:
                // The stream's own verdict (an error event, an event too large).
                var failure = stream!.failure!
                failure.message = settings.scrub(failure.message)
                return .failed(FailedAttempt(failure: failure, shouldRetry: failure.retriable))
            case .cancelled, .shutdown:
                throw ModelProviderError(settings.scrub("\(what): \(error)"), retriable: true)
            case .transport, .timeout:
                let during =
                    stream?.began == true ? " (stream stalled or broke after \(stream!.events) events)" : ""
                return .failed(
                    FailedAttempt(
                        failure: ModelProviderError(settings.scrub("\(what): \(error)\(during)"), retriable: true),
                        shouldRetry: true))
            default:
                throw ModelProviderError(settings.scrub("\(what): \(error)"), retriable: false)
            }
        }
    }

    /// What an HTTP answer means: a finished stream's or a JSON body's answer; a stream that
    /// failed or was cut; a 2xx body that is not JSON (retried once); or a failed status.
    private func answer(
        _ response: HTTPResponse, stream: ModelEventStream?, what: String, malformedRetried: inout Bool
    ) -> Attempt {
        if response.isSuccess, let stream, stream.began {
            var failure: ModelProviderError
            if let f = stream.failure {
                failure = f
            } else if stream.finished {
                return .answer(stream.result(), stream.timeToFirstToken)
            } else {
                failure = stream.cut
            }
            failure.message = settings.scrub(failure.message)
            return .failed(FailedAttempt(failure: failure, shouldRetry: failure.retriable))
        }
        guard response.isSuccess else { return .failed(statusFailure(response, what: what)) }
        do {
            return .answer(try response.json(), nil)
        } catch {
            let failure = ModelProviderError(
                settings.scrub(
                    "\(what): the API answered \(response.status) with a body that is not JSON: \(error)"),
                retriable: false, statusCode: response.status)
            let shouldRetry = !malformedRetried
            malformedRetried = true
            return .failed(FailedAttempt(failure: failure, shouldRetry: shouldRetry))
        }
    }

    /// A failed status: retried when retriable, with the server's `Retry-After`. A 429 carries
    /// its reset time, and is not retried here when rate limits are shared by the fleet.
    private func statusFailure(_ response: HTTPResponse, what: String) -> FailedAttempt {
        let error = HTTPError.status(code: response.status, body: response.body, headers: response.headers)
        var shouldRetry = error.isRetriable
        let retryAfter = response.headers.retryAfter
        var failure = ModelProviderError(
            settings.scrub("\(what) failed: \(Self.apiMessage(response))"),
            retriable: shouldRetry, statusCode: response.status)
        if response.status == 429 {
            failure.rateLimitReset = RateLimitReset.wait(response.headers)
            failure.retryAfter = retryAfter
            if settings.retry.rateLimitsShared { shouldRetry = false }
        }
        return FailedAttempt(failure: failure, retryAfter: retryAfter, shouldRetry: shouldRetry)
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
    /// How long until the provider's limits reset, from a 429's `x-ratelimit-reset-requests` and
    /// `x-ratelimit-reset-tokens` (`1s`, `6m0s`, `20ms`, `1.5s`; the later of the two), else
    /// `retry-after-ms` / `retry-after`; nil when it said nothing.
    public static func wait(_ headers: HTTPHeaders) -> Duration? {
        let resets = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"].compactMap { headers[$0] }
            .compactMap(parse)
        if let m = resets.max() { return m }
        return headers.retryAfter
    }

    /// `6m0s`, `1.5s`, `20ms`, `1h2m3s` or a bare number of seconds (at most
    /// `Duration.maximumSeconds`: a longer wait is that long).
    public static func parse(_ text: String) -> Duration? {
        seconds(text).map { .seconds(fractional: min($0, Duration.maximumSeconds)) }
    }

    private static func seconds(_ text: String) -> Double? {
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
