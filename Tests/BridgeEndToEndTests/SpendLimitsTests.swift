import BridgeCore
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

/// Spend, fleet-wide limits and budgets (issue 21), end to end against the reference schema
/// with a loopback stand-in for the Responses API.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct SpendLimitsTests {
    /// A stand-in that answers like `ResponsesStandIn`, but 429 (with OpenAI's reset headers)
    /// to the first `storm` requests: a 429 storm.
    final class StormModel: @unchecked Sendable {
        let lock = NSLock()
        var served = 0
        var refused = 0
        let storm: Int
        init(storm: Int) { self.storm = storm }

        func handle(_ request: TestHTTPRequest) -> TestHTTPResponse {
            guard request.path == "/v1/responses", let body = request.json else {
                return .json(["error": ["message": "not here"]], status: 404)
            }
            let refuse: Bool = lock.withLock {
                if refused < storm {
                    refused += 1
                    return true
                }
                served += 1
                return false
            }
            if refuse {
                return .json(
                    [
                        "error": [
                            "message": "Rate limit reached for requests", "type": "requests",
                            "code": "rate_limit_exceeded",
                        ]
                    ],
                    status: 429,
                    headers: [("x-ratelimit-reset-requests", "200ms"), ("x-ratelimit-reset-tokens", "50ms")])
            }
            return .modelReply(ResponsesStandIn.reply(to: body), for: request)
        }
    }

    /// The shipped mappings with only gpt-4.1 priced (the Researcher's gpt-4.1-mini calls are
    /// unknown); without `writesBack`, no `spent_column`: the spend rides on the runs' writes.
    static func spendMappings(_ extra: String = "", writesBack: Bool = true) throws -> URL {
        try TestMappings.copy(
            prefix: "bridge-spend",
            editing: [
                "spend.yaml": { text in
                    let priced =
                        text.replacingOccurrences(
                            of: "  gpt-4.1-mini: {input: 0.40, cached_input: 0.10, output: 1.60}\n", with: "")
                        + extra
                    guard !writesBack else { return priced }
                    return priced.split(separator: "\n", omittingEmptySubsequences: false)
                        .filter { !$0.hasPrefix("  spent_column:") }.joined(separator: "\n")
                }
            ])
    }

    /// A migrated reference database, `spendMappings(writesBack:)` and a `StormModel` (429 to
    /// its first `storm` requests) for `bridge exec` to drain them with; `close` removes them.
    struct Drain {
        let url: String
        let dir: URL
        let model: StormModel
        let server: TestHTTPServer

        static func start(storm: Int, writesBack: Bool = true) async throws -> Drain {
            let url = try await ExecCLITests.migratedReference()
            let dir = try SpendLimitsTests.spendMappings(writesBack: writesBack)
            let model = StormModel(storm: storm)
            do {
                return Drain(url: url, dir: dir, model: model, server: try TestHTTPServer { model.handle($0) })
            } catch {
                try? FileManager.default.removeItem(at: dir)
                throw error
            }
        }

        /// `bridge exec` with `extra` until nothing is left to do.
        func exec(_ extra: [String] = []) async throws -> TestProcess.Result {
            try await BridgeBinary.run(
                ["exec", "--database-url", url, "--mappings", dir.path] + extra,
                environment: BridgeBinary.openAIEnvironment(server, key: "sk-test-spend"))
        }

        func close() {
            server.stop()
            try? FileManager.default.removeItem(at: dir)
        }
    }

    /// Each group's running total is the sum of its calls, however the rows were sent.
    static func expectGroupTotalsAreTheirCalls(
        _ c: PostgresConnection, sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let totals = try await c.simpleQuery(
            """
            SELECT (SELECT coalesce(sum(spent_usd), 0) FROM bridge.group_spend)::text AS spent,
                   (SELECT coalesce(sum(cost_usd), 0) FROM bridge.model_calls)::text AS calls,
                   (SELECT coalesce(sum(unpriced_calls), 0) FROM bridge.group_spend)::text AS unpriced,
                   (SELECT count(*) FROM bridge.model_calls WHERE cost_usd IS NULL)::text AS unpriced_calls
            """
        ).first
        #expect(
            totals?["spent"] == totals?["calls"] && totals?["unpriced"] == totals?["unpriced_calls"],
            "\(totals.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    }

    /// With `spent_column` the spend is written at once (the total goes back to the app's row);
    /// without it, it rides on the durable run's next journal write or its finishing transaction.
    @Test(arguments: [true, false])
    func everyModelCallIsPricedAndA429StormUsesNoAttempts(writesBack: Bool) async throws {
        let drain = try await Drain.start(storm: 25, writesBack: writesBack)
        defer { drain.close() }

        let check = try await BridgeBinary.run(["mappings", "check", "--static-only", "--mappings", drain.dir.path])
        #expect(check.status == 0, "\(check.stderr)")
        #expect(check.stderr.contains("model 'gpt-4.1-mini'") && check.stderr.contains("no price"), "\(check.stderr)")

        let r = try await drain.exec(["--concurrency", "8"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(drain.model.refused == 25)
        let c = try await TestDatabase.connect(drain.url)
        // No task failed, and the 429s used no attempt: every task ran exactly once.
        #expect(
            try await c.simpleQuery("SELECT count(*) AS n FROM tasks WHERE status IN ('pending', 'in_progress')")
                .first?["n"] == "0")
        #expect(try await c.simpleQuery("SELECT max(bridge_attempts) AS n FROM tasks").first?["n"] == "1")
        #expect(
            try await c.simpleQuery(
                "SELECT count(*) AS n FROM task_executions WHERE status <> 'completed' AND openai_trace_id IS NOT NULL"
            ).first?["n"] == "0")
        // Every model call is recorded once, priced (gpt-4.1: 100 in × $2 + 20 out × $8 per 1M)
        // or unknown (gpt-4.1-mini has no price), never zero.
        let calls = Array(
            try await c.simpleQuery(
                """
                SELECT model, count(*) AS n, count(cost_usd) AS priced, min(cost_usd)::text AS lo, max(cost_usd)::text AS hi
                FROM bridge.model_calls GROUP BY model ORDER BY model
                """))
        #expect(calls.count == 2)
        #expect(calls.first?["model"] == "gpt-4.1" && calls.first?["priced"] == calls.first?["n"])
        #expect(calls.first?["lo"] == "0.00036" && calls.first?["hi"] == "0.00036")
        #expect(calls.last?["model"] == "gpt-4.1-mini" && calls.last?["priced"] == "0")
        let served = try #require(
            Int(try await c.simpleQuery("SELECT count(*) AS n FROM bridge.model_calls").first?["n"] ?? ""))
        #expect(served == drain.model.served)
        try await Self.expectGroupTotalsAreTheirCalls(c)
        // The same cost is on every response span, and summed on the execution row.
        let spans = try await c.simpleQuery(
            """
            SELECT count(*) AS n, count(*) FILTER (WHERE span_data ? 'cost_usd') AS with_cost FROM bridge.spans
            WHERE span_data->>'type' = 'response'
            """
        ).first
        #expect(spans?["n"] == String(served) && spans?["with_cost"] == String(served))
        // A run with an unpriced call has no total (it would understate the cost), and says why.
        let runs = try await c.simpleQuery(
            """
            SELECT count(*) AS n, count(*) FILTER (WHERE token_usage ? 'cost_usd') AS costed,
                   count(*) FILTER (WHERE (token_usage->>'cost_unpriced_calls')::int > 0) AS unpriced
            FROM task_executions WHERE openai_trace_id IS NOT NULL
            """
        ).first
        #expect(runs?["n"] == runs?["costed"] && runs?["unpriced"] != "0", "\(String(describing: runs))")
        #expect(
            try await c.simpleQuery(
                """
                SELECT count(*) AS n FROM task_executions WHERE token_usage ? 'cost_unpriced_calls' AND token_usage->'cost_usd' <> 'null'::jsonb
                """
            ).first?["n"] == "0")

        // bridge cost reports the same figures.
        let cost = try await BridgeBinary.run(["cost", "--database-url", drain.url, "--by", "model", "--json"])
        #expect(cost.status == 0, "\(cost.stderr)")
        let report = try JSONValue.parse(cost.stdout)
        #expect(report["total"]?["calls"]?.intValue == served)
        #expect(report["rows"]?.arrayValue?.first { $0["key"] == "gpt-4.1-mini" }?["cost_usd"] == .null)
        let byWorkspace = try await BridgeBinary.run(["cost", "--database-url", drain.url, "--by", "workspace"])
        #expect(
            byWorkspace.status == 0 && byWorkspace.stdout.contains("WORKSPACE")
                && byWorkspace.stdout.contains("unpriced"))
        let bad = try await BridgeBinary.run(["cost", "--database-url", drain.url, "--by", "planet"])
        #expect(bad.status == 2)
        await c.close()
    }

    /// The server refuses a run's finishing transaction (a trigger on its execution row's
    /// completion, once): the spend riding on that transaction rolled back with it, but the
    /// calls were paid all the same, so it is still recorded, once; the task's retry records
    /// only what it pays again.
    @Test func spendRidingOnARefusedFinishIsStillRecordedOnce() async throws {
        let drain = try await Drain.start(storm: 0, writesBack: false)
        defer { drain.close() }
        let c = try await TestDatabase.connect(drain.url)
        _ = try await c.simpleQuery(
            """
            CREATE SEQUENCE refuse_finish;
            CREATE FUNCTION refuse_finish() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('refuse_finish') = 1 THEN RAISE EXCEPTION 'finish refused'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_finish BEFORE UPDATE ON task_executions FOR EACH ROW
                WHEN (NEW.status = 'completed') EXECUTE FUNCTION refuse_finish();
            """)
        let r = try await drain.exec()
        #expect(r.status == 0, "\(r.stderr)")
        // One finish was refused (its attempt failed, retriable), and its task ran again.
        let refused = "status = 'failed_retriable' AND error_message LIKE '%finish refused%'"
        #expect(try await TestDatabase.count(drain.url, refused, table: "task_executions") == 1)
        #expect(try await TestDatabase.count(drain.url, "status IN ('pending', 'in_progress')") == 0)
        // Every call the stand-in answered is recorded once, the refused attempt's last ones too.
        #expect(try await TestDatabase.count(drain.url, "true", table: "bridge.model_calls") == drain.model.served)
        try await Self.expectGroupTotalsAreTheirCalls(c)
        await c.close()
    }

    @Test func aSpentBudgetHoldsItsWorkspaceUntilRaised() async throws {
        let drain = try await Drain.start(storm: 0)
        defer { drain.close() }
        let c = try await TestDatabase.connect(drain.url)
        // One workspace may spend almost nothing: its first priced call crosses the budget.
        let held = try #require(
            try await c.simpleQuery("SELECT id::text AS id FROM workspaces ORDER BY name LIMIT 1").first?["id"])
        _ = try await c.simpleQuery("UPDATE workspaces SET budget = '{\"max_budget\": 0.0001}' WHERE id = '\(held)'")
        let failedBefore = try await c.simpleQuery(
            "SELECT count(*) AS n FROM tasks WHERE status = 'failed' AND workspace_id = '\(held)'"
        ).first?["n"]
        let r = try await drain.exec(["--concurrency", "1"])
        #expect(r.status == 0, "\(r.stderr)")
        let waiting = try await c.simpleQuery(
            """
            SELECT count(*) FILTER (WHERE status = 'pending') AS pending, count(*) FILTER (WHERE status = 'failed') AS failed,
                   max(bridge_attempts) AS attempts FROM tasks WHERE workspace_id = '\(held)'
            """
        ).first
        #expect(Int(waiting?["pending"] ?? "0") ?? 0 > 0)
        #expect(waiting?["failed"] == failedBefore)  // the seed's historical failures only
        #expect(
            try await c.simpleQuery(
                "SELECT count(*) AS n FROM tasks WHERE workspace_id <> '\(held)' AND status IN ('pending', 'in_progress')"
            ).first?["n"] == "0")
        // The run that crossed the budget stopped before its next model call, as BudgetExceeded.
        #expect(
            try await c.simpleQuery("SELECT count(*) AS n FROM task_executions WHERE error_type = 'BudgetExceeded'")
                .first?["n"] != "0")
        // The spend is written back for the application's UI.
        let used = try await c.simpleQuery(
            "SELECT (budget->>'used')::float8 > 0 AS ok FROM workspaces WHERE id = '\(held)'"
        ).first?["ok"]
        #expect(used == "t")
        // Raised: the held tasks run, with no restart of anything but a new drain.
        _ = try await c.simpleQuery(
            "UPDATE workspaces SET budget = budget || '{\"max_budget\": 100}' WHERE id = '\(held)'")
        let again = try await drain.exec()
        #expect(again.status == 0, "\(again.stderr)")
        #expect(
            try await c.simpleQuery("SELECT count(*) AS n FROM tasks WHERE status IN ('pending', 'in_progress')")
                .first?["n"] == "0")
        await c.close()
    }

    @Test func negativeOrNonNumericPricesAndLimitsAreRefusedWithTheirPosition() async throws {
        let dir = try TestMappings.copy(
            prefix: "bridge-spend-bad",
            editing: [
                "spend.yaml": { text in
                    text.replacingOccurrences(
                        of: "{input: 2.00, cached_input: 0.50, output: 8.00}",
                        with: "{input: -2, cached_input: 0.50, output: cheap}"
                    )
                    .replacingOccurrences(of: "requests_per_minute: 10000", with: "requests_per_minute: 0")
                }
            ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try await BridgeBinary.run(["mappings", "check", "--static-only", "--mappings", dir.path])
        #expect(r.status == 2)
        #expect(
            r.stderr.contains("spend.yaml:7:25: pricing.gpt-4.1.input: must not be negative, got -2"), "\(r.stderr)")
        #expect(r.stderr.contains("pricing.gpt-4.1.output: expected a number, got a string"), "\(r.stderr)")
        #expect(r.stderr.contains("limits.models.gpt-4.1.requests_per_minute: must be greater than 0"), "\(r.stderr)")
    }
}
