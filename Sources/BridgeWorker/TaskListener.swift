import BridgeCore
import BridgePostgres
import FoundationEssentials

/// The channel the opt-in trigger (`migrations/optional/0010_task_notify.sql`) notifies.
public let taskNotifyChannel = "bridge_tasks"

/// Watch mode's listener: LISTEN on `bridge_tasks` on a connection of its own.
///
/// It calls `wake` at every notification and after every (re)connect (notifications sent while
/// disconnected are lost, so the claim loop looks for work at once), and `notifying` with
/// whether notifications will come (connected, trigger installed: the claim loop then polls
/// less often). The connection is health-checked with `SELECT 1` every 10 s and re-established
/// with exponential backoff and jitter. Runs until its task is cancelled.
struct TaskListener: Sendable {
    let store: TaskStore
    let connect: @Sendable () async throws -> PostgresConnection
    let progress: ProgressReporter
    /// The claim loop's polling interval without notifications (for the log line).
    let pollInterval: Double

    func run(wake: @Sendable () async -> Void, notifying: @Sendable (Bool) async -> Void) async {
        var conn: PostgresConnection?
        var failures = 0
        var lastCheck = ContinuousClock.now
        var everConnected = false
        while !Task.isCancelled {
            do {
                if conn == nil {
                    let c = try await connect()
                    conn = c
                    try await c.listen(taskNotifyChannel)
                    let trigger = try await store.hasNotifyTrigger(on: c)
                    await notifying(trigger)
                    if everConnected {
                        progress.log("listener: reconnected")
                    } else if !trigger {
                        progress.log(
                            "listener: NOTIFY trigger not installed (migrations/optional); polling every \(secondsText(pollInterval))"
                        )
                    }
                    everConnected = true
                    failures = 0
                    lastCheck = ContinuousClock.now
                    await wake()
                }
                guard let c = conn else { continue }
                let notes = try await c.waitForNotifications(timeout: 0.5)
                if !notes.isEmpty { await wake() }
                if ContinuousClock.now - lastCheck > .seconds(10) {
                    try await c.simpleQuery("SELECT 1")
                    lastCheck = ContinuousClock.now
                }
            } catch {
                await notifying(false)
                if let c = conn { await c.close() }
                conn = nil
                failures += 1
                let wait = RetryBackoff.delay(attempt: failures, base: 0.5, cap: 15)
                progress.log("listener: \(error); reconnecting in \(secondsText(wait))")
                try? await Task.sleep(for: .milliseconds(Int(wait * 1000)))
            }
        }
        if let c = conn { await c.close() }
    }
}
