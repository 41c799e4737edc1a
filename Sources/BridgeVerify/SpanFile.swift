import BridgeCore
import BridgeTraceModel
import FoundationEssentials

/// The trace and span ids of an exported span file, for reconciling against the ledger.
///
/// Two formats are read:
/// - the Agents SDK's export format as JSONL: one object per line, `{"object": "trace", "id"}`
///   or `{"object": "trace.span", "id", "trace_id"}` (an ingest body `{"data": [...]}` per line
///   works too);
/// - OTLP JSON: `{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId", "spanId"}]}]}]}`,
///   one document or one per line, with hex ids. `traceId` is the 32 hex of `trace_<32 hex>`;
///   `spanId` is the first 16 hex of `span_<24 hex>`.
///
/// Span ids are kept as the first 16 hex characters, the part both formats share.
public struct SpanFile: Sendable, Equatable {
    public enum Format: String, Sendable {
        case sdk = "SDK JSONL"
        case otlp = "OTLP JSON"
    }

    public var format: Format
    /// `trace_<32 hex>` ids of trace objects and of every span's trace.
    public var traceIds: Set<TraceID>
    /// (trace id, first 16 hex of the span id: `SpanID.otlp`).
    public var spans: [(traceId: TraceID, spanKey: String)]

    public static func == (a: SpanFile, b: SpanFile) -> Bool {
        a.format == b.format && a.traceIds == b.traceIds
            && a.spans.map { $0.traceId.text + $0.spanKey } == b.spans.map { $0.traceId.text + $0.spanKey }
    }

    /// Reads and parses `path` (read off the cooperative pool: a spans file can be large).
    public static func read(path: String) async throws(VerifyInputError) -> SpanFile {
        guard let data = await FileIO.read(path) else {
            throw VerifyInputError("cannot read the spans file \(path)")
        }
        do {
            return try parse(data)
        } catch {
            throw VerifyInputError("spans file \(path): \(error.message)")
        }
    }

    /// Parses file contents in either format.
    public static func parse(_ data: Data) throws(VerifyInputError) -> SpanFile {
        var file = SpanFile(format: .sdk, traceIds: [], spans: [])
        var sawOTLP = false
        var sawSDK = false
        func take(_ v: JSONValue, line: Int?) throws(VerifyInputError) {
            // Empty default: no line number, no suffix.
            let at = line.map { " (line \($0))" } ?? ""
            if let rs = v["resourceSpans"]?.arrayValue {
                sawOTLP = true
                for r in rs {
                    for ss in r["scopeSpans"]?.arrayValue ?? r["instrumentationLibrarySpans"]?.arrayValue ?? [] {
                        for s in ss["spans"]?.arrayValue ?? [] {
                            guard let t = s["traceId"]?.stringValue, let sid = s["spanId"]?.stringValue,
                                TraceID.isOTLP(t), SpanID.isOTLP(sid)
                            else {
                                throw VerifyInputError("an OTLP span without a hex traceId and spanId\(at)")
                            }
                            let traceId = TraceID(otlp: t)
                            file.traceIds.insert(traceId)
                            file.spans.append((traceId, SpanID(sid).otlp))
                        }
                    }
                }
                return
            }
            if let items = v["data"]?.arrayValue {
                for item in items { try take(item, line: line) }
                return
            }
            switch v["object"]?.stringValue {
            case "trace":
                guard let id = v["id"]?.stringValue else { throw VerifyInputError("a trace object without an id\(at)") }
                sawSDK = true
                file.traceIds.insert(TraceID(id))
            case "trace.span":
                guard let id = v["id"]?.stringValue, let traceId = v["trace_id"]?.stringValue else {
                    throw VerifyInputError("a trace.span object without id or trace_id\(at)")
                }
                sawSDK = true
                file.traceIds.insert(TraceID(traceId))
                file.spans.append((TraceID(traceId), SpanID(id).otlp))
            default:
                throw VerifyInputError("neither an SDK trace/trace.span object nor OTLP resourceSpans\(at)")
            }
        }
        if let whole = try? JSONValue.parse(data), whole.objectValue != nil {
            try take(whole, line: nil)
        } else {
            let text = String(decoding: data, as: UTF8.self)
            var n = 0
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                n += 1
                let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
                if trimmed.isEmpty { continue }
                let v: JSONValue
                do { v = try JSONValue.parse(trimmed) } catch {
                    throw VerifyInputError("line \(n) is not JSON: \(error)")
                }
                try take(v, line: n)
            }
        }
        if sawOTLP && !sawSDK { file.format = .otlp }
        return file
    }
}
