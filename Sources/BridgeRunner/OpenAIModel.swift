import BridgeCore
import BridgeTraceModel

/// A model provider on one OpenAI-style endpoint (`ResponsesModel`, `ChatCompletionsModel`):
/// it builds the API's body, and the rest of a call is the same for both: the transport posts
/// it (streamed or not), the API's `parseResponse` reads the answer.
protocol OpenAIModel: ModelProvider {
    var transport: OpenAITransport { get }
    /// Turns the API's answer into a `ModelResponse`; `scrub` removes secrets from error text.
    static func parseResponse(
        _ json: JSONValue, requestedModel: String, scrub: (String) -> String
    ) throws(ModelProviderError) -> ModelResponse
}

extension OpenAIModel {
    var settings: OpenAISettings { transport.settings }

    /// POSTs `body` for `request` to `path` (see `OpenAITransport.post(_:body:streamedBy:streamFields:)`)
    /// and returns the parsed answer with its time to first token.
    func call(
        _ path: String, _ request: ModelRequest, body: JSONValue,
        streamedBy assembler: @escaping @Sendable () -> any ModelStreamAssembler,
        streamFields: [String: JSONValue] = [:]
    ) async throws(ModelProviderError) -> ModelResponse {
        let (json, ttft) = try await transport.post(path, body: body, streamedBy: assembler, streamFields: streamFields)
        var response = try Self.parseResponse(json, requestedModel: request.agent.model, scrub: settings.scrub)
        response.timeToFirstToken = ttft
        return response
    }
}
