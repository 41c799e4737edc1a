import BridgeCore
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

@testable import BridgeVerify

#if canImport(FoundationXML)
    import FoundationXML
#endif

@Suite struct VerifySinceTests {
    @Test func durationsAndTimestamps() throws {
        #expect(Since.parse("24h") == .duration(seconds: 86_400, text: "24h"))
        #expect(Since.parse("30m") == .duration(seconds: 1_800, text: "30m"))
        #expect(Since.parse("7d") == .duration(seconds: 604_800, text: "7d"))
        #expect(Since.parse("90s") == .duration(seconds: 90, text: "90s"))
        guard case .timestamp(let d, _) = Since.parse("2026-11-26T09:00:00Z") else {
            Issue.record("timestamp")
            return
        }
        #expect(d.timeIntervalSince1970 == 1_795_683_600)
        guard case .timestamp(let day, _) = Since.parse("2026-11-26") else {
            Issue.record("date")
            return
        }
        #expect(day.timeIntervalSince1970 == 1_795_651_200)
    }

    @Test(arguments: ["yesterday", "", "h", "-5m", "24x", "2026-13"])
    func sinceRefusesWhatIsNeitherADurationNorADate(_ bad: String) {
        #expect(Since.parse(bad) == nil)
    }

    /// `--since`'s durations: a unit is required, `w` is one, zero is allowed, spaces around are
    /// dropped from the text, and the bound is 100 years, inclusive.
    @Test(arguments: [
        ("2w", 1_209_600.0, "2w"), ("0s", 0, "0s"), ("1.5h", 5_400, "1.5h"), (" 24h\t", 86_400, "24h"),
        ("1e3s", 1_000, "1e3s"), ("36525d", 3_155_760_000, "36525d"), ("3155760000s", 3_155_760_000, "3155760000s"),
    ])
    func sinceDurationEdges(text: String, seconds: Double, shown: String) {
        #expect(Since.parse(text) == .duration(seconds: seconds, text: shown))
    }

    /// What `--since` refuses although another duration parser takes it: a bare number, `ms`,
    /// `min`, an upper-case unit, past 100 years (also when long enough to be taken for a
    /// timestamp), not finite, hex.
    @Test(arguments: [
        "5", "500ms", "2min", "5S", "5 m", "36526d", "3155760001s", "9999999999999999999s", "infd", "nans", "1e400s",
        "0x1p4m",
    ])
    func sinceRefusesTheseDurations(_ bad: String) {
        #expect(Since.parse(bad) == nil)
    }
}

@Suite struct SpanFileTests {
    @Test func sdkJSONL() throws {
        let text = """
            {"object":"trace","id":"trace_0123456789abcdef0123456789abcdef","workflow_name":"w","group_id":null,"metadata":{}}
            {"object":"trace.span","id":"span_aaaaaaaaaaaaaaaabbbbbbbb","trace_id":"trace_0123456789abcdef0123456789abcdef","parent_id":null}

            {"data":[{"object":"trace.span","id":"span_ccccccccccccccccdddddddd","trace_id":"trace_ffffffffffffffffffffffffffffffff"}]}
            """
        let f = try SpanFile.parse(Data(text.utf8))
        #expect(f.format == .sdk)
        #expect(f.traceIds == ["trace_0123456789abcdef0123456789abcdef", "trace_ffffffffffffffffffffffffffffffff"])
        #expect(f.spans.map(\.spanKey) == ["aaaaaaaaaaaaaaaa", "cccccccccccccccc"])
    }

    @Test func otlpJSON() throws {
        let text = """
            {"resourceSpans":[{"resource":{},"scopeSpans":[{"scope":{"name":"bridge"},"spans":[
              {"traceId":"0123456789ABCDEF0123456789ABCDEF","spanId":"aaaaaaaaaaaaaaaa","name":"execute_tool x"}]}]}]}
            """
        let f = try SpanFile.parse(Data(text.utf8))
        #expect(f.format == .otlp)
        #expect(f.traceIds == ["trace_0123456789abcdef0123456789abcdef"])
        #expect(f.spans.first?.spanKey == "aaaaaaaaaaaaaaaa")
    }

