-- bridge:no-transaction
-- Deleting a span or a trace makes PostgreSQL find the delivery records that reference it
-- (the foreign keys cascade). Their primary keys lead with the exporter, so without these
-- indexes every deleted span would scan all of bridge.span_deliveries: `bridge prune` on a
-- 10M-span ledger would never finish. With them, each cascade is one index probe. Built
-- concurrently: exports keep writing while they are built.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_span_deliveries_span_id ON bridge.span_deliveries (span_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_trace_deliveries_trace_id ON bridge.trace_deliveries (trace_id);
