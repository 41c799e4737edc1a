import Foundation
import Testing

@testable import BridgeMapping

/// docs/mappings.md's key table is the loader's declarations, rendered: a key added to, renamed
/// in or removed from a section fails here until scripts/gen-mapping-keys.sh is run.
@Suite struct MappingKeyTableTests {
    @Test func docsTableIsGeneratedFromTheDeclarations() throws {
        let page = try String(
            contentsOf: MappingFixtures.projectRoot.appendingPathComponent("docs/mappings.md"), encoding: .utf8)
        let begin = try #require(page.range(of: MappingKeyTable.beginMarker), "docs/mappings.md has no key table")
        let end = try #require(page.range(of: MappingKeyTable.endMarker, range: begin.upperBound..<page.endIndex))
        let checkedIn = String(page[begin.upperBound..<end.lowerBound]).trimmingCharacters(in: .newlines)
        let generated = MappingKeyTable.markdown().trimmingCharacters(in: .newlines)
        #expect(checkedIn == generated, "docs/mappings.md is out of date: run scripts/gen-mapping-keys.sh")
    }

    @Test func everyKeyHasOneRowAndADescription() {
        let rows = MappingKeyTable.rows
        #expect(Set(rows.map(\.path)).count == rows.count)
        #expect(rows.allSatisfy { !$0.summary.isEmpty && !$0.kind.isEmpty })
        for path in ["version", "source.status.pending", "tools[].sql.max_rows", "pricing.<model>.cached_input"] {
            #expect(rows.contains { $0.path == path }, "\(path)")
        }
    }

    /// The unknown-key check and the lookups read the same declarations: every declared key of
    /// a section is accepted, and only those.
    @Test func theLoaderAcceptsExactlyTheDeclaredKeys() {
        #expect(LoadState.agentKeys == Keys.Agent.allCases.map(\.rawValue))
        let issues = MappingFixtures.issues([
            (
                "m.yaml",
                """
                version: 1
                source: {input: x, stauts: {}}
                results: {}
                agents: [{name: A}]
                """
            )
        ])
        #expect(
            issues.map(\.description) == ["m.yaml:2:20: source.stauts: unknown key 'stauts' (did you mean 'status'?)"])
    }
}
