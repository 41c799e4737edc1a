import BridgeTraceModel
import BridgeCore
import BridgePostgres
import BridgeTestSupport
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
        try await TestDatabase.execute(url, """
            CREATE TABLE durable_actions (id bigserial PRIMARY KEY, task_id text NOT NULL, note text,
                                          at timestamptz NOT NULL DEFAULT clock_timestamp())
            """)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bridge-durable-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: TestDatabase.projectRoot.appendingPathComponent("mappings/bridge.yaml").path,
                                         toPath: dir.appendingPathComponent("bridge.yaml").path)
        let keysLog = dir.appendingPathComponent("keys.log").path
        try """
            version: 1
            agents:
              - name: Project Manager
                match: Project Manager
                instructions: Record the action, then answer.
                model: gpt-4.1
                tools: [record_action, note_key]
            """.write(to: dir.appendingPathComponent("agents.yaml"), atomically: true, encoding: .utf8)
        try """
            version: 1
            tools:
              - name: record_action
                description: Records the task's irreversible action.
                parameters:
                  type: object
                  properties:
                    note: {type: string}
                  required: [note]
                  additionalProperties: false
                sql:
                  query: INSERT INTO durable_actions (task_id, note) VALUES (CAST(:task.id AS text), :note) RETURNING id
                  writes: true
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
            try BackgroundBridge(["exec", "--offline", "--offline-latency-ms", "1000", "--concurrency", "4", "--lease", "2",
                                  "--database-url", url, "--mappings", mappings] + extra)
        }
        // A: SIGKILLed after four actions, while it holds runs past their first step.
        let a = try worker()
        let aPid = a.pid
        #expect(await a.send(SIGKILL, when: {
            try poll.count("true", table: "durable_actions") >= 4 && poll.count("""
                status = 'in_progress' AND bridge_worker_id LIKE '%:\(aPid):%'
                AND EXISTS (SELECT 1 FROM bridge.run_journals j WHERE j.task_key = tasks.id::text AND j.checkpoint IS NOT NULL)
                """) >= 1
        }, timeout: .seconds(60)))
        _ = await a.wait(timeout: 10)
        // B: SIGTERMed while it holds runs between steps; it releases them at once.
        let b = try worker(["--drain-timeout", "1"])
        let bPid = b.pid
        #expect(await b.send(SIGTERM, when: {
            try poll.count("""
                status = 'in_progress' AND bridge_worker_id LIKE '%:\(bPid):%'
                AND EXISTS (SELECT 1 FROM bridge.run_journals j WHERE j.task_key = tasks.id::text AND j.checkpoint IS NOT NULL)
                """) >= 1
        }, timeout: .seconds(60)))
        let rb = await b.wait(timeout: 30)
        #expect(rb?.status == 0, "\(b.output.suffix(2000))")
        // C finishes the queue (A's leases expire and are reaped first).
        let c = try worker()
        let rc = await c.wait(timeout: 120)
        #expect(rc?.status == 0, "\(c.output.suffix(3000))")

        try await LeaseFixture.expectAllCompletedExactlyOnce(url, tasks: tasks, spansPerTrace: 8)
        // Exactly one action per task: no writing SQL call ran twice.
        #expect(try await TestDatabase.psql(url, """
            SELECT count(*) FROM (SELECT task_id FROM durable_actions GROUP BY task_id HAVING count(*) = 1) x
            """) == String(tasks))
        #expect(try await TestDatabase.count(url, "true", table: "durable_actions") == tasks)
        // The command tool ran at least once per task, every repeat with the same key.
        let keys = try String(contentsOfFile: keysLog, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(Set(keys).count == tasks && keys.allSatisfy { $0.hasPrefix("bridge-") })
        // No call id has two function spans in its trace; the interrupted runs show a resume span.
        #expect(try await TestDatabase.psql(url, """
            SELECT count(*) FROM (SELECT trace_id, span_data->>'name' FROM bridge.spans WHERE span_data->>'type' = 'function'
                                  GROUP BY 1, 2 HAVING count(*) > 1) d
            """) == "0")
        #expect(try await TestDatabase.count(url, "span_data->>'name' = 'resume'", table: "bridge.spans") >= 2)
        #expect(try await TestDatabase.count(url, "true", table: "bridge.run_journals") == 0)
        // Interruptions are countable: A's runs were reaped, B's released.
        #expect(try await TestDatabase.count(url, "error_type = 'LeaseExpired'", table: "task_executions") >= 1)
        #expect(try await TestDatabase.count(url, "error_type = 'Released'", table: "task_executions") >= 1)
        let verify = try await BridgeBinary.run(["verify", "--database-url", url, "--mappings", mappings])
        #expect(verify.status == 0, "\(verify.stdout.suffix(3000))\n\(verify.stderr.suffix(1000))")
    }
}
