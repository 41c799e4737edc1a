-- OPT-IN: wake `bridge exec --watch` workers with LISTEN/NOTIFY when tasks become pending.
-- Apply after the main migrations:  bridge migrate --dir migrations/optional
-- Without it, --watch polls every 2 s; with it, workers pick up new tasks at once and poll
-- only as a backstop (every 20 s).
--
-- Statement-level triggers with a constant, empty payload on channel `bridge_tasks`: a
-- statement notifies at most once, and identical notifications fold into one per
-- transaction, so bulk inserts cost one notification. The trigger only notifies when a row
-- of the statement has the pending status (arguments: status column, pending value; edit
-- them if your mappings use other names).
CREATE OR REPLACE FUNCTION bridge.notify_tasks_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    found boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM bridge_new_rows WHERE %I::text = $1)', TG_ARGV[0])
        INTO found USING TG_ARGV[1];
    IF found THEN
        PERFORM pg_notify('bridge_tasks', '');
    END IF;
    RETURN NULL;
END;
$$;

-- Transition tables need one trigger per event.
DROP TRIGGER IF EXISTS bridge_notify_insert ON ${tasks_table};
CREATE TRIGGER bridge_notify_insert AFTER INSERT ON ${tasks_table}
    REFERENCING NEW TABLE AS bridge_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bridge.notify_tasks_pending('status', 'pending');
DROP TRIGGER IF EXISTS bridge_notify_update ON ${tasks_table};
CREATE TRIGGER bridge_notify_update AFTER UPDATE ON ${tasks_table}
    REFERENCING NEW TABLE AS bridge_new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bridge.notify_tasks_pending('status', 'pending');
