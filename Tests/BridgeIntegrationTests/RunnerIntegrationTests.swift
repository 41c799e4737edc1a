import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTestSupport
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

/// The ledger tables (normally created by the migration).
let ledgerDDL = """
    CREATE SCHEMA bridge;
    CREATE TABLE bridge.traces (trace_id text PRIMARY KEY, workflow_name text NOT NULL, group_id text, metadata jsonb NOT NULL DEFAULT '{}', task_id text, started_at timestamptz, ended_at timestamptz, created_at timestamptz NOT NULL DEFAULT now(), updated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE bridge.spans (span_id text PRIMARY KEY, trace_id text NOT NULL REFERENCES bridge.traces ON DELETE CASCADE, parent_id text, started_at timestamptz, ended_at timestamptz, span_data jsonb NOT NULL, error jsonb, created_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE bridge.run_transcripts (trace_id text PRIMARY KEY REFERENCES bridge.traces ON DELETE CASCADE, task_id text NOT NULL, attempt int NOT NULL, items jsonb NOT NULL, created_at timestamptz DEFAULT now());
    """

func sqlTool(
    _ name: String, _ sql: String, writes: Bool = false, timeoutMs: Int = 5_000, maxRows: Int = 100,
    maxBytes: Int = 65_536, schema: JSONValue = ["type": "object", "properties": [:]]
) -> ToolSpec {
    var spec = SQLToolSpec(sql: sql, writes: writes)
    spec.timeoutMs = timeoutMs
    spec.maxRows = maxRows
    spec.maxBytes = maxBytes
    return ToolSpec(name: name, description: name, parameters: schema, implementation: .sql(spec))
}

