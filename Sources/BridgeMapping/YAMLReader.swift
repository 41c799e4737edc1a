import BridgeCore
import Yams

/// Walks a composed Yams `Node` tree, checking types and keys, recording where every key was
/// written and collecting every problem as a `MappingIssue`.
final class YAMLReader {
    let file: String
    var issues: [MappingIssue] = []
    /// `file#path` → location of the value written at `path`.
    var locations: [String: MappingLocation] = [:]

    let lines: [[Unicode.Scalar]]

    init(file: String, text: String = "") {
        self.file = file
        self.lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0.unicodeScalars) }
    }

    /// The character at a 1-based mark (libyaml counts columns in Unicode scalars).
    func character(at mark: Mark) -> Unicode.Scalar? {
        guard mark.line >= 1, mark.line <= lines.count else { return nil }
        let l = lines[mark.line - 1]
        return mark.column >= 1 && mark.column <= l.count ? l[mark.column - 1] : nil
    }

    /// Marks of the keys under which values were found, by key path: block mappings and lists
    /// are located at their key (their own start mark is where the previous token ended).
    var keyMarks: [String: Mark] = [:]

    func location(_ node: Node?, _ path: String) -> MappingLocation {
        var m = node?.mark
        if let node, let k = keyMarks[path], let own = m {
            switch node {
            case .mapping, .sequence:
                // Flow collections start at their bracket; block ones are located at their key.
                let c = character(at: own)
                if c != "{" && c != "[" { m = k }
            default: break
            }
        }
        return MappingLocation(file: file, line: m?.line ?? 1, column: m?.column ?? 1, path: path)
    }

    /// The file line and column of a 1-based (line, column) position inside the text of the
    /// scalar `node`: block scalars (`|`, `>`) start on the next line at their indentation;
    /// flow scalars start at the node (after an opening quote).
    func filePosition(of position: (line: Int, column: Int), in node: Node?) -> (line: Int, column: Int) {
        guard case .scalar(let s)? = node, let mark = node?.mark else { return position }
        switch s.style {
        case .literal, .folded:
            let line = mark.line + position.line
            let indent = line <= lines.count ? lines[line - 1].prefix(while: { $0 == " " }).count : 0
            return (line, indent + position.column)
        case .singleQuoted, .doubleQuoted:
            return position.line == 1
                ? (mark.line, mark.column + position.column) : (mark.line + position.line - 1, position.column)
        default:
            return position.line == 1
                ? (mark.line, mark.column + position.column - 1) : (mark.line + position.line - 1, position.column)
        }
    }

    func issue(_ node: Node?, _ path: String, _ message: String) {
        issues.append(MappingIssue(location(node, path), message))
    }

    func record(_ node: Node, _ path: String) {
        locations[file + "#" + path] = location(node, path)
    }

    static func join(_ base: String, _ key: String) -> String { base.isEmpty ? key : base + "." + key }

    static func kind(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        case .scalar:
            switch node.tagName {
            case .null: return "null"
            case .bool: return "a boolean"
            case .int: return "an integer"
            case .float: return "a number"
            default: return "a string"
            }
        }
    }

    /// A mapping whose keys are those of section `Key` (unknown keys are reported at the key).
    func map<Key: MappingKeySet>(_ node: Node, _ path: String, _ section: Key.Type) -> MapReader<Key>? {
        guard let entries = entries(node, path, allowed: Key.names) else { return nil }
        return MapReader(
            reader: self, node: node, path: path,
            entries: entries.compactMap { e in Key(rawValue: e.key).map { ($0, e.keyNode, e.value) } })
    }

    /// The entries of a mapping with string keys, every key in `allowed` (unknown keys are
    /// reported at the key, with the nearest allowed one or the whole list); nil allows any key.
    func entries(_ node: Node, _ path: String, allowed: [String]?) -> [(key: String, keyNode: Node, value: Node)]? {
        record(node, path)
        guard case .mapping(let m) = node else {
            issue(node, path, "expected a mapping, got \(Self.kind(node))")
            return nil
        }
        var entries: [(key: String, keyNode: Node, value: Node)] = []
        for (k, v) in m {
            guard case .scalar(let s) = k else {
                issue(k, path, "mapping keys must be strings")
                continue
            }
            if let allowed, !allowed.contains(s.string) {
                let childPath = Self.join(path, s.string)
                var msg = "unknown key '\(s.string)'"
                if let near = nearest(s.string, in: allowed) {
                    msg += " (did you mean '\(near)'?)"
                } else {
                    msg += " (expected one of: \(allowed.joined(separator: ", ")))"
                }
                issue(k, childPath, msg)
                continue
            }
            if let mark = k.mark { keyMarks[Self.join(path, s.string)] = mark }
            entries.append((s.string, k, v))
        }
        return entries
    }

    /// A list.
    func list(_ node: Node, _ path: String) -> [Node]? {
        record(node, path)
        guard case .sequence(let s) = node else {
            issue(node, path, "expected a list, got \(Self.kind(node))")
            return nil
        }
        return Array(s)
    }

    /// A string (integers and numbers are taken as their text; booleans and null are not).
    func string(_ node: Node, _ path: String) -> String? {
        record(node, path)
        guard case .scalar(let s) = node, [.str, .int, .float].contains(node.tagName) else {
            issue(node, path, "expected a string, got \(Self.kind(node))")
            return nil
        }
        return s.string
    }

    /// A non-empty string (an identifier such as a table or column name, or a name).
    func name(_ node: Node, _ path: String) -> String? {
        guard let s = string(node, path) else { return nil }
        if s.trimmingSpaces.isEmpty {
            issue(node, path, "must not be empty")
            return nil
        }
        return s
    }

    func int(_ node: Node, _ path: String, min: Int? = nil, max: Int? = nil) -> Int? {
        record(node, path)
        guard node.tagName == .int, let v = node.int else {
            issue(node, path, "expected an integer, got \(Self.kind(node))")
            return nil
        }
        if let min, v < min {
            issue(node, path, "must be at least \(min)")
            return nil
        }
        if let max, v > max {
            issue(node, path, "must be at most \(max)")
            return nil
        }
        return v
    }

    func bool(_ node: Node, _ path: String) -> Bool? {
        record(node, path)
        guard node.tagName == .bool, let v = node.bool else {
            issue(node, path, "expected true or false, got \(Self.kind(node))")
            return nil
        }
        return v
    }

    func strings(_ node: Node, _ path: String) -> [String]? {
        guard let items = list(node, path) else { return nil }
        var out: [String] = []
        var ok = true
        for (i, item) in items.enumerated() {
            if let s = name(item, "\(path)[\(i)]") { out.append(s) } else { ok = false }
        }
        return ok ? out : nil
    }

    /// A mapping of strings, its keys among `keys` when given (unknown keys are reported at the
    /// key, as in a section), else any.
    func stringMap(_ node: Node, _ path: String, keys: [String]? = nil) -> [String: String]? {
        guard let entries = entries(node, path, allowed: keys) else { return nil }
        var out: [String: String] = [:]
        for e in entries {
            if let s = string(e.value, Self.join(path, e.key)) { out[e.key] = s }
        }
        return out
    }

    func template(_ node: Node, _ path: String) -> Template? {
        guard let s = string(node, path) else { return nil }
        do { return try Template(parsing: s) } catch {
            issue(node, path, error.message)
            return nil
        }
    }

    /// Any YAML value as JSON (recording the location of every nested key).
    func json(_ node: Node, _ path: String) -> JSONValue? {
        record(node, path)
        switch node {
        case .alias:
            issue(node, path, "aliases are not supported here")
            return nil
        case .scalar(let s):
            switch node.tagName {
            case .null: return .null
            case .bool: return node.bool.map(JSONValue.bool)
            case .int:
                // Exact: a YAML integer beyond Int is kept as its decimal text.
                if let n = JSONNumber(text: s.string.replacingOccurrences(of: "+", with: "")), n.isInteger {
                    return .number(n)
                }
                return node.int.map { JSONValue.integer(Int64($0)) }
            case .float:
                guard let d = node.float, d.isFinite else {
                    issue(node, path, "not a finite number")
                    return nil
                }
                return .number(d)
            default: return .string(s.string)
            }
        case .sequence(let seq):
            var out: [JSONValue] = []
            for (i, item) in seq.enumerated() {
                guard let v = json(item, "\(path)[\(i)]") else { return nil }
                out.append(v)
            }
            return .array(out)
        case .mapping(let m):
            var out: [String: JSONValue] = [:]
            for (k, v) in m {
                guard let key = k.scalar?.string else {
                    issue(k, path, "mapping keys must be strings")
                    return nil
                }
                guard let value = json(v, Self.join(path, key)) else { return nil }
                out[key] = value
            }
            return .object(out)
        }
    }
}

