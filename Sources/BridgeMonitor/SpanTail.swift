import BridgeCore
import BridgePostgres
import BridgeTraceModel
import BridgeTracing
import FoundationEssentials

/// One span as `bridge trace tail` prints it: the SDK record, when it landed, and the agent
/// it belongs to (its own name, its turn's, or its parent agent's).
public struct TailSpan: Sendable {
    public var record: SpanRecord
    public var agent: String?
    /// `created_at` as PostgreSQL printed it (the cursor keeps the exact text).
    public var createdAt: String
    /// A model call still running (from its `SpanStart` notice): printed as `running`; its
    /// span follows when it ends.
    public var inProgress = false
}

/// Follows `bridge.spans` as spans land, at a cost that does not depend on the ledger's size.
///
/// A keyset cursor on `(created_at, span_id)` (index `idx_spans_created_at`, migration 0030)
/// reads only what is newer than the last span printed. Since `created_at` is the inserting
/// transaction's start time and transactions commit out of order, a span can become visible
/// after newer ones were read: every poll therefore also re-reads from the previous poll's
/// safe horizon (the start of the oldest transaction then open in this database, at least 2 s
/// and at most `maxLag` seconds back) up to the cursor, and skips spans already printed. A span
/// committed by a transaction that stayed open longer than `maxLag` can be missed; bridge's own
/// writers commit each span at once (and their sessions end idle transactions after 60 s).
public struct SpanTail: Sendable {
    public struct Filter: Sendable {
        public var taskId: TaskKey?
        public var workspace: String?
        public init(taskId: TaskKey? = nil, workspace: String? = nil) {

            self.taskId = taskId
            self.workspace = workspace
        }
    }

    public let filter: Filter
    public var batch = 1000
    public var maxLag = 60.0
    /// The cursor: the last span returned, by (created_at, span_id).
    private(set) var cursor: (createdAt: String, spanId: SpanID)?
    /// The horizon found by the previous poll: spans older than it were all visible then.
    private(set) var horizon: String?
    /// Ids returned whose created_at may still fall in a re-read window.
    private var seen: [SpanID: Date] = [:]

    public init(filter: Filter) { self.filter = filter }

    static let columns: PostgresQuery = """
        s.span_id, s.trace_id, s.parent_id, s.started_at, s.ended_at, s.span_data::text AS span_data,
        s.error::text AS error, s.created_at::text AS created,
        CASE s.span_data->>'type'
            WHEN \(SpanKind.agent.rawValue) THEN s.span_data->>'name'
            WHEN \(SpanKind.handoff.rawValue) THEN s.span_data->>'from_agent'
            WHEN \(SpanKind.custom.rawValue) THEN s.span_data->'data'->>'agent_name'
            ELSE coalesce(p.span_data->'data'->>'agent_name',
                          CASE WHEN p.span_data->>'type' = \(SpanKind.agent.rawValue) THEN p.span_data->>'name' END)
        END AS agent
        """

    /// The filter as SQL on `s`, index-served: the task's traces through
    /// `bridge.traces (task_id)`, the workspace by each span's trace (primary key).
    var filterSQL: PostgresQuery {
        var sql: PostgresQuery = ""
        if let task = filter.taskId {
            sql += " AND s.trace_id IN (SELECT t.trace_id FROM bridge.traces t WHERE t.task_id = \(task))"
        }
        if let ws = filter.workspace {
            sql += " AND EXISTS (SELECT 1 FROM bridge.traces t WHERE t.trace_id = s.trace_id AND t.group_id = \(ws))"
        }
        return sql
    }

