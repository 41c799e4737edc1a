import Foundation

/// The process environment, passed in explicitly so tests can set it.
public struct Environment: Sendable {
    public var values: [String: String]

    public init(_ values: [String: String]) { self.values = values }

    /// The real environment of this process.
    public static var process: Environment { Environment(ProcessInfo.processInfo.environment) }

    public subscript(_ key: String) -> String? {
        guard let v = values[key], !v.isEmpty else { return nil }
        return v
    }
}
