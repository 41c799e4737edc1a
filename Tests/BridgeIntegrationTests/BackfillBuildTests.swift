import BridgeCore
import BridgePostgres
import BridgeRunner
import BridgeTestSupport
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

@testable import BridgeMapping
@testable import BridgeWorker

/// The backfill's Swift side: its spans are the live TraceRecorder's for the same run shape, a
/// task without a mapped agent is skipped (not given an invented one), and arrays bind.
struct BackfillBuildTests {
    static var mappings: String { TestDatabase.projectRoot.appendingPathComponent("mappings").path }
    static let t0 = Date(timeIntervalSince1970: 1_790_000_000.25)

    /// A failed historical run of the Researcher with two tool calls, the second one failed.
    static func historicalRun() -> HistoricalRun {
        HistoricalRun(
            taskKey: "7c0a2b1e-0000-4000-8000-000000000001", groupId: "ws-1", agentKey: "agent-1",
            agentRow: .init(match: "Researcher"), failed: true,
            execution: .init(
                key: "exec-1", startedAt: t0, completedAt: t0 + 10,
                usage: ["input_tokens": 100, "output_tokens": 20, "total_tokens": 120, "requests": 2],
                errorMessage: "the model gave up", attempts: 1),
            toolCalls: [
                .init(
                    name: "store_data", arguments: ["workspace_id": "ws-1", "value": ["a": 1]], output: "true",
                    startedAt: t0 + 1, durationMs: 500),
                .init(
                    name: "get_team_roles_and_status", arguments: "{\"workspace_id\":\"ws-1\"}", output: nil,
                    error: "permission denied for password=hunter22", startedAt: t0 + 2, durationMs: 1_250),
            ])
    }

    /// The same run told as the live runner tells it, through a TraceRecorder.
    static func liveSpans(config: MappingConfig, run: HistoricalRun, inputs: [String?]) async throws -> (
        TraceRecord, [SpanRecord]
    ) {
        let task: [String: JSONValue] = [
            "id": run.taskKey.json, "workspace_id": .string(run.groupId ?? ""),
            "agent_id": .string(run.agentKey ?? ""), "name": "n", "description": "d",
        ]
        let spec = try DatabaseToSDKBridge(config: config).runSpec(
            task: task, agentRows: [["id": .string(run.agentKey ?? ""), "role": .string(run.agentRow?.match ?? "")]],
            handoffEdges: [], attempt: 1)
        let agent = try #require(spec.agents[spec.startingAgent])
        let recorder = TraceRecorder(
            spec: spec, sinks: [], includeSensitiveData: config.tracing.includeSensitiveData,
            secrets: ["hunter22"])
        let end = run.execution!.completedAt!
        let lastEnd = run.toolCalls.compactMap(\.endedAt).max()!
        await recorder.record(.taskStarted(id: 1, at: t0))
        await recorder.record(
            .agentStarted(
                id: 2, parent: 1, agent: agent.name, tools: agent.tools,
                handoffs: agent.handoffs.map(\.agent), outputType: agent.outputType, at: t0))
        await recorder.record(.turnStarted(id: 3, parent: 2, turn: 1, agent: agent.name, at: t0))
        for (i, call) in run.toolCalls.enumerated() {
            await recorder.record(
                .toolStarted(id: 10 + i, parent: 3, name: call.name, arguments: inputs[i] ?? "", at: call.startedAt!))
            await recorder.record(
                .toolEnded(
                    id: 10 + i, output: call.output,
                    error: call.error.map {
                        SpanError(
                            message: SpanError.tool, data: ["tool_name": .string(call.name), "error": .string($0)])
                    }, at: call.endedAt!))
        }
        await recorder.record(.turnEnded(id: 3, usage: Usage(), error: nil, at: lastEnd))
        await recorder.record(.turnStarted(id: 4, parent: 2, turn: 2, agent: agent.name, at: lastEnd))
        await recorder.record(.turnEnded(id: 4, usage: Usage(), error: nil, at: end))
        await recorder.record(
            .agentEnded(
                id: 2, error: SpanError(message: SpanError.agentRun, data: ["error": "the model gave up"]), at: end))
        await recorder.record(
            .taskEnded(id: 1, usage: Usage(requests: 2, inputTokens: 100, outputTokens: 20), error: nil, at: end))
        return (await recorder.trace, await recorder.recorded)
    }

