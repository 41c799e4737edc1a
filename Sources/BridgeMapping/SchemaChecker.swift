import BridgeCore
import Yams

/// Checks a tool's parameters JSON Schema: an object schema at the top; in strict mode every
/// object has `additionalProperties: false` and lists every property in `required`; types are
/// JSON Schema types; `enum` is a non-empty list.
struct SchemaChecker {
    let reader: YAMLReader
    let strict: Bool

    static let types: Set<String> = ["string", "number", "integer", "boolean", "object", "array", "null"]

    func issue(_ path: String, _ message: String) {
        let loc = reader.locations[reader.file + "#" + path]
        reader.issues.append(MappingIssue(loc ?? MappingLocation(file: reader.file, line: 0, column: 0, path: path),
                                          message))
    }

    func checkTop(_ schema: JSONValue, node: Node, path: String) {
        guard let o = schema.objectValue else {
            issue(path, "the parameters schema must be a mapping with type: object")
            return
        }
        if o["type"] != .string("object") {
            issue(o["type"] == nil ? path : path + ".type", "the parameters schema must have type: object at the top")
            return
        }
        check(schema, path: path)
    }

    func check(_ schema: JSONValue, path: String) {
        guard let o = schema.objectValue else {
            issue(path, "a schema must be a mapping")
            return
        }
        var declared: [String] = []
        switch o["type"] {
        case nil:
            if o["enum"] == nil && o["anyOf"] == nil && o["$ref"] == nil && o["const"] == nil {
                issue(path, "schema has no type")
            }
        case .string(let t)?:
            declared = [t]
        case .array(let ts)?:
            declared = ts.compactMap(\.stringValue)
            if declared.count != ts.count || ts.isEmpty { issue(path + ".type", "type must be a string or a list of strings") }
        default:
            issue(path + ".type", "type must be a string or a list of strings")
        }
        for t in declared where !Self.types.contains(t) {
            issue(path + ".type", "'\(t)' is not a JSON Schema type (expected one of: \(Self.types.sorted().joined(separator: ", ")))")
        }
        if let e = o["enum"] {
            if let a = e.arrayValue { if a.isEmpty { issue(path + ".enum", "enum must not be empty") } }
            else { issue(path + ".enum", "enum must be a list") }
        }
        if declared.contains("object") {
            let props = o["properties"]
            var names: [String] = []
            if let props {
                if let p = props.objectValue {
                    names = p.keys.sorted()
                    for k in names { check(p[k]!, path: path + ".properties." + k) }
                } else { issue(path + ".properties", "properties must be a mapping") }
            }
            var required: [String] = []
            if let r = o["required"] {
                if let a = r.arrayValue, a.allSatisfy({ $0.stringValue != nil }) {
                    required = a.compactMap(\.stringValue)
                    for (i, n) in required.enumerated() where !names.contains(n) {
                        issue(path + ".required[\(i)]", "'\(n)' is required but not a property")
                    }
                } else { issue(path + ".required", "required must be a list of property names") }
            }
            if strict {
                if o["additionalProperties"] != .bool(false) {
                    issue(o["additionalProperties"] == nil ? path : path + ".additionalProperties",
                          "strict schemas need additionalProperties: false")
                }
                let missing = names.filter { !required.contains($0) }
                if !missing.isEmpty {
                    issue(o["required"] == nil ? path : path + ".required",
                          "strict schemas must list every property in required (missing: \(missing.joined(separator: ", ")))")
                }
            }
        }
        if declared.contains("array") {
            if let items = o["items"] { check(items, path: path + ".items") }
            else if strict { issue(path, "array schemas need items") }
        }
        if let any = o["anyOf"] {
            if let a = any.arrayValue, !a.isEmpty {
                for (i, s) in a.enumerated() { check(s, path: path + ".anyOf[\(i)]") }
            } else { issue(path + ".anyOf", "anyOf must be a non-empty list") }
        }
    }
}
