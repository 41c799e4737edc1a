import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// Where and how the OpenAI model providers connect, read from an injected `Environment`.
///
/// | setting | environment variable | default |
/// |---------|----------------------|---------|
/// | `baseURL` | `OPENAI_BASE_URL` | `https://api.openai.com/v1` (a trailing `/` is dropped) |
/// | `apiKey` | `OPENAI_API_KEY` | none: no `Authorization` header is sent (fine for local OpenAI-compatible servers) |
/// | `organization` | `OPENAI_ORG_ID` | none: no `OpenAI-Organization` header |
/// | `project` | `OPENAI_PROJECT_ID` | none: no `OpenAI-Project` header |
///
/// `retry` (2 retries, 0.5 s doubling to 8 s), `requestTimeout` (600 s, as openai-python),
/// `stream` (on) and `streamStallTimeout` are set in code; the command line may override them.
public struct OpenAISettings: Sendable {
    public static let defaultBaseURL = "https://api.openai.com/v1"

    public var baseURL: String
    public var apiKey: String?
    public var organization: String?
    public var project: String?
    /// How failed calls are retried.
    public var retry: RetryPolicy
    /// The deadline of one HTTP attempt (queueing, connecting, sending, waiting, receiving).
    public var requestTimeout: Duration
    /// Whether calls stream (`stream: true`, server-sent events); `bridge exec --no-stream`
    /// turns it off for servers that cannot stream.
    public var stream = true
    /// The stall window of a streamed call: the longest time without progress between events
    /// (nil: the HTTP client's window). Without streaming the client's window applies.
    public var streamStallTimeout: Duration?

    public init(
        baseURL: String = OpenAISettings.defaultBaseURL, apiKey: String? = nil, organization: String? = nil,
        project: String? = nil, retry: RetryPolicy = RetryPolicy(), requestTimeout: Duration = .seconds(600)
    ) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.apiKey = apiKey
        self.organization = organization
        self.project = project
        self.retry = retry
        self.requestTimeout = requestTimeout
    }

    /// Reads `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `OPENAI_ORG_ID` and `OPENAI_PROJECT_ID`
    /// (empty values count as unset).
    public init(environment: Environment, retry: RetryPolicy = RetryPolicy()) {
        self.init(
            baseURL: environment["OPENAI_BASE_URL"] ?? Self.defaultBaseURL, apiKey: environment["OPENAI_API_KEY"],
            organization: environment["OPENAI_ORG_ID"], project: environment["OPENAI_PROJECT_ID"], retry: retry)
    }

    /// True when `baseURL` is OpenAI's own API (where a key is mandatory).
    public var isOfficialOpenAI: Bool {
        URLComponents(string: baseURL)?.host?.lowercased() == "api.openai.com"
    }

    /// The request headers: `Authorization: Bearer <key>`, `OpenAI-Organization`,
    /// `OpenAI-Project` (each only when set), `Content-Type` and `Accept` JSON.
    public var headers: HTTPHeaders {
        var h = HTTPHeaders()
        if let apiKey { h.add("Authorization", "Bearer \(apiKey)") }
        if let organization { h.add("OpenAI-Organization", organization) }
        if let project { h.add("OpenAI-Project", project) }
        h.add("Content-Type", "application/json")
        h.add("Accept", "application/json")
        return h
    }

    /// Replaces the API key (wherever it appears) with `***`.
    public func scrub(_ text: String) -> String {
        guard let apiKey else { return text }
        return Redaction.scrub(text, secrets: [apiKey])
    }
}

extension ModelAPI {
    /// The API for `agent`: its `model_api` when set, else `defaultAPI`.
    public static func forAgent(_ agent: AgentSpec, default defaultAPI: ModelAPI) -> ModelAPI {
        agent.modelAPI ?? defaultAPI
    }
}

/// A model configuration that cannot work: hosted tools on Chat Completions, an unknown
/// `model_api`, no key for api.openai.com. Exit status 2.
public struct ModelConfigurationError: InputError, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// Static checks the CLI runs before any task is claimed.
public enum ModelRouting {
    /// Throws when an agent of `spec` that resolves to Chat Completions has hosted tools, or
    /// names an unknown `model_api`. All problems are reported in one error, one per line.
    public static func validate(_ spec: RunSpec, defaultAPI: ModelAPI) throws(ModelConfigurationError) {
        let agents = spec.agents.values.sorted { $0.name < $1.name }.map { agent in
            (
                agent.name, agent.modelAPI,
                agent.tools.compactMap { name -> (String, String)? in
                    if case .hosted(let h)? = spec.tools[name]?.implementation { return (name, h.type) }
                    return nil
                }, ""
            )
        }
        try check(agents, defaultAPI: defaultAPI)
    }

