import BridgeCore
import Foundation

/// The rows of one result, copied out of libpq (the `PGresult` is cleared before this exists).
/// Every value is in PostgreSQL's text format; `nil` is SQL NULL.
///
/// Read values with the typed accessors of `PostgresRow` (`decode`, `optional`), whose errors
/// name the column, the expected type and the statement; `one()` takes the row of a statement
/// that returns exactly one (an aggregate, `RETURNING` of a one-row write).
public struct PostgresRows: Sendable, Sequence {
    public let columns: [String]
    public let rows: [[String?]]
    /// The command tag's row count (`UPDATE 3` → 3), when the statement reports one.
    public let affectedRows: Int
    private let index: [String: Int]
    /// Where the rows come from, for decoding errors.
    public private(set) var source: PostgresRowSource

    public init(columns: [String], rows: [[String?]], affectedRows: Int, statement: String? = nil) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
        var idx: [String: Int] = [:]
        for (i, c) in columns.enumerated() where idx[c] == nil { idx[c] = i }
        self.index = idx
        self.source = PostgresRowSource(statement: statement)
    }

    public var count: Int { rows.count }
    public var isEmpty: Bool { rows.isEmpty }
    public var first: PostgresRow? { rows.first.map(row) }

    /// The same rows, with `table` named in decoding errors (`bridge.run_journal`, or the
    /// user's `tasks` table as configured).
    public func from(_ table: String) -> PostgresRows {
        var copy = self
        copy.source.table = table
        return copy
    }

    /// The only row of a statement that returns exactly one; any other count is an error.
    public func one() throws(PostgresDecodingError) -> PostgresRow {
        guard rows.count == 1 else {
            throw PostgresDecodingError(
                column: nil, expected: "one row", problem: .rowCount(rows.count), columns: columns, source: source)
        }
        return row(rows[0])
    }

    /// The first row of a statement that always returns at least one (counts joined to their
    /// examples); none is an error.
    public func firstRow() throws(PostgresDecodingError) -> PostgresRow {
        guard let row = first else {
            throw PostgresDecodingError(
                column: nil, expected: "a row", problem: .rowCount(0), columns: columns, source: source)
        }
        return row
    }

    public func makeIterator() -> AnyIterator<PostgresRow> {
        var it = rows.makeIterator()
        let make = row
        return AnyIterator { it.next().map(make) }
    }

    private func row(_ values: [String?]) -> PostgresRow {
        PostgresRow(values: values, columns: columns, index: index, source: source)
    }
}

/// Where rows come from: the statement (its text holds no values; they are bound separately)
/// and, when the caller names it, the table.
@MemberwiseInit
public struct PostgresRowSource: Sendable, Equatable {
    public var statement: String? = nil
    public var table: String? = nil
}

/// One row; columns are looked up by name.
///
/// `decode` and `optional` are the typed reads: a missing column, a NULL where a value is
/// required, or text that is not the expected type throws `PostgresDecodingError`. The
/// subscript and the lenient accessors (`int`, `bool`, …) are for the few places where an
/// absent or unreadable value truly means "none" (they answer nil for NULL, for an unknown
/// column and for bad text alike).
public struct PostgresRow: Sendable {
    public let values: [String?]
    let columns: [String]
    let index: [String: Int]
    let source: PostgresRowSource

    /// The text value of `column`, or nil for NULL or an unknown column.
    public subscript(_ column: String) -> String? {
        guard let i = index[column] else { return nil }
        return values[i]
    }

    /// Whether the result has `column` (whatever its value).
    public func has(_ column: String) -> Bool { index[column] != nil }

    /// The value of `column` as `T`: a missing column, NULL or text that is not a `T` throws.
    public func decode<T: PostgresDecodable>(
        _ type: T.Type = T.self, _ column: String
    ) throws(PostgresDecodingError) -> T {
        guard let value = try optional(T.self, column) else { throw error(T.self, column, .null) }
        return value
    }

    /// The value of `column` as `T`, nil for NULL: a missing column or text that is not a `T`
    /// throws (a misspelled column is never read as NULL).
    public func optional<T: PostgresDecodable>(
        _ type: T.Type = T.self, _ column: String
    ) throws(PostgresDecodingError) -> T? {
        guard let i = index[column] else { throw error(T.self, column, .missingColumn) }
        guard let text = values[i] else { return nil }
        guard let value = T(postgresText: text) else { throw error(T.self, column, .badValue(text)) }
        return value
    }

    private func error<T>(_: T.Type, _ column: String, _ problem: PostgresDecodingError.Problem)
        -> PostgresDecodingError
    {
        PostgresDecodingError(
            column: column, expected: String(describing: T.self), problem: problem, columns: columns, source: source)
    }

    // MARK: Lenient reads (nil for NULL, an unknown column or bad text)

    public func string(_ column: String) -> String? { self[column] }
    public func int(_ column: String) -> Int? { self[column].flatMap { Int($0) } }
    public func double(_ column: String) -> Double? { self[column].flatMap { Double($0) } }
    public func bool(_ column: String) -> Bool? { self[column].map { $0 == "t" || $0 == "true" } }
    public func date(_ column: String) -> Date? { self[column].flatMap(PostgresTimestamp.parse) }
    /// Parses a json/jsonb column with JSONSerialization.
    public func json(_ column: String) -> Any? {
        guard let s = self[column], let d = s.data(using: .utf8) else { return nil }
        return try? JSONSerialization.jsonObject(with: d, options: [.fragmentsAllowed])
    }
}

/// A result column of a prepared statement (`PostgresConnection.checkPrepares`).
@MemberwiseInit
public struct PreparedColumn: Sendable, Equatable {
    public var name: String
    /// The type as `format_type` spells it: `boolean`, `bigint`, `text`, `character varying(64)`.
    public var type: String
}
