import BridgeCore
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// A call of a `needs_approval` tool waiting for a human decision (or, in
/// `PausedRun.deferredHandoffs`, a handoff requested in the same response, taken on resume).
@SnakeCaseCodingKeys
public struct PendingApproval: Codable, Sendable, Equatable {
    public var callId: CallID
    public var name: String
    public var arguments: String
    /// The agent that made the call (for a deferred handoff: its target).
    public var agent: String
}

/// A run stopped at calls that need approval: where it stands (its transcript so far, counters,
/// and the ids of the task and agent spans that stay open until it resumes), and its pending
/// calls (the SDK's `RunState`).
@MemberwiseInit
@SnakeCaseCodingKeys
public struct PausedRun: Codable, Sendable {
    /// Where the run stands, at the agent that made the calls (its keys sit beside these).
    @CodedFlat public var position: RunPosition
    public var pending: [PendingApproval]
    public var deferredHandoffs: [PendingApproval]
    public var pausedAt: Date
}

/// A human's decision on one pending call.
@MemberwiseInit
public struct ApprovalDecision: Sendable, Equatable {
    public enum Outcome: String, Sendable { case approved, rejected, expired }
    public var callId: CallID
    public var outcome: Outcome
    /// The reviewer's text for a rejection (the model receives it instead of the SDK's default).
    public var message: String? = nil
    public var decidedBy: String? = nil
    /// The approval request's key in the user's table.
    public var requestId: String
    public var toolName: String
}

extension RunnerMessages {
    /// What the model receives for a rejected call (the SDK's `DEFAULT_APPROVAL_REJECTION_MESSAGE`).
    public static let approvalRejected = "Tool execution was not approved."

    /// The rejected function span's error detail, in the SDK's wording.
    public static func manuallyRejected(_ callId: CallID) -> String {
        "Tool execution for \(callId) was manually rejected by user."
    }
}

extension AgentRunner {
    /// Resumes a paused run with the decisions on its pending calls, in the same trace: the task
    /// and agent spans of the first stint stay the parents (the observer must have them reopened,
    /// see `TraceRecorder.restore`), an `approval` span per call shows the wait, and a turn span
    /// holds the approved calls' function spans and the rejected calls' rejections.
    public func resume(
        _ spec: RunSpec, paused: PausedRun, decisions: [ApprovalDecision],
        taskRow: [String: JSONValue]
    ) async -> RunResult {
        var run = RunState(spec: spec, taskRow: taskRow, runner: self)
        return await run.resume(paused, decisions: decisions)
    }
}

extension RunState {
    /// Whether `call` must wait: its tool's rule, evaluated READ ONLY for SQL predicates (their
    /// first row's `needs_approval`, else its first value; an error, no row or anything but a
    /// boolean counts as "needs approval", the safe side).
    func needsApproval(_ call: PendingToolCall, agent: AgentSpec) async -> Bool {
        // MCP tools never wait for approval.
        guard let callTool = call.tool else { return false }
        switch callTool.needsApproval {
        case .never: return false
        case .always: return true
        case .sql(let predicate):
            var readOnly = predicate
            readOnly.writes = false
            let tool = ToolSpec(
                name: call.name, description: "needs_approval", parameters: [:], implementation: .sql(readOnly))
            let arguments = (try? JSONValue.parse(call.arguments)) ?? [:]
            guard
                let text = try? await runner.tools.execute(
                    tool, arguments: arguments,
                    context: ToolContext(
                        spec: spec, taskRow: taskRow,
                        agentName: agent.name)),
                let row = (try? JSONValue.parse(text))?.arrayValue?.first?.objectValue
            else { return true }
            let value = row["needs_approval"] ?? row.sorted(by: { $0.key < $1.key }).first?.value
            // Only a boolean false lets the call run: 'no', 0 or NULL are not an answer.
            return value?.boolValue ?? true
        }
    }

    mutating func resume(_ paused: PausedRun, decisions: [ApprovalDecision]) async -> RunResult {
        restore(paused.position)
        let taskId = paused.position.taskEventId
        let agentId = paused.position.agentEventId
        guard let agent = spec.agents[paused.position.agent] else {
            let failure = RunFailure(
                type: .userError, message: "Agent \(paused.position.agent) not found in the run spec",
                retriable: false)
            return await finish(.failed(failure), agentName: paused.position.agent, taskId: taskId)
        }
        let byCall = Dictionary(decisions.map { ($0.callId, $0) }, uniquingKeysWith: { a, _ in a })
        await recordWaits(paused, byCall, agentId: agentId)
        let span = TurnSpan(id: allocate(), usage: Usage())
        await emit(.turnStarted(id: span.id, parent: agentId, turn: turn, agent: agent.name, at: Date()))
        let step = await endTurn(span, decidedTurn(paused, byCall, agent, turnId: span.id))
        switch step {
        case .failed(let failure, let agentError):
            await emit(.agentEnded(id: agentId, error: agentError, at: Date()))
            return await finish(.failed(failure), agentName: agent.name, taskId: taskId)
        case .handoff(let to):
            await emit(.agentEnded(id: agentId, error: nil, at: Date()))
            let (outcome, last) = await runAgents(from: to, parent: taskId)
            return await finish(outcome, agentName: last, taskId: taskId)
        case .final(let text):
            await emit(.agentEnded(id: agentId, error: nil, at: Date()))
            return await finish(.final(text), agentName: agent.name, taskId: taskId)
        case .again, .paused, .interrupted:
            // (`decidedTurn` neither pauses nor is interrupted.) The agent's stint goes on.
            let (outcome, last) = await runAgents(from: agent.name, parent: taskId, openAgentId: agentId)
            return await finish(outcome, agentName: last, taskId: taskId)
        }
    }