    /// The same check over loaded mappings (locations quoted as `file:line`).
    public static func validate(_ mappings: MappingConfig, defaultAPI: ModelAPI) throws(ModelConfigurationError) {
        let tools = Dictionary(mappings.tools.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let agents = mappings.agents.map { agent in
            (
                agent.name, agent.modelAPI,
                agent.tools.compactMap { name -> (String, String)? in
                    if case .hosted(let h)? = tools[name]?.implementation { return (name, h.type) }
                    return nil
                },
                agent.origin.file == MappingLocation.unknown.file ? "" : "\(agent.origin.file):\(agent.origin.line): "
            )
        }
        try check(agents, defaultAPI: defaultAPI)
    }

    private static func check(
        _ agents: [(name: String, api: ModelAPI?, hosted: [(String, String)], location: String)],
        defaultAPI: ModelAPI
    ) throws(ModelConfigurationError) {
        var problems: [String] = []
        for a in agents {
            let api = a.api ?? defaultAPI
            guard api == .chatCompletions, !a.hosted.isEmpty else { continue }
            let list = a.hosted.map { "'\($0.0)' (\($0.1))" }.joined(separator: ", ")
            let why = a.api == nil ? "the worker's default model API" : "its model_api: chat_completions"
            problems.append(
                "\(a.location)agent '\(a.name)': hosted tool \(list) needs the Responses API, but this agent uses Chat Completions (\(why))"
            )
        }
        if !problems.isEmpty { throw ModelConfigurationError(problems.joined(separator: "\n")) }
    }
}

/// Builds the model provider for `bridge exec`.
public enum ModelProviders {
    /// A router that sends each agent to the Responses API or Chat Completions (its
    /// `model_api`, else `defaultAPI`), both sharing `client` and the settings read from
    /// `environment`. Throws `ModelConfigurationError` when `missingKeyExplanation` has one.
    public static func make(
        environment: Environment, defaultAPI: ModelAPI = .responses, client: HTTPClient,
        retry: RetryPolicy = RetryPolicy(),
        requestTimeout: Duration = .seconds(600), stream: Bool = true, streamStallTimeout: Duration? = nil
    ) throws(ModelConfigurationError) -> any ModelProvider {
        var settings = OpenAISettings(environment: environment, retry: retry)
        settings.requestTimeout = requestTimeout
        settings.stream = stream
        settings.streamStallTimeout = streamStallTimeout
        if let why = missingKeyExplanation(settings) { throw ModelConfigurationError(why) }
        return make(settings: settings, defaultAPI: defaultAPI, client: client)
    }

    /// The router for explicit settings (no key check).
    public static func make(settings: OpenAISettings, defaultAPI: ModelAPI = .responses, client: HTTPClient)
        -> ModelRouter
    {
        ModelRouter(
            responses: ResponsesModel(settings: settings, client: client),
            chatCompletions: ChatCompletionsModel(settings: settings, client: client),
            defaultAPI: defaultAPI)
    }

    /// Why the settings cannot call a model, for the CLI to print, or nil when they can.
    /// A key is required only for `api.openai.com`; local OpenAI-compatible servers (vLLM,
    /// Ollama, LiteLLM) set `OPENAI_BASE_URL` and may run without one.
    public static func missingKeyExplanation(_ settings: OpenAISettings) -> String? {
        guard settings.apiKey == nil, settings.isOfficialOpenAI else { return nil }
        return """
            OPENAI_API_KEY is not set: the OpenAI API at \(settings.baseURL) needs a key. \
            Set OPENAI_API_KEY, point OPENAI_BASE_URL at an OpenAI-compatible server, or pass --offline \
            for the built-in offline model.
            """
    }

    /// `missingKeyExplanation` for settings read from `environment`.
    public static func missingKeyExplanation(environment: Environment) -> String? {
        missingKeyExplanation(OpenAISettings(environment: environment))
    }
}
