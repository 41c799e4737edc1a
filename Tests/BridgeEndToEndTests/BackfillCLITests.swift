import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

/// `bridge exec --backfill` end to end: the built binary against the seeded reference schema
/// (3 workspaces × 20 tasks: 24 finished, 36 pending).
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct BackfillCLITests {
    static func backfill(_ url: String, _ extra: [String] = []) async throws -> TestProcess.Result {
        try await BridgeBinary.run(
            ["exec", "--backfill", "--database-url", url, "--mappings", BridgeBinary.mappings] + extra)
    }

    /// The trace id the backfill gives a task (its SQL computes the same hash).
    static func expectedTraceId(_ taskId: String) -> String {
        "trace_" + SHA256.hex("bridge-backfill:" + taskId).prefix(32)
    }

    /// md5 of what must never change: results and statuses of tasks and executions.
    static func resultsAndStatuses(_ c: PostgresConnection, tasksWhere: String = "true") async throws -> [String?] {
        [
            try await c.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT md5(string_agg(id::text || ':' || status || ':' || coalesce(result::text, 'null')
                                              || ':' || coalesce(completed_at::text, 'null'), '|' ORDER BY id)) AS h FROM tasks
                        WHERE \(tasksWhere)
                        """)
            ).first?["h"],
            try await c.query(
                """
                SELECT md5(string_agg(id::text || ':' || status || ':' || coalesce(result::text, 'null'), '|' ORDER BY id)) AS h
                FROM task_executions
                """
            ).first?["h"],
        ]
    }

    static func pendingRows(_ c: PostgresConnection) async throws -> String? {
        try await c.query(
            "SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) AS h FROM tasks t WHERE status = 'pending'"
        ).first?["h"]
    }

    static func count(_ c: PostgresConnection, _ sql: String) async throws -> Int {
        try await c.query(PostgresQuery(unsafeSQL: sql)).first?.int("n") ?? -1
    }

    @Test func backfillTracesEveryHistoricalTaskAndASecondRunCreatesNothing() async throws {
        let url = try await ExecCLITests.migratedReference()
        let c = try await TestDatabase.connect(url)
        let before = try await Self.resultsAndStatuses(c)
        let pendingBefore = try await Self.pendingRows(c)
        let toolLogs = try await Self.count(
            c,
            """
            SELECT count(*) AS n FROM execution_logs l JOIN tasks t ON t.id = l.task_id
            WHERE l.type = 'tool_call' AND t.status IN ('completed', 'failed')
            """)
        #expect(toolLogs > 0)

        let r = try await Self.backfill(url)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("backfilled 24 tasks (24 traces"), "\(r.stdout)")
        #expect(r.stderr.contains("24/24 tasks (100%)"), "\(r.stderr)")
        #expect(r.stderr.contains("ETA"))

        // Every historical task has its trace; results and statuses are byte-identical; pending
        // tasks are untouched (whole rows).
        #expect(try await Self.resultsAndStatuses(c) == before)
        #expect(try await Self.pendingRows(c) == pendingBefore)
        #expect(
            try await Self.count(
                c, "SELECT count(*) AS n FROM tasks WHERE status = 'pending' AND openai_trace_id IS NOT NULL") == 0)
        let tasks = try await c.query(
            """
            SELECT t.id::text AS id, t.openai_trace_id AS trace, t.workspace_id::text AS ws, t.agent_id::text AS agent,
                   e.openai_trace_id AS exec_trace, tr.metadata::text AS metadata, tr.group_id, tr.started_at IS NOT NULL AS timed
            FROM tasks t
            LEFT JOIN task_executions e ON e.task_id = t.id
            LEFT JOIN bridge.traces tr ON tr.trace_id = t.openai_trace_id
            WHERE t.status IN ('completed', 'failed')
            """)
        #expect(tasks.count == 24)
        for row in tasks {
            let id = row["id"] ?? "?"
            #expect(row["trace"] == Self.expectedTraceId(id), "task \(id)")
            #expect(TraceID(row["trace"] ?? "").isWellFormed, "task \(id)")
            #expect(row["exec_trace"] == row["trace"], "task \(id)")
            let meta = try JSONValue.parse(row["metadata"] ?? "null")
            #expect(meta["backfilled"] == "true", "task \(id)")
            #expect(meta["task_id"]?.stringValue == id)
            #expect(meta["workspace_id"]?.stringValue == row["ws"])
            #expect(meta["agent_id"]?.stringValue == row["agent"])
            #expect(meta["attempt"] == "1")
            #expect(
                meta.objectValue?.values.allSatisfy { $0.stringValue != nil } == true, "metadata must be flat strings")
            #expect(row["group_id"] == row["ws"])
            #expect(row.bool("timed") == true)
        }

        // Span tree per trace: one task root > one agent > turn(s) > one function span per
        // tool_call log, with the log's tool name, compact arguments and output.
        let spans = try await c.query(
            """
            SELECT s.span_id, s.trace_id, s.span_data::text AS data, p.span_data::text AS parent_data, s.error IS NOT NULL AS has_error,
                   s.started_at <= s.ended_at AS ordered
            FROM bridge.spans s LEFT JOIN bridge.spans p ON p.span_id = s.parent_id
            """)
        var roots: [String: Int] = [:]
        var agents: [String: Int] = [:]
        var functions = 0
        for s in spans {
            let d = try JSONValue.parse(s["data"] ?? "null")
            let parent = try JSONValue.parse(s["parent_data"] ?? "null")
            let sid = s["span_id"] ?? ""
            #expect(
                sid.hasPrefix("span_") && sid.count == 29
                    && sid.dropFirst(5).allSatisfy { $0.isHexDigit && !$0.isUppercase })
            #expect(s.bool("ordered") == true)
            let trace = s["trace_id"] ?? ""
            switch d["type"]?.stringValue {
            case "custom" where d["name"] == "task":
                #expect(parent == .null)
                #expect(d["data"]?["sdk_span_type"] == "task")
                roots[trace, default: 0] += 1
            case "agent":
                #expect(parent["name"] == "task")
                #expect(["Project Manager", "Researcher", "Content Specialist"].contains(d["name"]?.stringValue ?? ""))
                agents[trace, default: 0] += 1
            case "custom":
                #expect(d["name"] == "turn" && parent["type"] == "agent")
            case "function":
                #expect(parent["data"]?["sdk_span_type"] == "turn")
                let input = try #require(d["input"]?.stringValue)
                #expect(input.hasPrefix("{\"workspace_id\":\""), "\(input)")
                #expect(d["output"]?.stringValue != nil)
                #expect(
                    ["get_team_roles_and_status", "create_and_assign_sub_task", "store_data"].contains(
                        d["name"]?.stringValue ?? ""))
                functions += 1
            default:
                Issue.record("unexpected span \(d)")
            }
        }
        #expect(roots.count == 24 && roots.values.allSatisfy { $0 == 1 })
        #expect(agents.count == 24 && agents.values.allSatisfy { $0 == 1 })
        #expect(functions == toolLogs)
        // Failed tasks carry the error on their task and agent spans.
        #expect(
            try await Self.count(
                c,
                """
                SELECT count(*) AS n FROM bridge.spans s JOIN tasks t ON t.openai_trace_id = s.trace_id
                WHERE t.status = 'failed' AND s.span_data->>'type' = 'agent' AND s.error->>'message' = 'Error in agent run'
                """) == 6)

        // A second run creates nothing and changes nothing.
        let snapshot = try await ExecCLITests.snapshot(url)
        let traces = try await Self.count(c, "SELECT count(*) AS n FROM bridge.traces")
        let again = try await Self.backfill(url)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("backfilled 0 tasks (0 traces, 0 spans, 0 execution rows)"), "\(again.stdout)")
        #expect(try await ExecCLITests.snapshot(url) == snapshot)
        #expect(try await Self.count(c, "SELECT count(*) AS n FROM bridge.traces") == traces)
        await c.close()
    }

    @Test func backfilledTracesPassVerify() async throws {
        let url = try await ExecCLITests.migratedReference()
        let traceFile = TemporaryPath.unique("bridge-backfill", suffix: ".jsonl")
        defer { try? FileManager.default.removeItem(atPath: traceFile) }
        let r = try await Self.backfill(url, ["--trace-file", traceFile])
        #expect(r.status == 0, "\(r.stderr)")
        let c = try await TestDatabase.connect(url)
        // The exporters deliver backfilled traces like any others.
        #expect(
            try await Self.count(
                c, "SELECT count(*) AS n FROM bridge.span_deliveries WHERE exporter = 'file' AND status = 'delivered'")
                == Self.count(c, "SELECT count(*) AS n FROM bridge.spans"))
        let lines = try String(contentsOfFile: traceFile, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains("\"object\":\"trace\"") }.count == 24)
        // Each backfilled trace has its transcript, rebuilt from the tool-call logs.
        #expect(try await Self.count(c, "SELECT count(*) AS n FROM bridge.run_transcripts") == 24)
        #expect(
            try await Self.count(
                c,
                """
                SELECT count(*) AS n FROM bridge.run_transcripts r, jsonb_array_elements(r.items) i
                WHERE i->>'type' = 'function_call'
                """) == Self.count(c, "SELECT count(*) AS n FROM bridge.spans WHERE span_data->>'type' = 'function'"))
        await c.close()
        let v = try await BridgeBinary.run([
            "verify", "--format", "json", "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        #expect(v.status == 0, "\(v.stdout)\n\(v.stderr)")
        let report = try JSONValue.parse(v.stdout)
        let tools = report["checks"]?.arrayValue?.first { $0["id"]?.stringValue == "tools_traced" }
        #expect(tools?["status"]?.stringValue == "pass")
        #expect((tools?["checked"]?.intValue ?? 0) > 0)
    }

    @Test func dryRunReportsAndChangesNothing() async throws {
        let url = try await ExecCLITests.migratedReference()
        let before = try await ExecCLITests.snapshot(url)
        let r = try await Self.backfill(url, ["--dry-run"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try await ExecCLITests.snapshot(url) == before)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.last?.contains("would rebuild 24 task(s)") == true, "\(r.stdout)")
        #expect(lines.last?.contains("nothing was written") == true)
        let samples = lines.dropLast()
        #expect(samples.count == 3)
        for line in samples {
            let j = try JSONValue.parse(line)
            #expect(j["trace"]?["object"] == "trace")
            #expect(j["trace"]?["metadata"]?["backfilled"] == "true")
            #expect((j["spans"]?.arrayValue?.count ?? 0) >= 4)
            #expect(j["spans"]?.arrayValue?.allSatisfy { $0["object"] == "trace.span" } == true)
        }
    }

    @Test func limitThenResumeCompletesWithoutDuplicates() async throws {
        let url = try await ExecCLITests.migratedReference()
        let c = try await TestDatabase.connect(url)
        let planned = try await Self.backfill(url, ["--dry-run"])
        let totalSpans = try #require(
            planned.stdout.split(separator: "\n").last.flatMap { line -> Int? in
                guard let r = line.range(of: " traces, ") else { return nil }
                return Int(line[r.upperBound...].prefix { $0.isNumber })
            })
        let first = try await Self.backfill(url, ["--limit", "5", "--batch-size", "2"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(
            first.stdout.contains("backfilled 5 tasks") && first.stdout.contains("in 3 batches")
                && first.stdout.contains("19 left"),
            "\(first.stdout)")
        #expect(try await Self.count(c, "SELECT count(*) AS n FROM tasks WHERE openai_trace_id IS NOT NULL") == 5)
        let rest = try await Self.backfill(url, ["--batch-size", "4"])
        #expect(rest.status == 0, "\(rest.stderr)")
        #expect(rest.stdout.contains("backfilled 19 tasks"), "\(rest.stdout)")
        #expect(try await Self.count(c, "SELECT count(*) AS n FROM tasks WHERE openai_trace_id IS NOT NULL") == 24)
        #expect(try await Self.count(c, "SELECT count(*) AS n FROM bridge.spans") == totalSpans)
        await c.close()
    }

    @Test func killedMidwayThenResumedCompletes() async throws {
        let url = try await ExecCLITests.migratedReference()
        let poll = PollingConnection(url)
        let c = try await TestDatabase.connect(url)
        let planned = try await Self.backfill(url, ["--dry-run"])
        let backfill = try BackgroundBridge([
            "exec", "--backfill", "--database-url", url, "--mappings", BridgeBinary.mappings,
            "--batch-size", "1", "--pause-ms", "3000",
        ])
        // Kill it as soon as the first batches have landed (polling, not guessing a time). The
        // poll and the kill run on a thread of its own (see BackgroundBridge.send(_:when:)), so
        // a cooperative pool kept busy by other suites cannot delay them; the 3 s pause between
        // batches leaves it more than a minute.
        #expect(
            await backfill.send(
                SIGKILL,
                when: {
                    try poll.count("openai_trace_id IS NOT NULL") > 0
                }, timeout: .seconds(60)))
        _ = await backfill.wait(timeout: 30)
        let partial = try await Self.count(c, "SELECT count(*) AS n FROM tasks WHERE openai_trace_id IS NOT NULL")
        #expect(partial > 0 && partial < 24, "killed after \(partial) tasks")
        // Every task that has a trace id has its whole trace; no trace is left without its task.
        #expect(
            try await Self.count(
                c,
                """
                SELECT count(*) AS n FROM bridge.traces tr LEFT JOIN tasks t ON t.openai_trace_id = tr.trace_id WHERE t.id IS NULL
                """) == 0)
        let resumed = try await Self.backfill(url)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stdout.contains("backfilled \(24 - partial) tasks"), "\(resumed.stdout)")
        #expect(try await Self.count(c, "SELECT count(*) AS n FROM tasks WHERE openai_trace_id IS NOT NULL") == 24)
        #expect(planned.stdout.contains("\(try await Self.count(c, "SELECT count(*) AS n FROM bridge.spans")) spans"))
        await c.close()
    }

    /// Where `bridge exec` could not choose an agent, the backfill skips the task, names it,
    /// traces the others and exits 1; `--dry-run` reports the same and exits 0.
    @Test func tasksWithoutAMappedAgentAreSkippedNamedAndExitOne() async throws {
        let url = try await ExecCLITests.migratedReference()
        let c = try await TestDatabase.connect(url)
        let dir = try TestMappings.copy(editing: [
            "bridge.yaml": { text in
                text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.contains("default_agent:") }
                    .joined(separator: "\n")
            }
        ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let orphans = try await c.query(
            """
            UPDATE tasks SET agent_id = NULL, assigned_to_role = 'Night Shift'
            WHERE id IN (SELECT id FROM tasks WHERE status IN ('completed', 'failed') ORDER BY id LIMIT 2)
            RETURNING id::text AS id
            """
        ).compactMap { $0["id"] }
        let args = ["exec", "--backfill", "--database-url", url, "--mappings", dir.path]
        let dry = try await BridgeBinary.run(args + ["--dry-run"])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(
            dry.stdout.contains("would rebuild 22 task(s)") && dry.stdout.contains("would skip 2 task(s)"),
            "\(dry.stdout)")
        let r = try await BridgeBinary.run(args)
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("backfilled 22 tasks") && r.stdout.contains("2 skipped, 2 left"), "\(r.stdout)")
        for id in orphans {
            #expect(
                r.stderr.contains(
                    "skipped task \(id): no mapped agent for this task (tried assigned_to_role='Night Shift') and no default_agent"
                ),
                "\(r.stderr)")
        }
        #expect(r.stderr.contains("skipped 2 task(s) without a mapped agent"), "\(r.stderr)")
        #expect(try await Self.count(c, "SELECT count(*) AS n FROM tasks WHERE openai_trace_id IS NOT NULL") == 22)
        await c.close()
    }

    @Test func sinceRestrictsTheBackfill() async throws {
        let url = try await ExecCLITests.migratedReference()
        let future = try await Self.backfill(url, ["--since", "2999-01-01T00:00:00Z"])
        #expect(future.status == 0, "\(future.stderr)")
        #expect(future.stdout.contains("backfilled 0 tasks"))
        let past = try await Self.backfill(url, ["--since", "2000-01-01"])
        #expect(past.stdout.contains("backfilled 24 tasks"), "\(past.stdout)")
    }

    /// `infinity`, a BC date and a year past 9999 are valid timestamptz values the server prints
    /// in forms bridge does not read, and a duration of `Infinity` or `1e300` would carry a time out
    /// of range: such a time is left out of the trace, and the rest of the task is traced,
    /// instead of the backfill stopping (or trapping) on the row.
    @Test func timesBridgeCannotReadAreLeftOut() async throws {
        let url = try await ExecCLITests.migratedReference()
        let c = try await TestDatabase.connect(url)
        let task = try #require(
            try await c.query(
                """
                SELECT t.id::text AS id FROM tasks t
                WHERE t.status = 'completed' AND EXISTS (SELECT 1 FROM task_executions e WHERE e.task_id = t.id)
                ORDER BY t.id LIMIT 1
                """
            ).first?["id"])
        try await c.query("UPDATE tasks SET completed_at = 'infinity' WHERE id = \(task)::uuid")
        try await c.query(
            """
            UPDATE task_executions SET started_at = '0044-03-15 12:00:00+00 BC', completed_at = '12000-01-01',
                execution_time_seconds = 'Infinity'
            WHERE task_id = \(task)::uuid
            """)
        try await c.query(
            """
            INSERT INTO execution_logs (task_id, type, content, created_at)
            VALUES (\(task)::uuid, 'tool_call', '{"tool": "lookup", "started_at": "0044-03-15 12:00 BC"}', '-infinity'),
                   (\(task)::uuid, 'tool_call', '{"tool": "far", "started_at": "2026-01-01 10:00Z", "duration_ms": 1e300}', now())
            """)
        let r = try await Self.backfill(url)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("backfilled 24 tasks"), "\(r.stdout)")
        let trace = Self.expectedTraceId(task)
        #expect(
            try await c.query("SELECT openai_trace_id FROM tasks WHERE id = \(task)::uuid").first?["openai_trace_id"]
                == trace)
        #expect(
            try await Self.count(
                c,
                """
                SELECT count(*) AS n FROM bridge.spans WHERE trace_id = '\(trace)'
                  AND span_data->>'type' = 'function' AND span_data->>'name' IN ('lookup', 'far')
                """) == 2, "the calls whose times are unreadable or out of range are traced")
        #expect(
            try await Self.count(
                c,
                """
                SELECT count(*) AS n FROM bridge.spans WHERE trace_id = '\(trace)'
                  AND (started_at < '2000-01-01' OR ended_at > '3000-01-01')
                """) == 0, "no unreadable time reached a span")
        await c.close()
    }

    /// `--since` is one instant, UTC without a zone, for the dry run and the rerun alike, whatever
    /// the database's TimeZone: read there, this task's time would fall after the bound.
    @Test func sinceIsTheSameInstantForTheDryRunAndTheRerun() async throws {
        let url = try await ExecCLITests.migratedReference()
        let c = try await TestDatabase.connect(url)
        let db = try #require(try await c.query("SELECT current_database() AS d").first?["d"])
        try await c.query(PostgresQuery(unsafeSQL: "ALTER DATABASE \"\(db)\" SET TimeZone = 'Etc/GMT-14'"))
        try await c.query(
            "UPDATE tasks SET completed_at = '2020-01-01 00:00:00+00' WHERE status IN ('completed', 'failed')")
        try await c.query(
            """
            UPDATE tasks SET completed_at = '2025-12-31 20:00:00+00'
            WHERE id = (SELECT id FROM tasks WHERE status = 'completed' ORDER BY id LIMIT 1)
            """)
        let since = ["--since", "2026-01-01T00:00:00", "--offline"]
        let dry = try await Self.backfill(url, ["--dry-run"] + since)
        #expect(dry.stdout.contains("would rebuild 0 task(s)"), "\(dry.stdout)")
        let r = try await Self.backfill(url, ["--rerun", "--yes"] + since)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("re-ran 0 historical tasks"), "\(r.stdout)")
        await c.close()
    }

    @Test func rerunNeedsYesAndNeverOverwritesResults() async throws {
        let url = try await ExecCLITests.migratedReference()
        let c = try await TestDatabase.connect(url)
        let before = try await ExecCLITests.snapshot(url)
        let refused = try await Self.backfill(url, ["--rerun", "--offline"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("--yes") && refused.stderr.contains("cost"), "\(refused.stderr)")
        #expect(try await ExecCLITests.snapshot(url) == before)

        // (The offline model's Project Manager creates sub-tasks: new pending rows.)
        let finished = "status IN ('completed', 'failed')"
        let results = try await Self.resultsAndStatuses(c, tasksWhere: finished)[0]
        let executions = try await Self.count(c, "SELECT count(*) AS n FROM task_executions")
        let r = try await Self.backfill(url, ["--rerun", "--yes", "--offline", "--limit", "2"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("re-ran 2 historical tasks"), "\(r.stdout)")
        #expect(try await Self.resultsAndStatuses(c, tasksWhere: finished)[0] == results)
        #expect(try await Self.count(c, "SELECT count(*) AS n FROM task_executions") == executions + 2)
        let rerun = try await c.query(
            """
            SELECT t.id::text AS id, t.openai_trace_id AS trace, e.status, tr.metadata->>'rerun' AS rerun
            FROM tasks t JOIN task_executions e ON e.task_id = t.id AND e.openai_trace_id = t.openai_trace_id
            JOIN bridge.traces tr ON tr.trace_id = t.openai_trace_id
            """)
        #expect(rerun.count == 2)
        for row in rerun {
            #expect(row["trace"] == TraceID.forTask(TaskKey(row["id"] ?? ""), attempt: 2).text)
            #expect(row["status"] == "completed" && row["rerun"] == "true")
        }
        await c.close()
    }
}
