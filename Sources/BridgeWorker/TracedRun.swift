import BridgeCore
import BridgeMapping
import BridgeMetrics
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import FoundationEssentials

/// One run of a spec, traced: every span goes to the ledger (and the extra sinks) as it ends,
/// and the run's transcript is stored for `bridge verify`. Shared by `bridge exec` and
/// `--backfill --rerun`.
struct TracedRun: Sendable {
    let model: any ModelProvider
    /// Where spans go besides the ledger (`--backfill --rerun --trace-file`).
    var extraSinks: [any SpanSink] = []
    /// Values never to be recorded in spans (API keys, the database password).
    let secrets: [String]
    /// The worker's MCP servers (shared by its runs).
    var mcp: (any MCPToolSource)? = nil

    /// Runs `spec` on `connection` (tools and ledger writes share it) and returns the result and
    /// the number of spans recorded. Throws when a span or the transcript did not reach the
    /// ledger, since a span that is not there would be lost.
    /// A paused run to continue: its state, the decisions on its calls, its open spans.
    struct Resume: Sendable {
        var paused: PausedRun
        var decisions: [ApprovalDecision]
        var openSpans: [TraceRecorder.OpenSpan]
    }

    /// A durable run's journal, and where the run goes on from (nil `info`: a fresh run).
    struct Durable: Sendable {
        var journal: DurableJournal
        /// The last journaled model response, to go on from (nil: from the start).
        var checkpoint: RunCheckpoint?
        /// Set when the run was interrupted before (a `resume` span shows the gap).
        var info: ResumeInfo?
    }

    /// Runs `spec` (or resumes a paused run of it) on `connection`; for a run that paused, also
    /// returns its still-open spans (the task and agent spans) to be stored with its state.
    /// A durable run's spans go through its journal (written with its steps; the rest by the
    /// caller, in the transaction that ends the attempt).
    func run(
        _ spec: RunSpec, task: Row, taskKey: TaskKey, connection: PostgresConnection,

        tools: any ToolExecutor, resume: Resume? = nil, durable: Durable? = nil
    )
        async throws -> (result: RunResult, spans: Int, openSpans: [TraceRecorder.OpenSpan])
    {
        let ledger = Ledger(connection: connection)
        let recorder: TraceRecorder
        if let durable {
            recorder = TraceRecorder(
                spec: spec, sinks: [durable.journal] + extraSinks,
                includeSensitiveData: spec.traceIncludeSensitiveData, secrets: secrets)
            await recorder.deriveSpanIds()
            durable.journal.attach(recorder)
        } else {
            recorder = TraceRecorder(
                spec: spec, ledger: ledger, includeSensitiveData: spec.traceIncludeSensitiveData,
                extraSinks: extraSinks, secrets: secrets)
        }
        let runner = AgentRunner(
            model: model, tools: tools, observer: MetricsObserver(next: recorder), mcp: mcp,
            journal: durable?.journal)
        let result: RunResult
        if let resume {
            await recorder.restore(resume.openSpans)
            result = redacted(
                await runner.resume(spec, paused: resume.paused, decisions: resume.decisions, taskRow: task))
        } else if let durable, let checkpoint = durable.checkpoint, let info = durable.info {
            let open = try JSONDecoder().decode(
                [TraceRecorder.OpenSpan].self,
                from: Data(checkpoint.openSpans.compact.utf8))
            await recorder.restore(open)
            result = redacted(await runner.resume(spec, checkpoint: checkpoint, info: info, taskRow: task))
        } else {
            result = redacted(await runner.run(spec, taskRow: task, restarted: durable?.info))
        }
        try await ledger.storeTranscript(
            traceId: spec.traceId, taskId: taskKey, attempt: spec.attempt, items: result.transcript)
        let sinkErrors = await recorder.sinkErrors
        if !sinkErrors.isEmpty {
            throw LedgerWriteError(message: "recording spans failed: \(sinkErrors.joined(separator: "; "))")
        }
        return (result, await recorder.spanCount, result.status == .paused ? await recorder.openSpans() : [])
    }

    /// `result` with every secret replaced by `***` in what gets stored or printed: the final
    /// output, the error message and the transcript (a tool that prints a key must not put it
    /// into `tasks.result`, the execution row or `bridge.run_transcripts`).
    func redacted(_ result: RunResult) -> RunResult {
        guard !secrets.isEmpty else { return result }
        var r = result
        r.finalOutput = r.finalOutput.map { Redaction.scrub($0, secrets: secrets) }
        if let message = r.error?.message { r.error?.message = Redaction.scrub(message, secrets: secrets) }
        r.transcript = r.transcript.map { $0.mapJSON { Redaction.scrub($0, secrets: secrets) } }
        r.finalOutputJSON = r.finalOutputJSON.map { Redaction.scrub($0, secrets: secrets) }
        // A paused run's state is stored too (bridge.run_states) and resumes from what is stored.
        if var p = r.paused {
            p.position.history = p.position.history.map { $0.mapJSON { Redaction.scrub($0, secrets: secrets) } }
            p.position.transcript = p.position.transcript.map { $0.mapJSON { Redaction.scrub($0, secrets: secrets) } }
            r.paused = p
        }
        return r
    }

    /// What goes into the task's (or execution's) result column for a run: the final output
    /// (a JSON value for a structured output, else the text) and usage, or the error (with a
    /// tripped guardrail's `output_info`); always the trace id.
    static func resultJSON(_ result: RunResult, traceId: TraceID, extra: [String: JSONValue] = [:]) -> JSONValue {
        var out: [String: JSONValue] = ["usage": result.usage.json, "trace_id": traceId.json]
        if result.status == .completed {
            out["output"] = result.finalOutputJSON ?? .string(result.finalOutput ?? "")
            out["last_agent"] = .string(result.lastAgent)
        } else {
            let failure = result.error ?? RunFailure(type: .runError, message: "unknown failure", retriable: false)
            out["error"] = .string(failure.message)
            out["error_type"] = .string(failure.type.rawValue)
            if let info = failure.outputInfo { out["output_info"] = info }
        }
        return .object(out.merging(extra) { _, new in new })
    }
}

extension TracedRun {
    /// The task columns a completed structured output fills (`output_type.columns` of the agent
    /// that answered): field → value, a missing field as null.
    static func resultColumns(_ result: RunResult, spec: RunSpec) -> [String: JSONValue] {
        guard let json = result.finalOutputJSON, let columns = spec.agents[result.lastAgent]?.outputSchema?.columns
        else {
            return [:]
        }
        var out: [String: JSONValue] = [:]
        for (field, column) in columns { out[column] = json[field] ?? .null }
        return out
    }
}

/// Spans could not be written to the ledger.
struct LedgerWriteError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
