import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

/// A seeded reference database after `bridge migrate` and `bridge exec --offline`.
struct ExecutedDatabase {
    var url: String
    var traceFile: String
    var common: [String] { ["--database-url", url, "--mappings", BridgeBinary.mappings] }

    static func make() async throws -> ExecutedDatabase {
        let url = try await TestDatabase.createReference(seed: true)
        let up = try await BridgeBinary.migrate(url)
        #expect(up.status == 0, "\(up.stderr)")
        let traceFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("bridge-verify-\(UUID().uuidString).jsonl").path
        let exec = try await BridgeBinary.run([
            "exec", "--offline", "--quiet", "--database-url", url, "--mappings", BridgeBinary.mappings,
            "--trace-file", traceFile, "--flush-timeout", "120",
        ])
        #expect(exec.status == 0, "\(exec.stdout)\(exec.stderr)")
        return ExecutedDatabase(url: url, traceFile: traceFile)
    }

    func verify(_ args: [String]) async throws -> (status: Int32, json: [String: Any], stderr: String) {
        let r = try await BridgeBinary.run(["verify", "--format", "json"] + common + args)
        let json = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        return (r.status, json, r.stderr)
    }

    func psql(_ sql: String) async throws -> String {
        try await TestDatabase.psql(url, sql)
    }
}

func checks(_ json: [String: Any]) -> [String: [String: Any]] {
    var out: [String: [String: Any]] = [:]
    for c in json["checks"] as? [[String: Any]] ?? [] { out[c["id"] as? String ?? ""] = c }
    return out
}

func exampleText(_ check: [String: Any]?) -> String {
    ((check?["examples"] as? [[String: Any]]) ?? []).map { "\($0["trace_id"] ?? "") \($0["message"] ?? "")" }.joined(
        separator: "\n")
}

@Suite struct VerifyCLIUsageTests {
    @Test(arguments: [["--since", "yesterday"], ["--format", "xml"], ["--bogus"], ["--jobs", "0"]])
    func badFlagsExitTwo(_ args: [String]) async throws {
        let r = try await BridgeBinary.run(["verify"] + args)
        #expect(r.status == 2, "\(r.stderr)")
    }

    @Test func aMissingSpansFileExitsTwoNamingIt() async throws {
        let missing = try await BridgeBinary.run(["verify", "--spans", "/nonexistent/spans.jsonl"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent/spans.jsonl"))
    }

    @Test func helpNamesTheChecksAndFlags() async throws {
        let r = try await BridgeBinary.run(["verify", "--help"])
        #expect(r.status == 0)
        for word in [
            "tools_traced", "trace_ids_correlate", "--since", "--spans", "--max-export-lag", "--format", "--output",
        ] {
            #expect(r.stdout.contains(word), "\(word)")
        }
        let show = try await BridgeBinary.run(["trace", "show", "--help"])
        #expect(show.status == 0 && show.stdout.contains("--html"))
    }
}

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct VerifyCLITests {
    @Test func passesAfterOfflineExecInEveryFormat() async throws {
        let db = try await ExecutedDatabase.make()
        let r = try await db.verify([])
        #expect(r.status == 0, "\(r.json) \(r.stderr)")
        #expect(r.json["ok"] as? Bool == true)
        let all = checks(r.json)
        #expect(
            Set(all.keys) == [
                "tools_traced", "handoffs_traced", "tool_io_captured", "trace_ids_correlate",
                "export_delivered", "tool_timing", "guardrails_approvals_traced", "runs_whole", "spend_recorded",
            ])
        for id in [
            "tools_traced", "tool_io_captured", "trace_ids_correlate", "tool_timing", "guardrails_approvals_traced",
            "runs_whole", "spend_recorded",
        ] {
            #expect(all[id]?["status"] as? String == "pass", "\(id): \(all[id] ?? [:])")
            #expect((all[id]?["checked"] as? Int ?? 0) > 0, "\(id)")
        }
        #expect(all["tools_traced"]?["title"] as? String == "Tools appear in traces")
        #expect(all["handoffs_traced"]?["status"] as? String == "pass")
        // `exec --trace-file` registers the `file` exporter and records its deliveries.
        #expect(all["export_delivered"]?["status"] as? String == "pass", "\(all["export_delivered"] ?? [:])")
        let fileExporter = (all["export_delivered"]?["exporters"] as? [[String: Any]])?.first {
            $0["exporter"] as? String == "file"
        }
        #expect(fileExporter?["rejected"] as? Int == 0 && fileExporter?["missing"] as? Int == 0)
        let tools = all["tool_timing"]?["tools"] as? [[String: Any]] ?? []
        #expect(
            tools.contains {
                $0["tool"] as? String == "store_data" && ($0["count"] as? Int ?? 0) > 0 && $0["p95_ms"] != nil
            })

        // The seed's historical executions (no trace id, finished before bridge) are not demanded.
        let historical = try await db.psql("SELECT count(*) FROM task_executions WHERE openai_trace_id IS NULL")
        #expect(Int(historical) ?? 0 > 0)

        // The same run in the other formats.
        let text = try await BridgeBinary.run(["verify"] + db.common)
        #expect(text.status == 0)
        #expect(text.stdout.contains("✓ Tools appear in traces") && text.stdout.contains("store_data"))
        let md = try await BridgeBinary.run(["verify", "--format", "markdown"] + db.common)
        #expect(md.status == 0 && md.stdout.contains("| tool | count | p50 | p95 | max |"))

        let out = TemporaryPath.unique("verify", suffix: ".xml")
        let junit = try await BridgeBinary.run(["verify", "--format", "junit", "--output", out] + db.common)
        #expect(junit.status == 0, "\(junit.stderr)")
        let xml = try #require(FileManager.default.contents(atPath: out))
        let cases = JUnitCounter()
        let parser = XMLParser(data: xml)
        parser.delegate = cases
        #expect(parser.parse(), "\(parser.parserError.map { "\($0)" } ?? "")")
        #expect(cases.testcases == 9)
        #expect(cases.failures == 0)

        // Reconciled against the exec's own JSONL export, and against the same as OTLP JSON.
        let withFile = try await db.verify(["--spans", db.traceFile])
        #expect(withFile.status == 0, "\(withFile.json)")
        let otlp = try otlpJSON(fromSDK: db.traceFile)
        #expect(try await db.verify(["--spans", otlp]).status == 0)

        // Scope: a task, a workspace, a duration.
        let task = try await db.psql("SELECT id FROM tasks WHERE openai_trace_id IS NOT NULL ORDER BY id LIMIT 1")
        let one = try await db.verify(["--task", task, "--since", "1h"])
        #expect(one.status == 0)
        #expect(checks(one.json)["trace_ids_correlate"]?["checked"] as? Int == 2)
        let ws = try await db.psql("SELECT workspace_id FROM tasks WHERE id = '\(task)'")
        #expect(try await db.verify(["--workspace", ws]).status == 0)
    }

