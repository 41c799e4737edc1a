-- The ledger's cursor: a position that only moves forward, so exporters (and `bridge trace
-- tail`) read what is new in O(batch) instead of anti-joining the whole ledger.
--
-- A sequence alone is not a cursor: sequence values are taken when a row is inserted, but
-- transactions commit in any order, so a reader that has passed seq 105 can still see seq
-- 104 appear later. Each row therefore also records the id of the transaction that wrote it
-- (`txid`, xid8), and readers order by (txid, seq) and read only rows whose transaction is
-- older than every transaction still running (the safe horizon,
-- `pg_snapshot_xmin(pg_current_snapshot())`). Every transaction below the horizon has ended,
-- so no row can still appear behind a reader's position. See README, "The ledger cursor".
--
-- The columns are added without a default (metadata only, no rewrite), then the defaults are
-- set for new rows. Rows stored before this migration keep NULL: exporters read them once,
-- separately (see bridge.exporters.legacy_*).
CREATE SEQUENCE IF NOT EXISTS bridge.ledger_seq;

ALTER TABLE bridge.spans ADD COLUMN IF NOT EXISTS txid xid8;
ALTER TABLE bridge.spans ADD COLUMN IF NOT EXISTS seq bigint;
ALTER TABLE bridge.spans ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
ALTER TABLE bridge.spans ALTER COLUMN seq SET DEFAULT nextval('bridge.ledger_seq');

ALTER TABLE bridge.traces ADD COLUMN IF NOT EXISTS txid xid8;
ALTER TABLE bridge.traces ADD COLUMN IF NOT EXISTS seq bigint;
ALTER TABLE bridge.traces ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
ALTER TABLE bridge.traces ALTER COLUMN seq SET DEFAULT nextval('bridge.ledger_seq');

-- Each exporter's position: the last (txid, seq) it has passed, per table, and how far it got
-- through the rows stored before this migration (keyset on the primary key).
ALTER TABLE bridge.exporters ADD COLUMN IF NOT EXISTS span_txid xid8;
ALTER TABLE bridge.exporters ADD COLUMN IF NOT EXISTS span_seq bigint;
ALTER TABLE bridge.exporters ADD COLUMN IF NOT EXISTS trace_txid xid8;
ALTER TABLE bridge.exporters ADD COLUMN IF NOT EXISTS trace_seq bigint;
ALTER TABLE bridge.exporters ADD COLUMN IF NOT EXISTS legacy_span_id text;
ALTER TABLE bridge.exporters ADD COLUMN IF NOT EXISTS legacy_trace_id text;
ALTER TABLE bridge.exporters ADD COLUMN IF NOT EXISTS legacy_done boolean NOT NULL DEFAULT false;
