import BridgeCore
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// Tool guardrails with the SDK's semantics (`tool_input_guardrails`, `tool_output_guardrails`):
///
/// - They run one after another, in the order written; the first that trips decides: with
///   `reject_content` the model receives a message (instead of running the tool, for input
///   guardrails; instead of the output, for output guardrails) and the run goes on; with
///   `raise_exception` the run fails with `ToolInputGuardrailTripwireTriggered` /
///   `ToolOutputGuardrailTripwireTriggered`. A guardrail that does not trip allows the call.
/// - A guardrail that cannot decide (its SQL errors or answers no boolean, its agent fails)
///   fails the run, as an exception in a guardrail function does in the SDK: the call never
///   goes through unchecked.
/// - Each is a `guardrail` span under the call's function span (where anything the SDK's
///   guardrail function traces nests); its span id was allocated with the call's.
extension GuardrailRun {
    /// What a call's input or output guardrails decided.
    struct ToolVerdict: Sendable {
        /// What the model receives instead (a guardrail rejected the content).
        var rejection: String?
        /// The run fails (a guardrail raised, or could not decide).
        var failure: RunFailure?
        /// The function span's error when the run fails.
        var spanError: SpanErrorInfo?
        var usage = Usage()
        /// One `guardrail_result` transcript item per guardrail that ran.
        var items: [ConversationItem] = []
    }

    /// Runs `guards` on `call` (output guardrails: on `output`), each in its span `ids[k]`.
    static func tool(
        _ guards: [ToolGuardrailSpec], output: String?, call: PendingToolCall, ids: [EventID], state: RunState
    ) async -> ToolVerdict {
        let isOutput = output != nil
        var binds: [String: JSONValue] = [
            "tool_name": .string(call.name), "arguments": .string(call.arguments), "input": .string(state.spec.input),
        ]
        // A guardrail agent reads the call as one JSON object.
        var subject: [String: JSONValue] = [
            "tool_name": .string(call.name),
            "arguments": (try? JSONValue.parse(call.arguments)) ?? .string(call.arguments),
        ]
        if let output {
            binds["output"] = .string(output)
            subject["output"] = .string(output)
        }
        let checked = Subject(binds: .object(binds), agentInput: JSONValue.object(subject).compact)
        var verdict = ToolVerdict()
        for (k, g) in guards.enumerated() {
            let id = k < ids.count ? ids[k] : state.allocate()
            // A guardrail agent's spans get ids of their own range, derived from the guardrail's
            // span id: concurrent calls (and a resumed run) never hand out the same id twice.
            let (base, overflow) = id.multipliedReportingOverflow(by: 1 << 20)
            let o = await one(
                g.check, input: state.spec.input, output: output, parent: call.eventId, state: state, id: id,
                subject: checked, nestedIds: overflow ? nil : EventCounter(start: base))
            verdict.usage = verdict.usage + o.usage
            var item = ConversationItem.GuardrailResult(
                name: o.name, kind: isOutput ? .toolOutput : .toolInput, triggered: o.triggered,
                callId: call.callId, toolName: call.name)
            if let failure = o.failure {
                item.behavior = .error
                verdict.items.append(.guardrailResult(item))
                verdict.failure = RunFailure(
                    type: .guardrailError, message: failure.message, retriable: failure.retriable,
                    retryAfter: failure.retryAfter)
                verdict.spanError = SpanErrorInfo(
                    message: RunnerMessages.spanToolError,
                    data: ["tool_name": .string(call.name), "error": .string(failure.message)])
                return verdict
            }
            guard o.triggered else {
                item.behavior = .allow
                verdict.items.append(.guardrailResult(item))
                continue
            }
            switch g.onTrip {
            case .raiseException:
                item.behavior = .raiseException
                verdict.items.append(.guardrailResult(item))
                let message = RunnerMessages.toolTripwire(g.name, output: isOutput, outputInfo: o.outputInfo)
                verdict.failure = RunFailure(
                    type: isOutput ? .toolOutputGuardrailTripwireTriggered : .toolInputGuardrailTripwireTriggered,
                    message: message, retriable: false, outputInfo: o.outputInfo)
                verdict.spanError = SpanErrorInfo(
                    message: RunnerMessages.spanToolError,
                    data: ["tool_name": .string(call.name), "error": .string(message)])
            case .rejectContent(let template):
                item.behavior = .rejectContent
                verdict.items.append(.guardrailResult(item))
                let own = o.message.flatMap { $0.isEmpty ? nil : $0 }
                verdict.rejection = own ?? Template(template).render(task: state.taskRow)
            }
            return verdict
        }
        return verdict
    }
}
