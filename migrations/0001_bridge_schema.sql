-- bridge's own tables live in schema `bridge`, outside `public`, which Supabase exposes
-- through its REST API. All tables are new, so plain CREATE INDEX is fine here.
CREATE SCHEMA IF NOT EXISTS bridge;

CREATE TABLE IF NOT EXISTS bridge.traces (
    trace_id      text PRIMARY KEY,
    workflow_name text NOT NULL,
    group_id      text,
    metadata      jsonb NOT NULL DEFAULT '{}',
    task_id       text,
    started_at    timestamptz,
    ended_at      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_traces_task_id ON bridge.traces (task_id);

-- span_data holds exactly the `span_data` object the Agents SDK exports.
CREATE TABLE IF NOT EXISTS bridge.spans (
    span_id    text PRIMARY KEY,
    trace_id   text NOT NULL REFERENCES bridge.traces ON DELETE CASCADE,
    parent_id  text,
    started_at timestamptz,
    ended_at   timestamptz,
    span_data  jsonb NOT NULL,
    error      jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_spans_trace_id ON bridge.spans (trace_id);

-- The model output items of each run, stored by `bridge exec`.
CREATE TABLE IF NOT EXISTS bridge.run_transcripts (
    trace_id   text PRIMARY KEY REFERENCES bridge.traces ON DELETE CASCADE,
    task_id    text NOT NULL,
    attempt    int NOT NULL,
    items      jsonb NOT NULL,
    created_at timestamptz DEFAULT now()
);
