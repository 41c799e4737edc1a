import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import Foundation

/// Sessions (`sessions` in the mappings): the statements that read a session's last items
/// before a run and append a completed run's new items in the transaction that finishes its
/// task. Items live in the application's own table, one row per message (`SessionItems`), or in
/// bridge's own `bridge.agent_sessions` / `bridge.agent_messages` (migration
/// `0072_agent_sessions.sql`, the Agents SDK's `SQLAlchemySession` layout: one JSON item per row).
///
/// The session column is compared with the key bound as that column's type, and the last
/// `limit` items are read newest first by `(session, created_at)`, so the read is one short
/// index range however long the conversation.
public struct SessionStore: Sendable {
    public let config: MappingConfig
    public let mapping: SessionsMapping

    /// nil when the mappings have no `sessions` section.
    public init?(config: MappingConfig) {
        guard let s = config.sessions else { return nil }
        self.config = config
        self.mapping = s
    }

    var types: ColumnTypes { config.columnTypes }

    /// The fixed advisory lock class of claims per session key (`pg_try_advisory_xact_lock(class,
    /// hashtext(key))`, held only while a claim commits).
    public static let lockClass: Int32 = 0x4253_4553  // "BSES"

    /// The session key is not a value of the session column's type (the task fails, exit 2
    /// style: a configuration or data error, never retried).
    public struct KeyError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The statement reading the session's last `limit` items, oldest first.
    public func loadQuery(key: String) -> PostgresQuery {
        guard let table = mapping.table else {
            return """
                SELECT m.message_data AS d, NULL::text AS r, NULL::text AS c FROM (
                  SELECT id, created_at, message_data FROM bridge.agent_messages WHERE session_id = \(key)
                  ORDER BY created_at DESC, id DESC LIMIT \(mapping.limit)) AS m
                ORDER BY m.created_at, m.id
                """
        }
        let order = [mapping.item["created_at"], mapping.item["id"]].compactMap { $0 }
        func text(_ logical: String) -> PostgresQuery {
            mapping.item[logical].map { "\(identifier: $0)::text" } ?? "NULL::text"
        }
        let ordering = order.enumerated().map { i, column -> (inner: PostgresQuery, outer: PostgresQuery) in
            ("\(identifier: column) AS \(alias: "o\(i)")", "m.\(alias: "o\(i)")")
        }
        let desc = PostgresQuery.joined(order.map { "\(identifier: $0) DESC" }, separator: ", ")
        return """
            SELECT m.r, m.c, m.d FROM (
              SELECT \(text("role")) AS r, \(text("content")) AS c, \(text("data")) AS d, \(ordering.map(\.inner))
              FROM \(identifier: table)
              WHERE \(identifier: mapping.sessionColumn) = \(key)\(types.cast(table, mapping.sessionColumn))
              ORDER BY \(desc) LIMIT \(mapping.limit)) AS m
            ORDER BY \(ordering.map(\.outer))
            """
    }

    /// The session's last `limit` items, oldest first, as the model's input items (calls
    /// without their outputs, cut off by the limit, left out). A key that is not a value of the
    /// session column's type is a `KeyError`.
    public func load(on conn: PostgresConnection, key: String) async throws -> [ConversationItem] {
        let rows: PostgresRows
        do {
            rows = try await conn.query(loadQuery(key: key))
        } catch {
            throw keyError(error, key: key)
        }
        return Self.items(rows, roles: mapping.roles)
    }

    /// A data error (22xxx: the key is not of the column's type) as a `KeyError`; any other
    /// error as it is.
    func keyError(_ error: PostgresError, key: String) -> any Error {
        guard error.sqlState?.hasPrefix("22") == true else { return error }
        let column = mapping.table.map { "\($0).\(mapping.sessionColumn)" } ?? "bridge.agent_messages.session_id"
        return KeyError(description: "session key '\(key)' does not fit \(column): \(error.message)")
    }

