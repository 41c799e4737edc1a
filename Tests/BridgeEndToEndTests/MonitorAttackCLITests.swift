import BridgeCore
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

/// Issue 23 item 10: `bridge top` and `bridge trace tail` against hostile names and typos.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct MonitorAttackCLITests {
    @Test func topAndTailNeverPrintRawControlCharactersAndTailNamesAMissingTask() async throws {
        let url = try await ExecCLITests.migratedReference()
        let common = ["--database-url", url, "--mappings", BridgeBinary.mappings]
        let env = BridgeBinary.environment(["OPENAI_AGENTS_DISABLE_TRACING": "1"])
        let task = try #require(
            try await TestDatabase.rows(
                url,
                """
                SELECT t.id::text AS id FROM tasks t JOIN agents a ON a.id = t.agent_id
                WHERE a.role = 'Content Specialist' AND t.status = 'pending' ORDER BY t.created_at LIMIT 1
                """
            ).first?["id"])
        let run = try await BridgeBinary.run(["exec", "--offline", "--task", task] + common, environment: env)
        #expect(run.status == 0, "\(run.stderr)")
        // A tool name with a screen clear, a bell, a newline, a C1 control and a bidi override.
        let evil = "store\u{1B}[2J\u{1B}]0;pwned\u{07}\n\u{9B}31m\u{202E}data"
        let c = try await TestDatabase.connect(url)
        let renamed = try await c.query(
            """
            UPDATE bridge.spans SET span_data = jsonb_set(span_data, '{name}', to_jsonb(\(evil)::text))
            WHERE span_data->>'type' = 'function'
            """
        ).affectedRows
        #expect(renamed > 0)
        await c.close()
        let raw: [Character] = ["\u{1B}", "\u{07}", "\u{9B}", "\u{202E}"]
        let top = try await BridgeBinary.run(["top", "--once"] + common, environment: env)
        #expect(top.status == 0, "\(top.stderr)")
        #expect(!top.stdout.contains { raw.contains($0) }, "\(top.stdout.debugDescription)")
        #expect(top.stdout.contains("store\\u{1B}[2J"), "\(top.stdout)")
        let tail = try await BridgeBinary.run(
            ["trace", "tail", "--task", task, "--database-url", url], environment: env)
        #expect(tail.status == 0, "\(tail.stderr)")
        #expect(tail.stdout.contains("store\\u{1B}[2J"), "\(tail.stdout)")
        #expect(!tail.stdout.contains { raw.contains($0) })

        // A task id with a typo: said, exit 2, with or without --follow.
        let typo = String(task.dropLast()) + (task.hasSuffix("0") ? "1" : "0")
        for args in [["--task", typo], ["--task", typo, "--follow"], ["--task", "not-a-uuid"]] {
            let r = try await BridgeBinary.run(["trace", "tail"] + args + common, environment: env)
            #expect(r.status == 2, "\(args): \(r.stdout)\(r.stderr)")
            #expect(r.stderr.contains("--task: no task with tasks.id = \(args[1])"), "\(r.stderr)")
            #expect(r.stdout.isEmpty)
        }
        // A task that exists but has not run: no trace yet, said on stderr, exit 0.
        let idle = try #require(
            try await TestDatabase.rows(
                url,
                """
                SELECT id::text AS id FROM tasks WHERE status = 'pending' AND id <> '\(task)' LIMIT 1
                """
            ).first?["id"])
        let quiet = try await BridgeBinary.run(["trace", "tail", "--task", idle] + common, environment: env)
        #expect(quiet.status == 0 && quiet.stderr.contains("task \(idle) has no trace yet"), "\(quiet.stderr)")
    }
}
