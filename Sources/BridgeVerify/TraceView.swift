import BridgeCore
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// One stored trace with its spans, as `bridge trace show` presents it.
@MemberwiseInit
public struct TraceDocument: Sendable, Equatable {
    public var trace: TraceRecord
    public var taskId: TaskKey?
    public var startedAt: Date?
    public var endedAt: Date?
    public var spans: [SpanRecord]
    /// Other traces of the same task (earlier or later attempts), newest first.
    public var otherAttempts: [TraceID] = []

    /// Loads a trace by trace id, or the newest trace of a task by task id.
    public static func load(id: String, on c: PostgresConnection) async throws -> TraceDocument {
        guard try await c.ledgerHas([.traces, .spans]) else {
            throw VerifyInputError(
                "bridge.traces or bridge.spans is missing in \(c.redactedTarget): run bridge migrate first")
        }
        // Raw: the record's column list, a constant in code that its row decoder reads.
        let rows = try await c.query(
            """
            SELECT \(unsafeRaw: TraceRecord.ledgerColumns),
                   coalesce(tr.task_id, tr.metadata->>'task_id') AS task_id, tr.started_at, tr.ended_at
            FROM bridge.traces tr
            WHERE tr.trace_id = \(id) OR coalesce(tr.task_id, tr.metadata->>'task_id') = \(id)
            ORDER BY (tr.trace_id = \(id)) DESC, tr.started_at DESC NULLS LAST
            """)
        guard let row = rows.first else {
            throw VerifyInputError("no trace with id or task id \(id) in bridge.traces")
        }
        let record = try TraceRecord(ledgerRow: row)
        let traceId = record.id
        let taskId = try row.optional(TaskKey.self, "task_id")
        var others: [TraceID] = []
        if let taskId {
            let more = try await c.query(
                """
                SELECT trace_id FROM bridge.traces
                WHERE coalesce(task_id, metadata->>'task_id') = \(taskId) AND trace_id <> \(traceId)
                ORDER BY started_at DESC NULLS LAST
                """)
            others = try more.map { try $0.decode(TraceID.self, "trace_id") }
        }
        // Raw: the record's column list, a constant in code that its row decoder reads.
        let spans = try await c.query(
            """
            SELECT \(unsafeRaw: SpanRecord.ledgerColumns)
            FROM bridge.spans s WHERE s.trace_id = \(traceId) ORDER BY s.started_at, s.ended_at, s.span_id
            """
        ).map(SpanRecord.init(ledgerRow:))
        return TraceDocument(
            trace: record, taskId: taskId, startedAt: try row.optional(Date.self, "started_at"),
            endedAt: try row.optional(Date.self, "ended_at"),
            spans: spans, otherAttempts: others)
    }

    // MARK: Shape

    /// The first instant of the trace (its start, or its earliest span).
    public var origin: Date {
        ([startedAt].compactMap { $0 } + spans.map(\.startedAt)).min() ?? Date(timeIntervalSince1970: 0)
    }

    /// The last instant of the trace.
    public var end: Date {
        ([endedAt].compactMap { $0 } + spans.map(\.endedAt)).max() ?? origin
    }

    /// Spans in tree order (depth first, siblings by start time) with their depth. A span whose
    /// parent is not in the trace is shown as a root.
    public var ordered: [(span: SpanRecord, depth: Int)] {
        let ids = Set(spans.map(\.id))
        var children: [SpanID: [SpanRecord]] = [:]
        var roots: [SpanRecord] = []
        for s in spans {
            if let p = s.parentId, ids.contains(p), p != s.id {
                children[p, default: []].append(s)
            } else {
                roots.append(s)
            }
        }
        func sorted(_ a: [SpanRecord]) -> [SpanRecord] {
            a.sorted { ($0.startedAt, $0.endedAt, $0.id) < ($1.startedAt, $1.endedAt, $1.id) }
        }
        var out: [(SpanRecord, Int)] = []
        var seen = Set<SpanID>()
        func visit(_ s: SpanRecord, _ depth: Int) {
            guard seen.insert(s.id).inserted else { return }
            out.append((s, depth))
            for c in sorted(children[s.id] ?? []) { visit(c, depth + 1) }
        }
        for r in sorted(roots) { visit(r, 0) }
        return out
    }

    /// Agent names in the order their spans start.
    public var agents: [String] {
        var names: [String] = []
        for s in spans.sorted(by: { $0.startedAt < $1.startedAt }) where s.kind == .agent {
            if let n = s.spanData["name"]?.stringValue, !names.contains(n) { names.append(n) }
        }
        return names
    }
}

