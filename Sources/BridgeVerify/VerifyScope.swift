import BridgeCore
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// `--since`: a duration back from now (`30m`, `24h`, `7d`, `2w`, `90s`) or a timestamp
/// (`2026-11-26`, `2026-11-26T09:00:00Z`, `2026-11-26 09:00:00+01`).
public enum Since: Sendable, Equatable, CustomStringConvertible {
    case duration(seconds: Double, text: String)
    case timestamp(Date, text: String)

    /// Parses the flag's value; nil when it is neither form.
    public static func parse(_ text: String) -> Since? {
        let s = text.trimmingCharacters(in: .whitespaces)
        if let seconds = syntax.seconds(s) { return .duration(seconds: seconds, text: s) }
        // What is not a duration in bounds is a timestamp or nothing (the parse refuses a
        // duration's text, in bounds or not).
        guard let date = PostgresTimestamp.parse(s.count == 10 ? s + "T00:00:00Z" : s) else { return nil }
        return .timestamp(date, text: s)
    }

    /// What the flag takes, for its error message.
    public static let expected =
        "expected a duration of at most 100 years like 30m, 24h or 7d, or a timestamp like 2026-11-26T09:00:00Z"

    /// The longest duration accepted: 100 years (longer ones would reach past year 1).
    public static let maxDurationSeconds: Double = 100 * 365.25 * 86_400

    /// A duration's units; one is required (a bare number is neither form), and zero is allowed.
    static let syntax = DurationSyntax(
        units: [("s", 1), ("m", 60), ("h", 3600), ("d", 86_400), ("w", 604_800)], bareSeconds: false,
        allowsZero: true, maximumSeconds: maxDurationSeconds)

    public var description: String {
        switch self {
        case .duration(_, let text): "last \(text)"
        case .timestamp(_, let text): "since \(text)"
        }
    }
}

/// Which executions and traces the checks look at. Every filter is optional; by default all.
///
/// - Executions in scope: finished execution rows (status completed, failed_retriable or
///   failed_terminal in the mappings' values) whose completion (or start) time is within
///   `since`, of the task `task` and of tasks in the workspace (group column) `workspace`.
/// - Traces in scope: rows of `bridge.traces` that have ended, started within `since`, and
///   whose task and group match.
@MemberwiseInit
public struct VerifyScope: Sendable, Equatable {
    public var since: Since? = nil
    public var task: TaskKey? = nil
    public var workspace: String? = nil
    /// The absolute lower bound, resolved against the server's clock (set by the verifier);
    /// never older than `prunedBefore`.
    public internal(set) var sinceTimestamp: Date? = nil
    /// The ledger's horizon: the newest `bridge prune` cutoff (set by the verifier). Executions
    /// and traces older than it are not checked, since their spans may have been pruned.
    public internal(set) var prunedBefore: Date? = nil

    /// `everything`, or e.g. `last 24h, task 12, workspace w1`.
    public var description: String {
        var parts: [String] = []
        if let since { parts.append(since.description) }
        if let task { parts.append("task \(task)") }
        if let workspace { parts.append("workspace \(workspace)") }
        if let prunedBefore, sinceTimestamp == prunedBefore {
            parts.append("not before \(PostgresTimestamp.format(prunedBefore)) (ledger pruned)")
        }
        return parts.isEmpty ? "everything" : parts.joined(separator: ", ")
    }

    var json: JSONValue {
        [
            "since": sinceTimestamp.map { .string(PostgresTimestamp.format($0)) } ?? .null,
            "pruned_before": prunedBefore.map { .string(PostgresTimestamp.format($0)) } ?? .null,
            "task": task?.json ?? .null,
            "workspace": workspace.map(JSONValue.string) ?? .null,
            "description": .string(description),
        ]
    }
}

/// Options of one `bridge verify` run. Every option has a default (the one `bridge verify`
/// documents for its flag); callers start from `VerifyOptions()` and set what they change.
public struct VerifyOptions: Sendable {
    public var scope = VerifyScope()
    /// `--spans FILE`: reconcile stored traces against this export (JSONL or OTLP JSON).
    public var spansFile: String?
    /// `--max-export-lag`: the p95 limit from span end to exporter acknowledgement.
    public var maxExportLagSeconds: Double = 30
    /// Examples kept per check.
    public var maxExamples = 5
    /// Database connections the checks are spread over (sharing one snapshot).
    public var connections = 2

    public init() {}
}

/// A problem with the verify run's input (exit 2): a spans file that cannot be read, a bad flag.
public struct VerifyInputError: InputError {
    public var message: String
    public init(_ message: String) { self.message = message }
}
