import BridgeMetrics
import CoreMetrics
import Foundation
import Prometheus

/// The Prometheus side of `bridge exec --metrics-addr`: bootstraps swift-metrics with a
/// swift-prometheus registry (so every `BridgeMetrics` instrument lands there) and serves it.
public enum PrometheusEndpoint {
    private static let state = Bootstrap()

    /// Bootstraps the metrics system (once per process) and serves `GET /metrics` on
    /// `hostPort`. Throws `MetricsServerError` (exit 2) for a bad or busy address.
    public static func serve(hostPort: String) throws -> MetricsServer {
        let registry = state.registry()
        return try MetricsServer(hostPort: hostPort) { Array(BridgeMetrics.withHelp(registry.emitToString()).utf8) }
    }

    /// The tool and model families at 0 for the mappings' tools and models (after `serve` or
    /// `bootstrap`), so every known series exists from the first scrape.
    public static func registerKnown(tools: [String], models: [String]) {
        BridgeMetrics.registerKnown(tools: tools, models: models)
    }

    /// Bootstraps the metrics system (once per process) without serving it (OTLP push only).
    public static func bootstrap() { _ = state.registry() }

    /// The text exposition as served, `# HELP` lines included (after `serve` or `bootstrap`;
    /// empty before).
    public static func exposition() -> String { state.existing.map { BridgeMetrics.withHelp($0.emitToString()) } ?? "" }

    final class Bootstrap: @unchecked Sendable {
        // @unchecked Sendable: `made` is only touched with `lock` held.
        private let lock = NSLock()
        private var made: PrometheusCollectorRegistry?

        var existing: PrometheusCollectorRegistry? { lock.withLock { made } }

        func registry() -> PrometheusCollectorRegistry {
            lock.lock()
            defer { lock.unlock() }
            if let made { return made }
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            let seconds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
            let buckets = seconds.map { Duration.milliseconds(Int64($0 * 1000)) }
            factory.defaultDurationHistogramBuckets = buckets
            MetricsSystem.bootstrap(factory)
            made = registry
            BridgeMetrics.registerBaseline()
            return registry
        }
    }
}
