-- The execution-row finish with the old column-side cast, then with the value bound as the
-- column's type. Run with -v e=EXECUTION_ID; rolled back, nothing changes.
BEGIN;
EXPLAIN (ANALYZE, FORMAT JSON) UPDATE task_executions SET status = 'completed' WHERE id::text = :'e';
EXPLAIN (ANALYZE, FORMAT JSON) UPDATE task_executions SET status = 'completed' WHERE id = :'e'::uuid;
ROLLBACK;
