import BridgeCore
import BridgeTraceModel

/// Everything one agent run needs, built from a task row plus the mappings by the
/// DatabaseToSDKBridge. `bridge exec --dry-run` prints it as one JSON line.
///
/// JSON keys are snake_case, as in the Agents SDK.
@SnakeCaseCodingKeys
@MemberwiseInit
public struct RunSpec: Codable, Sendable, Equatable {
    /// `trace_` + 32 lowercase hex, deterministic for (task id, attempt); see `TraceID`.
    public var traceId: TraceID
    public var workflowName: String
    /// The trace's `group_id` (the reference mappings use the task's `workspace_id`).
    public var groupId: String?
    /// Flat string-to-string trace metadata: task_id, workspace_id, agent_id, attempt, …
    public var metadata: [String: String]
    /// Name of the agent the run starts with (a key of `agents`).
    public var startingAgent: String
    public var agents: [String: AgentSpec]
    /// Every tool any agent in `agents` may call, keyed by name.
    public var tools: [String: ToolSpec]
    /// The first user message.
    public var input: String
    /// Turn limit across all agents (default 10).
    public var maxTurns: Int
    /// When false, tool inputs/outputs and model messages are redacted in spans.
    public var traceIncludeSensitiveData: Bool
    /// The task's key value and the attempt number (1-based).
    public var taskId: TaskKey
    public var attempt: Int
    /// Every guardrail any agent in `agents` names, keyed by name.
    public var guardrails: [String: GuardrailSpec] = [:]
    /// The task's session (`sessions`): its key and the items read before the run, which the
    /// run's input follows. Stored with the spec, so a resumed run sees the same history.
    public var session: SessionSpec? = nil
}

/// A run's session: its key and the history prepended to the input (Responses API items).
public struct SessionSpec: Codable, Sendable, Equatable {
    public var id: String
    public var items: [ConversationItem] = []
}

/// One agent as the runner sees it: instructions already rendered from templates.
@SnakeCaseCodingKeys
public struct AgentSpec: Codable, Sendable, Equatable {
    public var name: String
    public var instructions: String
    public var model: String
    /// Passed through to the model API (temperature, top_p, …).
    public var modelSettings: [String: JSONValue]
    /// Names of tools (keys of `RunSpec.tools`), in declaration order.
    public var tools: [String]
    public var handoffs: [HandoffSpec]
    public var toolUseBehavior: ToolUseBehavior
    /// Which model API to call for this agent: `responses` (default) or `chat_completions`.
    public var modelAPI: ModelAPI?
    /// The agent span's `output_type` (the SDK reports "str" for plain text; with a structured
    /// output, the schema's name).
    public var outputType: String
    /// The structured output the agent must answer in (nil: plain text).
    public var outputSchema: OutputSchemaSpec?
    /// Guardrail names (keys of `RunSpec.guardrails`): input ones run when this agent starts
    /// the run, output ones on its final output.
    public var inputGuardrails: [String]
    public var outputGuardrails: [String]
    /// MCP servers (names of `mcp_servers`) whose tools the agent offers besides `tools`.
    public var mcpServers: [String] = []

    public init(
        name: String, instructions: String, model: String, modelSettings: [String: JSONValue] = [:],
        tools: [String], handoffs: [HandoffSpec], toolUseBehavior: ToolUseBehavior = .runLLMAgain,
        modelAPI: ModelAPI? = nil, outputType: String = "str", outputSchema: OutputSchemaSpec? = nil,
        inputGuardrails: [String] = [], outputGuardrails: [String] = []
    ) {
        self.outputSchema = outputSchema
        self.inputGuardrails = inputGuardrails
        self.outputGuardrails = outputGuardrails
        self.name = name
        self.instructions = instructions
        self.model = model
        self.modelSettings = modelSettings
        self.tools = tools
        self.handoffs = handoffs
        self.toolUseBehavior = toolUseBehavior
        self.modelAPI = modelAPI
        self.outputType = outputSchema?.name ?? outputType
    }
}

/// A handoff from one agent to another, exposed to the model as a function tool.
@MemberwiseInit
@SnakeCaseCodingKeys
public struct HandoffSpec: Codable, Sendable, Equatable {
    /// Target agent name (a key of `RunSpec.agents`).
    public var agent: String
    /// `transfer_to_<snake_case agent name>`.
    public var toolName: String
    /// "Handoff to the {name} agent to handle the request. {handoff_description}"
    public var toolDescription: String

