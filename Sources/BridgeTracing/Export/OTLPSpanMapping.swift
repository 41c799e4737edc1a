import BridgeCore
import BridgeTraceModel
import FoundationEssentials

/// How one ledger span becomes an OTLP span: names and attributes by the OpenTelemetry GenAI
/// semantic conventions (`invoke_agent {agent}`, `chat {model}`, `execute_tool {tool}`,
/// `gen_ai.*`), plus OpenInference's (`openinference.span.kind`, `input.value`,
/// `output.value`, `llm.*`, `tool.*`) for Phoenix. docs/export.md's "OTLP conventions" table lists
/// them span kind by span kind; keep the two in step.
///
/// Message and tool contents are whatever the ledger holds: with `include_sensitive_data` off
/// the recorder never stored them, so they are not exported either.
extension OTLPExporter {
    /// OpenInference span kinds (`openinference.span.kind`).
    enum OpenInferenceKind: String {
        case agent = "AGENT"
        case tool = "TOOL"
        case llm = "LLM"
        case chain = "CHAIN"
        case guardrail = "GUARDRAIL"
    }

    /// What the span kind decides besides attributes: the OTLP span's name and kind and its
    /// OpenInference kind.
    struct SpanHead {
        var name: String
        var kind = 1  // SPAN_KIND_INTERNAL
        var openInference = OpenInferenceKind.chain
    }

    /// A span's attributes in the order they are added (the exported order).
    struct AttributeList {
        var items: [OTLPAttribute] = []
        mutating func add(_ key: String, _ value: OTLPValue) { items.append(OTLPAttribute(key, value)) }
        mutating func add(_ key: String, _ value: String?) {
            if let value { items.append(OTLPAttribute(key, .string(value))) }
        }
    }

    /// One ledger span as an OTLP span: its kind's name and attributes, the trace's attributes
    /// a user filters on, and its status; then the exporter's conventions and value length
    /// limit are applied to the attributes.
    public func span(_ s: ExportSpan) -> OTLPSpan {
        let r = s.record
        let data = r.spanData.objectValue ?? [:]
        // Span data is mapped as stored: a field the span lacks maps to an empty attribute (the empty defaults here and below).
        let type = data["type"]?.stringValue ?? ""
        var attrs = AttributeList()
        attrs.add("openai.agents.span_id", r.id.text)
        attrs.add("openai.agents.span_type", type)
        let head = Self.kindAttributes(r.kind, type: type, data: data, into: &attrs)
        attrs.add("openinference.span.kind", head.openInference.rawValue)
        Self.traceAttributes(s.trace, isRoot: r.parentId == nil, into: &attrs)
        let status = Self.status(r.error, into: &attrs)
        return OTLPSpan(
            traceId: r.traceId.otlp, spanId: r.id.otlp, parentSpanId: r.parentId?.otlp,
            name: head.name, kind: head.kind, startNanos: Self.nanos(r.startedAt), endNanos: Self.nanos(r.endedAt),
            attributes: limited(attrs.items), status: status)
    }

    /// The attributes the exporter's settings keep: only the chosen conventions' keys, values
    /// cut to the length limit.
    private func limited(_ attributes: [OTLPAttribute]) -> [OTLPAttribute] {
        var attrs = attributes
        if conventions != .both { attrs.removeAll { !conventions.keeps($0.key) } }
        if let limit = valueLengthLimit {
            attrs = attrs.map { OTLPAttribute($0.key, $0.value.truncated(to: limit)) }
        }
        return attrs
    }

    /// The span kind's own attributes, name and kinds.
    private static func kindAttributes(
        _ kind: SpanKind?, type: String, data: [String: JSONValue], into attrs: inout AttributeList
    ) -> SpanHead {
        switch kind {
        case .agent: return agentAttributes(data, into: &attrs)
        case .generation, .response: return chatAttributes(data, into: &attrs)
        case .function: return toolAttributes(data, into: &attrs)
        case .handoff: return handoffAttributes(data, into: &attrs)
        case .guardrail: return guardrailAttributes(data, into: &attrs)
        case .mcpTools: return mcpToolsAttributes(data, into: &attrs)
        case .custom: return customAttributes(data, into: &attrs)
        case .transcription, .speech, .speechGroup, nil:
            for (k, v) in data.sorted(by: { $0.key < $1.key }) where k != "type" {
                flatten(v, prefix: "bridge.\(type).\(k)", into: &attrs.items)
            }
            return SpanHead(name: type.isEmpty ? "span" : type)
        }
    }

