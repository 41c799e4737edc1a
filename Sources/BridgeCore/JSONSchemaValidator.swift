/// Validates a JSON value against the subset of JSON Schema that OpenAI's strict structured
/// outputs accept: `type` (a name or a list of names, so `["string", "null"]` is nullable),
/// `properties`, `required`, `additionalProperties` (false, true or a schema), `items`, `enum`,
/// `const`, `anyOf`, and local `$ref`s into `$defs` / `definitions`. Keywords outside that
/// subset (formats, lengths, patterns) are not checked, as the API does not enforce them in
/// strict mode either.
///
/// Hand-written rather than a package: the subset is small, and no maintained Swift JSON Schema
/// validator is among the available packages.
public struct JSONSchemaValidator: Sendable {
    public let schema: JSONValue

    public init(schema: JSONValue) { self.schema = schema }

    /// One violation: the JSON path of the value (`$.sources[0]`) and what is wrong.
    public struct Violation: Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var description: String { "\(path): \(message)" }
    }

    /// Every violation of `value` (empty when it is valid), at most `limit`.
    public func violations(of value: JSONValue, limit: Int = 20) -> [Violation] {
        var out: [Violation] = []
        check(value, against: schema, path: "$", depth: 0, into: &out, limit: limit)
        return out
    }

    public func isValid(_ value: JSONValue) -> Bool { violations(of: value, limit: 1).isEmpty }

    static func typeName(_ v: JSONValue) -> String {
        if v.isNull { return "null" }
        if v.boolValue != nil { return "boolean" }
        if let d = v.doubleValue { return d.rounded() == d && abs(d) < 9.007e15 ? "integer" : "number" }
        if v.stringValue != nil { return "string" }
        if v.arrayValue != nil { return "array" }
        return "object"
    }

    static func matches(_ v: JSONValue, type: String) -> Bool {
        let actual = typeName(v)
        return actual == type || (type == "number" && actual == "integer")
    }

    func resolve(_ ref: String) -> JSONValue? {
        for prefix in ["#/$defs/", "#/definitions/"] where ref.hasPrefix(prefix) {
            let name = String(ref.dropFirst(prefix.count))
            return schema[prefix == "#/$defs/" ? "$defs" : "definitions"]?[name]
        }
        // Not `ref == "#" ? schema : nil`: JSONValue is nil-literal-expressible, so that nil
        // would be JSON null, a "schema" that accepts anything.
        guard ref == "#" else { return nil }
        return schema
    }

    func check(_ v: JSONValue, against s: JSONValue, path: String, depth: Int, into out: inout [Violation], limit: Int)
    {
        guard out.count < limit else { return }
        func fail(_ message: String) { out.append(Violation(path: path, message: message)) }
        if s.boolValue == true { return }
        if s.boolValue == false { return fail("no value is allowed here") }
        guard let o = s.objectValue else { return }
        guard depth < 64 else { return fail("schema nesting too deep") }
        if let ref = o["$ref"]?.stringValue {
            guard let target = resolve(ref) else { return fail("unresolvable $ref '\(ref)'") }
            check(v, against: target, path: path, depth: depth + 1, into: &out, limit: limit)
        }
        if let branches = o["anyOf"]?.arrayValue {
            let ok = branches.contains { b in
                var sub: [Violation] = []
                check(v, against: b, path: path, depth: depth + 1, into: &sub, limit: 1)
                return sub.isEmpty
            }
            if !ok { fail("matches none of the \(branches.count) anyOf alternatives") }
        }
        if let c = o["const"], c != v { fail("expected the constant \(c.compact)") }
        if let e = o["enum"]?.arrayValue, !e.contains(v) {
            fail("\(Self.short(v)) is not one of \(JSONValue.array(e).compact)")
        }
        var types: [String] = []
        if let t = o["type"]?.stringValue {
            types = [t]
        } else if let ts = o["type"]?.arrayValue {
            types = ts.compactMap(\.stringValue)
        }
        if !types.isEmpty, !types.contains(where: { Self.matches(v, type: $0) }) {
            return fail("expected \(types.joined(separator: " or ")), got \(Self.typeName(v))")
        }
        if let obj = v.objectValue {
            let props = o["properties"]?.objectValue ?? [:]
            for name in (o["required"]?.arrayValue ?? []).compactMap(\.stringValue) where obj[name] == nil {
                out.append(Violation(path: path, message: "missing required property '\(name)'"))
            }
            for (key, value) in obj.sorted(by: { $0.key < $1.key }) {
                let sub = path + "." + key
                if let ps = props[key] {
                    check(value, against: ps, path: sub, depth: depth + 1, into: &out, limit: limit)
                } else if let extra = o["additionalProperties"] {
                    if extra.boolValue == false {
                        out.append(Violation(path: path, message: "unexpected property '\(key)'"))
                    } else {
                        check(value, against: extra, path: sub, depth: depth + 1, into: &out, limit: limit)
                    }
                }
            }
        }
        if let arr = v.arrayValue, let items = o["items"] {
            for (i, item) in arr.enumerated() {
                check(item, against: items, path: "\(path)[\(i)]", depth: depth + 1, into: &out, limit: limit)
            }
        }
    }

    static func short(_ v: JSONValue) -> String {
        let text = v.compact
        return text.count > 60 ? String(text.prefix(57)) + "..." : text
    }
}

