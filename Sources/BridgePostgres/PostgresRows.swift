import BridgeCore
import Foundation

/// The rows of one result, copied out of libpq (the `PGresult` is cleared before this exists).
/// Every value is in PostgreSQL's text format; `nil` is SQL NULL.
public struct PostgresRows: Sendable, Sequence {
    public let columns: [String]
    public let rows: [[String?]]
    /// The command tag's row count (`UPDATE 3` → 3), when the statement reports one.
    public let affectedRows: Int
    private let index: [String: Int]

    public init(columns: [String], rows: [[String?]], affectedRows: Int) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
        var idx: [String: Int] = [:]
        for (i, c) in columns.enumerated() where idx[c] == nil { idx[c] = i }
        self.index = idx
    }

    public var count: Int { rows.count }
    public var isEmpty: Bool { rows.isEmpty }
    public var first: PostgresRow? { rows.first.map { PostgresRow(values: $0, index: index) } }

    public func makeIterator() -> AnyIterator<PostgresRow> {
        var it = rows.makeIterator()
        let index = self.index
        return AnyIterator { it.next().map { PostgresRow(values: $0, index: index) } }
    }
}

/// One row; columns are looked up by name.
public struct PostgresRow: Sendable {
    public let values: [String?]
    let index: [String: Int]

    /// The text value of `column`, or nil for NULL or an unknown column.
    public subscript(_ column: String) -> String? {
        guard let i = index[column] else { return nil }
        return values[i]
    }

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
public struct PreparedColumn: Sendable, Equatable {
    public var name: String
    /// The type as `format_type` spells it: `boolean`, `bigint`, `text`, `character varying(64)`.
    public var type: String

    public init(name: String, type: String) {
        self.name = name
        self.type = type
    }
}
