import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// Where a durable run journals its finished steps (the worker's `bridge.run_journals` and
/// `bridge.journal_calls`), and where a resumed run finds the ones already done.
///
/// Every write is fenced on the task's lease: a write after the lease is gone throws, and the
/// run stops. A step's spans go in the same statement as its journal row (the journal knows the
/// trace recorder), so a span is durable exactly when the step that ended it is.
public protocol RunJournal: Sendable {
    /// A model response arrived: the run can resume right after it. Throws when the lease is lost.
    func checkpoint(_ checkpoint: RunCheckpoint) async throws
    /// A tool call finished. Throws when the lease is lost.
    func callFinished(_ call: JournaledCall) async throws
    /// A step whose record may wait for the run's next journal write (`deferred`: redoing it
    /// costs nothing and changes nothing, e.g. a SQL guardrail), or must be written now.
    func stepFinished(_ record: JournaledCall, deferred: Bool) async throws
    /// The result of a call finished before an interruption (replayed, not called again).
    func finishedCall(_ callId: CallID) -> JournaledCall?
    /// For a writing SQL tool: what its transaction must also run (fencing check, journal row).
    func exactlyOnce(callId: CallID, toolName: String) -> ExactlyOnceWrite?
    /// Whether the run should stop at its next step boundary (the worker is shutting down).
    var stopRequested: Bool { get }
}

extension RunJournal {
    public func stepFinished(_ record: JournaledCall, deferred: Bool) async throws { try await callFinished(record) }
}

/// What a writing SQL tool's transaction runs besides its statement, so that the statement, its
/// journal row and the lease check commit together or not at all.
@MemberwiseInit
public struct ExactlyOnceWrite: Sendable {
    /// Must return exactly one row while the lease holds (it share-locks the task row).
    public var fence: PostgresQuery
    /// The journal row of the call, given the tool's output.
    public var record: @Sendable (String) -> PostgresQuery
}

/// The lease behind a journal write is gone (a newer worker owns the run).
public struct JournalFenced: Error, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One finished tool call as journaled: what the model received and what its span recorded.
@MemberwiseInit
@SnakeCaseCodingKeys
public struct JournaledCall: Codable, Sendable, Equatable {
    public var callId: CallID
    public var name: String
    /// The tool's output as the executor returned it (before the runner's text safety), or the
    /// model's text for MCP and failed calls.
    public var output: String
    /// An error to put on the function span (nil: the call succeeded).
    public var error: JSONValue? = nil
    /// MCP: what the model received (content parts) and what the span recorded.
    public var modelOutput: JSONValue? = nil
    public var spanOutput: String? = nil
    public var mcpServer: String? = nil
    /// Whether `output` is the executor's raw output (replayed through the same path as a live call).
    public var raw: Bool
    /// The call's tool guardrails' `guardrail_result` transcript items (nil: none ran). When one
    /// rejected the call, `output` is the rejection, replayed without running the tool.
    public var guardrails: [ConversationItem]? = nil
    /// Set on the record of an agent's guardrails step (its call id is
    /// `JournaledGuardrails.callId`): their verdict, replayed by a resumed run instead of running
    /// them again. A bridge that predates it ignores the key (the call id matches no tool call),
    /// so the format stays 1.
    public var verdict: JournaledGuardrails? = nil
}

/// The verdict of a set of guardrails (an agent's output guardrails, or the sequential input
/// guardrails of its first turn) as journaled: what the run took from them.
@SnakeCaseCodingKeys
public struct JournaledGuardrails: Codable, Sendable, Equatable {
    /// The journal record's call id: the guardrails' kind and the event id of their parent span
    /// (the turn for input guardrails, the agent for output guardrails), unique in the trace.
    public static func callId(kind: String, parent: EventID) -> CallID { CallID("guardrails:\(kind):\(parent)") }
    public static let recordName = "guardrails"

