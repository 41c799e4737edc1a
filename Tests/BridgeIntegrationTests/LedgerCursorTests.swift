import BridgeCore
import BridgePostgres
import BridgeTestSupport
import BridgeTracing
import Foundation
import Testing

/// The export cursor (`LedgerPosition`): O(batch) reads that never skip a span whose
/// transaction commits late, rows stored before the cursor existed, and crash safety.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct LedgerCursorTests {
    static func migration(_ name: String) throws -> String {
        try String(contentsOfFile: TestDatabase.projectRoot.appendingPathComponent("migrations/\(name)").path, encoding: .utf8)
    }

    static func span(_ id: String, trace: String) -> SpanRecord {
        SpanRecord(id: id, traceId: trace, parentId: nil, startedAt: Date(), endedAt: Date(),
                   spanData: ["type": "custom", "name": .string(id), "data": [:]], error: nil)
    }

    /// A ledger with the export tables; `cursor` applies migration 0012 first.
    static func ledger(cursor: Bool = true) async throws -> (String, PostgresConnection) {
        let url = try await TestDatabase.create(prefix: "cursor")
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery(ledgerDDL)
        try await c.simpleQuery(try migration("0004_export_deliveries.sql"))
        if cursor { try await c.simpleQuery(try migration("0012_ledger_cursor.sql")) }
        return (url, c)
    }

    static func insert(_ c: PostgresConnection, trace: String, spans: [String]) async throws {
        let ledger = Ledger(connection: c)
        try await ledger.insertTrace(TraceRecord(id: trace, workflowName: "w", groupId: nil, metadata: [:]), taskId: nil,
                                     startedAt: Date())
        for s in spans { try await ledger.insertSpan(span(s, trace: trace)) }
    }

    static func file() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("cursor-\(UUID().uuidString).jsonl").path
    }

    static func lines(_ path: String) throws -> [String] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
            (try? JSONValue.parse(String($0)))?["id"]?.stringValue
        }
    }

    @Test func aSpanWhoseTransactionCommitsLateIsNotSkipped() async throws {
        let (url, c) = try await Self.ledger()
        let late = try await TestDatabase.connect(url)
        try await Self.insert(c, trace: "trace_a", spans: [])
        // The late transaction takes its sequence value first, then commits after a later one.
        try await late.simpleQuery("BEGIN")
        try await late.query("""
            INSERT INTO bridge.spans (span_id, trace_id, started_at, ended_at, span_data)
            VALUES ('span_late', 'trace_a', now(), now(), '{"type": "custom", "name": "late", "data": {}}')
            """)
        try await Self.insert(c, trace: "trace_a", spans: ["span_early"])
        let path = Self.file()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pump = ExportPump(exporter: try FileExporter(path: path), connection: c)
        try await pump.register()
        try await pump.tryLock()
        try await pump.drain()
        // span_early committed, but a transaction older than it is still running: the cursor
        // waits at the horizon rather than passing span_late's position.
        #expect(!(try Self.lines(path)).contains("span_late"))
        try await late.simpleQuery("COMMIT")
        try await pump.drain()
        try await pump.drain()
        let sent = try Self.lines(path)
        #expect(sent.filter { $0 == "span_late" }.count == 1)
        #expect(sent.filter { $0 == "span_early" }.count == 1)
        #expect(try await ExportPump.backlog(exporter: "file", connection: c) == ExportBacklog(traces: 0, spans: 0))
        await late.close()
        await c.close()
    }

    @Test func rowsFromBeforeTheCursorAreSentOnceThenOnlyNewOnes() async throws {
        let (_, c) = try await Self.ledger(cursor: false)
        try await Self.insert(c, trace: "trace_old", spans: ["span_old1", "span_old2"])
        try await c.simpleQuery(try Self.migration("0012_ledger_cursor.sql"))
        try await Self.insert(c, trace: "trace_new", spans: ["span_new1"])
        #expect(try await ExportPump.backlog(exporter: "file", connection: c) == ExportBacklog(traces: 2, spans: 3))
        let path = Self.file()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pump = ExportPump(exporter: try FileExporter(path: path), connection: c)
        try await pump.register()
        try await pump.tryLock()
        try await pump.drain()
        #expect(Set(try Self.lines(path)) == ["trace_old", "trace_new", "span_old1", "span_old2", "span_new1"])
        try await Self.insert(c, trace: "trace_new", spans: ["span_new2"])
        try await pump.drain()
        #expect(try Self.lines(path).count == 6)
        #expect(try await c.query("SELECT legacy_done FROM bridge.exporters WHERE name = 'file'").first?.bool("legacy_done") == true)
        await c.close()
    }

    @Test func aCrashBeforeTheCursorMovesSendsNothingTwiceThatWasRecorded() async throws {
        let (_, c) = try await Self.ledger()
        try await Self.insert(c, trace: "trace_a", spans: ["s1", "s2", "s3"])
        // As after a crash between the delivery rows and the cursor update: s1 and s2 are
        // recorded as delivered, the cursor is still at the start.
        try await c.simpleQuery("""
            INSERT INTO bridge.exporters (name, target) VALUES ('file', 'x');
            INSERT INTO bridge.trace_deliveries (exporter, trace_id, status) VALUES ('file', 'trace_a', 'delivered');
            INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status)
            VALUES ('file', 's1', 'trace_a', 'delivered'), ('file', 's2', 'trace_a', 'delivered');
            """)
        let path = Self.file()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let pump = ExportPump(exporter: try FileExporter(path: path), connection: c)
        try await pump.register()
        try await pump.tryLock()
        try await pump.drain()
        #expect(try Self.lines(path) == ["s3"])
        await c.close()
    }
}
