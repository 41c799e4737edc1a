import BridgeCore
import BridgeMapping
import BridgeMigrate
import BridgePostgres
import BridgeTestSupport
import BridgeWorker
import Foundation
import Testing

/// Production-sized tables: every statement the worker runs per task or per poll is EXPLAINed
/// on 200,000 tasks, 80,000 execution rows and a ledger of 300,000 spans, and must not plan a
/// sequential scan of any of them. A cast on the column side (`"id"::text = $1`) hides the
/// index and fails this test (the last check proves the detector sees exactly that).
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct HotPathPlanTests {
    static var mappings: String { TestDatabase.projectRoot.appendingPathComponent("mappings").path }
    static let largeTables: Set<String> = ["tasks", "task_executions", "spans", "traces", "span_deliveries",
                                           "trace_deliveries", "run_transcripts"]

    /// The relations that `query`'s plan reads with a Seq Scan, among the large tables.
    static func seqScans(_ query: PostgresQuery, on c: PostgresConnection) async throws -> [String] {
        var explain = query
        explain.sql = "EXPLAIN (FORMAT JSON) " + query.sql
        let text = try #require(try await c.query(explain).first?.values.first ?? nil)
        var found: [String] = []
        func walk(_ node: JSONValue) {
            if node["Node Type"]?.stringValue == "Seq Scan", let r = node["Relation Name"]?.stringValue,
               largeTables.contains(r) { found.append(r) }
            for child in node["Plans"]?.arrayValue ?? [] { walk(child) }
        }
        for plan in try JSONValue.parse(text).arrayValue ?? [] { walk(plan["Plan"] ?? .null) }
        return found
    }

    /// 200,000 seeded tasks (one INSERT … SELECT generate_series per table, in the seed), the
    /// shipped migrations, and statistics.
    static func largeDatabase() async throws -> (url: String, c: PostgresConnection, config: MappingConfig) {
        let url = try await TestDatabase.createReference(seed: true, workspaces: 100, tasksPerWorkspace: 2_000)
        var o = MigrateOptions(connection: ConnectionConfig(conninfo: url))
        o.directory = TestDatabase.projectRoot.appendingPathComponent("migrations").path
        _ = try await Migrator(options: o).up()
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery("ANALYZE")
        var config = try MappingLoader.load(directory: mappings)
        config.columnTypes = try await ColumnTypes.load(for: config, connection: c)
        return (url, c, config)
    }

    @Test func noHotPathStatementScansALargeTable() async throws {
        let (_, c, config) = try await Self.largeDatabase()
        #expect(config.columnTypes.type("tasks", "id") == "uuid")
        #expect(config.columnTypes.type("task_executions", "task_id") == "uuid")
        let key = try #require(try await c.query("SELECT id::text AS k FROM tasks WHERE status = 'pending' LIMIT 1").first?["k"])
        let execution = try #require(try await c.query("SELECT id::text AS k FROM task_executions LIMIT 1").first?["k"])
        var statements = TaskStore(config: config).hotPathStatements(key: key, executionKey: execution)
        statements += DatabaseToSDKBridge(config: config).hotPathStatements(taskKey: key)
        #expect(statements.count >= 10)
        for (name, query) in statements {
            let scans = try await Self.seqScans(query, on: c)
            #expect(scans.isEmpty, "\(name) scans \(scans) (\(query.sql))")
        }
        // The detector at work: the old column-side cast reads the whole table.
        let cast = PostgresQuery(unsafeSQL: "UPDATE task_executions SET status = 'completed' WHERE id::text = $1", binds: [.text(execution)])
        #expect(try await Self.seqScans(cast, on: c) == ["task_executions"])
        await c.close()
    }
}
