import BridgeCore
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// The built-in deterministic model for `bridge exec --offline`: no network, no key.
///
/// For each agent stint:
/// 1. first turn: it calls every function tool of the agent at once, with arguments generated
///    from the tools' JSON Schemas (`OfflineModel.exampleArguments`);
/// 2. then it takes the first handoff that no earlier turn of the run has taken;
/// 3. then it answers with a short summary of the tool outputs of its stint (with an
///    `output_type`: a valid instance of its schema, see `structuredAnswer`).
///
/// Ids (`call_…`, `fc_…`, `msg_…`) derive from the trace id, the turn and the item's position,
/// and usage from the sizes of input and output, so the same request gives the same response.
@MemberwiseInit
public struct OfflineModel: ModelProvider {
    public var spanKind: ModelSpanKind { .generation }
    /// How long each call waits before answering (for tests and benchmarks that need runs
    /// slow enough to interrupt). Cancellation ends the wait with `CancellationError`.
    public var latency: Duration = .zero

    public func respond(_ request: ModelRequest) async throws -> ModelResponse {
        if latency > .zero { try await Task.sleep(for: latency) }
        let output = Self.plan(request)
        let inputChars = request.agent.instructions.count + request.input.reduce(0) { $0 + $1.json.compact.count }
        let outputChars = output.reduce(0) { $0 + $1.json.compact.count }
        let usage = Usage(requests: 1, inputTokens: max(1, inputChars / 4), outputTokens: max(1, outputChars / 4))
        return ModelResponse(output: output, usage: usage, responseId: nil, model: request.agent.model)
    }

    static func id(_ prefix: String, _ request: ModelRequest, _ index: Int) -> String {
        prefix + SHA256.hex("bridge-offline:\(request.traceId):\(request.turn):\(index)").prefix(24)
    }

    /// The response items for `request`.
    static func plan(_ request: ModelRequest) -> [ConversationItem] {
        let agent = request.agent
        let handoffNames = Set(agent.handoffs.map(\.toolName))
        let ownTools = request.functionTools.filter { !handoffNames.contains($0.name) }
        let stint = stintItems(request.input, agent: agent.name)
        let calledInStint = Set(stint.compactMap { $0.functionCall?.name })

        // 1. First turn of the stint: every function tool, in parallel.
        if !ownTools.isEmpty, calledInStint.isDisjoint(with: ownTools.map(\.name)) {
            return ownTools.enumerated().map { i, tool in
                functionCall(
                    request, index: i, name: tool.name,
                    arguments: exampleArguments(for: tool.parameters, strict: tool.strict).compact)
            }
        }
        // 2. The first handoff not taken yet in this run.
        let calledEver = Set(runItems(request.input).compactMap { $0.functionCall?.name })
        if let next = agent.handoffs.first(where: { !calledEver.contains($0.toolName) }) {
            return [functionCall(request, index: 0, name: next.toolName, arguments: "{}")]
        }
        // 3. The summary (a schema instance when the agent has an output_type).
        let text = summary(agent: agent.name, stint: stint, ownTools: Set(ownTools.map(\.name)))
        if let schema = agent.outputSchema {
            return [message(request, text: structuredAnswer(schema.schema, summary: text).compact)]
        }
        return [message(request, text: text)]
    }

    /// A valid instance of an output schema: placeholders as for tool arguments, except that
    /// booleans are false (so a guardrail agent's `tripwire_triggered` does not trip) and the
    /// first free-text top-level string property carries the summary.
    static func structuredAnswer(_ schema: JSONValue, summary: String) -> JSONValue {
        guard case .object(var o) = exampleValue(for: schema, strict: true, depth: 0, boolean: false) else {
            return [:]
        }
        let props = schema["properties"]?.objectValue ?? [:]
        if let field = props.keys.sorted().first(where: { key in
            let p = props[key]
            return p?["type"]?.stringValue == "string" && p?["enum"] == nil && p?["const"] == nil
        }) {
            o[field] = .string(summary)
        }
        return .object(o)
    }

    /// The items of the current agent's stint: everything after the last handoff output that
    /// transferred to it (the whole input for the starting agent).
    static func stintItems(_ input: [ConversationItem], agent: String) -> ArraySlice<ConversationItem> {
        let run = runItems(input)
        let marker = RunnerMessages.transferMessage(to: agent)
        if let i = run.lastIndex(where: { $0.functionCallOutput?.output.stringValue == marker }) {
            return run[(i + 1)...]
        }
        return run
    }

    /// The items of this run: from its user message on (a session's earlier exchanges come
    /// before it; the run itself adds no user messages).
    static func runItems(_ input: [ConversationItem]) -> ArraySlice<ConversationItem> {
        guard let i = input.lastIndex(where: { $0.message?.role == "user" }) else { return input[...] }
        return input[i...]
    }