/// The checked entries of one YAML mapping of section `Key`. Lookups take the section's keys:
/// a key declared required is reported missing at this mapping, and an integer key's bounds
/// are its declaration's.
struct MapReader<Key: MappingKeySet> {
    let reader: YAMLReader
    let node: Node
    let path: String
    let entries: [(key: Key, keyNode: Node, value: Node)]

    func has(_ key: Key) -> Bool { entries.contains { $0.key == key } }
    func node(_ key: Key) -> Node? { entries.first { $0.key == key }?.value }
    func keyNode(_ key: Key) -> Node? { entries.first { $0.key == key }?.keyNode }
    func path(_ key: Key) -> String { YAMLReader.join(path, key.rawValue) }

    /// The value of a required key, or an issue at this mapping.
    func required(_ key: Key) -> Node? {
        if let n = node(key) {
            if n.tagName == .null, case .scalar = n {
                reader.issue(n, path(key), "must not be empty")
                return nil
            }
            return n
        }
        reader.issue(node, path, "missing required key '\(key.rawValue)'")
        return nil
    }

    /// The value of `key`, checked as required when its declaration (or `required`) says so.
    func value(_ key: Key, required req: Bool? = nil) -> Node? {
        (req ?? key.declaration.isRequired) ? required(key) : node(key)
    }

