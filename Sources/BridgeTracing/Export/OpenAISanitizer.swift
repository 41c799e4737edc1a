import BridgeCore
import BridgeTraceModel
import FoundationEssentials

/// Makes span objects acceptable to the OpenAI traces ingest endpoint, following the Agents
/// SDK's `BackendSpanExporter` rules (openai-agents-python, `tracing/processors.py`):
///
/// - `span_data.input` / `span_data.output` larger than 100,000 bytes of compact JSON are cut
///   to fit: a string keeps a prefix plus `... [truncated]`; in an object or array the largest
///   member is cut (or dropped when cutting does not help) until the whole fits.
/// - `span_data.usage` is kept only on `generation` spans, reshaped to
///   `{input_tokens, output_tokens, details{…}}`: every other usage key goes into `details`
///   (the server rejects `usage.requests` and `usage.total_tokens`); a generation usage
///   without numeric token counts is dropped. On every other span type the top-level `usage`
///   is removed. Like the SDK, the `usage` inside a custom task/turn span's `data` (a
///   free-form object) is left as it is.
///
/// Sizes are counted as Python's `json.dumps(ensure_ascii=False, separators=(",", ":"))`
/// counts them, and strings are cut by Unicode scalar, as Python slices them, so the output
/// matches the SDK's.
public enum OpenAISanitizer {
    public static let maxFieldBytes = 100_000
    public static let truncationSuffix = "... [truncated]"

    /// Sanitises one `{"object":"trace.span",…}` item; other items are returned unchanged.
    public static func sanitize(_ item: JSONValue) -> JSONValue {
        guard var o = item.objectValue, var data = o["span_data"]?.objectValue else { return item }
        data.removeValue(forKey: "text_replaced")  // bridge's own flag (TextSafety), not an SDK field
        data.removeValue(forKey: "cost_usd")  // bridge's own (pricing), not an SDK field
        data.removeValue(forKey: "call_id")  // bridge's note of the tool call id (OTLP only), not an SDK field
        data.removeValue(forKey: "time_to_first_token_ms")  // bridge's note on streamed model calls
        for field in ["input", "output"] {
            if let v = data[field] { data[field] = truncateField(v) }
        }
        if data["type"]?.stringValue.flatMap(SpanKind.init(rawValue:)) == .generation {
            if let usage = data["usage"], let u = usage.objectValue {
                data["usage"] = generationUsage(u)  // nil removes it
            }
        } else {
            data.removeValue(forKey: "usage")
        }
        o["span_data"] = .object(data)
        return .object(o)
    }

    /// `{input_tokens, output_tokens, details}` or nil when the token counts are not numbers.
    public static func generationUsage(_ usage: [String: JSONValue]) -> JSONValue? {
        guard let input = usage["input_tokens"], let output = usage["output_tokens"],
            input.doubleValue?.isFinite == true, output.doubleValue?.isFinite == true
        else { return nil }
        var details: [String: JSONValue] = usage["details"]?.objectValue ?? [:]
        for (key, value) in usage
        where key != "input_tokens" && key != "output_tokens" && key != "details" && !value.isNull {
            details[key] = value
        }
        var out: [String: JSONValue] = ["input_tokens": input, "output_tokens": output]
        if !details.isEmpty { out["details"] = .object(details) }
        return .object(out)
    }

    /// The field unchanged when it fits in `maxFieldBytes`, else cut to fit.
    public static func truncateField(_ value: JSONValue, maxBytes: Int = maxFieldBytes) -> JSONValue {
        size(value) <= maxBytes ? value : truncate(value, maxBytes: maxBytes)
    }

    static func truncate(_ value: JSONValue, maxBytes: Int) -> JSONValue {
        if size(value) <= maxBytes { return value }
        switch value {
        case .string(let s): return .string(truncate(s, maxBytes: maxBytes))
        case .object(let o): return .object(truncate(o, maxBytes: maxBytes))
        case .array(let a): return .array(truncate(a, maxBytes: maxBytes))
        default:
            let p = preview(value)
            return size(p) <= maxBytes ? p : value
        }
    }

