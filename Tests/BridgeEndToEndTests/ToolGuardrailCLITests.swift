import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

/// `bridge mappings check` on tool guardrails: the built binary on the reference schema, exit 2
/// with the entry's file:line:column for what cannot work, exit 0 for what can.
@Suite(.serialized, .enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ToolGuardrailCLITests {
    static func probe(examples: String? = nil, _ guardrails: String) -> String {
        HardeningCLITests.tool(
            parameter: "key", examples: examples,
            """
            sql:
              query: "SELECT CAST(:key AS text) AS k"
            \(guardrails)
            """)
    }

    /// The 1-based line of the last line of tools.yaml in `dir` containing `needle`, and the
    /// column where `needle` starts.
    static func position(_ needle: String, in dir: URL) throws -> (line: Int, column: Int) {
        let lines = try String(contentsOf: dir.appendingPathComponent("tools.yaml"), encoding: .utf8)
            .components(separatedBy: "\n")
        let index = try #require(lines.lastIndex { $0.contains(needle) })
        let column = try #require(lines[index].range(of: needle)).lowerBound.utf16Offset(in: lines[index]) + 1
        return (index + 1, column)
    }

    @Test func checkRefusesToolGuardrailsThatCannotDecideWithTheirPosition() async throws {
        let url = try await ExecCLITests.migratedReference()
        let cases: [(yaml: String, needle: String, message: String)] = [
            (
                """
                input_guardrails:
                  - name: not_boolean
                    sql: {query: "SELECT 'yes' AS tripwire_triggered"}
                """,
                "SELECT 'yes'", "returns tripwire_triggered as text: it must be boolean"
            ),
            (
                """
                output_guardrails:
                  - name: bad_column
                    sql: {query: "SELECT CAST(:output AS text) = name AS tripwire_triggered FROM tasks WHERE nosuch = 1"}
                """,
                "SELECT CAST(:output", "does not prepare"
            ),
            (
                """
                input_guardrails:
                  - name: bad_behavior
                    sql: {query: "SELECT true AS tripwire_triggered"}
                    on_trip: explode
                """,
                "explode", "unknown on_trip 'explode'"
            ),
            (
                """
                output_guardrails:
                  - name: typo
                    sql: {query: "SELECT true AS tripwire_triggered"}
                    mesage: "x"
                """,
                "mesage", "unknown key 'mesage' (did you mean 'message'?)"
            ),
        ]
        for c in cases {
            let dir = try HardeningCLITests.mappings(withTool: Self.probe(c.yaml))
            defer { try? FileManager.default.removeItem(at: dir) }
            let check = try await HardeningCLITests.run(["mappings", "check"], url, dir)
            #expect(check.status == 2, "\(c.needle): \(check.stdout)\(check.stderr)")
            let (line, column) = try Self.position(c.needle, in: dir)
            // Scalars are located at their value; the SQL checks at the query's value.
            let located = check.stderr.components(separatedBy: "\n").filter { $0.contains("tools.yaml:\(line):") }
            #expect(located.contains { $0.contains(c.message) }, "\(c.needle) at \(line):\(column): \(check.stderr)")
        }
    }

    @Test func checkAcceptsWorkingToolGuardrailsAndDryRunShowsThem() async throws {
        try await HardeningCLITests.withTool(
            Self.probe(
                """
                input_guardrails:
                  - name: known_key
                    sql: {query: "SELECT NOT EXISTS (SELECT 1 FROM tasks WHERE name = CAST(CAST(:arguments AS jsonb)->>'key' AS text)) AS tripwire_triggered, CAST(:tool_name AS text) AS output_info"}
                    on_trip: reject_content
                    message: "No task {{task.name}} knows that key."
                output_guardrails:
                  - name: short
                    sql: {query: "SELECT length(CAST(:output AS text)) > 10000 AS tripwire_triggered"}
                """)
        ) { url, dir in
            let check = try await HardeningCLITests.run(["mappings", "check"], url, dir)
            #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
            let dry = try await HardeningCLITests.run(["exec", "--dry-run"], url, dir)
            #expect(dry.status == 0, "\(dry.stderr)")
            let spec = try #require(
                dry.stdout.components(separatedBy: "\n").compactMap { try? JSONValue.parse($0) }.first {
                    $0["tools"]?["probe"] != nil
                })
            let guards = spec["tools"]?["probe"]?["input_guardrails"]?.arrayValue ?? []
            #expect(guards.first?["on_trip"]?["type"] == "reject_content")
            #expect(guards.first?["check"]?["name"] == "known_key")
        }
    }

    /// Runs `bridge exec --offline` on a reference database with the probe, which the offline
    /// model calls with `k1`, guarded by one SQL guardrail `probe_guard` in `section`
    /// (input_guardrails or output_guardrails); expects exit `status`, then hands `body` the
    /// database and the mappings.
    static func execK1Probe(
        _ section: String, query: String, onTrip: String, message: String? = nil, exits status: Int32,
        sourceLocation: SourceLocation = #_sourceLocation, _ body: (_ url: String, _ dir: URL) async throws -> Void
    ) async throws {
        let tool = probe(
            examples: "[k1]",
            """
            \(section):
              - name: probe_guard
                sql: {query: "\(query)"}
                on_trip: \(onTrip)
            """ + (message.map { "\n    message: \"\($0)\"" } ?? ""))
        try await HardeningCLITests.withTool(tool) { url, dir in
            let run = try await HardeningCLITests.execOffline(url, dir)
            #expect(run.status == status, "\(run.stderr)", sourceLocation: sourceLocation)
            try await body(url, dir)
        }
    }

    /// A guardrail that trips on the offline model's `k1`: `guardrail` rows of the ledger under
    /// the probe's function spans, and `verify` matching them to the transcripts.
    static let tripsOnK1 =
        "SELECT CAST(CAST(:arguments AS jsonb)->>'key' AS text) = 'k1' AS tripwire_triggered, 'k1 is blocked' AS output_info"

    @Test func execRejectsContentAndTheLedgerHasTheGuardrailSpansUnderTheCall() async throws {
        try await Self.execK1Probe(
            "input_guardrails", query: Self.tripsOnK1, onTrip: "reject_content",
            message: "k1 is not for task {{task.id}}.", exits: 0
        ) { url, dir in
            let rows = try await TestDatabase.rows(
                url,
                """
                SELECT f.span_data->>'output' AS output, g.span_data->>'triggered' AS triggered
                FROM bridge.spans f JOIN bridge.spans g ON g.parent_id = f.span_id AND g.trace_id = f.trace_id
                WHERE f.span_data->>'type' = 'function' AND f.span_data->>'name' = 'probe'
                  AND g.span_data->>'type' = 'guardrail' AND g.span_data->>'name' = 'probe_guard'
                """)
            #expect(!rows.isEmpty, "every probe call has its guardrail span under its function span")
            for r in rows {
                #expect(r["triggered"] == "true")
                #expect(r["output"]?.hasPrefix("k1 is not for task ") == true, "\(r["output"] ?? "")")
            }
            let verify = try await HardeningCLITests.run(["verify"], url, dir)
            #expect(verify.status == 0, "\(verify.stdout)\(verify.stderr)")
        }
    }

    @Test func execFailsTheTaskWithTheSDKsExceptionName() async throws {
        try await Self.execK1Probe(
            "output_guardrails",
            query: "SELECT CAST(:output AS text) LIKE '%k1%' AS tripwire_triggered, 'k1 leaked' AS output_info",
            onTrip: "raise_exception", exits: 1
        ) { url, _ in
            let failed = try await TestDatabase.rows(
                url,
                "SELECT error_type, error_message FROM task_executions WHERE error_type = 'ToolOutputGuardrailTripwireTriggered'"
            )
            #expect(!failed.isEmpty)
            #expect(failed.first?["error_message"] == "Tool output guardrail probe_guard triggered tripwire: k1 leaked")
            let spans = try await HardeningCLITests.toolSpans(url, "error->>'message' AS m")
            #expect(!spans.isEmpty && spans.allSatisfy { $0["m"] == "Error running tool" })
        }
    }
}
