import BridgeCore
import FoundationEssentials

/// How OTLP/HTTP bodies are encoded (`OTEL_EXPORTER_OTLP_PROTOCOL`,
/// `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`): `http/protobuf`, the specification's default, or
/// `http/json`.
public enum OTLPProtocol: String, Sendable, CaseIterable {
    case protobuf = "http/protobuf"
    case json = "http/json"

    public var contentType: String { self == .protobuf ? "application/x-protobuf" : "application/json" }
}

/// `OTEL_EXPORTER_OTLP_COMPRESSION` / `OTEL_EXPORTER_OTLP_<SIGNAL>_COMPRESSION`: `gzip` or `none`.
public enum OTLPCompression: String, Sendable, CaseIterable {
    case none
    case gzip
}

/// Which attribute sets the OTLP spans carry (`BRIDGE_OTLP_CONVENTIONS`): the GenAI semantic
/// conventions (`gen_ai.*`, `mcp.*`), OpenInference's (`openinference.*`, `input.*`,
/// `output.*`, `llm.*`, `tool.*`, `agent.name`, `session.id`, `metadata`), or both (the
/// default). bridge's own (`bridge.*`, `openai.agents.*`) are always there.
public enum OTLPConventions: String, Sendable, CaseIterable {
    case both, genai, openinference

    static let openInferencePrefixes = [
        "openinference.", "input.", "output.", "llm.", "tool.", "agent.", "session.", "metadata",
    ]
    static let genAIPrefixes = ["gen_ai.", "mcp."]

    /// Whether an attribute named `key` is kept.
    public func keeps(_ key: String) -> Bool {
        switch self {
        case .both: return true
        case .genai: return !Self.openInferencePrefixes.contains { key.hasPrefix($0) }
        case .openinference: return !Self.genAIPrefixes.contains { key.hasPrefix($0) }
        }
    }
}

/// One attribute value as OTLP carries it (`AnyValue`).
public enum OTLPValue: Sendable, Equatable {
    case string(String)
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case array([OTLPValue])

    /// A JSON value as an attribute: exact integers as `int`, other numbers as `double` (an
    /// integer too large for int64 as its decimal text), arrays of scalars as arrays, objects
    /// and nested arrays as compact JSON text, null as "".
    public init(_ v: JSONValue) {
        switch v {
        case .string(let s): self = .string(s)
        case .bool(let b): self = .bool(b)
        case .number(let n):
            if let i = n.int64 {
                self = .int(i)
            } else if n.isInteger {
                self = .string(n.text)
            } else {
                self = .double(n.double)
            }
        case .array(let a) where a.allSatisfy({ $0.objectValue == nil && $0.arrayValue == nil }):
            self = .array(a.map(OTLPValue.init))
        case .null: self = .string("")
        default: self = .string(v.compact)
        }
    }

    /// Strings (also inside arrays) cut to `limit` characters (Unicode scalars, never a
    /// partial UTF-8 sequence), as the SDKs apply `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`.
    public func truncated(to limit: Int?) -> OTLPValue {
        guard let limit else { return self }
        switch self {
        case .string(let s) where s.utf8.count > limit && s.unicodeScalars.count > limit:
            return .string(String(String.UnicodeScalarView(s.unicodeScalars.prefix(limit))))
        case .array(let a): return .array(a.map { $0.truncated(to: limit) })
        default: return self
        }
    }
}

public struct OTLPAttribute: Sendable, Equatable {
    public var key: String
    public var value: OTLPValue
    public init(_ key: String, _ value: OTLPValue) {
        self.key = key
        self.value = value
    }
}

/// One span as OTLP carries it, encoding-neutral.
public struct OTLPSpan: Sendable, Equatable {
    /// 32 lowercase hex characters.
    public var traceId: String
    /// 16 lowercase hex characters.
    public var spanId: String
    public var parentSpanId: String?
    public var name: String
    /// `SPAN_KIND_INTERNAL` (1), `SPAN_KIND_CLIENT` (3).
    public var kind: Int
    public var startNanos: UInt64
    public var endNanos: UInt64
    public var attributes: [OTLPAttribute]
    /// `STATUS_CODE_OK` (1) or `STATUS_CODE_ERROR` (2) with a message; nil leaves it unset.
    public var status: (code: Int, message: String)?

    public static func == (a: OTLPSpan, b: OTLPSpan) -> Bool {
        a.traceId == b.traceId && a.spanId == b.spanId && a.parentSpanId == b.parentSpanId && a.name == b.name
            && a.kind == b.kind && a.startNanos == b.startNanos && a.endNanos == b.endNanos
            && a.attributes == b.attributes
            && a.status?.code == b.status?.code && a.status?.message == b.status?.message
    }
}

