import BridgeCore
import FoundationEssentials

/// A parameter value, always sent to the server in text format with its type left for the
/// server to infer (cast in SQL, e.g. `\(json)::jsonb`, where inference is not enough).
public enum PostgresValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case text(String)

    public var description: String {
        switch self {
        case .null: "NULL"
        case .text(let s): "'\(s)'"
        }
    }
}

/// Types that can be bound as a query parameter.
public protocol PostgresBindable: Sendable {
    var postgresValue: PostgresValue { get }
}

extension String: PostgresBindable { @inlinable public var postgresValue: PostgresValue { .text(self) } }
extension Substring: PostgresBindable { @inlinable public var postgresValue: PostgresValue { .text(String(self)) } }
extension Int: PostgresBindable { @inlinable public var postgresValue: PostgresValue { .text(String(self)) } }
extension Int32: PostgresBindable { @inlinable public var postgresValue: PostgresValue { .text(String(self)) } }
extension Int64: PostgresBindable { @inlinable public var postgresValue: PostgresValue { .text(String(self)) } }
extension Double: PostgresBindable { @inlinable public var postgresValue: PostgresValue { .text(String(self)) } }
extension Bool: PostgresBindable {
    @inlinable public var postgresValue: PostgresValue { .text(self ? "true" : "false") }
}
extension UUID: PostgresBindable { public var postgresValue: PostgresValue { .text(uuidString.lowercased()) } }
extension PostgresValue: PostgresBindable { @inlinable public var postgresValue: PostgresValue { self } }
extension Date: PostgresBindable {
    public var postgresValue: PostgresValue { .text(PostgresTimestamp.format(self)) }
}
/// A typed id (`TraceID`, `SpanID`, …) binds as its text once its type declares `PostgresBindable`.
extension PostgresBindable where Self: TextID {
    @inlinable public var postgresValue: PostgresValue { .text(text) }
}
extension Optional: PostgresBindable where Wrapped: PostgresBindable {
    @inlinable public var postgresValue: PostgresValue { self?.postgresValue ?? .null }
}

extension PostgresQuery {
    /// Whether `name` may stand in SQL unquoted as an alias written in code.
    public static func isAlias(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else {
            return false
        }
        return name.utf8.allSatisfy { c in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(c)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "_")
        }
    }
}

/// A statement whose values travel as `$n` parameters, never inside the SQL text: the one way
/// bridge builds SQL.
///
/// Build it by string interpolation: every interpolated value becomes the next `$n` bind, so
/// no code numbers parameters by hand. Identifiers (table and column names from configuration)
/// use `\(identifier: name)`, which quotes them with `quoteIdentifier`; aliases chosen in code
/// use `\(alias:)`, integers written into the text `\(literal:)`, catalog type names
/// `\(catalogType:)`; what is left, trusted SQL fragments written in code, uses
/// `\(unsafeRaw: fragment)` with a comment saying why; another query interpolates with its binds
/// renumbered. Pieces assembled in steps are queries too (`append`, `joined`, `+`).
///
///     let q: PostgresQuery = "SELECT * FROM \(identifier: table) WHERE id = \(taskID)"
///     // sql: SELECT * FROM "tasks" WHERE id = $1   binds: [taskID]
///
/// A query never turns into a `String` silently: it has no `description`, and interpolating
/// it into a String is deprecated (the binds would be lost).
public struct PostgresQuery: Sendable, Equatable, ExpressibleByStringInterpolation {
    public var sql: String
    public var binds: [PostgresValue]

    /// SQL text taken as it is, with binds already numbered in it: for text that is not
    /// written in code (a migration file, a user's SQL tool after its named parameters were
    /// numbered). Everything else uses interpolation.
    public init(unsafeSQL: String, binds: [PostgresValue] = []) {
        self.sql = unsafeSQL
        self.binds = binds
    }

    public init(stringLiteral value: String) { self.init(unsafeSQL: value) }

    public init(stringInterpolation: StringInterpolation) {
        self.init(unsafeSQL: stringInterpolation.sql, binds: stringInterpolation.binds)
    }

    /// An identifier as a query fragment (quoted by `quoteIdentifier`).
    public static func identifier(_ name: String) -> PostgresQuery { PostgresQuery(unsafeSQL: quoteIdentifier(name)) }

    /// Appends another query, renumbering its parameters.
    public mutating func append(_ other: PostgresQuery) {
        sql += Self.renumber(other.sql, offset: binds.count)
        binds += other.binds
    }

