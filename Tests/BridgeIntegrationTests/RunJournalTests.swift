import BridgeCore
import BridgeMapping
import BridgeMigrate
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeRunner
@testable import BridgeWorker

/// The run journal at the store level: every write is fenced on the lease token.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct RunJournalTests {
    /// Worker A claims the one pending task and starts its durable run: the claim, the run's
    /// spec and A's journal.
    static func startedRun(
        _ store: TaskStore, _ journals: RunJournalStore, on c: PostgresConnection
    ) async throws -> (TaskStore.Claim, RunSpec, DurableJournal) {
        let a = try #require(try await store.claim(on: c, limit: 1, workerId: "A", lease: .seconds(60)).first)
        let spec = RunSpec(
            traceId: TraceID.forTask(a.key, attempt: 1), workflowName: "w", groupId: nil, metadata: [:],
            startingAgent: "x", agents: [:], tools: [:], input: "hi", maxTurns: 3,
            traceIncludeSensitiveData: true, taskId: a.key, attempt: 1)
        try await journals.start(on: c, taskKey: a.key, token: a.token, spec: spec, workerId: "A")
        let journal = DurableJournal(
            store: journals, connection: c, taskKey: a.key, traceId: spec.traceId, token: a.token,
            workerId: "A", stop: nil, finished: [])
        return (a, spec, journal)
    }

    /// Two workers that both believe they own a run (A's lease expired and B claimed the task):
    /// A's checkpoint, call record and writing SQL tool are all refused, and write nothing.
    @Test func aStaleWorkersJournalWritesAreRejected() async throws {
        let (url, store) = try await LeaseStoreTests.migrated()
        let journals = RunJournalStore(config: store.config)
        let c = try await TestDatabase.connect(url)
        let (a, spec, journalA) = try await Self.startedRun(store, journals, on: c)
        try await journalA.callFinished(JournaledCall(callId: "call_1", name: "t", output: "one", raw: false))
        // A stalls past its lease; the reaper hands the task back and B claims it.
        try await c.query(
            "UPDATE tasks SET bridge_lease_expires_at = now() - interval '1 second' WHERE id::text = \(a.key)")
        _ = try await store.reap(on: c, maxAttempts: 3)
        let b = try #require(
            try await store.claim(on: c, limit: 1, workerId: "B", lease: .seconds(60), keys: [a.key]).first)
        #expect(b.token != a.token)

        await #expect(throws: JournalFenced.self) {
            try await journalA.callFinished(JournaledCall(callId: "call_2", name: "t", output: "late", raw: false))
        }
        let checkpoint = RunCheckpoint(
            position: RunPosition(
                history: [], transcript: [], usage: Usage(), turn: 1, toolCalls: 0, agent: "x", taskEventId: 1,
                agentEventId: 2, nextEventId: 4),
            turnEventId: 3, turnUsage: Usage(), response: [], openSpans: [], at: Date())
        await #expect(throws: JournalFenced.self) { try await journalA.checkpoint(checkpoint) }
        // A writing SQL tool of A's: the lease check inside its transaction refuses the statement.
        try await c.query("CREATE TABLE stale_writes (n int)")
        let tool = ToolSpec(
            name: "w", description: "", parameters: [:],
            implementation: .sql(SQLToolSpec(sql: "INSERT INTO stale_writes VALUES (1)", writes: true)))
        var context = ToolContext(spec: spec, taskRow: a.row, agentName: "x")
        context.exactlyOnce = journalA.exactlyOnce(callId: "call_3", toolName: "w")
        await #expect(throws: ToolFailure.self) {
            _ = try await SQLToolExecutor(connection: { c }).execute(tool, arguments: [:], context: context)
        }
        #expect(try await c.query("SELECT count(*) AS n FROM stale_writes").first?.int("n") == 0)
        let calls = try await journals.calls(on: c, traceId: spec.traceId).map(\.callId)
        #expect(calls == ["call_1"])
        #expect(try await journals.head(on: c, taskKey: a.key)?.checkpoint == nil)

        // B's writes go through: the same tool commits its statement with its journal row.
        let journalB = DurableJournal(
            store: journals, connection: c, taskKey: a.key, traceId: spec.traceId, token: b.token,
            workerId: "B", stop: nil, finished: [])
        context.exactlyOnce = journalB.exactlyOnce(callId: "call_3", toolName: "w")
        let out = try await SQLToolExecutor(connection: { c }).execute(tool, arguments: [:], context: context)
        #expect(out.contains("affected_rows"))
        #expect(try await c.query("SELECT count(*) AS n FROM stale_writes").first?.int("n") == 1)
        #expect(Set(try await journals.calls(on: c, traceId: spec.traceId).map(\.callId)) == ["call_1", "call_3"])
        try await journalB.checkpoint(checkpoint)
        #expect(try await journals.head(on: c, taskKey: a.key)?.checkpoint != nil)
        await c.close()
    }

    /// A fresh run writes its journal head, its trace and its execution row in one fenced
    /// statement; under a lost lease that statement writes none of them. SQL tools' call rows
    /// wait for the next step's write (one round trip for the step and its calls).
    @Test func aFreshRunStartsInOneFencedStatementAndSQLCallsRideOnTheNextStep() async throws {
        let (url, store) = try await LeaseStoreTests.migrated()
        let c = try await TestDatabase.connect(url)
        var config = store.config
        config = config.with(columnTypes: try await ColumnTypes.load(for: config, connection: c))
        let journals = RunJournalStore(config: config)
        let claims = try await TaskStore(config: config).claim(on: c, limit: 2, workerId: "A", lease: .seconds(60))
        #expect(claims.count == 2)
        let (a, lost) = (claims[0], claims[1])
        func spec(_ key: TaskKey) -> RunSpec {

            RunSpec(
                traceId: TraceID.forTask(key, attempt: 1), workflowName: "w", groupId: nil, metadata: ["k": "v"],
                startingAgent: "x", agents: [:], tools: [:], input: "hi", maxTurns: 3,
                traceIncludeSensitiveData: true, taskId: key, attempt: 1)
        }
        let started = try await journals.startRun(
            on: c, taskKey: a.key, token: a.token, spec: spec(a.key), workerId: "A", task: a.row,
            trace: TraceRecord(spec: spec(a.key)), startedAt: Date())
        #expect(started.written)
        let execution = try #require(started.executionKey)
        let row = try #require(
            try await c.query(
                "SELECT openai_trace_id AS trace_id, status, task_id::text AS task FROM task_executions WHERE id::text = \(execution)"
            ).first)
        #expect(row["trace_id"] == spec(a.key).traceId.text && row["status"] == "started" && row["task"] == a.key.text)
        #expect(
            try await c.query(
                "SELECT metadata->>'k' AS k FROM bridge.traces WHERE trace_id = \(spec(a.key).traceId)"
            ).first?["k"] == "v")
        #expect(try await journals.head(on: c, taskKey: a.key)?.traceId == spec(a.key).traceId)

        // The other task's lease is gone: nothing of its start is written.
        try await c.query("UPDATE tasks SET bridge_lease_token = NULL WHERE id::text = \(lost.key)")
        await #expect(throws: TaskStore.LeaseLost.self) {
            _ = try await journals.startRun(
                on: c, taskKey: lost.key, token: lost.token, spec: spec(lost.key), workerId: "A", task: lost.row,
                trace: TraceRecord(spec: spec(lost.key)), startedAt: Date())
        }
        #expect(try await journals.head(on: c, taskKey: lost.key) == nil)
        #expect(
            try await c.query("SELECT count(*) AS n FROM task_executions WHERE task_id::text = \(lost.key)").first?
                .int("n") == 0)
        #expect(
            try await c.query("SELECT count(*) AS n FROM bridge.traces WHERE trace_id = \(spec(lost.key).traceId)")
                .first?.int("n") == 0)

        // A read-only SQL tool's call row is held until the next write, then goes with it.
        let journal = DurableJournal(
            store: journals, connection: c, taskKey: a.key, traceId: spec(a.key).traceId, token: a.token,
            workerId: "A", stop: nil, finished: [], traceWritten: true, deferredTools: ["lookup"])
        try await journal.callFinished(JournaledCall(callId: "call_r", name: "lookup", output: "[]", raw: false))
        #expect(try await journals.calls(on: c, traceId: spec(a.key).traceId).isEmpty)
        let checkpoint = RunCheckpoint(
            position: RunPosition(
                history: [], transcript: [], usage: Usage(), turn: 1, toolCalls: 0, agent: "x", taskEventId: 1,
                agentEventId: 2, nextEventId: 4),
            turnEventId: 3, turnUsage: Usage(), response: [], openSpans: [], at: Date())
        try await journal.checkpoint(checkpoint)
        #expect(try await journals.calls(on: c, traceId: spec(a.key).traceId).map(\.callId) == ["call_r"])
        #expect(try await journals.head(on: c, taskKey: a.key)?.checkpoint != nil)
        await c.close()
    }

    /// A step write the server refuses (here a trigger on the journal's call rows) rolls back
    /// the spend riding on it: the calls were paid all the same, so their spend is still
    /// recorded, in a statement of its own.
    @Test func spendRidingOnARefusedStepIsStillRecorded() async throws {
        let (url, store) = try await LeaseStoreTests.migrated()
        let journals = RunJournalStore(config: store.config)
        let c = try await TestDatabase.connect(url)
        let (a, _, journal) = try await Self.startedRun(store, journals, on: c)
        try await c.simpleQuery(
            """
            CREATE FUNCTION refuse_call() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'refused'; END $$;
            CREATE TRIGGER refuse_call BEFORE INSERT ON bridge.journal_calls FOR EACH ROW EXECUTE FUNCTION refuse_call();
            """)
        journal.riders.ride(
            ModelCallSpend(
                taskKey: a.key, attempt: 1, group: "ws-riders", agent: "x", model: "m", inputTokens: 10,
                cachedTokens: 0, outputTokens: 5, usd: 0.25))
        await #expect(throws: PostgresError.self) {
            try await journal.callFinished(JournaledCall(callId: "call_1", name: "t", output: "one", raw: false))
        }
        let spent = try await c.query(
            """
            SELECT (SELECT count(*) FROM bridge.model_calls WHERE task_key = \(a.key)) AS calls,
                   (SELECT spent_usd::float8 FROM bridge.group_spend WHERE group_key = 'ws-riders') AS spent
            """
        ).first
        #expect(spent?.int("calls") == 1)
        #expect(spent?.double("spent") == 0.25)
        #expect(journal.riders.take().isEmpty)
        await c.close()
    }
}

