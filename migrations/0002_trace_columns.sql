-- Nullable columns without a default: a metadata-only change (a brief ACCESS EXCLUSIVE
-- lock under lock_timeout, retried with backoff when the table is busy).
ALTER TABLE ${tasks_table} ADD COLUMN IF NOT EXISTS openai_trace_id text;
ALTER TABLE ${executions_table} ADD COLUMN IF NOT EXISTS openai_trace_id text;
