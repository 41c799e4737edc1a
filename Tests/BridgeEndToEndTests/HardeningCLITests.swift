import BridgeCore
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

/// Adversarial probes (issue 11): each reproduces an attack on the built binary, then checks
/// the error, the exit code and that nothing changed.
/// Serialized: the probes start many bridge processes, and the lease and kill tests that run
/// alongside are sensitive to load.
@Suite(.serialized, .enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct HardeningCLITests {
    /// A copy of the shipped mappings with `tool` (YAML of one list item under `tools:`) added
    /// and given to the Content Specialist.
    static func mappings(withTool tool: String, agentsEdit: ((String) -> String)? = nil) throws -> URL {
        try TestMappings.copy(
            prefix: "bridge-probe",
            editing: [
                "agents.yaml": {
                    let agents = $0.replacingOccurrences(
                        of: "    tools: [store_data]\n", with: "    tools: [store_data, probe]\n")
                    return agentsEdit?(agents) ?? agents
                },
                "tools.yaml": { $0 + "\n" + tool },
            ])
    }

    /// YAML of one tool for `mappings(withTool:)`: `name`, described "Probe.", with one
    /// required string parameter when `parameter` is given (and its `examples`, as YAML), then
    /// `body` (its `sql:` or `command:` block, written as at the top level).
    static func tool(named name: String = "probe", parameter: String? = nil, examples: String? = nil, _ body: String)
        -> String
    {
        var lines = ["  - name: \(name)", "    description: Probe."]
        if let parameter {
            let schema = examples.map { "{type: string, examples: \($0)}" } ?? "{type: string}"
            lines += [
                "    parameters:", "      type: object", "      properties: {\(parameter): \(schema)}",
                "      required: [\(parameter)]", "      additionalProperties: false",
            ]
        }
        return (lines + body.components(separatedBy: "\n").map { "    " + $0 }).joined(separator: "\n")
    }

    /// A migrated reference database and `mappings(withTool: tool)`, removed after `body`.
    static func withTool(_ tool: String, _ body: (_ url: String, _ dir: URL) async throws -> Void) async throws {
        let url = try await ExecCLITests.migratedReference()
        let dir = try mappings(withTool: tool)
        defer { try? FileManager.default.removeItem(at: dir) }
        try await body(url, dir)
    }

    static func hacked(_ url: String) async throws -> Int {
        try await TestDatabase.count(url, "name = 'HACKED'")
    }

    /// Runs bridge with `args` on `url` with the mappings in `dir`.
    static func run(_ args: [String], _ url: String, _ dir: URL) async throws -> TestProcess.Result {
        try await BridgeBinary.run(args + ["--database-url", url, "--mappings", dir.path])
    }

    /// Runs `bridge exec --offline` with the mappings in `dir`.
    static func execOffline(_ url: String, _ dir: URL) async throws -> TestProcess.Result {
        try await run(["exec", "--offline"], url, dir)
    }

    /// `columns` of the spans of the calls of tool `name`.
    static func toolSpans(_ url: String, _ columns: String, name: String = "probe") async throws -> PostgresRows {
        try await TestDatabase.rows(url, "SELECT \(columns) FROM bridge.spans WHERE span_data->>'name' = '\(name)'")
    }

    @Test func multiStatementToolSQLIsRejectedWithItsPositionAndNeverRuns() async throws {
        let url = try await ExecCLITests.migratedReference()
        for query in [
            "SELECT 1; UPDATE tasks SET name = 'HACKED'",
            "SELECT :key::text AS k; UPDATE tasks SET name = 'HACKED' WHERE :key::text IS NOT NULL",
        ] {
            let dir = try Self.mappings(
                withTool: Self.tool(
                    parameter: "key",
                    """
                    sql:
                      query: "\(query)"
                    """))
            defer { try? FileManager.default.removeItem(at: dir) }
            let before = try await ExecCLITests.snapshot(url)
            let check = try await Self.run(["mappings", "check"], url, dir)
            #expect(check.status == 2, "\(check.stdout)\(check.stderr)")
            // The second statement's own position: the line of `query:` and the column of UPDATE.
            let toolsLines = try String(contentsOf: dir.appendingPathComponent("tools.yaml"), encoding: .utf8)
                .components(separatedBy: "\n")
            let line = try #require(toolsLines.lastIndex { $0.contains("UPDATE tasks SET name = 'HACKED'") }) + 1
            let column =
                try #require(toolsLines[line - 1].range(of: "UPDATE")).lowerBound.utf16Offset(in: toolsLines[line - 1])
                + 1
            #expect(check.stderr.contains("tools.yaml:\(line):\(column):"), "\(check.stderr)")
            #expect(check.stderr.contains("exactly one statement"))
            let dry = try await Self.run(["exec", "--dry-run"], url, dir)
            #expect(dry.status == 2)
            let run = try await Self.execOffline(url, dir)
            #expect(run.status == 2)
            #expect(try await Self.hacked(url) == 0)
            #expect(try await ExecCLITests.snapshot(url) == before)
            // No prepared statement is left behind: the shipped mappings still check clean.
            let again = try await BridgeBinary.run([
                "mappings", "check", "--database-url", url, "--mappings", BridgeBinary.mappings,
            ])
            #expect(again.status == 0, "\(again.stderr)")
        }
    }

    @Test func checksPrepareWritingToolsWithoutRunningThem() async throws {
        try await HardeningCLITests.withTool(
            Self.tool(
                """
                sql:
                  query: "UPDATE tasks SET name = 'HACKED' RETURNING id"
                  writes: true
                """)
        ) { url, dir in
            let before = try await ExecCLITests.snapshot(url)
            let check = try await Self.run(["mappings", "check"], url, dir)
            #expect(check.status == 0, "\(check.stderr)")
            let dry = try await Self.run(["exec", "--dry-run"], url, dir)
            #expect(dry.status == 0, "\(dry.stderr)")
            #expect(try await Self.hacked(url) == 0)
            #expect(try await ExecCLITests.snapshot(url) == before)
        }
    }

    @Test func trailingCommentBehavesAlikeAtCheckAndRunTime() async throws {
        try await HardeningCLITests.withTool(
            Self.tool(
                parameter: "key", examples: "[k1]",
                """
                sql:
                  query: |-
                    SELECT :key::text AS k; -- the key back
                    -- and a last comment
                """)
        ) { url, dir in
            let check = try await Self.run(["mappings", "check"], url, dir)
            #expect(check.status == 0, "\(check.stderr)")
            let run = try await Self.execOffline(url, dir)
            #expect(run.status == 0, "\(run.stderr)")
            let rows = try await Self.toolSpans(url, "error IS NULL AS ok, span_data->>'output' AS output")
            #expect(!rows.isEmpty)
            for r in rows {
                #expect(r.bool("ok") == true, "\(r["output"] ?? "")")
                #expect(r["output"]?.contains("k1") == true, "\(r["output"] ?? "")")
            }
        }
    }

    @Test func aReadOnlyToolThatWritesNamesItsStatement() async throws {
        try await HardeningCLITests.withTool(
            Self.tool(
                """
                sql:
                  query: "UPDATE tasks SET name = 'HACKED' WHERE false RETURNING id"
                """)
        ) { url, dir in
            let run = try await Self.execOffline(url, dir)
            #expect(run.status == 0, "\(run.stderr)")
            let errors = try await Self.toolSpans(url, "error::text AS e")
            #expect(!errors.isEmpty)
            for r in errors {
                let e = r["e"] ?? ""
                #expect(
                    e.contains("UPDATE") && e.contains("writes: false") && !e.contains("cannot execute SELECT"), "\(e)")
            }
            #expect(try await Self.hacked(url) == 0)
        }
    }

    @Test func commandToolsSeeNoSecretsAndStoredDataIsRedacted() async throws {
        let url = try await ExecCLITests.migratedReference()
        // The tool dumps its environment; OPENAI_API_KEY is allowlisted on purpose, so the
        // key reaches the output and only redaction keeps it out of what bridge stores.
        let dir = try Self.mappings(
            withTool: Self.tool(
                """
                command:
                  argv:
                    - /bin/sh
                    - -c
                    - 'env; echo "pw=${PGPASSWORD:-none}"'
                  env: [OPENAI_API_KEY]
                """))
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = BridgeBinary.environment([
            "OPENAI_API_KEY": "sk-probe-key-0123456789", "PGPASSWORD": "pg-probe-password-42",
            "DATABASE_URL": url,
        ])
        let r = try await BridgeBinary.run(["exec", "--offline", "--mappings", dir.path], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stdout.contains("sk-probe-key") && !r.stderr.contains("sk-probe-key"))
        let c = try await TestDatabase.connect(url)
        let stored = try await c.query(
            """
            SELECT (SELECT string_agg(coalesce(result::text, ''), '|') FROM tasks) AS tasks,
                   (SELECT string_agg(coalesce(result::text, '') || coalesce(error_message, ''), '|') FROM task_executions) AS executions,
                   (SELECT string_agg(items::text, '|') FROM bridge.run_transcripts) AS transcripts,
                   (SELECT string_agg(span_data::text || coalesce(error::text, ''), '|') FROM bridge.spans) AS spans
            """
        ).first
        await c.close()
        let outputs = try await Self.toolSpans(url, "span_data->>'output' AS o")
        #expect(!outputs.isEmpty)
        for o in outputs {
            let text = o["o"] ?? ""
            // The allowlisted key arrived (redacted); nothing else of bridge's environment did.
            #expect(text.contains("OPENAI_API_KEY=***"), "\(text)")
            #expect(text.contains("pw=none"), "PGPASSWORD reached the child: \(text)")
            #expect(!text.contains("DATABASE_URL") && !text.contains("BRIDGE_TEST_DATABASE_URL"), "\(text)")
        }
        for column in ["tasks", "executions", "transcripts", "spans"] {
            let text = stored?[column] ?? ""
            #expect(!text.isEmpty, "\(column)")
            #expect(!text.contains("sk-probe-key-0123456789") && !text.contains("pg-probe-password-42"), "\(column)")
        }
        #expect(stored?["transcripts"]?.contains("OPENAI_API_KEY=***") == true)
    }

    @Test func unparsableConnectionStringsNeverEchoThePassword() async throws {
        for bad in [
            "postgres://u:pw-echo-secret@[::1/db", "postgres://u:pw-echo%zzsecret@localhost/db",
            "host=localhost password=pw-echo-secret 'unterminated",
        ] {
            for args in [
                ["mappings", "check", "--mappings", BridgeBinary.mappings],
                ["migrate", "status", "--dir", BridgeBinary.migrations],
            ] {
                let r = try await BridgeBinary.run(args + ["--database-url", bad])
                #expect(r.status == 2, "\(bad): \(r.stderr)")
                #expect(!r.stderr.contains("pw-echo") && !r.stdout.contains("pw-echo"), "\(r.stderr)")
                #expect(!r.stderr.contains("secret"), "\(r.stderr)")
            }
        }
    }

    @Test func migrateMappingsRefusesTableNamesThatAreSQL() async throws {
        let url = try await TestDatabase.createReference(seed: false)
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery("CREATE TABLE x (id int)")
        let attack = "tasks ADD COLUMN IF NOT EXISTS zz int; DROP TABLE x; ALTER TABLE tasks"
        let dir = try TestMappings.copy(
            prefix: "bridge-inject",
            editing: [
                "bridge.yaml": { $0.replacingOccurrences(of: "table: tasks\n", with: "table: \"\(attack)\"\n") }
            ])
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try await BridgeBinary.migrate(url, ["--mappings", dir.path])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("bridge.yaml:") && r.stderr.contains("not a valid identifier"), "\(r.stderr)")
        // Nothing ran: x is still there, no zz column, no bridge schema.
        #expect(try await c.query("SELECT to_regclass('x') IS NOT NULL AS ok").first?.bool("ok") == true)
        #expect(try await c.query("SELECT to_regclass('bridge.spans') IS NULL AS ok").first?.bool("ok") == true)
        #expect(
            try await c.query(
                """
                SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'tasks' AND column_name = 'zz'
                """
            ).first?.int("n") == 0)
        // A --set value is held to the same rule.
        let set = try await BridgeBinary.migrate(url, ["--set", "tasks_table=\(attack)"])
        #expect(set.status == 2, "\(set.stderr)")
        #expect(set.stderr.contains("${tasks_table}"), "\(set.stderr)")
        #expect(try await c.query("SELECT to_regclass('x') IS NOT NULL AS ok").first?.bool("ok") == true)
        await c.close()
    }

    @Test func billionLaughsIsRefusedQuickly() async throws {
        let dir = try TemporaryPath.directory("bridge-laughs")
        defer { try? FileManager.default.removeItem(at: dir) }
        var lines = [
            "version: 1", "tools:", "  - name: t", "    description: d", "    parameters:", "      type: object",
            "      properties:", "        x:", "          type: string",
            "          examples: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]",
        ]
        let names = ["b", "c", "d", "e", "f", "g", "h", "i"]
        for (i, name) in names.enumerated() {
            let prev = i == 0 ? "a" : names[i - 1]
            lines.append(
                "        \(name): {type: string, examples: &\(name) [\(Array(repeating: "*\(prev)", count: 9).joined(separator: ","))]}"
            )
        }
        try lines.joined(separator: "\n").write(
            to: dir.appendingPathComponent("laughs.yaml"), atomically: true, encoding: .utf8)
        let started = Date()
        let r = try await BridgeBinary.run(["mappings", "check", "--static-only", "--mappings", dir.path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("laughs.yaml:") && r.stderr.contains("aliases expand"), "\(r.stderr)")
        // Generous: unbounded, this took over 60 s and 3 GB.
        #expect(Date().timeIntervalSince(started) < 20)
    }

    @Test func badFlagValuesExitTwoNamingTheFlag() async throws {
        let url = try await ExecCLITests.migratedReference()
        let before = try await ExecCLITests.snapshot(url)
        let m = ["--database-url", url, "--mappings", BridgeBinary.mappings]
        let cases: [([String], String)] = [
            (["verify", "--since", "99999999d"] + m, "--since"),
            (["verify", "--since", "yesterday"] + m, "--since"),
            (["exec", "--backfill", "--since", "notadate"] + m, "--since"),
            (
                ["exec", "--offline", "--task", "00000000-0000-0000-0000-00000000abcd"] + m,
                "00000000-0000-0000-0000-00000000abcd"
            ),
            (["verify", "--task", "00000000-0000-0000-0000-00000000abcd"] + m, "00000000-0000-0000-0000-00000000abcd"),
            (["verify", "--task", "not-a-uuid"] + m, "not-a-uuid"),
            (["exec", "--offline", "--http-min-rate", "0"] + m, "--http-min-rate"),
        ]
        for (args, needle) in cases {
            let r = try await BridgeBinary.run(args)
            #expect(r.status == 2, "\(args): \(r.stderr)")
            #expect(r.stderr.contains(needle), "\(args): \(r.stderr)")
            #expect(!r.stderr.contains("SQLSTATE"), "\(args): \(r.stderr)")
        }
        // verify with mappings naming a table that is not there: exit 2 naming it, not a raw SQL error.
        let dir = try Self.mappings(withTool: "", agentsEdit: nil)
        defer { try? FileManager.default.removeItem(at: dir) }
        let bridgeYAML = dir.appendingPathComponent("bridge.yaml")
        try String(contentsOf: bridgeYAML, encoding: .utf8).replacingOccurrences(
            of: "table: task_executions\n", with: "table: task_executionz\n"
        )
        .write(to: bridgeYAML, atomically: true, encoding: .utf8)
        let agents = dir.appendingPathComponent("agents.yaml")
        try String(contentsOf: agents, encoding: .utf8).replacingOccurrences(
            of: "[store_data, probe]", with: "[store_data]"
        )
        .write(to: agents, atomically: true, encoding: .utf8)
        let v = try await Self.run(["verify"], url, dir)
        #expect(v.status == 2, "\(v.stdout)\(v.stderr)")
        #expect(v.stderr.contains("task_executionz") && v.stderr.contains("bridge.yaml:"), "\(v.stderr)")
        #expect(try await ExecCLITests.snapshot(url) == before)
    }

    @Test func nulAndInvalidUTF8FromToolsAreStoredReplacedAndFlagged() async throws {
        let url = try await ExecCLITests.migratedReference()
        let tools =
            Self.tool("command:\n  argv: [/usr/bin/printf, 'a\\000b\\377c']") + "\n"
            + Self.tool(
                named: "probe_sql", parameter: "v", examples: #"["a\0b"]"#, #"sql:\#n  query: "SELECT :v::text AS v""#)
        let dir = try Self.mappings(
            withTool: tools,
            agentsEdit: {
                $0.replacingOccurrences(of: "[store_data, probe]", with: "[store_data, probe, probe_sql]")
            })
        defer { try? FileManager.default.removeItem(at: dir) }
        let failedBefore = try await TestDatabase.count(url, "status = 'failed'")
        let r = try await Self.execOffline(url, dir)
        #expect(r.status == 0, "\(r.stderr)")
        let failed = try await TestDatabase.count(url, "status = 'failed'")
        let command = try await Self.toolSpans(
            url, "span_data->>'output' AS output, span_data->'text_replaced' AS flag, error IS NULL AS ok")
        let sql = try await Self.toolSpans(
            url, "span_data->>'output' AS output, error::text AS error", name: "probe_sql")
        #expect(failed == failedBefore)
        #expect(!command.isEmpty && !sql.isEmpty)
        for row in command {
            #expect(row["output"] == "a\u{FFFD}b\u{FFFD}c", "\(row["output"] ?? "nil")")
            #expect(row["flag"].map { (try? JSONValue.parse($0)) ?? .null } == ["nul": 1, "invalid_utf8": true])
            #expect(row.bool("ok") == true)
        }
        // A NUL in a SQL argument is never cut ("a\0b" stored as "a"): the call is refused, the
        // model is told why, and the run goes on.
        for row in sql {
            #expect(row["error"]?.contains("NUL") == true, "\(row["error"] ?? "nil")")
            #expect(row["output"]?.contains("\"v\":\"a\"") != true)
        }
    }

    @Test func nulFromTheModelIsStoredReplacedAndTheRunGoesOn() async throws {
        let url = try await ExecCLITests.migratedReference()
        let server = try TestHTTPServer { request in
            guard request.path == "/v1/responses", let body = request.json else { return .json([:], status: 404) }
            return .modelReply(
                [
                    "id": "resp_nul", "object": "response", "status": "completed", "model": body["model"] ?? "gpt-4.1",
                    "output": [
                        [
                            "type": "message", "id": "msg_nul", "role": "assistant", "status": "completed",
                            "content": [["type": "output_text", "text": "ok\u{0}done", "annotations": []]],
                        ]
                    ],
                    "usage": ["input_tokens": 10, "output_tokens": 2, "total_tokens": 12],
                ], for: request)
        }
        defer { server.stop() }
        let env = BridgeBinary.openAIEnvironment(server, key: "sk-test-nul")
        let r = try await BridgeBinary.run(
            ["exec", "--limit", "1", "--database-url", url, "--mappings", BridgeBinary.mappings],
            environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(server.requests.filter { $0.path == "/v1/responses" }.count == 1)  // no retries
        let c = try await TestDatabase.connect(url)
        let row = try await c.query(
            """
            SELECT t.status, t.result->>'output' AS output,
                   (SELECT s.span_data->'text_replaced' FROM bridge.spans s
                     WHERE s.trace_id = t.openai_trace_id AND s.span_data->>'type' = 'response') AS flag
            FROM tasks t WHERE t.openai_trace_id IS NOT NULL AND t.result ? 'last_agent'
            """
        ).first
        await c.close()
        #expect(row?["status"] == "completed")
        #expect(row?["output"] == "ok\u{FFFD}done")
        #expect(row?["flag"].map { (try? JSONValue.parse($0)) ?? .null } == ["nul": 1])
    }

    @Test func aModelThatNeverAnswersTimesOutAndIsRetriedLikeA5xx() async throws {
        let url = try await ExecCLITests.migratedReference()
        let server = try TestHTTPServer { _ in TestHTTPResponse.json([:]).delayed(.seconds(120)) }
        defer { server.stop() }
        let env = BridgeBinary.openAIEnvironment(server, key: "sk-test-timeout")
        let started = Date()
        let r = try await BridgeBinary.run(
            [
                "exec", "--limit", "1", "--max-attempts", "1", "--model-timeout", "1",
                "--database-url", url, "--mappings", BridgeBinary.mappings,
            ],
            environment: env)
        #expect(r.status == 1, "\(r.stderr)")
        // Three attempts (the first and two retries, as for a 5xx), each cut at its deadline.
        #expect(server.requests.filter { $0.path == "/v1/responses" }.count == 3)
        #expect(Date().timeIntervalSince(started) < 100)  // generous: unbounded, this waited 300 s and more
        let c = try await TestDatabase.connect(url)
        let e = try await c.query("SELECT error_message FROM task_executions WHERE openai_trace_id IS NOT NULL").first?[
            "error_message"]
        await c.close()
        #expect(e?.lowercased().contains("time") == true, "\(e ?? "nil")")

        let bad = try await BridgeBinary.run([
            "exec", "--offline", "--model-timeout", "0", "--database-url", url, "--mappings", BridgeBinary.mappings,
        ])
        #expect(bad.status == 2 && bad.stderr.contains("--model-timeout"), "\(bad.stderr)")
    }

    @Test func planFlagsAStatementOnAMissingTableAndUpAppliesNothing() async throws {
        // As the origin's supabase setup leaves it: no task_executions table.
        let url = try await TestDatabase.createReference(seed: false)
        let c = try await TestDatabase.connect(url)
        try await c.simpleQuery("DROP TABLE task_executions CASCADE")
        let plan = try await BridgeBinary.run([
            "migrate", "plan", "--database-url", url, "--dir", BridgeBinary.migrations,
        ])
        #expect(plan.status == 1, "\(plan.stdout)\(plan.stderr)")
        let out = plan.stdout + plan.stderr
        #expect(out.contains("0002_trace_columns.sql") && out.contains("task_executions does not exist"), "\(out)")
        let up = try await BridgeBinary.run(["migrate", "--database-url", url, "--dir", BridgeBinary.migrations])
        #expect(up.status == 1, "\(up.stderr)")
        #expect(up.stderr.contains("task_executions"), "\(up.stderr)")
        // Refused up front: not even 0001 ran.
        #expect(try await c.query("SELECT to_regclass('bridge.spans') IS NULL AS ok").first?.bool("ok") == true)
        await c.close()
    }
}
