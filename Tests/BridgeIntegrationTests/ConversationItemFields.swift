import BridgeCore
import BridgeTraceModel

extension ConversationItem {
    /// A field of the item's JSON form (assertions read items as the APIs shape them).
    subscript(_ key: String) -> JSONValue? { json[key] }
}