    @Test func deletingOneFunctionSpanFailsToolsTraced() async throws {
        let db = try await ExecutedDatabase.make()
        let trace = try await db.psql(
            """
            DELETE FROM bridge.spans WHERE span_id = (
              SELECT span_id FROM bridge.spans WHERE span_data->>'type' = 'function' ORDER BY span_id LIMIT 1)
            RETURNING trace_id
            """)
        let r = try await db.verify([])
        #expect(r.status == 1)
        #expect(r.json["ok"] as? Bool == false)
        let tools = checks(r.json)["tools_traced"]
        #expect(tools?["status"] as? String == "fail")
        #expect(tools?["failed"] as? Int == 1)
        #expect(exampleText(tools).contains(trace), "\(exampleText(tools))")
        #expect(checks(r.json)["tool_io_captured"]?["status"] as? String == "pass")

        let text = try await BridgeBinary.run(["verify"] + db.common)
        #expect(text.status == 1 && text.stdout.contains("✗ Tools appear in traces") && text.stdout.contains(trace))
        let junit = try await BridgeBinary.run(["verify", "--format", "junit"] + db.common)
        let cases = JUnitCounter()
        let parser = XMLParser(data: Data(junit.stdout.utf8))
        parser.delegate = cases
        #expect(parser.parse())
        #expect(cases.testcases == 9 && cases.failures == 1)
    }

