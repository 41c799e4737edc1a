import BridgeCore
import BridgeTraceModel

// The keys of `agents` and `tools` entries and of `guardrails` (see `MappingKeySet`).
extension Keys {
    // MARK: agents

    @SnakeCaseRawValues
    enum Agent: ModelKeySet {
        case name, match, instructions, model
        case modelSettings
        case modelAPI
        case tools, handoffs
        case handoffDescription
        case maxTurns
        case toolUseBehavior
        case outputType
        case inputGuardrails
        case outputGuardrails
        case mcpServers

        // The name is required (and the match defaults to it), so the placeholders here are no defaults.
        static let defaults = AgentMapping(name: "", match: "")

        var field: KeyField<AgentMapping> {
            switch self {
            case .name: .key(.init(.name, .required, "the agent's name (unique)"))
            case .match:
                .key(.init(.name, defaultProse: "the agent's name", "the agent row value that selects this agent"))
            case .instructions:
                .key(
                    .init(.template, defaultProse: "empty", "the system prompt, templated from the task and agent rows")
                )
            case .model: .name(\.model, "the model")
            case .modelSettings:
                .key(.init(.section(ModelSetting.self), "the SDK's ModelSettings and the APIs' request parameters"))
            case .modelAPI:
                .key(.init(.choice(ModelAPI.allCases.map(\.rawValue)), "the API the model is called through"))
            case .tools: .key(.init(.names, "the tools it may call"))
            case .handoffs:
                .key(.init(.either(.names, .entries(Handoff.self)), "the agents it may hand off to"))
            case .handoffDescription: .key(.init(.string, "what another agent's handoff tool says about this one"))
            // Left out, the field is nil and the run takes the bridge's default.
            case .maxTurns:
                .key(
                    .init(.int(min: 1), default: "\(DatabaseToSDKBridge.defaultMaxTurns)", "turns before the run fails")
                )
            case .toolUseBehavior:
                .key(
                    .init(
                        .either(.choice(["run_llm_again", "stop_on_first_tool"]), .section(ToolUseBehavior.self)),
                        default: "run_llm_again", "whether a tool's output ends the run"))
            case .outputType: .key(.init(.section(OutputType.self), "a structured output"))
            case .inputGuardrails: .key(.init(.names, "guardrails run on the input"))
            case .outputGuardrails: .key(.init(.names, "guardrails run on the final output"))
            case .mcpServers: .key(.init(.names, "the MCP servers whose tools it may call"))
            }
        }
    }

    enum Handoff: String, MappingKeySet {
        case agent, description

        var declaration: MappingKey {
            switch self {
            case .agent: .init(.name, .required, "the agent handed off to")
            case .description: .init(.string, "the handoff tool's description")
            }
        }
    }

    @SnakeCaseRawValues
    enum ToolUseBehavior: MappingKeySet {
        case stopAtToolNames

        var declaration: MappingKey {
            .init(.names, .required, "the run ends with the output of the first of these tools it calls")
        }
    }

    enum OutputType: String, MappingKeySet {
        case name, schema, strict, columns

        var declaration: MappingKey {
            switch self {
            case .name: .init(.name, .required, "the schema's name (^[a-zA-Z0-9_-]{1,64}$)")
            case .schema: .init(.json, .required, "the JSON Schema of the output")
            case .strict: .init(.bool, default: "true", "strict structured output")
            case .columns: .init(.stringMap, "top-level fields → task columns they are written to")
            }
        }
    }

    /// The `model_settings` keys bridge accepts: the Agents SDK's `ModelSettings` fields and the
    /// request parameters of the Responses and Chat Completions APIs. Anything else a provider
    /// takes goes under `extra_args` (or `extra_body`).
    @SnakeCaseRawValues
    enum ModelSetting: MappingKeySet {
        // Agents SDK ModelSettings
        case temperature
        case topP
        case frequencyPenalty
        case presencePenalty
        case toolChoice
        case parallelToolCalls
        case truncation
        case maxTokens
        case reasoning, verbosity, metadata, store
        case includeUsage
        case responseInclude
        case topLogprobs
        case extraQuery
        case extraBody
        case extraHeaders
        case extraArgs
        // Responses API
        case maxOutputTokens
        case previousResponseId
        case serviceTier
        case user
        case promptCacheKey
        case safetyIdentifier
        case background
        case maxToolCalls
        case prompt, text, include, conversation
        // Chat Completions API
        case seed, stop, n
        case logitBias
        case logprobs
        case maxCompletionTokens
        case modalities, prediction
        case reasoningEffort
        case webSearchOptions
        case audio

