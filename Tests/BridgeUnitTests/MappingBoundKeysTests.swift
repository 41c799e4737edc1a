import BridgeCore
import Testing

@testable import BridgeMapping

/// Keys bound to a field of their section's model (`ModelKeySet`) take the field's default when
/// left out, are read into it when given, and are checked against their declaration.
@Suite struct MappingBoundKeysTests {
    /// Loads `sections` after the base mapping, whose tasks have a group (budgets need one).
    static func load(_ sections: String) throws -> MappingConfig {
        let base = MappingFixtures.base.replacingOccurrences(of: "source:\n", with: "source:\n  group_column: wid\n")
        return try MappingLoader.load(documents: [("m.yaml", base + sections)])
    }

    @Test func leftOutTheyTakeTheModelsDefaults() throws {
        let c = try Self.load(
            """
            agents: [{name: A}]
            guardrails: [{name: g, sql: {query: "SELECT false AS tripwire_triggered"}}]
            mcp_servers: [{name: s, streamable_http: {url: "http://127.0.0.1:1/mcp"}}]
            budgets: {table: workspaces, limit: budget_usd}
            sessions: {key: "{{task.id}}"}
            """)
        #expect(c.agents.first?.model == "gpt-4.1")
        #expect(c.guardrails.first?.runInParallel == true)
        let server = try #require(c.mcpServers.first)
        #expect(!server.cacheToolsList && server.timeoutMs == 30_000 && !server.useStructuredContent)
        #expect(c.budgets?.key == "id" && c.budgets?.onExceeded == .hold && c.budgets?.spentColumn == nil)
        #expect(c.sessions?.limit == 50)
    }

    @Test func givenTheyAreReadIntoTheirFields() throws {
        let c = try Self.load(
            """
            agents: [{name: A, model: gpt-5}]
            guardrails: [{name: g, sql: {query: "SELECT false AS tripwire_triggered"}, run_in_parallel: false}]
            mcp_servers:
              - {name: s, streamable_http: {url: "http://127.0.0.1:1/mcp"}, cache_tools_list: true, timeout_ms: 3600000,
                 use_structured_content: true}
            budgets: {table: workspaces, key: wid, limit: budget_usd, spent_column: spent, on_exceeded: fail}
            sessions: {key: "{{task.id}}", limit: 10000}
            """)
        #expect(c.agents.first?.model == "gpt-5")
        #expect(c.guardrails.first?.runInParallel == false)
        let server = try #require(c.mcpServers.first)
        #expect(server.cacheToolsList && server.timeoutMs == 3_600_000 && server.useStructuredContent)
        #expect(c.budgets?.key == "wid" && c.budgets?.onExceeded == .fail && c.budgets?.spentColumn == "spent")
        #expect(c.sessions?.limit == 10_000)
    }

    @Test(arguments: [
        (
            "sessions: {key: \"{{task.id}}\", limit: 10001}",
            "m.yaml:7:39: sessions.limit: must be at most 10000"
        ),
        (
            "mcp_servers: [{name: s, streamable_http: {url: \"http://h/mcp\"}, timeout_ms: 0}]",
            "m.yaml:7:77: mcp_servers[0].timeout_ms: must be at least 1"
        ),
        // Read with the section's other bound keys: reported even when the table is missing.
        (
            "budgets: {limit: budget_usd, spent_column: \"\"}",
            "m.yaml:7:44: budgets.spent_column: must not be empty"
        ),
        (
            "approvals: {table: requests, expires_after: soon}",
            "m.yaml:7:45: approvals.expires_after: expected a duration above 0 and at most 1e9 s, such as 30m, 24h or 7d, got 'soon'"
        ),
        // Not finite, or past `Duration.maximumSeconds`: refused at load, not at the first approval.
        (
            "approvals: {table: requests, expires_after: inf}",
            "m.yaml:7:45: approvals.expires_after: expected a duration above 0 and at most 1e9 s, such as 30m, 24h or 7d, got 'inf'"
        ),
        (
            "approvals: {table: requests, expires_after: 1e300d}",
            "m.yaml:7:45: approvals.expires_after: expected a duration above 0 and at most 1e9 s, such as 30m, 24h or 7d, got '1e300d'"
        ),
    ])
    func aBadValueIsAnIssueAtTheValue(section: String, issue: String) {
        let issues = MappingFixtures.issues([("m.yaml", MappingFixtures.base + "agents: [{name: A}]\n" + section)])
        #expect(issues.map(\.description).contains(issue), "\(issues)")
    }

    /// A mapping's durations: `s`, `m`, `h` or `d`, or plain seconds; spaces and tabs around are
    /// dropped; the bound is `Duration.maximumSeconds`, inclusive.
    @Test(arguments: [
        ("90s", 90.0), ("30m", 1_800), ("24h", 86_400), ("7d", 604_800), ("45", 45), ("0.5", 0.5),
        (" 2h\t", 7_200), ("1.5h", 5_400), ("1e3s", 1_000), ("1e9", 1e9), ("1000000000s", 1e9),
    ])
    func durationsRead(text: String, seconds: Double) {
        #expect(MappingDuration.seconds(text) == seconds)
    }

    /// What a mapping refuses although another duration parser takes it: zero, `w`, `ms`, `min`,
    /// an upper-case unit, past the bound, not finite, hex.
    @Test(arguments: [
        "", "s", "0", "0s", "-0", "-5m", "5w", "5ms", "2min", "5S", "5 m", "1000000001", "infd", "nan", "1e400",
        "0x1p4m",
    ])
    func durationsRefused(_ bad: String) {
        #expect(MappingDuration.seconds(bad) == nil)
    }

    /// A duration default is shown in the largest unit that holds it whole, and reads back as
    /// the same number of seconds.
    @Test func durationsRoundTripThroughTheirText() {
        #expect(MappingDuration.text(86_400) == "1d")
        #expect(MappingDuration.text(5_400) == "90m")
        #expect(MappingDuration.text(90) == "90s")
        #expect(MappingDuration.text(0.5) == "0.5")
        for seconds in [86_400, 5_400, 90, 0.5, 604_800] {
            #expect(MappingDuration.seconds(MappingDuration.text(seconds)) == seconds)
        }
        #expect(MappingDuration.seconds("24h") == 86_400 && MappingDuration.seconds("soon") == nil)
        #expect(MappingDuration.seconds("nan") == nil && MappingDuration.seconds("-inf") == nil)
        // The bound is `Duration(parsing:)`'s, inclusive; past it nothing loads.
        #expect(MappingDuration.seconds("\(Int(Duration.maximumSeconds))") == Duration.maximumSeconds)
        #expect(MappingDuration.seconds("\(Int(Duration.maximumSeconds) + 1)s") == nil)
        // A count too large for an Int is written as plain seconds instead of trapping.
        let days = 86_400 * 0x1p70  // a whole number of days, 2^70 of them
        #expect(MappingDuration.text(days) == "\(days)")
        #expect(
            Keys.Approvals.expiresAfter.declaredDefault == MappingDuration.text(ApprovalsMapping().expiresAfterSeconds))
    }
}