/// The `$ref`s of a schema and how deep its smallest instances go, for the checks that accept a
/// schema (`bridge mappings check`) and for the offline model, which must answer a valid
/// instance of every schema they accept. Only local references are resolved: `#` (the whole
/// schema) and `#/$defs/NAME` or `#/definitions/NAME`.
public struct JSONSchemaRefs: Sendable {
    public let root: JSONValue
    /// The height of the smallest instance of each reference target (`#`, `#/$defs/A`), as the
    /// generator builds instances: nil for a target with no finite instance.
    public let heights: [String: Int]
    /// Whether objects get every property (strict schemas) or only the required ones.
    public let allProperties: Bool

    static let infinite = Int.max / 4

    public init(root: JSONValue, allProperties: Bool) {
        self.root = root
        self.allProperties = allProperties
        var targets = ["#"]
        for key in ["$defs", "definitions"] {
            for name in (root[key]?.objectValue?.keys.sorted() ?? []) { targets.append("#/\(key)/\(name)") }
        }
        // Least fixpoint: every target starts with no instance; each round can only lower a height.
        var known: [String: Int] = [:]
        let validator = JSONSchemaValidator(schema: root)
        for _ in 0...(targets.count + 1) {
            var changed = false
            for t in targets {
                guard let schema = validator.resolve(t) else { continue }
                let h = Self.height(schema, known: known, allProperties: allProperties, depth: 0)
                if h < Self.infinite, h != known[t] {
                    known[t] = h
                    changed = true
                }
            }
            if !changed { break }
        }
        self.heights = known
    }

    /// The target of a local `$ref`, or nil (external, or nothing there).
    public func resolve(_ ref: String) -> JSONValue? { JSONSchemaValidator(schema: root).resolve(ref) }

    /// The height of the smallest instance of `schema` (`Int.max / 4` when none is finite).
    public func height(_ schema: JSONValue) -> Int {
        Self.height(schema, known: heights, allProperties: allProperties, depth: 0)
    }

    public func hasFiniteInstance(_ schema: JSONValue) -> Bool { height(schema) < Self.infinite }

    static func height(_ schema: JSONValue, known: [String: Int], allProperties: Bool, depth: Int) -> Int {
        if schema.boolValue == false { return infinite }
        guard let s = schema.objectValue, depth < 256 else { return schema.boolValue == true ? 0 : infinite }
        func h(_ sub: JSONValue) -> Int { height(sub, known: known, allProperties: allProperties, depth: depth + 1) }
        if let ref = s["$ref"]?.stringValue { return known[ref] ?? infinite }
        if s["default"] != nil || s["examples"]?.arrayValue?.first != nil || s["const"] != nil
            || s["enum"]?.arrayValue?.first != nil
        {
            return 0
        }
        for key in ["anyOf", "oneOf"] {
            if let branches = s[key]?.arrayValue { return branches.map(h).min() ?? infinite }
        }
        if let all = s["allOf"]?.arrayValue { return all.map(h).max() ?? 0 }
        return types(s).map { typeHeight($0, s, allProperties: allProperties, h) }.min() ?? infinite
    }

    /// The types a schema allows, as the generator tries them (no `type`: an object if it has
    /// properties, else a string).
    public static func types(_ s: [String: JSONValue]) -> [String] {
        if let t = s["type"]?.stringValue { return [t] }
        if let ts = s["type"]?.arrayValue, !ts.isEmpty { return ts.compactMap(\.stringValue) }
        return [s["properties"] != nil ? "object" : "string"]
    }

    public static func typeHeight(
        _ type: String, _ s: [String: JSONValue], allProperties: Bool, _ h: (JSONValue) -> Int
    ) -> Int {
        switch type {
        case "array":
            guard let min = s["minItems"]?.doubleValue, min >= 1 else { return 0 }
            let item = s["items"].map(h) ?? 0
            return item >= infinite ? infinite : item + 1
        case "object":
            let props = s["properties"]?.objectValue ?? [:]
            let required = Set((s["required"]?.arrayValue ?? []).compactMap(\.stringValue))
            var deepest = 0
            for (name, sub) in props where allProperties || required.contains(name) {
                deepest = max(deepest, h(sub))
                if deepest >= infinite { return infinite }
            }
            return deepest + 1
        default:
            return 0
        }
    }
}
