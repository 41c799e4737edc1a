-- bridge:no-transaction
-- OPT-IN (its own directory, so migrations/optional does not build it), for `limits: {fairness: {group: COLUMN}}`. Apply after the main migrations:
--   bridge migrate --dir migrations/fairness --mappings DIR
-- A fair claim finds the groups with pending tasks by a loose index scan (one probe per
-- group: `status = pending AND group > previous ORDER BY group LIMIT 1`), then takes each
-- group's most urgent tasks (`status = pending AND group = g AND priority = v ORDER BY
-- created_at, key`): both are ranges of this index, so a claim never reads a backlog.
-- `tasks_group_column` is the fairness group (else source.group_column) from --mappings.
-- Built concurrently: reads and writes continue during the build.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_bridge_fair_claim
    ON ${tasks_table} (${tasks_status_column}, ${tasks_group_column}, ${tasks_priority_column}, ${tasks_created_at_column}, ${tasks_key});