    private static func agentAttributes(_ data: [String: JSONValue], into attrs: inout AttributeList) -> SpanHead {
        let agent = data["name"]?.stringValue ?? ""
        attrs.add("gen_ai.operation.name", "invoke_agent")
        attrs.add("gen_ai.provider.name", "openai")
        attrs.add("gen_ai.agent.name", agent)
        attrs.add("agent.name", agent)
        if let t = data["tools"], !t.isNull { attrs.add("bridge.agent.tools", OTLPValue(t)) }
        if let h = data["handoffs"], !h.isNull { attrs.add("bridge.agent.handoffs", OTLPValue(h)) }
        attrs.add("bridge.agent.output_type", data["output_type"]?.stringValue)
        return SpanHead(name: "invoke_agent \(agent)", openInference: .agent)
    }

    /// A model call (generation or response span).
    private static func chatAttributes(_ data: [String: JSONValue], into attrs: inout AttributeList) -> SpanHead {
        let model = data["model"]?.stringValue
        attrs.add("gen_ai.operation.name", "chat")
        attrs.add("gen_ai.provider.name", "openai")
        attrs.add("llm.provider", "openai")
        attrs.add("llm.system", "openai")
        if let model {
            attrs.add("gen_ai.request.model", model)
            attrs.add("llm.model_name", model)
        }
        attrs.add("gen_ai.response.id", data["response_id"]?.stringValue)
        if let usage = data["usage"]?.objectValue { usageAttributes(usage, into: &attrs) }
        if let input = data["input"], !input.isNull {
            attrs.add("gen_ai.input.messages", input.compact)
            attrs.add("input.value", input.stringValue ?? input.compact)
            attrs.add("input.mime_type", input.stringValue == nil ? "application/json" : "text/plain")
            messages(input.arrayValue ?? [], prefix: "llm.input_messages", into: &attrs.items)
        }
        if let output = data["output"], !output.isNull {
            attrs.add("gen_ai.output.messages", output.compact)
            attrs.add("output.value", output.stringValue ?? output.compact)
            attrs.add("output.mime_type", output.stringValue == nil ? "application/json" : "text/plain")
            messages(output.arrayValue ?? [], prefix: "llm.output_messages", into: &attrs.items)
        }
        if let config = data["model_config"], config != [:], !config.isNull {
            attrs.add("bridge.model_config", config.compact)
            attrs.add("llm.invocation_parameters", config.compact)
        }
        return SpanHead(name: model.map { "chat \($0)" } ?? "chat", kind: 3, openInference: .llm)  // SPAN_KIND_CLIENT
    }

    /// Token counts, from Responses (`input_tokens`) or Chat Completions (`prompt_tokens`) usage.
    private static func usageAttributes(_ usage: [String: JSONValue], into attrs: inout AttributeList) {
        let input = usage["input_tokens"]?.intValue ?? usage["prompt_tokens"]?.intValue
        let output = usage["output_tokens"]?.intValue ?? usage["completion_tokens"]?.intValue
        if let input {
            attrs.add("gen_ai.usage.input_tokens", .int(Int64(input)))
            attrs.add("llm.token_count.prompt", .int(Int64(input)))
        }
        if let output {
            attrs.add("gen_ai.usage.output_tokens", .int(Int64(output)))
            attrs.add("llm.token_count.completion", .int(Int64(output)))
        }
        if input != nil || output != nil {
            attrs.add("llm.token_count.total", .int(Int64((input ?? 0) + (output ?? 0))))
        }
        if let cached = usage["cached_input_tokens"]?.intValue
            ?? usage["input_tokens_details"]?["cached_tokens"]?.intValue, cached > 0
        {
            attrs.add("llm.token_count.prompt_details.cache_read", .int(Int64(cached)))
        }
    }

