import ArgumentParser
import BridgeTraceModel

/// `--task` values are task keys, taken as typed (the worker checks them against the key
/// column's type before it claims anything).
extension TaskKey: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
