/// An id that travels as text: a trace or span id, a lease token, a task key. Each kind is its own
/// type, so the compiler keeps them apart; this protocol gives them one text form.
///
/// The text is kept exactly as it was made or read: an id in a ledger row, a span file or an
/// imported trace may be malformed, and it must round-trip unchanged. It encodes as a bare JSON
/// string, sorts and compares by its text, and prints as its text.
public protocol TextID: Hashable, Comparable, Sendable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral
{
    /// The id's text, as it is written to SQL, JSON and files.
    var text: String { get }
    /// An id with this text, taken as it is (no check; see the type's `isWellFormed`).
    init(_ text: String)
}

extension TextID {
    public init(stringLiteral text: String) { self.init(text) }
    public var description: String { text }
    /// The id as a JSON string (its text).
    public var json: JSONValue { .string(text) }
    public static func < (a: Self, b: Self) -> Bool { a.text < b.text }

    public init(from decoder: any Decoder) throws {
        self.init(try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(text)
    }
}
