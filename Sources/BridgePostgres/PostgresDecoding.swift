import BridgeCore
import Foundation

/// A type a column's text value decodes to (bridge reads every value in PostgreSQL's text
/// format). `init(postgresText:)` answers nil for text that is not a value of the type;
/// `PostgresRow.decode` turns that into a `PostgresDecodingError` naming the column.
///
/// A `TextID` or a `String`-backed enum conforms by declaring it: the default reads its text.
public protocol PostgresDecodable: Sendable {
    init?(postgresText text: String)
}

extension String: PostgresDecodable {
    public init?(postgresText text: String) { self = text }
}

extension Int: PostgresDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension Int64: PostgresDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension Int32: PostgresDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension Double: PostgresDecodable {
    /// Decimal text as float8 and numeric print it, and `NaN`, `Infinity`, `-Infinity`.
    public init?(postgresText text: String) { self.init(text) }
}

extension Bool: PostgresDecodable {
    /// `t` and `f`, as the server prints a boolean (and `true`, `false` from a text column).
    public init?(postgresText text: String) {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}

extension Date: PostgresDecodable {
    /// timestamptz text (`2026-11-26 09:03:44.123456+00`) or ISO 8601.
    public init?(postgresText text: String) {
        guard let date = PostgresTimestamp.parse(text) else { return nil }
        self = date
    }
}

extension UUID: PostgresDecodable {
    public init?(postgresText text: String) { self.init(uuidString: text) }
}

extension JSONValue: PostgresDecodable {
    /// json or jsonb text (select a jsonb column as `col::text` or as it is; both print JSON).
    public init?(postgresText text: String) {
        guard let value = try? JSONValue.parse(text) else { return nil }
        self = value
    }
}

extension PostgresDecodable where Self: TextID {
    /// The id's text as it is stored (ids round-trip unchecked; see `TextID`).
    public init?(postgresText text: String) { self.init(text) }
}

extension PostgresDecodable where Self: RawRepresentable, RawValue == String {
    /// One of the enum's raw values; any other text is an error.
    public init?(postgresText text: String) { self.init(rawValue: text) }
}

/// A column value that cannot be read as the type the code expects: the column is not in the
/// result, it is NULL where a value is required, or its text is not a value of the type (or a
/// statement that must return one row returned another count).
///
/// It is a client-side error, so it has no SQLSTATE. Its message names the column, the table
/// when the caller named it (`PostgresRows.from`), the expected type, the text received
/// (shortened) and the statement.
@MemberwiseInit
public struct PostgresDecodingError: BridgeError, Sendable, Equatable {
    public enum Problem: Sendable, Equatable {
        /// The result has no column of that name.
        case missingColumn
        /// The column is NULL where the code needs a value.
        case null
        /// The text received, which is not a value of the expected type.
        case badValue(String)
        /// `PostgresRows.one()` found this many rows.
        case rowCount(Int)
    }

    /// The column read (nil for a row-count problem).
    public var column: String?
    /// The Swift type the code expected (`Int`, `TraceID`, `JSONValue`).
    public var expected: String
    public var problem: Problem
    /// The result's columns.
    public var columns: [String]
    public var source: PostgresRowSource

    /// An error about `column` of `row`, for a check a caller makes beyond the type (a JSON
    /// value that must be an object, a number that must be positive).
    public init(column: String, expected: String, problem: Problem, row: PostgresRow) {
        self.init(column: column, expected: expected, problem: problem, columns: row.columns, source: row.source)
    }

    /// A value that does not decode is bad input, as a mistyped value in a file is.
    public var exitStatus: ExitStatus { .badInput }

    public var description: String {
        let table = source.table.map { " of \($0)" } ?? ""
        let name = column.map { "column \"\($0)\"\(table)" } ?? "result\(table)"
        var message: String
        switch problem {
        case .missingColumn:
            let have = columns.map { "\"\($0)\"" }.joined(separator: ", ")
            message = "\(name): no such column in the result (expected \(expected); it has \(have))"
        case .null: message = "\(name): expected \(expected), got NULL"
        case .badValue(let text): message = "\(name): expected \(expected), got \(Self.quoted(text))"
        case .rowCount(let n): message = "\(name): expected \(expected), got \(n) rows"
        }
        if let statement = source.statement { message += "; statement: \(Self.shortened(statement))" }
        return message
    }

    /// The received text in quotes, cut to 60 characters (it may be a long document or a
    /// user's data; the start is enough to see what it is).
    static func quoted(_ text: String) -> String {
        let limit = 60
        let body = text.count > limit ? String(text.prefix(limit)) + "…" : text
        return "\"" + body.replacingOccurrences(of: "\n", with: "\\n") + "\""
    }

    /// The statement on one line, cut to 160 characters.
    static func shortened(_ statement: String) -> String {
        let oneLine = statement.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return oneLine.count > 160 ? String(oneLine.prefix(160)) + "…" : oneLine
    }
}
