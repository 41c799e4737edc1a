import BridgeCore
import BridgePostgres
import Foundation
import Testing

@Suite struct SHA256Tests {
    @Test func standardVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(SHA256.hex(String(repeating: "a", count: 1_000)) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}

@Suite struct RedactionTests {
    @Test func urlPassword() {
        #expect(Redaction.connectionString("postgres://alice:s3cret@db:5432/app") == "postgres://alice:***@db:5432/app")
        #expect(Redaction.connectionString("postgres://alice@db/app") == "postgres://alice@db/app")
    }

    @Test func keyValuePassword() {
        #expect(Redaction.connectionString("host=db password=s3cret user=a") == "host=db password=*** user=a")
        #expect(Redaction.connectionString("host=db password='a b' user=a") == "host=db password=*** user=a")
        #expect(Redaction.connectionString("postgres://db/app?password=s3cret&sslmode=require")
                == "postgres://db/app?password=***&sslmode=require")
    }

    @Test func scrub() {
        #expect(Redaction.scrub("failed for s3cret!", secrets: ["s3cret"]) == "failed for ***!")
    }
}

@Suite struct PostgresQueryTests {
    @Test func interpolationBindsValues() {
        let id = "x'; DROP TABLE tasks; --"
        let n = 5
        let q: PostgresQuery = "SELECT * FROM \(identifier: "bridge.spans") WHERE id = \(id) AND n > \(n)"
        #expect(q.sql == #"SELECT * FROM "bridge"."spans" WHERE id = $1 AND n > $2"#)
        #expect(q.binds == [.text(id), .text("5")])
    }

    @Test func nullAndNested() {
        let missing: String? = nil
        let inner: PostgresQuery = "b = \(2)"
        let q: PostgresQuery = "a = \(missing) AND \(inner) AND c = \(true)"
        #expect(q.sql == "a = $1 AND b = $2 AND c = $3")
        #expect(q.binds == [.null, .text("2"), .text("true")])
    }

    @Test func identifierQuoting() {
        #expect(PostgresQuery.quoteIdentifier(#"we"ird"#) == #""we""ird""#)
        #expect(PostgresQuery.quoteIdentifier("bridge.spans") == #""bridge"."spans""#)
    }

    @Test func joinedRenumbers() {
        let parts: [PostgresQuery] = ["(\(1), \(2))", "(\(3), \(4))"]
        let q = PostgresQuery.joined(parts, separator: ", ")
        #expect(q.sql == "($1, $2), ($3, $4)")
        #expect(q.binds.count == 4)
    }

    /// The bug seen before: SQL assembled in the same expression that binds its values (a
    /// binder copied before the arguments that bind) lost the binds. Every way of composing
    /// a query keeps each fragment's values, numbered in the order the text reads.
    @Test func composingInOneExpressionKeepsBinds() {
        let key = "k1"
        let cols = ["a", "b"]
        let q: PostgresQuery = """
            UPDATE \(identifier: "s.t") SET \(cols.enumerated().map { i, c -> PostgresQuery in "\(identifier: c) = \(i * 10)" })
            WHERE k = \(key) AND \(PostgresQuery.joined(["x = \(true)", "y = \("why")"], separator: " AND "))
            """
        #expect(q.sql == #"UPDATE "s"."t" SET "a" = $1, "b" = $2"# + "\n" + #"WHERE k = $3 AND x = $4 AND y = $5"#)
        #expect(q.binds == [.text("0"), .text("10"), .text("k1"), .text("true"), .text("why")])

        var built: PostgresQuery = "SELECT \(1)"
        built += " WHERE a = \(2)" + " AND b = \(3)"
        built.append(" LIMIT \(4)")
        #expect(built.sql == "SELECT $1 WHERE a = $2 AND b = $3 LIMIT $4")
        #expect(built.binds == [.text("1"), .text("2"), .text("3"), .text("4")])

        // A fragment used twice binds its value twice.
        let v: PostgresQuery = "\("x")"
        let twice: PostgresQuery = "\(v) = \(v)"
        #expect(twice.sql == "$1 = $2")
        #expect(twice.binds == [.text("x"), .text("x")])
    }

    @Test func unsafeSQLIsTakenAsItIs() {
        let q = PostgresQuery(unsafeSQL: "SELECT $1::int", binds: [.text("7")])
        let outer: PostgresQuery = "SELECT \("a"), (\(q))"
        #expect(outer.sql == "SELECT $1, (SELECT $2::int)")
        #expect(outer.binds == [.text("a"), .text("7")])
    }

    @Test func timestamps() throws {
        let d = try #require(PostgresTimestamp.parse("2026-11-26 09:03:44.5+00"))
        #expect(PostgresTimestamp.format(d) == "2026-11-26T09:03:44.500000Z")
        let e = try #require(PostgresTimestamp.parse("2026-11-26T10:03:44+01:00"))
        #expect(e.timeIntervalSince1970.rounded() == d.timeIntervalSince1970.rounded(.down))
    }
}

@Suite struct JSONQuoteTests {
    @Test func escapesAsJSONAndAsPythonDoes() throws {
        let s = "a\"b\\c\n\u{08}\u{01}é😀"
        #expect(JSONValue.quote(s) == "\"a\\\"b\\\\c\\n\\b\\u0001é😀\"")
        // Python: json.dumps("a\"b\\c\n\b\x01é😀") (ensure_ascii=True)
        #expect(JSONValue.quote(s, asciiOnly: true) == "\"a\\\"b\\\\c\\n\\b\\u0001\\u00e9\\ud83d\\ude00\"")
        #expect(try JSONValue.parse(JSONValue.quote(s, asciiOnly: true)) == .string(s))
    }
}