    @Test(arguments: [true, false])
    func backfilledSpansAreWhatTheLiveRecorderWrites(sensitive: Bool) async throws {
        var config = try MappingLoader.load(directory: Self.mappings)
        config.tracing.includeSensitiveData = sensitive
        let run = Self.historicalRun()
        let built = try BackfillTraceBuilder(config: config, secrets: ["hunter22"]).build(run)
        let functionInputs = built.spans.filter { $0.type == "function" }.map { $0.spanData["input"]?.stringValue }
        if sensitive {
            #expect(functionInputs == [#"{"value":{"a":1},"workspace_id":"ws-1"}"#, #"{"workspace_id":"ws-1"}"#])
        }
        let inputs = run.toolCalls.map { $0.arguments.map { $0.stringValue ?? $0.compact } }
        let (liveTrace, live) = try await Self.liveSpans(config: config, run: run, inputs: inputs)

        // Same spans in the same tree: data, errors (wording, redaction, secrets), times.
        func ordered(_ s: [SpanRecord]) -> [SpanRecord] {
            s.sorted { ($0.startedAt, $0.endedAt, $0.type) < ($1.startedAt, $1.endedAt, $1.type) }
        }
        let (a, b) = (ordered(built.spans), ordered(live))
        #expect(a.count == 6 && b.count == 6)
        let backfillIndex = Dictionary(uniqueKeysWithValues: a.enumerated().map { ($1.id, $0) })
        let liveIndex = Dictionary(uniqueKeysWithValues: b.enumerated().map { ($1.id, $0) })
        for (x, y) in zip(a, b) {
            var liveData = y.spanData
            if case .object(var o) = liveData, o["type"] == "custom", o["name"] == "task",
                case .object(var d)? = o["data"]
            {
                d["backfilled"] = true  // the one key a backfilled task span adds
                o["data"] = .object(d)
                liveData = .object(o)
            }
            #expect(x.spanData == liveData)
            #expect(x.error == y.error)
            #expect(x.startedAt == y.startedAt && x.endedAt == y.endedAt)
            #expect(x.parentId.flatMap { backfillIndex[$0] } == y.parentId.flatMap { liveIndex[$0] })
        }
        #expect(!"\(a.map(\.error))".contains("hunter22"))
        let failedCall = try #require(a.first { $0.spanData["name"] == "get_team_roles_and_status" })
        #expect(
            failedCall.error?["data"]?["error"]?.stringValue
                == (sensitive ? "permission denied for password=***" : SpanError.redactedToolError))

        // The trace: the live metadata plus `backfilled`, the backfill's own id.
        var meta = built.trace.metadata
        #expect(meta.removeValue(forKey: "backfilled") == "true")
        #expect(meta == liveTrace.metadata)
        #expect(built.trace.workflowName == liveTrace.workflowName && built.trace.groupId == liveTrace.groupId)
        #expect(built.trace.id == TraceID.forBackfill(taskKey: run.taskKey))
        #expect(
            Set(a.map(\.id))
                == Set(
                    ["task", "agent", "turn:1", "turn:2", "function:1", "function:2"].map {
                        SpanID.derived(traceId: built.trace.id, slot: $0)
                    }))
    }

    @Test func aTaskWithoutAMappedAgentFailsAsInTheLivePath() throws {
        var config = try MappingLoader.load(directory: Self.mappings)
        config.source.agentSelection?.defaultAgent = nil
        var run = Self.historicalRun()
        run.agentRow = .init(match: "Janitor")
        run.fallback = "Night Shift"
        let live = #expect(throws: RunSpecError.self) {
            try DatabaseToSDKBridge(config: config).runSpec(
                task: ["id": run.taskKey.json, "agent_id": "agent-1", "assigned_to_role": "Night Shift"],
                agentRows: [["id": "agent-1", "role": "Janitor"]], handoffEdges: [], attempt: 1)
        }
        let backfill = #expect(throws: RunSpecError.self) { try BackfillTraceBuilder(config: config).build(run) }
        #expect(backfill == live)
        #expect(backfill?.message.contains("role='Janitor'") == true, "\(String(describing: backfill))")
    }
}

