import BridgeCore
import BridgePostgres
import BridgeTestSupport
import Foundation
import Testing

/// Attacks on `bridge approve` / `reject` (issue 23 items 3, 8 and 10): each runs the command,
/// then checks the message, the exit status and that nothing was changed that should not be.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct ApprovalAttackCLITests {
    /// A migrated reference database with one Project Manager task paused on its request.
    static func paused() async throws -> (
        url: String, c: PostgresConnection, task: String, request: String, common: [String]
    ) {
        let url = try await ExecCLITests.migratedReference()
        let c = try await TestDatabase.connect(url)
        let task = try await ApprovalCLITests.managerTask(c)
        let common = ["--database-url", url, "--mappings", BridgeBinary.mappings]
        let run = try await ApprovalCLITests.bridge(["exec", "--offline", "--task", task] + common, Self.env)
        #expect(run.status == 0 && run.stdout.contains("waiting for approval 1"), "\(run.stdout)\(run.stderr)")
        let request = try #require(
            try await c.query(
                """
                SELECT id::text AS id FROM human_feedback_requests WHERE context->>'task_id' = \(task)
                """
            ).first?["id"])
        return (url, c, task, request, common)
    }

    static var env: [String: String] { BridgeBinary.environment(["OPENAI_AGENTS_DISABLE_TRACING": "1"]) }

    /// Runs `bridge args + common`; expects exit `status` and `message` in what it said: on
    /// stdout when it succeeded, on stderr when not.
    @discardableResult
    static func decide(
        _ args: [String], _ common: [String], exits status: Int32, saying message: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> TestProcess.Result {
        let r = try await ApprovalCLITests.bridge(args + common, env)
        let said = status == 0 ? r.stdout : r.stderr
        #expect(r.status == status, "\(args): \(r.stdout)\(r.stderr)", sourceLocation: sourceLocation)
        #expect(said.contains(message), "\(said)", sourceLocation: sourceLocation)
        return r
    }

    /// The request row's decision columns, as text.
    static func state(_ c: PostgresConnection, _ id: String) async throws -> String {
        let row = try await c.query(
            """
            SELECT status, coalesce(response::text, '-') AS response, coalesce(responded_at::text, '-') AS at
            FROM human_feedback_requests WHERE id = \(id)::uuid
            """
        ).first
        return "\(row?["status"] ?? "?") \(row?["response"] ?? "?") \(row?["at"] ?? "?")"
    }

    @Test func anExpiredRequestCannotBeApprovedAndItsCallNeverRuns() async throws {
        let (_, c, task, id, common) = try await Self.paused()
        try await c.query(
            "UPDATE human_feedback_requests SET expires_at = now() - interval '1 minute' WHERE id = \(id)::uuid")
        let before = try await Self.state(c, id)
        for verb in ["approve", "reject"] {
            let r = try await Self.decide([verb, id], common, exits: 1, saying: "approval request \(id) has expired")
            #expect(r.stdout.isEmpty)
        }
        #expect(try await Self.state(c, id) == before, "nothing decided")
        #expect(before.hasPrefix("pending - -"))
        // The run resumes with the expiry as a rejection: the call never runs.
        let resumed = try await ApprovalCLITests.bridge(["exec", "--offline", "--task", task] + common, Self.env)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let row = try await c.query(
            """
            SELECT t.status, (SELECT count(*) FROM tasks s WHERE s.parent_task_id = t.id) AS subtasks,
                   (SELECT sp.span_data->'data'->>'decision' FROM bridge.spans sp
                     WHERE sp.trace_id = t.openai_trace_id AND sp.span_data->>'name' = 'approval') AS decision
            FROM tasks t WHERE t.id = \(task)::uuid
            """
        ).first
        #expect(row?["status"] == "completed" && row?["subtasks"] == "0", "\(String(describing: row))")
        #expect(row?["decision"] != "approved")
        #expect(try await Self.state(c, id).hasPrefix("expired "))
        await c.close()
    }

    @Test func malformedAndUpperCaseIdsAndWhoDecided() async throws {
        let (url, c, _, id, common) = try await Self.paused()
        let before = try await Self.state(c, id)
        // Not a uuid at all: bad input, exit 2, with the key's type.
        for bad in ["not-a-uuid", "1; DROP TABLE tasks", String(id.dropLast())] {
            try await Self.decide(
                ["approve", bad], common, exits: 2,
                saying: "'\(bad)' is not an approval request id: human_feedback_requests.id is uuid")
        }
        // A well-formed uuid that is no request: exit 1.
        try await Self.decide(
            ["approve", "00000000-0000-0000-0000-000000000000"], common, exits: 1,
            saying: "is not a pending approval request")
        #expect(try await Self.state(c, id) == before)
        #expect(try await TestDatabase.count(url, "true", table: "tasks") > 0)

        // The upper-case form of the id is the same uuid; `reject` records itself as the decider.
        let upper = id.uppercased()
        try await Self.decide(
            ["reject", upper, "--message", "No."], common, exits: 0, saying: "rejected \(upper); the paused run of task"
        )
        let response = try await c.query("SELECT status, response FROM human_feedback_requests WHERE id = \(id)::uuid")
            .first
        #expect(response?["status"] == "rejected")
        let json = try JSONValue.parse(response?["response"] ?? "")
        #expect(json["by"]?.stringValue?.hasSuffix(" (bridge reject)") == true, "\(json.compact)")
        #expect(json["decision"] == "rejected" && json["message"] == "No.")
        await c.close()
    }

    @Test func approvingOneOfTwoRequestsSaysTheRunStillWaits() async throws {
        let (_, c, task, first, common) = try await Self.paused()
        // A second call of the same turn waiting on its own request.
        let second = try #require(
            try await c.query(
                """
                INSERT INTO human_feedback_requests (workspace_id, request_type, title, description, proposed_actions, context, expires_at)
                SELECT workspace_id, request_type, title, description, proposed_actions, context, expires_at
                FROM human_feedback_requests WHERE id = \(first)::uuid RETURNING id::text AS id
                """
            ).first?["id"])
        try await c.query(
            """
            INSERT INTO bridge.approval_waits (request_key, task_key, call_id, tool_name, arguments)
            SELECT \(second), task_key, call_id || '-2', tool_name, arguments FROM bridge.approval_waits WHERE request_key = \(first)
            """)
        let one = try await Self.decide(
            ["approve", first], common, exits: 0,
            saying: "approved \(first); the run of task \(task) still waits for 1 other request: \(second)")
        #expect(!one.stdout.contains("resumes"))
        try await Self.decide(
            ["approve", second], common, exits: 0,
            saying: "approved \(second); the paused run of task \(task) resumes on the next `bridge exec`")
        let by = try await c.query(
            "SELECT response->>'by' AS by FROM human_feedback_requests WHERE id = \(first)::uuid"
        ).first?["by"]
        #expect(by?.hasSuffix(" (bridge approve)") == true)
        await c.close()
    }
}
