import BridgeCore
import BridgePostgres
import BridgeTraceModel

/// `sessions`: conversation memory across runs, as the Agents SDK's sessions keep it.
///
/// A task's session is `key` rendered over its row (empty: the task has no session). Before a
/// run, the session's last `limit` items are prepended to its input; after a completed run, its
/// new items are appended in the transaction that finishes the task. Items live in the
/// application's own table (`table`, e.g. `conversation_messages`, one row per message) or,
/// without `table`, in bridge's own `bridge.agent_sessions` / `bridge.agent_messages` (the
/// SDK's `SQLAlchemySession` layout, one JSON item per row).
@MemberwiseInit
public struct SessionsMapping: Sendable, Equatable {
    /// Renders the session key from the task row (`{{task.…}}` references only).
    public var key: Template
    /// The application's table of messages; nil: bridge's own tables.
    public var table: String? = nil
    /// The column that holds the session key in `table`.
    public var sessionColumn: String = "session_id"
    /// Logical item fields → the table's columns (see `itemNames`).
    public var item: [String: String] = [:]
    /// Constant values for other columns the table requires (e.g. `content_type: text`).
    public var values: [String: String] = [:]
    /// bridge's roles (`user`, `assistant`, `system`, `tool`) → the values the role column takes.
    /// Defaults: user, assistant and system map to themselves; `tool` is unmapped, so tool calls
    /// and results are not rows of their own (they go into `item.tools_used` when mapped).
    public var roles: [String: String] = Self.defaultRoles
    /// Items read before a run (the SDK's `SessionSettings.limit`).
    public var limit: Int = 50
    public var origin: MappingLocation = .unknown

    /// The keys of `item`: `role` and `content` (required with `table`), `created_at` and `id`
    /// (the order: created_at, then id), `data` (the whole item as JSON, to replay tool calls
    /// exactly), `tools_used` (an assistant message's tool calls and results, as a JSON list).
    public static let itemNames = Keys.SessionItem.names
    public static let roleNames = Keys.SessionRole.names
    public static let defaultRoles = ["user": "user", "assistant": "assistant", "system": "system"]
    public static let maxLimit = 10_000

    /// Whether items go to the application's own table.
    public var usesApplicationTable: Bool { table != nil }

    /// The session key of a task row; nil when it renders empty (or only spaces).
    public func sessionKey(task: [String: JSONValue]) -> String? {
        let k = key.render(task: task)
        return k.trimmingSpaces.isEmpty ? nil : k
    }

    /// The session key as a SQL expression over the task row aliased `alias`: the same text the
    /// template renders (missing values as ''). Only compared with itself (claims), never used
    /// to find rows through an index.
    public func keyExpression(alias: String) -> PostgresQuery {
        var parts: [PostgresQuery] = []
        for part in key.parts {
            switch part {
            case .text(let s): parts.append("\(s)::text")
            case .reference(_, let path):
                let column: PostgresQuery = "\(unsafeRaw: alias).\(identifier: path[0])"
                if path.count == 1 {
                    parts.append("coalesce(\(column)::text, '')")
                } else {
                    let rest = PostgresArray.text(Array(path.dropFirst()))
                    parts.append("coalesce(to_jsonb(\(column)) #>> \(rest)::text[], '')")
                }
            }
        }
        if parts.isEmpty { return "''::text" }
        return "(" + PostgresQuery.joined(parts, separator: " || ") + ")"
    }
}

/// How session items become rows of the application's table and back, without SQL.
public enum SessionItems {
    /// One row bridge writes: bridge's role (a key of `SessionsMapping.roles`), the text shown,
    /// the item as JSON, and for an assistant message the tool calls that led to it.
    public struct Row: Sendable, Equatable {
        public var role: String
        public var content: String
        public var data: String
        public var toolsUsed: JSONValue?
    }

