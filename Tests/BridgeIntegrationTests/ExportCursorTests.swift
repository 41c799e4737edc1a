import BridgeCore
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeTracing

/// An exporter that keeps what it was sent (item ids in order) and answers as told.
final class RecordingExporter: TraceExporter, @unchecked Sendable {
    // @unchecked Sendable: `items` and `answer` are guarded by `lock`.
    let name: String
    let target = "memory"
    let batchSize: Int
    private let lock = NSLock()
    private var items: [String] = []
    private var answer: @Sendable (ExportBatch) -> ExportResult = { _ in .delivered() }
    /// Runs after a batch was taken and before the pump hears the answer.
    private var afterSend: (@Sendable () async -> Void)?

    init(name: String = "memory", batchSize: Int = 5) {
        self.name = name
        self.batchSize = batchSize
    }

    var sent: [String] { lock.withLock { items } }
    func answer(_ f: @escaping @Sendable (ExportBatch) -> ExportResult) { lock.withLock { answer = f } }
    func afterSend(_ f: (@Sendable () async -> Void)?) { lock.withLock { afterSend = f } }

    func send(_ batch: ExportBatch) async -> ExportResult {
        let (result, hook) = lock.withLock { () -> (ExportResult, (@Sendable () async -> Void)?) in
            let r = answer(batch)
            if case .delivered = r { items += batch.traces.map(\.id.text) + batch.spans.map(\.record.id.text) }
            return (r, afterSend)
        }
        await hook?()
        return result
    }
}

