import BridgeCore
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

enum DurableFixture {
    /// A reference database with `tasks` pending tasks, a table of irreversible actions, and
    /// mappings whose one agent calls a writing SQL tool (one action row per call) and a command
    /// tool (one line per call in `keys.log`, with the call's idempotency key) on its first turn,
    /// and answers on its second (the offline model).
    static func setUp(tasks: Int) async throws -> (url: String, mappings: String, keysLog: String) {
        let url = try await LeaseFixture.database()
        try await TestDatabase.insertTasks(url, tasks)
        try await TestDatabase.execute(
            url,
            """
            CREATE TABLE durable_actions (id bigserial PRIMARY KEY, task_id text NOT NULL, note text,
                                          at timestamptz NOT NULL DEFAULT clock_timestamp())
            """)
        let dir = try TemporaryPath.directory("bridge-durable")
        try FileManager.default.copyItem(
            atPath: TestDatabase.projectRoot.appendingPathComponent("mappings/bridge.yaml").path,
            toPath: dir.appendingPathComponent("bridge.yaml").path)
        let keysLog = dir.appendingPathComponent("keys.log").path
        let fixtures = TestDatabase.projectRoot.appendingPathComponent("Tests/Fixtures/durable")
        try String(contentsOf: fixtures.appendingPathComponent("agents.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "tools: [record_action]", with: "tools: [record_action, note_key]")
            .write(to: dir.appendingPathComponent("agents.yaml"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(
            at: fixtures.appendingPathComponent("record-action.yaml"),
            to: dir.appendingPathComponent("record-action.yaml"))
        try """
        version: 1
        tools:
          - name: note_key
            description: Notes the call's idempotency key.
            parameters:
              type: object
              properties: {}
              additionalProperties: false
            command:
              argv: ["/bin/sh", "-c", "printf '%s\\\\n' \\"$BRIDGE_IDEMPOTENCY_KEY\\" >> \(keysLog); echo noted"]
        """.write(to: dir.appendingPathComponent("tools.yaml"), atomically: true, encoding: .utf8)
        return (url, dir.path, keysLog)
    }

    /// The arguments of a worker that answers offline after `latencyMs` per model call, on a
    /// `lease`-second lease, with `concurrency` runs at once (bridge's default when nil).
    static func slowWorker(
        _ url: String, _ mappings: String, latencyMs: Int = 1500, lease: Int = 1, concurrency: Int? = nil
    ) -> [String] {
        ["exec", "--offline", "--offline-latency-ms", String(latencyMs), "--lease", String(lease)]
            + (concurrency.map { ["--concurrency", String($0)] } ?? [])
            + ["--database-url", url, "--mappings", mappings]
    }

    /// After interrupted runs have all finished: no trace has a function span twice for one call,
    /// nor a handoff span twice to one agent (no step was done again), at least `resumes` resume
    /// spans, no journal left, and `bridge verify` passes.
    static func expectResumedWithoutRepeats(
        _ url: String, _ mappings: String, resumes: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        #expect(
            try await TestDatabase.psql(
                url,
                """
                SELECT count(*) FROM (SELECT trace_id, span_data->>'type', span_data->>'name', span_data->>'to_agent'
                                      FROM bridge.spans WHERE span_data->>'type' IN ('function', 'handoff')
                                      GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d
                """) == "0", sourceLocation: sourceLocation)
        #expect(
            try await TestDatabase.count(url, "span_data->>'name' = 'resume'", table: "bridge.spans") >= resumes,
            sourceLocation: sourceLocation)
        #expect(
            try await TestDatabase.count(url, "true", table: "bridge.run_journals") == 0, sourceLocation: sourceLocation
        )
        let verify = try await BridgeBinary.run(["verify", "--database-url", url, "--mappings", mappings])
        #expect(
            verify.status == 0, "\(verify.stdout.suffix(3000))\n\(verify.stderr.suffix(1000))",
            sourceLocation: sourceLocation)
    }

