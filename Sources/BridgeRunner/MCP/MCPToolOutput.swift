import BridgeCore
import FoundationEssentials

/// How an MCP tool result reaches the model and the function span, as the Agents SDK's
/// `MCPUtil.invoke_mcp_tool` does it.
public enum MCPToolOutput {
    /// The model's `function_call_output.output` and the span's `output` (Python's `str()` of
    /// the SDK's tool output, as the SDK exports it).
    public struct Converted: Sendable, Equatable {
        public var modelOutput: JSONValue
        public var spanOutput: String
        /// The text of the output (a run's final output under `tool_use_behavior`).
        public var text: String
    }

    /// - With `useStructuredContent`, a result with `structuredContent` and no `isError` gives
    ///   the model that JSON as a string.
    /// - Otherwise each content block becomes a tool output item: `text` stays text, `image`
    ///   becomes an image with a `data:` URL, anything else (resource, resource_link, audio) is
    ///   text holding the block's JSON. One item is passed alone, several as a list; the model
    ///   receives them as `input_text` / `input_image` parts. No content gives `[]`.
    public static func convert(_ result: MCPCallResult, useStructuredContent: Bool) -> Converted {
        if useStructuredContent, let s = result.structuredContent, !result.isError, !isEmpty(s) {
            let text = PythonJSON.dumps(s)
            return Converted(modelOutput: .string(text), spanOutput: text, text: text)
        }
        var items: [(type: String, value: String)] = []
        for block in result.content {
            switch block["type"]?.stringValue {
            case "text":
                items.append(("text", block["text"]?.stringValue ?? ""))
            case "image":
                let mime = block["mimeType"]?.stringValue ?? "image/png"
                items.append(("image", "data:\(mime);base64,\(block["data"]?.stringValue ?? "")"))
            default:
                items.append(("text", block.compact))
            }
        }
        if items.isEmpty { return Converted(modelOutput: .string("[]"), spanOutput: "[]", text: "[]") }
        let parts: [JSONValue] = items.map { item in
            item.type == "text"
                ? ["type": "input_text", "text": .string(item.value)]
                : ["type": "input_image", "image_url": .string(item.value)]
        }
        let reprs = items.map { item in
            item.type == "text"
                ? "{'type': 'text', 'text': \(PythonRepr.string(item.value))}"
                : "{'type': 'image', 'image_url': \(PythonRepr.string(item.value))}"
        }
        let span = reprs.count == 1 ? reprs[0] : "[" + reprs.joined(separator: ", ") + "]"
        let text = items.map(\.value).joined(separator: "\n")
        return Converted(modelOutput: .array(parts), spanOutput: span, text: text)
    }

    static func isEmpty(_ v: JSONValue) -> Bool {
        switch v {
        case .null: return true
        case .object(let o): return o.isEmpty
        case .array(let a): return a.isEmpty
        default: return false
        }
    }

    /// The tool as the model sees it: the server's `inputSchema` as given (with `properties`
    /// added when missing, as the SDK does), strict only when it already meets the strict
    /// rules (the SDK sends MCP tools non-strict unless asked to convert them).
    public static func functionParameters(_ tool: MCPTool) -> (parameters: JSONValue, strict: Bool) {
        var schema = tool.inputSchema.objectValue ?? ["type": "object"]
        if schema["properties"] == nil { schema["properties"] = [:] }
        let json = JSONValue.object(schema)
        return (json, StrictSchema.isCompatible(json))
    }
}

/// Whether a JSON Schema already satisfies OpenAI's strict mode: every object closes
/// (`additionalProperties: false`) and requires all its properties; nested schemas too.
enum StrictSchema {
    static func isCompatible(_ schema: JSONValue) -> Bool {
        guard let o = schema.objectValue else { return schema == .bool(true) ? false : true }
        let isObject = o["type"] == "object" || o["properties"] != nil
        if isObject {
            guard o["additionalProperties"] == .bool(false) else { return false }
            let properties = o["properties"]?.objectValue ?? [:]
            let required = Set((o["required"]?.arrayValue ?? []).compactMap(\.stringValue))
            guard required == Set(properties.keys) else { return false }
            for p in properties.values where !isCompatible(p) { return false }
        }
        if let items = o["items"], !isCompatible(items) { return false }
        for key in ["anyOf", "allOf"] {
            for s in o[key]?.arrayValue ?? [] where !isCompatible(s) { return false }
        }
        if o["oneOf"] != nil { return false }
        for key in ["$defs", "definitions"] {
            for s in (o[key]?.objectValue ?? [:]).values where !isCompatible(s) { return false }
        }
        return true
    }
}

/// Python's `repr()` of a `str`, for span outputs that the SDK writes with `str()`.
enum PythonRepr {
    static func string(_ s: String) -> String {
        let quote: Unicode.Scalar = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        let body = s.escaped { scalar in
            if let e = scalar.lineEscape { return e }
            switch scalar {
            case "\\": return "\\\\"
            case quote: return "\\\(quote)"
            case _ where scalar.value < 0x20 || scalar.value == 0x7f: return String(format: "\\x%02x", scalar.value)
            default: return nil
            }
        }
        return "\(quote)\(body)\(quote)"
    }
}

extension PythonJSON {
    /// `json.dumps(value)`: `, ` and `: ` separators, ASCII-only strings, keys as stored.
    static func dumps(_ v: JSONValue) -> String {
        switch v {
        case .string(let s): return string(s)
        case .array(let a): return "[" + a.map(dumps).joined(separator: ", ") + "]"
        case .object(let o):
            return "{"
                + o.sorted { $0.key < $1.key }.map { string($0.key) + ": " + dumps($0.value) }.joined(separator: ", ")
                + "}"
        case .null: return "null"
        default: return v.compact
        }
    }
}