/// The exporters' positions (migrations 0047, 0048): each poll reads after the exporter's
/// position, so its cost does not grow with the ledger; these tests pin down that nothing is
/// skipped, starved or lost on the way.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ExportCursorTests {
    func pump(_ fx: ExportLedger, _ ex: RecordingExporter, connection: PostgresConnection? = nil) async throws
        -> ExportPump
    {
        let p = ExportPump(
            exporter: ex, connection: connection ?? fx.conn, options: ExportPumpOptions(sleep: SleepLog().sleep))
        try await p.register()
        // A killed session's advisory lock goes away with its backend, shortly after the kill.
        try await eventually("the export lock is free") { try await p.tryLock() }
        return p
    }

    /// `exportNextBatch()` until a batch is sent (nil when nothing is left). A poll may send
    /// nothing and only move the position (see `exportNextBatch`): one did in a loaded
    /// whole-suite run, while the read horizon (the shared cluster's oldest open transaction)
    /// was held back by other suites' sessions.
    func sendNextBatch(_ p: ExportPump) async throws -> ExportStats? {
        while let s = try await p.exportNextBatch() {
            if s.requests > 0 { return s }
        }
        return nil
    }

    func span(_ trace: String, _ name: String) -> SpanRecord {
        SpanRecord(
            id: SpanID.random(), traceId: TraceID(trace), parentId: nil, startedAt: Date(), endedAt: Date(),
            spanData: ["type": "custom", "name": .string(name), "data": [:]], error: nil)
    }

    func insert(_ s: SpanRecord, on c: PostgresConnection) async throws {
        try await Ledger(connection: c).insertSpan(s)
    }

    func xid(_ c: PostgresConnection) async throws -> String {
        try #require(try await c.query("SELECT pg_current_xact_id()::text AS x").first?["x"])
    }

    // A poll after a drain may still read rows (done ones: rows delivered above the horizon
    // that fell below it since, as other sessions of the shared test cluster finished), but
    // it never sends anything again.
    @Test func aSpanCommittedLateByAnOlderTransactionIsStillDelivered() async throws {
        let fx = try await ExportLedger.make(runs: 1)
        let ex = RecordingExporter()
        let p = try await pump(fx, ex)
        try await p.drain()
        let trace = try #require(fx.traceIds.first)
        // An older transaction writes a span and commits last.
        let late = try await TestDatabase.connect(fx.url)
        try await late.simpleQuery("BEGIN")
        let lateXid = try await xid(late)
        let lateSpan = span(trace, "late")
        try await insert(lateSpan, on: late)
        // Younger transactions commit spans meanwhile; they go out at once (above the horizon).
        let early = (0..<7).map { span(trace, "early \($0)") }
        for s in early { try await insert(s, on: fx.conn) }
        try await p.drain()
        #expect(Set(ex.sent).isSuperset(of: early.map(\.id.text)))
        #expect(!ex.sent.contains(lateSpan.id.text))
        let position = try await ExportPositions.load(exporter: ex.name, connection: fx.conn)
        #expect(position.span.txid.flatMap { UInt64($0) } ?? .max <= UInt64(lateXid)!)
        try await late.simpleQuery("COMMIT")
        await late.close()
        try await p.drain()
        // Everything exactly once, the late span included; the younger rows were passed over
        // when they fell below the horizon, not sent again.
        #expect(ex.sent.count == Set(ex.sent).count)
        #expect(Set(ex.sent) == fx.spanIds.union(fx.traceIds).union(early.map(\.id.text)).union([lateSpan.id.text]))
        #expect(try await p.backlog().isEmpty)
        #expect(try await p.exportNextBatch().map { $0.deliveredSpans + $0.deliveredTraces } ?? 0 == 0)
        await fx.conn.close()
    }

    @Test func aLongOpenUnrelatedTransactionDoesNotDelayNewSpans() async throws {
        let fx = try await ExportLedger.make(runs: 1)
        let ex = RecordingExporter(batchSize: 4)
        let p = try await pump(fx, ex)
        // Another session holds an xid (it wrote something) and stays open.
        let other = try await TestDatabase.connect(fx.url)
        try await other.simpleQuery("BEGIN; CREATE TEMP TABLE hold (x int); INSERT INTO hold VALUES (1)")
        _ = try await xid(other)
        try await p.drain()
        #expect(Set(ex.sent) == fx.spanIds.union(fx.traceIds))
        for round in 0..<3 {
            let fresh = (0..<5).map { span(fx.traceIds.first!, "fresh \(round).\($0)") }
            for s in fresh { try await insert(s, on: fx.conn) }
            try await p.drain()
            #expect(Set(ex.sent).isSuperset(of: fresh.map(\.id.text)), "round \(round)")
        }
        #expect(ex.sent.count == Set(ex.sent).count)
        #expect(try await p.backlog().isEmpty)
        // An idle poll finds nothing while the transaction is still open.
        #expect(try await p.exportNextBatch().map { $0.deliveredSpans + $0.deliveredTraces } ?? 0 == 0)
        try await other.simpleQuery("ROLLBACK")
        await other.close()
        try await p.drain()
        #expect(ex.sent.count == Set(ex.sent).count)
        await fx.conn.close()
    }

    @Test func rowsStoredBeforeTheMigrationAreDeliveredOnce() async throws {
        let fx = try await ExportLedger.make(runs: 3, legacy: true)
        // The old pump delivered some of them (delivery rows, no position).
        try await fx.conn.simpleQuery(
            """
            INSERT INTO bridge.exporters (name, target) VALUES ('memory', 'memory');
            INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status)
              SELECT 'memory', span_id, trace_id, 'delivered' FROM bridge.spans ORDER BY span_id LIMIT 10;
            INSERT INTO bridge.trace_deliveries (exporter, trace_id, status)
              SELECT 'memory', trace_id, 'delivered' FROM bridge.traces ORDER BY trace_id LIMIT 1
            """)
        let old = Set(
            try await fx.conn.query(
                "SELECT span_id AS id FROM bridge.span_deliveries UNION ALL SELECT trace_id FROM bridge.trace_deliveries"
            )
            .map { $0["id"] ?? "" })
        try await ExportLedger.applyCursorMigration(fx.conn)
        #expect(try await fx.count("SELECT count(*) FROM bridge.spans WHERE txid IS NULL") == fx.spanIds.count)
        let newSpans = (0..<6).map { span(fx.traceIds.first!, "after upgrade \($0)") }
        for s in newSpans { try await insert(s, on: fx.conn) }
        #expect(try await fx.count("SELECT count(*) FROM bridge.spans WHERE txid IS NULL") == fx.spanIds.count)

        let ex = RecordingExporter(name: "memory", batchSize: 4)
        let p = try await pump(fx, ex)
        #expect(
            try await p.backlog()
                == ExportBacklog(traces: fx.traceIds.count - 1, spans: fx.spanIds.count - 10 + newSpans.count))
        try await p.drain()
        let expected = fx.spanIds.union(fx.traceIds).union(newSpans.map(\.id.text)).subtracting(old)
        #expect(ex.sent.count == expected.count && Set(ex.sent) == expected)
        // The legacy rows are behind the position now: later polls never read them again.
        let position = try await ExportPositions.load(exporter: "memory", connection: fx.conn)
        #expect(position.span.txid != nil && position.trace.txid != nil)
        #expect(try await p.exportNextBatch().map { $0.deliveredSpans + $0.deliveredTraces } ?? 0 == 0)
        try await p.drain()
        #expect(ex.sent.count == expected.count)
        // A new exporter starts from the beginning, legacy rows included.
        let other = RecordingExporter(name: "other", batchSize: 7)
        let q = try await pump(fx, other, connection: try await TestDatabase.connect(fx.url))
        try await q.drain()
        #expect(other.sent.count == fx.spanIds.count + fx.traceIds.count + newSpans.count)
        await fx.conn.close()
    }

    @Test func aCrashBetweenSendingAndRecordingSendsAgainAndLosesNothing() async throws {
        let fx = try await ExportLedger.make(runs: 2)
        let ex = RecordingExporter(batchSize: 6)
        let first = try await TestDatabase.connect(fx.url)
        let p = try await pump(fx, ex, connection: first)
        try #require(try await sendNextBatch(p) != nil)
        // The second batch reaches the receiver, then the process dies before recording it.
        let pid = try #require(try await first.query("SELECT pg_backend_pid() AS pid").first?.int("pid"))
        let killer = fx.conn
        ex.afterSend { _ = try? await killer.query("SELECT pg_terminate_backend(\(pid))") }
        await #expect(throws: (any Error).self) { try await sendNextBatch(p) }
        ex.afterSend(nil)
        await first.close()
        let recorded =
            try await fx.count("SELECT count(*) FROM bridge.span_deliveries")
            + fx.count("SELECT count(*) FROM bridge.trace_deliveries")
        #expect(recorded == 6 && ex.sent.count == 12)

        let again = try await pump(fx, ex, connection: try await TestDatabase.connect(fx.url))
        try await again.drain()
        let all = fx.spanIds.union(fx.traceIds)
        #expect(Set(ex.sent) == all)
        #expect(ex.sent.count == all.count + 6)  // the unrecorded batch went twice: at least once
        #expect(try await again.backlog().isEmpty)
        await again.unlock()

        // A crash after recording but before the position was saved: the rows are read again
        // and passed over (they have delivery rows), nothing is sent twice.
        try await fx.conn.simpleQuery("DELETE FROM bridge.export_positions")
        let third = try await pump(fx, ex, connection: try await TestDatabase.connect(fx.url))
        try await third.drain()
        #expect(ex.sent.count == all.count + 6)
        #expect(try await third.backlog().isEmpty)
        await fx.conn.close()
    }

    @Test func retryRejectedMovesThePositionBackToTheRejectedItems() async throws {
        let fx = try await ExportLedger.make(runs: 2)
        let bad = fx.failedToolSpan
        let ex = RecordingExporter(batchSize: 3)
        ex.answer { b in b.spans.contains { $0.record.id.text == bad } ? .reject(reason: "bad span") : .delivered() }
        let p = try await pump(fx, ex)
        let stats = try await p.drain()
        #expect(stats.rejectedSpans == 1)
        #expect(!ex.sent.contains(bad) && ex.sent.count == fx.spanIds.count + fx.traceIds.count - 1)
        #expect(try await p.exportNextBatch().map { $0.deliveredSpans + $0.deliveredTraces } ?? 0 == 0)

        // The span's trace stands rejected too (a trace is delivered only when its spans are).
        #expect(try await fx.count("SELECT count(*) FROM bridge.trace_deliveries WHERE status = 'rejected'") == 1)
        ex.answer { _ in .delivered() }
        #expect(try await ExportPump.retryRejected(exporter: ex.name, connection: fx.conn) == 2)
        try await p.drain()
        #expect(ex.sent.filter { $0 == bad }.count == 1)
        #expect(ex.sent.count == fx.spanIds.count + fx.traceIds.count + 1)  // and its trace object once more
        #expect(try await fx.count("SELECT count(*) FROM bridge.trace_deliveries WHERE status = 'rejected'") == 0)
        #expect(try await fx.count("SELECT count(*) FROM bridge.span_deliveries WHERE status = 'rejected'") == 0)
        #expect(try await p.backlog().isEmpty)
        await fx.conn.close()
    }
}
