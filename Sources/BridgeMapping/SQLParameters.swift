import BridgeCore
import BridgePostgres

/// The named parameters of a SQL tool's text: `:name` (a tool argument) and `:task.column`
/// (a column of the current task). Casts (`::type`), string literals (including `E''`),
/// quoted identifiers, `--` and `/* */` comments and dollar-quoted strings are skipped.
public struct SQLNamedParameters: Sendable, Equatable {
    /// One piece of the SQL text.
    public enum Piece: Sendable, Equatable {
        case sql(String)
        /// `:name` → `["name"]`; `:task.col` → `["task", "col"]`.
        case parameter([String])
    }

    public let pieces: [Piece]
    /// Positional `$n` parameters found outside literals (not allowed in tool SQL).
    public let positionalParameters: [String]

    /// Tool argument names, in first-use order.
    public var argumentNames: [String] {
        var out: [String] = []
        for case .parameter(let p) in pieces where p.count == 1 && !out.contains(p[0]) { out.append(p[0]) }
        return out
    }

    /// Task columns (`:task.col`), in first-use order.
    public var taskColumns: [String] {
        var out: [String] = []
        for case .parameter(let p) in pieces where p.count >= 2 && p[0] == "task" && !out.contains(p[1]) {
            out.append(p[1])
        }
        return out
    }

    /// Dotted parameters whose root is not `task` (e.g. `:agent.id`), which are errors.
    public var unknownRoots: [String] {
        var out: [String] = []
        for case .parameter(let p) in pieces where p.count >= 2 && p[0] != "task" {
            out.append(p.joined(separator: "."))
        }
        return out
    }

    /// Scans `sql`.
    ///
    /// A lexer's state machine, kept in one function on purpose (over 80 lines): one loop over
    /// the scalars with one cursor, where each branch (quoted literal, quoted identifier, dollar
    /// quote, comment, cast, parameter) consumes its token whole; split up, every piece would
    /// need the cursor and the buffers passed in and out.
    public init(scanning sql: String) {
        let s = Array(sql.unicodeScalars)
        var pieces: [Piece] = []
        var positional: [String] = []
        var buf = String.UnicodeScalarView()
        var i = 0
        func isIdentStart(_ c: Unicode.Scalar) -> Bool { c == "_" || (c.properties.isAlphabetic) }
        func isIdent(_ c: Unicode.Scalar) -> Bool { isIdentStart(c) || ("0"..."9").contains(c) || c == "$" }
        func copy(until end: Int) {
            while i < end && i < s.count {
                buf.append(s[i])
                i += 1
            }
        }
        // Where the quoted text that starts at `i` ends: its closing quote (a doubled quote
        // stands for itself, and with `backslashes` so does a backslash and what follows), or
        // the end of the text.
        func closingQuote(_ quote: Unicode.Scalar, backslashes: Bool = false) -> Int {
            var j = i + 1
            while j < s.count {
                if backslashes && s[j] == "\\" {
                    j += 2
                    continue
                }
                if s[j] == quote {
                    if j + 1 < s.count && s[j + 1] == quote {
                        j += 2
                        continue
                    }
                    break
                }
                j += 1
            }
            return j
        }
        while i < s.count {
            let c = s[i]
            let next: Unicode.Scalar? = i + 1 < s.count ? s[i + 1] : nil
            switch c {
            case "'":
                // E'...' allows backslash escapes.
                let escapes = i > 0 && (s[i - 1] == "E" || s[i - 1] == "e") && (i < 2 || !isIdent(s[i - 2]))
                copy(until: closingQuote("'", backslashes: escapes) + 1)
            case "\"":
                copy(until: closingQuote("\"") + 1)
            case "-" where next == "-":
                var j = i
                while j < s.count && s[j] != "\n" { j += 1 }
                copy(until: j)
            case "/" where next == "*":
                var depth = 0
                var j = i
                while j < s.count {
                    if s[j] == "/" && j + 1 < s.count && s[j + 1] == "*" {
                        depth += 1
                        j += 2
                        continue
                    }
                    if s[j] == "*" && j + 1 < s.count && s[j + 1] == "/" {
                        depth -= 1
                        j += 2
                        if depth == 0 { break }
                        continue
                    }
                    j += 1
                }
                copy(until: j)
            case "$":
                if let n = next, ("0"..."9").contains(n), i == 0 || !isIdent(s[i - 1]) {
                    var j = i + 1
                    while j < s.count && ("0"..."9").contains(s[j]) { j += 1 }
                    positional.append(String(String.UnicodeScalarView(s[i..<j])))
                    copy(until: j)
                } else if i == 0 || !isIdent(s[i - 1]) {
                    // Dollar quote: $tag$ ... $tag$ (tag may be empty).
                    var j = i + 1
                    while j < s.count && s[j] != "$" && isIdent(s[j]) { j += 1 }
                    if j < s.count && s[j] == "$" {
                        let tag = Array(s[i...j])
                        var k = j + 1
                        var end = s.count
                        while k + tag.count <= s.count {
                            if Array(s[k..<k + tag.count]) == tag {
                                end = k + tag.count
                                break
                            }
                            k += 1
                        }
                        copy(until: end)
                    } else {
                        copy(until: i + 1)
                    }
                } else {
                    copy(until: i + 1)
                }
            case ":":
                if next == ":" {
                    copy(until: i + 2)
                } else if let n = next, isIdentStart(n), i == 0 || s[i - 1] != ":" {
                    var segments: [String] = []
                    var j = i + 1
                    while true {
                        var seg = String.UnicodeScalarView()
                        while j < s.count && (isIdentStart(s[j]) || ("0"..."9").contains(s[j])) {
                            seg.append(s[j])
                            j += 1
                        }
                        segments.append(String(seg))
                        if j + 1 < s.count && s[j] == "." && isIdentStart(s[j + 1]) && segments.count < 8 {
                            j += 1
                            continue
                        }
                        break
                    }
                    if !buf.isEmpty {
                        pieces.append(.sql(String(buf)))
                        buf = String.UnicodeScalarView()
                    }
                    pieces.append(.parameter(segments))
                    i = j
                } else {
                    copy(until: i + 1)
                }
            default:
                if isIdent(c) {
                    // Copy a whole identifier so `$` inside names and `E'` detection stay simple.
                    var j = i
                    while j < s.count && isIdent(s[j]) { j += 1 }
                    copy(until: j)
                } else {
                    copy(until: i + 1)
                }
            }
        }
        if !buf.isEmpty { pieces.append(.sql(String(buf))) }
        self.pieces = pieces
        self.positionalParameters = positional
    }
}

