import FoundationEssentials

/// A JSON number that keeps its exact value: integers as `Int64` (so a `bigint` key of 2^53 or
/// more survives), fractions as `Double` when that is exact to their 15 significant digits,
/// and anything else (a `numeric` with more digits, an integer beyond `Int64`) as its decimal
/// text, written back unchanged.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    enum Storage: Sendable, Hashable {
        case int(Int64)
        case double(Double)
        case decimal(String)
    }

    let storage: Storage

    init(storage: Storage) { self.storage = storage }

    /// A floating-point value; integral values within `Int64` become integers.
    public init(_ value: Double) {
        if value.rounded() == value, let i = Int64(exactly: value) {
            storage = .int(i)
        } else {
            storage = .double(value)
        }
    }

    public init(_ value: Int64) { storage = .int(value) }
    public init(_ value: Int) { storage = .int(Int64(value)) }

    /// Parses a JSON number literal (`-12`, `3.25`, `1e-7`, `123456789012345678901234.5`),
    /// keeping its exact value. Nil when `text` is not one.
    public init?(text: String) {
        guard JSONNumber.isLiteral(text) else { return nil }
        self.init(literal: text)
    }

    /// `text` is known to be a valid JSON number literal.
    init(literal text: String) {
        let isInteger = !text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" })
        if isInteger {
            self.init(storage: text == "-0" ? .int(0) : Int64(text).map { .int($0) } ?? .decimal(text))
            return
        }
        if JSONNumber.significantDigits(text) <= 15, let d = Double(text), d.isFinite {
            self.init(d)
        } else {
            self.init(storage: .decimal(text))
        }
    }

    /// The exact JSON text (`9007199254740993`, `0.1`, `12345678901234567890.123`).
    public var text: String {
        switch storage {
        case .int(let i): String(i)
        case .double(let d): d.isFinite ? String(d) : "null"
        case .decimal(let s): s
        }
    }

    public var description: String { text }

    /// The value as a Double (rounded when it has more digits than a Double holds).
    public var double: Double {
        switch storage {
        case .int(let i): Double(i)
        case .double(let d): d
        case .decimal(let s): Double(s) ?? .nan
        }
    }

    /// The exact integer, when the value is one that fits `Int64`.
    public var int64: Int64? {
        if case .int(let i) = storage { return i }
        return nil
    }

    /// Whether the value is a whole number (at any size).
    public var isInteger: Bool {
        switch storage {
        case .int: true
        case .double: false
        case .decimal(let s): !s.contains(where: { $0 == "." || $0 == "e" || $0 == "E" })
        }
    }

    static func isLiteral(_ s: String) -> Bool {
        var p = JSONParser(Array(s.utf8))
        guard (try? p.number()) != nil else { return false }
        return p.i == p.b.count
    }

    /// Significant digits of a decimal literal's mantissa (leading zeros and a fraction's
    /// trailing zeros do not count).
    static func significantDigits(_ s: String) -> Int {
        let mantissa = s.prefix { $0 != "e" && $0 != "E" }
        var digits = Array(mantissa.filter(\.isNumber))
        while digits.first == "0" { digits.removeFirst() }
        if mantissa.contains(".") { while digits.last == "0" { digits.removeLast() } }
        return digits.count
    }
}
