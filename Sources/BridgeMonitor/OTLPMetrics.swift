import BridgeCore
import BridgeHTTP
import BridgeTracing
import Foundation
import Synchronization

/// The worker's metrics pushed over OTLP/HTTP (`ExportMetricsServiceRequest`, protobuf by
/// default, JSON on request, gzip when asked, as for traces), the same instruments as
/// `/metrics`: counters as cumulative monotonic sums, gauges, histograms with the same bounds.
/// The values are read from the Prometheus registry's exposition, so both outputs always agree.
public final class OTLPMetricsPusher: Sendable {
    public let endpoint: String
    let headers: [(String, String)]
    let serviceName: String
    let instance: String
    let interval: Duration
    let client: HTTPClient
    let encoding: OTLPProtocol
    let compression: OTLPCompression
    let startedAt = Date()
    private let task: LockedTask

    /// From the environment: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`; headers as for traces;
    /// protocol and compression as for traces (`OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, …);
    /// `OTEL_METRIC_EXPORT_INTERVAL` (ms, default 60000); off with `OTEL_METRICS_EXPORTER=none`.
    /// Throws `OTLPConfigurationError` (exit 2) for a protocol or compression it cannot use.
    public static func fromEnvironment(_ env: Environment, instance: String) throws -> OTLPMetricsPusher? {
        guard env["OTEL_METRICS_EXPORTER"]?.lowercased() != "none",
            let c = try OTLPExporter.Configuration(signal: "metrics", env)
        else { return nil }
        let ms = env["OTEL_METRIC_EXPORT_INTERVAL"].flatMap { Int($0) }.map { max(100, $0) } ?? 60_000
        return OTLPMetricsPusher(
            endpoint: c.endpoint, headers: c.headers, serviceName: env["OTEL_SERVICE_NAME"] ?? "bridge",
            instance: instance, interval: .milliseconds(ms), encoding: c.encoding, compression: c.compression)
    }

    public init(
        endpoint: String, headers: [(String, String)], serviceName: String, instance: String, interval: Duration,
        encoding: OTLPProtocol = .protobuf, compression: OTLPCompression = .none
    ) {
        self.endpoint = endpoint
        self.encoding = encoding
        self.compression = compression
        self.headers = headers
        self.serviceName = serviceName
        self.instance = instance
        self.interval = interval
        self.client = HTTPClient()
        self.task = LockedTask()
    }

    /// Header values are secrets (they usually carry API keys).
    public var secrets: [String] { headers.map(\.1).filter { $0.count >= 3 } }

