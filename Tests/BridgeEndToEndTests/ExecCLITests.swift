import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

/// `bridge exec` end to end: the built binary against the seeded reference schema.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ExecCLITests {
    /// A reference database (seeded unless `seed` is false) with bridge's migrations applied.
    static func migratedReference(seed: Bool = true) async throws -> String {
        let url = try await TestDatabase.createReference(seed: seed)
        let r = try await BridgeBinary.migrate(url)
        #expect(r.status == 0, "\(r.stderr)")
        return url
    }

    /// An empty reference database, migrated, with one workspace.
    static func migratedWithOneWorkspace() async throws -> String {
        let url = try await migratedReference(seed: false)
        try await TestDatabase.execute(url, "INSERT INTO workspaces (name, user_id) VALUES ('w', gen_random_uuid())")
        return url
    }

    /// Every row of the user's tables as text, for "nothing changed" comparisons.
    static func snapshot(_ url: String, where condition: String = "true") async throws -> [String] {
        let c = try await TestDatabase.connect(url)
        var out: [String] = []
        for table in ["tasks", "task_executions", "execution_logs", "agents"] {
            let rows = try await c.simpleQuery("SELECT md5(t::text) AS h FROM \(table) t WHERE \(condition) ORDER BY 1")
            out += rows.compactMap { $0["h"] }.map { "\(table):\($0)" }
        }
        let spans = try await c.simpleQuery("SELECT count(*) AS n FROM bridge.spans")
        out.append("spans:\(spans.first?["n"] ?? "?")")
        await c.close()
        return out
    }

    @Test func offlineExecDrainsPendingTasksWithTraces() async throws {
        let url = try await Self.migratedReference()
        let c = try await TestDatabase.connect(url)
        // What must not change: tasks that were already finished, and their execution rows.
        let historical = try await c.query(
            """
            SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) AS h, count(*) AS n FROM tasks t
            WHERE status IN ('completed', 'failed')
            """
        ).first
        let historicalExecutions = try await c.query(
            "SELECT md5(string_agg(e::text, '|' ORDER BY e.id)) AS h FROM task_executions e"
        ).first?["h"]
        let pendingBefore =
            try await c.query("SELECT count(*) AS n FROM tasks WHERE status = 'pending'").first?.int("n") ?? 0
        #expect(pendingBefore == 36)

        let traceFile = TemporaryPath.unique("bridge-e2e", suffix: ".jsonl")
        let r = try await BridgeBinary.run([
            "exec", "--offline", "--database-url", url, "--mappings", BridgeBinary.mappings,
            "--trace-file", traceFile, "--flush-timeout", "120",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("bridge exec: completed"))

        // Drained: nothing pending or running, sub-tasks created during the run included.
        let left = try await c.query("SELECT count(*) AS n FROM tasks WHERE status IN ('pending', 'in_progress')")
            .first?.int("n")
        #expect(left == 0)
        // Historical tasks untouched (their rows are byte-identical), as are the old executions.
        let historicalAfter = try await c.query(
            """
            SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) AS h FROM tasks t
            WHERE status IN ('completed', 'failed') AND openai_trace_id IS NULL
            """
        ).first?["h"]
        #expect(historicalAfter == historical?["h"])
        let oldExecutions = try await c.query(
            """
            SELECT md5(string_agg(e::text, '|' ORDER BY e.id)) AS h FROM task_executions e WHERE openai_trace_id IS NULL
            """
        ).first?["h"]
        #expect(oldExecutions == historicalExecutions)

        // Every task bridge ran has a result, a well-formed trace id, a trace with metadata.task_id,
        // and exactly one completed execution row with the same trace id.
        let ran = try await c.query(
            """
            SELECT t.id::text AS id, t.openai_trace_id AS trace, t.result IS NOT NULL AS has_result,
                   t.completed_at IS NOT NULL AS has_completed_at,
                   tr.metadata->>'task_id' AS meta_task, tr.group_id = t.workspace_id::text AS group_ok,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.status = 'completed'
                        AND e.openai_trace_id = t.openai_trace_id) AS completed_executions
            FROM tasks t LEFT JOIN bridge.traces tr ON tr.trace_id = t.openai_trace_id
            WHERE t.openai_trace_id IS NOT NULL
            """)
        #expect(ran.count >= pendingBefore)
        for row in ran {
            let id = row["id"] ?? "?"
            #expect(TraceID(row["trace"] ?? "").isWellFormed, "task \(id)")
            #expect(row.bool("has_result") == true && row.bool("has_completed_at") == true, "task \(id)")
            #expect(row["meta_task"] == id, "task \(id)")
            #expect(row.bool("group_ok") == true, "task \(id)")
            #expect(row.int("completed_executions") == 1, "task \(id)")
        }

        // The span tree of a Project Manager task: task > agent(PM) > turn > {generation, function…},
        // a handoff from the PM under its turn, then the specialist's agent span.
        let pmTrace = try #require(
            try await c.query(
                """
                SELECT t.openai_trace_id AS trace FROM tasks t JOIN agents a ON a.id = t.agent_id
                WHERE a.role = 'Project Manager' AND t.openai_trace_id IS NOT NULL LIMIT 1
                """
            ).first?["trace"])
        let spans = try await c.query(
            """
            SELECT s.span_id, s.parent_id, s.span_data::text AS data, p.span_data::text AS parent_data
            FROM bridge.spans s LEFT JOIN bridge.spans p ON p.span_id = s.parent_id
            WHERE s.trace_id = \(pmTrace) ORDER BY s.started_at, s.span_id
            """)
        func data(_ text: String?) throws -> JSONValue { try JSONValue.parse(text ?? "null") }
        var roots = 0
        var agents: [String] = []
        var functions = 0
        var handoffs: [(String, String)] = []
        for s in spans {
            let d = try data(s["data"])
            let parent = try data(s["parent_data"])
            switch d["type"]?.stringValue {
            case "custom" where d["name"]?.stringValue == "task":
                #expect(s["parent_id"] == nil)
                #expect(d["data"]?["sdk_span_type"]?.stringValue == "task")
                roots += 1
            case "agent":
                #expect(parent["name"]?.stringValue == "task")
                agents.append(d["name"]?.stringValue ?? "")
            case "function":
                #expect(parent["data"]?["sdk_span_type"]?.stringValue == "turn")
                #expect(d["input"]?.stringValue != nil && d["output"]?.stringValue != nil)
                functions += 1
            case "handoff":
                #expect(parent["data"]?["sdk_span_type"]?.stringValue == "turn")
                handoffs.append((d["from_agent"]?.stringValue ?? "", d["to_agent"]?.stringValue ?? ""))
            default: break
            }
        }
        #expect(roots == 1)
        #expect(agents.first == "Project Manager" && agents.count >= 2)
        #expect(functions >= 2)
        #expect(handoffs.contains { $0.0 == "Project Manager" })

        // The transcript is stored for verify, and the trace file has the SDK export objects.
        #expect(
            try await c.query("SELECT count(*) AS n FROM bridge.run_transcripts WHERE trace_id = \(pmTrace)").first?
                .int("n") == 1)
        let lines = try String(contentsOfFile: traceFile, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.contains("\"object\":\"trace\"") && $0.contains(pmTrace) })
        #expect(lines.contains { $0.contains("\"object\":\"trace.span\"") && $0.contains(pmTrace) })
        try? FileManager.default.removeItem(atPath: traceFile)

        // A second run finds nothing to do and touches nothing.
        let before = try await Self.snapshot(url)
        let again = try await BridgeBinary.run([
            "exec", "--offline", "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        #expect(again.status == 0)
        #expect(again.stdout.contains("completed 0"))
        #expect(try await Self.snapshot(url) == before)
        await c.close()
    }

    @Test func dryRunPrintsTheSpecAndChangesNothing() async throws {
        let url = try await Self.migratedReference()
        let c = try await TestDatabase.connect(url)
        let id = try #require(
            try await c.query(
                """
                SELECT t.id::text AS id FROM tasks t JOIN agents a ON a.id = t.agent_id
                WHERE t.status = 'pending' AND a.role = 'Project Manager' LIMIT 1
                """
            ).first?["id"])
        await c.close()
        let before = try await Self.snapshot(url)
        let r = try await BridgeBinary.run([
            "exec", "--dry-run", "--task", id, "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 1)
        let spec = try JSONValue.parse(String(lines[0]))
        #expect(spec["task_id"]?.stringValue == id)
        #expect(spec["metadata"]?["task_id"]?.stringValue == id)
        #expect(spec["starting_agent"]?.stringValue == "Project Manager")
        let traceId = TraceID(spec["trace_id"]?.stringValue ?? "")
        #expect(traceId.isWellFormed)
        #expect(spec["trace_id"]?.stringValue == TraceID.forTask(TaskKey(id), attempt: 1).text)
        #expect(spec["agents"]?["Researcher"] != nil)
        #expect(try await Self.snapshot(url) == before)

        let unknown = try await BridgeBinary.run([
            "exec", "--dry-run", "--task", "00000000-0000-0000-0000-000000000000",
            "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("00000000-0000-0000-0000-000000000000"))
    }

    @Test func brokenMappingsExitTwoNamingTheLineAndChangeNothing() async throws {
        let url = try await Self.migratedReference()
        // Break one line of agents.yaml: an unbalanced flow sequence.
        let dir = try TestMappings.copy(editing: [
            "agents.yaml": { text in
                var lines = text.components(separatedBy: "\n")
                let target = try #require(lines.firstIndex { $0.contains("tools:") && $0.contains("[") })
                lines[target] = lines[target].replacingOccurrences(of: "]", with: "")
                return lines.joined(separator: "\n")
            }
        ])
        defer { try? FileManager.default.removeItem(at: dir) }

        let before = try await Self.snapshot(url)
        let r = try await BridgeBinary.run(["exec", "--offline", "--database-url", url, "--mappings", dir.path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("agents.yaml:"), "\(r.stderr)")
        #expect(try await Self.snapshot(url) == before)

        let check = try await BridgeBinary.run(["mappings", "check", "--database-url", url, "--mappings", dir.path])
        #expect(check.status == 2)
        #expect(check.stderr.contains("agents.yaml:"))
    }

    @Test func noModelExitsTwoNamingBothWaysOut() async throws {
        let r = try await BridgeBinary.run(
            ["exec", "--mappings", BridgeBinary.mappings],
            environment: BridgeBinary.environment(["OPENAI_API_KEY": nil]))
        #expect(r.status == 2)
        #expect(r.stderr.contains("--offline") && r.stderr.contains("OPENAI_API_KEY"))
    }

    @Test func shippedMappingsCheckCleanAfterMigrate() async throws {
        let url = try await Self.migratedReference()
        let r = try await BridgeBinary.run([
            "mappings", "check", "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ok"))
    }
}

/// Other schemas: table names come from the mappings, for migrations too.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct OtherSchemaTests {
    @Test func migratePlaceholdersComeFromTheMappings() async throws {
        let url = try await TestDatabase.createReference(seed: false)
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery("ALTER TABLE tasks RENAME TO jobs; ALTER TABLE task_executions RENAME TO job_runs")
        let dir = try TestMappings.copy(editing: [
            "bridge.yaml": {
                $0.replacingOccurrences(of: "table: tasks", with: "table: jobs")
                    .replacingOccurrences(of: "table: task_executions", with: "table: job_runs")
            }
        ])
        defer { try? FileManager.default.removeItem(at: dir) }

        let r = try await BridgeBinary.migrate(url, ["--mappings", dir.path])
        #expect(r.status == 0, "\(r.stderr)")
        let cols = try await c.query(
            """
            SELECT string_agg(table_name, ',' ORDER BY table_name) AS t FROM information_schema.columns
            WHERE column_name = 'openai_trace_id'
            """
        ).first?["t"]
        #expect(cols == "job_runs,jobs")
        await c.close()
    }
}