    public var usage: Usage
    /// One `guardrail_result` transcript item per guardrail that ran.
    public var items: [ConversationItem]
    /// The failure (a tripwire, or a guardrail that failed for good), nil when they passed.
    public var failureType: String?
    public var failureMessage: String?
    public var outputInfo: JSONValue?
    /// The error the parent span gets.
    public var spanError: JSONValue?
    /// The event counter after the guardrails (their spans took ids; the run goes on after them).
    public var nextEventId: EventID

    public init(
        usage: Usage, items: [ConversationItem], failure: RunFailure?, spanError: SpanErrorInfo?,
        nextEventId: EventID
    ) {
        self.usage = usage
        self.items = items
        self.failureType = failure?.type.rawValue
        self.failureMessage = failure?.message
        self.outputInfo = failure?.outputInfo
        self.spanError = spanError?.json
        self.nextEventId = nextEventId
    }

    /// The failure again (never retriable: a retriable one is not journaled).
    public var failure: RunFailure? {
        guard let failureType else { return nil }
        return RunFailure(
            type: FailureType(rawValue: failureType) ?? .runError, message: failureMessage ?? "",
            retriable: false, outputInfo: outputInfo)
    }

    public var spanErrorInfo: SpanErrorInfo? { SpanErrorInfo(json: spanError) }
}

/// A run's state right after a journaled model response: enough to go on from there on another
/// worker (the response's tool calls, handoffs and final answer are derived from it again).
@MemberwiseInit
@SnakeCaseCodingKeys
public struct RunCheckpoint: Codable, Sendable {
    /// The journal format this bridge writes and reads.
    public static let format = 1

    /// Where the run stands, at the checkpoint's agent (its keys sit beside these).
    @CodedFlat public var position: RunPosition
    public var turnEventId: EventID
    public var turnUsage: Usage
    /// The model response of the turn (its output items).
    public var response: [ConversationItem]
    /// The spans open at the checkpoint (task, agent, turn), filled in by the journal.
    public var openSpans: JSONValue
    public var at: Date
}

extension RunCheckpoint {
    /// The checkpoint as the JSON its `Codable` form decodes from (the keys of its and its
    /// position's `CodingKeys`, `at` as seconds since 2001 like `JSONEncoder`'s default), built
    /// without `JSONEncoder`: a checkpoint is written after every model response and carries
    /// the whole conversation, so this is on the hot path.
    public var journalJSON: JSONValue {
        typealias K = CodingKeys
        var fields = position.journalFields(room: CodingKeys.allCases.count)
        fields[K.turnEventId.stringValue] = .number(JSONNumber(turnEventId))
        fields[K.turnUsage.stringValue] = turnUsage.codableJSON
        fields[K.response.stringValue] = .array(response.map(\.json))
        fields[K.openSpans.stringValue] = openSpans
        fields[K.at.stringValue] = .number(at.timeIntervalSinceReferenceDate)
        return .object(fields)
    }
}

/// Where a resumed run comes from (the `resume` span's data).
@MemberwiseInit
public struct ResumeInfo: Sendable {
    /// The worker that ran the interrupted stint (nil: unknown).
    public var previousWorker: String?
    public var worker: String
    /// The last journal write before the interruption.
    public var lastStepAt: Date
    /// The attempt (claim) number that resumes; it makes the resume span's id unique.
    public var attempt: Int
    /// Why the previous stint ended, when known (its execution row's error).
    public var reason: String? = nil
}

/// The stable idempotency key of one tool call: the same for every attempt of the call (derived
/// from the trace id and the call id), so a receiver can drop a repeat.
public enum IdempotencyKey {
    /// The HTTP header and the command tools' environment variable.
    public static let header = "Idempotency-Key"
    public static let environmentVariable = "BRIDGE_IDEMPOTENCY_KEY"
    /// The key in an MCP call's `_meta`.
    public static let metaKey = "idempotency_key"

    public static func make(traceId: TraceID, callId: CallID) -> String {
        "bridge-" + SHA256.hex("bridge-call:\(traceId):\(callId)").prefix(32)
    }
}
