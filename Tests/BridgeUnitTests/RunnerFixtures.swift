import BridgeCore
import BridgeMapping
import BridgeRunner
// The runner tests' stand-ins: a tool executor with fixed outputs, scripted and recording
// models, an observer tee and a span tree for assertions.
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

// MARK: - Fixtures

/// Tool executor for tests: fixed outputs per tool, optional delay, optional failure.
struct FakeTools: ToolExecutor {
    var outputs: [String: String] = [:]
    var failures: [String: String] = [:]
    var delayMs: Int = 0
    let log = ToolLog()

    func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        let start = Date()
        if delayMs > 0 { try await Task.sleep(nanoseconds: UInt64(delayMs) * 1_000_000) }
        await log.add(tool.name, arguments: arguments, start: start, end: Date())
        if let f = failures[tool.name] { throw ToolFailure(f) }
        return outputs[tool.name] ?? "[{\"tool\":\"\(tool.name)\"}]"
    }
}

actor ToolLog {
    struct Entry {
        var name: String
        var arguments: JSONValue
        var start: Date
        var end: Date
    }
    var entries: [Entry] = []
    func add(_ name: String, arguments: JSONValue, start: Date, end: Date) {
        entries.append(Entry(name: name, arguments: arguments, start: start, end: end))
    }
}

/// Collects events in order.
actor EventLog: RunObserver {
    var events: [RunEvent] = []
    func record(_ event: RunEvent) async { events.append(event) }
}

/// A model that answers from a script keyed by turn, recording requests.
struct ScriptedModel: ModelProvider {
    var spanKind: ModelSpanKind { .generation }
    let script: @Sendable (ModelRequest) throws -> [ConversationItem]
    let requests = RequestLog()

    func respond(_ request: ModelRequest) async throws -> ModelResponse {
        await requests.add(request)
        return ModelResponse(
            output: try script(request), usage: Usage(requests: 1, inputTokens: 10, outputTokens: 5),
            model: request.agent.model)
    }
}

/// Wraps a provider and records its requests.
struct RecordingModel: ModelProvider {
    let inner: any ModelProvider
    let requests = RequestLog()
    var spanKind: ModelSpanKind { inner.spanKind }
    func respond(_ request: ModelRequest) async throws -> ModelResponse {
        await requests.add(request)
        return try await inner.respond(request)
    }
}

actor RequestLog {
    var all: [ModelRequest] = []
    func add(_ r: ModelRequest) { all.append(r) }
}

func call(_ name: String, _ id: String, _ arguments: String = "{}") -> ConversationItem {
    ["type": "function_call", "call_id": .string(id), "name": .string(name), "arguments": .string(arguments)]
}

extension JSONValue {
    /// The JSON schema of an object in the form strict structured output needs: these
    /// `properties`, every one required (in their order), and no others.
    static func strictObject(_ properties: KeyValuePairs<String, JSONValue>) -> JSONValue {
        [
            "type": "object",
            "properties": .object(Dictionary(uniqueKeysWithValues: properties.map { ($0.key, $0.value) })),
            "required": .array(properties.map { .string($0.key) }), "additionalProperties": false,
        ]
    }
}

func say(_ text: String) -> ConversationItem {
    ["type": "message", "role": "assistant", "content": [["type": "output_text", "text": .string(text)]]]
}

enum Fixture {
    static let rolesSchema = JSONValue.strictObject([
        "workspace_id": ["type": "string", "examples": ["ws-1"]],
        "include_inactive": ["type": "boolean", "default": false],
    ])
    static let subTaskSchema = JSONValue.strictObject([
        "name": ["type": "string"],
        "priority": ["type": "string", "enum": ["high", "low"]],
        "estimate": ["type": "integer"],
    ])
    static let storeSchema = JSONValue.strictObject(["key": ["type": "string"], "value": ["type": "string"]])

    static func sqlTool(_ name: String, _ schema: JSONValue) -> ToolSpec {
        ToolSpec(
            name: name, description: "The \(name) tool.", parameters: schema,
            implementation: .sql(SQLToolSpec(sql: "SELECT 1")))
    }

    static func handoff(_ agent: String, _ description: String? = nil) -> HandoffSpec {
        HandoffSpec(
            agent: agent, toolName: HandoffSpec.defaultToolName(for: agent),
            toolDescription: HandoffSpec.defaultDescription(for: agent, handoffDescription: description))
    }