        var declaration: MappingKey {
            switch self {
            case .extraArgs, .extraBody:
                .init(.json, "provider parameters merged into the request as they are")
            case .temperature, .topP, .frequencyPenalty, .presencePenalty, .toolChoice, .parallelToolCalls,
                .truncation, .maxTokens, .reasoning, .verbosity, .metadata, .store, .includeUsage, .responseInclude,
                .topLogprobs, .extraQuery, .extraHeaders:
                .init(.json, "the Agents SDK's ModelSettings field of that name")
            case .maxOutputTokens, .previousResponseId, .serviceTier, .user, .promptCacheKey, .safetyIdentifier,
                .background, .maxToolCalls, .prompt, .text, .include, .conversation:
                .init(.json, "the Responses API request parameter of that name")
            case .seed, .stop, .n, .logitBias, .logprobs, .maxCompletionTokens, .modalities, .prediction,
                .reasoningEffort, .webSearchOptions, .audio:
                .init(.json, "the Chat Completions request parameter of that name")
            }
        }
    }

    // MARK: tools

    @SnakeCaseRawValues
    enum Tool: MappingKeySet {
        case name, description, parameters, strict, sql, http, command, hosted
        case needsApproval
        case inputGuardrails
        case outputGuardrails

        /// The implementations, of which a tool has exactly one.
        static let implementations: [Tool] = [.sql, .http, .command, .hosted]

        var declaration: MappingKey {
            let one = MappingKeyRequirement.when("exactly one of sql, http, command, hosted")
            return switch self {
            case .name: .init(.name, .required, "the tool's name (^[a-zA-Z0-9_-]{1,64}$, unique)")
            case .description: .init(.string, .when("yes, except hosted tools"), "what the model is told it does")
            case .parameters:
                .init(.json, defaultProse: "no parameters", "a JSON Schema of its arguments (not for hosted tools)")
            case .strict: .init(.bool, default: "true", "strict JSON Schema (not for hosted tools)")
            case .sql: .init(.section(ToolSQL.self), one, "a SQL statement over :argument and :task.column")
            case .http: .init(.section(ToolHTTP.self), one, "an HTTP endpoint the arguments are POSTed to")
            case .command: .init(.section(ToolCommand.self), one, "a program run without a shell")
            case .hosted: .init(.section(HostedTool.self), one, "a tool run by the model provider")
            case .needsApproval:
                .init(
                    .either(.bool, .section(NeedsApproval.self)), default: "false",
                    "whether a call waits for a human decision")
            case .inputGuardrails: .init(.entries(ToolGuardrail.self), "checks run on the arguments")
            case .outputGuardrails: .init(.entries(ToolGuardrail.self), "checks run on the output")
            }
        }
    }

    @SnakeCaseRawValues
    enum ToolSQL: ModelKeySet {
        case query, writes
        case timeoutMs
        case maxRows
        case maxBytes

        static let defaults = SQLToolSpec(sql: "")

        var field: KeyField<SQLToolSpec> {
            switch self {
            case .query: .key(.init(.sql, .required, "one statement; :argument and :task.column become binds"))
            case .writes: .bool(\.writes, "false runs it READ ONLY")
            case .timeoutMs: .int(\.timeoutMs, min: 1, "its statement timeout in milliseconds")
            case .maxRows: .int(\.maxRows, min: 1, "rows returned at most")
            case .maxBytes: .int(\.maxBytes, min: 1, "bytes of output at most")
            }
        }
    }

    @SnakeCaseRawValues
    enum ToolHTTP: ModelKeySet {
        case url, headers
        case timeoutMs
        case maxBytes

        static let defaults = HTTPToolSpec(url: "")

