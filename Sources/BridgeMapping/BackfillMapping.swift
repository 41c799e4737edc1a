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
    public var origin: MappingLocation

    public init(logs: BackfillLogsMapping? = nil, origin: MappingLocation = .unknown) {
        self.logs = logs
        self.origin = origin
    }
}

/// `backfill.logs`: the log table and how a tool-call row is read.
public struct BackfillLogsMapping: Sendable, Equatable {
    public var table: String
    /// Key column (orders tool calls that started at the same time).
    public var key: String
    /// Column referencing the task key.
    public var taskColumn: String
    /// Column holding the log type.
    public var typeColumn: String
    /// The json/jsonb column holding the record.
    public var contentColumn: String
    /// When the row was written: the tool call's start when the content has none.
    public var createdAtColumn: String?
    /// Values of `type_column` that are tool calls.
    public var toolCallTypes: [String]
    /// Keys of the content object (JSON keys, not columns).
    public var toolCall: ToolCallKeys

    public init(table: String = "execution_logs", key: String = "id", taskColumn: String = "task_id",
                typeColumn: String = "type", contentColumn: String = "content", createdAtColumn: String? = nil,
                toolCallTypes: [String] = ["tool_call"], toolCall: ToolCallKeys = .init()) {
        self.table = table
        self.key = key
        self.taskColumn = taskColumn
        self.typeColumn = typeColumn
        self.contentColumn = contentColumn
        self.createdAtColumn = createdAtColumn
        self.toolCallTypes = toolCallTypes
        self.toolCall = toolCall
    }
}

/// `backfill.logs.tool_call`: JSON keys of a tool-call record. nil: the record has no such key.
public struct ToolCallKeys: Sendable, Equatable {
    public var name: String
    public var arguments: String?
    public var output: String?
    /// An ISO 8601 timestamp (else the row's `created_at_column`).
    public var startedAt: String?
    /// Milliseconds (the span's end is start + duration).
    public var durationMs: String?
    /// An error message; present and not null means the call failed.
    public var error: String?

    public init(name: String = "tool", arguments: String? = "arguments", output: String? = "output",
                startedAt: String? = "started_at", durationMs: String? = "duration_ms", error: String? = nil) {
        self.name = name
        self.arguments = arguments
        self.output = output
        self.startedAt = startedAt
        self.durationMs = durationMs
        self.error = error
    }
}

extension LoadState {
    static func parseBackfill(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> BackfillMapping? {
        guard let m = r.map(node, "backfill", allowed: ["logs"]) else { return nil }
        var out = BackfillMapping(origin: origin)
        if let l = m.map("logs", allowed: ["table", "key", "task_column", "type_column", "content_column",
                                           "created_at_column", "tool_call_types", "tool_call"]) {
            var logs = BackfillLogsMapping()
            logs.table = l.name("table") ?? logs.table
            logs.key = l.name("key") ?? logs.key
            logs.taskColumn = l.name("task_column") ?? logs.taskColumn
            logs.typeColumn = l.name("type_column") ?? logs.typeColumn
            logs.contentColumn = l.name("content_column") ?? logs.contentColumn
            logs.createdAtColumn = l.name("created_at_column")
            if let types = l.strings("tool_call_types") {
                if types.isEmpty { r.issue(l.node("tool_call_types"), l.path("tool_call_types"), "must list at least one log type") }
                logs.toolCallTypes = types
            }
            if let k = l.map("tool_call", allowed: ["name", "arguments", "output", "started_at", "duration_ms", "error"]) {
                var keys = ToolCallKeys(name: "tool", arguments: nil, output: nil, startedAt: nil, durationMs: nil, error: nil)
                keys.name = k.name("name", required: true) ?? keys.name
                keys.arguments = k.name("arguments")
                keys.output = k.name("output")
                keys.startedAt = k.name("started_at")
                keys.durationMs = k.name("duration_ms")
                keys.error = k.name("error")
                logs.toolCall = keys
            }
            out.logs = logs
        }
        return out
    }
}
