import Foundation

/// A JSON value. Used for tool schemas and arguments, task rows, span data and API bodies,
/// so every layer shares one Sendable representation.
public enum JSONValue: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
    case null
    case bool(Bool)
    /// A number with its exact value (see ``JSONNumber``); build one with `.number(x)` from a
    /// Double or any integer.
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .integer(i)
        } else if let d = try? c.decode(Decimal.self), let n = JSONNumber(text: "\(d)") {
            self = .number(n)
        } else if let d = try? c.decode(Double.self) {
            self = .number(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else if let o = try? c.decode([String: JSONValue].self) {
            self = .object(o)
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n):
            switch n.storage {
            case .int(let i): try c.encode(i)
            case .double(let d): try c.encode(d)
            case .decimal(let s): try c.encode(Decimal(string: s) ?? 0)
            }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Parses JSON text (any value at top level). Throws `JSONError.malformed` naming the
    /// byte offset of the problem.
    public static func parse(_ text: String) throws(JSONError) -> JSONValue {
        var p = JSONParser(Array(text.utf8))
        return try p.parseDocument()
    }

    public static func parse(_ data: Data) throws(JSONError) -> JSONValue {
        var p = JSONParser([UInt8](data))
        return try p.parseDocument()
    }

    /// Compact JSON text with sorted keys (stable, so it can be hashed and compared).
    public var compact: String {
        var out = ""
        write(into: &out)
        return out
    }

    public var description: String { compact }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n.text
        case .string(let s): JSONValue.writeString(s, into: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.write(into: &out)
            }
            out += "]"
        case .object(let o):
            out += "{"
            for (i, (k, v)) in o.sorted(by: { $0.key < $1.key }).enumerated() {
                if i > 0 { out += "," }
                JSONValue.writeString(k, into: &out)
                out += ":"
                v.write(into: &out)
            }
            out += "}"
        }
    }

    /// `s` as a JSON string literal. With `asciiOnly`, every non-ASCII character is written as
    /// `\uXXXX` (UTF-16 units), as Python's `json.dumps` does by default (`ensure_ascii`).
    public static func quote(_ s: String, asciiOnly: Bool = false) -> String {
        var out = ""
        writeString(s, into: &out, asciiOnly: asciiOnly)
        return out
    }

    static func writeString(_ s: String, into out: inout String, asciiOnly: Bool = false) {
        out += "\""
        // Most strings need no escape: appended whole (bulk writes serialize many thousands).
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C || (asciiOnly && $0 >= 0x7F) }) {
            out += s
            out += "\""
            return
        }
        out.appendEscaped(s) { u in
            if let e = u.lineEscape { return e }
            switch u {
            case "\"": return "\\\""
            case "\\": return "\\\\"
            case "\u{08}": return "\\b"
            case "\u{0C}": return "\\f"
            case let c where c.value < 0x20 || (asciiOnly && c.value >= 0x7F):
                return String(c).utf16.map { String(format: "\\u%04x", $0) }.joined()
            default: return nil
            }
        }
        out += "\""
    }

    // MARK: Accessors

    public subscript(_ key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var doubleValue: Double? {
        if case .number(let n) = self { return n.double }
        return nil
    }
    public var intValue: Int? {
        guard case .number(let n) = self else { return nil }
        if let i = n.int64 { return Int(exactly: i) }
        return nil
    }
    /// The exact integer value, when this is an integer that fits Int64.
    public var int64Value: Int64? {
        if case .number(let n) = self { return n.int64 }
        return nil
    }
    public var numberValue: JSONNumber? {
        if case .number(let n) = self { return n }
        return nil
    }

    /// A Double as a JSON number (integral values are stored exactly as integers).
    public static func number(_ value: Double) -> JSONValue { .number(JSONNumber(value)) }
    /// An integer as a JSON number, exactly.
    public static func integer(_ value: Int64) -> JSONValue { .number(JSONNumber(value)) }
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
    public var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }
    public var isNull: Bool { self == .null }

    /// The value as text for templates: strings as-is, everything else as compact JSON.
    public var templateText: String {
        switch self {
        case .string(let s): s
        case .null: ""
        default: compact
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(Int64(value))) }
    public init(floatLiteral value: Double) { self = .number(JSONNumber(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { $1 }))
    }
    public init(nilLiteral: ()) { self = .null }
}

