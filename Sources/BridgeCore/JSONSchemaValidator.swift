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
        return ref == "#" ? schema : nil
    }

    func check(_ v: JSONValue, against s: JSONValue, path: String, depth: Int, into out: inout [Violation], limit: Int) {
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
        if let t = o["type"]?.stringValue { types = [t] } else if let ts = o["type"]?.arrayValue { types = ts.compactMap(\.stringValue) }
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
