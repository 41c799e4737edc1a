import BridgeCore
import BridgeTraceModel
import Foundation
import Testing

@testable import BridgeMapping
@testable import BridgeRunner

/// Issue 23's probes that need no database: each runs the attack and checks the message.
@Suite struct Hardening3Tests {
    /// MCP servers offering fixed tool lists.
    struct FixedMCP: MCPToolSource {
        var servers: [String: [String]]
        func tools(server: String) async throws(MCPError) -> [MCPTool] {
            (servers[server] ?? []).map { MCPTool(name: $0, description: "", inputSchema: ["type": "object"]) }
        }
        func call(server: String, tool: String, arguments: JSONValue) async throws(MCPError) -> MCPCallResult {
            MCPCallResult(content: [], structuredContent: nil, isError: false)
        }
        func usesStructuredContent(server: String) -> Bool { false }
    }

    static func clash(_ servers: [String: [String]], order: [String]) async -> String {
        var spec = Fixture.team()
        spec.agents["Project Manager"]?.mcpServers = order
        let runner = AgentRunner(
            model: OfflineModel(), tools: FakeTools(), observer: EventLog(), mcp: FixedMCP(servers: servers))
        let result = await runner.run(spec, taskRow: ["id": "42"])
        #expect(result.status == .failed)
        return result.error?.message ?? ""
    }