    @Test func errorsNameTheLine() {
        #expect(throws: VerifyInputError.self) { try SpanFile.parse(Data("{\"object\":\"trace\"}\nnot json\n".utf8)) }
        do {
            _ = try SpanFile.parse(Data("{\"object\":\"trace\",\"id\":\"t\"}\n{\"x\":1}\n".utf8))
            Issue.record("expected an error")
        } catch {
            #expect(error.description.contains("line 2"))
        }
        #expect(throws: VerifyInputError.self) {
            try SpanFile.parse(
                Data(#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"xyz","spanId":"1"}]}]}]}"#.utf8))
        }
    }
}

@Suite struct VerifyReportFormatTests {
    static let report = VerifyReport(
        scope: VerifyScope(since: .duration(seconds: 86_400, text: "24h")),
        checks: [
            CheckResult(
                id: "tools_traced", title: Check.toolsTraced.title, status: .fail, checked: 10, failed: 2,
                examples: [CheckExample(taskId: "t<1>", traceId: "trace_a", message: "tool \"x\" & <y> missing")]),
            .skipped(.handoffsTraced, "no agent switches"),
            CheckResult(id: "tool_io_captured", title: Check.toolIOCaptured.title, status: .pass, checked: 3),
            CheckResult(id: "trace_ids_correlate", title: Check.traceIdsCorrelate.title, status: .pass, checked: 4),
            .skipped(.exportDelivered, "no exporter is configured"),
            CheckResult(
                id: "tool_timing", title: Check.toolTiming.title, status: .pass, checked: 3,
                toolTimings: [ToolTiming(tool: "store_data", count: 3, p50: 1.5, p95: 2.25, max: 3)]),
        ], elapsedMs: 12)

    @Test func textListsChecksCountsAndTiming() {
        let t = ReportFormat.text.render(Self.report)
        #expect(t.contains("✗ Tools appear in traces [tools_traced]: 2 of 10 failed"))
        #expect(t.contains("- Handoffs show in trace timeline [handoffs_traced]: skipped, no agent switches"))
        #expect(t.contains("task t<1>, trace trace_a: tool \"x\" & <y> missing"))
        #expect(t.contains("… and 1 more"))
        #expect(t.contains("store_data") && t.contains("2.25 ms"))
        #expect(t.contains("FAILED"))
    }

    @Test func jsonShape() throws {
        let j = try JSONValue.parse(ReportFormat.json.render(Self.report))
        #expect(j["ok"] == .bool(false))
        #expect(j["checks"]?.arrayValue?.count == 6)
        #expect(j["checks"]?.arrayValue?.first?["examples"]?.arrayValue?.first?["trace_id"] == "trace_a")
        #expect(j["checks"]?.arrayValue?.last?["tools"]?.arrayValue?.first?["p95_ms"] == .number(2.25))
        #expect(j["checks"]?.arrayValue?[1]["reason"] == "no agent switches")
    }

    @Test func junitIsValidXMLWithSixTestcases() {
        let xml = ReportFormat.junit.render(Self.report)
        let counter = ElementCounter()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = counter
        #expect(parser.parse())
        #expect(counter.counts["testcase"] == 6)
        #expect(counter.counts["failure"] == 1)
        #expect(counter.counts["skipped"] == 2)
    }

    @Test func markdownTables() {
        let m = ReportFormat.markdown.render(Self.report)
        #expect(m.contains("## bridge verify: ❌ failed"))
        #expect(m.contains("| ❌ | Tools appear in traces | `tools_traced` | 10 | 2 |"))
        #expect(m.contains("| `store_data` | 3 |"))
    }
}

final class ElementCounter: NSObject, XMLParserDelegate, @unchecked Sendable {
    // Only touched by one parser on the test's thread.
    var counts: [String: Int] = [:]
    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
        qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
    ) {
        counts[elementName, default: 0] += 1
    }
}

