-- OPT-IN: wake `bridge exec --watch` workers at once when an approval request is decided in the
-- application (its UI updates the row), so paused runs resume without waiting for the next poll.
-- Apply after the main migrations:  bridge migrate --dir migrations/optional
-- (`bridge approve` / `bridge reject` notify by themselves; this covers every other writer.)
--
-- A statement-level trigger with a constant, empty payload on channel `bridge_tasks` (the one
-- the workers listen on): a statement notifies at most once, only when one of its rows left
-- the pending status. The table, its status column and the pending value below are those of
-- the reference schema (`human_feedback_requests`, `status`, `pending`); edit them if your
-- `approvals` mapping names others. Nothing is installed when the table does not exist.
CREATE OR REPLACE FUNCTION bridge.notify_approval_decided() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    found boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM bridge_decided_rows WHERE %I::text IS DISTINCT FROM $1)', TG_ARGV[0])
        INTO found USING TG_ARGV[1];
    IF found THEN
        PERFORM pg_notify('bridge_tasks', '');
    END IF;
    RETURN NULL;
END;
$$;

DO $$
BEGIN
    IF to_regclass('human_feedback_requests') IS NOT NULL THEN
        DROP TRIGGER IF EXISTS bridge_notify_approval_decided ON human_feedback_requests;
        CREATE TRIGGER bridge_notify_approval_decided AFTER UPDATE ON human_feedback_requests
            REFERENCING NEW TABLE AS bridge_decided_rows
            FOR EACH STATEMENT EXECUTE FUNCTION bridge.notify_approval_decided('status', 'pending');
    END IF;
END;
$$;