        var field: KeyField<HTTPToolSpec> {
            switch self {
            case .url: .key(.init(.name, .required, "an http(s) URL"))
            case .headers: .key(.init(.stringMap, "request headers; values may use ${ENV}"))
            case .timeoutMs: .int(\.timeoutMs, min: 1, "the whole exchange's deadline in ms")
            case .maxBytes: .int(\.maxBytes, min: 1, "bytes of response at most")
            }
        }
    }

    @SnakeCaseRawValues
    enum ToolCommand: ModelKeySet {
        case argv
        case timeoutMs
        case maxBytes
        case env

        static let defaults = CommandToolSpec(argv: [])

        var field: KeyField<CommandToolSpec> {
            switch self {
            case .argv:
                .key(.init(.names, .required, "the program and its arguments; the call's arguments go on stdin"))
            case .timeoutMs: .int(\.timeoutMs, min: 1, "the run's deadline in milliseconds")
            case .maxBytes: .int(\.maxBytes, min: 1, "bytes of output at most")
            case .env: .key(.init(.names, "environment variables it may see besides PATH, HOME, LANG, TZ"))
            }
        }
    }

    @SnakeCaseRawValues
    enum HostedTool: MappingKeySet {
        case type
        case vectorStoreIds

        var declaration: MappingKey {
            switch self {
            case .type: .init(.choice(LoadState.hostedTypes), .required, "the provider's tool")
            case .vectorStoreIds: .init(.names, .when("with file_search"), "the vector stores file_search reads")
            }
        }
    }

    enum NeedsApproval: String, MappingKeySet {
        case sql

        var declaration: MappingKey {
            .init(.sql, .required, "a query over :argument and :task.column; true: the call waits for approval")
        }
    }

    @SnakeCaseRawValues
    enum ToolGuardrail: MappingKeySet {
        case name, sql, agent
        case onTrip
        case message

        var declaration: MappingKey {
            switch self {
            case .name: .init(.name, .required, "the guardrail's name (unique in its list)")
            case .sql: Self.sqlCheck(over: ":arguments (or :output)")
            case .agent: Self.agentCheck
            case .onTrip:
                .init(
                    .choice(ToolGuardrailBehavior.names), default: "raise_exception",
                    "what a tripwire does to the call")
            case .message: .init(.template, "what the model is told instead ({{task.column}} only)")
            }
        }
    }

    @SnakeCaseRawValues
    enum Guardrail: ModelKeySet {
        case name, sql, agent
        case runInParallel

        // The name and check are required, so the placeholders here are no defaults.
        static let defaults = GuardrailMapping(name: "", implementation: .agent(""))

        var field: KeyField<GuardrailMapping> {
            switch self {
            case .name: .key(.init(.name, .required, "the guardrail's name (unique)"))
            case .sql: .key(Self.sqlCheck(over: ":input (or :output)"))
            case .agent: .key(Self.agentCheck)
            case .runInParallel: .bool(\.runInParallel, "an input guardrail runs alongside the model")
            }
        }
    }

    @SnakeCaseRawValues
    enum GuardrailSQL: ModelKeySet {
        case query
        case timeoutMs

        static let defaults = SQLToolSpec.check("")

        var field: KeyField<SQLToolSpec> {
            switch self {
            case .query: .key(.init(.sql, .required, "one read-only statement whose row has tripwire_triggered"))
            case .timeoutMs: .int(\.timeoutMs, min: 1, "its statement timeout in ms")
            }
        }
    }
}

/// The sections that hold a guardrail check: exactly one of `sql` and `agent`.
protocol GuardrailCheckKeys: MappingKeySet {
    static var sql: Self { get }
    static var agent: Self { get }
}

extension GuardrailCheckKeys {
    /// The declaration of `sql`: a query over `parameters` and `:task.column`.
    static func sqlCheck(over parameters: String) -> MappingKey {
        .init(
            .section(Keys.GuardrailSQL.self), .when("exactly one of sql, agent"),
            "a read-only check over \(parameters) and :task.column")
    }

    /// The declaration of `agent`.
    static var agentCheck: MappingKey {
        .init(.name, .when("exactly one of sql, agent"), "an agent whose output_type has a boolean tripwire_triggered")
    }
}

extension Keys.Guardrail: GuardrailCheckKeys {}
extension Keys.ToolGuardrail: GuardrailCheckKeys {}
