import BridgeCore
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ApprovalCLITests {
    /// A pending Project Manager task of the seeded reference database (it calls
    /// create_and_assign_sub_task, which the shipped mappings make wait for approval).
    static func managerTask(_ c: PostgresConnection) async throws -> String {
        let rows = try await c.simpleQuery(
            """
            SELECT t.id::text AS id FROM tasks t JOIN agents a ON a.id = t.agent_id
            WHERE a.role = 'Project Manager' AND t.status = 'pending' ORDER BY t.created_at LIMIT 1
            """)
        let id = try #require(rows.first?["id"])
        try await flag(c, [id])
        return id
    }

    /// Flags tasks for review: the shipped predicate then makes their delegation wait.
    static func flag(_ c: PostgresConnection, _ ids: [String]) async throws {
        try await c.query(
            """
            UPDATE tasks SET context_data = coalesce(context_data, '{}') || '{"requires_approval": true}'
            WHERE id = ANY(\("{\(ids.joined(separator: ","))}")::uuid[])
            """)
    }

    static func bridge(_ args: [String], _ env: [String: String]) async throws -> TestProcess.Result {
        try await BridgeBinary.run(args, environment: env)
    }

    @Test func pauseKillApproveResumeOnANewWorkerInOneTrace() async throws {
        let url = try await ExecCLITests.migratedReference()
        let poll = PollingConnection(url)
        let ingest = try TraceIngestStandIn(key: "sk-ingest-approvals")
        defer { ingest.stop() }
        let env = ingest.environment
        let c = try await TestDatabase.connect(url)
        let task = try await Self.managerTask(c)
        let common = ["--database-url", url, "--mappings", BridgeBinary.mappings]

        // A watching worker pauses the run and exports what it wrote, then every worker is killed.
        // The kill waits for the delivery rows: a kill between the receiver's answer and those
        // rows sends the batch again (at least once, docs/export.md), which is not what this
        // test is about, and would count as a span exported twice below.
        let worker = try BackgroundBridge(["exec", "--offline", "--watch", "--task", task] + common, environment: env)
        let delivered = """
            NOT EXISTS (SELECT 1 FROM bridge.traces t WHERE NOT EXISTS (SELECT 1 FROM bridge.trace_deliveries d
                          WHERE d.exporter = 'openai' AND d.trace_id = t.trace_id))
            AND NOT EXISTS (SELECT 1 FROM bridge.spans s WHERE NOT EXISTS (SELECT 1 FROM bridge.span_deliveries d
                          WHERE d.exporter = 'openai' AND d.span_id = s.span_id))
            """
        #expect(
            await worker.kill(
                when: { try poll.count("id = '\(task)' AND bridge_waiting_since IS NOT NULL AND \(delivered)") == 1 },
                timeout: .seconds(120)), "\(worker.output)")
        let held = try await c.query("SELECT status, bridge_lease_token FROM tasks WHERE id = \(task)::uuid").first
        #expect(held?["status"] == "in_progress", "the user's status keeps a value its CHECK allows")
        #expect(held?["bridge_lease_token"] == nil, "a waiting task holds no lease")

        // The request is a row of the user's table, with the call in it.
        let list = try await Self.bridge(["approvals", "list"] + common, env)
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("create_and_assign_sub_task") && list.stdout.contains(task))
        let ids = try await Self.bridge(["approvals", "list", "--ids"] + common, env).stdout
            .split(separator: "\n").map(String.init)
        let id = try #require(ids.first)
        #expect(ids.count == 1)
        let request = try await c.query(
            """
            SELECT request_type, status, context->>'task_id' AS task, context->>'tool_name' AS tool,
                   context->>'trace_id' AS trace, expires_at > now() AS future
            FROM human_feedback_requests WHERE id = \(id)::uuid
            """
        ).first
        #expect(request?["status"] == "pending" && request?["request_type"] == "tool_approval")
        #expect(request?["task"] == task && request?["tool"] == "create_and_assign_sub_task")
        #expect(request?["future"] == "t")
        let traceId = try #require(request?["trace"])

        let approve = try await Self.bridge(["approve", id] + common, env)
        #expect(approve.status == 0, "\(approve.stderr)")
        #expect(
            try await Self.bridge(["approve", id] + common, env).status == 1, "only a pending request can be decided")
        let notAKey = try await Self.bridge(["reject", "not-a-uuid"] + common, env)
        #expect(
            notAKey.status == 2 && notAKey.stderr.contains("'not-a-uuid' is not an approval request id"),
            "\(notAKey.stderr)")

        // A new worker resumes and finishes the run. Its flush may take long on a loaded machine;
        // one cut short by the timeout would leave a batch in flight to be sent again by export.
        let resumed = try await Self.bridge(
            ["exec", "--offline", "--task", task, "--flush-timeout", "120"] + common, env)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let row = try await c.query(
            """
            SELECT t.status, t.openai_trace_id, t.bridge_waiting_since IS NULL AS free, e.status AS execution,
                   e.openai_trace_id AS execution_trace, (SELECT count(*) FROM bridge.run_states) AS states,
                   (SELECT count(*) FROM tasks s WHERE s.parent_task_id = t.id) AS subtasks
            FROM tasks t JOIN task_executions e ON e.task_id = t.id WHERE t.id = \(task)::uuid
            """)
        #expect(row.count == 1, "one execution row for both stints")
        #expect(row.first?["status"] == "completed" && row.first?["execution"] == "completed")
        #expect(row.first?["openai_trace_id"] == traceId && row.first?["execution_trace"] == traceId)
        #expect(row.first?["free"] == "t" && row.first?["states"] == "0")
        #expect(row.first?["subtasks"] == "1", "the approved call ran")

        // Exported: one trace object, every span's parent in the trace, one task span.
        let export = try await Self.bridge(["export", "--database-url", url, "--timeout", "20"], env)
        #expect(export.status == 0, "\(export.stderr)")
        let items = ingest.items
        #expect(items.filter { $0["object"] == "trace" && $0["id"]?.stringValue == traceId }.count == 1)
        let spans = items.filter { $0["object"] == "trace.span" && $0["trace_id"]?.stringValue == traceId }
        let spanIds = Set(spans.compactMap { $0["id"]?.stringValue })
        #expect(spanIds.count == spans.count, "no span exported twice")
        #expect(spans.allSatisfy { s in s["parent_id"]?.stringValue.map(spanIds.contains) ?? true }, "no orphan spans")
        #expect(spans.filter { $0["span_data"]?["name"] == "task" }.count == 1)
        #expect(
            spans.filter { $0["span_data"]?["type"] == "agent" && $0["span_data"]?["name"] == "Project Manager" }.count
                == 1)
        let wait = try #require(spans.first { $0["span_data"]?["name"] == "approval" })
        #expect(wait["span_data"]?["data"]?["decision"] == "approved")
        #expect(wait["span_data"]?["data"]?["request_id"]?.stringValue == id)

        // Each stint's worker delivered its spans before it ended; the lag allowance is generous
        // because on a loaded machine that can take long, and this check is about approvals.
        let verifyArgs = [
            "verify", "--database-url", url, "--mappings", BridgeBinary.mappings, "--task", task,
            "--max-export-lag", "600",
        ]
        let verify = try await Self.bridge(verifyArgs, env)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        #expect(
            verify.stdout.contains("✓ Guardrails and approvals traced [guardrails_approvals_traced]"),
            "\(verify.stdout)")
        let show = try await Self.bridge(["trace", "show", task, "--database-url", url], env)
        #expect(show.stdout.contains("approval create_and_assign_sub_task · approved by"), "\(show.stdout)")

        // The check catches a resumed trace that lost its approval span or a guardrail span.
        try await c.query(
            """
            DELETE FROM bridge.spans WHERE trace_id = \(traceId)
              AND (span_data->>'name' = 'approval' OR span_data->>'type' = 'guardrail')
            """)
        let broken = try await Self.bridge(verifyArgs, env)
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("✗ Guardrails and approvals traced"), "\(broken.stdout)")
        #expect(
            broken.stdout.contains("guardrail no_secrets: ran 1 time(s), 0 guardrail span(s) in the trace"),
            "\(broken.stdout)")
        #expect(
            broken.stdout.contains("was decided and the run resumed, but the trace has no approval span"),
            "\(broken.stdout)")
        await c.close()
    }

    @Test func watchResumesAtOnceWhenTheApplicationDecidesWithTheOptionalTrigger() async throws {
        let url = try await ExecCLITests.migratedReference()
        let poll = PollingConnection(url)
        let optional = try await BridgeBinary.migrate(url, dir: BridgeBinary.migrations + "/optional")
        #expect(optional.status == 0, "\(optional.stderr)")
        let env = BridgeBinary.environment(["OPENAI_AGENTS_DISABLE_TRACING": "1"])
        let c = try await TestDatabase.connect(url)
        let task = try await Self.managerTask(c)
        // Polling every 10 minutes: only a notification can wake the worker in time.
        let worker = try BackgroundBridge(
            [
                "exec", "--offline", "--watch", "--poll-interval", "600", "--task", task,
                "--database-url", url, "--mappings", BridgeBinary.mappings,
            ], environment: env)
        let requested = "context->>'task_id' = '\(task)'"
        #expect(
            await OffPool.until(timeout: .seconds(60)) {
                try poll.count(requested, table: "human_feedback_requests") == 1
            })
        let id = try #require(
            try await TestDatabase.rows(url, "SELECT id::text AS id FROM human_feedback_requests WHERE \(requested)")
                .first?["id"], "\(worker.output)")
        // The application's UI decides: a plain UPDATE of its own table.
        try await c.query(
            """
            UPDATE human_feedback_requests SET status = 'approved', response = '{"by": "ana"}', responded_at = now()
            WHERE id = \(id)::uuid
            """)
        // Within a minute, against the 600 s poll: the notification woke it. (The resumed run
        // starts the example MCP server and finishes the task, which on a loaded machine alone
        // can take more than the 15 s this wait once had.)
        #expect(
            await worker.send(
                SIGTERM, when: { try poll.count("id = '\(task)' AND status = 'completed'") == 1 },
                timeout: .seconds(60)), "\(worker.output)")
        _ = await worker.wait(timeout: 20)
        let decidedBy = try await c.query(
            """
            SELECT s.span_data->'data'->>'decided_by' AS by FROM bridge.spans s JOIN tasks t ON t.openai_trace_id = s.trace_id
            WHERE t.id = \(task)::uuid AND s.span_data->>'name' = 'approval'
            """
        ).first?["by"]
        #expect(decidedBy == "ana")
        await c.close()
    }

    @Test func execRefusesApprovalsWithoutTheirMigration() async throws {
        let url = try await ExecCLITests.migratedReference()
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery("DROP TABLE bridge.approval_waits; DROP TABLE bridge.run_states")
        await c.close()
        let r = try await BridgeBinary.run([
            "exec", "--offline", "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        #expect(r.status == 2)
        #expect(r.stderr.contains("run `bridge migrate` first (migrations/0020_approvals.sql)"), "\(r.stderr)")
    }

    @Test func rejectedAndExpiredRequestsResumeWithTheRejection() async throws {
        let url = try await ExecCLITests.migratedReference()
        let env = BridgeBinary.environment(["OPENAI_AGENTS_DISABLE_TRACING": "1"])
        let c = try await TestDatabase.connect(url)
        let rows = try await c.simpleQuery(
            """
            SELECT t.id::text AS id FROM tasks t JOIN agents a ON a.id = t.agent_id
            WHERE a.role = 'Project Manager' AND t.status = 'pending' ORDER BY t.created_at LIMIT 2
            """)
        let tasks = rows.compactMap { $0["id"] }
        try #require(tasks.count == 2)
        try await Self.flag(c, tasks)
        let common = ["--database-url", url, "--mappings", BridgeBinary.mappings]
        let first = try await Self.bridge(["exec", "--offline", "--task", tasks[0], "--task", tasks[1]] + common, env)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.contains("waiting for approval 2"), "\(first.stdout)")

        func request(_ task: String) async throws -> String {
            try #require(
                try await c.query(
                    "SELECT id::text AS id FROM human_feedback_requests WHERE context->>'task_id' = \(task)"
                )
                .first?["id"])
        }
        let rejected = try await request(tasks[0])
        let expired = try await request(tasks[1])
        #expect(try await Self.bridge(["reject", rejected, "--message", "Not this week."] + common, env).status == 0)
        try await c.query(
            "UPDATE human_feedback_requests SET expires_at = now() - interval '1 minute' WHERE id = \(expired)::uuid")

        let second = try await Self.bridge(["exec", "--offline", "--task", tasks[0], "--task", tasks[1]] + common, env)
        #expect(second.status == 0, "\(second.stderr)")
        let outcome = try await c.query(
            """
            SELECT t.id::text AS id, t.status, (SELECT count(*) FROM tasks s WHERE s.parent_task_id = t.id) AS subtasks,
                   (SELECT sp.span_data->>'output' FROM bridge.spans sp
                     WHERE sp.trace_id = t.openai_trace_id AND sp.span_data->>'type' = 'function'
                       AND sp.span_data->>'name' = 'create_and_assign_sub_task') AS output,
                   (SELECT sp.error->'data'->>'error' FROM bridge.spans sp
                     WHERE sp.trace_id = t.openai_trace_id AND sp.span_data->>'type' = 'function'
                       AND sp.span_data->>'name' = 'create_and_assign_sub_task') AS detail
            FROM tasks t WHERE t.id = ANY(\("{\(tasks.joined(separator: ","))}")::uuid[]) ORDER BY t.id = \(tasks[0])::uuid DESC
            """)
        #expect(outcome.map { $0["status"] } == ["completed", "completed"])
        #expect(outcome.map { $0["subtasks"] } == ["0", "0"], "rejected calls never run")
        #expect(outcome.first?["output"] == "Not this week.")
        #expect(outcome.rows.count == 2 && outcome.map { $0["output"] }.last == "Tool execution was not approved.")
        #expect(outcome.first?["detail"]?.hasSuffix("was manually rejected by user.") == true)
        let statuses = try await c.query("SELECT id::text AS id, status FROM human_feedback_requests")
        #expect(statuses.first { $0["id"] == expired }?["status"] == "expired", "an expired request is marked expired")
        #expect(statuses.first { $0["id"] == rejected }?["status"] == "rejected")
        await c.close()
    }
}
