import BridgeCore
import BridgeMapping
import BridgeTraceModel
import FoundationEssentials

/// Input and output guardrails with the SDK's semantics.
///
/// - Input guardrails run on the starting agent's first turn, beside the model call (the SDK's
///   default `run_in_parallel`); their spans are children of the turn span. A tripwire cancels
///   the model call and fails the run with `InputGuardrailTripwireTriggered`; the turn span gets
///   "Guardrail tripwire triggered" `{guardrail}`.
/// - Output guardrails run on the final output of the agent that produced it, after its last
///   turn; their spans are children of the agent span, which gets the tripwire error.
/// - Several guardrails run concurrently; the first tripwire cancels the others.
/// - A guardrail that fails (its SQL errors, its agent fails) fails the run, as an exception in
///   a guardrail function does in the SDK.
enum GuardrailRun {
    enum Kind { case input, output }

    /// What a set of guardrails decided.
    struct Verdict: Sendable {
        var failure: RunFailure?
        var spanError: SpanErrorInfo?
        var usage = Usage()
        /// One transcript item per guardrail that ran (`{type: guardrail_result, name, kind,
        /// triggered}`), for `bridge verify`.
        var items: [ConversationItem] = []
    }

    /// One guardrail's result.
    struct Outcome: Sendable {
        var name: String
        var triggered: Bool
        var outputInfo: JSONValue
        var usage: Usage
        var failure: RunFailure?
        /// The guardrail's own text for the model (a SQL `message` column, or a `message`
        /// field of the agent's answer); tool guardrails that reject content use it.
        var message: String?
    }

    /// Runs `guards` beside the model call for `request`; a tripwire cancels the call. Returns
    /// the model's answer (nil when cancelled) and the guardrails' verdict.
    static func alongside(
        _ request: ModelRequest, guards: [GuardrailSpec], parent: EventID,
        state: RunState
    ) async -> (Result<ModelResponse, any Error>?, Verdict) {
        enum Leg: Sendable {
            case model(Result<ModelResponse, any Error>)
            case guards(Verdict)
        }
        let model = state.runner.model
        return await withTaskGroup(of: Leg.self) { group in
            group.addTask {
                do { return .model(.success(try await model.respond(request))) } catch {
                    return .model(.failure(error))
                }
            }
            group.addTask {
                .guards(
                    await all(guards, input: state.spec.input, output: nil, parent: parent, state: state, kind: .input))
            }
            var answer: Result<ModelResponse, any Error>?
            var verdict = Verdict()
            for await leg in group {
                switch leg {
                case .model(let r): answer = r
                case .guards(let v):
                    verdict = v
                    if v.failure != nil { group.cancelAll() }
                }
            }
            if verdict.failure != nil, case .failure? = answer { answer = nil }
            return (answer, verdict)
        }
    }

    /// Runs `guards` concurrently and returns the first tripwire (or failure) as a verdict.
    static func all(
        _ guards: [GuardrailSpec], input: String, output: String?, parent: EventID, state: RunState,
        kind: Kind
    ) async -> Verdict {
        await withTaskGroup(of: Outcome.self) { group in
            for g in guards {
                group.addTask { await one(g, input: input, output: output, parent: parent, state: state) }
            }
            var verdict = Verdict()
            for await o in group {
                verdict.usage = verdict.usage + o.usage
                verdict.items.append(
                    .guardrailResult(
                        .init(name: o.name, kind: kind == .input ? .input : .output, triggered: o.triggered)))
                guard verdict.failure == nil else { continue }
                if let failure = o.failure {
                    verdict.failure = failure
                    verdict.spanError = SpanErrorInfo(
                        message: RunnerMessages.spanAgentError,
                        data: ["error": .string(failure.message)])
                    group.cancelAll()
                } else if o.triggered {
                    let type: FailureType =
                        kind == .input ? .inputGuardrailTripwireTriggered : .outputGuardrailTripwireTriggered
                    verdict.failure = RunFailure(
                        type: type, message: RunnerMessages.tripwire(o.name, outputInfo: o.outputInfo),
                        retriable: false, outputInfo: o.outputInfo)
                    verdict.spanError = SpanErrorInfo(
                        message: RunnerMessages.spanGuardrailTripped,
                        data: ["guardrail": .string(o.name)])
                    group.cancelAll()
                }
            }
            return verdict
        }
    }

    /// What a guardrail checks, when it is not the run's input and output (a tool guardrail's
    /// call): the SQL binds and the guardrail agent's input.
    struct Subject: Sendable {
        var binds: JSONValue
        var agentInput: String
    }

