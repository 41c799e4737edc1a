import BridgeCore
import FoundationEssentials

/// An HTTP/1.1 and HTTP/2 client over libcurl.
///
/// One curl multi handle, driven by one dedicated thread, runs every request of the
/// client, so a hundred concurrent requests need one thread, not a hundred. Connections
/// are kept in the multi handle's cache and reused; HTTPS servers that offer HTTP/2 get
/// it (and multiplexing). Proxy and CA settings come from curl's usual environment
/// (`https_proxy`, `no_proxy`, `CURL_CA_BUNDLE`, …): the client does not override them.
///
/// ```swift
/// let client = HTTPClient()
/// let response = try await client.execute(.postJSON(url, ["a": 1]))
/// let json = try response.requireSuccess().json()
/// ```
///
/// Create one client and share it; call `shutdown()` when done (deinit does it too).
public final class HTTPClient: Sendable {
    /// Connect and read timeouts. The per-request budget is `HTTPRequest.deadline`.
    public struct Timeout: Sendable, Equatable {
        /// Maximum time to establish a connection (TCP + TLS). Nil: curl's default (300 s).
        public var connect: Duration?
        /// The stall window: the longest time the transfer may stay below `minimumRate` once
        /// connected; with the default rate, the longest time without a single byte (curl's
        /// low-speed limit; whole seconds, rounded up). Nil: no stall limit.
        public var read: Duration?
        /// Bytes per second a transfer must keep up over the `read` window; a server that
        /// trickles below it (one byte a second, say) fails as a timeout after `read` instead of
        /// holding the request until its total deadline. Default 1: only silence counts.
        public var minimumRate: Int

        public init(connect: Duration? = nil, read: Duration? = nil, minimumRate: Int = 1) {
            self.connect = connect
            self.read = read
            self.minimumRate = max(1, minimumRate)
        }
    }

    /// Client-wide settings; requests may override the timeouts and the size cap.
    public struct Configuration: Sendable {
        /// Default: connect 10 s, read 300 s (non-streaming model calls can think for minutes
        /// before the first byte).
        public var timeout: Timeout
        /// Default cap on a response body: 32 MiB.
        public var maxResponseBytes: Int
        /// At most this many connections to one host; more requests wait for a free one
        /// (or share an HTTP/2 connection). Default 8.
        public var maxConnectionsPerHost: Int
        /// How many idle connections the cache keeps. Default 32.
        public var maxCachedConnections: Int
        /// Sent unless the request sets `User-Agent`.
        public var userAgent: String

        public init(
            timeout: Timeout = Timeout(connect: .seconds(10), read: .seconds(300)),
            maxResponseBytes: Int = 32 << 20, maxConnectionsPerHost: Int = 8,
            maxCachedConnections: Int = 32, userAgent: String = "bridge"
        ) {
            self.timeout = timeout
            self.maxResponseBytes = maxResponseBytes
            self.maxConnectionsPerHost = maxConnectionsPerHost
            self.maxCachedConnections = maxCachedConnections
            self.userAgent = userAgent
        }
    }

    public let configuration: Configuration
    private let engine: CurlMultiEngine

    /// Starts the client's thread.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.engine = CurlMultiEngine(configuration: configuration)
    }

    deinit { engine.shutdown() }

    /// Sends `request` and returns the complete response, whatever its status.
    ///
    /// Throws `HTTPError.timeout` when a timeout or the deadline passes, `.tooLarge` when
    /// the body exceeds the cap, `.transport` for connection-level failures, `.invalidURL`,
    /// and `.cancelled` when the calling task is cancelled (the transfer is aborted).
    public func execute(_ request: HTTPRequest) async throws(HTTPError) -> HTTPResponse {
        let transfer = try Transfer(request: request, configuration: configuration)
        let engine = self.engine
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation {
                (continuation: CheckedContinuation<Result<HTTPResponse, HTTPError>, Never>) in
                transfer.continuation = continuation
                engine.submit(transfer)
            }
        } onCancel: {
            engine.cancel(transfer)
        }
        return try result.get()
    }

    /// Fails every queued and running request with `HTTPError.shutdown` and stops the
    /// thread. Later calls to `execute` fail with `.shutdown`. Safe to call twice.
    public func shutdown() { engine.shutdown() }
}
