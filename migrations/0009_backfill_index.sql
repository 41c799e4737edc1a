-- bridge:no-transaction
-- The filter of `bridge exec --backfill`: tasks without a trace id, walked in key order
-- (keyset batches, no OFFSET). The finished-status values come from the mappings, so they are
-- checked on the rows rather than written into the predicate. Tasks leave the index as they
-- are traced, so once history is backfilled it holds only the tasks not yet finished.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_backfill
    ON ${tasks_table} (${tasks_key}) WHERE openai_trace_id IS NULL;
