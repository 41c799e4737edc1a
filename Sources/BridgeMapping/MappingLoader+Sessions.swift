import BridgeCore
import Yams

extension LoadState {
    /// `sessions: {key, table, session_column, item: {role, content, created_at, id, data,
    /// tools_used}, values, roles: {user, assistant, system, tool}, limit}`.
    static func parseSessions(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> SessionsMapping? {
        guard let m = r.map(node, "sessions", Keys.Sessions.self) else { return nil }
        guard let key = m.template(.key) else { return nil }
        for case .reference(let root, _) in key.parts where root != "task" {
            r.issue(m.node(.key), m.path(.key), "the session key may only reference the task row ({{task.…}})")
        }
        var s = SessionsMapping(key: key, table: m.name(.table))
        s.origin = origin
        m.read(into: &s)
        let appOnly = [Keys.Sessions.sessionColumn, .item, .values, .roles].filter { m.has($0) }
        guard s.table != nil else {
            for k in appOnly {
                r.issue(
                    m.keyNode(k), m.path(k),
                    "'\(k.rawValue)' describes the application's table: without 'table', items go to bridge.agent_messages"
                )
            }
            return s
        }
        s.sessionColumn = m.name(.sessionColumn, required: true) ?? s.sessionColumn
        if let item = m.stringMap(.item, keys: SessionsMapping.itemNames) {
            s.item = item
            for required in ["role", "content"] where item[required] == nil {
                r.issue(m.node(.item), m.path(.item), "missing required key '\(required)'")
            }
            if item["created_at"] == nil && item["id"] == nil {
                r.issue(
                    m.node(.item), m.path(.item),
                    "map created_at or id (or both): the last items are read in that order")
            }
        } else if !m.has(.item) {
            r.issue(m.node, m.path, "missing required key 'item' (at least role and content)")
        }
        s.values = m.stringMap(.values) ?? [:]
        if let roles = m.stringMap(.roles) {
            for k in roles.keys.sorted() where !SessionsMapping.roleNames.contains(k) {
                r.issue(
                    m.node(.roles), m.path(.roles),
                    "unknown role '\(k)' (expected \(SessionsMapping.roleNames.joined(separator: ", ")))")
            }
            s.roles.merge(roles) { _, b in b }
            let written = s.roles.filter { $0.key != "system" }.map(\.value)
            if Set(written).count != written.count {
                r.issue(
                    m.node(.roles), m.path(.roles), "two roles map to the same value: items could not be read back")
            }
        }
        let columns = [s.sessionColumn] + s.item.values + s.values.keys
        if Set(columns).count != columns.count {
            r.issue(
                m.node, m.path, "a column is mapped twice (session_column, item and values must name different columns)"
            )
        }
        return s
    }
}
