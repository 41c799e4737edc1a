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
        reader.issues.append(
            MappingIssue(
                loc ?? MappingLocation(file: reader.file, line: 0, column: 0, path: path),
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
        for key in ["$defs", "definitions"] {
            guard let d = o[key] else { continue }
            guard let defs = d.objectValue else {
                issue(path + "." + key, "\(key) must be a mapping of names to schemas")
                continue
            }
            for name in defs.keys.sorted() { check(defs[name]!, path: path + ".\(key).\(name)") }
        }
        if checkRefs(schema, path: path) {
            // Every instance must be finite: a required property that leads back to the schema
            // at every level (`$ref: "#"`) has none, and no model can answer it.
            if !JSONSchemaRefs(root: schema, allProperties: false).hasFiniteInstance(schema) {
                issue(
                    path,
                    "no finite JSON value satisfies this schema: a required property refers back to it ($ref) at"
                        + " every level; make the recursion optional (anyOf with {type: null}, or inside an array)")
            }
        }
    }

    /// Checks every `$ref`: local (`#`, `#/$defs/NAME`, `#/definitions/NAME`), resolvable, and
    /// not a loop of references that never reaches a schema. True when all are fine.
    func checkRefs(_ root: JSONValue, path: String) -> Bool {
        let refs = JSONSchemaRefs(root: root, allProperties: false)
        var ok = true
        var loops = Set<[String]>()
        Self.walk(root, path: path) { node, at in
            guard let ref = node["$ref"] else { return }
            guard let text = ref.stringValue else {
                issue(at + ".$ref", "$ref must be a string")
                ok = false
                return
            }
            guard text.hasPrefix("#") else {
                issue(
                    at + ".$ref",
                    "external $ref '\(text)' is not supported: the schema must be self-contained"
                        + " (#, #/$defs/NAME or #/definitions/NAME)")
                ok = false
                return
            }
            guard var target = refs.resolve(text) else {
                let defs = ((root["$defs"] ?? root["definitions"])?.objectValue?.keys.sorted() ?? []).joined(
                    separator: ", ")
                issue(
                    at + ".$ref",
                    "$ref '\(text)' does not resolve (local references are #, #/$defs/NAME or"
                        + " #/definitions/NAME; defined: \(defs.isEmpty ? "none" : defs))")
                ok = false
                return
            }
            var chain = [text]
            while let next = target["$ref"]?.stringValue, let t = refs.resolve(next) {
                if let start = chain.firstIndex(of: next) {
                    let loop = Array(chain[start...])
                    if loops.insert(loop.sorted()).inserted {
                        issue(
                            at + ".$ref",
                            "$ref loop: \((loop + [next]).joined(separator: " → ")) never reaches a schema")
                    }
                    ok = false
                    return
                }
                chain.append(next)
                target = t
            }
        }
        return ok
    }

    /// Calls `visit` on every schema object inside `schema` (itself included), with its path.
    static func walk(_ schema: JSONValue, path: String, _ visit: (JSONValue, String) -> Void) {
        guard let o = schema.objectValue else { return }
        visit(schema, path)
        for key in ["properties", "$defs", "definitions"] {
            for (name, sub) in (o[key]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
                walk(sub, path: path + ".\(key).\(name)", visit)
            }
        }
        for key in ["items", "additionalProperties", "not"] where o[key]?.objectValue != nil {
            walk(o[key]!, path: path + "." + key, visit)
        }
        for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
            for (i, sub) in (o[key]?.arrayValue ?? []).enumerated() { walk(sub, path: path + ".\(key)[\(i)]", visit) }
        }
    }

    func check(_ schema: JSONValue, path: String) {
        guard let o = schema.objectValue else {
            issue(path, "a schema must be a mapping")
            return
        }
        let declared = declaredTypes(o, path: path)
        if let e = o["enum"] {
            if let a = e.arrayValue {
                if a.isEmpty { issue(path + ".enum", "enum must not be empty") }
            } else {
                issue(path + ".enum", "enum must be a list")
            }
        }
        if declared.contains("object") { checkObject(o, path: path) }
        if declared.contains("array") {
            if let items = o["items"] {
                check(items, path: path + ".items")
            } else if strict {
                issue(path, "array schemas need items")
            }
        }
        if let any = o["anyOf"] {
            if let a = any.arrayValue, !a.isEmpty {
                for (i, s) in a.enumerated() { check(s, path: path + ".anyOf[\(i)]") }
            } else {
                issue(path + ".anyOf", "anyOf must be a non-empty list")
            }
        }
    }

    /// The schema's `type` (a string or a list of strings), each a JSON Schema type.
    func declaredTypes(_ o: [String: JSONValue], path: String) -> [String] {
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
            if declared.count != ts.count || ts.isEmpty {
                issue(path + ".type", "type must be a string or a list of strings")
            }
        default:
            issue(path + ".type", "type must be a string or a list of strings")
        }
        for t in declared where !Self.types.contains(t) {
            issue(
                path + ".type",
                "'\(t)' is not a JSON Schema type (expected one of: \(Self.types.sorted().joined(separator: ", ")))")
        }
        return declared
    }

    /// An object schema's properties and required list; strict ones close and require all.
    func checkObject(_ o: [String: JSONValue], path: String) {
        var names: [String] = []
        if let props = o["properties"] {
            if let p = props.objectValue {
                names = p.keys.sorted()
                for k in names { check(p[k]!, path: path + ".properties." + k) }
            } else {
                issue(path + ".properties", "properties must be a mapping")
            }
        }
        var required: [String] = []
        if let r = o["required"] {
            if let a = r.arrayValue, a.allSatisfy({ $0.stringValue != nil }) {
                required = a.compactMap(\.stringValue)
                for (i, n) in required.enumerated() where !names.contains(n) {
                    issue(path + ".required[\(i)]", "'\(n)' is required but not a property")
                }
            } else {
                issue(path + ".required", "required must be a list of property names")
            }
        }
        guard strict else { return }
        if o["additionalProperties"] != .bool(false) {
            issue(
                o["additionalProperties"] == nil ? path : path + ".additionalProperties",
                "strict schemas need additionalProperties: false")
        }
        let missing = names.filter { !required.contains($0) }
        if !missing.isEmpty {
            issue(
                o["required"] == nil ? path : path + ".required",
                "strict schemas must list every property in required (missing: \(missing.joined(separator: ", ")))")
        }
    }
}
