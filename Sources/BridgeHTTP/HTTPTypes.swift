import BridgeCore
import FoundationEssentials

/// An HTTP request method (`GET`, `POST`, …). Any token is allowed; the common ones have
/// static members.
public struct HTTPMethod: RawRepresentable, Sendable, Hashable, ExpressibleByStringLiteral, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue.uppercased() }
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    public var description: String { rawValue }

    public static let get: HTTPMethod = "GET"
    public static let post: HTTPMethod = "POST"
    public static let put: HTTPMethod = "PUT"
    public static let patch: HTTPMethod = "PATCH"
    public static let delete: HTTPMethod = "DELETE"
    public static let head: HTTPMethod = "HEAD"
}

/// An ordered list of header fields with case-insensitive lookup.
///
/// Order and duplicates are preserved as sent or received. Values are never included in
/// `HTTPError` descriptions, so an `Authorization` value cannot leak through an error.
public struct HTTPHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    /// The fields, in order.
    public private(set) var fields: [(name: String, value: String)]

    public init(_ fields: [(String, String)] = []) {
        self.fields = fields.map { (name: $0.0, value: $0.1) }
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(elements)
    }

    /// Appends a field (keeps existing fields of the same name).
    public mutating func add(_ name: String, _ value: String) {
        fields.append((name: name, value: value))
    }

    /// Replaces every field named `name` (case-insensitively) with one field.
    public mutating func replaceOrAdd(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    /// Removes every field named `name` (case-insensitively).
    public mutating func remove(_ name: String) {
        let lower = name.lowercased()
        fields.removeAll { $0.name.lowercased() == lower }
    }

    /// The first value of the field named `name` (case-insensitive), or nil.
    public subscript(_ name: String) -> String? {
        let lower = name.lowercased()
        return fields.first { $0.name.lowercased() == lower }?.value
    }

    /// Every value of the field named `name` (case-insensitive), in order.
    public func values(_ name: String) -> [String] {
        let lower = name.lowercased()
        return fields.filter { $0.name.lowercased() == lower }.map(\.value)
    }

    /// True when a field named `name` is present (case-insensitive).
    public func contains(_ name: String) -> Bool { self[name] != nil }

    public var count: Int { fields.count }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }

    /// How long the server asks the client to wait before retrying: `retry-after-ms`
    /// (milliseconds) wins over `retry-after` (delta seconds; HTTP dates are ignored). A wait
    /// longer than `Duration.maximumSeconds` (`1e300`, `inf`) is that long: the server's number
    /// is not ours to trust, and converting it unbounded would trap.
    public var retryAfter: Duration? {
        let most = Duration.maximumSeconds * 1000
        if let ms = self["retry-after-ms"].flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }), ms >= 0 {
            return .milliseconds(Int64(Swift.min(ms, most).rounded()))
        }
        if let s = self["retry-after"].flatMap({ Double($0.trimmingCharacters(in: .whitespaces)) }), s >= 0 {
            return .milliseconds(Int64(Swift.min(s * 1000, most).rounded()))
        }
        return nil
    }

    /// Names only: values may be secrets.
    public var description: String { "[" + fields.map(\.name).joined(separator: ", ") + "]" }

    public static func == (a: HTTPHeaders, b: HTTPHeaders) -> Bool {
        a.fields.count == b.fields.count
            && zip(a.fields, b.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
    }
}

/// One HTTP request for `HTTPClient.execute(_:)`: a value, built by the caller, sent once.
///
/// Every limit is optional; unset ones fall back to the client's `Configuration`.
@MemberwiseInit
public struct HTTPRequest: Sendable {
    public var method: HTTPMethod = .get
    /// An absolute `http://` or `https://` URL.
    public var url: String
    public var headers: HTTPHeaders = [:]
    /// The request body, sent with a `Content-Length`. Nil sends none.
    public var body: [UInt8]? = nil
    /// Connect and read timeouts; fields left nil use the client's.
    public var timeout: HTTPClient.Timeout? = nil
    /// When the whole exchange (queueing, connecting, sending, receiving) must be over.
    public var deadline: ContinuousClock.Instant? = nil
    /// The largest response body accepted; larger ones fail with `HTTPError.tooLarge`
    /// (streamed bodies too, counted as they arrive).
    public var maxResponseBytes: Int? = nil
    /// Where a body is delivered as it arrives (server-sent events), instead of being buffered;
    /// nil buffers it.
    public var bodyStream: (any HTTPBodyStream)? = nil

    /// A POST of `json` (compact) with `Content-Type: application/json`.
    public static func postJSON(_ url: String, _ json: JSONValue, headers: HTTPHeaders = [:]) -> HTTPRequest {
        var h = headers
        if !h.contains("Content-Type") { h.add("Content-Type", "application/json") }
        return HTTPRequest(method: .post, url: url, headers: h, body: Array(json.compact.utf8))
    }
}

/// Receives a response body as it arrives instead of it being buffered (server-sent events).
///
/// Called on the HTTP engine's thread from curl's callbacks: it must be quick and must never
/// block. The caller reads its state once `HTTPClient.execute` has returned (the engine is
/// done with it by then). Stall limits and the request's deadline apply as for any request.
public protocol HTTPBodyStream: AnyObject, Sendable {
    /// Called once, before the first body byte, with the final status and headers. True: the
    /// body goes to `receive`, and `HTTPResponse.body` stays empty; false: the body is buffered
    /// as usual (an error status, or a server that answered JSON instead of a stream).
    func begin(status: Int, headers: HTTPHeaders) -> Bool
    /// The next chunk of the body. Returning an error aborts the transfer; `execute` throws it.
    func receive(_ bytes: UnsafeRawBufferPointer) -> HTTPError?
}

/// A complete HTTP response: any status (non-2xx is not an error at this level; see
/// `requireSuccess()`), the final header block, and the whole body.
@MemberwiseInit
public struct HTTPResponse: Sendable {
    public var status: Int
    /// The headers of the final response (interim `100 Continue` blocks are dropped).
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// The protocol version used, e.g. `1.1` or `2`.
    public var httpVersion: String = "1.1"

    /// The body decoded as UTF-8 (invalid sequences replaced).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// True for 2xx.
    public var isSuccess: Bool { (200..<300).contains(status) }

    /// Returns self for 2xx, else throws `HTTPError.status` carrying code, body and headers.
    @discardableResult
    public func requireSuccess() throws(HTTPError) -> HTTPResponse {
        guard isSuccess else { throw HTTPError.status(code: status, body: body, headers: headers) }
        return self
    }

    /// Parses the body as JSON, or throws `HTTPError.malformedJSON`.
    public func json() throws(HTTPError) -> JSONValue {
        do {
            return try JSONValue.parse(Data(body))
        } catch {
            throw HTTPError.malformedJSON(reason: "\(error) (status \(status), \(body.count) bytes)")
        }
    }
}
