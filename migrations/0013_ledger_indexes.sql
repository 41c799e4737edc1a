-- bridge:no-transaction
-- Indexes that keep the ledger's readers in proportion to what they read, at any size:
-- the cursor order (exporters, `trace tail`), time windows (`bridge verify --since`,
-- `bridge prune`), and rows stored before the cursor existed (read once per exporter).
-- Built concurrently: bridge exec keeps writing spans during the build.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_spans_cursor ON bridge.spans (txid, seq);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_traces_cursor ON bridge.traces (txid, seq);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_traces_created_at ON bridge.traces (created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_traces_ended_at ON bridge.traces (ended_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_spans_legacy ON bridge.spans (span_id) WHERE txid IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_traces_legacy ON bridge.traces (trace_id) WHERE txid IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_run_transcripts_task ON bridge.run_transcripts (task_id);
