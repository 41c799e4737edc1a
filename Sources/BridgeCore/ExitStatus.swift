/// Process exit statuses shared by every `bridge` command.
///
/// | code | meaning |
/// |------|---------|
/// | 0 | success |
/// | 1 | the work or a check failed (a migration failed, drift, a task failed, a verify check failed) |
/// | 2 | bad usage, configuration or input (flags, YAML, unknown names, unreachable database) |
/// | 3 | `bridge migrate status` only: migrations are pending |
public enum ExitStatus: Int32, Sendable {
    case ok = 0
    case failed = 1
    case badInput = 2
    case pending = 3
}

/// An error that knows how it should end the process and how to explain itself to a person.
///
/// Every error type in bridge that can reach the command line conforms. The message quotes
/// the file, key, table, column or id it concerns.
public protocol BridgeError: Error, CustomStringConvertible {
    /// The exit status the command line should end with.
    var exitStatus: ExitStatus { get }
}

/// The one shape of an error that is bad usage, configuration or input (exit 2) and says
/// everything in its message. Each conforming type stays its own type (callers catch it by
/// type, and its name says where it comes from); it writes only its message.
public protocol InputError: BridgeError {
    var message: String { get }
}

extension InputError {
    public var exitStatus: ExitStatus { .badInput }
    public var description: String { message }
}