/// The same against PostgreSQL: array binds round-trip, and a backfill run skips and reports
/// the tasks whose agent `bridge exec` could not choose either.
@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct BackfillDatabaseTests {
    @Test func arraysBindAsOneParameterEach() async throws {
        let c = try await TestDatabase.connect(try await TestDatabase.create())
        let texts: [String?] = ["plain", #"quote " and \ backslash"#, "{braces}, commas", "NULL", "", nil, "ünïcödé ✓"]
        let json: [String] = [#"{"a":"x\"y","b":[1,2]}"#, "null", #""s""#, "[]", "{}", "1.5", "true"]
        let times =
            [Date(timeIntervalSince1970: 1_790_000_000.123456), Date(timeIntervalSince1970: 0)]
            + Array(repeating: Date(timeIntervalSince1970: 1), count: 5)
        let ints = [1, -2, 0, Int.max, 5, 6, 7]
        let rows = try await c.query(
            """
            SELECT t, j::text AS j, extract(epoch FROM ts)::text AS ts, i::text AS i
            FROM unnest(\(texts)::text[], \(json)::jsonb[], \(times)::timestamptz[], \(ints)::bigint[]) WITH ORDINALITY AS u(t, j, ts, i, n)
            ORDER BY n
            """)
        #expect(rows.map { $0["t"] } == texts)
        #expect(try rows.map { try JSONValue.parse($0["j"] ?? "") } == json.map { try JSONValue.parse($0) })
        #expect(rows.map { $0["i"] } == ints.map(String.init))
        #expect(rows.first?["ts"] == "1790000000.123456")
        await c.close()
    }

    /// The seeded reference database (24 finished tasks) with the shipped migrations and mappings.
    static func reference() async throws -> (url: String, c: PostgresConnection, config: MappingConfig) {
        let url = try await migratedReferenceDatabase(seed: true)
        let c = try await TestDatabase.connect(url)
        var config = try MappingLoader.load(directory: BackfillBuildTests.mappings)
        config = config.with(columnTypes: try await ColumnTypes.load(for: config, connection: c))
        return (url, c, config)
    }

    @Test func twoConnectionsTakeConsecutiveBatchesAndTraceEachTaskOnce() async throws {
        let (url, c, config) = try await Self.reference()
        let second = try await TestDatabase.connect(url)
        let backfiller = try Backfiller(config: config)
        let preview = try await backfiller.preview(on: c, options: BackfillOptions())
        let limited = try await backfiller.run(
            on: [c, second], options: .batches(of: 2, limit: 7), progress: .silent())
        #expect(limited.tasks == 7 && limited.batches == 4 && limited.remaining == 17, "\(limited.line)")
        // The 7 traced tasks are the first 7 in key order: the batches were consecutive ranges.
        #expect(
            try await c.query(
                """
                SELECT count(*) AS n FROM (SELECT id, openai_trace_id FROM tasks WHERE status IN ('completed', 'failed')
                                           ORDER BY id LIMIT 7) t WHERE openai_trace_id IS NULL
                """
            ).first?.int("n") == 0)
        let rest = try await backfiller.run(on: [c, second], options: .batches(of: 3), progress: .silent())
        #expect(rest.tasks == 17 && rest.batches == 6 && rest.remaining == 0, "\(rest.line)")
        #expect(limited.spans + rest.spans == preview.spans)
        #expect(try await c.query("SELECT count(*) AS n FROM bridge.spans").first?.int("n") == preview.spans)
        await second.close()
        await c.close()
    }

    @Test func tasksWithoutAMappedAgentAreSkippedAndReported() async throws {
        var (_, c, config) = try await Self.reference()
        config.source.agentSelection?.defaultAgent = nil
        // Two finished tasks lose their agent: no agent row, and a role no YAML agent matches.
        let orphans = try await c.query(
            """
            UPDATE tasks SET agent_id = NULL, assigned_to_role = 'Night Shift'
            WHERE id IN (SELECT id FROM tasks WHERE status IN ('completed', 'failed') ORDER BY id LIMIT 2)
            RETURNING id::text AS id
            """
        ).compactMap { $0["id"].map { TaskKey($0) } }
        #expect(orphans.count == 2)

        let backfiller = try Backfiller(config: config)

        let preview = try await backfiller.preview(on: c, options: BackfillOptions())
        #expect(preview.tasks == 22 && preview.skipped == 2)
        #expect(Set(preview.skippedTasks.map(\.taskId)) == Set(orphans))

        let summary = try await backfiller.run(on: c, options: .batches(of: 5), progress: .silent())
        #expect(summary.tasks == 22 && summary.traces == 22 && summary.skipped == 2 && summary.remaining == 2)
        #expect(Set(summary.skippedTasks.map(\.taskId)) == Set(orphans))
        #expect(
            summary.skippedTasks.allSatisfy {
                $0.reason.contains("no mapped agent") && $0.reason.contains("Night Shift")
            })
        #expect(summary.line.contains("2 skipped, 2 left"), "\(summary.line)")
        #expect(
            try await c.query(
                """
                SELECT count(*) AS n FROM tasks WHERE openai_trace_id IS NULL AND status IN ('completed', 'failed')
                """
            ).first?.int("n") == 2)
        // No invented agent anywhere.
        #expect(
            try await c.query("SELECT count(*) AS n FROM bridge.spans WHERE span_data->>'name' = 'agent'").first?.int(
                "n") == 0)
        let again = try await backfiller.run(on: c, options: BackfillOptions(), progress: .silent())
        #expect(again.tasks == 0 && again.skipped == 2)
        await c.close()
    }
}

extension BackfillOptions {
    /// Options with this batch size (and limit), the rest at their defaults.
    static func batches(of size: Int, limit: Int? = nil) -> BackfillOptions {
        var o = BackfillOptions()
        o.batchSize = size
        o.limit = limit
        return o
    }
}
