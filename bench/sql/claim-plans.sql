-- The claim before (CASE priority order over every pending row) and after (one LIMITed
-- scan of idx_tasks_bridge_claim per priority value, UNION ALL). Needs migrations 0007-0011.
-- The first reads only (its CTE locks rows inside a statement that ends at once).
\timing off
-- old claim: CASE order over every pending row
EXPLAIN (ANALYZE, FORMAT JSON) WITH picked AS MATERIALIZED (
  SELECT id AS k FROM tasks WHERE status = 'pending' AND (cardinality('{}'::text[]) = 0 OR id::text = ANY('{}'::text[]))
    AND (bridge_run_after IS NULL OR bridge_run_after <= now())
  ORDER BY CASE priority::text WHEN 'high' THEN 0 WHEN 'medium' THEN 1 WHEN 'low' THEN 2 ELSE 3 END, created_at, id
  LIMIT 16 FOR NO KEY UPDATE SKIP LOCKED) SELECT count(*) FROM picked;
EXPLAIN (ANALYZE, FORMAT JSON) WITH picked AS MATERIALIZED (
SELECT k FROM (
SELECT k FROM (SELECT id AS k FROM tasks WHERE status = 'pending'::text AND priority = 'high'::text AND (bridge_run_after IS NULL OR bridge_run_after <= now()) ORDER BY created_at, id LIMIT 16 FOR NO KEY UPDATE SKIP LOCKED) b1
UNION ALL
SELECT k FROM (SELECT id AS k FROM tasks WHERE status = 'pending'::text AND priority = 'medium'::text AND (bridge_run_after IS NULL OR bridge_run_after <= now()) ORDER BY created_at, id LIMIT 16 FOR NO KEY UPDATE SKIP LOCKED) b2
UNION ALL
SELECT k FROM (SELECT id AS k FROM tasks WHERE status = 'pending'::text AND priority = 'low'::text AND (bridge_run_after IS NULL OR bridge_run_after <= now()) ORDER BY created_at, id LIMIT 16 FOR NO KEY UPDATE SKIP LOCKED) b3
UNION ALL
SELECT k FROM (SELECT id AS k FROM tasks WHERE status = 'pending'::text AND (priority IS NULL OR priority <> ALL('{high,medium,low}'::text[])) AND (bridge_run_after IS NULL OR bridge_run_after <= now()) ORDER BY created_at, id LIMIT 16 FOR NO KEY UPDATE SKIP LOCKED) b4
) c LIMIT 16) SELECT count(*) FROM picked;