func runnerSpec(tools: [String: ToolSpec], pmTools: [String]) -> RunSpec {
    let pm = AgentSpec(
        name: "Project Manager", instructions: "Manage.", model: "gpt-4.1", tools: pmTools,
        handoffs: [
            HandoffSpec(
                agent: "Researcher", toolName: "transfer_to_researcher",
                toolDescription: HandoffSpec.defaultDescription(for: "Researcher", handoffDescription: nil))
        ])
    let researcher = AgentSpec(
        name: "Researcher", instructions: "Research.", model: "gpt-4.1-mini", tools: [], handoffs: [])
    return RunSpec(
        traceId: TraceID.forTask("7", attempt: 1), workflowName: "bridge tasks", groupId: "ws-1",
        metadata: ["task_id": "7", "workspace_id": "ws-1", "attempt": "1"], startingAgent: "Project Manager",
        agents: ["Project Manager": pm, "Researcher": researcher], tools: tools, input: "Do it.", maxTurns: 10,
        traceIncludeSensitiveData: true, taskId: "7", attempt: 1)
}

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct SQLToolExecutorTests {
    func setUp() async throws -> (PostgresConnection, SQLToolExecutor) {
        let url = try await TestDatabase.create(prefix: "sqltool")
        let conn = try await TestDatabase.connect(url)
        try await conn.simpleQuery(
            """
            CREATE TABLE items (id int PRIMARY KEY, name text, workspace text, price numeric, tags jsonb);
            INSERT INTO items SELECT g, 'item ' || g, CASE WHEN g % 2 = 0 THEN 'ws-2' ELSE 'ws-1' END, g * 1.5, '["a"]'
              FROM generate_series(1, 5) g;
            """)
        return (conn, SQLToolExecutor(connection: { conn }))
    }

    func context(_ row: [String: JSONValue] = ["workspace_id": "ws-1"]) -> ToolContext {
        ToolContext(spec: runnerSpec(tools: [:], pmTools: []), taskRow: row, agentName: "Project Manager")
    }

    @Test func readsRowsAsJSON() async throws {
        let (conn, exec) = try await setUp()
        let tool = sqlTool(
            "list",
            "SELECT id, name, price, tags FROM items WHERE workspace = :task.workspace_id AND id <= :max ORDER BY id;")
        let out = try await exec.execute(tool, arguments: ["max": 3], context: context())
        let rows = try JSONValue.parse(out)
        #expect(
            rows == [
                ["id": 1, "name": "item 1", "price": 1.5, "tags": ["a"]],
                ["id": 3, "name": "item 3", "price": 4.5, "tags": ["a"]],
            ])
        let none = try await exec.execute(tool, arguments: ["max": 0], context: context())
        #expect(none == "[]")
        await conn.close()
    }

    @Test func readOnlyRefusesWrites() async throws {
        let (conn, exec) = try await setUp()
        let tool = sqlTool("sneaky", "INSERT INTO items (id, name) VALUES (:id, 'x') RETURNING id")
        do {
            _ = try await exec.execute(tool, arguments: ["id": 99], context: context())
            Issue.record("expected a failure")
        } catch let f as ToolFailure {
            #expect(f.message.contains("25006"))
            #expect(f.data?["sqlstate"] == "25006")
        }
        let plain = sqlTool("sneaky2", "DELETE FROM items")
        await #expect(throws: ToolFailure.self) {
            _ = try await exec.execute(plain, arguments: [:], context: context())
        }
        #expect(try await conn.query("SELECT count(*) AS n FROM items").first?.int("n") == 5)
        await conn.close()
    }

    @Test func writesWhenAllowed() async throws {
        let (conn, exec) = try await setUp()
        let insert = sqlTool(
            "add", "INSERT INTO items (id, name, workspace) VALUES (:id, :name, :task.workspace_id) RETURNING id, name",
            writes: true)
        let out = try await exec.execute(insert, arguments: ["id": 10, "name": "it's new"], context: context())
        #expect(try JSONValue.parse(out) == [["id": 10, "name": "it's new"]])
        let update = sqlTool("rename", "UPDATE items SET name = :name WHERE id <= :id", writes: true)
        #expect(
            try await exec.execute(update, arguments: ["id": 2, "name": "renamed"], context: context())
                == "{\"affected_rows\":2}")
        // A WITH holding a data-modifying statement cannot be nested: it runs as written.
        let cte = sqlTool(
            "cte", "WITH ins AS (INSERT INTO items (id, name) VALUES (:id, 'cte') RETURNING id) SELECT id FROM ins",
            writes: true)
        #expect(
            try JSONValue.parse(try await exec.execute(cte, arguments: ["id": 11], context: context())) == [
                ["id": "11"]
            ])
        #expect(try await conn.query("SELECT count(*) AS n FROM items").first?.int("n") == 7)
        await conn.close()
    }

    @Test func capsRowsAndBytes() async throws {
        let (conn, exec) = try await setUp()
        let capped = sqlTool("all", "SELECT id FROM items ORDER BY id", maxRows: 2)
        let out = try JSONValue.parse(try await exec.execute(capped, arguments: [:], context: context()))
        #expect(out == ["max_rows": 2, "rows": [["id": 1], ["id": 2]], "truncated": true])
        let exact = sqlTool("exact", "SELECT id FROM items ORDER BY id", maxRows: 5)
        #expect(
            try JSONValue.parse(try await exec.execute(exact, arguments: [:], context: context())).arrayValue?.count
                == 5)
        let small = sqlTool("small", "SELECT repeat('x', 1000) AS big", maxBytes: 200)
        let text = try await exec.execute(small, arguments: [:], context: context())
        #expect(text.utf8.count <= 200)
        #expect(text.hasSuffix("… [truncated: output exceeded max_bytes=200]"))
        await conn.close()
    }

    @Test func timesOut() async throws {
        let (conn, exec) = try await setUp()
        let slow = sqlTool("slow", "SELECT pg_sleep(5)", timeoutMs: 100)
        do {
            _ = try await exec.execute(slow, arguments: [:], context: context())
            Issue.record("expected a timeout")
        } catch let f as ToolFailure {
            // 57014 query_canceled: the tool's statement_timeout stopped it, not the sleep ending.
            #expect(f.message.contains("57014"))
        }
        // The timeout was local to the tool's transaction.
        #expect(try await conn.query("SHOW statement_timeout").first?["statement_timeout"] == "0")
        await conn.close()
    }

    @Test func compositeDispatchesAndRefusesHosted() async throws {
        let (conn, exec) = try await setUp()
        let composite = CompositeToolExecutor(sql: exec)
        let out = try await composite.execute(sqlTool("one", "SELECT 1 AS one"), arguments: [:], context: context())
        #expect(out == "[{\"one\":1}]")
        let hosted = ToolSpec(
            name: "web_search", description: "", parameters: [:],
            implementation: .hosted(HostedToolSpec(type: "web_search")))
        await #expect(throws: ToolFailure.self) {
            _ = try await composite.execute(hosted, arguments: [:], context: context())
        }
        let http = ToolSpec(
            name: "h", description: "", parameters: [:], implementation: .http(HTTPToolSpec(url: "http://127.0.0.1:1")))
        await #expect(throws: ToolFailure.self) {
            _ = try await composite.execute(http, arguments: [:], context: context())
        }
        await conn.close()
    }
}

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct TraceLedgerTests {
    @Test func recorderWritesTheTreeAsSpansEnd() async throws {
        let url = try await TestDatabase.create(prefix: "ledger")
        let conn = try await TestDatabase.connect(url)
        try await conn.simpleQuery(ledgerDDL)
        try await conn.simpleQuery(
            "CREATE TABLE team (role text, status text); INSERT INTO team VALUES ('Researcher', 'idle'), ('Writer', 'busy');"
        )
        let tools = [
            "get_team_roles_and_status": sqlTool(
                "get_team_roles_and_status", "SELECT role, status FROM team ORDER BY role")
        ]
        let spec = runnerSpec(tools: tools, pmTools: ["get_team_roles_and_status"])
        let ledger = Ledger(connection: conn)
        let traceFile = TemporaryPath.unique("bridge", suffix: ".jsonl")
        defer { try? FileManager.default.removeItem(atPath: traceFile) }
        let exporter = try FileExporter(path: traceFile)
        let recorder = TraceRecorder(spec: spec, ledger: ledger, includeSensitiveData: true, extraSinks: [exporter])
        let runner = AgentRunner(
            model: OfflineModel(), tools: CompositeToolExecutor(sql: SQLToolExecutor(connection: { conn })),
            observer: recorder)
        let result = await runner.run(spec, taskRow: ["id": "7"])
        #expect(result.status == .completed)
        #expect(await recorder.sinkErrors.isEmpty)
        try await ledger.storeTranscript(
            traceId: spec.traceId, taskId: spec.taskId, attempt: spec.attempt, items: result.transcript)

        // The trace row.
        let trace = try #require(try await ledger.trace(id: spec.traceId))
        #expect(trace.workflowName == "bridge tasks")
        #expect(trace.groupId == "ws-1")
        #expect(trace.metadata["task_id"] == "7")
        let times = try #require(
            try await conn.query(
                "SELECT task_id, started_at IS NOT NULL AND ended_at >= started_at AS ok FROM bridge.traces"
            ).first)
        #expect(times["task_id"] == "7")
        #expect(times.bool("ok") == true)

        // The spans: one root, every parent present, SDK shapes.
        let spans = try await ledger.spans(traceId: spec.traceId)
        #expect(spans.count == 11)  // task, 2 agents, 3 turns, 3 generations, 1 function, 1 handoff
        let ids = Set(spans.map(\.id))
        #expect(spans.filter { $0.parentId == nil }.map(\.type) == ["custom"])
        #expect(spans.allSatisfy { $0.parentId == nil || ids.contains($0.parentId!) })
        let byId = Dictionary(uniqueKeysWithValues: spans.map { ($0.id, $0) })
        let function = try #require(spans.first { $0.type == "function" })
        #expect(function.spanData["name"] == "get_team_roles_and_status")
        #expect(function.spanData["input"] == "{}")
        #expect(
            try JSONValue.parse(function.spanData["output"]!.stringValue!) == [
                ["role": "Researcher", "status": "idle"],
                ["role": "Writer", "status": "busy"],
            ])
        let turn = try #require(byId[function.parentId!])
        #expect(turn.spanData["name"] == "turn")
        #expect(turn.spanData["data"]?["turn"] == 1)
        let agent = try #require(byId[turn.parentId!])
        #expect(
            agent.spanData == [
                "type": "agent", "name": "Project Manager", "handoffs": ["Researcher"],
                "tools": ["get_team_roles_and_status"], "output_type": "str",
            ])
        let handoff = try #require(spans.first { $0.type == "handoff" })
        #expect(handoff.spanData == ["type": "handoff", "from_agent": "Project Manager", "to_agent": "Researcher"])
        #expect(byId[handoff.parentId!]?.spanData["data"]?["agent_name"] == "Project Manager")
        let task = try #require(spans.first { $0.parentId == nil })
        #expect(task.spanData["data"]?["sdk_span_type"] == "task")
        #expect(spans.allSatisfy { $0.endedAt >= $0.startedAt })
        // Children were written before their parents ended, so the row order by created_at
        // holds the root last.
        let last = try await conn.query(
            "SELECT span_data->>'name' AS name FROM bridge.spans ORDER BY created_at DESC, ended_at DESC LIMIT 1")
        #expect(last.first?["name"] == "task")

        // Idempotent: inserting the same spans and trace again changes nothing.
        for s in spans { try await ledger.insertSpan(s) }
        try await ledger.insertTrace(TraceRecord(spec: spec), taskId: "7", startedAt: Date())
        #expect(try await ledger.spans(traceId: spec.traceId).count == spans.count)

        // The transcript.
        let stored = try #require(
            try await conn.query("SELECT items::text AS items, attempt FROM bridge.run_transcripts").first)
        #expect(try JSONValue.parse(stored["items"]!) == .array(result.transcript.map(\.json)))
        #expect(stored.int("attempt") == 1)

        // The JSONL file: the trace line first, then one line per span.
        let lines = try String(contentsOfFile: traceFile, encoding: .utf8).split(separator: "\n").map {
            try JSONValue.parse(String($0))
        }
        #expect(lines.count == 1 + spans.count)
        #expect(lines[0] == TraceRecord(spec: spec).exportJSON)
        #expect(
            lines.dropFirst().allSatisfy {
                $0["object"] == "trace.span" && $0["trace_id"] == .string(spec.traceId.text)
            })
        #expect(Set(lines.dropFirst().compactMap { $0["id"]?.stringValue }) == Set(ids.map(\.text)))
        await conn.close()
    }

    @Test func partialTraceSurvivesAFailedRun() async throws {
        let url = try await TestDatabase.create(prefix: "ledger")
        let conn = try await TestDatabase.connect(url)
        try await conn.simpleQuery(ledgerDDL)
        let spec = runnerSpec(tools: ["boom": sqlTool("boom", "SELECT 1/0")], pmTools: ["boom"])
        let recorder = TraceRecorder(spec: spec, ledger: Ledger(connection: conn), includeSensitiveData: true)
        var limited = spec
        limited.maxTurns = 1
        let result = await AgentRunner(
            model: OfflineModel(), tools: CompositeToolExecutor(sql: SQLToolExecutor(connection: { conn })),
            observer: recorder
        ).run(limited, taskRow: [:])
        #expect(result.error?.type == .maxTurnsExceeded)
        let spans = try await Ledger(connection: conn).spans(traceId: spec.traceId)
        let function = try #require(spans.first { $0.type == "function" })
        #expect(function.error?["message"] == "Error running tool (non-fatal)")
        #expect(function.error?["data"]?["error"]?.stringValue?.contains("22012") == true)
        #expect(
            spans.first { $0.type == "agent" }?.error == ["message": "Max turns exceeded", "data": ["max_turns": 1]])
        await conn.close()
    }
}

