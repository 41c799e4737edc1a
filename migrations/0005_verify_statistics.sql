-- Planner statistics on the span type for `bridge verify` (and anything else that filters
-- spans by `span_data->>'type'`). Without them PostgreSQL guesses 0.5% of the rows for
-- `span_data->>'type' = 'function'` (often 30% in reality) and picks nested loops and small
-- hash tables; with them the checks use hash joins sized right (see bench/README.md).
-- Extended statistics take a SHARE UPDATE EXCLUSIVE lock: reads and writes continue.
-- Statistics on an expression need PostgreSQL 14; older servers skip this step.
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'CREATE STATISTICS IF NOT EXISTS bridge.spans_type_stats ON ((span_data->>''type'')) FROM bridge.spans';
    END IF;
END
$$;

-- Fill them now rather than at the next autovacuum (a sample of rows; does not block writes).
ANALYZE bridge.spans;
