-- Durable approvals: a run that calls a `needs_approval` tool pauses without holding a lease
-- or a process, and resumes on any worker once the request is decided.
--   bridge_waiting_since   set while the task waits for an approval (the task's own status
--                          column keeps its running value: the user's CHECK constraint is not
--                          touched); NULL otherwise. Nullable, no default: metadata-only.
--   bridge.run_states      one row per waiting task: the run spec, the paused run (transcript
--                          so far, counters, pending calls) and its still-open task and agent spans
--   bridge.approval_waits  one row per pending call: the key of its request row in the user's
--                          approvals table
ALTER TABLE ${tasks_table} ADD COLUMN IF NOT EXISTS bridge_waiting_since timestamptz;

CREATE TABLE IF NOT EXISTS bridge.run_states (
    task_key      text PRIMARY KEY,
    trace_id      text NOT NULL,
    attempt       integer NOT NULL,
    execution_key text,
    spec          jsonb NOT NULL,
    state         jsonb NOT NULL,
    open_spans    jsonb NOT NULL,
    paused_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS bridge.approval_waits (
    request_key text PRIMARY KEY,
    task_key    text NOT NULL REFERENCES bridge.run_states (task_key) ON DELETE CASCADE,
    call_id     text NOT NULL,
    tool_name   text NOT NULL,
    arguments   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS approval_waits_task_key ON bridge.approval_waits (task_key);
