import BridgeCore
import BridgeTraceModel
import FoundationEssentials

/// Where a run stands: its conversation and counters, the agent it is at, and the ids of its
/// task and agent spans, which stay open. A paused run (`PausedRun`) and a journaled checkpoint
/// (`RunCheckpoint`) each hold one; a run that goes on from either takes it back
/// (`RunState.restore`).
///
/// Stored flat: its holders code it through their own encoder and decoder, so its keys sit
/// beside theirs in one JSON object, as they did before it was a type of its own
/// (`StoredFormatTests` pins the bytes).
@MemberwiseInit
@SnakeCaseCodingKeys
public struct RunPosition: Codable, Sendable {
    public var history: [ConversationItem]
    public var transcript: [ConversationItem]
    public var usage: Usage
    public var turn: Int
    public var toolCalls: Int
    public var agent: String
    public var taskEventId: EventID
    public var agentEventId: EventID
    /// The event-id counter: a run that goes on allocates the same ids for the same steps, so
    /// the spans it writes again have the same ids (and are not stored twice).
    public var nextEventId: EventID
}

extension RunPosition {
    /// Its keys and values in a checkpoint's `journalJSON`: its `Codable` form, built without
    /// `JSONEncoder` (the hot path), with room for the holder's `room` keys (a dictionary
    /// literal has room for its own entries only, and grows at the next).
    func journalFields(room: Int) -> [String: JSONValue] {
        typealias K = CodingKeys
        let fields: KeyValuePairs<String, JSONValue> = [
            K.history.stringValue: .array(history.map(\.json)),
            K.transcript.stringValue: .array(transcript.map(\.json)),
            K.usage.stringValue: usage.codableJSON, K.turn.stringValue: .number(JSONNumber(turn)),
            K.toolCalls.stringValue: .number(JSONNumber(toolCalls)), K.agent.stringValue: .string(agent),
            K.taskEventId.stringValue: .number(JSONNumber(taskEventId)),
            K.agentEventId.stringValue: .number(JSONNumber(agentEventId)),
            K.nextEventId.stringValue: .number(JSONNumber(nextEventId)),
        ]
        var o = [String: JSONValue](minimumCapacity: fields.count + room)
        for (k, v) in fields { o[k] = v }
        return o
    }
}

extension Usage {
    /// Its synthesized `Codable` form (the property names as keys), built without `JSONEncoder`.
    var codableJSON: JSONValue {
        [
            "requests": .number(JSONNumber(requests)), "inputTokens": .number(JSONNumber(inputTokens)),
            "outputTokens": .number(JSONNumber(outputTokens)), "cachedTokens": .number(JSONNumber(cachedTokens)),
            "reasoningTokens": .number(JSONNumber(reasoningTokens)),
        ]
    }
}

extension RunState {
    /// Where the run stands now, at `agent`, whose span is `agentId`.
    func position(agent: String, agentId: EventID) -> RunPosition {
        RunPosition(
            history: history, transcript: transcript, usage: usage, turn: turn, toolCalls: toolCalls, agent: agent,
            taskEventId: taskEventId, agentEventId: agentId, nextEventId: ids.current)
    }

    /// Takes back where a stopped run stood (before the run allocates any id): its conversation,
    /// counters, task span and event ids. The agent and its span are the caller's to take up
    /// (`position.agent`, `position.agentEventId`), as it goes on in that agent.
    mutating func restore(_ position: RunPosition) {
        history = position.history
        transcript = position.transcript
        usage = position.usage
        turn = position.turn
        toolCalls = position.toolCalls
        taskEventId = position.taskEventId
        // An id drawn before this would differ from the one the stopped run gave the same step,
        // so a replayed step's span would be stored and exported again under a new id.
        assert(ids.current == 0, "restore(_:) runs before the run allocates any event id")
        ids.advance(to: position.nextEventId)
    }
}
