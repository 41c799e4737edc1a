-- Leases for `bridge exec` workers (fencing tokens, heartbeats, retries with backoff).
-- Nullable columns without a default: metadata-only changes (a brief ACCESS EXCLUSIVE lock
-- under lock_timeout, retried with backoff when the table is busy). NULL means "no lease" and
-- "no attempts yet", so existing rows need no backfill.
--   bridge_lease_token       random token of the current claim; every write by the worker
--                            that holds it is guarded on it (NULL when nobody holds the task)
--   bridge_lease_expires_at  the claim is void after this (extended by heartbeats)
--   bridge_worker_id         which worker holds the claim (host:pid:random)
--   bridge_attempts          claims so far; attempt N gets its own execution row and trace
--   bridge_run_after         a retried task is not claimed before this (backoff)
ALTER TABLE ${tasks_table} ADD COLUMN IF NOT EXISTS bridge_lease_token text;
ALTER TABLE ${tasks_table} ADD COLUMN IF NOT EXISTS bridge_lease_expires_at timestamptz;
ALTER TABLE ${tasks_table} ADD COLUMN IF NOT EXISTS bridge_worker_id text;
ALTER TABLE ${tasks_table} ADD COLUMN IF NOT EXISTS bridge_attempts integer;
ALTER TABLE ${tasks_table} ADD COLUMN IF NOT EXISTS bridge_run_after timestamptz;