    /// The SDK's default tool name for a handoff to `agentName`:
    /// lowercased, every character outside `[a-zA-Z0-9_]` replaced by `_`.
    public static func defaultToolName(for agentName: String) -> String {
        let mapped = agentName.lowercased().unicodeScalars.map { s -> Character in
            (s.isASCII && (s.properties.isAlphabetic || ("0"..."9").contains(s) || s == "_")) ? Character(s) : "_"
        }
        return "transfer_to_" + String(mapped)
    }

    /// The SDK's default handoff tool description.
    public static func defaultDescription(for agentName: String, handoffDescription: String?) -> String {
        // Empty default: the SDK's own default, `handoff_description or ''`.
        "Handoff to the \(agentName) agent to handle the request. \(handoffDescription ?? "")"
    }
}

/// What happens after a tool call, as in the SDK's `tool_use_behavior`.
public enum ToolUseBehavior: Sendable, Equatable, Codable {
    /// Tool outputs go back to the model (default).
    case runLLMAgain
    /// The first tool's output is the final output.
    case stopOnFirstTool
    /// Stop when any of these tools is called; its output is the final output.
    case stopAtToolNames([String])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            switch s {
            case "run_llm_again": self = .runLLMAgain
            case "stop_on_first_tool": self = .stopOnFirstTool
            default:
                throw DecodingError.dataCorruptedError(
                    in: c,
                    debugDescription:
                        "unknown tool_use_behavior '\(s)' (expected run_llm_again, stop_on_first_tool or {stop_at_tool_names: [...]})"
                )
            }
        } else {
            let o = try c.decode([String: [String]].self)
            guard o.count == 1, let names = o["stop_at_tool_names"] else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected {stop_at_tool_names: [...]}")
            }
            self = .stopAtToolNames(names)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .runLLMAgain: try c.encode("run_llm_again")
        case .stopOnFirstTool: try c.encode("stop_on_first_tool")
        case .stopAtToolNames(let n): try c.encode(["stop_at_tool_names": n])
        }
    }
}

/// A tool: its schema for the model and how bridge runs it.
@MemberwiseInit
public struct ToolSpec: Codable, Sendable, Equatable {
    public var name: String
    public var description: String
    /// JSON Schema of the arguments (an object schema; strict: additionalProperties false,
    /// every property required). Empty object for hosted tools.
    public var parameters: JSONValue
    public var strict: Bool = true
    public var implementation: ToolImplementation
    /// Whether a call waits for a human decision.
    public var needsApproval: ApprovalRule = .never
    /// The SDK's `tool_input_guardrails`: checked in order before the tool runs (nil: none).
    public var inputGuardrails: [ToolGuardrailSpec]? = nil
    /// The SDK's `tool_output_guardrails`: checked in order on the output before the model
    /// sees it (nil: none).
    public var outputGuardrails: [ToolGuardrailSpec]? = nil

    /// True for function tools that bridge executes (sql, http, command).
    public var isFunctionTool: Bool {
        if case .hosted = implementation { return false }
        return true
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, description, parameters, strict, implementation
        case needsApproval
        case inputGuardrails = "input_guardrails"
        case outputGuardrails = "output_guardrails"
    }
}

/// How a function tool is executed, or which hosted tool it is.
public enum ToolImplementation: Codable, Sendable, Equatable {
    case sql(SQLToolSpec)
    case http(HTTPToolSpec)
    case command(CommandToolSpec)
    case hosted(HostedToolSpec)

    enum CodingKeys: String, CodingKey { case kind, sql, http, command, hosted }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .kind) {
        case "sql": self = .sql(try c.decode(SQLToolSpec.self, forKey: .sql))
        case "http": self = .http(try c.decode(HTTPToolSpec.self, forKey: .http))
        case "command": self = .command(try c.decode(CommandToolSpec.self, forKey: .command))
        case "hosted": self = .hosted(try c.decode(HostedToolSpec.self, forKey: .hosted))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .kind, in: c, debugDescription: "unknown tool kind \(other)")
        }
    }

    /// `{kind, <kind>: spec}`: the kind names the key its spec is under.
    public func encode(to encoder: any Encoder) throws {
        let (kind, spec): (CodingKeys, any Encodable) =
            switch self {
            case .sql(let s): (.sql, s)
            case .http(let s): (.http, s)
            case .command(let s): (.command, s)
            case .hosted(let s): (.hosted, s)
            }
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(kind.stringValue, forKey: .kind)
        try c.encode(spec, forKey: kind)
    }
}

