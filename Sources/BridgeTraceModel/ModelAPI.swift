import BridgeCore

/// Which OpenAI API an agent's model calls go to, and so which span its model calls make
/// (`response` or `generation`). Here, below the mapping layer, so mappings and run specs hold
/// the enum rather than its spelling.
@SnakeCaseRawValues
public enum ModelAPI: Sendable, CaseIterable, Codable {
    /// The Responses API (`POST /responses`), the default; `response` spans.
    case responses
    /// Chat Completions (`POST /chat/completions`) for OpenAI-compatible servers; `generation` spans.
    case chatCompletions

    /// Parses `responses`, `chat_completions` or `chat-completions` (the flag's spelling).
    public init?(name: String) {
        switch name.lowercased() {
        case "responses": self = .responses
        case "chat_completions", "chat-completions": self = .chatCompletions
        default: return nil
        }
    }
}