    /// A tool call (function span), local or of an MCP server.
    private static func toolAttributes(_ data: [String: JSONValue], into attrs: inout AttributeList) -> SpanHead {
        let tool = data["name"]?.stringValue ?? ""
        attrs.add("gen_ai.operation.name", "execute_tool")
        attrs.add("gen_ai.tool.name", tool)
        attrs.add("tool.name", tool)
        let server = data["mcp_data"]?["server"]?.stringValue
        attrs.add("gen_ai.tool.type", server == nil ? "function" : "extension")
        attrs.add("gen_ai.tool.call.id", data["call_id"]?.stringValue)
        if let server {
            attrs.add("mcp.server.name", server)
            attrs.add("tool.description", "MCP tool of server \(server)")
        }
        if let input = data["input"], !input.isNull {
            let text = input.templateText
            attrs.add("gen_ai.tool.call.arguments", text)
            attrs.add("input.value", text)
            attrs.add("input.mime_type", mimeType(text))
        }
        if let output = data["output"], !output.isNull {
            let text = output.templateText
            attrs.add("gen_ai.tool.call.result", text)
            attrs.add("output.value", text)
            attrs.add("output.mime_type", mimeType(text))
        }
        return SpanHead(name: "execute_tool \(tool)", openInference: .tool)
    }

    private static func handoffAttributes(_ data: [String: JSONValue], into attrs: inout AttributeList) -> SpanHead {
        let from = data["from_agent"]?.stringValue ?? ""
        let to = data["to_agent"]?.stringValue ?? ""
        attrs.add("gen_ai.agent.name", from)
        attrs.add("gen_ai.handoff.from_agent", from)
        attrs.add("gen_ai.handoff.to_agent", to)
        attrs.add("tool.name", "transfer_to_\(to)")
        attrs.add("input.value", from)
        attrs.add("output.value", to)
        return SpanHead(name: "handoff \(from) -> \(to)", openInference: .tool)
    }

    private static func guardrailAttributes(_ data: [String: JSONValue], into attrs: inout AttributeList) -> SpanHead {
        let guardrail = data["name"]?.stringValue ?? ""
        let triggered = data["triggered"]?.boolValue ?? false
        attrs.add("bridge.guardrail.name", guardrail)
        attrs.add("bridge.guardrail.triggered", .bool(triggered))
        attrs.add("output.value", triggered ? "triggered" : "passed")
        return SpanHead(name: "guardrail \(guardrail)", openInference: .guardrail)
    }

    private static func mcpToolsAttributes(_ data: [String: JSONValue], into attrs: inout AttributeList) -> SpanHead {
        let server = data["server"]?.stringValue ?? ""
        attrs.add("mcp.method.name", "tools/list")
        attrs.add("mcp.server.name", server)
        if let result = data["result"], !result.isNull {
            attrs.add("bridge.mcp_tools.result", OTLPValue(result))
            attrs.add("output.value", result.compact)
            attrs.add("output.mime_type", "application/json")
        }
        return SpanHead(name: "list_tools \(server)")
    }

    private static func customAttributes(_ data: [String: JSONValue], into attrs: inout AttributeList) -> SpanHead {
        let custom = data["name"]?.stringValue ?? "custom"
        let d = data["data"]?.objectValue ?? [:]
        switch custom {
        case "approval":
            attrs.add("gen_ai.tool.call.id", d["call_id"]?.stringValue)
            attrs.add("tool.name", d["tool_name"]?.stringValue)
        default: break
        }
        flatten(data["data"] ?? .null, prefix: "bridge.data", into: &attrs.items)
        return SpanHead(name: custom)
    }

    /// What a user filters on: the task, its workspace and its conversation; the root span also
    /// carries the trace's own fields.
    private static func traceAttributes(_ trace: TraceRecord, isRoot: Bool, into attrs: inout AttributeList) {
        let meta = trace.metadata
        attrs.add("bridge.task.id", meta["task_id"])
        attrs.add("bridge.workspace.id", meta["workspace_id"])
        if let conversation = trace.groupId ?? meta["task_id"] {
            attrs.add("gen_ai.conversation.id", conversation)
            attrs.add("session.id", conversation)
        }
        if isRoot {
            attrs.add("bridge.workflow_name", trace.workflowName)
            attrs.add("bridge.group_id", trace.groupId)
            for (k, v) in meta.sorted(by: { $0.key < $1.key }) { attrs.add("bridge.metadata.\(k)", v) }
            if !meta.isEmpty { attrs.add("metadata", JSONValue.object(meta.mapValues(JSONValue.string)).compact) }
        }
    }

