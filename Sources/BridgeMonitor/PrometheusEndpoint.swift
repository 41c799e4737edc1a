import BridgeMetrics
import CoreMetrics
import Foundation
import Prometheus
import Synchronization

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
    // Empty default: nothing is exposed before `serve` or `bootstrap`.
    public static func exposition() -> String { state.existing.map { BridgeMetrics.withHelp($0.emitToString()) } ?? "" }

    final class Bootstrap: Sendable {
        /// The registry, once made; held while it is made, so the process bootstraps once.
        private let made = Mutex<PrometheusCollectorRegistry?>(nil)

        var existing: PrometheusCollectorRegistry? { made.withLock { $0 } }

        func registry() -> PrometheusCollectorRegistry {
            made.withLock { made in
                if let made { return made }
                let registry = Self.make()
                made = registry
                return registry
            }
        }

        private static func make() -> PrometheusCollectorRegistry {
            let registry = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: registry)
            let seconds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
            let buckets = seconds.map { Duration.seconds(fractional: $0) }
            factory.defaultDurationHistogramBuckets = buckets
            MetricsSystem.bootstrap(factory)
            BridgeMetrics.registerBaseline()
            return registry
        }
    }
}
