-- bridge:no-transaction
-- The exporters' read order (0047): one range scan of these indexes after an exporter's
-- position, both for the committed rows below the horizon and for the recent ones above it.
-- They also serve the rows stored before 0047 (txid IS NULL, in id order). Built
-- concurrently: bridge exec keeps writing the ledger during the build.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_spans_txid ON bridge.spans (txid, span_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_traces_txid ON bridge.traces (txid, trace_id);