    /// The span's status: OK, or ERROR with the error's message (its data becomes an attribute).
    private static func status(_ error: JSONValue?, into attrs: inout AttributeList) -> (code: Int, message: String) {
        guard let e = error, !e.isNull else { return (1, "") }  // STATUS_CODE_OK
        if let d = e["data"], !d.isNull { attrs.add("bridge.error.data", d.compact) }
        return (2, e["message"]?.stringValue ?? "error")  // STATUS_CODE_ERROR
    }

    /// OpenInference's flattened messages: `<prefix>.<i>.message.role` / `.content`, and a
    /// message's tool calls as `.tool_calls.<j>.tool_call.{id,function.name,function.arguments}`.
    /// Chat Completions messages and Responses items alike (`function_call` items become a
    /// tool call of an assistant message).
    static func messages(_ items: [JSONValue], prefix: String, into attrs: inout [OTLPAttribute]) {
        for (i, m) in items.enumerated() {
            let p = "\(prefix).\(i).message"
            switch ConversationItem(json: m) {
            case .functionCall(let call):
                // The call's id is its `call_id` (what the output's `tool_call_id` names), not the
                // item's own `id`.
                attrs.append(OTLPAttribute("\(p).role", .string("assistant")))
                toolCall(
                    id: call.callId.text, name: call.name, arguments: call.arguments,
                    prefix: "\(p).tool_calls.0.tool_call", into: &attrs)
                continue
            case .functionCallOutput(let output):
                attrs.append(OTLPAttribute("\(p).role", .string("tool")))
                attrs.append(OTLPAttribute("\(p).tool_call_id", .string(output.callId.text)))
                attrs.append(OTLPAttribute("\(p).content", .string(output.output.templateText)))
                continue
            default:
                break
            }
            if let role = m["role"]?.stringValue { attrs.append(OTLPAttribute("\(p).role", .string(role))) }
            if let content = m["content"], !content.isNull {
                attrs.append(OTLPAttribute("\(p).content", .string(Self.text(content))))
            }
            if let id = m["tool_call_id"]?.stringValue { attrs.append(OTLPAttribute("\(p).tool_call_id", .string(id))) }
            for (j, call) in (m["tool_calls"]?.arrayValue ?? []).enumerated() {
                toolCall(call, prefix: "\(p).tool_calls.\(j).tool_call", into: &attrs)
            }
        }
    }

    /// A tool call as JSON: Chat Completions' `{id, function: {name, arguments}}`, or the same
    /// fields at the top level.
    static func toolCall(_ call: JSONValue, prefix: String, into attrs: inout [OTLPAttribute]) {
        let fn = call["function"] ?? call
        toolCall(
            id: (call["id"] ?? call["call_id"])?.stringValue, name: fn["name"]?.stringValue,
            arguments: fn["arguments"]?.templateText, prefix: prefix, into: &attrs)
    }

    /// One tool call's attributes under `prefix`: what is known of its id, name and arguments.
    static func toolCall(
        id: String?, name: String?, arguments: String?, prefix: String, into attrs: inout [OTLPAttribute]
    ) {
        if let id { attrs.append(OTLPAttribute("\(prefix).id", .string(id))) }
        if let name { attrs.append(OTLPAttribute("\(prefix).function.name", .string(name))) }
        if let arguments { attrs.append(OTLPAttribute("\(prefix).function.arguments", .string(arguments))) }
    }

    /// A message's content as text: a string as is, a list of parts as their texts joined by
    /// newlines (other parts as JSON).
    static func text(_ content: JSONValue) -> String {
        if let s = content.stringValue { return s }
        if let parts = content.arrayValue {
            return parts.map { $0["text"]?.stringValue ?? $0.compact }.joined(separator: "\n")
        }
        return content.compact
    }

    static func mimeType(_ text: String) -> String {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("{") || t.hasPrefix("["), (try? JSONValue.parse(t)) != nil { return "application/json" }
        return "text/plain"
    }

    /// Nested objects become dotted keys; arrays of scalars stay arrays; others become JSON text.
    static func flatten(_ v: JSONValue, prefix: String, into attrs: inout [OTLPAttribute]) {
        switch v {
        case .null: return
        case .object(let o):
            for (k, child) in o.sorted(by: { $0.key < $1.key }) {
                flatten(child, prefix: "\(prefix).\(k)", into: &attrs)
            }
        default: attrs.append(OTLPAttribute(prefix, OTLPValue(v)))
        }
    }
}