    /// Runs one guardrail inside its span (`id`, else a new one). A guardrail agent's run
    /// allocates its span ids from `nestedIds` (default: the run's counter).
    static func one(
        _ g: GuardrailSpec, input: String, output: String?, parent: EventID, state: RunState,
        id given: EventID? = nil, subject: Subject? = nil, nestedIds: EventCounter? = nil
    ) async -> Outcome {
        let id = given ?? state.allocate()
        await state.emit(.guardrailStarted(id: id, parent: parent, name: g.name, at: Date()))
        var outcome = Outcome(name: g.name, triggered: false, outputInfo: .null, usage: Usage())
        switch g.implementation {
        case .sql(let sql):
            let binds = subject?.binds ?? ["input": .string(input), "output": output.map(JSONValue.string) ?? .null]
            outcome = await runSQL(g.name, sql, binds: binds, state: state)
        case .agent(let agentName):
            var nested = RunState(
                spec: state.spec, taskRow: state.taskRow, runner: state.runner, ids: nestedIds ?? state.ids,
                input: subject?.agentInput ?? output ?? input, depth: state.depth + 1)
            if state.depth >= 3 {
                outcome.failure = RunFailure(
                    type: .userError, message: "guardrail \(g.name): guardrail agents nest deeper than 3",
                    retriable: false)
                break
            }
            let (end, _) = await nested.runAgents(from: agentName, parent: id)
            outcome.usage = nested.usage
            switch end {
            case .final:
                let json = nested.structuredOutput ?? .null
                outcome.triggered = json["tripwire_triggered"]?.boolValue ?? false
                outcome.outputInfo = json["output_info"] ?? json
                outcome.message = json["message"]?.stringValue
            case .failed(let f):
                outcome.failure = RunFailure(
                    type: f.type, message: "guardrail \(g.name) (agent \(agentName)) failed: \(f.message)",
                    retriable: f.retriable, retryAfter: f.retryAfter)
            case .paused:
                outcome.failure = RunFailure(
                    type: .userError,
                    message:
                        "guardrail \(g.name): agent \(agentName) called a tool that needs approval; guardrail agents cannot wait",
                    retriable: false)
            case .interrupted(let f):
                outcome.failure = f
            case .handoff:
                break
            }
        }
        let spanError = outcome.failure.map {
            SpanErrorInfo(message: "Error running guardrail", data: ["error": .string($0.message)])
        }
        await state.emit(.guardrailEnded(id: id, triggered: outcome.triggered, error: spanError, at: Date()))
        return outcome
    }

    /// A SQL guardrail: READ ONLY, through the run's tool executor, with `binds` (`:input` and
    /// `:output` for an agent guardrail); the first row's `tripwire_triggered` and `output_info`
    /// decide, and its `message` (text) is what a rejecting tool guardrail tells the model.
    static func runSQL(_ name: String, _ sql: SQLToolSpec, binds arguments: JSONValue, state: RunState) async
        -> Outcome
    {
        var readOnly = sql
        readOnly.writes = false
        // Only the first row counts; read it whole (within a bound), so a long output_info is
        // cut after parsing, never in the middle of the JSON.
        readOnly.maxRows = 1
        readOnly.maxBytes = max(sql.maxBytes, guardrailReadBytes)
        let tool = ToolSpec(name: name, description: "guardrail", parameters: [:], implementation: .sql(readOnly))
        var outcome = Outcome(name: name, triggered: false, outputInfo: .null, usage: Usage())
        do {
            let text = try await state.runner.tools.execute(
                tool, arguments: arguments,
                context: ToolContext(
                    spec: state.spec, taskRow: state.taskRow,
                    agentName: name))
            let (triggered, info, message) = try verdict(ofRows: text)
            outcome.triggered = triggered
            outcome.outputInfo = info
            outcome.message = message
        } catch let problem as GuardrailResultError {
            outcome.failure = RunFailure(
                type: .guardrailError, message: "guardrail \(name) failed: \(problem.message)", retriable: false)
        } catch {
            let text = (error as? ToolFailure)?.message ?? String(describing: error)
            outcome.failure = RunFailure(
                type: .guardrailError, message: "guardrail \(name) failed: \(text)", retriable: false)
        }
        return outcome
    }

    /// The most of a SQL guardrail's answer read (its one row as JSON).
    static let guardrailReadBytes = 16 * 1_048_576
    /// The most of an `output_info` kept (a longer one is cut, and says so).
    static let maxOutputInfoBytes = 65_536

    /// A SQL guardrail's answer that is not a decision.
    struct GuardrailResultError: Error {
        var message: String
    }

    /// Reads the SQL executor's JSON rows: no row is "not triggered"; a first row must hold a
    /// boolean `tripwire_triggered` (anything else is an error, never a pass). A long
    /// `output_info` is cut to `maxOutputInfoBytes`.
    static func verdict(ofRows text: String) throws -> (triggered: Bool, info: JSONValue, message: String?) {
        let parsed: JSONValue
        do { parsed = try JSONValue.parse(text) } catch {
            throw GuardrailResultError(
                message: text.hasSuffix("[truncated: output exceeded max_bytes=\(guardrailReadBytes)]")
                    ? "its first row is over \(guardrailReadBytes) bytes"
                    : "its answer is not JSON rows: \(error)")
        }
        guard let rows = parsed.arrayValue ?? parsed["rows"]?.arrayValue else {
            throw GuardrailResultError(message: "its SQL returned no rows (\(String(parsed.compact.prefix(200))))")
        }
        guard let row = rows.first else { return (false, .null, nil) }
        guard let flag = row["tripwire_triggered"] else {
            let names = (row.objectValue?.keys.sorted() ?? []).joined(separator: ", ")
            throw GuardrailResultError(
                message: "its first row has no tripwire_triggered column (columns: \(names));"
                    + " it must return a boolean tripwire_triggered")
        }
        guard case .bool(let triggered) = flag else {
            throw GuardrailResultError(
                message: "its tripwire_triggered is \(String(flag.compact.prefix(80))), not a boolean")
        }
        let message = row["message"]?.stringValue.map { SQLToolExecutor.capBytes($0, maxBytes: maxOutputInfoBytes) }
        return (triggered, capped(row["output_info"] ?? .null), message)
    }

    /// `info` when its text fits `maxOutputInfoBytes`; else that text cut to fit, marked.
    static func capped(_ info: JSONValue) -> JSONValue {
        let text = info.stringValue ?? info.compact
        guard text.utf8.count > maxOutputInfoBytes else { return info }
        return .string(SQLToolExecutor.capBytes(text, maxBytes: maxOutputInfoBytes))
    }
}
