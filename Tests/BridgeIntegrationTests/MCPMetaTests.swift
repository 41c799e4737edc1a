import BridgeCore
import BridgeMapping
import BridgeRunner
import Foundation
import Testing

/// A durable run's MCP calls carry their idempotency key to the server, in `tools/call`'s `_meta`.
@Suite(.enabled(if: MCPFixture.isAvailable, "needs BRIDGE_MCP_PYTHON (scripts/test.sh)"))
struct MCPMetaTests {
    @Test(.timeLimit(.minutes(3))) func theIdempotencyKeyReachesTheServerInMeta() async throws {
        let config = MCPServerMapping(
            name: "raw",
            transport: .stdio(
                command: MCPFixture.python!,
                args: [MCPFixture.script("raw_server.py"), "echo_meta"],
                env: [], cwd: nil), timeoutMs: 30_000)
        let pool = MCPServerPool(servers: [config], client: nil)
        let key = IdempotencyKey.make(traceId: "trace_0123456789abcdef0123456789abcdef", callId: "call_1")
        let result = try await pool.call(
            server: "raw", tool: "t0", arguments: ["x": "1"],
            meta: [IdempotencyKey.metaKey: .string(key)])
        let text = result.content.first?["text"]?.stringValue ?? ""
        #expect(try JSONValue.parse(text) == [IdempotencyKey.metaKey: .string(key)], "\(text)")
        let plain = try await pool.call(server: "raw", tool: "t0", arguments: ["x": "1"])
        #expect(plain.content.first?["text"]?.stringValue == "{}", "no _meta without a key")
        await pool.shutdown()
    }
}
