import BridgeTestSupport
import Foundation
import Testing

/// `bridge mappings keys`, which scripts/gen-mapping-keys.sh runs: its Markdown is the table
/// checked into docs/mappings.md, and it stays out of `bridge mappings --help`.
@Suite struct MappingsKeysCLITests {
    @Test func markdownIsTheTableOfTheDocs() async throws {
        let r = try await BridgeBinary.run(["mappings", "keys", "--markdown"])
        #expect(r.status == 0, "\(r.stderr)")
        let page = try String(
            contentsOf: TestDatabase.projectRoot.appendingPathComponent("docs/mappings.md"), encoding: .utf8)
        let table = page.components(separatedBy: "\n")
            .drop { !$0.hasPrefix("<!-- mapping-keys:begin") }.dropFirst()
            .prefix { !$0.hasPrefix("<!-- mapping-keys:end") }
        #expect(!table.isEmpty)
        #expect(r.stdout == table.joined(separator: "\n") + "\n")
    }

    @Test func plainListingAndHiddenFromHelp() async throws {
        let r = try await BridgeBinary.run(["mappings", "keys"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("source.table: name, default `tasks` — the task table"))
        #expect(r.stdout.contains("tools[].sql.query: SQL (required) — "))
        let help = try await BridgeBinary.run(["mappings", "--help"])
        #expect(help.stdout.contains("check") && !help.stdout.contains("keys"))
    }
}
