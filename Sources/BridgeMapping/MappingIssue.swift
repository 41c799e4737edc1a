import BridgeCore

/// Where something was written in the mappings: file, 1-based line and column, and the key
/// path inside the file (e.g. `agents[0].tools[1]`).
public struct MappingLocation: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int
    /// Key path inside the file; empty for the document itself.
    public var path: String

    /// `file:line:column`
    public var description: String { "\(file):\(line):\(column)" }
}

/// One problem found in the mappings, quoting where it is.
///
/// Printed as `mappings/agents.yaml:12:7: agents[0].tools[1]: unknown tool 'foo'`.
public struct MappingIssue: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var location: MappingLocation
    public var message: String

    public init(_ location: MappingLocation, _ message: String) {
        self.location = location
        self.message = message
    }

    public init(file: String, line: Int, column: Int, path: String, message: String) {
        self.init(MappingLocation(file: file, line: line, column: column, path: path), message)
    }

    public var file: String { location.file }
    public var line: Int { location.line }
    public var column: Int { location.column }
    public var path: String { location.path }

    public var description: String {
        location.path.isEmpty ? "\(location): \(message)" : "\(location): \(location.path): \(message)"
    }
}

/// Every problem found while loading or checking the mappings (never just the first one).
/// Ends the process with exit status 2.
public struct MappingErrors: BridgeError, Sendable, Equatable {
    public var issues: [MappingIssue]

    public init(_ issues: [MappingIssue]) { self.issues = issues }

    public var exitStatus: ExitStatus { .badInput }

    /// One issue per line, in file/line order.
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}
