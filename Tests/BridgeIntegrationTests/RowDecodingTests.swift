import BridgeCore
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

/// Typed reads of result columns (`PostgresRow.decode`, `optional`, `PostgresRows.one`) against
/// the values the real server prints, and the errors that name the column.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct RowDecodingTests {
    /// One SQL expression selected `AS v`, and what reading it must give.
    struct Case: Sendable, CustomTestStringConvertible {
        let sql: String
        let read: @Sendable (PostgresRow) throws -> Bool
        var testDescription: String { sql }

        init<T: PostgresDecodable & Equatable>(_ sql: String, _ expected: T) {
            self.sql = sql
            self.read = { try $0.decode(T.self, "v") == expected }
        }

        init(_ sql: String, read: @escaping @Sendable (PostgresRow) throws -> Bool) {
            self.sql = sql
            self.read = read
        }
    }

    /// One SQL expression selected `AS v` that must not decode as `T`, and the text the error
    /// must quote (nil for NULL).
    struct BadCase: Sendable, CustomTestStringConvertible {
        let sql: String
        let expected: String
        let received: String?
        let read: @Sendable (PostgresRow) throws(PostgresDecodingError) -> Void
        var testDescription: String { "\(sql) as \(expected)" }

        init<T: PostgresDecodable>(_ sql: String, as: T.Type, received: String?) {
            self.sql = sql
            self.expected = String(describing: T.self)
            self.received = received
            self.read = { (row) throws(PostgresDecodingError) in _ = try row.decode(T.self, "v") }
        }
    }

    static func row(_ sql: String) async throws -> PostgresRow {
        let c = try await TestDatabase.connect(try #require(TestDatabase.serverURL))
        defer { Task { await c.close() } }
        return try await c.query(PostgresQuery(unsafeSQL: "SELECT \(sql) AS v, 1 AS other")).one()
    }

    static let good: [Case] = [
        Case("42::bigint", 42),
        Case("(-7)::int", Int32(-7)),
        Case("9223372036854775807::bigint", Int64.max),
        Case("1.5::float8", 1.5),
        Case("0.1::numeric", 0.1),
        Case("'Infinity'::float8", Double.infinity),
        Case("'NaN'::float8", read: { try $0.decode(Double.self, "v").isNaN }),
        Case("true", true),
        Case("false", false),
        Case("''::text", ""),
        Case("'it''s'::text", "it's"),
        Case(
            "'2026-11-26 09:03:44.123456+00'::timestamptz",
            read: { abs(try $0.decode(Date.self, "v").timeIntervalSince1970 - 1_795_683_824.123456) < 1e-6 }),
        Case(#"'{"a":[1,null],"b":"x"}'::jsonb"#, ["a": [1, nil], "b": "x"] as JSONValue),
        Case("'null'::jsonb", JSONValue.null),
        Case("'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::uuid", UUID(uuidString: "6BA7B810-9DAD-11D1-80B4-00C04FD430C8")!),
        Case("'0af7651916cd43dd8448eb211c80319c'::text", TraceID("0af7651916cd43dd8448eb211c80319c")),
        Case("'delivered'::text", DeliveryStatus.delivered),
    ]

    @Test(arguments: good)
    func decodesWhatTheServerPrints(_ c: Case) async throws {
        let row = try await Self.row(c.sql)
        #expect(try c.read(row))
    }

    static let bad: [BadCase] = [
        BadCase("'abc'::text", as: Int.self, received: "abc"),
        BadCase("1.5::numeric", as: Int.self, received: "1.5"),
        BadCase("99999999999::bigint", as: Int32.self, received: "99999999999"),
        BadCase("'1,5'::text", as: Double.self, received: "1,5"),
        BadCase("'yes'::text", as: Bool.self, received: "yes"),
        BadCase("'soon'::text", as: Date.self, received: "soon"),
        BadCase("'{\"a\":'::text", as: JSONValue.self, received: "{\"a\":"),
        BadCase("'not-a-uuid'::text", as: UUID.self, received: "not-a-uuid"),
        BadCase("'lost'::text", as: DeliveryStatus.self, received: "lost"),
        BadCase("NULL::int", as: Int.self, received: nil),
        BadCase("NULL::text", as: TraceID.self, received: nil),
        BadCase("NULL::text", as: String.self, received: nil),
    ]

    @Test(arguments: bad)
    func aValueThatDoesNotDecodeNamesItsColumn(_ c: BadCase) async throws {
        let row = try await Self.row(c.sql)
        let error = try #require(throws: PostgresDecodingError.self) { try c.read(row) }
        #expect(error.column == "v")
        #expect(error.expected == c.expected)
        #expect(error.problem == (c.received.map { .badValue($0) } ?? .null))
        let got = c.received.map { "\"\($0)\"" } ?? "NULL"
        #expect(error.description.hasPrefix("column \"v\": expected \(c.expected), got \(got); statement: SELECT "))
        #expect(!error.description.contains("SQLSTATE"))
        #expect(error.exitStatus == .badInput)
    }

    @Test func optionalIsNilOnlyForNull() async throws {
        #expect(try await Self.row("NULL::bigint").optional(Int.self, "v") == nil)
        #expect(try await Self.row("3::bigint").optional(Int.self, "v") == 3)
        let row = try await Self.row("'x'::text")
        let error = try #require(throws: PostgresDecodingError.self) { try row.optional(Int.self, "v") }
        #expect(error.problem == .badValue("x"))
    }

    /// A misspelled column is an error for `optional` too: it is never read as NULL.
    @Test func aMissingColumnIsAnErrorNotANull() async throws {
        let row = try await Self.row("NULL::text")
        for read in [{ _ = try row.optional(String.self, "vv") }, { _ = try row.decode(String.self, "vv") }]
            as [() throws -> Void]
        {
            let error = try #require(throws: PostgresDecodingError.self) { try read() }
            #expect(error.problem == .missingColumn)
            #expect(
                error.description.hasPrefix(
                    #"column "vv": no such column in the result (expected String; it has "v", "other")"#))
        }
        #expect(row.has("v") && !row.has("vv"))
    }

    @Test func theTableNamedByTheCallerIsInTheMessage() async throws {
        let c = try await TestDatabase.connect(try #require(TestDatabase.serverURL))
        let rows = try await c.query("SELECT \("many\nlines")::text AS attempt").from("bridge.run_journal")
        await c.close()
        let error = try #require(throws: PostgresDecodingError.self) { try rows.one().decode(Int.self, "attempt") }
        #expect(
            error.description
                == #"column "attempt" of bridge.run_journal: expected Int, got "many\nlines"; statement: SELECT $1::text AS attempt"#
        )
    }

    @Test func aLongValueIsShortenedInTheMessage() async throws {
        let row = try await Self.row("repeat('x', 500)")
        let error = try #require(throws: PostgresDecodingError.self) { try row.decode(Int.self, "v") }
        #expect(error.description.contains("got \"\(String(repeating: "x", count: 60))…\""))
        #expect(error.problem == .badValue(String(repeating: "x", count: 500)))
    }

    @Test(arguments: [0, 2])
    func oneRowIsExactlyOneAndFirstRowAtLeastOne(_ count: Int) async throws {
        let c = try await TestDatabase.connect(try #require(TestDatabase.serverURL))
        let rows = try await c.query("SELECT g AS n FROM generate_series(1, \(count)) AS g")
        #expect(try await c.query("SELECT 1 AS n").one().decode(Int.self, "n") == 1)
        await c.close()
        let error = try #require(throws: PostgresDecodingError.self) { try rows.one() }
        #expect(error.problem == .rowCount(count))
        #expect(error.description.hasPrefix("result: expected one row, got \(count) rows; statement: SELECT g AS n"))
        if count == 0 {
            let none = try #require(throws: PostgresDecodingError.self) { try rows.firstRow() }
            #expect(none.description.hasPrefix("result: expected a row, got 0 rows; statement: SELECT g AS n"))
        } else {
            #expect(try rows.firstRow().decode(Int.self, "n") == 1)
        }
    }
}