    /// An `approval` span per decided call, showing the wait, and a transcript item for
    /// `bridge verify` (this run resumed after a decision on this call).
    private mutating func recordWaits(_ paused: PausedRun, _ byCall: [CallID: ApprovalDecision], agentId: EventID)
        async
    {
        let now = Date()
        for call in paused.pending {
            guard let d = byCall[call.callId] else { continue }
            await emit(
                .approvalWait(id: allocate(), parent: agentId, decision: d, startedAt: paused.pausedAt, endedAt: now))
            transcript.append(
                .approvalResult(
                    .init(callId: call.callId, name: call.name, decision: d.outcome.rawValue, requestId: d.requestId)))
        }
    }

    /// The resumed turn (span `turnId`, ended by the caller): approved calls run, rejected ones
    /// get the rejection; then a handoff requested beside the calls is taken, or the agent's
    /// `tool_use_behavior` decides whether a tool's output is final.
    private mutating func decidedTurn(
        _ paused: PausedRun, _ byCall: [CallID: ApprovalDecision], _ agent: AgentSpec, turnId: EventID
    ) async -> TurnStep {
        let (approved, rejected) = await rejectOrApprove(paused.pending, byCall, turnId: turnId)
        var outputs = rejected
        let outcomes = await runTools(approved, parent: turnId, agent: agent)
        toolCalls += outcomes.count
        for o in outcomes {
            outputs[o.call.callId] = o.output
            usage = usage + o.usage
            transcript += o.items
        }
        // An approved call's tool guardrail raised (or could not decide): the run fails.
        if let failure = outcomes.lazy.compactMap(\.failure).first {
            return .failed(
                failure,
                SpanErrorInfo(message: RunnerMessages.spanAgentError, data: ["error": .string(failure.message)]))
        }
        for call in paused.pending {
            appendCallOutput(call.callId, .string(outputs[call.callId] ?? RunnerMessages.approvalRejected))
        }
        if !paused.deferredHandoffs.isEmpty {
            return await takeDeferredHandoff(paused.deferredHandoffs, from: agent, turnId: turnId)
        }
        let stopWith: ToolCallOutcome? =
            switch agent.toolUseBehavior {
            case .runLLMAgain: nil
            case .stopOnFirstTool: outcomes.first
            case .stopAtToolNames(let names): outcomes.first { names.contains($0.call.name) }
            }
        if let stop = stopWith { return .final(stop.output) }
        return .again
    }

    /// The pending calls in order: approved ones to run (with their span ids), rejected ones
    /// ended at once with the reviewer's message (their function spans say they were rejected).
    /// Returns the calls to run and the rejected calls' outputs by call id.
    private func rejectOrApprove(
        _ pending: [PendingApproval], _ byCall: [CallID: ApprovalDecision], turnId: EventID
    ) async -> (approved: [PendingToolCall], outputs: [CallID: String]) {
        var approved: [PendingToolCall] = []
        var outputs: [CallID: String] = [:]
        for call in pending {
            let d = byCall[call.callId]
            if d?.outcome == .approved, let tool = spec.tools[call.name] {
                approved.append(
                    withIds(
                        PendingToolCall(
                            index: approved.count, callId: call.callId, name: call.name,
                            arguments: call.arguments, tool: tool, eventId: 0)))
                continue
            }
            let message = d?.message.flatMap { $0.isEmpty ? nil : $0 } ?? RunnerMessages.approvalRejected
            let id = allocate()
            let at = Date()
            await emit(.toolStarted(id: id, parent: turnId, name: call.name, arguments: call.arguments, at: at))
            await emit(.spanNote(id: id, key: RunnerMessages.callIdKey, value: call.callId.json))
            await emit(
                .toolEnded(
                    id: id, output: message,
                    error: SpanErrorInfo(
                        message: message,
                        data: [
                            "tool_name": .string(call.name),
                            "error": .string(RunnerMessages.manuallyRejected(call.callId)),
                        ]), at: Date()))
            outputs[call.callId] = message
        }
        return (approved, outputs)
    }

    /// A handoff requested beside the approved calls is taken now (the first wins, as always).
    private mutating func takeDeferredHandoff(
        _ handoffs: [PendingApproval], from agent: AgentSpec, turnId: EventID
    ) async -> TurnStep {
        let first = handoffs[0]
        appendHandoffOutputs(taken: first.callId, to: first.agent, ignored: handoffs.dropFirst().map(\.callId))
        let start = Date()
        await emit(
            .handoff(
                id: allocate(), parent: turnId, from: agent.name, to: first.agent, startedAt: start, endedAt: Date()))
        return .handoff(first.agent)
    }
}
