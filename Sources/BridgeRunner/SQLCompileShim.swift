import BridgeCore
import BridgeMapping
import BridgePostgres

// TEMPORARY (runner branch only): the mapping engineer's branch adds
// `SQLToolSpec.compile(arguments:task:) throws -> PostgresQuery`. Until it is merged, the
// SQL tool executor defaults to this stand-in with the same contract. After the merge, point
// `SQLToolExecutor.defaultCompile` at `compile(arguments:task:)` and delete this file.
extension SQLToolSpec {
    /// Compiles `:name` (a tool argument) and `:task.column` (a task column) to `$n` binds.
    /// Quoted strings, quoted identifiers, comments and `::` casts are left alone. An unknown
    /// name is an error. Strings bind as text, numbers and booleans as their JSON text,
    /// null as NULL, arrays and objects as compact JSON.
    func runnerTemporaryCompile(arguments: JSONValue, task: [String: JSONValue]) throws -> PostgresQuery {
        let chars = Array(sql.unicodeScalars)
        var out = ""
        var binds: [PostgresValue] = []
        var seen: [String: Int] = [:]
        var i = 0
        func isNameChar(_ c: Unicode.Scalar) -> Bool { c.properties.isAlphabetic || ("0"..."9").contains(c) || c == "_" }
        while i < chars.count {
            let c = chars[i]
            if c == "'" || c == "\"" {
                let quote = c
                out.unicodeScalars.append(c)
                i += 1
                while i < chars.count {
                    out.unicodeScalars.append(chars[i])
                    if chars[i] == quote {
                        if i + 1 < chars.count, chars[i + 1] == quote {
                            out.unicodeScalars.append(chars[i + 1])
                            i += 2
                            continue
                        }
                        i += 1
                        break
                    }
                    i += 1
                }
                continue
            }
            if c == "-", i + 1 < chars.count, chars[i + 1] == "-" {
                while i < chars.count, chars[i] != "\n" { out.unicodeScalars.append(chars[i]); i += 1 }
                continue
            }
            if c == ":", i + 1 < chars.count, chars[i + 1] == ":" {
                out += "::"
                i += 2
                continue
            }
            if c == ":", i + 1 < chars.count, isNameChar(chars[i + 1]), !(i > 0 && chars[i - 1] == ":") {
                var j = i + 1
                var name = ""
                while j < chars.count, isNameChar(chars[j]) || (chars[j] == "." && name == "task") {
                    name.unicodeScalars.append(chars[j])
                    j += 1
                }
                let value: JSONValue
                if name.hasPrefix("task.") {
                    let column = String(name.dropFirst(5))
                    guard let v = task[column] else { throw ToolFailure("SQL parameter :\(name): the task has no column \(column)") }
                    value = v
                } else {
                    guard let v = arguments[name] else { throw ToolFailure("SQL parameter :\(name): missing from the tool arguments") }
                    value = v
                }
                if let n = seen[name] {
                    out += "$\(n)"
                } else {
                    binds.append(Self.bindValue(value))
                    seen[name] = binds.count
                    out += "$\(binds.count)"
                }
                i = j
                continue
            }
            out.unicodeScalars.append(c)
            i += 1
        }
        return PostgresQuery(sql: out, binds: binds)
    }

    static func bindValue(_ v: JSONValue) -> PostgresValue {
        switch v {
        case .null: .null
        case .string(let s): .text(s)
        case .bool(let b): .text(b ? "true" : "false")
        case .number, .array, .object: .text(v.compact)
        }
    }
}
