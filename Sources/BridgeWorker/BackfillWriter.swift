// The write side of `bridge exec --backfill`: a batch's traces, spans, transcripts and trace-id
// updates as ONE statement of array binds (`INSERT … SELECT FROM unnest(…)`).
import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// What one batch's write did (rows that existed already are not counted).
struct BackfillWriteCounts: Sendable, Equatable {
    var tasks = 0, executions = 0, traces = 0, spans = 0
}

/// Writes rebuilt traces in bulk: each column of each table is one array bind, unnested on the
/// server. Inserts are `ON CONFLICT DO NOTHING`; the trace id goes onto the task and onto the
/// execution row it was built from only where that column is still null. Keys are bound with
/// their column's type (`ColumnTypes`), so the updates use the primary keys.
struct BackfillWriter: Sendable {
    let config: MappingConfig

    private func arrayType(_ table: String, _ column: String) -> PostgresQuery {
        config.columnTypes.unnestCast(table, column)
    }

    func statement(_ traces: [RebuiltTrace]) -> PostgresQuery {
        let s = config.source
        let r = config.results
        let traceCol = PostgresQuery.identifier(r.traceIdColumn ?? "openai_trace_id")
        let spans = traces.flatMap(\.spans)
        let rows = spans.map(\.ledgerValues)
        var sql: PostgresQuery = """
            WITH ins_traces AS (
              INSERT INTO bridge.traces (trace_id, workflow_name, group_id, metadata, task_id, started_at, ended_at)
              SELECT * FROM unnest(\(traces.map(\.trace.id))::text[], \(traces.map(\.trace.workflowName))::text[],
                                   \(traces.map(\.trace.groupId))::text[], \(traces.map(\.trace.metadataJSON.compact))::jsonb[],
                                   \(traces.map(\.taskKey))::text[], \(traces.map(\.startedAt))::timestamptz[],
                                   \(traces.map(\.endedAt))::timestamptz[])
              ON CONFLICT (trace_id) DO NOTHING RETURNING 1
            ),
            ins_spans AS (
              INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data, error)
              SELECT * FROM unnest(\(rows.map(\.id))::text[], \(rows.map(\.traceId))::text[], \(rows.map(\.parentId))::text[],
                                   \(rows.map(\.startedAt))::timestamptz[], \(rows.map(\.endedAt))::timestamptz[],
                                   \(rows.map(\.spanData))::jsonb[], \(rows.map(\.error))::jsonb[])
              ON CONFLICT (span_id) DO NOTHING RETURNING 1
            ),
            ins_transcripts AS (
              INSERT INTO bridge.run_transcripts (trace_id, task_id, attempt, items)
              SELECT * FROM unnest(\(traces.map(\.trace.id))::text[], \(traces.map(\.taskKey))::text[],
                                   \(traces.map(\.attempt))::int[], \(traces.map { JSONValue.array($0.transcript.map(\.json)).compact })::jsonb[])
              ON CONFLICT (trace_id) DO NOTHING RETURNING 1
            ),
            upd_tasks AS (
              UPDATE \(identifier: s.table) AS u SET \(traceCol) = v.trace_id
              FROM unnest(\(traces.map(\.taskKey))\(arrayType(s.table, s.key)), \(traces.map(\.trace.id))::text[]) AS v(k, trace_id)
              WHERE u.\(identifier: s.key) = v.k AND u.\(traceCol) IS NULL RETURNING 1
            )
            """
        var executions: PostgresQuery = "0"
        if let e = r.executions, let column = e.columns.traceId {
            let rebuilt = traces.filter { $0.executionKey != nil }
            sql += """
                ,
                upd_execs AS (
                  UPDATE \(identifier: e.table) AS u SET \(identifier: column) = v.trace_id
                  FROM unnest(\(rebuilt.map(\.executionKey))\(arrayType(e.table, e.key)), \(rebuilt.map(\.trace.id))::text[]) AS v(k, trace_id)
                  WHERE u.\(identifier: e.key) = v.k AND u.\(identifier: column) IS NULL RETURNING 1
                )
                """
            executions = "(SELECT count(*) FROM upd_execs)"
        }
        sql += """

            SELECT (SELECT count(*) FROM upd_tasks) AS tasks, \(executions) AS executions,
                   (SELECT count(*) FROM ins_traces) AS traces, (SELECT count(*) FROM ins_spans) AS spans
            """
        return sql
    }

    func write(_ traces: [RebuiltTrace], on c: isolated PostgresConnection) throws(PostgresError) -> BackfillWriteCounts
    {
        guard !traces.isEmpty, let row = try c.query(statement(traces)).first else { return BackfillWriteCounts() }
        return BackfillWriteCounts(
            tasks: row.int("tasks") ?? 0, executions: row.int("executions") ?? 0,
            traces: row.int("traces") ?? 0, spans: row.int("spans") ?? 0)
    }
}