    /// The newest `limit` spans (at most a day old; with `--task`, the task's), oldest first,
    /// and the cursor set after them.
    public mutating func start(on c: PostgresConnection, last limit: Int) async throws -> [TailSpan] {
        let h = try await Self.horizon(on: c, maxLag: maxLag)
        horizon = h.horizon
        cursor = (h.now, "")
        guard limit > 0 else { return [] }
        let rows = try await c.query(recentQuery(before: h.now, limit: limit))
        let spans = try rows.map(Self.tailSpan).reversed()
        // Spans at the cursor's exact time and later are read again by the first poll.
        for s in spans { remember(s) }
        if let last = spans.last { cursor = (last.createdAt, last.record.id) }
        return Array(spans)
    }

    /// The spans that landed since the last call, oldest first (late commits at the end).
    public mutating func poll(on c: PostgresConnection) async throws -> [TailSpan] {
        let h = try await Self.horizon(on: c, maxLag: maxLag)
        var out: [TailSpan] = []
        let from = cursor ?? ("-infinity", "")
        // Late commits between the previous horizon and the cursor.
        if let low = horizon {
            let rows = try await c.query(lateQuery(from: low, upTo: from))
            for s in try rows.map(Self.tailSpan) where seen[s.record.id] == nil {
                out.append(s)
                remember(s)
            }
        }
        // New spans after the cursor.
        let rows = try await c.query(forwardQuery(after: from))
        for s in try rows.map(Self.tailSpan) {
            cursor = (s.createdAt, s.record.id)
            if seen[s.record.id] == nil { out.append(s) }
            remember(s)
        }
        horizon = h.horizon
        if let cut = PostgresTimestamp.parse(h.horizon)?.addingTimeInterval(-1) {
            seen = seen.filter { $0.value >= cut }
        }
        return out
    }

    /// The newest `limit` spans up to `before`, newest first (at most a day back).
    func recentQuery(before: String, limit: Int) -> PostgresQuery {
        """
        SELECT \(Self.columns)
        FROM bridge.spans s LEFT JOIN bridge.spans p ON p.span_id = s.parent_id
        WHERE s.created_at >= now() - interval '1 day' AND s.created_at <= \(before)::timestamptz\(filterSQL)
        ORDER BY s.created_at DESC, s.span_id DESC LIMIT \(limit)
        """
    }

    /// Spans from the horizon `low` up to the cursor (late commits among them).
    func lateQuery(from low: String, upTo cursor: (createdAt: String, spanId: SpanID)) -> PostgresQuery {
        """
        SELECT \(Self.columns)
        FROM bridge.spans s LEFT JOIN bridge.spans p ON p.span_id = s.parent_id
        WHERE s.created_at >= \(low)::timestamptz AND s.created_at <= \(cursor.createdAt)::timestamptz
          AND (s.created_at, s.span_id) <= (\(cursor.createdAt)::timestamptz, \(cursor.spanId))\(filterSQL)
        ORDER BY s.created_at, s.span_id
        """
    }

    /// Up to `batch` spans after the cursor.
    func forwardQuery(after cursor: (createdAt: String, spanId: SpanID)) -> PostgresQuery {
        """
        SELECT \(Self.columns)
        FROM bridge.spans s LEFT JOIN bridge.spans p ON p.span_id = s.parent_id
        WHERE s.created_at >= \(cursor.createdAt)::timestamptz
          AND (s.created_at, s.span_id) > (\(cursor.createdAt)::timestamptz, \(cursor.spanId))\(filterSQL)
        ORDER BY s.created_at, s.span_id LIMIT \(batch)
        """
    }

    /// A model call that started (a `SpanStart` notice) as a line to print while it runs, or nil
    /// when the filter excludes it.
    public func inProgress(_ start: SpanStart) -> TailSpan? {
        if let task = filter.taskId, start.taskId != task { return nil }
        if let ws = filter.workspace, start.groupId != ws { return nil }
        let record = SpanRecord(
            id: start.spanId, traceId: start.traceId, parentId: start.parentId, startedAt: start.startedAt,
            endedAt: start.startedAt, spanData: ["type": .string(start.type), "model": .string(start.model)],
            error: nil)
        return TailSpan(record: record, agent: start.agent, createdAt: "", inProgress: true)
    }

