import BridgeCore
import BridgeMapping
import BridgeMigrate
import BridgePostgres
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

@Suite struct SHA256Tests {
    @Test func standardVectors() {
        #expect(SHA256.hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            SHA256.hex(String(repeating: "a", count: 1_000))
                == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        // FIPS 180-4 examples: the 896-bit message and one million "a".
        #expect(
            SHA256.hex(
                "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"
            )
                == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1")
        #expect(
            SHA256.hex(String(repeating: "a", count: 1_000_000))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func oneMebibyteAndBlockBoundaries() {
        #expect(
            SHA256.hex([UInt8](repeating: UInt8(ascii: "a"), count: 1 << 20))
                == "9bc1b2a288b26af7257a36277ae3816a7d4f16e89c1e7e77d0a5c48bad62b360")
        // Lengths around the 64-byte block and the 56-byte padding edge.
        let expected: [Int: String] = [
            55: "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59",
            56: "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562",
            63: "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488",
            64: "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108",
            65: "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781",
            119: "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6",
            120: "f52b23db1fbb6ded89ef42a23ce0c8922c45f25c50b568a93bf1c075420bbb7c",
            128: "471fb943aa23c511f6f72f8d1652d9c880cfa392ad80503120547703e56a2be5",
        ]
        for (n, digest) in expected {
            #expect(SHA256.hex((0..<n).map { UInt8($0) }) == digest, "length \(n)")
        }
        #expect(SHA256.hex("tâche 🚀") == "7813ac02297be70b12ba2271809a24f1d003801c85a5d0fcf090607887dabb69")
    }

    /// Ids and checksums already stored in users' databases: pinned to what the hand-written
    /// implementation produced before bridge took SHA-256 from libcrypto.
    @Test func storedDigestsUnchanged() {
        #expect(TraceID.forTask("42", attempt: 1) == "trace_dd36788a4abd50b36837e174884160e1")
        #expect(
            MigrationFile.checksum("SELECT 1;\r\nSELECT 2;\r\n")
                == "82efb67f3010c6eb7ead02e4f6d9550633dbc1407f99aa487468e7b2567aebbc")
        #expect(SpanID("span_not-hex").otlp == "31ba3e5cf2a83644")
    }
}

