import BridgeCore
import BridgeMapping
import Foundation

/// Runs `command` tools: starts `argv` directly (no shell), writes the tool's JSON arguments
/// (compact) to its stdin, and returns its stdout as the tool's output.
///
/// - `argv[0]` containing a `/` is used as is; otherwise it is looked up on `PATH` from the
///   injected `Environment`. The child sees only PATH, HOME, LANG and TZ from it plus the
///   tool's `env:` allowlist (`ChildEnvironment`): never API keys or `PG*` by default.
/// - `timeout_ms` bounds the run: the child's process group gets SIGTERM, then SIGKILL after
///   `killGracePeriod`, and the call fails with a `ToolFailure`. The child runs under
///   `bridge_spawn`'s supervisor: what it leaves behind is stopped too, and never keeps the
///   call waiting (its output is read for at most a second after the child exits).
/// - Output over `max_bytes` stops the child the same way and is a `ToolFailure` (not a
///   truncation).
/// - A non-zero exit (or death by a signal) is a `ToolFailure` with the exit code and the
///   start of stderr; a missing or non-executable program is a `ToolFailure` naming it.
///
/// The child runs through `ChildProcess` (BridgeCore): nothing blocks Swift's cooperative pool.
public struct CommandToolExecutor: ToolExecutor {
    public let environment: Environment
    /// Time between SIGTERM and SIGKILL when a command is stopped.
    public let killGracePeriod: Duration
    /// How much of stderr a failure quotes.
    public static let stderrPrefixBytes = 2_048

    public init(environment: Environment = .process, killGracePeriod: Duration = .seconds(1)) {
        self.environment = environment
        self.killGracePeriod = killGracePeriod
    }

    public func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        guard case .command(let spec) = tool.implementation else {
            throw ToolFailure("tool '\(tool.name)' is not a command tool")
        }
        guard let program = spec.argv.first, !program.isEmpty else {
            throw ToolFailure("tool '\(tool.name)' has an empty argv")
        }
        guard let path = ChildProcess.resolve(program, environment: environment) else {
            throw ToolFailure("command not found: \(program)", data: ["argv0": .string(program)])
        }
        var childEnvironment = ChildEnvironment.make(from: environment, allow: spec.env)
        // The call's stable key: a repeat after an interruption carries the same one.
        if !context.idempotencyKey.isEmpty {
            childEnvironment[IdempotencyKey.environmentVariable] = context.idempotencyKey
        }
        let command = ChildProcess.Command(
            path: path, argv: [path] + spec.argv.dropFirst(), environment: childEnvironment)
        var options = ChildProcess.Options()
        options.grace = killGracePeriod
        options.deadline = .milliseconds(max(1, spec.timeoutMs))
        options.threadName = "bridge-command-io"
        let outcome: ChildProcess.Outcome
        do {
            outcome = try await ChildProcess.run(
                command, input: Array(arguments.compact.utf8), maxStdout: max(0, spec.maxBytes),
                maxStderr: Self.stderrPrefixBytes, options: options)
        } catch let error as ChildStartError {
            throw ToolFailure("cannot start \(path): \(error.reason)", data: ["argv0": .string(path)])
        }
        let stderrText = String(decoding: outcome.stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if outcome.timedOut {
            throw ToolFailure(
                "command timed out after \(spec.timeoutMs) ms and was killed",
                data: ["argv0": .string(program), "timeout_ms": .number(Double(spec.timeoutMs))])
        }
        if outcome.stdoutExceeded {
            throw ToolFailure(
                "command output exceeds max_bytes (\(spec.maxBytes) bytes); the command was stopped",
                data: ["argv0": .string(program), "max_bytes": .number(Double(spec.maxBytes))])
        }
        switch outcome.termination {
        case .exit(0):
            let (text, replaced) = TextSafety.decode(outcome.stdout)
            context.notes.add(replaced)
            return text
        case .exit(let code):
            throw ToolFailure(
                "command exited with status \(code)" + (stderrText.isEmpty ? "" : ": \(stderrText)"),
                data: ["exit_code": .number(Double(code)), "stderr": .string(stderrText)])
        case .signal(let signal):
            throw ToolFailure(
                "command was killed by signal \(signal)" + (stderrText.isEmpty ? "" : ": \(stderrText)"),
                data: ["signal": .number(Double(signal)), "stderr": .string(stderrText)])
        }
    }
}
