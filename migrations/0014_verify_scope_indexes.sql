-- bridge:no-transaction
-- The scope of `bridge verify` served by indexes: traces by start time (--since) and by
-- workspace (--workspace; --task uses idx_traces_task_id), so the checks read the window's
-- traces and, through idx_spans_trace_id, only their spans, at any ledger size.
-- Built concurrently: bridge exec keeps writing traces during the build.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_traces_started_at ON bridge.traces (started_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_traces_group_id ON bridge.traces (group_id);