/// Short descriptions of spans, shared by the text and HTML views.
enum SpanLabel {
    /// Collapses whitespace and cuts to `limit` characters with an ellipsis.
    static func shorten(_ s: String, _ limit: Int = 80) -> String {
        let flat = s.split(whereSeparator: { $0 == "\n" || $0 == "\r" || $0 == "\t" || $0 == " " }).joined(
            separator: " ")
        return flat.count <= limit ? flat : String(flat.prefix(limit - 1)) + "…"
    }

    static func text(_ v: JSONValue?) -> String? {
        guard let v, !v.isNull else { return nil }
        return v.stringValue ?? v.compact
    }

    static func tokens(_ usage: JSONValue?) -> String? {
        guard let u = usage, let i = u["input_tokens"]?.intValue, let o = u["output_tokens"]?.intValue else {
            return nil
        }
        return "\(i) in / \(o) out tokens"
    }

    /// The span's kind as shown in the legend: `task`, `turn`, `agent`, `function`, …
    /// A durable run's `resume` span (the gap between an interrupted stint and its resume).
    static func isResume(_ s: SpanRecord) -> Bool { s.kind == .custom && s.spanData["name"] == "resume" }

    static func kind(_ s: SpanRecord) -> String {
        if s.kind == .custom, let k = s.spanData["data"]?["sdk_span_type"]?.stringValue { return k }
        return s.type.isEmpty ? "span" : s.type
    }

    /// One line without the duration, e.g. `tool store_data({"key":…}) → "ok"`.
    /// A span without the field its line shows gets an empty place (an empty default): the line is for a
    /// person and shows the span as it was stored.
    static func line(_ s: SpanRecord, argLimit: Int = 60) -> String {
        let d = s.spanData
        switch s.kind {
        case .agent:
            var l = "agent \(d["name"]?.stringValue ?? "?")"
            let tools = d["tools"]?.arrayValue?.compactMap(\.stringValue) ?? []
            let handoffs = d["handoffs"]?.arrayValue?.compactMap(\.stringValue) ?? []
            if !tools.isEmpty { l += " · tools: \(tools.joined(separator: ", "))" }
            if !handoffs.isEmpty { l += " · handoffs: \(handoffs.joined(separator: ", "))" }
            return l
        case .generation:
            var l = "generation \(d["model"]?.stringValue ?? "")"
            if let t = tokens(d["usage"]) { l += " · \(t)" }
            return l
        case .response: return "response \(d["response_id"]?.stringValue ?? "")"
        case .function:
            let name = d["name"]?.stringValue ?? "?"
            let args = text(d["input"]).map { shorten($0, argLimit) } ?? "–"
            var l = "tool \(name)(\(args))"
            if let out = text(d["output"]) { l += " → \(shorten(out, argLimit))" }
            return l
        case .handoff:
            return "handoff \(d["from_agent"]?.stringValue ?? "?") → \(d["to_agent"]?.stringValue ?? "?")"
        case .guardrail:
            return
                "guardrail \(d["name"]?.stringValue ?? "?")\(d["triggered"]?.boolValue == true ? " · triggered" : "")"
        case .custom:
            switch d["data"]?["sdk_span_type"]?.stringValue {
            case "task": return "task \(d["data"]?["name"]?.stringValue ?? "")"
            case "turn":
                var l = "turn \(d["data"]?["turn"]?.intValue.map(String.init) ?? "?")"
                if let a = d["data"]?["agent_name"]?.stringValue { l += " · \(a)" }
                if let t = tokens(d["data"]?["usage"]) { l += " · \(t)" }
                return l
            default: break
            }
            if d["name"] == "approval", let a = d["data"] {
                // The pause of a run for a human decision: the tool, the decision, who, how long.
                var l = "approval \(a["tool_name"]?.stringValue ?? "?") · \(a["decision"]?.stringValue ?? "?")"
                if let by = a["decided_by"]?.stringValue { l += " by \(by)" }
                if let w = a["waited_seconds"]?.doubleValue { l += String(format: " · waited %.1f s", w) }
                if let id = a["request_id"]?.stringValue { l += " · request \(id)" }
                return l
            }
            if d["name"] == "resume", let r = d["data"] {
                // A durable run taken over after an interruption: who had it, who has it, the gap.
                var l = "resume · \(r["previous_worker"]?.stringValue ?? "?") → \(r["worker"]?.stringValue ?? "?")"
                if let s = r["lost_seconds"]?.doubleValue { l += String(format: " · lost %.1f s", s) }
                if let from = r["resumed_from"]?.stringValue { l += " · from \(from)" }
                return l
            }
            return "custom \(d["name"]?.stringValue ?? "")"
        case .mcpTools, .transcription, .speech, .speechGroup, nil:
            return "\(s.type) \(d["name"]?.stringValue ?? "")"
        }
    }