@Suite struct FileExporterTests {
    @Test func concurrentRunsWriteWholeLines() async throws {
        let path = TemporaryPath.unique("bridge", suffix: ".jsonl")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let exporter = try FileExporter(path: path)
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<6 {
                group.addTask {
                    var spec = runnerSpec(tools: [:], pmTools: [])
                    spec.traceId = TraceID.forTask(TaskKey("t\(i)"), attempt: 1)
                    let recorder = TraceRecorder(spec: spec, sinks: [exporter], includeSensitiveData: true)
                    _ = await AgentRunner(model: OfflineModel(), tools: CompositeToolExecutor(), observer: recorder)
                        .run(spec, taskRow: [:])
                }
            }
        }
        // Appending: a second exporter on the same file adds to it.
        let again = try FileExporter(path: path)
        try await again.writeLine(["object": "trace", "id": "trace_extra"])
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        let objects = try lines.map { try JSONValue.parse(String($0)) }
        #expect(objects.filter { $0["object"] == "trace" }.count == 7)
        // Each run: task, 2 agents, 2 turns, 2 generations, 1 handoff = 8 spans.
        #expect(objects.filter { $0["object"] == "trace.span" }.count == 48)
        for i in 0..<6 {
            let id = JSONValue.string(TraceID.forTask(TaskKey("t\(i)"), attempt: 1).text)
            let first = try #require(objects.firstIndex { $0["id"] == id })
            #expect(!objects[..<first].contains { $0["trace_id"] == id })
        }
    }
}