/// The `ExportTraceServiceRequest` body in either encoding. Both are written from the same
/// `OTLPSpan`s, so they carry the same thing.
public enum OTLPTraceEncoder {
    // MARK: JSON (OTLP/HTTP JSON: hex ids, int64 as decimal strings, enums as numbers)

    public static func json(resource: [OTLPAttribute], scope: String, version: String, spans: [OTLPSpan]) -> JSONValue {
        [
            "resourceSpans": [
                [
                    "resource": ["attributes": .array(resource.map(json))],
                    "scopeSpans": [
                        [
                            "scope": version.isEmpty
                                ? ["name": .string(scope)] : ["name": .string(scope), "version": .string(version)],
                            "spans": .array(spans.map(json)),
                        ]
                    ],
                ]
            ]
        ]
    }

    static func json(_ s: OTLPSpan) -> JSONValue {
        var out: [String: JSONValue] = [
            "traceId": .string(s.traceId),
            "spanId": .string(s.spanId),
            "name": .string(s.name),
            "kind": .number(Double(s.kind)),
            "startTimeUnixNano": .string(String(s.startNanos)),
            "endTimeUnixNano": .string(String(s.endNanos)),
            "attributes": .array(s.attributes.map(json)),
        ]
        if let p = s.parentSpanId { out["parentSpanId"] = .string(p) }
        if let st = s.status {
            out["status"] =
                st.message.isEmpty
                ? ["code": .number(Double(st.code))]
                : ["code": .number(Double(st.code)), "message": .string(st.message)]
        }
        return .object(out)
    }

    public static func json(_ a: OTLPAttribute) -> JSONValue { ["key": .string(a.key), "value": json(a.value)] }

    static func json(_ v: OTLPValue) -> JSONValue {
        switch v {
        case .string(let s): return ["stringValue": .string(s)]
        case .bool(let b): return ["boolValue": .bool(b)]
        case .int(let i): return ["intValue": .string(String(i))]
        case .double(let d): return ["doubleValue": .number(d)]
        case .array(let a): return ["arrayValue": ["values": .array(a.map(json))]]
        }
    }

    // MARK: Protobuf (opentelemetry-proto v1; fields written in number order)

    public static func protobuf(resource: [OTLPAttribute], scope: String, version: String, spans: [OTLPSpan]) -> [UInt8]
    {
        var w = ProtobufWriter(capacity: spans.count * 512)
        w.message(1) { rs in  // ExportTraceServiceRequest.resource_spans
            rs.message(1) { r in for a in resource { r.message(1) { attribute(&$0, a) } } }  // ResourceSpans.resource
            rs.message(2) { ss in  // ResourceSpans.scope_spans
                ss.message(1) { sc in  // ScopeSpans.scope
                    sc.string(1, scope)
                    sc.string(2, version)
                }
                for s in spans { ss.message(2) { span(&$0, s) } }
            }
        }
        return w.bytes
    }

    static func span(_ w: inout ProtobufWriter, _ s: OTLPSpan) {
        w.data(1, hexBytes(s.traceId, count: 16))
        w.data(2, hexBytes(s.spanId, count: 8))
        if let p = s.parentSpanId { w.data(4, hexBytes(p, count: 8)) }
        w.string(5, s.name)
        w.int(6, Int64(s.kind))
        w.fixed64(7, s.startNanos)
        w.fixed64(8, s.endNanos)
        for a in s.attributes { w.message(9) { attribute(&$0, a) } }
        if let st = s.status {
            w.message(15) { m in  // Status
                m.string(2, st.message)
                m.int(3, Int64(st.code))
            }
        }
    }

    public static func attribute(_ w: inout ProtobufWriter, _ a: OTLPAttribute) {
        w.string(1, a.key)
        w.message(2) { anyValue(&$0, a.value) }
    }

    static func anyValue(_ w: inout ProtobufWriter, _ v: OTLPValue) {
        switch v {
        case .string(let s): w.string(1, s, always: true)
        case .bool(let b): w.bool(2, b, always: true)
        case .int(let i): w.int(3, i, always: true)
        case .double(let d): w.double(4, d, always: true)
        case .array(let a): w.message(5) { arr in for x in a { arr.message(1) { anyValue(&$0, x) } } }
        }
    }

    /// The bytes of a hex id (`count` bytes; ids are made hex by `TraceID.otlp` / `SpanID.otlp`).
    static func hexBytes(_ hex: String, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        var high: UInt8?
        for c in hex.utf8 {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
            default: continue
            }
            if let h = high {
                guard i < count else { break }
                out[i] = h << 4 | v
                i += 1
                high = nil
            } else {
                high = v
            }
        }
        return out
    }
}
