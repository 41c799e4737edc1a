import BridgeCore
import FoundationEssentials

/// Why an HTTP exchange failed. Thrown (typed) by `HTTPClient.execute(_:)` and the
/// `HTTPResponse` helpers.
///
/// Descriptions never contain request header values (no `Authorization`), only the URL's
/// host where curl names it, the status, and a prefix of the response body.
public enum HTTPError: Error, Sendable, Equatable, CustomStringConvertible, BridgeError {
    /// The URL could not be parsed or is not http/https.
    case invalidURL(String)
    /// The request itself is unusable (e.g. a header with a line break).
    case invalidRequest(String)
    /// The exchange failed below HTTP: DNS, connect, TLS, reset, … `code` is curl's
    /// `CURLcode`.
    case transport(code: Int, message: String)
    /// The connect timeout, read (idle) timeout or the request's deadline passed.
    case timeout(String)
    /// The response body exceeded `limit` bytes; the transfer was aborted.
    case tooLarge(limit: Int)
    /// The server answered with a status the caller does not accept (see
    /// `HTTPResponse.requireSuccess()`).
    case status(code: Int, body: [UInt8], headers: HTTPHeaders)
    /// The body was expected to be JSON (of some shape) and was not.
    case malformedJSON(reason: String)
    /// The calling task was cancelled.
    case cancelled
    /// The client was shut down before the request finished.
    case shutdown

    /// How many body bytes `description` quotes for `.status`.
    public static let bodyPrefixLength = 512

    public var description: String {
        switch self {
        case .invalidURL(let reason): return "invalid URL: \(reason)"
        case .invalidRequest(let reason): return "invalid HTTP request: \(reason)"
        case .transport(let code, let message): return "HTTP transport error (curl \(code)): \(message)"
        case .timeout(let message): return "HTTP timeout: \(message)"
        case .tooLarge(let limit): return "HTTP response body exceeds the limit of \(limit) bytes"
        case .status(let code, let body, _):
            let text = Self.prefix(body)
            return text.isEmpty ? "HTTP \(code)" : "HTTP \(code): \(text)"
        case .malformedJSON(let reason): return "malformed JSON in HTTP response: \(reason)"
        case .cancelled: return "HTTP request cancelled"
        case .shutdown: return "HTTP client shut down"
        }
    }

    public var exitStatus: ExitStatus {
        switch self {
        case .invalidURL, .invalidRequest: return .badInput
        default: return .failed
        }
    }

    /// The HTTP status for `.status`, else nil.
    public var statusCode: Int? {
        if case .status(let code, _, _) = self { return code }
        return nil
    }

    /// True for failures worth retrying: transport errors, timeouts, and statuses 408,
    /// 409, 429 and 5xx — unless the server sent `x-should-retry`, which then decides.
    public var isRetriable: Bool {
        switch self {
        case .transport, .timeout: return true
        case .status(let code, _, let headers):
            switch headers["x-should-retry"]?.lowercased() {
            case "true": return true
            case "false": return false
            default: return code == 408 || code == 409 || code == 429 || code >= 500
            }
        default: return false
        }
    }

    /// The server's requested retry delay (`retry-after-ms` / `retry-after`) for `.status`.
    public var retryAfter: Duration? {
        if case .status(_, _, let headers) = self { return headers.retryAfter }
        return nil
    }

    /// Up to `bodyPrefixLength` bytes of `body` as text, whitespace-trimmed, with `…` when cut.
    public static func prefix(_ body: [UInt8], length: Int = bodyPrefixLength) -> String {
        let cut = body.count > length
        var text = String(decoding: body.prefix(length), as: UTF8.self)
        // A cut may split a multi-byte character; drop the replacement character it leaves.
        if cut, text.last == "\u{FFFD}" { text.removeLast() }
        text = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return cut ? text + "…" : text
    }
}