    /// A turn span gone: its children are orphans, so the run is no longer one tree; a function
    /// span copied under another id: a call traced twice. `runs_whole` fails on both.
    @Test func orphanSpansAndACallTracedTwiceFailRunsWhole() async throws {
        let db = try await ExecutedDatabase.make()
        let orphaned = try await db.psql(
            """
            DELETE FROM bridge.spans WHERE span_id = (
              SELECT p.span_id FROM bridge.spans p WHERE p.span_data->>'name' = 'turn'
                AND EXISTS (SELECT 1 FROM bridge.spans c WHERE c.parent_id = p.span_id) ORDER BY p.span_id LIMIT 1)
            RETURNING trace_id
            """)
        let twice = try await db.psql(
            """
            INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data, error)
            SELECT 'span_' || substr(md5(span_id), 1, 24), trace_id, parent_id, started_at, ended_at, span_data, error
            FROM bridge.spans WHERE span_data->>'type' = 'function' AND trace_id <> '\(orphaned)' ORDER BY span_id LIMIT 1
            RETURNING trace_id
            """)
        let r = try await db.verify([])
        #expect(r.status == 1)
        let whole = checks(r.json)["runs_whole"]
        #expect(whole?["status"] as? String == "fail" && whole?["failed"] as? Int == 2, "\(whole ?? [:])")
        #expect(
            exampleText(whole).contains("whose parent is not in the trace") && exampleText(whole).contains(orphaned))
        #expect(
            exampleText(whole).contains("traced twice") && exampleText(whole).contains(twice), "\(exampleText(whole))")
    }

    /// The shipped mappings price every model: verify shows what was spent, and a model call
    /// that ran without pricing (no `cost_usd`) fails `spend_recorded`.
    @Test func spendIsShownAndAnUnpricedCallFailsSpendRecorded() async throws {
        let db = try await ExecutedDatabase.make()
        let clean = try await db.verify([])
        let spend = checks(clean.json)["spend_recorded"]
        #expect(spend?["status"] as? String == "pass", "\(spend ?? [:])")
        #expect((spend?["reason"] as? String ?? "").hasSuffix(" spent"), "\(spend ?? [:])")
        #expect((spend?["reason"] as? String ?? "").hasPrefix("$0.0"), "\(spend ?? [:])")
        let stripped = try await db.psql(
            """
            UPDATE bridge.spans SET span_data = span_data - 'cost_usd' WHERE span_id = (
              SELECT span_id FROM bridge.spans WHERE span_data->>'type' IN ('generation', 'response')
              ORDER BY span_id LIMIT 1)
            RETURNING trace_id
            """)
        let r = try await db.verify([])
        #expect(r.status == 1)
        let failed = checks(r.json)["spend_recorded"]
        #expect(failed?["status"] as? String == "fail" && failed?["failed"] as? Int == 1, "\(failed ?? [:])")
        #expect(exampleText(failed).contains("ran without pricing") && exampleText(failed).contains(stripped))
    }

    @Test func spansFileMissingATraceFailsCorrelation() async throws {
        let db = try await ExecutedDatabase.make()
        let lines = try String(contentsOfFile: db.traceFile, encoding: .utf8).split(separator: "\n")
        let traceIds = lines.compactMap { line -> String? in
            let v = try? JSONValue.parse(String(line))
            return v?["object"]?.stringValue == "trace" ? v?["id"]?.stringValue : nil
        }
        let victim = try #require(traceIds.first)
        let partial = TemporaryPath.unique("partial", suffix: ".jsonl")
        try lines.filter { !$0.contains(victim) }.joined(separator: "\n").write(
            toFile: partial, atomically: true, encoding: .utf8)
        let r = try await db.verify(["--spans", partial])
        #expect(r.status == 1)
        let correlate = checks(r.json)["trace_ids_correlate"]
        #expect(correlate?["status"] as? String == "fail")
        #expect(correlate?["failed"] as? Int == 1)
        #expect(exampleText(correlate).contains(victim), "\(exampleText(correlate))")
        #expect(exampleText(correlate).contains("missing from the spans file"))
    }

    @Test func mismatchedAndMissingTraceIdsAreNamed() async throws {
        let db = try await ExecutedDatabase.make()
        let task = try await db.psql("SELECT id FROM tasks WHERE openai_trace_id IS NOT NULL ORDER BY id LIMIT 1")
        _ = try await db.psql(
            "UPDATE tasks SET openai_trace_id = 'trace_00000000000000000000000000000000' WHERE id = '\(task)'")
        let other = try await db.psql(
            "SELECT id FROM tasks WHERE openai_trace_id IS NOT NULL AND id <> '\(task)' ORDER BY id LIMIT 1")
        _ = try await db.psql("UPDATE task_executions SET openai_trace_id = NULL WHERE task_id = '\(other)'")
        let r = try await db.verify([])
        #expect(r.status == 1)
        let correlate = checks(r.json)["trace_ids_correlate"]
        let text = exampleText(correlate)
        #expect(correlate?["status"] as? String == "fail")
        #expect(text.contains("but its task has trace_00000000000000000000000000000000"), "\(text)")
        #expect(text.contains("has no trace id, although bridge ran this task"), "\(text)")
        // The trace of `other` is no longer on any execution row.
        #expect(text.contains("no execution row carries this trace id"), "\(text)")
    }

    @Test func exportDeliveryRejectionsAndLag() async throws {
        let db = try await ExecutedDatabase.make()
        _ = try await db.psql(
            """
            INSERT INTO bridge.exporters (name, target, registered_at) VALUES ('otlp', 'http://collector:4318', now() - interval '1 day');
            INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status, delivered_at)
            SELECT 'otlp', span_id, trace_id, 'delivered', ended_at + interval '2 seconds' FROM bridge.spans;
            """)
        let ok = try await db.verify([])
        #expect(ok.status == 0, "\(ok.json)")
        let export = checks(ok.json)["export_delivered"]
        #expect(export?["status"] as? String == "pass")
        let otlp = (export?["exporters"] as? [[String: Any]] ?? []).first { $0["exporter"] as? String == "otlp" }
        #expect((otlp?["p95_lag_s"] as? NSNumber)?.doubleValue == 2, "\(otlp ?? [:])")

        #expect(try await db.verify(["--max-export-lag", "1"]).status == 1)

        let span = try await db.psql(
            """
            UPDATE bridge.span_deliveries SET status = 'rejected', error = '400: usage.requests is not allowed'
            WHERE exporter = 'otlp' AND span_id = (SELECT min(span_id) FROM bridge.span_deliveries) RETURNING span_id
            """)
        let rejected = try await db.verify([])
        #expect(rejected.status == 1)
        let text = exampleText(checks(rejected.json)["export_delivered"])
        #expect(text.contains(span) && text.contains("usage.requests is not allowed"), "\(text)")
    }

    @Test func traceShowTextAndHTML() async throws {
        let db = try await ExecutedDatabase.make()
        // A Project Manager task: agents, tools and a handoff.
        let task = try await db.psql(
            """
            SELECT t.id FROM tasks t JOIN agents a ON a.id = t.agent_id
            WHERE a.role = 'Project Manager' AND t.openai_trace_id IS NOT NULL ORDER BY t.id LIMIT 1
            """)
        let trace = try await db.psql("SELECT openai_trace_id FROM tasks WHERE id = '\(task)'")
        let r = try await BridgeBinary.run(["trace", "show", task, "--database-url", db.url])
        #expect(r.status == 0, "\(r.stderr)")
        for part in [
            trace, "task \(task)", "agent Project Manager", "├─ ", "└─ ", "tool get_team_roles_and_status(",
            "handoff Project Manager → Researcher", "agents: Project Manager → Researcher", " ms",
        ] {
            #expect(r.stdout.contains(part), "\(part)\n\(r.stdout)")
        }
        let html = TemporaryPath.unique("trace", suffix: ".html")
        let h = try await BridgeBinary.run(["trace", "show", trace, "--html", html, "--database-url", db.url])
        #expect(h.status == 0, "\(h.stderr)")
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.contains(trace) && page.contains("\"kind\":\"handoff\""))
        #expect(!page.contains("src=\"http") && !page.contains("href=\"http") && !page.contains("@import"))
        let unknown = try await BridgeBinary.run(["trace", "show", "no-such-id", "--database-url", db.url])
        #expect(unknown.status == 2 && unknown.stderr.contains("no-such-id"))
    }
}

