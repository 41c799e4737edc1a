import BridgeCore
import BridgePostgres
import Foundation

/// One finished span in the Agents SDK's export format.
@MemberwiseInit
public struct SpanRecord: Sendable, Equatable {
    /// `span_` + 24 lowercase hex (as read: an imported id may be anything).
    public var id: SpanID
    public var traceId: TraceID
    public var parentId: SpanID?
    public var startedAt: Date
    public var endedAt: Date
    /// The SDK's `span_data` object (`{"type": "agent", …}`), as `SpanData.json` made it.
    public var spanData: JSONValue
    /// `{"message": …, "data": …}` or nil (see `SpanError`).
    public var error: JSONValue?

    /// `{"object":"trace.span","id","trace_id","parent_id","started_at","ended_at","span_data","error"}`.
    public var exportJSON: JSONValue {
        [
            "object": "trace.span",
            "id": id.json,
            "trace_id": traceId.json,
            "parent_id": parentId?.json ?? .null,
            "started_at": .string(SDKTime.iso(startedAt)),
            "ended_at": .string(SDKTime.iso(endedAt)),
            "span_data": spanData,
            "error": error ?? .null,
        ]
    }

    /// The span's `span_data.type`.
    // Empty default: span data without a type (kept as it was read).
    public var type: String { spanData["type"]?.stringValue ?? "" }
    /// The span's type, nil for one the SDK's list does not have (kept and shown as it is).
    public var kind: SpanKind? { SpanKind(rawValue: type) }

    // MARK: The ledger row codec (`bridge.spans`)

    /// The columns of a `bridge.spans` row as `init(ledgerRow:)` reads them (SQL text, for a
    /// SELECT list; `s` is the table's alias).
    public static let ledgerColumns = """
        s.span_id, s.trace_id, s.parent_id, s.started_at, s.ended_at, s.span_data::text AS span_data, s.error::text AS error
        """

    /// A span from a `bridge.spans` row read with `ledgerColumns`. The ids and `span_data` are
    /// NOT NULL in the table, so a row without them is an error; the times are nullable there
    /// (a span imported without them), and such a span keeps `distantPast` as its time.
    public init(ledgerRow row: PostgresRow) throws(PostgresDecodingError) {
        self.init(
            id: try row.decode(SpanID.self, "span_id"), traceId: try row.decode(TraceID.self, "trace_id"),
            parentId: try row.optional(SpanID.self, "parent_id"),
            startedAt: try row.optional(Date.self, "started_at") ?? .distantPast,
            endedAt: try row.optional(Date.self, "ended_at") ?? .distantPast,
            spanData: try row.decode(JSONValue.self, "span_data"),
            error: try row.optional(JSONValue.self, "error"))
    }

    /// The row's values in the order of `bridge.spans (span_id, trace_id, parent_id, started_at,
    /// ended_at, span_data, error)`: timestamps as ISO 8601 text, JSON as compact text.
    public var ledgerValues:
        (
            id: SpanID, traceId: TraceID, parentId: SpanID?, startedAt: String, endedAt: String,
            spanData: String, error: String?
        )
    {
        (
            id, traceId, parentId, PostgresTimestamp.format(startedAt), PostgresTimestamp.format(endedAt),
            spanData.compact, error?.compact
        )
    }
}

/// A trace in the SDK's export format (no timestamps; metadata flat string-to-string).
@MemberwiseInit
public struct TraceRecord: Sendable, Equatable {
    public var id: TraceID
    public var workflowName: String
    public var groupId: String?
    public var metadata: [String: String]

    public var metadataJSON: JSONValue { .object(metadata.mapValues(JSONValue.string)) }

    /// `{"object":"trace","id","workflow_name","group_id","metadata"}`.
    public var exportJSON: JSONValue {
        [
            "object": "trace",
            "id": id.json,
            "workflow_name": .string(workflowName),
            "group_id": groupId.map(JSONValue.string) ?? .null,
            "metadata": metadataJSON,
        ]
    }

    // MARK: The ledger row codec (`bridge.traces`)

    /// The columns of a `bridge.traces` row as `init(ledgerRow:)` reads them (`tr` is the alias).
    public static let ledgerColumns = "tr.trace_id, tr.workflow_name, tr.group_id, tr.metadata::text AS metadata"

    /// A trace from a `bridge.traces` row read with `ledgerColumns` (every column but
    /// `group_id` is NOT NULL in the table). Metadata values that are not strings are left out,
    /// as the SDK's flat string-to-string metadata has none.
    public init(ledgerRow row: PostgresRow) throws(PostgresDecodingError) {
        let meta = try row.decode(JSONValue.self, "metadata")
        guard let object = meta.objectValue else {
            throw PostgresDecodingError(
                column: "metadata", expected: "a JSON object", problem: .badValue(meta.compact), row: row)
        }
        self.init(
            id: try row.decode(TraceID.self, "trace_id"), workflowName: try row.decode(String.self, "workflow_name"),
            groupId: try row.optional(String.self, "group_id"),
            metadata: object.compactMapValues(\.stringValue))
    }
}

/// Timestamps as the SDK writes them.
public enum SDKTime {
    /// Python's `datetime.now(timezone.utc).isoformat()`: `2026-11-26T09:03:44.123456+00:00`
    /// (like Python, the fraction is left out when it is exactly zero microseconds).
    public static func iso(_ date: Date) -> String {
        let (tm, micros) = PostgresTimestamp.utcFields(date)
        let base = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d", Int(tm.tm_year) + 1900, Int(tm.tm_mon) + 1,
            Int(tm.tm_mday), Int(tm.tm_hour), Int(tm.tm_min), Int(tm.tm_sec))
        return base + (micros == 0 ? "" : String(format: ".%06d", micros)) + "+00:00"
    }
}
