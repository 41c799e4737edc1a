-- Sessions: conversation memory across runs, for mappings whose `sessions` section names no
-- table of the application's own. The Agents SDK's SQLAlchemySession layout, in schema bridge:
--   bridge.agent_sessions  one row per session (its key), with when it began and last grew
--   bridge.agent_messages  one row per item (the Responses API item as JSON text), appended
--                          in the transaction that finishes a completed task; the last
--                          `limit` items of a session are read through (session_id, created_at)
CREATE TABLE IF NOT EXISTS bridge.agent_sessions (
    session_id  text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS bridge.agent_messages (
    id            bigserial PRIMARY KEY,
    session_id    text NOT NULL REFERENCES bridge.agent_sessions (session_id) ON DELETE CASCADE,
    message_data  text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS idx_agent_messages_session_time ON bridge.agent_messages (session_id, created_at);
