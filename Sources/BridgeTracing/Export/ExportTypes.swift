import BridgeCore
import BridgeTraceModel
import FoundationEssentials

/// A destination for the ledger's traces and spans (`openai`, `otlp`, `file`).
///
/// An exporter only encodes and sends one batch; reading the ledger, retrying, splitting
/// rejected batches and recording deliveries is `ExportPump`'s job, the same for every
/// exporter.
public protocol TraceExporter: Sendable {
    /// The name in `bridge.exporters` and `bridge.*_deliveries` (`openai`, `otlp`, `file`).
    var name: String { get }
    /// Where it sends: an endpoint URL or a file path. Never holds credentials.
    var target: String { get }
    /// The most items (traces + spans) sent in one request.
    var batchSize: Int { get }
    /// Sends one batch and says how the receiver answered. Never throws: every failure is
    /// an `ExportResult`.
    func send(_ batch: ExportBatch) async -> ExportResult
    /// Sends a request that carries nothing, to tell after a `refused` batch whether the
    /// receiver refuses the payload (the probe is accepted: the pump looks for the items
    /// concerned) or the endpoint itself (refused too: the pump stops). Nil: cannot probe.
    func probe() async -> ExportResult?
}

extension TraceExporter {
    public func probe() async -> ExportResult? { nil }
}

/// One span read from the ledger, with its trace's fields (OTLP puts them on the root span).
public struct ExportSpan: Sendable, Equatable {
    public var record: SpanRecord
    public var trace: TraceRecord
}

/// What one request carries: trace objects first, then spans (children end, and are
/// stored, before their parents).
@MemberwiseInit
public struct ExportBatch: Sendable, Equatable {
    public var traces: [TraceRecord] = []
    public var spans: [ExportSpan] = []

    public var count: Int { traces.count + spans.count }
    public var isEmpty: Bool { traces.isEmpty && spans.isEmpty }

    /// Two halves with the items in their order (for finding the item a 4xx is about).
    public func halves() -> (ExportBatch, ExportBatch) {
        let items: [Either] = traces.map(Either.trace) + spans.map(Either.span)
        let mid = items.count / 2
        return (Self(items[..<mid]), Self(items[mid...]))
    }

    enum Either {
        case trace(TraceRecord)
        case span(ExportSpan)
    }

    init(_ items: ArraySlice<Either>) {
        self.init()
        for item in items {
            switch item {
            case .trace(let t): traces.append(t)
            case .span(let s): spans.append(s)
            }
        }
    }
}

/// How a receiver answered one batch.
public enum ExportResult: Sendable, Equatable {
    /// Everything was accepted. `warning` is stored with the delivery rows when set.
    case delivered(warning: String? = nil)
    /// OTLP `partialSuccess`: the receiver dropped `rejectedSpans` spans without saying which.
    case partial(rejectedSpans: Int, message: String)
    /// A temporary failure (429, 5xx, transport): try the same batch again, after
    /// `after` when the server said so.
    case retry(reason: String, after: Duration?)
    /// The receiver refused the batch for good because of its size or content (413, a
    /// file's). The pump splits the batch until it finds the items concerned and records
    /// those as rejected with `reason`.
    case reject(reason: String)
    /// A 4xx that may be about the payload or the endpoint (400, 422, …): the pump sends one
    /// `probe()` first, then splits (the payload) or stops (the endpoint).
    case refused(reason: String)
    /// The exporter is misconfigured (401, 403, 404, unwritable file): nothing is recorded,
    /// the pump stops, and the items stay undelivered for a later `bridge export`.
    case fatal(reason: String)
}

/// An exporter that cannot work until its configuration is fixed; the items stay undelivered.
public struct ExportFatalError: BridgeError, Sendable {
    public var exporter: String
    public var message: String
    public var exitStatus: ExitStatus { .failed }
    public var description: String { "\(exporter) exporter: \(message)" }
}

/// What a pump did (for progress lines and the exit status of `bridge export`).
public struct ExportStats: Sendable, Equatable {
    public var exporter: String
    public var deliveredTraces = 0
    public var deliveredSpans = 0
    public var rejectedTraces = 0
    public var rejectedSpans = 0
    /// Requests that failed temporarily and were retried.
    public var retries = 0
    /// Requests sent (including retries and halves of split batches).
    public var requests = 0

    public init(exporter: String) { self.exporter = exporter }

    public mutating func add(_ other: ExportStats) {
        deliveredTraces += other.deliveredTraces
        deliveredSpans += other.deliveredSpans
        rejectedTraces += other.rejectedTraces
        rejectedSpans += other.rejectedSpans
        retries += other.retries
        requests += other.requests
    }
}

/// What is still waiting for one exporter.
public struct ExportBacklog: Sendable, Equatable {
    public var traces: Int
    public var spans: Int
    public var isEmpty: Bool { traces == 0 && spans == 0 }
}

/// Something a pump reports while it works (progress lines, warnings).
public enum ExportEvent: Sendable {
    case delivered(exporter: String, traces: Int, spans: Int)
    case rejected(exporter: String, traces: Int, spans: Int, reason: String)
    case partial(exporter: String, rejectedSpans: Int, of: Int, message: String)
    case retrying(exporter: String, reason: String, after: Duration, attempt: Int)
    case splitting(exporter: String, items: Int, reason: String)
    case probing(exporter: String, reason: String)
    case waitingForLock(exporter: String)

    /// A one-line description for logs.
    public var line: String {
        switch self {
        case .delivered(let e, let t, let s): return "\(e): delivered \(t) traces, \(s) spans"
        case .rejected(let e, let t, let s, let r): return "\(e): rejected \(t) traces, \(s) spans: \(r)"
        case .partial(let e, let n, let of, let m):
            return "\(e): receiver dropped \(n) of \(of) spans (partial success): \(m)"
        case .retrying(let e, let r, let after, let attempt):
            return "\(e): \(r); retrying in \(Self.format(after)) (attempt \(attempt + 1))"
        case .splitting(let e, let n, let r): return "\(e): batch of \(n) refused (\(r)); sending it in halves"
        case .probing(let e, let r): return "\(e): batch refused (\(r)); probing the endpoint with an empty request"
        case .waitingForLock(let e): return "\(e): another bridge process is exporting to this exporter; waiting"
        }
    }

    static func format(_ d: Duration) -> String {
        let c = d.components
        let seconds = Double(c.seconds) + Double(c.attoseconds) / 1e18
        return String(format: "%.1fs", seconds)
    }
}
