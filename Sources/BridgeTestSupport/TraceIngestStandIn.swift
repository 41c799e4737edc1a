import BridgeCore
import Foundation
import Synchronization

/// A loopback OpenAI `/v1/traces/ingest` for end-to-end tests: it records every item it
/// accepts, and answers 503 while it is down (`isUp` false).
public final class TraceIngestStandIn: Sendable {
    /// Whether it answers, and what it accepted (shared with the server's handler).
    private final class State: Sendable {
        let value: Mutex<(up: Bool, received: [JSONValue])>
        init(up: Bool) { value = Mutex((up, [])) }
    }
    private let state: State
    private let server: TestHTTPServer

    /// The environment that points bridge's `openai` trace exporter (and model) at the stand-in.
    public let environment: [String: String]

    public init(up: Bool = true, key: String = "sk-ingest-test") throws {
        let state = State(up: up)
        server = try TestHTTPServer { request in
            guard request.path == "/v1/traces/ingest" else { return .json(["error": ["message": "no"]], status: 404) }
            let accepted = state.value.withLock {
                guard $0.up else { return false }
                $0.received += request.json?["data"]?.arrayValue ?? []
                return true
            }
            return accepted ? .json([:]) : .json(["error": ["message": "ingest unavailable"]], status: 503)
        }
        self.state = state
        environment = BridgeBinary.openAIEnvironment(server, key: key, exportTraces: true)
    }

    public func stop() { server.stop() }

    public var isUp: Bool {
        get { state.value.withLock { $0.up } }
        set { state.value.withLock { $0.up = newValue } }
    }

    /// Every item accepted, in order.
    public var items: [JSONValue] { state.value.withLock { $0.received } }
    /// The ids of the spans accepted, in order (twice if sent twice).
    public var spanIds: [String] { ids(of: "trace.span") }
    /// The ids of the traces accepted.
    public var traceIds: Set<String> { Set(ids(of: "trace")) }

    private func ids(of object: String) -> [String] {
        items.filter { $0["object"]?.stringValue == object }.map { $0["id"]?.stringValue ?? "" }
    }
}