/// A SQL tool. `:name` is a tool argument, `:task.column` a column of the current task; both
/// are compiled to `$n` binds (see `SQLToolSpec.compile`). Runs READ ONLY with a
/// `statement_timeout` unless `writes` is true.
/// The limits have the defaults the mappings document for `timeout_ms`, `max_rows` and
/// `max_bytes`; callers set what the YAML changes.
@SnakeCaseCodingKeys
@MemberwiseInit
public struct SQLToolSpec: Codable, Sendable, Equatable {
    public var sql: String
    public var writes: Bool = false
    public var timeoutMs: Int = 5_000
    public var maxRows: Int = 100
    public var maxBytes: Int = 65_536

    /// A read-only query of at most one row: a guardrail's or an approval condition's check.
    public static func check(_ sql: String) -> SQLToolSpec {
        var spec = SQLToolSpec(sql: sql)
        spec.maxRows = 1
        return spec
    }
}

/// An HTTP tool: POSTs the JSON arguments to `url`; the response body is the output.
/// Header values may reference `${ENV_VAR}`; they are resolved at execution time and never
/// recorded.
@MemberwiseInit
@SnakeCaseCodingKeys
public struct HTTPToolSpec: Codable, Sendable, Equatable {
    public var url: String
    public var headers: [String: String] = [:]
    public var timeoutMs: Int = 10_000
    public var maxBytes: Int = 1_048_576
}

/// A command tool: runs `argv` with no shell; the JSON arguments go to stdin, stdout is the
/// output; a non-zero exit is a tool error.
@SnakeCaseCodingKeys
public struct CommandToolSpec: Codable, Sendable, Equatable {
    public var argv: [String]
    public var timeoutMs: Int
    public var maxBytes: Int
    /// Names of bridge's environment variables the command may see, besides
    /// `ChildEnvironment.baseline` (PATH, HOME, LANG, TZ). Nothing else is passed on.
    public var env: [String]

    public init(argv: [String], timeoutMs: Int = 10_000, maxBytes: Int = 1_048_576, env: [String] = []) {
        self.argv = argv
        self.timeoutMs = timeoutMs
        self.maxBytes = maxBytes
        self.env = env
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            argv: try c.decode([String].self, forKey: .argv), timeoutMs: try c.decode(Int.self, forKey: .timeoutMs),
            maxBytes: try c.decode(Int.self, forKey: .maxBytes),
            env: try c.decodeIfPresent([String].self, forKey: .env) ?? [])
    }
}

/// A hosted tool that the model provider runs (`web_search`, `file_search`, `code_interpreter`).
@MemberwiseInit
@SnakeCaseCodingKeys
public struct HostedToolSpec: Codable, Sendable, Equatable {
    public var type: String
    public var vectorStoreIds: [String] = []
}

/// An agent's structured output (the SDK's `output_type`): a JSON Schema the final answer must
/// match. Sent as the Responses API's `text.format` and Chat Completions' `response_format`.
@MemberwiseInit
public struct OutputSchemaSpec: Codable, Sendable, Equatable {
    /// The schema's name (`^[a-zA-Z0-9_-]{1,64}$`); also the agent span's `output_type`.
    public var name: String
    /// An object schema.
    public var schema: JSONValue
    /// Strict mode (default true): every object closed, every property required.
    public var strict: Bool = true
    /// Top-level fields of the answer copied into columns of the task row: field → column.
    public var columns: [String: String] = [:]
}

/// A guardrail (the SDK's input/output guardrails) as the runner sees it.
@MemberwiseInit
@SnakeCaseCodingKeys
public struct GuardrailSpec: Codable, Sendable, Equatable {
    public var name: String
    public var implementation: GuardrailImplementation
    /// Input guardrails only: true (the SDK's default) runs beside the first model call and
    /// cancels it on a tripwire; false runs before it, so a tripwire costs no model call.
    public var runInParallel: Bool = true
}

/// How a guardrail decides.
public enum GuardrailImplementation: Codable, Sendable, Equatable {
    /// A read-only query; `:input` is the run's input text, `:output` the agent's final output
    /// (output guardrails), `:task.column` a task column. Its first row's `tripwire_triggered`
    /// (boolean) and `output_info` are the result; no row means not triggered.
    case sql(SQLToolSpec)
    /// An agent (a key of `RunSpec.agents`) whose structured output has a boolean
    /// `tripwire_triggered`; its `output_info` field (else the whole answer) is the info.
    case agent(String)
}

/// A tool's `needs_approval`: never, always, or when a read-only SQL predicate over the call's
/// arguments (`:argument`) and the task (`:task.column`) returns true in its first column.
public enum ApprovalRule: Codable, Sendable, Equatable {
    case never
    case always
    case sql(SQLToolSpec)

    public var isNever: Bool { self == .never }
}
