-- bridge:no-transaction
-- Partial indexes built concurrently: only rows that hold a lease are in them, so they stay
-- tiny however large the tasks table grows. The heartbeat and every guarded write find their
-- rows by token; the reaper finds expired leases by expiry.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_bridge_lease_token
    ON ${tasks_table} (bridge_lease_token) WHERE bridge_lease_token IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_tasks_bridge_lease_expires_at
    ON ${tasks_table} (bridge_lease_expires_at) WHERE bridge_lease_token IS NOT NULL;