    /// Item 8: the collision message says what the MCP tool clashes with.
    @Test func mcpToolNameClashesSayWhatTheyClashWith() async {
        let yaml = await Self.clash(["alpha": ["get_team_roles_and_status"]], order: ["alpha"])
        #expect(
            yaml == "MCP server 'alpha' offers tools whose names agent Project Manager already uses: "
                + "get_team_roles_and_status (also a YAML tool of the agent)", "\(yaml)")
        let handoff = await Self.clash(["alpha": ["transfer_to_researcher"]], order: ["alpha"])
        #expect(handoff.hasSuffix("transfer_to_researcher (also a handoff of the agent)"), "\(handoff)")
        let servers = await Self.clash(["alpha": ["x", "y"], "beta": ["x"]], order: ["alpha", "beta"])
        #expect(
            servers
                == "Duplicate tool names found across MCP servers: x (MCP server 'beta' and 'alpha' of agent Project Manager)",
            "\(servers)")
    }

    // MARK: - Item 9: output_type schemas

    static func mapping(schema: String) -> String {
        """
        version: 1
        source: {input: "{{task.name}}"}
        results: {result_column: result}
        agents:
          - name: A
            output_type:
              name: Out
              schema: \(schema)
        """
    }

    static func schemaIssues(_ schema: String) -> [String] {
        do {
            _ = try MappingLoader.load(documents: [("m/a.yaml", mapping(schema: schema))])
            return []
        } catch {
            return error.issues.map(\.description)
        }
    }

    static let obj = #"type: object, additionalProperties: false"#

    /// Schemas no model could answer, or that refer outside themselves, are refused.
    @Test func refsThatDoNotResolveLoopOrLeaveTheSchemaAreRefused() {
        let cases: [(schema: String, message: String)] = [
            (
                "{\(Self.obj), properties: {a: {$ref: '#/$defs/Missing'}}, required: [a], $defs: {B: {type: string}}}",
                "$ref '#/$defs/Missing' does not resolve (local references are #, #/$defs/NAME or #/definitions/NAME; defined: B)"
            ),
            (
                "{\(Self.obj), properties: {a: {$ref: '#/properties/b'}}, required: [a]}",
                "$ref '#/properties/b' does not resolve"
            ),
            (
                "{\(Self.obj), properties: {a: {$ref: 'https://example.com/s.json'}}, required: [a]}",
                "external $ref 'https://example.com/s.json' is not supported: the schema must be self-contained"
            ),
            (
                "{\(Self.obj), properties: {a: {$ref: 'other.json#/$defs/X'}}, required: [a]}",
                "external $ref 'other.json#/$defs/X'"
            ),
            (
                "{\(Self.obj), properties: {a: {$ref: '#/$defs/P'}}, required: [a], $defs: {P: {$ref: '#/$defs/Q'}, Q: {$ref: '#/$defs/P'}}}",
                "$ref loop: #/$defs/P → #/$defs/Q → #/$defs/P never reaches a schema"
            ),
            (
                "{\(Self.obj), properties: {self: {$ref: '#'}}, required: [self]}",
                "no finite JSON value satisfies this schema: a required property refers back to it ($ref) at every level"
            ),
            (
                "{\(Self.obj), properties: {n: {$ref: '#/$defs/Node'}}, required: [n], $defs: {Node: {\(Self.obj), properties: {next: {$ref: '#/$defs/Node'}}, required: [next]}}}",
                "no finite JSON value satisfies this schema"
            ),
            (
                "{\(Self.obj), properties: {a: {$ref: '#/$defs/Bad'}}, required: [a], $defs: {Bad: {type: strnig}}}",
                "'strnig' is not a JSON Schema type"
            ),
        ]
        for (schema, message) in cases {
            let issues = Self.schemaIssues(schema)
            #expect(issues.contains { $0.hasPrefix("m/a.yaml:") && $0.contains(message) }, "\(schema): \(issues)")
        }
        // The validator itself never takes an unresolvable $ref for "anything goes".
        let validator = JSONSchemaValidator(schema: ["type": "object", "properties": ["a": ["$ref": "#/properties/b"]]])
        #expect(validator.violations(of: ["a": 1]).map(\.message) == ["unresolvable $ref '#/properties/b'"])
    }

    /// Every schema the check accepts gets a valid instance from the offline model.
    @Test func theOfflineModelAnswersEveryAcceptedSchema() throws {
        var deep = "{type: string}"
        for i in (1...20).reversed() {
            deep = "{\(Self.obj), properties: {l\(i): \(deep), n\(i): {type: integer}}, required: [l\(i), n\(i)]}"
        }
        let accepted = [
            // A tree: children of the same type, in an array.
            "{\(Self.obj), properties: {name: {type: string}, children: {type: array, items: {$ref: '#'}}}, required: [name, children]}",
            // A linked list: the next node is nullable.
            "{\(Self.obj), properties: {v: {type: integer}, next: {anyOf: [{$ref: '#'}, {type: 'null'}]}}, required: [v, next]}",
            // The same through a type list.
            "{\(Self.obj), properties: {head: {$ref: '#/$defs/Node'}}, required: [head], $defs: {Node: {type: [object, 'null'], additionalProperties: false, properties: {v: {type: string}, next: {$ref: '#/$defs/Node'}}, required: [v, next]}}}",
            // Mutual recursion through $defs, ended by a nullable branch, with a minimum of one item.
            "{\(Self.obj), properties: {a: {$ref: '#/$defs/A'}}, required: [a], $defs: {A: {\(Self.obj), properties: {bs: {type: array, minItems: 1, items: {$ref: '#/$defs/B'}}}, required: [bs]}, B: {\(Self.obj), properties: {a: {anyOf: [{$ref: '#/$defs/A'}, {type: 'null'}]}, tag: {enum: [x, y]}}, required: [a, tag]}}}",
            // 20 levels of nesting.
            deep,
        ]
        for schema in accepted {
            #expect(Self.schemaIssues(schema).isEmpty, "\(schema): \(Self.schemaIssues(schema))")
            let config = try MappingLoader.load(documents: [("m/a.yaml", Self.mapping(schema: schema))])
            let output = try #require(config.agents.first?.outputType?.schema)
            let answer = OfflineModel.structuredAnswer(output, summary: "done")
            let violations = JSONSchemaValidator(schema: output).violations(of: answer)
            #expect(violations.isEmpty, "\(schema): \(answer.compact): \(violations)")
            // As tool arguments too.
            let arguments = OfflineModel.exampleArguments(for: output)
            #expect(JSONSchemaValidator(schema: output).isValid(arguments), "\(arguments.compact)")
        }
    }
}