/// A SQL tool call that cannot be compiled: a missing argument or task column.
public struct SQLCompileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(message: String) { self.message = message }
    public var description: String { message }
}

extension SQLToolSpec {
    /// The named parameters of `sql`.
    public var namedParameters: SQLNamedParameters { SQLNamedParameters(scanning: sql) }

    /// Compiles the tool's SQL for one call: every `:arg` and `:task.column` becomes a `$n`
    /// bind (the same name reuses its number). Objects and arrays bind as compact JSON text,
    /// booleans as `true`/`false`, null as SQL NULL. A missing argument or task column throws.
    public func compile(arguments: JSONValue, task: [String: JSONValue]) throws(SQLCompileError) -> PostgresQuery {
        let params = namedParameters
        var sqlText = ""
        var binds: [PostgresValue] = []
        var numbers: [[String]: Int] = [:]
        let args = arguments.objectValue ?? [:]
        for piece in params.pieces {
            switch piece {
            case .sql(let s): sqlText += s
            case .parameter(let path):
                if let n = numbers[path] {
                    sqlText += "$\(n)"
                    continue
                }
                let value: JSONValue
                if path.count == 1 {
                    guard let v = args[path[0]] else {
                        throw SQLCompileError(message: "missing argument '\(path[0])'")
                    }
                    value = v
                } else if path[0] == "task" {
                    guard task[path[1]] != nil else {
                        throw SQLCompileError(
                            message: "the task row has no column '\(path[1])' (used as :\(path.joined(separator: ".")))"
                        )
                    }
                    value = Template.lookup(task, Array(path.dropFirst())) ?? .null
                } else {
                    throw SQLCompileError(
                        message: "unknown parameter ':\(path.joined(separator: "."))' (only :argument and :task.column)"
                    )
                }
                let bind = Self.bindValue(value)
                if case .text(let t) = bind, t.utf8.contains(0) {
                    // PostgreSQL text cannot hold U+0000; cutting the value there would change it.
                    throw SQLCompileError(
                        message:
                            "the value of :\(path.joined(separator: ".")) contains a NUL character (U+0000), which PostgreSQL text cannot hold; send it without one"
                    )
                }
                binds.append(bind)
                numbers[path] = binds.count
                sqlText += "$\(binds.count)"
            }
        }
        return PostgresQuery(unsafeSQL: sqlText, binds: binds)
    }

    /// The text a JSON value binds as.
    public static func bindValue(_ value: JSONValue) -> PostgresValue {
        switch value {
        case .null: .null
        case .string(let s): .text(s)
        case .bool(let b): .text(b ? "true" : "false")
        case .number, .array, .object: .text(value.compact)
        }
    }
}
