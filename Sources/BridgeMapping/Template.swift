import BridgeCore

/// A text template with `{{task.column}}`, `{{task.column.json_key...}}` (into json/jsonb
/// columns) and `{{agent.column}}` (the matched database agent row) placeholders.
///
/// Parsed when the mappings load, so errors carry a location. Missing values render as the
/// empty string; non-string values render as compact JSON.
public struct Template: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// One piece of a parsed template.
    public enum Part: Sendable, Equatable, Hashable {
        case text(String)
        /// A reference: root (`task` or `agent`) and the path below it (column first).
        case reference(root: String, path: [String])
    }

    /// The roots a reference may start with.
    public static let roots: Set<String> = ["task", "agent"]

    public let source: String
    public let parts: [Part]

    /// Parses `source`. Throws `TemplateError` for an unterminated `{{`, an empty reference,
    /// or a reference whose root is not `task` or `agent`.
    public init(parsing source: String) throws(TemplateError) {
        self.source = source
        var parts: [Part] = []
        var text = ""
        var rest = Substring(source)
        while let open = rest.range(of: "{{") {
            text += rest[rest.startIndex..<open.lowerBound]
            let after = rest[open.upperBound...]
            guard let close = after.range(of: "}}") else {
                throw TemplateError(message: "unterminated '{{' in template")
            }
            let inner = after[after.startIndex..<close.lowerBound].trimmingSpaces
            let segments = inner.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !inner.isEmpty, segments.allSatisfy({ !$0.isEmpty && !$0.contains(where: { $0 == " " }) }) else {
                throw TemplateError(message: "bad template reference '{{\(inner)}}'")
            }
            guard Template.roots.contains(segments[0]) else {
                throw TemplateError(
                    message:
                        "template reference '{{\(inner)}}' has unknown root '\(segments[0])' (expected task.… or agent.…)"
                )
            }
            guard segments.count >= 2 else {
                throw TemplateError(
                    message: "template reference '{{\(inner)}}' needs a column, e.g. {{\(segments[0]).name}}")
            }
            if !text.isEmpty {
                parts.append(.text(text))
                text = ""
            }
            parts.append(.reference(root: segments[0], path: Array(segments.dropFirst())))
            rest = after[close.upperBound...]
        }
        text += rest
        if !text.isEmpty { parts.append(.text(text)) }
        self.parts = parts
    }

    /// A template with no placeholders (and, for literals in code, no parsing).
    public init(_ literal: String) {
        if let t = try? Template(parsing: literal) {
            self = t
        } else {
            self.source = literal
            self.parts = [.text(literal)]
        }
    }

    public var description: String { source }

    /// The columns referenced under `root` (the first path segment), in order, without repeats.
    public func columns(root: String) -> [String] {
        var seen: [String] = []
        for case .reference(let r, let path) in parts where r == root && !seen.contains(path[0]) {
            seen.append(path[0])
        }
        return seen
    }

    /// Renders with a task row and an optional agent row.
    public func render(task: [String: JSONValue], agent: [String: JSONValue]? = nil) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .text(let t): out += t
            case .reference(let root, let path):
                let row = root == "task" ? task : (agent ?? [:])
                // Empty default: a reference to a NULL or absent value renders as nothing.
                out += Template.lookup(row, path)?.templateText ?? ""
            }
        }
        return out
    }

    /// Follows `path` into a row: the first segment is a column, the rest are object keys or
    /// array indexes inside a JSON value (a json column stored as text is parsed first).
    public static func lookup(_ row: [String: JSONValue], _ path: [String]) -> JSONValue? {
        guard let first = path.first, var value = row[first] else { return nil }
        for seg in path.dropFirst() {
            if case .string(let s) = value, let parsed = try? JSONValue.parse(s) { value = parsed }
            switch value {
            case .object(let o):
                guard let v = o[seg] else { return nil }
                value = v
            case .array(let a):
                guard let i = Int(seg), a.indices.contains(i) else { return nil }
                value = a[i]
            default: return nil
            }
        }
        return value
    }
}

/// A template that could not be parsed.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

extension StringProtocol {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
