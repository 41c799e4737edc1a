import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeWorker

/// Leases at the TaskStore level: fencing tokens, heartbeat, reaper, backoff, LISTEN/NOTIFY.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct LeaseStoreTests {
    static var mappings: String { TestDatabase.projectRoot.appendingPathComponent("mappings").path }

    /// A seeded reference database with the shipped migrations applied.
    static func migrated() async throws -> (url: String, store: TaskStore) {
        let url = try await migratedReferenceDatabase(seed: true, workspaces: 1, tasksPerWorkspace: 10)
        return (url, TaskStore(config: try MappingLoader.load(directory: mappings)))
    }

    static func outcome(_ store: TaskStore, _ status: TaskStatus) -> TaskStore.Outcome {
        TaskStore.Outcome(
            status: .completed, taskStatus: status, result: ["output": "late"], tokenUsage: [:],
            errorMessage: nil, errorType: nil, completedAt: Date(), durationSeconds: 1)
    }

    @Test func staleWorkersLateFinishIsRefusedByTheToken() async throws {
        let (url, store) = try await Self.migrated()
        let c = try await TestDatabase.connect(url)
        // Worker A claims a task, starts its execution, then stalls past its lease.
        let a = try #require(try await store.claim(on: c, limit: 1, workerId: "A", lease: .seconds(60)).first)
        #expect(a.attempt == 1 && !a.token.text.isEmpty)
        let execA = try await store.startExecution(
            on: c, task: a.row, token: a.token, traceId: TraceID.forTask(a.key, attempt: 1),
            agentId: nil, attempt: 1, startedAt: Date())
        try await c.query(
            "UPDATE tasks SET bridge_lease_expires_at = now() - interval '1 second' WHERE id::text = \(a.key)")
        let reaped = try await store.reap(on: c, maxAttempts: 3)
        #expect(reaped == TaskStore.Reaped(requeued: 1, failed: 0))
        // A's execution row was closed by the reaper; the task is pending without a lease.
        let execStatus = try await c.query(
            "SELECT status, error_type FROM task_executions WHERE id::text = \(execA ?? "")"
        ).first
        #expect(execStatus?["status"] == "failed_retriable" && execStatus?["error_type"] == "LeaseExpired")

        // Worker B claims the same task again: attempt 2, a new token.
        let b = try #require(
            try await store.claim(on: c, limit: 1, workerId: "B", lease: .seconds(60), keys: [a.key]).first)
        #expect(b.key == a.key && b.attempt == 2 && b.token != a.token)

        // A wakes up: heartbeat says its lease is gone; its late finish and a new execution row are refused.
        #expect(try await store.heartbeat(on: c, tokens: [a.token, b.token], lease: .seconds(60)) == [b.token])
        let late = try await store.finish(
            on: c, taskKey: a.key, token: a.token, executionKey: execA,
            traceId: TraceID.forTask(a.key, attempt: 1), outcome: Self.outcome(store, .completed))
        #expect(late == false)
        await #expect(throws: TaskStore.LeaseLost.self) {
            _ = try await store.startExecution(
                on: c, task: a.row, token: a.token, traceId: "x", agentId: nil, attempt: 1, startedAt: Date())
        }
        let row = try await c.query(
            "SELECT status, result::text AS result, bridge_worker_id FROM tasks WHERE id::text = \(a.key)"
        ).first
        #expect(row?["status"] == "in_progress" && row?["result"] == nil && row?["bridge_worker_id"] == "B")

        // B's finish goes through and ends the lease; a second (duplicate) finish is refused.
        let execB = try await store.startExecution(
            on: c, task: b.row, token: b.token, traceId: TraceID.forTask(b.key, attempt: 2),
            agentId: nil, attempt: 2, startedAt: Date())
        #expect(
            try await store.finish(
                on: c, taskKey: b.key, token: b.token, executionKey: execB,
                traceId: TraceID.forTask(b.key, attempt: 2), outcome: Self.outcome(store, .completed)))
        #expect(
            try await store.finish(
                on: c, taskKey: b.key, token: b.token, executionKey: execB,
                traceId: "trace_dup", outcome: Self.outcome(store, .completed)) == false)
        let done = try await c.query(
            """
            SELECT status, openai_trace_id, bridge_lease_token IS NULL AS free,
                   (SELECT count(*) FROM task_executions e WHERE e.task_id = t.id AND e.status = 'completed') AS completed
            FROM tasks t WHERE id::text = \(a.key)
            """
        ).first
        #expect(done?["status"] == "completed" && done?.bool("free") == true && done?.int("completed") == 1)
        #expect(done?["openai_trace_id"] == TraceID.forTask(a.key, attempt: 2).text)
        await c.close()
    }

    @Test func reaperFailsTasksOutOfAttemptsAndClaimsRespectBackoffAndSlots() async throws {
        let (url, store) = try await Self.migrated()
        let c = try await TestDatabase.connect(url)
        let pending = try await c.query("SELECT count(*) AS n FROM tasks WHERE status = 'pending'").first?.int("n") ?? 0
        #expect(pending == 6)
        // Never more than the free slots asked for.
        let two = try await store.claim(on: c, limit: 2, workerId: "W", lease: .seconds(60))
        #expect(two.count == 2)
        let leased = try await c.query("SELECT count(*) AS n FROM tasks WHERE bridge_lease_token IS NOT NULL").first?
            .int("n")
        #expect(leased == 2)
        #expect(try await store.outstanding(on: c).leased == 2)

        // The first task is on its last attempt: when its lease expires it fails; the second goes back.
        try await c.query("UPDATE tasks SET bridge_attempts = 3 WHERE id::text = \(two[0].key)")
        try await c.query(
            "UPDATE tasks SET bridge_lease_expires_at = now() - interval '1 second' WHERE bridge_lease_token IS NOT NULL"
        )
        #expect(try await store.reap(on: c, maxAttempts: 3) == TaskStore.Reaped(requeued: 1, failed: 1))
        let failed = try await c.query(
            "SELECT status, result->>'error_type' AS t FROM tasks WHERE id::text = \(two[0].key)"
        ).first
        #expect(failed?["status"] == "failed" && failed?["t"] == "LeaseExpired")
        #expect(try await store.reap(on: c, maxAttempts: 3) == TaskStore.Reaped(requeued: 0, failed: 0))

        // A retriable failure with a backoff is not claimable until it is due.
        let one = try #require(
            try await store.claim(on: c, limit: 1, workerId: "W", lease: .seconds(60), keys: [two[1].key]).first)
        let retry = TaskStore.Outcome(
            status: .failedRetriable, taskStatus: .pending, result: [:], tokenUsage: [:],
            errorMessage: "429", errorType: .modelError, completedAt: Date(), durationSeconds: 0,
            retryAfterSeconds: 30)
        #expect(
            try await store.finish(
                on: c, taskKey: one.key, token: one.token, executionKey: nil, traceId: nil, outcome: retry))
        #expect(try await store.claim(on: c, limit: 1, workerId: "W", lease: .seconds(60), keys: [one.key]).isEmpty)
        let o = try await store.outstanding(on: c)
        #expect(o.waitingRetries == 1 && o.leased == 0 && (o.nextRetryIn ?? 0) > 25)
        await c.close()
    }

    @Test func backoffIsExponentialWithJitterAndHonoursRetryAfter() {
        #expect(RetryBackoff.delay(attempt: 1, base: 2, cap: 300, random: 0) == 1)
        #expect(RetryBackoff.delay(attempt: 1, base: 2, cap: 300, random: 1) == 2)
        #expect(RetryBackoff.delay(attempt: 3, base: 2, cap: 300, random: 1) == 8)
        #expect(RetryBackoff.delay(attempt: 20, base: 2, cap: 300, random: 1) == 300)
        #expect(RetryBackoff.delay(attempt: 1, base: 2, cap: 300, retryAfter: 42, random: 0.5) == 42)
        let draws = Set((0..<20).map { _ in RetryBackoff.delay(attempt: 4, base: 2, cap: 300) })
        #expect(draws.count > 1 && draws.allSatisfy { $0 >= 8 && $0 <= 16 })
    }

    @Test func listenerReceivesFoldedNotificationsAndNoticesAServerSideClose() async throws {
        let url = try await TestDatabase.create(prefix: "lease")
        let listener = try await TestDatabase.connect(url)
        let sender = try await TestDatabase.connect(url)
        try await listener.listen(taskNotifyChannel)
        #expect(try await listener.waitForNotifications(timeout: 0.1).isEmpty)
        // Three identical notifications in one transaction fold into one.
        try await sender.simpleQuery("BEGIN; NOTIFY bridge_tasks; NOTIFY bridge_tasks; NOTIFY bridge_tasks; COMMIT")
        var got: [PostgresNotification] = []
        for _ in 0..<20 where got.isEmpty { got = try await listener.waitForNotifications(timeout: 0.25) }
        #expect(got.count == 1 && got.first?.channel == "bridge_tasks" && got.first?.payload == "")
        // The server ends the listener's session: the wait reports a connection error.
        let pid = await listener.backendPID
        try await sender.query("SELECT pg_terminate_backend(\(Int(pid)))")
        await #expect(throws: PostgresError.self) {
            for _ in 0..<20 { _ = try await listener.waitForNotifications(timeout: 0.25) }
        }
        await listener.close()
        await sender.close()
    }
}

/// The worker's doorbell: a ring wakes the waiter and cancels its deadline, rather than leaving
/// a task asleep until the timeout.
@Suite struct DoorbellTests {
    @Test func aRingWakesTheWaiterAndCancelsItsDeadline() async throws {
        let bell = Doorbell()
        let waiter = Task { await bell.wait(timeout: .seconds(3600)) }
        var waiting = false
        for _ in 0..<200 where !waiting {
            waiting = await bell.timer != nil
            if !waiting { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(waiting)
        let timer = try #require(await bell.timer)
        await bell.ring()
        await waiter.value
        #expect(await bell.timer == nil)
        #expect(timer.isCancelled)
    }

    @Test func aRingWithNobodyWaitingIsKeptForTheNextWait() async {
        let bell = Doorbell()
        await bell.ring()
        await bell.wait(timeout: .seconds(3600))  // returns at once
        #expect(await bell.timer == nil)
    }
}