    static func error(_ s: SpanRecord) -> String? {
        guard let e = s.error, !e.isNull else { return nil }
        var m = e["message"]?.stringValue ?? e.compact
        if let data = e["data"], !data.isNull { m += " " + shorten(data.compact, 100) }
        return m
    }

    static func duration(_ seconds: Double) -> String {
        let ms = seconds * 1000
        if ms >= 10_000 { return String(format: "%.1f s", seconds) }
        if ms >= 1000 { return String(format: "%.2f s", seconds) }
        if ms >= 10 { return String(format: "%.1f ms", ms) }
        return String(format: "%.2f ms", ms)
    }
}

/// The text view: a header, then the span tree with durations and start offsets.
public enum TraceText {
    public static func render(_ doc: TraceDocument) -> String {
        let t = doc.trace
        var head = "trace \(t.id) · \(t.workflowName)"
        if let task = doc.taskId { head += " · task \(task)" }
        if let g = t.groupId { head += " · workspace \(g)" }
        if let a = t.metadata["attempt"] { head += " · attempt \(a)" }
        let fn = doc.spans.filter { $0.kind == .function }.count
        let handoffs = doc.spans.filter { $0.kind == .handoff }.count
        let errors = doc.spans.filter { SpanLabel.error($0) != nil }.count
        var out = [head]
        out.append(
            "started \(PostgresTimestamp.format(doc.origin)) · \(SpanLabel.duration(doc.end.timeIntervalSince(doc.origin))) · \(doc.spans.count) spans · \(fn) tool call(s) · \(handoffs) handoff(s) · \(errors) error(s)"
        )
        let agents = doc.agents
        if !agents.isEmpty { out.append("agents: \(agents.joined(separator: " → "))") }
        if doc.endedAt == nil { out.append("(the trace has not ended: still running, or the run stopped)") }
        out.append("")

        let rows = doc.ordered
        // Tree prefixes: for each depth, whether an ancestor at that depth has later siblings.
        var lines: [(String, String, String)] = []
        for (i, entry) in rows.enumerated() {
            var prefix = ""
            if entry.depth > 0 {
                for d in 1..<entry.depth {
                    prefix += hasLaterSibling(rows, from: i, depth: d) ? "│  " : "   "
                }
                prefix += hasLaterSibling(rows, from: i, depth: entry.depth) ? "├─ " : "└─ "
            }
            let s = entry.span
            let label = prefix + SpanLabel.line(s, argLimit: 36)
            let dur = SpanLabel.duration(s.endedAt.timeIntervalSince(s.startedAt))
            let offset = "+" + SpanLabel.duration(s.startedAt.timeIntervalSince(doc.origin))
            lines.append((label, dur, offset))
            if let e = SpanLabel.error(s) {
                var cont = ""
                for d in 1...(entry.depth + 1) where d <= entry.depth {
                    cont += hasLaterSibling(rows, from: i, depth: d) ? "│  " : "   "
                }
                lines.append((cont + "   ✗ error: " + SpanLabel.shorten(e, 120), "", ""))
            }
        }
        let width = min(96, lines.map { $0.0.count }.max() ?? 0)
        for (label, dur, offset) in lines {
            if dur.isEmpty {
                out.append(label)
                continue
            }
            let l = label.count > width ? String(label.prefix(width - 1)) + "…" : label
            let pad = String(repeating: " ", count: max(1, width - l.count + 2))
            out.append(l + pad + String(repeating: " ", count: max(0, 9 - dur.count)) + dur + "  " + offset)
        }
        if !doc.otherAttempts.isEmpty {
            out.append("")
            out.append("other traces of this task: \(doc.otherAttempts.map(\.text).joined(separator: ", "))")
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// Whether the row at `from` (or its ancestor at `depth`) has a later sibling at `depth`.
    static func hasLaterSibling(_ rows: [(span: SpanRecord, depth: Int)], from: Int, depth: Int) -> Bool {
        var j = from + 1
        while j < rows.count {
            if rows[j].depth < depth { return false }
            if rows[j].depth == depth { return true }
            j += 1
        }
        return false
    }
}
