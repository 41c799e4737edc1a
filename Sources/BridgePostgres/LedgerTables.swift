import BridgeCore

/// bridge's own tables in the schema `bridge`, created by `bridge migrate`.
@SnakeCaseRawValues
public enum LedgerTable: Sendable, CaseIterable {
    case traces, spans, exporters, prunes
    case runTranscripts
    case spanDeliveries
    case runStates
    case approvalWaits
    case runJournals
    case journalCalls
    case agentSessions
    case agentMessages

    /// `bridge.<name>`.
    public var qualifiedName: String { "bridge." + rawValue }
}

/// The `status` of a delivery record (`bridge.span_deliveries`, `bridge.trace_deliveries`): the
/// receiver accepted the item, or refused it for good. An item without a record is undelivered.
public enum DeliveryStatus: String, Sendable, CaseIterable, PostgresBindable, PostgresDecodable {
    case delivered, rejected

    public var postgresValue: PostgresValue { .text(rawValue) }
}

extension PostgresConnection {
    /// Whether every table of `tables` exists: the one "has `bridge migrate` created the
    /// ledger (or the part of it this command needs)" check. One catalog lookup, no table scan.
    public func ledgerHas(_ tables: [LedgerTable]) throws(PostgresError) -> Bool {
        let names = PostgresArray.text(tables.map(\.qualifiedName))
        return try query(
            """
            SELECT coalesce(bool_and(to_regclass(t) IS NOT NULL), true) AS ok FROM unnest(\(names)::text[]) AS t
            """
        ).first?.bool("ok") ?? false
    }
}
