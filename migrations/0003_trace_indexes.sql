-- bridge:no-transaction
-- Partial indexes built concurrently: reads and writes continue during the build. A build
-- that fails leaves an INVALID index, which bridge drops before building it again.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_openai_trace_id
    ON ${tasks_table} (openai_trace_id) WHERE openai_trace_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_task_executions_openai_trace_id
    ON ${executions_table} (openai_trace_id) WHERE openai_trace_id IS NOT NULL;
