import FoundationEssentials

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

/// The environment of a child process bridge starts (command tools; stdio servers): never
/// bridge's own, which holds API keys and the database password, but only `PATH`, `HOME`,
/// `LANG` and `TZ` from it plus the variables a mapping names in its `env:` allowlist.
public enum ChildEnvironment {
    /// Passed to every child when set.
    public static let baseline = ["PATH", "HOME", "LANG", "TZ"]

    /// The child's variables: `baseline` and `allow`, taken from `environment` where set.
    public static func make(from environment: Environment, allow: [String]) -> [String: String] {
        var out: [String: String] = [:]
        for name in baseline + allow {
            if let v = environment.values[name] { out[name] = v }
        }
        return out
    }

    /// Whether `name` can be an environment variable name (`^[A-Za-z_][A-Za-z0-9_]*$`).
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic)
        else { return false }
        return name.unicodeScalars.allSatisfy {
            $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0)))
        }
    }
}
