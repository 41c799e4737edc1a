import BridgeCore
import Foundation

/// A loopback OpenAI `/v1/traces/ingest` for end-to-end tests: it records every item it
/// accepts, and answers 503 while it is down (`isUp` false).
public final class TraceIngestStandIn: @unchecked Sendable {
    // @unchecked Sendable: the mutable fields are guarded by `lock`.
    private let lock = NSLock()
    private var up: Bool
    private var received: [JSONValue] = []
    private var server: TestHTTPServer!

    /// The environment that points bridge's `openai` trace exporter (and model) at the stand-in.
    public private(set) var environment: [String: String] = [:]

    public init(up: Bool = true, key: String = "sk-ingest-test") throws {
        self.up = up
        server = try TestHTTPServer { [weak self] request in
            guard request.path == "/v1/traces/ingest" else { return .json(["error": ["message": "no"]], status: 404) }
            guard let self, isUp else { return .json(["error": ["message": "ingest unavailable"]], status: 503) }
            lock.withLock { received += request.json?["data"]?.arrayValue ?? [] }
            return .json([:])
        }
        environment = BridgeBinary.openAIEnvironment(server, key: key, exportTraces: true)
    }

    public func stop() { server.stop() }

    public var isUp: Bool {
        get { lock.withLock { up } }
        set { lock.withLock { up = newValue } }
    }

    /// Every item accepted, in order.
    public var items: [JSONValue] { lock.withLock { received } }
    /// The ids of the spans accepted, in order (twice if sent twice).
    public var spanIds: [String] { ids(of: "trace.span") }
    /// The ids of the traces accepted.
    public var traceIds: Set<String> { Set(ids(of: "trace")) }

    private func ids(of object: String) -> [String] {
        items.filter { $0["object"]?.stringValue == object }.map { $0["id"]?.stringValue ?? "" }
    }
}