    /// bridge's role for an item: `user`, `assistant`, `system` (also `developer`) for
    /// messages, `tool` for function calls, their outputs and hosted tool calls; nil for
    /// anything else (reasoning items).
    public static func role(of item: ConversationItem) -> String? {
        switch item {
        case .message(let m): return m.role == "developer" ? "system" : m.role
        case .functionCall, .functionCallOutput: return "tool"
        case .reasoning, .guardrailResult, .approvalResult: return nil
        case .other:
            guard let type = item.type else { return nil }
            return type.hasSuffix("_call") || type.hasSuffix("_call_output") ? "tool" : nil
        }
    }

    /// A message's text: its string content, or its text parts joined by newlines.
    public static func text(of message: ConversationItem.Message) -> String {
        switch message.content {
        case .text(let s): return s
        case .parts(let parts):
            return parts.compactMap { $0["text"]?.stringValue ?? $0["refusal"]?.stringValue }.joined(separator: "\n")
        }
    }

    /// The rows for a run's new items. Items of a role without a mapping are not rows; tool
    /// items without a `tool` role mapping are folded into the next assistant row's
    /// `toolsUsed` (`[{call_id, name, arguments, output}]`, hosted calls as they are).
    public static func rows(for items: [ConversationItem], roles: [String: String]) -> [Row] {
        var rows: [Row] = []
        var tools: [JSONValue] = []
        for item in items {
            guard let role = role(of: item) else { continue }
            if role == "tool" {
                if roles["tool"] != nil {
                    rows.append(Row(role: "tool", content: item.json.compact, data: item.json.compact))
                } else {
                    fold(item, into: &tools)
                }
                continue
            }
            guard roles[role] != nil, let message = item.message else { continue }
            var row = Row(role: role, content: text(of: message), data: item.json.compact)
            if role == "assistant" && !tools.isEmpty {
                row.toolsUsed = .array(tools)
                tools = []
            }
            rows.append(row)
        }
        return rows
    }

    /// A tool item as an entry of `tools_used`: a call as `{call_id, name, arguments}`, its
    /// output added to its call's entry, anything else (hosted calls) as it is.
    static func fold(_ item: ConversationItem, into tools: inout [JSONValue]) {
        switch item {
        case .functionCall(let call):
            tools.append([
                "call_id": call.callId.json, "name": .string(call.name), "arguments": .string(call.arguments),
            ])
        case .functionCallOutput(let output):
            if let i = tools.lastIndex(where: { $0["call_id"] == output.callId.json }), case .object(var o) = tools[i] {
                o["output"] = output.output
                tools[i] = .object(o)
            } else {
                tools.append(item.json)
            }
        default:
            tools.append(item.json)
        }
    }

    /// The item a stored row stands for: its `data` when it holds a JSON object, else a
    /// message of the role that `roleValue` maps back to (a `tool` row's content is the item's
    /// JSON). Nil for a role bridge does not know (the row is not part of the model's input).
    public static func item(roleValue: String?, content: String?, data: String?, roles: [String: String])
        -> ConversationItem?
    {
        if let data, let item = try? JSONValue.parse(data), item.objectValue != nil {
            return ConversationItem(json: item)
        }
        guard let roleValue,
            let role = roles.sorted(by: { $0.key < $1.key }).first(where: { $0.value == roleValue })?.key
        else { return nil }
        if role == "tool" {
            guard let content, let item = try? JSONValue.parse(content), item.objectValue != nil else { return nil }
            return ConversationItem(json: item)
        }
        // Empty default: a stored message with NULL content is an empty message.
        return .input(role: role, content ?? "")
    }

    /// `items` without tool calls whose output is not among them and outputs whose call is not
    /// (a window cut by `limit` may split a call from its output; the model APIs refuse both).
    public static func balanced(_ items: [ConversationItem]) -> [ConversationItem] {
        let calls = Set(items.compactMap { $0.functionCall?.callId })
        let outputs = Set(items.compactMap { $0.functionCallOutput?.callId })
        return items.filter { item in
            switch item {
            case .functionCall(let call): return outputs.contains(call.callId)
            case .functionCallOutput(let output): return calls.contains(output.callId)
            default: return true
            }
        }
    }
}
