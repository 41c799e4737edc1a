import BridgeCore
import BridgeMetrics
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// bridge's own record of traces, spans and transcripts (`bridge.traces`, `bridge.spans`,
/// `bridge.run_transcripts`). Every value is bound; writes are idempotent.
@MemberwiseInit
public struct Ledger: SpanSink {
    public let connection: PostgresConnection

    /// Inserts the trace, or refreshes its name, group and metadata if it exists; keeps the
    /// earliest `started_at`.
    public func insertTrace(_ trace: TraceRecord, taskId: TaskKey?, startedAt: Date?) async throws {
        let metadata = trace.metadataJSON.compact
        try await connection.query(
            """
            INSERT INTO bridge.traces (trace_id, workflow_name, group_id, metadata, task_id, started_at)
            VALUES (\(trace.id), \(trace.workflowName), \(trace.groupId.postgresValue), \(metadata)::jsonb, \(taskId.postgresValue), \(startedAt.postgresValue)::timestamptz)
            ON CONFLICT (trace_id) DO UPDATE SET
              workflow_name = EXCLUDED.workflow_name, group_id = EXCLUDED.group_id, metadata = EXCLUDED.metadata,
              task_id = EXCLUDED.task_id,
              started_at = least(bridge.traces.started_at, EXCLUDED.started_at), updated_at = now()
            """)
    }

    /// Sets the trace's `ended_at`.
    public func endTrace(_ traceId: TraceID, endedAt: Date) async throws {
        try await connection.query(
            """
            UPDATE bridge.traces SET ended_at = \(endedAt)::timestamptz, updated_at = now() WHERE trace_id = \(traceId)
            """)
    }

    /// Inserts a span; a span id that exists already is left as it is.
    public func insertSpan(_ span: SpanRecord) async throws {
        try await connection.query(
            """
            INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data, error)
            VALUES (\(span.id), \(span.traceId), \(span.parentId.postgresValue), \(span.startedAt)::timestamptz, \(span.endedAt)::timestamptz,
                    \(span.spanData.compact)::jsonb, \(span.error?.compact.postgresValue ?? .null)::jsonb)
            ON CONFLICT (span_id) DO NOTHING
            """)
    }

    /// Stores (or replaces) a run's transcript: every model output item and tool output, in order.
    public func storeTranscript(traceId: TraceID, taskId: TaskKey, attempt: Int, items: [ConversationItem])
        async throws
    {
        try await connection.query(
            """
            INSERT INTO bridge.run_transcripts (trace_id, task_id, attempt, items)
            VALUES (\(traceId), \(taskId), \(attempt), \(JSONValue.array(items.map(\.json)).compact)::jsonb)
            ON CONFLICT (trace_id) DO UPDATE SET task_id = EXCLUDED.task_id, attempt = EXCLUDED.attempt, items = EXCLUDED.items
            """)
    }

    /// The spans of a trace, oldest first.
    public func spans(traceId: TraceID) async throws -> [SpanRecord] {
        try await Self.spans(traceId: traceId, on: connection)
    }

    /// The spans of a trace, oldest first.
    public static func spans(traceId: TraceID, on connection: PostgresConnection) async throws -> [SpanRecord] {
        // Raw: the record's column list, a constant in code that its row decoder reads.
        let rows = try await connection.query(
            """
            SELECT \(unsafeRaw: SpanRecord.ledgerColumns)
            FROM bridge.spans s WHERE s.trace_id = \(traceId) ORDER BY s.started_at, s.ended_at, s.span_id
            """)
        return try rows.map(Self.span)
    }

    /// A span from a row with `span_id, trace_id, parent_id, started_at, ended_at`, and
    /// `span_data` and `error` as text.
    public static func span(_ row: PostgresRow) throws -> SpanRecord {
        try SpanRecord(ledgerRow: row)
    }

    /// The stored trace, if any.
    public func trace(id: TraceID) async throws -> TraceRecord? {
        // Raw: the record's column list, a constant in code that its row decoder reads.
        let rows = try await connection.query(
            """
            SELECT \(unsafeRaw: TraceRecord.ledgerColumns) FROM bridge.traces tr WHERE tr.trace_id = \(id)
            """)
        guard let row = rows.first else { return nil }
        return try TraceRecord(ledgerRow: row)
    }

    // MARK: SpanSink

    public func traceStarted(_ trace: TraceRecord, taskId: TaskKey?, at: Date) async throws {
        try await insertTrace(trace, taskId: taskId, startedAt: at)
    }

    public func spanEnded(_ span: SpanRecord) async throws {
        try await insertSpan(span)
        BridgeMetrics.spansRecorded(1)
    }

    public func traceEnded(_ traceId: TraceID, at: Date) async throws {
        try await endTrace(traceId, endedAt: at)
    }

    /// `NOTIFY bridge_span_started` (see `SpanStart`): nothing is written.
    public func spanStarted(_ start: SpanStart) async throws {
        try await connection.query("SELECT pg_notify(\(SpanStart.channel), \(start.payload))")
    }
}