    static func summary(agent: String, stint: ArraySlice<ConversationItem>, ownTools: Set<String>) -> String {
        var names: [CallID: String] = [:]
        for call in stint.compactMap(\.functionCall) { names[call.callId] = call.name }
        var parts: [String] = []
        for item in stint.compactMap(\.functionCallOutput) {
            guard let name = names[item.callId], ownTools.contains(name) else { continue }
            let output = item.output.stringValue ?? ""
            parts.append("\(name) → \(String(output.prefix(80)))")
        }
        return parts.isEmpty ? "\(agent) done: no tool calls." : "\(agent) done: " + parts.joined(separator: "; ")
    }

    static func functionCall(_ request: ModelRequest, index: Int, name: String, arguments: String) -> ConversationItem {
        .call(
            id: id("fc_", request, index), callId: CallID(id("call_", request, index)), name: name,
            arguments: arguments)
    }

    static func message(_ request: ModelRequest, text: String) -> ConversationItem {
        .assistant(id: id("msg_", request, 0), parts: [ConversationItem.outputText(text)])
    }

    /// Arguments for a tool with parameter schema `schema`: for every property its `default`,
    /// else its first `examples` entry, else its `const`, else its first `enum` value, else a
    /// placeholder of its type (string "example", integer and number 1, boolean true, array [],
    /// objects recursively). Strict schemas get every property; others their `required` ones.
    public static func exampleArguments(for schema: JSONValue, strict: Bool = true) -> JSONValue {
        let value = exampleValue(for: schema, strict: strict, depth: 0)
        return value.objectValue != nil ? value : [:]
    }

    /// Past this depth, where a schema offers a choice (`anyOf`, a list of types), the branch
    /// with the smallest instance is taken, so recursive schemas (`$ref: "#"`, `$defs` that
    /// refer to each other) end; forced nesting (a 20-deep schema) is followed to the end.
    static let preferredDepth = 8

    static func exampleValue(
        for schema: JSONValue, strict: Bool, depth: Int, boolean: Bool = true,
        refs: JSONSchemaRefs? = nil
    ) -> JSONValue {
        let refs = refs ?? JSONSchemaRefs(root: schema, allProperties: strict)
        guard let s = schema.objectValue, depth < 1024 else { return .null }
        func value(_ sub: JSONValue) -> JSONValue {
            exampleValue(for: sub, strict: strict, depth: depth + 1, boolean: boolean, refs: refs)
        }
        /// The first candidate that is not just null and whose smallest instance fits the
        /// preferred depth; else the one with the smallest instance.
        func choose<T>(_ candidates: [T], height: (T) -> Int, isNull: (T) -> Bool) -> T? {
            candidates.first { !isNull($0) && depth + height($0) <= Self.preferredDepth }
                ?? candidates.min { height($0) < height($1) }
        }
        if let ref = s["$ref"]?.stringValue {
            guard let target = refs.resolve(ref) else { return .null }
            return value(target)
        }
        if let d = s["default"] { return d }
        if let first = s["examples"]?.arrayValue?.first { return first }
        if let c = s["const"] { return c }
        if let first = s["enum"]?.arrayValue?.first { return first }
        for key in ["anyOf", "oneOf", "allOf"] {
            if let branches = s[key]?.arrayValue, !branches.isEmpty {
                let branch =
                    key == "allOf"
                    ? branches.first
                    : choose(
                        branches, height: refs.height,
                        isNull: { $0["type"]?.stringValue == "null" })
                if let branch { return value(branch) }
            }
        }
        let types = JSONSchemaRefs.types(s)
        let type = choose(
            types, height: { JSONSchemaRefs.typeHeight($0, s, allProperties: strict, refs.height) },
            isNull: { $0 == "null" })
        switch type {
        case "string": return "example"
        case "integer", "number":
            if let min = s["minimum"]?.doubleValue, min > 1 { return .number(min.rounded(.up)) }
            if let min = s["exclusiveMinimum"]?.doubleValue, min >= 1 { return .number(min.rounded(.down) + 1) }
            return 1
        case "boolean": return .bool(boolean)
        case "array":
            guard let min = s["minItems"]?.doubleValue, min >= 1, let items = s["items"] else { return [] }
            return .array(Array(repeating: value(items), count: Int(min)))
        case "null": return .null
        case "object":
            let props = s["properties"]?.objectValue ?? [:]
            let required = Set((s["required"]?.arrayValue ?? []).compactMap(\.stringValue))
            var out: [String: JSONValue] = [:]
            for (name, sub) in props where strict || required.contains(name) {
                out[name] = value(sub)
            }
            return .object(out)
        default:
            return "example"
        }
    }
}