    /// The condition (on `tasks`) of the runs worker `pid` holds past their first step: in
    /// progress under its worker id, with a model response journaled.
    static func heldPastFirstStep(by pid: Int32) -> String {
        """
        status = 'in_progress' AND bridge_worker_id LIKE '%:\(pid):%'
        AND EXISTS (SELECT 1 FROM bridge.run_journals j WHERE j.task_key = tasks.id::text AND j.checkpoint IS NOT NULL)
        """
    }

    /// Waits up to 120 s for `worker`, which finishes the queue, to end; expects exit 0.
    static func expectFinishes(_ worker: BackgroundBridge, sourceLocation: SourceLocation = #_sourceLocation) async {
        let end = await worker.wait(timeout: 120)
        #expect(end?.status == 0, "\(worker.output.suffix(3000))", sourceLocation: sourceLocation)
    }

    /// Runs a `slowWorker` and kills it (SIGKILL) once `runs` runs have journaled a model
    /// response; whether they did within 90 s.
    static func killAfterCheckpoints(_ url: String, _ mappings: String, runs: Int) async throws -> Bool {
        let poll = PollingConnection(url)
        let worker = try BackgroundBridge(slowWorker(url, mappings))
        return await worker.kill(
            when: { try poll.count("checkpoint IS NOT NULL", table: "bridge.run_journals") == runs },
            timeout: .seconds(90))
    }
}