    /// Pushes every `interval` until `finish()`; failures are reported through `log` (the next
    /// push carries the cumulative values again, so nothing is lost but resolution).
    public func start(exposition: @escaping @Sendable () -> String, log: @escaping @Sendable (String) -> Void) {
        task.set(
            Task { [self] in
                var failing = false
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    if Task.isCancelled { break }
                    let error = await push(exposition())
                    if let error, !failing {
                        log("metrics: OTLP push to \(endpoint) failed: \(error); retrying every interval")
                    }
                    if error == nil && failing { log("metrics: OTLP push to \(endpoint) works again") }
                    failing = error != nil
                }
            })
    }

    /// Stops the loop and pushes the final values once. Returns the error, if any.
    @discardableResult
    public func finish(exposition: String) async -> String? {
        task.cancel()
        let error = await push(exposition)
        client.shutdown()
        return error
    }

    /// POSTs one snapshot; nil when the collector accepted it.
    func push(_ text: String) async -> String? {
        var h = HTTPHeaders(headers)
        h.replaceOrAdd("Content-Type", encoding.contentType)
        var payload = encoding == .protobuf ? protobufBody(text) : Array(body(text).compact.utf8)
        if compression == .gzip {
            payload = Gzip.compress(payload)
            h.replaceOrAdd("Content-Encoding", "gzip")
        }
        var request = HTTPRequest(method: .post, url: endpoint, headers: h, body: payload)
        request.deadline = .now + .seconds(10)
        do {
            let r = try await client.execute(request)
            if r.status == 415 {
                let other: OTLPProtocol = encoding == .protobuf ? .json : .protobuf
                return Redaction.scrub(
                    "HTTP 415: the receiver does not accept \(encoding.rawValue); set "
                        + "\(OTLPExporter.Configuration.protocolVariable(signal: "metrics"))=\(other.rawValue)",
                    secrets: secrets)
            }
            return (200..<300).contains(r.status) ? nil : Redaction.scrub("HTTP \(r.status)", secrets: secrets)
        } catch {
            return Redaction.scrub("\(error)", secrets: secrets)
        }
    }

    // MARK: - Encoding

    /// The `ExportMetricsServiceRequest` for one exposition.
    func body(_ text: String, now: Date = Date()) -> JSONValue {
        let families = PrometheusText.parse(text)
        let time = JSONValue.string(OTLPExporter.unixNanos(now))
        let start = JSONValue.string(OTLPExporter.unixNanos(startedAt))
        func attrs(_ labels: [(String, String)]) -> JSONValue {
            .array(labels.map { ["key": .string($0.0), "value": ["stringValue": .string($0.1)]] })
        }
        var metrics: [JSONValue] = []
        for f in families {
            switch f.type {
            case "counter":
                metrics.append([
                    "name": .string(f.name),
                    "sum": [
                        "aggregationTemporality": 2, "isMonotonic": true,
                        "dataPoints": .array(
                            f.samples.map {
                                [
                                    "attributes": attrs($0.labels), "startTimeUnixNano": start, "timeUnixNano": time,
                                    "asDouble": .number($0.value),
                                ]
                            }),
                    ],
                ])
            case "gauge":
                metrics.append([
                    "name": .string(f.name),
                    "gauge": [
                        "dataPoints": .array(
                            f.samples.map {
                                ["attributes": attrs($0.labels), "timeUnixNano": time, "asDouble": .number($0.value)]
                            })
                    ],
                ])
            case "histogram":
                metrics.append([
                    "name": .string(f.name), "unit": f.name.hasSuffix("_seconds") ? "s" : "",
                    "histogram": [
                        "aggregationTemporality": 2,
                        "dataPoints": .array(
                            f.histogramPoints().map { p in
                                [
                                    "attributes": attrs(p.labels), "startTimeUnixNano": start, "timeUnixNano": time,
                                    "count": .string(String(Int64(p.count))), "sum": .number(p.sum),
                                    "bucketCounts": .array(p.bucketCounts.map { .string(String(Int64($0))) }),
                                    "explicitBounds": .array(p.bounds.map { .number($0) }),
                                ]
                            }),
                    ],
                ])
            default:
                continue
            }
        }
        return [
            "resourceMetrics": [
                [
                    "resource": [
                        "attributes": attrs([("service.name", serviceName), ("service.instance.id", instance)])
                    ],
                    "scopeMetrics": [["scope": ["name": "bridge"], "metrics": .array(metrics)]],
                ]
            ]
        ]
    }
}

extension OTLPMetricsPusher {
    /// The same `ExportMetricsServiceRequest` as `body(_:)`, in protobuf (opentelemetry-proto
    /// v1, fields in number order).
    func protobufBody(_ text: String, now: Date = Date()) -> [UInt8] {
        let families = PrometheusText.parse(text)
        let time = OTLPExporter.nanos(now)
        let start = OTLPExporter.nanos(startedAt)
        func attributes(_ w: inout ProtobufWriter, _ field: Int, _ labels: [(String, String)]) {
            for (k, v) in labels { w.message(field) { OTLPTraceEncoder.attribute(&$0, OTLPAttribute(k, .string(v))) } }
        }
        func numberPoint(_ w: inout ProtobufWriter, _ s: PrometheusText.Sample, withStart: Bool) {
            // NumberDataPoint: start_time_unix_nano 2, time_unix_nano 3, as_double 4, attributes 7
            if withStart { w.fixed64(2, start) }
            w.fixed64(3, time)
            w.double(4, s.value, always: true)
            attributes(&w, 7, s.labels)
        }
        var out = ProtobufWriter()
        out.message(1) { rm in  // ExportMetricsServiceRequest.resource_metrics
            rm.message(1) { attributes(&$0, 1, [("service.name", serviceName), ("service.instance.id", instance)]) }
            rm.message(2) { sm in  // ResourceMetrics.scope_metrics
                sm.message(1) { $0.string(1, "bridge") }
                for f in families {
                    guard ["counter", "gauge", "histogram"].contains(f.type) else { continue }
                    sm.message(2) { m in  // Metric: name 1, unit 3, gauge 5, sum 7, histogram 9
                        m.string(1, f.name)
                        switch f.type {
                        case "counter":
                            m.message(7) { sum in
                                for s in f.samples { sum.message(1) { numberPoint(&$0, s, withStart: true) } }
                                sum.int(2, 2)  // AGGREGATION_TEMPORALITY_CUMULATIVE
                                sum.bool(3, true)
                            }
                        case "gauge":
                            m.message(5) { g in
                                for s in f.samples { g.message(1) { numberPoint(&$0, s, withStart: false) } }
                            }
                        default:
                            m.string(3, f.name.hasSuffix("_seconds") ? "s" : "")
                            m.message(9) { h in
                                for p in f.histogramPoints() {
                                    // HistogramDataPoint: start 2, time 3, count 4, sum 5, bucket_counts 6,
                                    // explicit_bounds 7, attributes 9
                                    h.message(1) { d in
                                        d.fixed64(2, start)
                                        d.fixed64(3, time)
                                        d.fixed64(4, UInt64(max(0, p.count)))
                                        d.double(5, p.sum, always: true)
                                        d.packedFixed64(6, p.bucketCounts.map { UInt64(max(0, $0)) })
                                        d.packedDouble(7, p.bounds)
                                        attributes(&d, 9, p.labels)
                                    }
                                }
                                h.int(2, 2)
                            }
                        }
                    }
                }
            }
        }
        return out.bytes
    }
}

