import BridgeCore
import BridgeHTTP
import BridgeMapping
import FoundationEssentials

/// Runs `http` tools: POSTs the tool's JSON arguments (compact) to its URL with
/// `Content-Type: application/json`, and returns the response body as the tool's output.
///
/// - Header values may reference `${NAME}`, resolved from the injected `Environment` when
///   the tool runs; an unset (or empty) variable is a `ToolFailure` naming it.
/// - `timeout_ms` bounds the whole exchange (connect, send, wait, receive).
/// - A body over `max_bytes` is a `ToolFailure` (the transfer is aborted), not a truncation.
/// - A non-2xx answer is a `ToolFailure` `HTTP <status>: <body prefix>`.
/// - Header names and values never appear in outputs or errors; values substituted from
///   the environment are also scrubbed from response text that echoes them.
public struct HTTPToolExecutor: ToolExecutor {
    public let client: HTTPClient
    public let environment: Environment

    public init(client: HTTPClient, environment: Environment = .process) {
        self.client = client
        self.environment = environment
    }

    public func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        guard case .http(let spec) = tool.implementation else {
            throw ToolFailure("tool '\(tool.name)' is not an http tool")
        }
        var headers = HTTPHeaders()
        var secrets: [String] = []
        for name in spec.headers.keys.sorted() {
            let (value, used) = try Self.expand(
                spec.headers[name] ?? "", header: name, tool: tool.name, environment: environment)
            headers.add(name, value)
            secrets += used
        }
        if !headers.contains("Content-Type") { headers.add("Content-Type", "application/json") }
        // The call's stable key: a repeat after an interruption carries the same one.
        if !context.idempotencyKey.isEmpty, !headers.contains(IdempotencyKey.header) {
            headers.add(IdempotencyKey.header, context.idempotencyKey)
        }
        let timeout = Duration.milliseconds(max(1, spec.timeoutMs))
        let request = HTTPRequest(
            method: .post, url: spec.url, headers: headers, body: Array(arguments.compact.utf8),
            timeout: .init(connect: min(timeout, .seconds(10))),
            deadline: .now + timeout, maxResponseBytes: max(0, spec.maxBytes))
        let response: HTTPResponse
        do {
            response = try await client.execute(request)
        } catch {
            throw Self.failure(for: error, spec: spec, secrets: secrets)
        }
        guard response.isSuccess else {
            let prefix = Redaction.scrub(HTTPError.prefix(response.body), secrets: secrets)
            throw ToolFailure(
                prefix.isEmpty ? "HTTP \(response.status)" : "HTTP \(response.status): \(prefix)",
                data: ["status": .number(Double(response.status))])
        }
        let (text, replaced) = TextSafety.decode(Array(response.body))
        context.notes.add(replaced)
        return Redaction.scrub(text, secrets: secrets)
    }

    private static func failure(for error: HTTPError, spec: HTTPToolSpec, secrets: [String]) -> any Error {
        switch error {
        case .cancelled:
            return CancellationError()
        case .timeout:
            return ToolFailure("HTTP request timed out after \(spec.timeoutMs) ms")
        case .tooLarge(let limit):
            return ToolFailure(
                "HTTP response exceeds max_bytes (\(limit) bytes)", data: ["max_bytes": .number(Double(limit))])
        case .transport(let code, let message):
            return ToolFailure(
                "HTTP request failed: \(Redaction.scrub(message, secrets: secrets))",
                data: ["curl_code": .number(Double(code))])
        default:
            return ToolFailure(Redaction.scrub(error.description, secrets: secrets))
        }
    }

    /// Replaces each `${NAME}` (or `${env:NAME}`) in `template` with the variable's value. Returns the result and
    /// the substituted values (secrets to scrub). Throws `ToolFailure` for an unset variable
    /// or a malformed reference; the message names the header and variable, never a value.
    public static func expand(
        _ template: String, header: String, tool: String,
        environment: Environment
    ) throws(ToolFailure) -> (String, [String]) {
        var out = ""
        var used: [String] = []
        var rest = Substring(template)
        while let start = rest.range(of: "${") {
            out += rest[rest.startIndex..<start.lowerBound]
            guard let close = rest[start.upperBound...].firstIndex(of: "}") else {
                throw ToolFailure("tool '\(tool)': header '\(header)' has an unterminated ${ reference")
            }
            var name = String(rest[start.upperBound..<close])
            if name.hasPrefix("env:") { name.removeFirst(4) }
            guard let first = name.unicodeScalars.first,
                first == "_" || (first.isASCII && first.properties.isAlphabetic),
                name.unicodeScalars.allSatisfy({
                    $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)))
                })
            else {
                throw ToolFailure("tool '\(tool)': header '\(header)' has an invalid variable reference ${\(name)}")
            }
            guard let value = environment[name] else {
                throw ToolFailure(
                    "tool '\(tool)': header '\(header)' uses environment variable \(name), which is not set",
                    data: ["variable": .string(name)])
            }
            out += value
            used.append(value)
            rest = rest[rest.index(after: close)...]
        }
        out += rest
        return (out, used)
    }
}
