import BridgeCore
import BridgeTraceModel

/// One entry of `agents`.
public struct AgentMapping: Sendable, Equatable {
    public var name: String
    /// The value of `agent_selection.match_column` that selects this agent (default: `name`).
    public var match: String
    public var instructions = Template("")
    public var model = "gpt-4.1"
    public var modelSettings: [String: JSONValue] = [:]
    /// `responses` or `chat_completions`; nil means the provider's default (responses).
    public var modelAPI: ModelAPI?
    /// Tool names, in order.
    public var tools: [String] = []
    public var handoffs: [HandoffMapping] = []
    /// Used when other agents hand off to this one.
    public var handoffDescription: String?
    public var maxTurns: Int?
    public var toolUseBehavior: ToolUseBehavior = .runLLMAgain
    /// `output_type`: the structured output (nil: plain text).
    public var outputType: OutputSchemaSpec?
    public var inputGuardrails: [String] = []
    public var outputGuardrails: [String] = []
    /// Names of `mcp_servers` whose tools this agent may call, in order.
    public var mcpServers: [String] = []
    public var origin: MappingLocation = .unknown
}

/// One entry of `guardrails`: a read-only SQL check or an agent.
public struct GuardrailMapping: Sendable, Equatable {
    public var name: String
    public var implementation: GuardrailImplementation
    /// `run_in_parallel` (default true): see `GuardrailSpec.runInParallel`.
    public var runInParallel: Bool = true
    public var origin: MappingLocation = .unknown

    public var spec: GuardrailSpec {
        GuardrailSpec(name: name, implementation: implementation, runInParallel: runInParallel)
    }
}

/// A handoff declared in YAML: the target agent and an optional description.
public struct HandoffMapping: Sendable, Equatable {
    public var agent: String
    public var description: String?
}

/// One entry of `tools`: the tool as a run spec carries it, and where it was written. Its
/// fields read through to `spec` (`tool.name`, `tool.implementation`).
@dynamicMemberLookup
public struct ToolMapping: Sendable, Equatable {
    /// The run-spec form of this tool: its schema, how it runs and its `needs_approval`.
    public var spec: ToolSpec
    public var origin: MappingLocation

    public init(_ spec: ToolSpec, origin: MappingLocation = .unknown) {
        self.spec = spec
        self.origin = origin
    }

    public subscript<T>(dynamicMember field: KeyPath<ToolSpec, T>) -> T { spec[keyPath: field] }

    /// `{type: object, properties: {}, required: [], additionalProperties: false}`
    public static let emptyParameters: JSONValue = [
        "type": "object", "properties": [:], "required": [], "additionalProperties": false,
    ]
}

/// `handoffs_table`: an edge table of agent-to-agent handoffs (e.g. `agent_handoffs`).
public struct HandoffsTableMapping: Sendable, Equatable {
    public var table: String
    public var sourceColumn: String
    public var targetColumn: String
    public var descriptionColumn: String?
    public var origin: MappingLocation = .unknown
}

/// `approvals`: the user's table of approval requests (e.g. `human_feedback_requests`).
///
/// bridge inserts one row per call of a `needs_approval` tool and reads the row's status back;
/// `bridge approve` / `bridge reject` (or the application's UI) decide it.
public struct ApprovalsMapping: Sendable, Equatable {
    public var table: String = "human_feedback_requests"
    public var key: String = "id"
    public var statusColumn: String = "status"
    public var pending: String = "pending"
    public var approved: String = "approved"
    public var rejected: String = "rejected"
    /// Written by bridge when it resumes a request that expired undecided (nil: left pending).
    public var expired: String?
    /// Receives now() + `expiresAfterSeconds`; past it an undecided request counts as rejected.
    public var expiresAtColumn: String?
    public var expiresAfterSeconds: Double = 86_400
    /// The reviewer's answer (json/jsonb or text): its `message` (or the text itself) is what
    /// the model receives for a rejected call; its `by` names the reviewer.
    public var responseColumn: String?
    public var respondedAtColumn: String?
    /// Receives the task's `source.group_column` value.
    public var groupColumn: String?
    /// bridge's content → the table's columns: `title`, `description` (text), `proposed_actions`,
    /// `context` (json: task id, trace id, tool, arguments, call id).
    public var columns: [String: String] = [:]
    /// Constant values for other columns (e.g. `request_type: tool_approval`).
    public var values: [String: String] = [:]
    public var origin: MappingLocation = .unknown

    /// The keys of `columns`.
    public static let contentNames = Keys.ApprovalColumn.names
}
