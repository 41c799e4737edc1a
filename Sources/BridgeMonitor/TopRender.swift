import BridgeCore
import BridgeTraceModel
import BridgeTracing
import FoundationEssentials

extension TopSnapshot {
    /// `--json`: the snapshot as one JSON object.
    public var json: JSONValue {
        func num(_ d: Double?) -> JSONValue { d.map { .number(($0 * 1000).rounded() / 1000) } ?? .null }
        func int(_ i: Int) -> JSONValue { .number(Double(i)) }
        var taskCounts: [String: JSONValue] = [
            "pending": int(tasks.pending), "waiting_retry": int(tasks.waitingRetry), "running": int(tasks.running),
            "expired_leases": int(tasks.expiredLeases), "completed_in_window": int(tasks.completedInWindow),
            "failed_in_window": int(tasks.failedInWindow), "count_cap": int(tasks.cap),
        ]
        if let w = tasks.waitingApproval { taskCounts["waiting_approval"] = int(w) }
        return [
            "at": .string(SDKTime.iso(at)),
            "window_seconds": num(window),
            "tasks": .object(taskCounts),
            "tools": .array(
                tools.map {
                    [
                        "tool": .string($0.name), "calls": int($0.calls), "errors": int($0.errors),
                        "p50_seconds": num($0.p50), "p95_seconds": num($0.p95),
                    ]
                }),
            "models": .array(
                models.map {
                    [
                        "model": .string($0.model), "calls": int($0.calls), "errors": int($0.errors),
                        "input_tokens": int($0.inputTokens), "output_tokens": int($0.outputTokens),
                        "p50_seconds": num($0.p50),
                        "cost_usd": $0.costUSD.map(JSONValue.number) ?? .null,
                    ]
                }),
            "exporters": .array(
                exporters.map {
                    [
                        "exporter": .string($0.name),
                        "last_seen_at": $0.lastSeen.map { .string(SDKTime.iso($0)) } ?? .null,
                        "undelivered_spans": int($0.undelivered),
                        "oldest_undelivered_seconds": num($0.oldestUndeliveredAge),
                        "p95_lag_seconds": num($0.p95Lag), "lag_window_seconds": num($0.lagWindow),
                        "delivered_spans": int($0.delivered), "rejected_spans": int($0.rejected),
                        "all_rejected": .bool($0.allRejected),
                    ]
                }),
            "workers": .array(
                workers.map { ["worker": .string($0.id), "leases": int($0.leases), "alive": .bool($0.alive)] }),
        ]
    }

    /// The terminal view: plain text, fixed-width columns, no colour needed.
    public func render(width: Int = 100) -> String {
        var out: [String] = []
        let per = window == 60 ? "/min" : "/\(Int(window))s"
        func count(_ n: Int) -> String { n >= tasks.cap ? "\(tasks.cap)+" : "\(n)" }
        func secs(_ d: Double?) -> String {
            guard let d else { return "-" }
            if d < 1 { return String(format: "%.0fms", d * 1000) }
            if d < 120 { return String(format: "%.1fs", d) }
            return String(format: "%.0fm", d / 60)
        }
        func pct(_ part: Int, _ whole: Int) -> String {
            whole == 0 ? "-" : String(format: "%.1f%%", 100 * Double(part) / Double(whole))
        }
        func row(_ cells: [String], _ widths: [Int]) -> String {
            zip(cells, widths).enumerated().map { i, cw in
                let (raw, w) = cw
                let c = TextSafety.printable(raw)  // names come from the database: no raw control characters
                let cut = c.count > w ? String(c.prefix(max(1, w - 1))) + "…" : c
                let pad = String(repeating: " ", count: max(0, w - cut.count))
                return i == 0 ? cut + pad : pad + cut
            }.joined(separator: "  ")
        }
        let alive = workers.filter(\.alive).count
        out.append(
            "bridge top — \(SDKTime.iso(at).prefix(19).replacingOccurrences(of: "T", with: " ")) UTC — workers alive \(alive)"
        )
        out.append("")
        out.append(
            "TASKS    pending \(count(tasks.pending))   waiting retry \(count(tasks.waitingRetry))"
                + (tasks.waitingApproval.map { "   waiting approval \(count($0))" } ?? "")
                + "   running \(count(tasks.running))"
                + (tasks.expiredLeases > 0 ? "   expired leases \(count(tasks.expiredLeases))" : ""))
        out.append(
            "         last \(window == 60 ? "minute" : "\(Int(window)) s"): completed \(tasks.completedInWindow)"
                + "   failed \(tasks.failedInWindow)")
        out.append("")
        let tw = [28, 9, 9, 9, 9]
        out.append(row(["TOOL", "calls\(per)", "errors", "p50", "p95"], tw))
        if tools.isEmpty { out.append("  (no tool calls in the last \(Int(window)) s)") }
        for t in tools {
            out.append(row([t.name, "\(t.calls)", pct(t.errors, t.calls), secs(t.p50), secs(t.p95)], tw))
        }
        out.append("")
        let mw = [28, 9, 9, 12, 12, 9, 10]
        out.append(row(["MODEL", "calls\(per)", "errors", "in tok\(per)", "out tok\(per)", "p50", "USD\(per)"], mw))
        if models.isEmpty { out.append("  (no model calls in the last \(Int(window)) s)") }
        for m in models {
            let usd = m.costUSD.map { String(format: "%.4f", $0) } ?? "-"
            out.append(
                row(
                    [
                        m.model, "\(m.calls)", pct(m.errors, m.calls), "\(m.inputTokens)", "\(m.outputTokens)",
                        secs(m.p50), usd,
                    ], mw))
        }
        out.append("")
        let ew = [28, 12, 12, 9, 10, 9]
        out.append(row(["EXPORTER", "undelivered", "oldest", "p95 lag", "last seen", "rejected"], ew))
        if exporters.isEmpty { out.append("  (no exporter registered)") }
        for e in exporters {
            let oldest =
                e.oldestUndeliveredAge.map { $0 >= e.lagWindow - 1 ? "≥" + secs(e.lagWindow) : secs($0) } ?? "-"
            let seen = e.lastSeen.map { secs(max(0, at.timeIntervalSince($0))) + " ago" } ?? "-"
            out.append(row([e.name, "\(e.undelivered)", oldest, secs(e.p95Lag), seen, "\(e.rejected)"], ew))
        }
        for e in exporters where e.allRejected {
            out.append(
                "  !! \(e.name): ALL \(e.rejected) spans answered in the last \(secs(window)) were REJECTED; nothing arrives (bridge verify shows why)"
            )
        }
        out.append("")
        let ww = [44, 8, 6]
        out.append(row(["WORKER (from leases)", "leases", "alive"], ww))
        if workers.isEmpty { out.append("  (no worker holds a lease)") }
        for w in workers { out.append(row([w.id, "\(w.leases)", w.alive ? "yes" : "EXPIRED"], ww)) }
        return out.map { $0.count > width ? String($0.prefix(width)) : $0 }.joined(separator: "\n") + "\n"
    }
}
