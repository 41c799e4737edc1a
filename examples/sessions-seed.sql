-- Conversations for the sessions demo (mappings/sessions.yaml), loaded after reference-seed.sql
-- (which stays byte for byte the shared fixture). Each workspace gets one conversation, with an
-- earlier exchange written by the application's chat UI, and two of its pending Researcher
-- tasks continue it: their context_data names the conversation, so bridge runs them one after
-- the other and the second sees the first's exchange.
--   psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sessions-seed.sql
BEGIN;
INSERT INTO conversations (workspace_id, chat_id, title)
SELECT w.id, 'chat-' || w.id, 'Launch planning: ' || w.name FROM workspaces w;

INSERT INTO conversation_messages (conversation_id, message_id, role, content, created_at)
SELECT c.id, 'ui-' || c.id || '-' || m.n, m.role, m.content, now() - interval '1 day' + m.n * interval '1 second'
FROM conversations c
CROSS JOIN (VALUES
  (1, 'user', 'We launch next month. Keep every deliverable short and friendly.'),
  (2, 'assistant', 'Noted: short, friendly deliverables for next month''s launch.')
) AS m(n, role, content);

-- The two oldest pending Researcher tasks of each workspace (same priority), the follow-up one
-- second younger so that the claim order is the conversation's order.
WITH picked AS (
  SELECT t.id, c.id AS conversation_id,
         row_number() OVER (PARTITION BY t.workspace_id ORDER BY t.created_at, t.name) AS n
  FROM tasks t JOIN conversations c ON c.workspace_id = t.workspace_id
  WHERE t.status = 'pending' AND t.assigned_to_role = 'Researcher'
)
UPDATE tasks t
SET context_data = coalesce(t.context_data, '{}') || jsonb_build_object('conversation_id', p.conversation_id),
    created_at = t.created_at + (p.n - 1) * interval '1 second'
FROM picked p WHERE p.id = t.id AND p.n <= 2;
COMMIT;