    mutating func remember(_ s: TailSpan) {
        seen[s.record.id] = PostgresTimestamp.parse(s.createdAt) ?? Date()
    }

    /// The safe horizon: no span older than it can still become visible (the start of the
    /// oldest open transaction of a client in this database, at least 2 s and at most
    /// `maxLag` seconds ago), and the database's clock.
    public static func horizon(on c: PostgresConnection, maxLag: Double) async throws -> (horizon: String, now: String)
    {
        let row = try await c.query(horizonSQL(maxLag: maxLag)).first
        return (row?["horizon"] ?? "-infinity", row?["now"] ?? "-infinity")
    }

    static func horizonSQL(maxLag: Double) -> PostgresQuery {
        """
        SELECT greatest(least(coalesce(min(a.xact_start), 'infinity'), clock_timestamp() - interval '2 seconds'),
                        clock_timestamp() - \(maxLag)::double precision * interval '1 second')::text AS horizon,
               clock_timestamp()::text AS now
        FROM pg_stat_activity a
        WHERE a.datname = current_database() AND a.backend_type = 'client backend'
          AND a.xact_start IS NOT NULL AND a.pid <> pg_backend_pid()
        """
    }

    static func tailSpan(_ row: PostgresRow) throws -> TailSpan {
        TailSpan(
            record: try Ledger.span(row), agent: try row.optional(String.self, "agent"),
            createdAt: try row.decode(String.self, "created"))
    }
}

extension TailSpan {
    /// One line: time, trace, agent, span type, name, short input → output, duration, error.
    /// A span without the name its type shows gets an empty column (an empty default): the line is for a
    /// person and the span is shown as it was stored.
    public var line: String {
        let r = record
        let d = r.spanData
        let kind = r.kind == .custom ? (d["name"]?.stringValue ?? "custom") : r.type
        let name: String =
            switch r.kind {
            case _ where inProgress: d["model"]?.stringValue ?? ""
            case .function: d["name"]?.stringValue ?? ""
            case .generation: d["model"]?.stringValue ?? ""
            case .handoff: "→ " + (d["to_agent"]?.stringValue ?? "?")
            case .agent: ""
            case .response, .guardrail, .custom, .mcpTools, .transcription, .speech, .speechGroup, nil:
                d["name"]?.stringValue ?? ""
            }
        var parts = [
            String(SDKTime.iso(r.startedAt).dropFirst(11).prefix(12)),
            r.traceId.text,
            Self.pad(Self.short(agent ?? "-", 20), 20),
            Self.pad(kind, 10),
            Self.pad(Self.short(name, 28), 28),
        ]
        if r.kind == .function {
            parts.append(Self.short(Self.text(d["input"]), 40) + " → " + Self.short(Self.text(d["output"]), 40))
        }
        parts.append(inProgress ? "running…" : Self.duration(r.endedAt.timeIntervalSince(r.startedAt)))
        if let e = r.error, !e.isNull {
            parts.append("ERROR " + Self.short(e["message"]?.stringValue ?? e.compact, 80))
        }
        return TextSafety.printable(parts.joined(separator: "  "))  // names and outputs come from outside
    }

    static func text(_ v: JSONValue?) -> String {
        guard let v, !v.isNull else { return "-" }
        return v.stringValue ?? v.compact
    }

    static func short(_ s: String, _ n: Int) -> String {
        let flat = s.replacingOccurrences(of: "\n", with: "⏎").replacingOccurrences(of: "\r", with: "")
        return flat.count > n ? String(flat.prefix(n - 1)) + "…" : flat
    }

    static func pad(_ s: String, _ n: Int) -> String {
        s.count >= n ? s : s + String(repeating: " ", count: n - s.count)
    }

    static func duration(_ d: Double) -> String {
        d < 1 ? String(format: "%5.0fms", max(0, d) * 1000) : String(format: "%6.2fs", d)
    }
}
