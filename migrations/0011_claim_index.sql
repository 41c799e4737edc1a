-- bridge:no-transaction
-- The claim order (the mapping's priority list, then age, then key) served by an index, so a
-- claim reads only the rows it takes, however many tasks are pending. `bridge exec` claims
-- with one LIMITed scan per priority value (`status = pending AND priority = v ORDER BY
-- created_at, key`), chained with UNION ALL in priority order; each is a range of this index.
-- The column names come from `--mappings` (tasks_status_column, tasks_priority_column,
-- tasks_created_at_column, tasks_key). A mapping without a priority repeats the status column
-- there, one without created_at repeats the key: the index still serves the order.
-- Built concurrently: reads and writes continue during the build.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_bridge_claim
    ON ${tasks_table} (${tasks_status_column}, ${tasks_priority_column}, ${tasks_created_at_column}, ${tasks_key});
-- Tasks waiting for a retry backoff: only they have bridge_run_after, so this stays tiny. The
-- drain check (`outstanding`) finds them, and leased tasks, through two partial indexes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_bridge_run_after
    ON ${tasks_table} (bridge_run_after) WHERE bridge_run_after IS NOT NULL;
