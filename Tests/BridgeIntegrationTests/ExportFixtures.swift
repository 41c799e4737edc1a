import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTestSupport
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

/// A ledger with a few traced runs, for the exporter tests.
struct ExportLedger {
    let url: String
    let conn: PostgresConnection
    /// Every trace id and span id in the ledger.
    let traceIds: Set<String>
    let spanIds: Set<String>
    /// Special spans added beside the runs.
    let bigInputSpan: String
    let responseSpan: String
    let failedToolSpan: String

    static let migration0004 = TestDatabase.projectRoot.appendingPathComponent("migrations/0004_export_deliveries.sql")
        .path
    static let migration0047 = TestDatabase.projectRoot.appendingPathComponent("migrations/0047_export_cursor.sql").path

    /// Migration 0047 (the ledger's txid column and the exporters' positions).
    static func applyCursorMigration(_ conn: PostgresConnection) async throws {
        try await conn.simpleQuery(try String(contentsOfFile: migration0047, encoding: .utf8))
    }

    /// `runs` offline runs (8 spans each) plus a generation span with a 150 kB input, a response
    /// span with usage and a failed function span, in a fresh database with the ledger tables
    /// and migrations 0004 and (unless `legacy`, which leaves that to the test) 0047.
    static func make(runs: Int = 3, legacy: Bool = false) async throws -> ExportLedger {
        let url = try await TestDatabase.create(prefix: "export")
        let conn = try await TestDatabase.connect(url)
        try await conn.simpleQuery(ledgerDDL)
        try await conn.simpleQuery(try String(contentsOfFile: migration0004, encoding: .utf8))
        if !legacy { try await applyCursorMigration(conn) }
        let ledger = Ledger(connection: conn)
        var traces: Set<String> = []
        var lastTrace: TraceID = ""
        for i in 0..<runs {
            var spec = runnerSpec(tools: [:], pmTools: [])
            spec.traceId = TraceID.forTask(TaskKey("x\(i)"), attempt: 1)
            spec.metadata["task_id"] = "x\(i)"
            let recorder = TraceRecorder(spec: spec, ledger: ledger, includeSensitiveData: true)
            let result = await AgentRunner(model: OfflineModel(), tools: CompositeToolExecutor(), observer: recorder)
                .run(spec, taskRow: [:])
            #expect(result.status == .completed)
            #expect(await recorder.sinkErrors.isEmpty)
            traces.insert(spec.traceId.text)
            lastTrace = spec.traceId
        }
        let now = Date()
        let big = SpanRecord(
            id: SpanID.random(), traceId: lastTrace, parentId: nil, startedAt: now,
            endedAt: now.addingTimeInterval(0.5),
            spanData: [
                "type": "generation",
                "input": .string(String(repeating: "é", count: 10) + String(repeating: "x", count: 150_000)),
                "output": [["role": "assistant", "content": "ok"]], "model": "gpt-4.1",
                "model_config": [:],
                "usage": ["input_tokens": 7, "output_tokens": 3, "total_tokens": 10, "requests": 1],
            ],
            error: nil)
        let response = SpanRecord(
            id: SpanID.random(), traceId: lastTrace, parentId: nil, startedAt: now, endedAt: now,
            spanData: [
                "type": "response", "response_id": "resp_123", "usage": ["input_tokens": 5, "output_tokens": 2],
            ],
            error: nil)
        let failed = SpanRecord(
            id: SpanID.random(), traceId: lastTrace, parentId: response.id, startedAt: now, endedAt: now,
            spanData: ["type": "function", "name": "lookup", "input": "{\"q\":1}", "output": nil, "mcp_data": nil],
            error: ["message": "Error running tool", "data": ["tool_name": "lookup", "error": "boom"]])
        for s in [big, response, failed] { try await ledger.insertSpan(s) }
        let ids = Set(try await conn.query("SELECT span_id FROM bridge.spans").map { $0["span_id"] ?? "" })
        #expect(ids.count == runs * 8 + 3)
        return ExportLedger(
            url: url, conn: conn, traceIds: traces, spanIds: ids, bigInputSpan: big.id.text,
            responseSpan: response.id.text, failedToolSpan: failed.id.text)
    }

    func count(_ sql: String) async throws -> Int {
        try await conn.simpleQuery(sql).first?.values.first.flatMap { $0.flatMap { Int($0) } } ?? -1
    }

    /// A pump for `exporter` on this ledger (through `connection`, or the ledger's own), which
    /// records its waits in `sleeps` instead of waiting and redacts `secrets`; registered, and
    /// holding the export lock.
    func pump(
        _ exporter: any TraceExporter, on connection: PostgresConnection? = nil, sleeps: SleepLog = SleepLog(),
        secrets: [String] = [], sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> ExportPump {
        let pump = ExportPump(
            exporter: exporter, connection: connection ?? conn,
            options: ExportPumpOptions(sleep: sleeps.sleep, secrets: secrets))
        try await pump.register()
        #expect(try await pump.tryLock(), "the export lock is free", sourceLocation: sourceLocation)
        return pump
    }

    /// After a drain that returned `stats`: only the 150 kB span was rejected, its delivery row
    /// saying `why` first; every other span was delivered.
    func expectOnlyTheBigSpanRejected(
        _ stats: ExportStats, why: String, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        #expect(
            stats.rejectedSpans == 1 && stats.deliveredSpans == spanIds.count - 1, "\(stats)",
            sourceLocation: sourceLocation)
        #expect(
            try await count(
                """
                SELECT count(*) FROM bridge.span_deliveries
                WHERE status = 'rejected' AND span_id = '\(bigInputSpan)' AND error LIKE '\(why)%'
                """) == 1, sourceLocation: sourceLocation)
    }
}

/// Records the pump's waits instead of waiting.
final class SleepLog: @unchecked Sendable {
    // @unchecked Sendable: `items` is guarded by `lock`.
    private let lock = NSLock()
    private var items: [Duration] = []
    var sleeps: [Duration] {
        lock.lock()
        defer { lock.unlock() }
        return items
    }
    private func record(_ d: Duration) { lock.withLock { items.append(d) } }
    var sleep: @Sendable (Duration) async throws -> Void {
        { [self] d in
            record(d)
            try Task.checkCancellation()
            await Task.yield()
        }
    }
}

/// Item ids (`data[].id`) of the ingest requests that were answered 2xx.
func ingestedIds(_ requests: [TestHTTPRequest], acceptedFrom first: Int = 0) -> [String] {
    requests.dropFirst(first).flatMap { r in (r.json?["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue } }
}

/// Waits (polling every 10 ms) until `condition` holds; fails the test after `within`.
func eventually(
    _ what: String, within: Duration = .seconds(30), _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + within
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    if try await condition() { return }
    Issue.record("never happened within \(within): \(what)")
}
