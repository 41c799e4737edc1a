import BridgeCore
import Foundation

/// The metrics address could not be served (bad address, port in use).
public struct MetricsServerError: InputError {
    /// What is wrong, after the address's name: "must be HOST:PORT …", "127.0.0.1:80: cannot
    /// listen: …" (the command line puts its flag first).
    public var reason: String
    public var message: String { "the metrics address \(reason)" }
    init(_ reason: String) { self.reason = reason }
}

/// The Prometheus scrape endpoint: `GET /metrics` answers with `body()` in the text exposition
/// format; anything else is 404 (405 for methods other than GET and HEAD). `Connection: close`:
/// a scrape endpoint, not a web server.
///
/// It is bridge's `HTTPServer` (BridgeCore) with its limits: one serving thread for every
/// connection, a deadline for each whole exchange (`Limits.requestDeadline`; 408 for a head
/// still incomplete then), request heads up to `Limits.maxHead` (431 past that), and at most
/// `Limits.maxConnections` open, the oldest idle one closed to make room.
public final class MetricsServer: Sendable {
    public typealias Body = @Sendable () -> [UInt8]

    /// What one client may take.
    public struct Limits: Sendable {
        /// From accept to the last byte of the answer.
        public var requestDeadline: Duration = .seconds(5)
        /// The largest request head (request line and headers) read.
        public var maxHead = 8 * 1024
        /// Connections kept open at once.
        public var maxConnections = 512
        public init() {}
    }

    /// `host:port` actually bound (the port filled in when 0 was asked for).
    public let address: String
    private let server: HTTPServer

    /// Binds `hostPort` (`127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`, `localhost:0`) and
    /// starts serving.
    public init(hostPort: String, limits: Limits = Limits(), body: @escaping Body) throws {
        let (host, port) = try Self.split(hostPort)
        var serverLimits = HTTPServer.Limits()
        serverLimits.requestDeadline = limits.requestDeadline
        serverLimits.maxHead = limits.maxHead
        serverLimits.maxConnections = limits.maxConnections
        serverLimits.maxBody = 64 * 1024
        do {
            server = try HTTPServer(host: host, port: port, limits: serverLimits, threadName: "bridge-metrics") {
                request, exchange in
                exchange.respond(Self.answer(request, body: body), close: true)
            }
        } catch {
            throw MetricsServerError("\(hostPort): \(error.message)")
        }
        address = server.address
    }

    /// Stops accepting, closes every connection and waits (up to 5 s) for the serving thread
    /// to end. Idempotent.
    public func stop() { server.stop() }

    /// How many connections were accepted so far.
    public var connectionCount: Int { server.connectionCount }

    /// The answer to `request`.
    static func answer(_ request: HTTPServerRequest, body: Body) -> HTTPServerResponse {
        guard request.method == "GET" || request.method == "HEAD" else {
            return .text("only GET\n", status: 405, headers: [(name: "Allow", value: "GET, HEAD")])
        }
        guard request.path == "/metrics" else { return .text("not found: try /metrics\n", status: 404) }
        return HTTPServerResponse(
            status: 200, headers: [(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")],
            body: body())
    }

    /// `HOST:PORT` → (host, port); `[v6]:PORT` too. Exit 2 with the reason otherwise.
    static func split(_ hostPort: String) throws -> (host: String, port: String) {
        let bad = MetricsServerError(
            "must be HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464), not '\(hostPort)'")
        guard let colon = hostPort.lastIndex(of: ":") else { throw bad }
        var host = String(hostPort[..<colon])
        let port = String(hostPort[hostPort.index(after: colon)...])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty, !host.contains(":") || hostPort.hasPrefix("["),
            let n = Int(port), (0...65535).contains(n)
        else { throw bad }
        return (host, port)
    }
}