    /// A prefix of `s` plus the suffix, within `maxBytes` of JSON. The prefix length starts from
    /// a proportional estimate and shrinks by the overflow ratio until it fits (the SDK's method).
    static func truncate(_ s: String, maxBytes: Int) -> String {
        let valueSize = size(.string(s))
        if valueSize <= maxBytes { return s }
        let suffixSize = size(.string(truncationSuffix))
        if suffixSize > maxBytes { return "" }
        if suffixSize == maxBytes { return truncationSuffix }
        let scalars = Array(s.unicodeScalars)
        let budget = maxBytes - suffixSize
        var n = Int(Double(scalars.count) * Double(budget) / Double(max(valueSize, 1)))
        n = max(0, min(scalars.count, n))
        func candidate(_ n: Int) -> String {
            var out = String.UnicodeScalarView()
            out.append(contentsOf: scalars[..<n])
            return String(out) + truncationSuffix
        }
        var best = candidate(n)
        var bestSize = size(.string(best))
        while bestSize > maxBytes && n > 0 {
            let overflow = Double(bestSize - maxBytes) / Double(max(bestSize, 1))
            let trim = max(1, Int(Double(n) * overflow) + 1)
            n = max(0, n - trim)
            best = candidate(n)
            bestSize = size(.string(best))
        }
        return best
    }

    /// Cuts the largest member until the object fits; a member that cannot be cut is dropped.
    static func truncate(_ o: [String: JSONValue], maxBytes: Int) -> [String: JSONValue] {
        var out = o
        var current = size(.object(out))
        while !out.isEmpty && current > maxBytes {
            // The largest member; ties go to the first key in sorted order (deterministic).
            let key = out.keys.sorted().max { size(out[$0]!) < size(out[$1]!) }!
            let child = out[key]!
            let budget = max(0, maxBytes - (current - size(child)))
            let cut = truncate(child, maxBytes: budget)
            if cut == child { out.removeValue(forKey: key) } else { out[key] = cut }
            current = size(.object(out))
        }
        return out
    }

    /// Cuts the largest element until the array fits; an element that cannot be cut is dropped.
    static func truncate(_ a: [JSONValue], maxBytes: Int) -> [JSONValue] {
        var out = a
        var current = size(.array(out))
        while !out.isEmpty && current > maxBytes {
            var index = 0
            var largest = -1
            for (i, v) in out.enumerated() {
                let s = size(v)
                if s > largest {
                    largest = s
                    index = i
                }
            }
            let child = out[index]
            let budget = max(0, maxBytes - (current - largest))
            let cut = truncate(child, maxBytes: budget)
            if cut == child { out.remove(at: index) } else { out[index] = cut }
            current = size(.array(out))
        }
        return out
    }

    /// The SDK's stand-in for a value that cannot be cut.
    static func preview(_ v: JSONValue) -> JSONValue {
        let type: String
        switch v {
        case .null: type = "NoneType"
        case .bool: type = "bool"
        case .number(let n): type = n.isInteger ? "int" : "float"
        case .string: type = "str"
        case .array: type = "list"
        case .object: type = "dict"
        }
        return ["truncated": true, "original_type": .string(type), "preview": .string("<\(type) truncated>")]
    }

    /// Bytes of `v` as compact JSON with non-ASCII characters left as UTF-8.
    public static func size(_ v: JSONValue) -> Int {
        switch v {
        case .null: return 4
        case .bool(let b): return b ? 4 : 5
        case .number: return v.compact.utf8.count
        case .string(let s):
            var n = 2
            for u in s.unicodeScalars {
                switch u.value {
                case 0x22, 0x5C, 0x08, 0x0C, 0x0A, 0x0D, 0x09: n += 2
                case 0..<0x20: n += 6
                case 0..<0x80: n += 1
                case 0..<0x800: n += 2
                case 0..<0x10000: n += 3
                default: n += 4
                }
            }
            return n
        case .array(let a):
            return 2 + a.reduce(0) { $0 + size($1) } + max(0, a.count - 1)
        case .object(let o):
            return 2 + o.reduce(0) { $0 + size(.string($1.key)) + 1 + size($1.value) } + max(0, o.count - 1)
        }
    }
}
