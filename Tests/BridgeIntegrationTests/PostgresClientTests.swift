import BridgeCore
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct PostgresClientTests {
    @Test func bindsRoundTrip() async throws {
        let url = try await TestDatabase.create()
        let c = try await TestDatabase.connect(url)
        let evil = "it's \"quoted\"; DROP TABLE x; --"
        let rows = try await c.query(
            "SELECT \(evil)::text AS s, \(42)::int AS n, \(Optional<String>.none)::text AS z, \(true)::bool AS b")
        let row = try #require(rows.first)
        #expect(row["s"] == evil)
        #expect(row.int("n") == 42)
        #expect(row["z"] == nil)
        #expect(row.bool("b") == true)
        await c.close()
    }

    /// A database whose DateStyle is not ISO (`SQL, DMY` prints `26/11/2026 09:03:44.50 UTC`)
    /// still gives its timestamps back: every connection asks for ISO output.
    @Test func timestampsReadBackWhateverTheDatabasesDateStyle() async throws {
        let url = try await TestDatabase.create()
        try await TestDatabase.execute(
            url,
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET DateStyle = %L', current_database(), 'SQL, DMY'); END $$"
        )
        let c = try await TestDatabase.connect(url)
        let rows = try await c.query(
            "SELECT timestamptz '2026-11-26 09:03:44.5+00' AS t, current_setting('DateStyle') AS style")
        let row = try #require(rows.first)
        #expect(row["style"] == "ISO, DMY")
        #expect(row.date("t").map(PostgresTimestamp.format) == "2026-11-26T09:03:44.500000Z")
        await c.close()
    }

    /// A statement composed of fragments in one expression reaches the server with every
    /// value bound (the bug seen before lost them: "bind message supplies 0 parameters").
    @Test func composedQueryKeepsItsBinds() async throws {
        let url = try await TestDatabase.create()
        let c = try await TestDatabase.connect(url)
        let parts: [PostgresQuery] = ["\("a")::text AS x", "\(2)::int AS y"]
        let z: PostgresQuery? = "\("c")::text"
        let rows = try await c.query("SELECT \(parts), \(z ?? "NULL") AS z")
        let row = try #require(rows.first)
        #expect(row["x"] == "a")
        #expect(row.int("y") == 2)
        #expect(row["z"] == "c")
        await c.close()
    }

    /// A call on a closed connection fails with "connection is closed"; it used to wait forever
    /// (the connection's thread had exited, so nothing ran the call).
    @Test func aCallAfterCloseFailsInsteadOfHanging() async throws {
        let url = try await TestDatabase.create()
        let c = try await TestDatabase.connect(url)
        await c.close()
        try await Task.sleep(for: .milliseconds(50))
        await #expect(throws: PostgresError.self) { try await c.query("SELECT 1") }
        #expect(await c.isOpen == false)
        await c.close()
    }

    @Test func serverErrorsCarrySQLState() async throws {
        let url = try await TestDatabase.create()
        let c = try await TestDatabase.connect(url)
        await #expect(throws: PostgresError.self) { try await c.query("SELECT * FROM no_such_table") }
        do {
            try await c.query("SELECT * FROM no_such_table")
        } catch {
            #expect(error.sqlState == "42P01")
            #expect(error.position == 15)
            #expect(error.kind == .server)
            #expect(error.description.contains("no_such_table"))
        }
        // The connection is still usable after an error.
        #expect(try await c.query("SELECT 1 AS one").first?.int("one") == 1)
        await c.close()
    }

    @Test func transactionRollsBack() async throws {
        let url = try await TestDatabase.create()
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery("CREATE TABLE t (v int)")
        do {
            _ = try await c.transaction { conn in
                try conn.query("INSERT INTO t VALUES (\(1))")
                try conn.query("INSERT INTO t VALUES (\("not a number"))")
            }
            Issue.record("expected failure")
        } catch let e as PostgresError {
            #expect(e.sqlState == "22P02")
        }
        #expect(try await c.query("SELECT count(*) AS n FROM t").first?.int("n") == 0)
        #expect(await c.inTransaction == false)
        await c.close()
    }

    @Test func ledgerPresenceIsOneCatalogCheck() async throws {
        let url = try await TestDatabase.create()
        let c = try await TestDatabase.connect(url)
        #expect(try await c.ledgerHas([.spans]) == false)
        try await c.simpleQuery(
            "CREATE SCHEMA bridge; CREATE TABLE bridge.traces (v int); CREATE TABLE bridge.spans (v int)")
        #expect(try await c.ledgerHas([.traces, .spans]) == true)
        #expect(try await c.ledgerHas([.traces, .spans, .runTranscripts]) == false)
        #expect(try await c.ledgerHas([]) == true)
        await c.close()
    }

    @Test func connectionFailureIsRedacted() async throws {
        let config = ConnectionConfig(conninfo: "postgres://bob:hunter22@127.0.0.1:1/db", connectTimeout: 2)
        do {
            _ = try await PostgresConnection.connect(config)
            Issue.record("expected failure")
        } catch {
            #expect(error.kind == .connection)
            #expect(!error.description.contains("hunter22"))
            #expect(error.description.contains("bob:***@"))
            #expect(error.exitStatus == .badInput)
        }
    }

    @Test func manyConnectionsConcurrently() async throws {
        let url = try await TestDatabase.create()
        try await withThrowingTaskGroup(of: Int.self) { group in
            for i in 0..<8 {
                group.addTask {
                    let c = try await TestDatabase.connect(url)
                    let n = try await c.query("SELECT \(i)::int + 1 AS n, pg_sleep(0.05)").first?.int("n")
                    await c.close()
                    return n ?? -1
                }
            }
            var sum = 0
            for try await n in group { sum += n }
            #expect(sum == (1...8).reduce(0, +))
        }
    }
}
