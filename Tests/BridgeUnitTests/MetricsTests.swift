import BridgeCore
import Foundation
import Testing

@testable import BridgeMetrics

struct MetricsTests {
    /// docs/grafana-dashboard.json charts every metric bridge emits and no other.
    @Test func dashboardUsesExactlyTheEmittedMetrics() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/grafana-dashboard.json").path
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let dashboard = try JSONValue.parse(Data(text.utf8))
        #expect(dashboard["uid"]?.stringValue == "bridge-workers")
        let regex = try NSRegularExpression(pattern: "bridge_[a-z_]+")
        var used = Set<String>()
        for m in regex.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
            var name = String(text[Range(m.range, in: text)!])
            for suffix in ["_bucket", "_sum", "_count"]
            where name.hasSuffix(suffix) && name.hasSuffix("seconds" + suffix) {
                name = String(name.dropLast(suffix.count))
            }
            if name != "bridge_workers" { used.insert(name) }
        }
        #expect(used == Set(BridgeMetrics.Name.all))
    }

    @Test func everyFamilyHasHelpAndTheExpositionGetsIt() {
        #expect(Set(BridgeMetrics.help.keys) == Set(BridgeMetrics.Name.all))
        #expect(BridgeMetrics.help.values.allSatisfy { !$0.isEmpty && !$0.contains("\n") && !$0.contains("\\") })
        let text =
            "# TYPE bridge_leases gauge\nbridge_leases 0\n# HELP x already\n# TYPE x counter\nx 1\n# TYPE y_total counter\ny_total 2\n"
        #expect(
            BridgeMetrics.withHelp(text) == """
                # HELP bridge_leases Leases this worker held at its last heartbeat.
                # TYPE bridge_leases gauge
                bridge_leases 0
                # HELP x already
                # TYPE x counter
                x 1
                # HELP y_total bridge metric y_total.
                # TYPE y_total counter
                y_total 2

                """)
    }

    @Test func namesFollowPrometheusConventions() {
        for name in BridgeMetrics.Name.all {
            #expect(name.hasPrefix("bridge_"))
            #expect(name.allSatisfy { $0.isLowercase || $0 == "_" })
        }
        let counters = BridgeMetrics.Name.all.filter { $0.hasSuffix("_total") }
        #expect(counters.count == 12)
        #expect(BridgeMetrics.Name.all.filter { $0.hasSuffix("_seconds") }.count == 4)
    }
}

struct LabelGuardTests {
    @Test func labelValuesStayBounded() {
        let guardian = LabelGuard(maxValuesPerLabel: 3)
        #expect(guardian.value("get_team_roles_and_status", for: "tool") == "get_team_roles_and_status")
        #expect(guardian.value("gpt-4.1-mini", for: "model") == "gpt-4.1-mini")
        // Odd text and overlong values never reach a label.
        #expect(guardian.value("a\"b", for: "tool") == "other")
        #expect(guardian.value("é", for: "tool") == "other")
        #expect(guardian.value(String(repeating: "x", count: 65), for: "tool") == "other")
        #expect(guardian.value("", for: "tool") == "other")
        // At most 3 distinct values per label; known ones keep their name.
        #expect(guardian.value("b", for: "tool") == "b")
        #expect(guardian.value("c", for: "tool") == "c")
        #expect(guardian.value("d", for: "tool") == "other")
        #expect(guardian.value("b", for: "tool") == "b")
        #expect(guardian.value("d", for: "model") == "d")
    }
}