/// The queue of a run's model-call spend, on its own (no database).
struct RiderQueueTests {
    static func spend(_ usd: Double) -> ModelCallSpend {
        ModelCallSpend(
            taskKey: TaskKey("1"), attempt: 1, group: "g", agent: "x", model: "m", inputTokens: 10, cachedTokens: 0,
            outputTokens: 5, usd: usd)
    }

    /// What a rolled-back `sending` took is held again once: a second `unsend` (a second
    /// `sendRiders(again: true)`) would otherwise record the same calls twice.
    @Test func unsendHoldsWhatWasSentOnlyOnce() {
        let riders = RiderQueue()
        riders.ride(Self.spend(0.25))
        #expect(riders.sending() != nil)
        riders.unsend()
        riders.unsend()
        #expect(riders.take() == [Self.spend(0.25)])
    }

    /// Once the queue is drained again, the last `sending`'s statement is over (committed):
    /// an `unsend` then holds nothing of it.
    @Test func unsendAfterADrainHoldsNothing() {
        let riders = RiderQueue()
        riders.ride(Self.spend(0.25))
        #expect(riders.sending() != nil)
        riders.ride(Self.spend(0.5))
        #expect(riders.take() == [Self.spend(0.5)])
        riders.unsend()
        #expect(riders.take().isEmpty)
    }
}