@Suite struct TraceViewTests {
    static func doc() -> TraceDocument {
        let t0 = Date(timeIntervalSince1970: 1_795_683_600)
        func span(
            _ id: SpanID, _ parent: SpanID?, _ start: Double, _ end: Double, _ data: JSONValue, error: JSONValue? = nil
        ) -> SpanRecord {
            SpanRecord(
                id: id, traceId: "trace_x", parentId: parent, startedAt: t0 + start, endedAt: t0 + end, spanData: data,
                error: error)
        }
        return TraceDocument(
            trace: TraceRecord(id: "trace_x", workflowName: "bridge exec", groupId: "w1", metadata: ["attempt": "1"]),
            taskId: "42", startedAt: t0, endedAt: t0 + 1,
            spans: [
                span(
                    "s_task", nil, 0, 1,
                    ["type": "custom", "name": "task", "data": ["sdk_span_type": "task", "name": "bridge exec"]]),
                span(
                    "s_pm", "s_task", 0.01, 0.5,
                    ["type": "agent", "name": "PM", "tools": ["lookup"], "handoffs": ["R"]]),
                span(
                    "s_turn", "s_pm", 0.02, 0.4,
                    [
                        "type": "custom", "name": "turn",
                        "data": ["sdk_span_type": "turn", "turn": 1, "agent_name": "PM"],
                    ]),
                span(
                    "s_fn", "s_turn", 0.1, 0.2,
                    ["type": "function", "name": "lookup", "input": "{\"q\":\"</script><b>\"}", "output": "ok"],
                    error: ["message": "Error running tool", "data": ["tool_name": "lookup"]]),
                span("s_h", "s_turn", 0.3, 0.3, ["type": "handoff", "from_agent": "PM", "to_agent": "R"]),
                span("s_r", "s_task", 0.5, 0.9, ["type": "agent", "name": "R"]),
                span(
                    "s_resume", "s_task", 0.4, 0.5,
                    [
                        "type": "custom", "name": "resume",
                        "data": [
                            "worker": "w2", "previous_worker": "w1", "lost_seconds": 0.1, "resumed_from": "turn 1",
                            "attempt": 2,
                        ],
                    ]),
            ])
    }

    @Test func textTree() {
        let t = TraceText.render(Self.doc())
        #expect(t.contains("trace trace_x · bridge exec · task 42 · workspace w1 · attempt 1"))
        #expect(t.contains("agents: PM → R"))
        #expect(t.contains("├─ agent PM · tools: lookup · handoffs: R"))
        #expect(t.contains("│     ├─ tool lookup({\"q\":\"</script><b>\"}) → ok"))
        #expect(t.contains("✗ error: Error running tool {\"tool_name\":\"lookup\"}"))
        #expect(t.contains("│     └─ handoff PM → R"))
        #expect(t.contains("└─ agent R"))
        #expect(t.contains("100.0 ms") && t.contains("1.00 s"))
        #expect(t.contains("1 error(s)"))
    }

    @Test func htmlIsSelfContainedAndEscapesScript() {
        let h = TraceHTML.render(Self.doc())
        #expect(h.hasPrefix("<!DOCTYPE html>"))
        #expect(!h.contains("</script><b>"))
        #expect(h.contains("<\\/script><b>"))
        #expect(
            !h.contains("src=\"http") && !h.contains("href=\"http") && !h.contains("@import") && !h.contains("url("))
        #expect(h.components(separatedBy: "\"kind\":").count - 1 == 7)
    }

    /// The resume span is its own kind in the page (drawn as a gap, with its workers and lost
    /// time), and `trace show` names both workers and the lost time.
    @Test func aResumeSpanShowsAsTheGapItIs() throws {
        let h = TraceHTML.render(Self.doc())
        let start = try #require(h.range(of: "<script id=\"trace-data\" type=\"application/json\">"))
        let end = try #require(h.range(of: "</script>", range: start.upperBound..<h.endIndex))
        let data = try JSONValue.parse(String(h[start.upperBound..<end.lowerBound]))
        let resume = try #require(data["spans"]?.arrayValue?.first { $0["id"] == "s_resume" })
        #expect(resume["kind"] == "resume")
        #expect(resume["resume"]?["previous_worker"] == "w1" && resume["resume"]?["worker"] == "w2")
        #expect(h.contains(".row.gap .bar") && h.contains("lost time"))
        let t = TraceText.render(Self.doc())
        #expect(t.contains("resume · w1 → w2 · lost 0.1 s · from turn 1"))
    }
}
