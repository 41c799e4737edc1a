import BridgeCore
import Yams

/// `backfill`: where `bridge exec --backfill` finds the records of historical runs.
///
/// The execution rows come from `results.executions`; this section names the log table whose
/// rows describe tool calls, which log types are tool calls, and which keys of the log's JSON
/// content hold the tool's name, arguments, output, start time, duration and error.
public struct BackfillMapping: Sendable, Equatable {
    /// The log table, or nil when the history has no tool-call records (traces then have a
    /// task, an agent and a turn span only).
    public var logs: BackfillLogsMapping?
    public var origin: MappingLocation = .unknown
}

/// `backfill.logs`: the log table and how a tool-call row is read.
public struct BackfillLogsMapping: Sendable, Equatable {
    public var table: String = "execution_logs"
    /// Key column (orders tool calls that started at the same time).
    public var key: String = "id"
    /// Column referencing the task key.
    public var taskColumn: String = "task_id"
    /// Column holding the log type.
    public var typeColumn: String = "type"
    /// The json/jsonb column holding the record.
    public var contentColumn: String = "content"
    /// When the row was written: the tool call's start when the content has none.
    public var createdAtColumn: String?
    /// Values of `type_column` that are tool calls.
    public var toolCallTypes: [String] = ["tool_call"]
    /// Keys of the content object (JSON keys, not columns).
    public var toolCall: ToolCallKeys = .init()
}

/// `backfill.logs.tool_call`: JSON keys of a tool-call record. nil: the record has no such key.
public struct ToolCallKeys: Sendable, Equatable {
    public var name: String = "tool"
    public var arguments: String? = "arguments"
    public var output: String? = "output"
    /// An ISO 8601 timestamp (else the row's `created_at_column`).
    public var startedAt: String? = "started_at"
    /// Milliseconds (the span's end is start + duration).
    public var durationMs: String? = "duration_ms"
    /// An error message; present and not null means the call failed.
    public var error: String?
}

extension LoadState {
    static func parseBackfill(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> BackfillMapping? {
        guard let m = r.map(node, "backfill", Keys.Backfill.self) else { return nil }
        var out = BackfillMapping(origin: origin)
        if let l = m.map(.logs, Keys.BackfillLogs.self) {
            var logs = l.read()
            if let types = l.strings(.toolCallTypes) {
                if types.isEmpty {
                    r.issue(l.node(.toolCallTypes), l.path(.toolCallTypes), "must list at least one log type")
                }
                logs.toolCallTypes = types
            }
            if let k = l.map(.toolCall, Keys.BackfillToolCall.self) {
                // A `tool_call` section names every key the records have: one it leaves out is absent.
                logs.toolCall = k.read()
            }
            out.logs = logs
        }
        return out
    }
}
