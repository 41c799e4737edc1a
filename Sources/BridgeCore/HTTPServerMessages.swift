import Foundation

/// A request as `HTTPServer` read it.
public struct HTTPServerRequest: Sendable {
    public var method: String
    /// The request target as sent, query included (`/v1/traces?x=1`).
    public var target: String
    /// Header fields in the order received.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Which accepted connection carried it (1-based, in accept order).
    public var connectionID: Int

    /// The target without its query string.
    public var path: String {
        // Empty default: never taken (split keeps an empty first piece), a fallback for the type checker.
        String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// The body as UTF-8 text.
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// A response as `HTTPServer` sends it.
@MemberwiseInit
public struct HTTPServerResponse: Sendable {
    public var status: Int
    /// Sent as given, but for `Content-Length` and `Transfer-Encoding`, which the encoding adds.
    public var headers: [(name: String, value: String)] = []
    public var body: [UInt8] = []
    /// `Transfer-Encoding: chunked` instead of `Content-Length`.
    public var chunked: Bool = false

    /// A `text/plain` response.
    public static func text(_ text: String, status: Int, headers: [(name: String, value: String)] = [])
        -> HTTPServerResponse
    {
        HTTPServerResponse(
            status: status, headers: [(name: "Content-Type", value: "text/plain; charset=utf-8")] + headers,
            body: Array(text.utf8))
    }

    /// The status line and headers, with `Connection: close` when `close`, and the blank line.
    public func encodedHead(close: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(Self.reason(status))\r\n"
        for (name, value) in headers where !["content-length", "transfer-encoding"].contains(name.lowercased()) {
            head += "\(name): \(value)\r\n"
        }
        head += chunked ? "Transfer-Encoding: chunked\r\n" : "Content-Length: \(body.count)\r\n"
        if close { head += "Connection: close\r\n" }
        head += "\r\n"
        return Array(head.utf8)
    }

    /// The whole response: the head, then the body (in chunks of 16 KiB when `chunked`) unless
    /// it answers a HEAD request (`headOnly`).
    public func encoded(close: Bool, headOnly: Bool = false) -> [UInt8] {
        var bytes = encodedHead(close: close)
        guard !headOnly else { return bytes }
        guard chunked else { return bytes + body }
        var offset = 0
        while offset < body.count {
            let end = min(offset + 16 * 1024, body.count)
            bytes += Self.chunk(body[offset..<end])
            offset = end
        }
        return bytes + Self.lastChunk
    }

    /// One chunk of a chunked body.
    public static func chunk(_ bytes: some Collection<UInt8>) -> [UInt8] {
        Array((String(bytes.count, radix: 16) + "\r\n").utf8) + bytes + [13, 10]
    }

    /// The end of a chunked body.
    public static let lastChunk = Array("0\r\n\r\n".utf8)

    /// The reason phrase of `status`.
    public static func reason(_ status: Int) -> String {
        let reasons = [
            100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict",
            413: "Payload Too Large", 422: "Unprocessable Entity", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
            502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
        ]
        return reasons[status] ?? "Status"
    }
}

/// A request head, parsed (`HTTPRequestHead.parse`).
struct HTTPRequestHead {
    var method: String
    var target: String
    var headers: [(name: String, value: String)]
    /// Where the body starts in the input.
    var bodyStart: Int
    var contentLength: Int

    enum Parse {
        case incomplete
        case head(HTTPRequestHead)
        /// Refused with this status and text; the connection is then closed.
        case refused(Int, String)
    }

    /// The head at the start of `input` (its blank line searched from `scanFrom`).
    static func parse(_ input: [UInt8], scanFrom: Int, maxHead: Int) -> Parse {
        guard let end = headEnd(input, from: max(0, scanFrom - 3)), end <= maxHead else {
            return input.count > maxHead ? .refused(431, "request head over \(maxHead) bytes\n") : .incomplete
        }
        // Lines end with CRLF; a field's name ends at its first colon, and spaces and tabs
        // around either part are not part of it.
        var lines = input[..<end].split(separator: 10, omittingEmptySubsequences: false).map {
            $0.last == 13 ? $0.dropLast() : $0
        }
        let requestLine = String(decoding: lines.removeFirst(), as: UTF8.self).split(separator: " ")
        guard requestLine.count == 3, requestLine[2].hasPrefix("HTTP/") else { return .refused(400, "bad request\n") }
        func trimmed(_ bytes: ArraySlice<UInt8>) -> String {
            let blank: (UInt8) -> Bool = { $0 == 32 || $0 == 9 }
            let start = bytes.firstIndex { !blank($0) } ?? bytes.endIndex
            let end = bytes.lastIndex { !blank($0) }.map { $0 + 1 } ?? start
            return String(decoding: bytes[start..<max(start, end)], as: UTF8.self)
        }
        var headers: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: 58) else { continue }
            headers.append((name: trimmed(line[..<colon]), value: trimmed(line[(colon + 1)...])))
        }
        var head = HTTPRequestHead(
            method: String(requestLine[0]), target: String(requestLine[1]), headers: headers, bodyStart: end + 4,
            contentLength: 0)
        if head.header("Transfer-Encoding") != nil {
            return .refused(501, "chunked request bodies are not supported\n")
        }
        head.contentLength = head.header("Content-Length").flatMap { Int($0) } ?? 0
        return .head(head)
    }

    func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// The index of the blank line ending the head (searched from `from`), or nil.
    static func headEnd(_ bytes: [UInt8], from: Int) -> Int? {
        var i = from
        while i + 3 < bytes.count {
            if bytes[i] == 13, bytes[i + 1] == 10, bytes[i + 2] == 13, bytes[i + 3] == 10 { return i }
            i += 1
        }
        return nil
    }
}