@Suite struct RetryBackoffTests {
    @Test func jitterRangeAndDurations() {
        // The model client's [0.75, 1] jitter (openai-python's), migrations' ±50 %, none at all.
        #expect(RetryBackoff.delay(attempt: 2, base: 0.5, cap: 8, jitter: 0.75...1, random: 0) == 0.75)
        #expect(RetryBackoff.delay(attempt: 2, base: 0.5, cap: 8, jitter: 0.75...1, random: 1) == 1)
        #expect(
            RetryBackoff.delay(attempt: 3, base: .milliseconds(500), cap: .seconds(5), jitter: 0.5...1.5, random: 1)
                == .seconds(3))
        #expect(
            RetryBackoff.delay(attempt: 9, base: .milliseconds(500), cap: .seconds(5), jitter: 0.5...1.5, random: 0)
                == .seconds(2.5))
        #expect(RetryBackoff.delay(attempt: 1, base: 0.25, cap: 5, jitter: 1...1) == 0.25)
        #expect(RetryBackoff.delay(attempt: 6, base: 0.25, cap: 5, jitter: 1...1) == 5)
        // Huge attempt counts stay finite and capped.
        #expect(RetryBackoff.delay(attempt: Int.max, base: 2, cap: 300, random: 1) == 300)
        #expect(Duration.milliseconds(1500).inSeconds == 1.5)
    }

    /// The one parser of typed durations (every time flag, migrate's lock timeout).
    @Test(arguments: [
        ("60", Duration.seconds(60)), ("0.25", .milliseconds(250)), ("500ms", .milliseconds(500)),
        ("3s", .seconds(3)), ("2min", .seconds(120)), ("2m", .seconds(120)), ("1h", .seconds(3600)),
        (" 1.5S ", .milliseconds(1500)), ("0", .zero),
    ])
    func durationsParse(text: String, expected: Duration) {
        #expect(Duration(parsing: text) == expected)
    }

    /// Units in any case; the bound is `Duration.maximumSeconds`, inclusive.
    @Test(arguments: [
        ("5MS", Duration.milliseconds(5)), ("2MIN", .seconds(120)), ("\t3m ", .seconds(180)),
        ("1000000000", .seconds(1_000_000_000)), ("1e9s", .seconds(1_000_000_000)), ("-0", .zero),
    ])
    func durationEdgesParse(text: String, expected: Duration) {
        #expect(Duration(parsing: text) == expected)
    }

    @Test(arguments: [
        "", "abc", "-1", "1x", "ms", "nan", "inf", "1e400", "1e13", "20000000h", "1d", "2w", "5 s", "1000000001",
        "0x10", "0x1p4m",
    ])
    func malformedDurationsDoNotParse(text: String) {
        #expect(Duration(parsing: text) == nil)
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
        #expect(
            Redaction.connectionString("postgres://db/app?password=s3cret&sslmode=require")
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

    /// Aliases, integer literals and catalog type names are SQL text, not binds.
    @Test func aliasesLiteralsAndCatalogTypesAreText() {
        let q: PostgresQuery =
            "SELECT \(alias: "t").\(identifier: "id") FROM x AS \(alias: "t") WHERE k = \("a")::\(catalogType: "character varying(64)") LIMIT \(literal: 16)"
        #expect(q.sql == #"SELECT t."id" FROM x AS t WHERE k = $1::character varying(64) LIMIT 16"#)
        #expect(q.binds == [.text("a")])
    }

    /// Each dot-separated part double-quoted, quotes inside doubled (schema-qualified names).
    @Test(arguments: [
        ("tasks", #""tasks""#), ("bridge.spans", #""bridge"."spans""#), (#"a"b"#, #""a""b""#),
        ("a..b", #""a".""."b""#), ("", #""""#), (".", #"""."""#), ("ä.ö", #""ä"."ö""#), (#"""#, #""""""#),
    ])
    func identifiersAreQuotedPartByPart(name: String, quoted: String) {
        #expect(PostgresQuery.quoteIdentifier(name) == quoted)
    }

    @Test(arguments: [
        ("t", true), ("j0", true), ("picked_1", true), ("_x", true), ("", false), ("0t", false), ("t.x", false),
        ("t x", false), ("\"t\"", false), ("t;--", false), ("ä", false),
    ])
    func aliasesArePlainASCIINames(name: String, ok: Bool) {
        #expect(PostgresQuery.isAlias(name) == ok)
    }

    @Test func nullAndNested() {
        let missing: String? = nil
        let inner: PostgresQuery = "b = \(2)"
        let q: PostgresQuery = "a = \(missing) AND \(inner) AND c = \(true)"
        #expect(q.sql == "a = $1 AND b = $2 AND c = $3")
        #expect(q.binds == [.null, .text("2"), .text("true")])
    }

    @Test func arraysBindAsOneArrayLiteral() {
        let ids: [String?] = ["a", #"q"u\o"#, nil, "NULL", ""]
        let times = [Date(timeIntervalSince1970: 0)]
        let q: PostgresQuery =
            "SELECT * FROM unnest(\(ids)::text[], \(times)::timestamptz[], \([1, 2])::int[]) WHERE x = \(3)"
        #expect(q.sql == "SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[]) WHERE x = $4")
        #expect(
            q.binds == [
                .text(#"{"a","q\"u\\o",NULL,"NULL",""}"#), .text(#"{"1970-01-01T00:00:00.000000Z"}"#),
                .text(#"{"1","2"}"#), .text("3"),
            ])
        #expect(PostgresArray.text([]) == "{}")
        #expect(PostgresArray.text(["x,y"]) == #"{"x,y"}"#)
    }

    @Test func identifierQuoting() {
        #expect(PostgresQuery.quoteIdentifier(#"we"ird"#) == #""we""ird""#)
        #expect(PostgresQuery.quoteIdentifier("bridge.spans") == #""bridge"."spans""#)
    }

    /// A nested query's `$n` references move up; text that only looks like one (in a string
    /// literal, an escape string, a quoted identifier, a dollar-quoted body or a comment) keeps
    /// its text, and a non-ASCII digit is not a reference.
    @Test(arguments: [
        ("x = $1", "x = $3"),
        ("x = '$1' AND y = $1", "x = '$1' AND y = $3"),
        ("x = 'it''s $1' || $2", "x = 'it''s $1' || $4"),
        (#"x = E'\'$1' || $1"#, #"x = E'\'$1' || $3"#),
        (#""col$1" = $1"#, #""col$1" = $3"#),
        ("$$ body $1 $$ || $tag$ $2 $tag$ || $1", "$$ body $1 $$ || $tag$ $2 $tag$ || $3"),
        ("-- note $1\n$1 /* $2 /* nested $1 */ $2 */ $2", "-- note $1\n$3 /* $2 /* nested $1 */ $2 */ $4"),
        ("price$1 = $½ AND $12", "price$1 = $½ AND $14"),
    ])
    func renumberingSkipsLiteralsAndComments(sql: String, renumbered: String) {
        let inner = PostgresQuery(unsafeSQL: sql, binds: [])
        let q: PostgresQuery = "\(1)\(2)\(inner)"
        #expect(q.sql == "$1$2" + renumbered)
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

    /// Every zone form the server or ISO 8601 writes, and none: the same instant.
    @Test(arguments: [
        "2026-11-26T09:03:44Z", "2026-11-26 09:03:44+00", "2026-11-26 09:03:44", "2026-11-26 10:33:44+01:30",
        "2026-11-26 10:33:44+0130", "2026-11-26 07:33:44-01:30", "2026-11-26 09:04:12+00:00:28",
    ])
    func timestampZones(_ text: String) throws {
        let date = try #require(PostgresTimestamp.parse(text))
        #expect(PostgresTimestamp.format(date) == "2026-11-26T09:03:44.000000Z")
    }

    /// What is not one of those forms is refused, not read as another instant: wrong
    /// separators, a field out of range, a day past the month's end, text after the zone, a bad
    /// zone, and a run of digits (which `--since` would otherwise take for a date).
    @Test(arguments: [
        "2026x11x26T09:03:44Z", "2026-11-26_09:03:44", "2026-13-01 00:00:00", "2026-02-31 00:00:00",
        "2026-11-26 24:00:00", "2026-11-26 09:60:00", "2026-11-26 09:03:44+00 BC", "2026-11-26 09:03:44Zulu",
        "2026-11-26 09:03:44+1", "2026-11-26 09:03:44+01:", "9999999999999999999", "2026-11-26",
        "2026-11-26 09:03:44.", "2026-11-26T09:03:44.Z",
    ])
    func timestampsRefused(_ text: String) {
        #expect(PostgresTimestamp.parse(text) == nil)
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
