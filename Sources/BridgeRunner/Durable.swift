import BridgeCore
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// What changed in the mappings between an interruption and the resume, when it matters to the
/// journaled run: an agent or a tool it used is gone, or the agent's tools differ. Nil: nothing
/// that the resumed run depends on changed.
public enum ResumeCheck {
    public static func changes(stored: RunSpec, current: RunSpec, agent: String) -> String? {
        var problems: [String] = []
        let gone = Set(stored.agents.keys).subtracting(current.agents.keys).sorted()
        if !gone.isEmpty { problems.append("agent(s) \(gone.joined(separator: ", ")) no longer in the mappings") }
        if let was = stored.agents[agent], let now = current.agents[agent] {
            if was.tools != now.tools {
                problems.append(
                    "agent \(agent)'s tools changed from [\(was.tools.joined(separator: ", "))] to [\(now.tools.joined(separator: ", "))]"
                )
            }
            if was.handoffs.map(\.agent) != now.handoffs.map(\.agent) {
                problems.append("agent \(agent)'s handoffs changed")
            }
        }
        let usedTools = Set(stored.agents.values.flatMap(\.tools))
        let missing = usedTools.filter { current.tools[$0] == nil }.sorted()
        if !missing.isEmpty { problems.append("tool(s) \(missing.joined(separator: ", ")) no longer in the mappings") }
        if stored.startingAgent != current.startingAgent {
            problems.append("the starting agent changed from \(stored.startingAgent) to \(current.startingAgent)")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
}

extension RunState {
    /// Runs `guards` of `kind` under span `parent`, or replays their journaled verdict. A
    /// durable run journals the verdict with the guardrails' spans: at once when one of them is
    /// an agent (its model calls must not be paid twice), else with the run's next step (a SQL
    /// guardrail is read-only; running it again changes nothing). A retriable failure is not
    /// journaled: the run's retry runs them again. The second value: the journal refused the
    /// write (the lease is gone), the run must stop.
    func guardrails(
        _ guards: [GuardrailSpec], input: String, output: String?, parent: EventID, kind: GuardrailRun.Kind
    ) async -> (GuardrailRun.Verdict, fenced: RunFailure?) {
        let key = JournaledGuardrails.callId(kind: kind == .input ? "input" : "output", parent: parent)
        if let stored = journal?.finishedCall(key)?.verdict {
            // Their spans were written with the record: only the counter moves past their ids.
            ids.advance(to: stored.nextEventId)
            var verdict = GuardrailRun.Verdict()
            verdict.usage = stored.usage
            verdict.items = stored.items
            verdict.failure = stored.failure
            verdict.spanError = stored.spanErrorInfo
            return (verdict, nil)
        }
        let verdict = await GuardrailRun.all(
            guards, input: input, output: output, parent: parent, state: self, kind: kind)
        guard let journal, !(verdict.failure?.retriable ?? false) else { return (verdict, nil) }
        let record = JournaledCall(
            callId: key, name: JournaledGuardrails.recordName, output: "", raw: false,
            verdict: JournaledGuardrails(
                usage: verdict.usage, items: verdict.items, failure: verdict.failure, spanError: verdict.spanError,
                nextEventId: ids.current))
        let agents = guards.contains {
            if case .agent = $0.implementation { return true }
            return false
        }
        do { try await journal.stepFinished(record, deferred: !agents) } catch { return (verdict, Self.fenced(error)) }
        return (verdict, nil)
    }

    /// Goes on from a journaled model response (see `AgentRunner.resume(_:checkpoint:info:taskRow:)`).
    mutating func resume(_ cp: RunCheckpoint, info: ResumeInfo) async -> RunResult {
        restore(cp.position)
        let taskId = cp.position.taskEventId
        await emitResume(info, parent: taskId, from: "turn \(cp.position.turn) model response")
        guard spec.agents[cp.position.agent] != nil else {
            let failure = RunFailure(
                type: .resumeError, message: "Agent \(cp.position.agent) not found in the run spec", retriable: false)
            return await finish(.failed(failure), agentName: cp.position.agent, taskId: taskId)
        }
        let resumed = ResumedTurn(turnId: cp.turnEventId, turnUsage: cp.turnUsage, response: cp.response)
        let (outcome, last) = await runAgents(
            from: cp.position.agent, parent: taskId, openAgentId: cp.position.agentEventId, resumeTurn: resumed)
        return await finish(outcome, agentName: last, taskId: taskId)
    }
}