    /// Project Manager (two sql tools, handoffs to Researcher and Content Specialist) → Researcher (store_data + web_search).
    static func team(maxTurns: Int = 10, pmBehavior: ToolUseBehavior = .runLLMAgain, sensitive: Bool = true) -> RunSpec
    {
        let pm = AgentSpec(
            name: "Project Manager", instructions: "You manage the team.", model: "gpt-4.1",
            modelSettings: ["temperature": 0.2],
            tools: ["get_team_roles_and_status", "create_and_assign_sub_task"],
            handoffs: [handoff("Researcher", "Finds facts."), handoff("Content Specialist")],
            toolUseBehavior: pmBehavior)
        let researcher = AgentSpec(
            name: "Researcher", instructions: "You research.", model: "gpt-4.1-mini",
            tools: ["store_data", "web_search"], handoffs: [])
        let writer = AgentSpec(
            name: "Content Specialist", instructions: "You write.", model: "gpt-4.1-mini",
            tools: ["store_data"], handoffs: [])
        let tools: [String: ToolSpec] = [
            "get_team_roles_and_status": sqlTool("get_team_roles_and_status", rolesSchema),
            "create_and_assign_sub_task": sqlTool("create_and_assign_sub_task", subTaskSchema),
            "store_data": sqlTool("store_data", storeSchema),
            "web_search": ToolSpec(
                name: "web_search", description: "", parameters: [:],
                implementation: .hosted(HostedToolSpec(type: "web_search"))),
        ]
        return RunSpec(
            traceId: TraceID.forTask("42", attempt: 1), workflowName: "bridge task 42", groupId: "ws-1",
            metadata: ["task_id": "42", "workspace_id": "ws-1", "attempt": "1"],
            startingAgent: "Project Manager",
            agents: ["Project Manager": pm, "Researcher": researcher, "Content Specialist": writer],
            tools: tools, input: "Plan the launch.", maxTurns: maxTurns,
            traceIncludeSensitiveData: sensitive, taskId: "42", attempt: 1)
    }

    /// Runs `spec` and returns the result, the recorded spans and the raw events.
    static func run(
        _ spec: RunSpec, model: any ModelProvider = OfflineModel(), tools: any ToolExecutor = FakeTools(),
        sensitive: Bool = true
    ) async -> (RunResult, [SpanRecord], [RunEvent]) {
        let sink = MemorySpanSink()
        let recorder = TraceRecorder(spec: spec, sinks: [sink], includeSensitiveData: sensitive)
        let log = EventLog()
        let both = Tee(a: recorder, b: log)
        let result = await AgentRunner(model: model, tools: tools, observer: both).run(spec, taskRow: ["id": "42"])
        return (result, await sink.spans, await log.events)
    }
}

struct Tee: RunObserver {
    let a: any RunObserver
    let b: any RunObserver
    func record(_ event: RunEvent) async {
        await a.record(event)
        await b.record(event)
    }
}

/// The spans as a tree, for assertions.
struct SpanTree {
    let spans: [SpanRecord]
    var root: SpanRecord? { spans.first { $0.parentId == nil } }
    func children(_ s: SpanRecord) -> [SpanRecord] {
        spans.filter { $0.parentId == s.id }.sorted { ($0.startedAt, $0.id) < ($1.startedAt, $1.id) }
    }
    /// `type` or `custom:name`, e.g. `custom:turn`.
    static func label(_ s: SpanRecord) -> String {
        s.type == "custom" ? "custom:\(s.spanData["name"]?.stringValue ?? "")" : s.type
    }
}

/// Every started event has exactly one ended event.
func checkBalanced(_ events: [RunEvent]) {
    var open: Set<EventID> = []
    var ended: Set<EventID> = []
    for e in events {
        switch e {
        case .taskStarted(let id, _), .agentStarted(let id, _, _, _, _, _, _), .turnStarted(let id, _, _, _, _),
            .modelStarted(let id, _, _, _, _, _), .toolStarted(let id, _, _, _, _), .guardrailStarted(let id, _, _, _):
            #expect(!open.contains(id))
            open.insert(id)
        case .taskEnded(let id, _, _, _), .agentEnded(let id, _, _), .turnEnded(let id, _, _, _),
            .modelEnded(let id, _, _, _), .toolEnded(let id, _, _, _), .guardrailEnded(let id, _, _, _):
            #expect(open.contains(id), "ended \(id) without start")
            #expect(!ended.contains(id))
            ended.insert(id)
        case .handoff, .spanError, .spanNote, .approvalWait, .mcpToolsListed, .mcpCall, .resumed: break
        }
    }
    #expect(open == ended, "unbalanced events: \(open.subtracting(ended))")
}