/// A strict RFC 8259 parser.
struct JSONParser {
    let b: [UInt8]
    var i = 0
    var depth = 0

    init(_ bytes: [UInt8]) { b = bytes }

    mutating func parseDocument() throws(JSONError) -> JSONValue {
        let v = try value()
        skipWS()
        if i != b.count { throw fail("unexpected trailing characters") }
        return v
    }

    func fail(_ why: String) -> JSONError { .malformed("\(why) at byte \(i)") }

    mutating func skipWS() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    /// After a member of an object or array: true past a ',' (another member follows), false
    /// past `close` (the container ends); anything else is an error.
    mutating func another(before close: Unicode.Scalar) throws(JSONError) -> Bool {
        skipWS()
        guard i < b.count else { throw fail("unexpected end of input") }
        if b[i] == UInt8(ascii: ",") {
            i += 1
            return true
        }
        guard b[i] == UInt8(ascii: close) else { throw fail("expected ',' or '\(close)'") }
        i += 1
        return false
    }

    mutating func value() throws(JSONError) -> JSONValue {
        skipWS()
        guard i < b.count else { throw fail("unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"):
            depth += 1
            guard depth < 512 else { throw fail("nesting too deep") }
            defer { depth -= 1 }
            i += 1
            var o: [String: JSONValue] = [:]
            skipWS()
            if i < b.count, b[i] == UInt8(ascii: "}") {
                i += 1
                return .object(o)
            }
            repeat {
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let k = try string()
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                o[k] = try value()
            } while try another(before: "}")
            return .object(o)
        case UInt8(ascii: "["):
            depth += 1
            guard depth < 512 else { throw fail("nesting too deep") }
            defer { depth -= 1 }
            i += 1
            var a: [JSONValue] = []
            skipWS()
            if i < b.count, b[i] == UInt8(ascii: "]") {
                i += 1
                return .array(a)
            }
            repeat {
                a.append(try value())
            } while try another(before: "]")
            return .array(a)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        default:
            let start = i
            _ = try number()
            let text = String(decoding: b[start..<i], as: UTF8.self)
            return .number(JSONNumber(literal: text))
        }
    }

    mutating func literal(_ word: String) throws(JSONError) {
        let w = Array(word.utf8)
        guard i + w.count <= b.count, Array(b[i..<i + w.count]) == w else { throw fail("invalid literal") }
        i += w.count
    }

    mutating func number() throws(JSONError) -> Double {
        let start = i
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        var digits = 0
        while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
            i += 1
            digits += 1
        }
        guard digits > 0 else {
            i = start
            throw fail("unexpected character")
        }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            var frac = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                i += 1
                frac += 1
            }
            guard frac > 0 else { throw fail("digits expected after '.'") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            var exp = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                i += 1
                exp += 1
            }
            guard exp > 0 else { throw fail("digits expected in exponent") }
        }
        guard let d = Double(String(decoding: b[start..<i], as: UTF8.self)) else { throw fail("bad number") }
        return d
    }

    mutating func hex4() throws(JSONError) -> UInt32 {
        guard i + 4 <= b.count else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("bad \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    mutating func string() throws(JSONError) -> String {
        i += 1  // opening quote
        var bytes: [UInt8] = []
        while true {
            guard i < b.count else { throw fail("unterminated string") }
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                break
            }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") {
                bytes.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < b.count else { throw fail("unterminated escape") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): bytes.append(0x22)
            case UInt8(ascii: "\\"): bytes.append(0x5C)
            case UInt8(ascii: "/"): bytes.append(0x2F)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if scalar >= 0xD800, scalar < 0xDC00 {
                    guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw fail("lone surrogate")
                    }
                    i += 2
                    let low = try hex4()
                    guard low >= 0xDC00, low < 0xE000 else { throw fail("bad surrogate pair") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("invalid code point") }
                bytes.append(contentsOf: Array(String(Character(u)).utf8))
            default: throw fail("invalid escape")
            }
        }
        guard let s = String(validating: bytes, as: UTF8.self) else { throw fail("invalid UTF-8") }
        return s
    }
}

/// JSON that could not be parsed.
public enum JSONError: Error, CustomStringConvertible, Sendable {
    case malformed(String)
    public var description: String {
        switch self {
        case .malformed(let why): "malformed JSON: \(why)"
        }
    }
}
