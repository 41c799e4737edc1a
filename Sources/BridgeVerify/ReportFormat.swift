import BridgeCore
import FoundationEssentials

/// `--format`: how a `VerifyReport` is written.
public enum ReportFormat: String, Sendable, CaseIterable {
    case text, json, junit, markdown

    public func render(_ report: VerifyReport) -> String {
        switch self {
        case .text: ReportRenderer.text(report)
        case .json: ReportRenderer.json(report)
        case .junit: ReportRenderer.junit(report)
        case .markdown: ReportRenderer.markdown(report)
        }
    }
}

enum ReportRenderer {
    static func mark(_ s: CheckStatus) -> String {
        switch s {
        case .pass: "✓"
        case .fail: "✗"
        case .skip: "-"
        }
    }

    static func ms(_ v: Double) -> String {
        if v >= 1000 { return String(format: "%.2f s", v / 1000) }
        if v >= 10 { return String(format: "%.0f ms", v) }
        return String(format: "%.2f ms", v)
    }

    static func lag(_ v: Double?) -> String { v.map { String(format: "%.2f s", $0) } ?? "-" }

    /// The per-tool timing table as aligned text rows.
    static func timingTable(_ timings: [ToolTiming], indent: String) -> [String] {
        guard !timings.isEmpty else { return [] }
        let rows =
            [["tool", "count", "p50", "p95", "max"]]
            + timings.map { [$0.tool, String($0.count), ms($0.p50), ms($0.p95), ms($0.max)] }
        var widths = [Int](repeating: 0, count: 5)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        return rows.map { r in
            indent
                + r.enumerated().map { i, c in
                    i == 0
                        ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[i] - c.count) + c
                }.joined(separator: "  ")
        }
    }

    static func exporterLine(_ e: ExporterDelivery) -> String {
        "\(e.exporter): \(e.delivered)/\(e.spans) delivered, \(e.rejected) rejected, \(e.missing) missing, \(e.inFlight) in flight; lag p50 \(lag(e.p50LagSeconds)), p95 \(lag(e.p95LagSeconds)), max \(lag(e.maxLagSeconds))"
    }

    // MARK: text

    static func text(_ r: VerifyReport) -> String {
        var out = ["bridge verify: \(r.scope.description)"]
        for c in r.checks {
            var head = "\(mark(c.status)) \(c.title) [\(c.id)]"
            switch c.status {
            // Empty default: a skip without a reason.
            case .skip: head += ": skipped, \(c.reason ?? "")"
            case .pass: head += ": \(c.checked) checked"
            case .fail: head += ": \(c.failed) of \(c.checked) failed"
            }
            out.append(head)
            if c.status != .skip, let reason = c.reason { out.append("    \(reason)") }
            for e in c.exporters { out.append("    " + exporterLine(e)) }
            for e in c.examples { out.append("    - " + e.line) }
            if c.failed > c.examples.count { out.append("    … and \(c.failed - c.examples.count) more") }
            out += timingTable(c.toolTimings, indent: "    ")
        }
        let failed = r.checks.filter { $0.status == .fail }.count
        let skipped = r.checks.filter { $0.status == .skip }.count
        out.append(
            r.ok
                ? "ok: \(r.checks.count - skipped) passed, \(skipped) skipped (\(ms(r.elapsedMs)))"
                : "FAILED: \(failed) check(s) failed (\(ms(r.elapsedMs)))")
        return out.joined(separator: "\n") + "\n"
    }

    // MARK: json

    static func json(_ r: VerifyReport) -> String {
        let o: JSONValue = [
            "ok": .bool(r.ok), "scope": r.scope.json, "elapsed_ms": .number(ToolTiming.round(r.elapsedMs)),
            "checks": .array(r.checks.map(\.json)),
        ]
        return o.compact + "\n"
    }

    // MARK: junit

    static func xml(_ s: String) -> String {
        s.escaped { u in
            switch u {
            case "&": "&amp;"
            case "<": "&lt;"
            case ">": "&gt;"
            case "\"": "&quot;"
            case "'": "&apos;"
            case "\n", "\t", "\r": nil
            case let c where c.value < 0x20: " "
            default: nil
            }
        }
    }

    static func junit(_ r: VerifyReport) -> String {
        let failures = r.checks.filter { $0.status == .fail }.count
        let skipped = r.checks.filter { $0.status == .skip }.count
        let secs = String(format: "%.3f", r.elapsedMs / 1000)
        var out = [
            #"<?xml version="1.0" encoding="UTF-8"?>"#,
            #"<testsuites name="bridge verify" tests="\#(r.checks.count)" failures="\#(failures)" skipped="\#(skipped)" time="\#(secs)">"#,
            #"  <testsuite name="bridge verify" tests="\#(r.checks.count)" failures="\#(failures)" errors="0" skipped="\#(skipped)" time="\#(secs)">"#,
        ]
        out.append(#"    <properties><property name="scope" value="\#(xml(r.scope.description))"/></properties>"#)
        for c in r.checks {
            let t = String(format: "%.3f", c.elapsedMs / 1000)
            out.append(#"    <testcase classname="bridge.verify" name="\#(xml(c.id)): \#(xml(c.title))" time="\#(t)">"#)
            var details: [String] = []
            if let reason = c.reason { details.append(reason) }
            details += c.exporters.map(exporterLine)
            details += c.examples.map(\.line)
            if c.failed > c.examples.count { details.append("… and \(c.failed - c.examples.count) more") }
            details += timingTable(c.toolTimings, indent: "")
            switch c.status {
            case .fail:
                out.append(
                    #"      <failure message="\#(c.failed) of \#(c.checked) failed" type="\#(xml(c.id))">\#(xml(details.joined(separator: "\n")))</failure>"#
                )
            case .skip:
                // Empty default: a skip without a reason.
                out.append(#"      <skipped message="\#(xml(c.reason ?? ""))"/>"#)
            case .pass:
                out.append(
                    #"      <system-out>\#(xml((["\(c.checked) checked"] + details).joined(separator: "\n")))</system-out>"#
                )
            }
            out.append("    </testcase>")
        }
        out += ["  </testsuite>", "</testsuites>"]
        return out.joined(separator: "\n") + "\n"
    }

    // MARK: markdown

    static func md(_ s: String) -> String {
        s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    static func markdown(_ r: VerifyReport) -> String {
        var out = [
            "## bridge verify: \(r.ok ? "✅ passed" : "❌ failed")", "",
            "Scope: \(md(r.scope.description)) · \(ms(r.elapsedMs))", "",
            "| | check | id | checked | failed | note |", "|---|---|---|---:|---:|---|",
        ]
        for c in r.checks {
            let icon =
                switch c.status {
                case .pass: "✅"
                case .fail: "❌"
                case .skip: "⏭️"
                }
            // Empty default: a check without a reason.
            out.append("| \(icon) | \(md(c.title)) | `\(c.id)` | \(c.checked) | \(c.failed) | \(md(c.reason ?? "")) |")
        }
        for c in r.checks where !c.examples.isEmpty {
            out += ["", "### ❌ \(md(c.title))", ""]
            out += c.examples.map { "- \(md($0.line))" }
            if c.failed > c.examples.count { out.append("- … and \(c.failed - c.examples.count) more") }
        }
        if let exp = r.check(.exportDelivered), !exp.exporters.isEmpty {
            out += [
                "", "### Export delivery", "",
                "| exporter | spans | delivered | rejected | missing | in flight | p50 lag | p95 lag | max lag |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
            ]
            out += exp.exporters.map {
                "| \(md($0.exporter)) | \($0.spans) | \($0.delivered) | \($0.rejected) | \($0.missing) | \($0.inFlight) | \(lag($0.p50LagSeconds)) | \(lag($0.p95LagSeconds)) | \(lag($0.maxLagSeconds)) |"
            }
        }
        if let timing = r.check(.toolTiming), !timing.toolTimings.isEmpty {
            out += [
                "", "### Tool execution time", "", "| tool | count | p50 | p95 | max |", "|---|---:|---:|---:|---:|",
            ]
            out += timing.toolTimings.map {
                "| `\(md($0.tool))` | \($0.count) | \(ms($0.p50)) | \(ms($0.p95)) | \(ms($0.max)) |"
            }
        }
        return out.joined(separator: "\n") + "\n"
    }
}
