import BridgeCore
import BridgeMapping
import Testing

@testable import BridgeWorker

/// Tokens that the mappings' HTTP headers take from the environment are redacted like API keys.
@Suite struct HeaderSecretsTests {
    @Test func httpToolAndMCPHeaderValuesAreSecrets() throws {
        let yaml = """
            version: 1
            source:
              input: "{{task.name}}"
              agent_selection: {match_column: role, task_column: agent_id, default_agent: A}
            results: {result_column: result}
            agents: [{name: A, instructions: hi, tools: [fetch]}]
            tools:
              - name: fetch
                description: fetch
                parameters: {type: object, properties: {}, required: [], additionalProperties: false}
                http: {url: "http://127.0.0.1:9/x", headers: {Authorization: "Bearer ${env:TOOL_TOKEN}", X-Plain: "abc"}}
            mcp_servers:
              - name: remote
                streamable_http: {url: "http://127.0.0.1:9/mcp", headers: {Authorization: "Bearer ${MCP_TOKEN}"}}
            """
        let config = try MappingLoader.load(documents: [("bridge.yaml", yaml)])
        let env = Environment(["TOOL_TOKEN": "tool-secret-123", "MCP_TOKEN": "mcp-secret-456", "OTHER": "not-a-header"])
        let secrets = Set(ExecApp.headerSecrets(config, env))
        #expect(secrets == ["tool-secret-123", "mcp-secret-456"])
    }
}
