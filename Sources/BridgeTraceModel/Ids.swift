import BridgeCore
import BridgePostgres

/// A trace id: `trace_` + 32 lowercase hex, the SDK's form, when bridge mints it. The one place
/// they are minted, checked and turned into OTLP's 16-byte hex. An id read from a ledger row or
/// a file keeps its text even when it is malformed (`isWellFormed` says so).
public struct TraceID: TextID, PostgresBindable, PostgresDecodable {
    public let text: String

    public init(_ text: String) { self.text = text }

    /// The id of attempt `attempt` of task `task` run by `bridge exec`: `trace_` + the first
    /// 32 hex characters of SHA-256("bridge-trace:<task key>:<attempt>").
    public static func forTask(_ task: TaskKey, attempt: Int) -> TraceID {
        TraceID("trace_" + SHA256.hex("bridge-trace:\(task.text):\(attempt)").prefix(32))
    }

    /// The namespace hashed into backfilled trace ids.
    public static let backfillNamespace = "bridge-backfill:"

    /// The id `bridge exec --backfill` gives the task with key `taskKey`: `trace_` + the first 32
    /// hex of SHA-256("bridge-backfill:<task key>"), a namespace of its own, so it never equals
    /// the id of an attempt.
    public static func forBackfill(taskKey: TaskKey) -> TraceID {
        TraceID("trace_" + SHA256.hex(backfillNamespace + taskKey.text).prefix(32))

    }

    /// The SDK id for an OTLP traceId (32 hex).
    public init(otlp hex: String) { self.init("trace_" + hex.lowercased()) }

    /// Whether the text is `trace_` followed by 32 lowercase hex characters.
    public var isWellFormed: Bool { IDForm.isWellFormed(text, prefix: "trace_", hexCount: 32) }

    /// `isWellFormed` as a POSIX regular expression, for SQL (`trace_id ~ pattern`).
    public static let pattern = "^trace_[0-9a-f]{32}$"

    /// Whether `hex` is an OTLP traceId (32 hex digits, either case).
    public static func isOTLP(_ hex: String) -> Bool { hex.utf8.count == 32 && IDForm.isHex(hex.lowercased()) }

    /// OTLP's traceId: the 32 hex characters of a well-formed id; anything else hashed to 32 hex.
    public var otlp: String { IDForm.otlp(text, prefix: "trace_", length: 32) }
}

/// A span id: `span_` + 24 lowercase hex (the SDK: `uuid4().hex[:24]`) when bridge mints it; like
/// `TraceID`, one read back keeps its text as it is.
public struct SpanID: TextID, PostgresBindable, PostgresDecodable {
    public let text: String

    public init(_ text: String) { self.text = text }

    /// A fresh random id.
    public static func random() -> SpanID {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<12).map { _ in UInt8.random(in: 0...255, using: &g) }
        return SpanID("span_" + bytes.hexString)
    }

    /// A deterministic id: `span_` + the first 24 hex of SHA-256("<trace id>:<slot>") (backfill's
    /// spans: slot `task`, `agent`, `turn:1`, `function:3`, …).
    public static func derived(traceId: TraceID, slot: String) -> SpanID {
        SpanID("span_" + SHA256.hex(traceId.text + ":" + slot).prefix(24))
    }

    /// Whether the text is `span_` followed by 24 lowercase hex characters.
    public var isWellFormed: Bool { IDForm.isWellFormed(text, prefix: "span_", hexCount: 24) }

    /// Whether `hex` is an OTLP spanId (16 hex digits, either case).
    public static func isOTLP(_ hex: String) -> Bool { hex.utf8.count == 16 && IDForm.isHex(hex.lowercased()) }

    /// OTLP's spanId: the first 16 hex characters of a well-formed id; an OTLP id (16 hex)
    /// lowercased; anything else hashed to 16 hex. Files, exporters and verify all key spans by it.
    public var otlp: String {
        if !text.hasPrefix("span_"), Self.isOTLP(text) { return text.lowercased() }
        return IDForm.otlp(text, prefix: "span_", length: 16)
    }
}

enum IDForm {
    static func isHex(_ s: some StringProtocol) -> Bool {
        s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    static func isWellFormed(_ s: String, prefix: String, hexCount: Int) -> Bool {
        s.hasPrefix(prefix) && s.utf8.count == prefix.utf8.count + hexCount && isHex(s.dropFirst(prefix.count))
    }

    static func otlp(_ id: String, prefix: String, length: Int) -> String {
        let body = id.hasPrefix(prefix) ? String(id.dropFirst(prefix.count)).lowercased() : ""
        let head = body.prefix(length)
        if head.count == length, isHex(head), head.contains(where: { $0 != "0" }) { return String(head) }
        return String(SHA256.hex(id).prefix(length))
    }
}

/// A tool call's id as the model gave it (`call_…`; any text a provider sends is kept), or the
/// journal's key of a run step that is journaled like a call (`guardrails:input:3`). Approval
/// requests, journaled calls, idempotency keys and call outputs are matched by it.
public struct CallID: TextID, PostgresBindable, PostgresDecodable {
    public let text: String

    public init(_ text: String) { self.text = text }
}
