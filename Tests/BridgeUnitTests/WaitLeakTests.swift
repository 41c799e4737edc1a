import BridgeCore
import Testing

@testable import BridgeRunner

/// An MCP request answered in time leaves no timer behind: the pending table is freed as soon
/// as its last user lets go, not when the (long) timeout would have fired.
@Suite struct MCPPendingTimerTests {
    @Test func anAnsweredRequestLeavesNoTimerHoldingThePendingTable() async throws {
        let watched = try await Self.answeredRequest()
        // The cancelled deadline task ends at once and releases the table.
        var freed = false
        for _ in 0..<200 where !freed {
            freed = watched.table == nil
            if !freed { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(freed, "the hour-long timer still holds the pending table")
    }

    final class Weak: Sendable {
        weak let table: MCPPending?
        init(_ table: MCPPending) { self.table = table }
    }

    /// One request with an hour's timeout, answered at once; returns a weak reference to the
    /// table, whose last strong reference ends here.
    static func answeredRequest() async throws -> Weak {
        let table = MCPPending()
        let id = table.allocate()
        let answer = try await table.wait(
            id, method: "tools/call", timeout: .seconds(3600),
            send: { table.deliver(["jsonrpc": "2.0", "id": .number(Double(id)), "result": ["ok": true]]) },
            onAbandon: { _ in Issue.record("an answered request was abandoned") })
        #expect(answer["ok"] == true)
        return Weak(table)
    }
}
