import BridgeCore
import Foundation
import Testing

@testable import BridgeMapping

@Suite struct BackfillMappingTests {
    static let agents = """
        agents:
          - {name: A, match: Project Manager}

        """

    @Test func shippedMappingsHaveTheBackfillSection() throws {
        let config = try MappingLoader.load(directory: MappingFixtures.shippedDirectory)
        let logs = try #require(config.backfill?.logs)
        #expect(logs.table == "execution_logs")
        #expect(logs.toolCallTypes == ["tool_call"])
        #expect(logs.createdAtColumn == "created_at")
        #expect(
            logs.toolCall
                == ToolCallKeys(
                    name: "tool", arguments: "arguments", output: "output",
                    startedAt: "started_at", durationMs: "duration_ms", error: nil))
        let refs = MappingValidator.references(config).filter { $0.table == "execution_logs" }
        #expect(Set(refs.compactMap(\.column)) == ["id", "task_id", "type", "content", "created_at"])
    }

    @Test func sectionIsOptionalAndDefaultsApply() throws {
        let none = try MappingLoader.load(documents: [("m.yaml", MappingFixtures.base + Self.agents)])
        #expect(none.backfill == nil)
        let minimal = try MappingLoader.load(documents: [
            (
                "m.yaml",
                MappingFixtures.base + Self.agents + """
                    backfill:
                      logs: {table: logs, tool_call: {name: fn}}
                    """
            )
        ])
        let logs = try #require(minimal.backfill?.logs)
        #expect(logs.table == "logs" && logs.taskColumn == "task_id" && logs.typeColumn == "type")
        #expect(logs.toolCall.name == "fn" && logs.toolCall.arguments == nil && logs.toolCall.durationMs == nil)
    }

    @Test func unknownKeysAndBadValuesAreReportedWithLocations() {
        let issues = MappingFixtures.issues([
            (
                "m.yaml",
                MappingFixtures.base + Self.agents + """
                    backfill:
                      logs:
                        table: execution_logs
                        tool_call_types: []
                        tool_call: {name: tool, argument: arguments}
                      batch: 5
                    """
            )
        ])
        let text = issues.map(\.description).joined(separator: "\n")
        #expect(issues.contains { $0.path.hasPrefix("backfill") && $0.message.contains("batch") }, "\(text)")
        #expect(issues.contains { $0.path.contains("tool_call") && $0.message.contains("argument") }, "\(text)")
        #expect(issues.contains { $0.path.contains("tool_call_types") }, "\(text)")
        #expect(issues.allSatisfy { $0.file == "m.yaml" && $0.line > 0 }, "\(text)")
    }

    @Test func backfillSectionOnlyOnce() {
        let issues = MappingFixtures.issues([
            ("a.yaml", MappingFixtures.base + Self.agents + "backfill: {logs: {table: l}}\n"),
            ("b.yaml", "version: 1\nbackfill: {logs: {table: m}}\n"),
        ])
        #expect(issues.contains { $0.file == "b.yaml" && $0.message.contains("already defined") })
    }
}
