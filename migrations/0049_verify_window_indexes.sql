-- bridge:no-transaction
-- `bridge verify --since/--task/--workspace` reads only its window, at any size:
-- - traces that name their task or workspace only in metadata (written before bridge.traces had
--   task_id and group_id filled): small partial indexes beside 0001's and 0014's;
-- - executions by time for --since (completed since, or still open and started since), on the
--   application's execution table (names from --mappings: results.executions.columns).
-- Built concurrently: the application and bridge exec keep writing during the builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_traces_metadata_task_id
    ON bridge.traces ((metadata->>'task_id')) WHERE task_id IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_traces_metadata_workspace_id
    ON bridge.traces ((metadata->>'workspace_id')) WHERE group_id IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_task_executions_completed_at
    ON ${executions_table} (${executions_completed_at_column});
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_task_executions_open_started_at
    ON ${executions_table} (${executions_started_at_column}) WHERE ${executions_completed_at_column} IS NULL;
-- The rejected deliveries (`bridge export`'s summary, `--retry-rejected`, verify): few rows,
-- read without walking an exporter's every delivery.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_span_deliveries_rejected
    ON bridge.span_deliveries (exporter) WHERE status = 'rejected';
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_trace_deliveries_rejected
    ON bridge.trace_deliveries (exporter) WHERE status = 'rejected';
