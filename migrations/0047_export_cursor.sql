-- Export reads O(batch), not O(ledger): every ledger row records the transaction that wrote
-- it, and every exporter keeps a position in (txid, id) order (`ExportPump`, README "Export").
--
-- Safe on a live ledger of any size: ADD COLUMN without a default only changes the catalog
-- (no rewrite), and SET DEFAULT applies to rows inserted from then on. Both run in this
-- file's one transaction, so no row written after it commits lacks its txid. Rows stored
-- before keep txid NULL; each exporter reads those once, by primary key order.
ALTER TABLE bridge.spans ADD COLUMN IF NOT EXISTS txid xid8;
ALTER TABLE bridge.spans ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
ALTER TABLE bridge.traces ADD COLUMN IF NOT EXISTS txid xid8;
ALTER TABLE bridge.traces ALTER COLUMN txid SET DEFAULT pg_current_xact_id();

-- Where each exporter is: every row at or before (trace_txid, trace_id) / (span_txid,
-- span_id) has a delivery row for it. A NULL txid means the exporter is still reading the
-- rows stored before this file (txid NULL), after the id beside it. No row: from the start.
CREATE TABLE IF NOT EXISTS bridge.export_positions (
    exporter   text PRIMARY KEY REFERENCES bridge.exporters (name) ON DELETE CASCADE,
    trace_txid xid8,
    trace_id   text NOT NULL DEFAULT '',
    span_txid  xid8,
    span_id    text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL DEFAULT now()
);
