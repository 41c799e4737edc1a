#!/usr/bin/env bash
# Claim throughput and watch-mode pickup latency of `bridge exec` with leases.
#
#   bench/claim-throughput.sh [TASKS] [CONCURRENCY] [INSERTS]     (defaults 5000 16 20)
#
# Starts a throwaway PostgreSQL, loads the reference schema, applies migrations/ and the opt-in
# migrations/optional (NOTIFY trigger), and uses one tool-less agent with the offline model
# (no latency), so each task is: claim (lease) -> execution row -> 4 spans + trace -> transcript
# -> token-guarded finish. Reports:
#   1. throughput: TASKS pending tasks drained by one `bridge exec --concurrency C` (tasks/s);
#   2. pickup latency in --watch mode: INSERTS single-row inserts 0.5 s apart, latency =
#      execution started_at - task created_at (same machine clock), p50/p95, with the NOTIFY
#      trigger and then without it (polling every 2 s).
# BRIDGE=path overrides the binary (default: release build, built if missing).
. "$(dirname "$0")/lib.sh"
TASKS=${1:-5000}
CONC=${2:-16}
INSERTS=${3:-20}
bench_start claim
migrated_db bench
"$BRIDGE" migrate --database-url "$(url bench)" --dir migrations/optional >/dev/null
DB=$(url bench)
q bench -c "INSERT INTO workspaces (name, user_id) VALUES ('bench', gen_random_uuid())"
MAP="$WORK/mappings"
noop_mappings "$MAP" "Project Manager"

machine_line

# 1. Throughput.
psql "$DB" -X -q -c "INSERT INTO tasks (workspace_id, name, status) SELECT (SELECT id FROM workspaces LIMIT 1), 'bench ' || g, 'pending' FROM generate_series(1, $TASKS) g"
line=$("$BRIDGE" exec --offline --quiet --concurrency "$CONC" --database-url "$DB" --mappings "$MAP")
elapsed=$(sed -E 's/.*elapsed ([0-9.]+)s.*/\1/' <<<"$line")
done_n=$(psql "$DB" -X -A -t -c "SELECT count(*) FROM tasks WHERE status = 'completed'")
echo "throughput: $done_n tasks in ${elapsed}s at --concurrency $CONC = $(awk -v n="$done_n" -v e="$elapsed" 'BEGIN {printf "%.0f", n / e}') tasks/s  ($line)"

# 2. Pickup latency in watch mode.
pickup() {
  local label=$1
  spawn "$BRIDGE" exec --offline --quiet --watch --concurrency 4 --database-url "$DB" --mappings "$MAP" >"$WORK/watch.log" 2>&1
  sleep 2
  for _ in $(seq 1 "$INSERTS"); do
    psql "$DB" -X -q -c "INSERT INTO tasks (workspace_id, name, status) SELECT id, 'pickup $label', 'pending' FROM workspaces LIMIT 1"
    sleep 0.5
  done
  sleep 3
  reap "$SPAWNED"
  psql "$DB" -X -A -t -F ' ' -c "
    SELECT '$label: n=' || count(*) || ' p50=' || round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1) || ' ms'
           || ' p95=' || round((percentile_cont(0.95) WITHIN GROUP (ORDER BY ms))::numeric, 1) || ' ms'
           || ' max=' || round(max(ms)::numeric, 1) || ' ms'
    FROM (SELECT extract(epoch FROM e.started_at - t.created_at) * 1000 AS ms
          FROM tasks t JOIN task_executions e ON e.task_id = t.id WHERE t.name = 'pickup $label') x"
}
pickup "with NOTIFY"
psql "$DB" -X -q -c "DROP TRIGGER bridge_notify_insert ON tasks; DROP TRIGGER bridge_notify_update ON tasks"
pickup "polling only (2 s)"
