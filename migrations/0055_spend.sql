-- Spend (issue 21): one row per model call bridge makes, with its tokens and its cost in USD
-- from the mappings' `pricing` (NULL when the model has no price: unknown, never zero), and the
-- running total per group (the task's `source.group_column`, e.g. the workspace) that budgets
-- compare with the application's own limit. `bridge cost` reads the calls by time.
CREATE TABLE IF NOT EXISTS bridge.model_calls (
    id            bigserial PRIMARY KEY,
    created_at    timestamptz NOT NULL DEFAULT now(),
    task_key      text NOT NULL,
    attempt       integer NOT NULL,
    group_key     text,
    agent         text NOT NULL,
    model         text NOT NULL,
    input_tokens  bigint NOT NULL,
    cached_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL,
    cost_usd      numeric
);

CREATE INDEX IF NOT EXISTS model_calls_created_at ON bridge.model_calls (created_at);

CREATE TABLE IF NOT EXISTS bridge.group_spend (
    group_key      text PRIMARY KEY,
    spent_usd      numeric NOT NULL DEFAULT 0,
    unpriced_calls bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