    func string(_ key: Key, required req: Bool? = nil) -> String? {
        value(key, required: req).flatMap { reader.string($0, path(key)) }
    }

    func name(_ key: Key, required req: Bool? = nil) -> String? {
        value(key, required: req).flatMap { reader.name($0, path(key)) }
    }

    func int(_ key: Key) -> Int? {
        guard case .int(let min, let max) = key.declaration.kind else {
            preconditionFailure("\(path(key)) is not declared an integer")
        }
        return value(key).flatMap { reader.int($0, path(key), min: min, max: max) }
    }
    func bool(_ key: Key) -> Bool? { value(key).flatMap { reader.bool($0, path(key)) } }
    /// The seconds of the duration under `key` (see `MappingDuration`).
    func duration(_ key: Key) -> Double? {
        guard let n = value(key), let text = reader.string(n, path(key)) else { return nil }
        guard let seconds = MappingDuration.seconds(text) else {
            reader.issue(
                n, path(key), "expected a duration above 0 and at most 1e9 s, such as 30m, 24h or 7d, got '\(text)'")
            return nil
        }
        return seconds
    }

    /// The name under `key`, else the default its declaration gives.
    func nameOrDefault(_ key: Key) -> String { name(key) ?? key.declaredDefault }
    func boolOrDefault(_ key: Key) -> Bool { bool(key) ?? (key.declaredDefault == "true") }
    func intOrDefault(_ key: Key) -> Int {
        guard let d = Int(key.declaredDefault) else { preconditionFailure("\(path(key)) declares no integer default") }
        return int(key) ?? d
    }
    func strings(_ key: Key) -> [String]? { value(key).flatMap { reader.strings($0, path(key)) } }
    /// The string map under `key`, its keys among `keys` when given (see `YAMLReader.stringMap`).
    func stringMap(_ key: Key, keys: [String]? = nil) -> [String: String]? {
        value(key).flatMap { reader.stringMap($0, path(key), keys: keys) }
    }
    func template(_ key: Key, required req: Bool? = nil) -> Template? {
        value(key, required: req).flatMap { reader.template($0, path(key)) }
    }
    func map<Section: MappingKeySet>(_ key: Key, _ section: Section.Type) -> MapReader<Section>? {
        node(key).flatMap { reader.map($0, path(key), section) }
    }
}

extension MapReader where Key: ModelKeySet {
    /// Reads every bound key of the section into its field of `model`: the value given, else
    /// the key's default (nil for a name that may be absent).
    func read(into model: inout Key.Model) {
        for key in Key.allCases {
            guard case .bound(let field) = key.field else { continue }
            switch field.path {
            case .name(let p): model[keyPath: p] = nameOrDefault(key)
            case .optionalName(let p): model[keyPath: p] = name(key)
            case .int(let p, _, _): model[keyPath: p] = intOrDefault(key)
            case .bool(let p): model[keyPath: p] = boolOrDefault(key)
            case .duration(let p): model[keyPath: p] = duration(key) ?? Key.defaults[keyPath: p]
            }
        }
    }

    /// The defaults with every bound key of the section read into them.
    func read() -> Key.Model {
        var model = Key.defaults
        read(into: &model)
        return model
    }
}

/// The closest candidate within an edit distance of 2 (for "did you mean").
public func nearest(_ word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        for i in 1...a.count {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                cur[j] = Swift.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
    let w = Array(word.lowercased())
    let scored = candidates.map { ($0, distance(w, Array($0.lowercased()))) }.filter { $0.1 <= 2 }
    return scored.min { $0.1 < $1.1 }?.0
}

extension Node {
    /// The resolved tag's name (`Tag.name` is internal to Yams; its raw value is public).
    var tagName: Tag.Name { Tag.Name(rawValue: tag.rawValue) }
}
