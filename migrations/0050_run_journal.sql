-- Durable runs: a run outlives its worker. Every finished step is journaled before the run goes
-- on, in the statement that writes the step's spans and fenced on the task's lease token, so a
-- run whose worker died (reaper), was stopped (SIGTERM release) or failed retriably resumes on
-- whichever worker claims it next, in the same trace, without redoing a finished model call or
-- tool call.
--   bridge.run_journals   one row per unfinished run: its trace, its run spec, and its latest
--                         checkpoint (the run state right after its last journaled model
--                         response: transcript, counters, still-open spans). Deleted in the
--                         transaction that writes the run's final result.
--   bridge.journal_calls  one row per finished tool call (keyed by trace and call id): the
--                         output replayed on resume. A writing SQL tool's row commits in the
--                         tool's own transaction (exactly once). Kept with the trace; `bridge
--                         prune` deletes them with it.
CREATE TABLE IF NOT EXISTS bridge.run_journals (
    task_key    text PRIMARY KEY,
    trace_id    text NOT NULL,
    attempt     integer NOT NULL,
    format      integer NOT NULL,
    spec        jsonb NOT NULL,
    checkpoint  jsonb,
    steps       integer NOT NULL DEFAULT 0,
    worker_id   text,
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS bridge.journal_calls (
    trace_id    text NOT NULL,
    call_id     text NOT NULL,
    task_key    text NOT NULL,
    tool_name   text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (trace_id, call_id)
);

-- `bridge prune` keeps the trace of a run that still has a journal (it may resume).
CREATE INDEX IF NOT EXISTS run_journals_trace_id ON bridge.run_journals (trace_id);
