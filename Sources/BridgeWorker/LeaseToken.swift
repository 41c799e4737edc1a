import BridgeCore
import BridgePostgres

/// A lease's fencing token: the text of `bridge_lease_token`, a random UUID the claim sets.
/// Every write of a claimed task's run is guarded on it, and the worker keys its runs in flight
/// by it; a type of its own so that it is never taken for a task key or a trace id.
public struct LeaseToken: TextID, PostgresBindable, PostgresDecodable {
    public let text: String

    public init(_ text: String) { self.text = text }
}