    // Parsing is kept out of the async function (see `TaskStore.parseRows`).
    static func items(_ rows: PostgresRows, roles: [String: String]) -> [ConversationItem] {
        let items = rows.compactMap { r in
            SessionItems.item(roleValue: r["r"], content: r["c"], data: r["d"], roles: roles)
        }
        return SessionItems.balanced(items)
    }

    /// The statements that append a completed run's new items to session `key` (run inside the
    /// transaction that finishes the task, so only a run whose lease held appends, once).
    /// Rows get created_at = the transaction's time plus their position in microseconds, and
    /// (when mapped) ids `<trace id>-<position>`, so they read back in order.
    public func appendStatements(key: String, items: [ConversationItem], traceId: TraceID) -> [PostgresQuery] {
        guard let table = mapping.table else {
            guard !items.isEmpty else { return [] }
            return [
                """
                INSERT INTO bridge.agent_sessions (session_id) VALUES (\(key))
                ON CONFLICT (session_id) DO UPDATE SET updated_at = now()
                """,
                """
                INSERT INTO bridge.agent_messages (session_id, message_data, created_at)
                SELECT \(key), u.m, now() + (u.o - 1) * interval '1 microsecond'
                FROM unnest(\(PostgresArray.text(items.map(\.json.compact)))::text[]) WITH ORDINALITY AS u(m, o) ORDER BY u.o
                """,
            ]
        }
        let rows = SessionItems.rows(for: items, roles: mapping.roles)
        guard !rows.isEmpty else { return [] }
        var columns: [PostgresQuery] = [.identifier(mapping.sessionColumn)]
        var values: [PostgresQuery] = ["\(key)\(types.cast(table, mapping.sessionColumn))"]
        var arrays: [PostgresQuery] = []
        var names: [String] = []
        func array(_ logical: String, _ elements: [PostgresValue]) {
            guard let column = mapping.item[logical] else { return }
            let name = "a\(names.count)"
            names.append(name)
            columns.append(.identifier(column))
            values.append("u.\(alias: name)")
            arrays.append("\(PostgresArray.literal(elements))\(types.unnestCast(table, column))")
        }
        array("role", rows.map { .text(mapping.roles[$0.role] ?? $0.role) })
        array("content", rows.map { .text($0.content) })
        array("data", rows.map { .text($0.data) })
        array("tools_used", rows.map { $0.toolsUsed.map { .text($0.compact) } ?? .null })
        if let column = mapping.item["id"] {
            let uuid = types.type(table, column) == "uuid"
            array("id", rows.indices.map { .text(Self.itemId(traceId: traceId, position: $0 + 1, uuid: uuid)) })
        }
        if let column = mapping.item["created_at"] {
            columns.append(.identifier(column))
            values.append("now() + (u.o - 1) * interval '1 microsecond'")
        }
        for (column, value) in mapping.values.sorted(by: { $0.key < $1.key }) {
            columns.append(.identifier(column))
            values.append("\(value)\(types.cast(table, column))")
        }
        let aliases = (names + ["o"]).map { "\(alias: $0)" as PostgresQuery }
        return [
            """
            INSERT INTO \(identifier: table) (\(columns))
            SELECT \(values) FROM unnest(\(arrays)) WITH ORDINALITY AS u(\(aliases)) ORDER BY u.o
            """
        ]
    }

    /// A row id for the `position`th row a run appends: `<trace id>-0001`, or for a uuid
    /// column a uuid derived from it (the same on every evaluation).
    static func itemId(traceId: TraceID, position: Int, uuid: Bool) -> String {
        let text =
            traceId.text + "-" + String(repeating: "0", count: max(0, 4 - String(position).count)) + String(position)
        guard uuid else { return text }
        let h = Array(SHA256.hex("bridge-session:" + text).prefix(32))
        return String(h[0..<8]) + "-" + String(h[8..<12]) + "-" + String(h[12..<16]) + "-" + String(h[16..<20]) + "-"
            + String(h[20..<32])
    }

    /// Session statements with sample binds, for the EXPLAIN tests.
    public func hotPathStatements(key: String) -> [(name: String, query: PostgresQuery)] {
        [("session load", loadQuery(key: key))]
    }
}
