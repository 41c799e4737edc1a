import BridgeCore
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// One `ModelProvider` for the runner that sends each agent's calls to the Responses API or
/// Chat Completions: the agent's `model_api` when set, else `defaultAPI`
/// (`bridge exec --model-api responses|chat-completions`). Span kinds and span inputs follow
/// the chosen provider, so a run that hands off from a Responses agent to a Chat Completions
/// agent records `response` spans and then `generation` spans.
public struct ModelRouter: ModelProvider {
    public let responses: any ModelProvider
    public let chatCompletions: any ModelProvider
    public let defaultAPI: ModelAPI

    public init(responses: any ModelProvider, chatCompletions: any ModelProvider, defaultAPI: ModelAPI = .responses) {
        self.responses = responses
        self.chatCompletions = chatCompletions
        self.defaultAPI = defaultAPI
    }

    /// The provider that serves `agent`.
    public func provider(for agent: AgentSpec) -> any ModelProvider {
        switch ModelAPI.forAgent(agent, default: defaultAPI) {
        case .responses: return responses
        case .chatCompletions: return chatCompletions
        }
    }

    /// The default API's span kind (the runner asks per agent: `spanKind(for:)`).
    public var spanKind: ModelSpanKind {
        defaultAPI == .responses ? responses.spanKind : chatCompletions.spanKind
    }

    public func spanKind(for agent: AgentSpec) -> ModelSpanKind { provider(for: agent).spanKind(for: agent) }

    public func spanInput(for request: ModelRequest) -> [JSONValue] {
        provider(for: request.agent).spanInput(for: request)
    }

    public func respond(_ request: ModelRequest) async throws -> ModelResponse {
        try await provider(for: request.agent).respond(request)
    }
}
