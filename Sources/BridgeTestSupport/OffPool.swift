import BridgeCore
import Foundation

/// Blocking work for async tests, run on a thread of its own instead of Swift's cooperative pool.
///
/// The pool has one thread per core (two on the test machine). An async test that blocks one of
/// them (waiting for a child process, psql or a semaphore) takes it from every other suite, and
/// when a few do so at once a test that must act at the right moment (kill a child midway,
/// measure a bound) is not resumed for tens of seconds. So tests never block on the pool: they
/// await these functions, whose waiting happens on a dedicated thread.
public enum OffPool {
    /// Runs `work` on a new thread and returns what it returns (or throws).
    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try work() }) }.start()
        }
    }

    /// Polls `condition` on a thread of its own, every `interval`, until it holds or `timeout`
    /// has passed; then, at once and on that thread, runs `action` with whether it held, and
    /// returns its result. The action is what must follow the condition without delay (a
    /// signal to a child, a measurement), so a busy pool cannot come between them. A condition
    /// that throws counts as not holding yet.
    public static func when<T: Sendable>(
        timeout: Duration, every interval: Duration = .milliseconds(50),
        _ condition: @escaping @Sendable () throws -> Bool,
        then action: @escaping @Sendable (Bool) throws -> T
    ) async throws -> T {
        try await run {
            let clock = ContinuousClock()
            let deadline = clock.now + timeout
            var held = (try? condition()) == true
            while !held && clock.now < deadline {
                Thread.sleep(forTimeInterval: interval.inSeconds)
                held = (try? condition()) == true
            }
            return try action(held)
        }
    }

    /// Polls `condition` on a thread of its own until it holds; false when `timeout` passes first.
    public static func until(
        timeout: Duration, every interval: Duration = .milliseconds(50),
        _ condition: @escaping @Sendable () throws -> Bool
    ) async -> Bool {
        (try? await when(timeout: timeout, every: interval, condition, then: { $0 })) ?? false
    }
}