/// Counts `testcase` and `failure` elements.
final class JUnitCounter: NSObject, XMLParserDelegate, @unchecked Sendable {
    // Only touched by one parser on the test's thread.
    var testcases = 0
    var failures = 0

    func parser(
        _ parser: XMLParser, didStartElement elementName: String, namespaceURI: String?,
        qualifiedName qName: String?, attributes attributeDict: [String: String] = [:]
    ) {
        if elementName == "testcase" { testcases += 1 }
        if elementName == "failure" { failures += 1 }
    }
}

/// Rewrites an SDK JSONL export as one OTLP JSON document (hex ids, the SDK ids' hex parts).
func otlpJSON(fromSDK path: String) throws -> String {
    var spans: [JSONValue] = []
    for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
        let v = try JSONValue.parse(String(line))
        guard v["object"]?.stringValue == "trace.span", let id = v["id"]?.stringValue,
            let trace = v["trace_id"]?.stringValue
        else { continue }
        spans.append([
            "traceId": .string(String(trace.dropFirst(6))), "spanId": .string(String(id.dropFirst(5).prefix(16))),
            "name": .string(v["span_data"]?["type"]?.stringValue ?? ""),
        ])
    }
    let doc: JSONValue = ["resourceSpans": [["scopeSpans": [["spans": .array(spans)]]]]]
    let out = TemporaryPath.unique("otlp", suffix: ".json")
    try doc.compact.write(toFile: out, atomically: true, encoding: .utf8)
    return out
}