    public static func + (lhs: PostgresQuery, rhs: PostgresQuery) -> PostgresQuery {
        var out = lhs
        out.append(rhs)
        return out
    }

    public static func += (lhs: inout PostgresQuery, rhs: PostgresQuery) { lhs.append(rhs) }

    /// Joins queries with a separator, renumbering parameters.
    public static func joined(_ parts: some Sequence<PostgresQuery>, separator: String) -> PostgresQuery {
        var out = PostgresQuery(unsafeSQL: "")
        for (i, p) in parts.enumerated() {
            if i > 0 { out.sql += separator }
            out.append(p)
        }
        return out
    }

    /// `sql` with each `$n` parameter reference moved up by `offset`. Only references in SQL
    /// proper are renumbered: text inside string literals (`'…'`, `E'…'`), quoted identifiers,
    /// dollar-quoted bodies (`$$…$$`, `$tag$…$tag$`) and comments is left as it is, so a user's
    /// `'costs $5'` keeps its text. Only ASCII digits make a reference.
    static func renumber(_ sql: String, offset: Int) -> String {
        // A small lexer's state machine, kept in one function on purpose (over the 80-line
        // limit): each branch copies one construct from the same cursor (`i`, `out`), and the
        // branches' order decides what a byte starts (`E'` an escape string, `$1` a parameter,
        // `$tag$` a dollar quote). Split up, each piece would take and return the whole cursor.
        guard offset > 0, sql.utf8.contains(UInt8(ascii: "$")) else { return sql }
        let b = Array(sql.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(b.count + 16)
        var i = 0
        func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        func isIdent(_ c: UInt8) -> Bool {
            isDigit(c) || c == UInt8(ascii: "_") || c >= 0x80
                || (c | 0x20 >= UInt8(ascii: "a") && c | 0x20 <= UInt8(ascii: "z"))
        }
        /// Copies from `i` through the end of a construct that closes with `close` (or to the
        /// end of the text), where `close` doubled is an escaped `close` and, with
        /// `backslashes`, a backslash escapes the next byte.
        func copyQuoted(close: UInt8, backslashes: Bool) {
            out.append(b[i])
            i += 1
            while i < b.count {
                let c = b[i]
                out.append(c)
                i += 1
                if backslashes && c == UInt8(ascii: "\\") && i < b.count {
                    out.append(b[i])
                    i += 1
                } else if c == close {
                    if i < b.count && b[i] == close {
                        out.append(b[i])
                        i += 1
                    } else {
                        return
                    }
                }
            }
        }
        func copy(through end: Int) {
            out.append(contentsOf: b[i..<end])
            i = end
        }
        while i < b.count {
            let c = b[i]
            let next = i + 1 < b.count ? b[i + 1] : 0
            let previous = i > 0 ? b[i - 1] : 0
            if c == UInt8(ascii: "'") {
                let escaped =
                    (previous == UInt8(ascii: "E") || previous == UInt8(ascii: "e"))
                    && (i < 2 || !isIdent(b[i - 2]))
                copyQuoted(close: c, backslashes: escaped)
            } else if c == UInt8(ascii: "\"") {
                copyQuoted(close: c, backslashes: false)
            } else if c == UInt8(ascii: "-") && next == UInt8(ascii: "-") {
                copy(through: b[i...].firstIndex(of: UInt8(ascii: "\n")) ?? b.count)
            } else if c == UInt8(ascii: "/") && next == UInt8(ascii: "*") {
                // Block comments nest in PostgreSQL.
                var depth = 0
                var j = i
                while j < b.count {
                    if b[j] == UInt8(ascii: "/") && j + 1 < b.count && b[j + 1] == UInt8(ascii: "*") {
                        depth += 1
                        j += 2
                    } else if b[j] == UInt8(ascii: "*") && j + 1 < b.count && b[j + 1] == UInt8(ascii: "/") {
                        depth -= 1
                        j += 2
                        if depth == 0 { break }
                    } else {
                        j += 1
                    }
                }
                copy(through: min(j, b.count))
            } else if c == UInt8(ascii: "$") && isDigit(next) && !isIdent(previous) {
                var j = i + 1
                var n = 0
                while j < b.count && isDigit(b[j]) {
                    n = n &* 10 &+ Int(b[j] - UInt8(ascii: "0"))
                    j += 1
                }
                out.append(contentsOf: Array("$\(n + offset)".utf8))
                i = j
            } else if c == UInt8(ascii: "$") && !isIdent(previous) {
                // A dollar quote's opening tag: `$$` or `$tag$` (a tag does not start with a digit).
                var j = i + 1
                while j < b.count && isIdent(b[j]) && b[j] < 0x80 { j += 1 }
                if j < b.count && b[j] == UInt8(ascii: "$") {
                    let tag = Array(b[i...j])
                    var k = j + 1
                    var end = b.count
                    while k + tag.count <= b.count {
                        if b[k] == UInt8(ascii: "$") && Array(b[k..<k + tag.count]) == tag {
                            end = k + tag.count
                            break
                        }
                        k += 1
                    }
                    copy(through: end)
                } else {
                    out.append(c)
                    i += 1
                }
            } else {
                out.append(c)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `$0` … `$99`, for `StringInterpolation.appendBind`.
    @usableFromInline static let placeholders: [String] = (0..<100).map { "$\($0)" }

    // The value appends are `@inlinable`, so that they are specialised for each bound type in
    // the modules that build statements: unspecialised, each bind went through the generic
    // witness tables (and `Optional`'s conditional conformance), 1,000–2,400 instructions each.
    public struct StringInterpolation: StringInterpolationProtocol, Sendable {
        @usableFromInline var sql = ""
        @usableFromInline var binds: [PostgresValue] = []
        /// The literal's interpolations: at most that many binds, reserved at the first.
        @usableFromInline let interpolations: Int

        @inlinable
        public init(literalCapacity: Int, interpolationCount: Int) {
            sql.reserveCapacity(literalCapacity + interpolationCount * 3)
            interpolations = interpolationCount
        }

        public mutating func appendLiteral(_ literal: String) { sql += literal }

        /// A value: becomes the next `$n` parameter.
        @inlinable
        public mutating func appendInterpolation(_ value: some PostgresBindable) { appendBind(value.postgresValue) }

        /// An optional value: the next `$n` parameter, NULL when nil.
        @inlinable
        public mutating func appendInterpolation<T: PostgresBindable>(_ value: T?) {
            appendBind(value?.postgresValue ?? .null)
        }

        @usableFromInline
        mutating func appendBind(_ value: PostgresValue) {
            if binds.isEmpty { binds.reserveCapacity(interpolations) }
            binds.append(value)
            // One append of a ready `$n`: two appends and a number made for every bind cost more.
            let n = binds.count
            sql += n < PostgresQuery.placeholders.count ? PostgresQuery.placeholders[n] : "$\(n)"
        }

        /// An identifier such as a table or column name, through `quoteIdentifier`.
        public mutating func appendInterpolation(identifier: String) {
            sql += PostgresQuery.quoteIdentifier(identifier)
        }

        /// A table alias or CTE name chosen in code (`t`, `c`, `j0`): ASCII letters, digits and `_`,
        /// not starting with a digit; anything else is a programming error.
        public mutating func appendInterpolation(alias: String) {
            precondition(PostgresQuery.isAlias(alias), "not an alias: \(alias)")
            sql += alias
        }

        /// An integer written into the SQL text (a CASE rank, a CTE's number, a fixed LIMIT),
        /// where a bind would change the plan or is not allowed.
        public mutating func appendInterpolation(literal: Int) { sql += String(literal) }

        /// A type name read from the catalog (`format_type`, e.g. `uuid`, `character
        /// varying(64)`), for a cast on the parameter side; never text from configuration.
        public mutating func appendInterpolation(catalogType: String) { sql += catalogType }

        /// SQL text written in code (never user data). Each use says why it is raw.
        public mutating func appendInterpolation(unsafeRaw: String) { sql += unsafeRaw }

        /// Another query, with its parameters renumbered.
        public mutating func appendInterpolation(_ query: PostgresQuery) {
            sql += PostgresQuery.renumber(query.sql, offset: binds.count)
            binds += query.binds
        }

        /// Queries joined by `separator` (`, ` by default), each with its parameters.
        public mutating func appendInterpolation(_ parts: [PostgresQuery], separator: String = ", ") {
            appendInterpolation(PostgresQuery.joined(parts, separator: separator))
        }
    }

    /// The one identifier-quoting function: double quotes, embedded quotes doubled; a dotted
    /// name (`schema.table`, as configuration names tables) quotes each part
    /// (`bridge.spans` → `"bridge"."spans"`). Column names never contain a dot
    /// (`identifierProblem` rejects it).
    public static func quoteIdentifier(_ name: String) -> String {
        // One pass, no Foundation: every statement a worker builds quotes its names, and
        // `replacingOccurrences` went through NSString for each.
        var out = "\""
        out.reserveCapacity(name.utf8.count + 2)
        for c in name.unicodeScalars {
            switch c {
            case "\"": out += "\"\""
            case ".": out += "\".\""
            default: out.unicodeScalars.append(c)
            }
        }
        out += "\""
        return out
    }

    /// Why `name` cannot be a table or column name from configuration, or nil when it can: a
    /// letter or `_`, then letters, digits, `_` or `$`, at most 63 bytes (PostgreSQL's limit).
    /// Such names are still always quoted where they reach SQL; the rule keeps out text that
    /// was never meant as a name (spaces, `;`, quotes, control characters).
    public static func identifierProblem(_ name: String) -> String? {
        guard let first = name.unicodeScalars.first else { return "an identifier must not be empty" }
        let ok =
            (first == "_" || first.properties.isAlphabetic)
            && name.unicodeScalars.allSatisfy {
                $0 == "_" || $0 == "$" || $0.properties.isAlphabetic || ("0"..."9").contains($0)
            }
        if !ok {
            return
                "'\(name.debugDescription.dropFirst().dropLast())' is not a valid identifier (a letter or _, then letters, digits, _ or $)"
        }
        return name.utf8.count > 63 ? "'\(name.prefix(70))…' is longer than PostgreSQL's 63-byte identifier limit" : nil
    }

    /// `identifierProblem` for a name that may be schema-qualified (`schema.table`).
    public static func qualifiedIdentifierProblem(_ name: String) -> String? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return "'\(name)' has more than one '.' (expected table or schema.table)" }
        return parts.lazy.compactMap { identifierProblem(String($0)) }.first
    }
}

extension DefaultStringInterpolation {
    /// Interpolating a query into a `String` keeps its text and drops its binds: a compile
    /// warning points at the mistake. Interpolate it into another `PostgresQuery` instead.
    @available(
        *, deprecated,
        message: "a PostgresQuery interpolated into a String loses its binds; interpolate it into a PostgresQuery"
    )
    public mutating func appendInterpolation(_ query: PostgresQuery) { appendLiteral(query.sql) }
}

/// A list bound as ONE parameter: a PostgreSQL array literal (`{"a",NULL,"b"}`), each element
/// encoded as the element type binds alone (a `Date` as a timestamp, nil as NULL). Cast it on
/// the parameter side to the column's type: `= ANY(\(keys)::uuid[])`, or bulk writes
/// `INSERT … SELECT * FROM unnest(\(ids)::text[], \(times)::timestamptz[])`.
extension Array: PostgresBindable where Element: PostgresBindable {
    public var postgresValue: PostgresValue { .text(PostgresArray.literal(map(\.postgresValue))) }
}

/// PostgreSQL array literals for binding lists as one parameter.
public enum PostgresArray {
    /// A text[] literal (`{"a","b"}`), with quotes and backslashes escaped; cast it on the
    /// parameter side to the element type it is compared with (`$1::uuid[]`).
    public static func text(_ items: [String]) -> String { literal(items.map(PostgresValue.text)) }

    /// An array literal of `values`: every element quoted, `"` and `\` escaped, `.null` as an
    /// unquoted NULL. Built bytewise: bulk writes bind arrays of many thousand JSON texts.
    public static func literal(_ values: [PostgresValue]) -> String {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(
            values.reduce(2) { n, v in if case .text(let s) = v { n + s.utf8.count + 3 } else { n + 5 } })
        for (i, v) in values.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            switch v {
            case .null:
                out.append(contentsOf: "NULL".utf8)
            case .text(var s):
                out.append(UInt8(ascii: "\""))
                s.withUTF8 { bytes in
                    var from = 0
                    for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") {
                        out.append(contentsOf: bytes[from..<i])
                        out.append(UInt8(ascii: "\\"))
                        from = i
                    }
                    out.append(contentsOf: bytes[from...])
                }
                out.append(UInt8(ascii: "\""))
            }
        }
        out.append(UInt8(ascii: "}"))
        return String(decoding: out, as: UTF8.self)
    }
}