/// A task handle settable once and cancellable from any thread.
final class LockedTask: Sendable {
    private let task = Mutex<Task<Void, Never>?>(nil)

    func set(_ t: Task<Void, Never>) { task.withLock { $0 = t } }

    func cancel() { task.withLock { $0?.cancel() } }
}

/// The Prometheus text exposition, parsed back into families (for the OTLP push).
enum PrometheusText {
    struct Sample {
        var name: String
        var labels: [(String, String)]
        var value: Double
    }

    struct Family {
        var name: String
        var type: String
        var samples: [Sample] = []

        struct Point {
            var labels: [(String, String)]
            var count: Double
            var sum: Double
            var bounds: [Double]
            /// Per bucket (not cumulative), the last one above the highest bound.
            var bucketCounts: [Double]
        }

        /// Histogram series grouped by their labels (without `le`).
        func histogramPoints() -> [Point] {
            var order: [String] = []
            var points: [String: Point] = [:]
            var cumulative: [String: [(Double, Double)]] = [:]
            for s in samples {
                let labels = s.labels.filter { $0.0 != "le" }
                let key = labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
                if points[key] == nil {
                    order.append(key)
                    points[key] = Point(labels: labels, count: 0, sum: 0, bounds: [], bucketCounts: [])
                }
                if s.name == name + "_bucket", let le = s.labels.first(where: { $0.0 == "le" })?.1 {
                    cumulative[key, default: []].append((le == "+Inf" ? .infinity : Double(le) ?? .infinity, s.value))
                } else if s.name == name + "_sum" {
                    points[key]?.sum = s.value
                } else if s.name == name + "_count" {
                    points[key]?.count = s.value
                }
            }
            return order.compactMap { key in
                guard var p = points[key] else { return nil }
                let buckets = (cumulative[key] ?? []).sorted { $0.0 < $1.0 }
                var previous = 0.0
                for (bound, total) in buckets {
                    if bound.isFinite { p.bounds.append(bound) }
                    p.bucketCounts.append(max(0, total - previous))
                    previous = total
                }
                if buckets.last?.0.isFinite ?? true { p.bucketCounts.append(max(0, p.count - previous)) }
                return p
            }
        }
    }

    static func parse(_ text: String) -> [Family] {
        var families: [Family] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count >= 4 { families.append(Family(name: String(parts[2]), type: String(parts[3]))) }
                continue
            }
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let sample = parseSample(line), !families.isEmpty else { continue }
            families[families.count - 1].samples.append(sample)
        }
        return families
    }

    /// `name{a="x",b="y"} value` (label values unescaped for `\\`, `\"` and `\n`).
    static func parseSample(_ line: String) -> Sample? {
        var name = ""
        var labels: [(String, String)] = []
        var rest = Substring(line)
        if let brace = rest.firstIndex(of: "{") {
            name = String(rest[..<brace])
            rest = rest[rest.index(after: brace)...]
            while let eq = rest.firstIndex(of: "=") {
                let key = rest[..<eq].trimmingCharacters(in: CharacterSet(charactersIn: ", "))
                rest = rest[rest.index(after: eq)...]
                guard rest.first == "\"" else { return nil }
                rest = rest.dropFirst()
                var value = ""
                var escaped = false
                while let c = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        value.append(c == "n" ? "\n" : c)
                        escaped = false
                    } else if c == "\\" {
                        escaped = true
                    } else if c == "\"" {
                        break
                    } else {
                        value.append(c)
                    }
                }
                labels.append((key, value))
                if let close = rest.firstIndex(of: "}"), !rest[..<close].contains("=") {
                    rest = rest[rest.index(after: close)...]
                    break
                }
            }
        } else if let space = rest.firstIndex(of: " ") {
            name = String(rest[..<space])
            rest = rest[space...]
        }
        let fields = rest.split(separator: " ")
        guard let v = fields.first, let value = Double(v == "+Inf" ? "inf" : v == "-Inf" ? "-inf" : String(v)) else {
            return nil
        }
        return Sample(name: name, labels: labels, value: value)
    }
}