/// Durable runs with the built binary: workers killed and stopped mid-run, a third that
/// finishes the queue, and the journal's guarantees checked in the database.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct DurableCLITests {
    @Test(.timeLimit(.minutes(4)))
    func killedAndStoppedWorkersLoseNoStepAndRepeatNoWrite() async throws {
        let tasks = 24
        let (url, mappings, keysLog) = try await DurableFixture.setUp(tasks: tasks)
        let poll = PollingConnection(url)
        func worker(_ extra: [String] = []) throws -> BackgroundBridge {
            try BackgroundBridge(
                DurableFixture.slowWorker(url, mappings, latencyMs: 1000, lease: 2, concurrency: 4) + extra)
        }
        // A: SIGKILLed after four actions, while it holds runs past their first step.
        let a = try worker()
        let aHolds = DurableFixture.heldPastFirstStep(by: a.pid)
        #expect(
            await a.kill(
                when: { try poll.count("true", table: "durable_actions") >= 4 && poll.count(aHolds) >= 1 },
                timeout: .seconds(60)))
        // B: SIGTERMed while it holds runs between steps; it releases them at once.
        let b = try worker(["--drain-timeout", "1"])
        let bHolds = DurableFixture.heldPastFirstStep(by: b.pid)
        #expect(await b.send(SIGTERM, when: { try poll.count(bHolds) >= 1 }, timeout: .seconds(60)))
        let rb = await b.wait(timeout: 30)
        #expect(rb?.status == 0, "\(b.output.suffix(2000))")
        // C finishes the queue (A's leases expire and are reaped first).
        await DurableFixture.expectFinishes(try worker())

        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: tasks, spansPerTrace: 8)
        // Exactly one action per task: no writing SQL call ran twice.
        #expect(
            try await TestDatabase.psql(
                url,
                """
                SELECT count(*) FROM (SELECT task_id FROM durable_actions GROUP BY task_id HAVING count(*) = 1) x
                """) == String(tasks))
        #expect(try await TestDatabase.count(url, "true", table: "durable_actions") == tasks)
        // The command tool ran at least once per task, every repeat with the same key.
        let keys = try String(contentsOfFile: keysLog, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(keys).count == tasks && keys.allSatisfy { $0.hasPrefix("bridge-") })
        // No call id has two function spans in its trace; the interrupted runs show a resume span.
        try await DurableFixture.expectResumedWithoutRepeats(url, mappings, resumes: 2)
        let resumedTask = try await TestDatabase.psql(
            url,
            """
            SELECT tr.task_id FROM bridge.traces tr JOIN bridge.spans s ON s.trace_id = tr.trace_id
            WHERE s.span_data->>'name' = 'resume' LIMIT 1
            """)
        let show = try await BridgeBinary.run(["trace", "show", resumedTask, "--database-url", url])
        #expect(
            show.status == 0 && show.stdout.contains("resume · ") && show.stdout.contains(" lost "), "\(show.stdout)")
        // Interruptions are countable: A's runs were reaped, B's released.
        #expect(try await TestDatabase.count(url, "error_type = 'LeaseExpired'", table: "task_executions") >= 1)
        #expect(try await TestDatabase.count(url, "error_type = 'Released'", table: "task_executions") >= 1)
    }

    /// A worker killed while it resumes a run another worker left (SIGKILL during the resumed
    /// stint's next model call): the third worker still finishes the run in its one trace, the
    /// writing SQL tool's action is not done again, and verify passes.
    @Test(.timeLimit(.minutes(5)))
    func aKillDuringTheResumeItselfStillFinishesInOneTrace() async throws {
        let tasks = 2
        let (url, mappings, _) = try await DurableFixture.setUp(tasks: tasks)
        let poll = PollingConnection(url)
        func worker() throws -> BackgroundBridge {
            try BackgroundBridge(DurableFixture.slowWorker(url, mappings, concurrency: 2))
        }
        // A dies once both runs have journaled their first response (their actions are done).
        let a = try worker()
        #expect(
            await a.kill(
                when: {
                    try poll.count("checkpoint IS NOT NULL", table: "bridge.run_journals") == tasks
                        && poll.count("true", table: "durable_actions") == tasks
                }, timeout: .seconds(90)))
        // B takes the runs over (its id in their journals) and dies in their next model call.
        let b = try worker()
        let bPid = b.pid
        #expect(
            await b.kill(
                when: {
                    try poll.count("worker_id LIKE '%:\(bPid):%'", table: "bridge.run_journals") >= 1
                }, timeout: .seconds(90)))
        // C finishes them.
        await DurableFixture.expectFinishes(try worker())

        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: tasks, spansPerTrace: 8)
        #expect(try await TestDatabase.count(url, "true", table: "durable_actions") == tasks)
        // One trace per task, every resume span in it.
        #expect(
            try await TestDatabase.psql(url, "SELECT count(DISTINCT trace_id) FROM bridge.traces") == String(tasks))
        try await DurableFixture.expectResumedWithoutRepeats(url, mappings, resumes: tasks)
    }

    /// Worker A is killed at a `KillPoint`; worker B finishes the queue. Each task completes once
    /// in one trace, its action done once, no function or handoff span doubled, and verify passes.
    @Test(.timeLimit(.minutes(5)), arguments: killPoints)
    func aKillInsideARunResumesFromItsJournal(_ point: KillPoint) async throws {
        let tasks = 2
        let (url, mappings, _) = try await DurableFixture.setUp(tasks: tasks)
        try point.agents.write(
            to: URL(fileURLWithPath: mappings).appendingPathComponent("agents.yaml"), atomically: true,
            encoding: .utf8)
        let poll = PollingConnection(url)
        // A's lease is short, so that B takes its runs over soon after the kill; B's is long
        // enough that a loaded machine cannot delay B's own heartbeats past it.
        func worker(lease: Int) throws -> BackgroundBridge {
            try BackgroundBridge(DurableFixture.slowWorker(url, mappings, lease: lease, concurrency: 2))
        }
        let a = try worker(lease: 1)
        #expect(
            await a.kill(
                when: { try poll.count(point.boundary, table: "bridge.run_journals") >= 1 }, timeout: .seconds(90)))
        await DurableFixture.expectFinishes(try worker(lease: 10))
        #expect(try await TestDatabase.count(url, "status = 'completed'", table: "tasks") == tasks)
        #expect(try await TestDatabase.count(url, "status = 'completed'", table: "task_executions") == tasks)
        #expect(try await TestDatabase.count(url, "error_type = 'LeaseExpired'", table: "task_executions") >= 1)
        #expect(try await TestDatabase.count(url, "true", table: "durable_actions") == tasks)
        #expect(
            try await TestDatabase.psql(url, "SELECT count(DISTINCT openai_trace_id) FROM task_executions")
                == String(tasks))
        try await DurableFixture.expectResumedWithoutRepeats(url, mappings, resumes: 1)
    }

    /// Where a run is killed: a SQL condition on its journal (`boundary`), with `agents` as the
    /// mappings' agents.
    struct KillPoint: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var boundary: String
        var agents: String
    }

    static let killPoints = [
        // During a handoff: the handoff's model response is journaled and the next agent's model
        // call is in flight. The resumed run takes the handoff again from the journaled response
        // (same span id, stored once).
        KillPoint(
            testDescription: "during a handoff",
            boundary: "checkpoint->>'turn' = '2' AND checkpoint->>'agent' = 'Project Manager'",
            agents: """
                version: 1
                agents:
                  - name: Project Manager
                    match: Project Manager
                    instructions: Record the action, then hand off.
                    model: gpt-4.1
                    tools: [record_action]
                    handoffs:
                      - agent: Specialist
                  - name: Specialist
                    match: Specialist
                    instructions: Answer.
                    model: gpt-4.1
                """),
        // During an output guardrail (its agent's model call in flight, after the final answer was
        // journaled): the resumed run does not ask for the answer again, runs the guardrail, and
        // finishes.
        KillPoint(
            testDescription: "during an output guardrail",
            boundary: "checkpoint->>'turn' = '2'",
            agents: """
                version: 1
                agents:
                  - name: Project Manager
                    match: Project Manager
                    instructions: Record the action, then answer.
                    model: gpt-4.1
                    tools: [record_action]
                    output_guardrails: [checker]
                  - name: Checker
                    match: Checker
                    instructions: Check the answer.
                    model: gpt-4.1-mini
                    output_type:
                      name: Verdict
                      schema:
                        type: object
                        properties:
                          tripwire_triggered: {type: boolean}
                          output_info: {type: string}
                        required: [tripwire_triggered, output_info]
                        additionalProperties: false
                guardrails:
                  - name: checker
                    agent: Checker
                """),
    ]

    /// A journal this bridge cannot read (corrupt, or of another format): a clear error on the
    /// task, the journal dropped and the trace closed; the worker carries on with the others.
    @Test(.timeLimit(.minutes(4)))
    func anUnreadableJournalFailsItsTaskClearly() async throws {
        let (url, mappings) = try await LeaseFixture.database(tasks: 3)
        try await TestDatabase.execute(
            url,
            """
            INSERT INTO bridge.run_journals (task_key, trace_id, attempt, format, spec)
            SELECT id::text, 'trace_' || md5(id::text), 1, 1, '{"not": "a run spec"}' FROM tasks WHERE name = 't1';
            INSERT INTO bridge.run_journals (task_key, trace_id, attempt, format, spec)
            SELECT id::text, 'trace_' || md5(id::text), 1, 99, '{}' FROM tasks WHERE name = 't2';
            INSERT INTO bridge.traces (trace_id, workflow_name, task_id) SELECT 'trace_' || md5(id::text), 'w', id::text
            FROM tasks WHERE name IN ('t1', 't2')
            """)
        let r = try await BridgeBinary.run(["exec", "--offline", "--database-url", url, "--mappings", mappings])
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        let rows = try await TestDatabase.psql(
            url,
            """
            SELECT string_agg(name || '|' || status || '|' || coalesce(result->>'error_type', '') || '|' || coalesce(result->>'error', ''),
                              E'\\n' ORDER BY name) FROM tasks
            """
        ).split(separator: "\n").map(String.init)
        #expect(rows.count == 3)
        #expect(
            rows[0].hasPrefix("t1|failed|ResumeError|the run journal of task ")
                && rows[0].contains("cannot be resumed"), "\(rows)")
        #expect(rows[1].hasPrefix("t2|failed|ResumeError|") && rows[1].contains("journal format 99"), "\(rows)")
        #expect(rows[2].hasPrefix("t3|completed|"), "\(rows)")
        #expect(try await TestDatabase.count(url, "true", table: "bridge.run_journals") == 0)
        #expect(try await TestDatabase.count(url, "ended_at IS NULL", table: "bridge.traces") == 0)
    }

    /// The mappings changed between the interruption and the resume (a tool removed from the
    /// agent): the run fails naming the change instead of going on as a different run.
    @Test(.timeLimit(.minutes(4)))
    func aMappingChangedUnderAnInterruptedRunFailsNamingTheChange() async throws {
        let (url, mappings, _) = try await DurableFixture.setUp(tasks: 1)
        #expect(try await DurableFixture.killAfterCheckpoints(url, mappings, runs: 1))
        let agents = URL(fileURLWithPath: mappings).appendingPathComponent("agents.yaml")
        let text = try String(contentsOf: agents, encoding: .utf8)
        try text.replacingOccurrences(of: "tools: [record_action, note_key]", with: "tools: [record_action]")
            .write(to: agents, atomically: true, encoding: .utf8)
        let r = try await BridgeBinary.run(["exec", "--offline", "--database-url", url, "--mappings", mappings])
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        let error = try await TestDatabase.psql(
            url, "SELECT result->>'error_type' || '|' || (result->>'error') FROM tasks")
        #expect(
            error.hasPrefix("ResumeError|") && error.contains("mappings changed")
                && error.contains("tools changed from [record_action, note_key] to [record_action]"), "\(error)")
        #expect(try await TestDatabase.count(url, "true", table: "bridge.run_journals") == 0)
    }

    /// A worker that dies during a stint resumed after an approval: the next worker goes through
    /// the same decisions again in the same trace, and the approved call, which finished, is
    /// replayed rather than run twice.
    @Test(.timeLimit(.minutes(5)))
    func aKillDuringAnApprovalResumeKeepsTheTraceAndTheDecision() async throws {
        let url = try await ExecCLITests.migratedReference()
        let poll = PollingConnection(url)
        let c = try await TestDatabase.connect(url)
        let task = try await ApprovalCLITests.managerTask(c)
        let common = ["--database-url", url, "--mappings", BridgeBinary.mappings]
        let paused = try await BridgeBinary.run(["exec", "--offline", "--task", task] + common)
        #expect(paused.status == 0, "\(paused.stderr)")
        let id = try #require(
            try await BridgeBinary.run(["approvals", "list", "--ids"] + common).stdout
                .split(separator: "\n").first.map(String.init))
        #expect(try await BridgeBinary.run(["approve", id] + common).status == 0)
        let trace = try #require(try await c.query("SELECT trace_id FROM bridge.run_states").first?["trace_id"])

        // The resumed stint runs the approved call, then dies in its next model call.
        let w = try BackgroundBridge(
            ["exec", "--offline", "--offline-latency-ms", "3000", "--lease", "1", "--task", task] + common)
        #expect(
            await w.kill(
                when: {
                    try poll.count("parent_task_id = '\(task)'") == 1
                        && poll.count("trace_id = '\(trace)'", table: "bridge.journal_calls") >= 1
                }, timeout: .seconds(90)))
        let r = try await BridgeBinary.run(["exec", "--offline", "--task", task] + common)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        let row = try await c.query(
            """
            SELECT t.status, t.openai_trace_id AS trace, (SELECT count(*) FROM tasks s WHERE s.parent_task_id = t.id) AS subtasks,
                   (SELECT count(DISTINCT e.openai_trace_id) FROM task_executions e WHERE e.task_id = t.id) AS traces,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.status = 'completed') AS completed,
                   (SELECT count(*) FROM bridge.run_states) AS states, (SELECT count(*) FROM bridge.run_journals) AS journals,
                   (SELECT count(*) FROM human_feedback_requests) AS requests
            FROM tasks t WHERE t.id = \(task)::uuid
            """
        ).first
        #expect(row?["status"] == "completed" && row?["trace"] == trace, "\(row.map { "\($0)" } ?? "")")
        #expect(row?["subtasks"] == "1" && row?["traces"] == "1" && row?["completed"] == "1")
        #expect(
            row?["states"] == "0" && row?["journals"] == "0" && row?["requests"] == "1", "no second approval request")
        let verify = try await BridgeBinary.run(["verify", "--task", task] + common)
        #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        await c.close()
    }

    /// The application takes interrupted runs back (it finishes one task itself and deletes
    /// another): a worker drops their journals, writes the spans left open ended with the reason,
    /// closes the traces, and runs nothing for them.
    @Test(.timeLimit(.minutes(4)))
    func interruptedRunsTheApplicationTookBackAreClosedNotResumed() async throws {
        let (url, mappings, _) = try await DurableFixture.setUp(tasks: 2)
        #expect(try await DurableFixture.killAfterCheckpoints(url, mappings, runs: 2))
        try await TestDatabase.execute(
            url,
            """
            UPDATE tasks SET status = 'completed' WHERE name = 't1';
            DELETE FROM task_executions WHERE task_id = (SELECT id FROM tasks WHERE name = 't2');
            DELETE FROM tasks WHERE name = 't2'
            """)
        let actions = try await TestDatabase.count(url, "true", table: "durable_actions")
        let w = try BackgroundBridge(DurableFixture.slowWorker(url, mappings) + ["--watch"])
        #expect(
            await w.send(
                SIGTERM, when: { w.output.contains("journal sweep: 2 interrupted run(s)") }, timeout: .seconds(90)),
            "\(w.output.suffix(2000))")
        #expect(await w.wait(timeout: 20)?.status == 0, "\(w.output.suffix(2000))")
        #expect(try await TestDatabase.count(url, "true", table: "bridge.run_journals") == 0)
        #expect(try await TestDatabase.count(url, "ended_at IS NULL", table: "bridge.traces") == 0)
        #expect(
            try await TestDatabase.count(url, "error->>'message' = 'Run not resumed'", table: "bridge.spans") == 6,
            "task, agent and turn span of each")
        #expect(
            try await TestDatabase.count(
                url,
                """
                parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM bridge.spans p WHERE p.span_id = bridge.spans.parent_id)
                """, table: "bridge.spans") == 0)
        #expect(try await TestDatabase.count(url, "true", table: "durable_actions") == actions, "nothing more was run")
        #expect(try await TestDatabase.count(url, "status = 'started'", table: "task_executions") == 0)
    }

    /// The application finishes a task while its run waits for an approval: the paused state,
    /// its waits and its journal go, `approvals list` no longer lists the request, the trace is
    /// closed as one tree.
    @Test(.timeLimit(.minutes(4)))
    func aPausedTaskTheApplicationFinishedStopsWaiting() async throws {
        let url = try await ExecCLITests.migratedReference()
        let c = try await TestDatabase.connect(url)
        let task = try await ApprovalCLITests.managerTask(c)
        let common = ["--database-url", url, "--mappings", BridgeBinary.mappings]
        let paused = try await BridgeBinary.run(["exec", "--offline", "--task", task] + common)
        #expect(paused.status == 0, "\(paused.stderr)")
        #expect(try await TestDatabase.count(url, "true", table: "bridge.run_states") == 1)
        try await c.query("UPDATE tasks SET status = 'completed' WHERE id = \(task)::uuid")
        let w = try BackgroundBridge(["exec", "--offline", "--watch", "--task", task] + common)
        #expect(
            await w.send(
                SIGTERM, when: { w.output.contains("journal sweep: 1 interrupted run(s)") }, timeout: .seconds(90)),
            "\(w.output.suffix(2000))")
        _ = await w.wait(timeout: 20)
        #expect(try await TestDatabase.count(url, "true", table: "bridge.run_states") == 0)
        #expect(try await TestDatabase.count(url, "true", table: "bridge.approval_waits") == 0)
        #expect(try await TestDatabase.count(url, "true", table: "bridge.run_journals") == 0)
        let list = try await BridgeBinary.run(["approvals", "list", "--ids"] + common)
        #expect(
            list.status == 0 && list.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "\(list.stdout)")
        #expect(try await TestDatabase.count(url, "ended_at IS NULL", table: "bridge.traces") == 0)
        #expect(
            try await TestDatabase.count(
                url,
                """
                parent_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM bridge.spans p WHERE p.span_id = bridge.spans.parent_id)
                """, table: "bridge.spans") == 0)
        await c.close()
    }
}
