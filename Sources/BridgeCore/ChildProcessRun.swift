import Foundation
import Synchronization

extension ChildProcess {
    /// A run to completion (`run`).
    public struct Outcome: Sendable {
        public var termination: ChildTermination
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        /// The deadline passed first (the child was stopped).
        public var timedOut: Bool
        /// Stdout went over its limit (the child was stopped at once; `stdout` holds what fit).
        public var stdoutExceeded: Bool
    }

    /// Runs `command` to its end: `input` written to its stdin, stdout kept up to `maxStdout`
    /// bytes (past that the child is stopped at once), the first `maxStderr` bytes of stderr
    /// kept. A cancelled task stops the child, waits for its end, and gets `CancellationError`.
    public static func run(
        _ command: Command, input: [UInt8] = [], maxStdout: Int = .max, maxStderr: Int = .max,
        options: Options = Options()
    ) async throws -> Outcome {
        let collector = OutputCollector(maxStdout: maxStdout, maxStderr: maxStderr)
        let child = ChildProcess(command, input: .bytes(input), options: options, handlers: collector.handlers)
        let started: Result<ChildTermination, ChildStartError> = await withTaskCancellationHandler {
            do throws(ChildStartError) {
                try await child.start()
            } catch {
                return .failure(error)
            }
            return .success(await child.ended())
        } onCancel: {
            child.stop(now: false)
        }
        let termination = try started.get()
        try Task.checkCancellation()
        return collector.outcome(termination, timedOut: child.timedOut)
    }

    /// `run` for a thread that may block (never Swift's cooperative pool).
    public static func runBlocking(
        _ command: Command, input: [UInt8] = [], maxStdout: Int = .max, maxStderr: Int = .max,
        options: Options = Options()
    ) throws(ChildStartError) -> Outcome {
        let collector = OutputCollector(maxStdout: maxStdout, maxStderr: maxStderr)
        let child = ChildProcess(command, input: .bytes(input), options: options, handlers: collector.handlers)
        try child.startBlocking()
        let termination = child.waitBlocking()
        return collector.outcome(termination, timedOut: child.timedOut)
    }
}

/// Keeps a child's output within its limits.
private final class OutputCollector: Sendable {
    private struct Output {
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var stdoutExceeded = false
    }
    let maxStdout: Int
    let maxStderr: Int
    private let output = Mutex(Output())

    init(maxStdout: Int, maxStderr: Int) {
        self.maxStdout = maxStdout
        self.maxStderr = maxStderr
    }

    var handlers: ChildProcess.Handlers {
        var h = ChildProcess.Handlers()
        h.stdout = { [self] child, chunk in
            let firstOverflow = output.withLock { o in
                guard o.stdout.count + chunk.count <= maxStdout else {
                    defer { o.stdoutExceeded = true }
                    return !o.stdoutExceeded
                }
                o.stdout.append(contentsOf: chunk)
                return false
            }
            if firstOverflow { child.stop(now: true) }
        }
        h.stderr = { [self] _, chunk in
            output.withLock { o in
                let room = maxStderr - o.stderr.count
                if room > 0 { o.stderr.append(contentsOf: chunk.prefix(room)) }
            }
        }
        return h
    }

    func outcome(_ termination: ChildTermination, timedOut: Bool) -> ChildProcess.Outcome {
        output.withLock { o in
            ChildProcess.Outcome(
                termination: termination, stdout: o.stdout, stderr: o.stderr, timedOut: timedOut,
                stdoutExceeded: o.stdoutExceeded)
        }
    }
}
