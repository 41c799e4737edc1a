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

    public func span(_ s: ExportSpan) -> OTLPSpan {
        let r = s.record
        let data = r.spanData.objectValue ?? [:]
        let type = data["type"]?.stringValue ?? ""
        var attrs: [OTLPAttribute] = []
        func add(_ key: String, _ value: OTLPValue) { attrs.append(OTLPAttribute(key, value)) }
        func add(_ key: String, _ value: String?) { if let value { attrs.append(OTLPAttribute(key, .string(value))) } }
        func str(_ k: String) -> String? { data[k]?.stringValue }
        add("openai.agents.span_id", r.id)
        add("openai.agents.span_type", type)
        var name = type.isEmpty ? "span" : type
        var kind = 1  // SPAN_KIND_INTERNAL
        var oiKind = OpenInferenceKind.chain
        switch r.kind {
        case .agent:
            let agent = str("name") ?? ""
            name = "invoke_agent \(agent)"
            oiKind = .agent
            add("gen_ai.operation.name", "invoke_agent")
            add("gen_ai.provider.name", "openai")
            add("gen_ai.agent.name", agent)
            add("agent.name", agent)
            if let t = data["tools"], !t.isNull { add("bridge.agent.tools", OTLPValue(t)) }
            if let h = data["handoffs"], !h.isNull { add("bridge.agent.handoffs", OTLPValue(h)) }
            add("bridge.agent.output_type", str("output_type"))
        case .generation, .response:
            let model = str("model")
            name = model.map { "chat \($0)" } ?? "chat"
            kind = 3  // SPAN_KIND_CLIENT
            oiKind = .llm
            add("gen_ai.operation.name", "chat")
            add("gen_ai.provider.name", "openai")
            add("llm.provider", "openai")
            add("llm.system", "openai")
            if let model {
                add("gen_ai.request.model", model)
                add("llm.model_name", model)
            }
            add("gen_ai.response.id", str("response_id"))
            if let usage = data["usage"]?.objectValue {
                let input = usage["input_tokens"]?.intValue ?? usage["prompt_tokens"]?.intValue
                let output = usage["output_tokens"]?.intValue ?? usage["completion_tokens"]?.intValue
                if let input {
                    add("gen_ai.usage.input_tokens", .int(Int64(input)))
                    add("llm.token_count.prompt", .int(Int64(input)))
                }
                if let output {
                    add("gen_ai.usage.output_tokens", .int(Int64(output)))
                    add("llm.token_count.completion", .int(Int64(output)))
                }
                if input != nil || output != nil {
                    add("llm.token_count.total", .int(Int64((input ?? 0) + (output ?? 0))))
                }
                if let cached = usage["cached_input_tokens"]?.intValue
                    ?? usage["input_tokens_details"]?["cached_tokens"]?.intValue, cached > 0
                {
                    add("llm.token_count.prompt_details.cache_read", .int(Int64(cached)))
                }
            }
            if let input = data["input"], !input.isNull {
                add("gen_ai.input.messages", input.compact)
                add("input.value", input.stringValue ?? input.compact)
                add("input.mime_type", input.stringValue == nil ? "application/json" : "text/plain")
                Self.messages(input.arrayValue ?? [], prefix: "llm.input_messages", into: &attrs)
            }
            if let output = data["output"], !output.isNull {
                add("gen_ai.output.messages", output.compact)
                add("output.value", output.stringValue ?? output.compact)
                add("output.mime_type", output.stringValue == nil ? "application/json" : "text/plain")
                Self.messages(output.arrayValue ?? [], prefix: "llm.output_messages", into: &attrs)
            }
            if let config = data["model_config"], config != [:], !config.isNull {
                add("bridge.model_config", config.compact)
                add("llm.invocation_parameters", config.compact)
            }
        case .function:
            let tool = str("name") ?? ""
            name = "execute_tool \(tool)"
            oiKind = .tool
            add("gen_ai.operation.name", "execute_tool")
            add("gen_ai.tool.name", tool)
            add("tool.name", tool)
            let server = data["mcp_data"]?["server"]?.stringValue
            add("gen_ai.tool.type", server == nil ? "function" : "extension")
            add("gen_ai.tool.call.id", str("call_id"))
            if let server {
                add("mcp.server.name", server)
                add("tool.description", "MCP tool of server \(server)")
            }
            if let input = data["input"], !input.isNull {
                let text = input.templateText
                add("gen_ai.tool.call.arguments", text)
                add("input.value", text)
                add("input.mime_type", Self.mimeType(text))
            }
            if let output = data["output"], !output.isNull {
                let text = output.templateText
                add("gen_ai.tool.call.result", text)
                add("output.value", text)
                add("output.mime_type", Self.mimeType(text))
            }
        case .handoff:
            let from = str("from_agent") ?? ""
            let to = str("to_agent") ?? ""
            name = "handoff \(from) -> \(to)"
            oiKind = .tool
            add("gen_ai.agent.name", from)
            add("gen_ai.handoff.from_agent", from)
            add("gen_ai.handoff.to_agent", to)
            add("tool.name", "transfer_to_\(to)")
            add("input.value", from)
            add("output.value", to)
        case .guardrail:
            let guardrail = str("name") ?? ""
            let triggered = data["triggered"]?.boolValue ?? false
            name = "guardrail \(guardrail)"
            oiKind = .guardrail
            add("bridge.guardrail.name", guardrail)
            add("bridge.guardrail.triggered", .bool(triggered))
            add("output.value", triggered ? "triggered" : "passed")
        case .mcpTools:
            let server = str("server") ?? ""
            name = "list_tools \(server)"
            add("mcp.method.name", "tools/list")
            add("mcp.server.name", server)
            if let result = data["result"], !result.isNull {
                add("bridge.mcp_tools.result", OTLPValue(result))
                add("output.value", result.compact)
                add("output.mime_type", "application/json")
            }
        case .custom:
            let custom = str("name") ?? "custom"
            let d = data["data"]?.objectValue ?? [:]
            name = custom
            switch custom {
            case "approval":
                add("gen_ai.tool.call.id", d["call_id"]?.stringValue)
                add("tool.name", d["tool_name"]?.stringValue)
            default: break
            }
            Self.flatten(data["data"] ?? .null, prefix: "bridge.data", into: &attrs)
        case .transcription, .speech, .speechGroup, nil:
            for (k, v) in data.sorted(by: { $0.key < $1.key }) where k != "type" {
                Self.flatten(v, prefix: "bridge.\(type).\(k)", into: &attrs)
            }
        }
        add("openinference.span.kind", oiKind.rawValue)
        // What a user filters on: the task, its workspace and its conversation.
        let meta = s.trace.metadata
        add("bridge.task.id", meta["task_id"])
        add("bridge.workspace.id", meta["workspace_id"])
        if let conversation = s.trace.groupId ?? meta["task_id"] {
            add("gen_ai.conversation.id", conversation)
            add("session.id", conversation)
        }
        if r.parentId == nil {
            add("bridge.workflow_name", s.trace.workflowName)
            add("bridge.group_id", s.trace.groupId)
            for (k, v) in meta.sorted(by: { $0.key < $1.key }) { add("bridge.metadata.\(k)", v) }
            if !meta.isEmpty { add("metadata", JSONValue.object(meta.mapValues(JSONValue.string)).compact) }
        }
        var status: (code: Int, message: String) = (1, "")  // STATUS_CODE_OK
        if let e = r.error, !e.isNull {
            status = (2, e["message"]?.stringValue ?? "error")  // STATUS_CODE_ERROR
            if let d = e["data"], !d.isNull { add("bridge.error.data", d.compact) }
        }
        if conventions != .both { attrs.removeAll { !conventions.keeps($0.key) } }
        if let limit = valueLengthLimit {
            attrs = attrs.map { OTLPAttribute($0.key, $0.value.truncated(to: limit)) }
        }
        return OTLPSpan(
            traceId: TraceID.otlp(r.traceId), spanId: SpanID.otlp(r.id), parentSpanId: r.parentId.map(SpanID.otlp),
            name: name, kind: kind, startNanos: Self.nanos(r.startedAt), endNanos: Self.nanos(r.endedAt),
            attributes: attrs, status: status)
    }

    /// OpenInference's flattened messages: `<prefix>.<i>.message.role` / `.content`, and a
    /// message's tool calls as `.tool_calls.<j>.tool_call.{id,function.name,function.arguments}`.
    /// Chat Completions messages and Responses items alike (`function_call` items become a
    /// tool call of an assistant message).
    static func messages(_ items: [JSONValue], prefix: String, into attrs: inout [OTLPAttribute]) {
        for (i, m) in items.enumerated() {
            let p = "\(prefix).\(i).message"
            if m["type"]?.stringValue == "function_call" {
                attrs.append(OTLPAttribute("\(p).role", .string("assistant")))
                toolCall(m, prefix: "\(p).tool_calls.0.tool_call", into: &attrs)
                continue
            }
            if m["type"]?.stringValue == "function_call_output" {
                attrs.append(OTLPAttribute("\(p).role", .string("tool")))
                if let id = m["call_id"]?.stringValue { attrs.append(OTLPAttribute("\(p).tool_call_id", .string(id))) }
                if let o = m["output"] { attrs.append(OTLPAttribute("\(p).content", .string(o.templateText))) }
                continue
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

    static func toolCall(_ call: JSONValue, prefix: String, into attrs: inout [OTLPAttribute]) {
        if let id = (call["id"] ?? call["call_id"])?.stringValue {
            attrs.append(OTLPAttribute("\(prefix).id", .string(id)))
        }
        let fn = call["function"] ?? call
        if let n = fn["name"]?.stringValue { attrs.append(OTLPAttribute("\(prefix).function.name", .string(n))) }
        if let a = fn["arguments"] {
            attrs.append(OTLPAttribute("\(prefix).function.arguments", .string(a.templateText)))
        }
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
