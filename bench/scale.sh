#!/usr/bin/env bash
# Production-sized tables (issue 10): the same commands on small and on production-sized
# tables, in one run, on one throwaway cluster.
#
#   bench/scale.sh            1,000,000 tasks and a 10,000,000-span ledger against 3,000 tasks
#
# Sizes (environment): LARGE_WORKSPACES=500 LARGE_TASKS_PER_WORKSPACE=2000 (1,000,000 tasks),
# SMALL_WORKSPACES=3 SMALL_TASKS_PER_WORKSPACE=1000 (3,000 tasks), LEDGER_SPANS=10000000 (the
# large ledger, reached with synthetic delivered history), EXEC_TASKS=800 (tasks run by each
# exec; the small table has about 1,800 pending, enough for two), PRUNE_DAYS=95 (prune
# --older-than; the synthetic history spans 10 to 100 days ago).
# BRIDGE=path overrides the binary (default: release build, built if missing).
#
# Reports, each large against small:
#   1. bridge exec --offline --concurrency 16 --limit EXEC_TASKS (one tool-less agent per role):
#      tasks/s. Target: large >= 0.8 x small.
#   2. bridge exec --backfill of every historical task: seconds per batch, first against last
#      (each batch is one transaction, so its traces share one created_at).
#   3. bridge verify --since 1h: seconds.
#   4. bench/export-scale.sh, if present, for the export poll and batch figures.
#   5. bridge prune --older-than PRUNE_DAYS d on the large ledger: spans/s.
. "$(dirname "$0")/lib.sh"
LARGE_WORKSPACES=${LARGE_WORKSPACES:-500}
LARGE_TASKS_PER_WORKSPACE=${LARGE_TASKS_PER_WORKSPACE:-2000}
SMALL_WORKSPACES=${SMALL_WORKSPACES:-3}
SMALL_TASKS_PER_WORKSPACE=${SMALL_TASKS_PER_WORKSPACE:-1000}
LEDGER_SPANS=${LEDGER_SPANS:-10000000}
EXEC_TASKS=${EXEC_TASKS:-800}
PRUNE_DAYS=${PRUNE_DAYS:-95}
bench_start scale
MAP="$WORK/mappings"
noop_mappings "$MAP" "Project Manager" Researcher "Content Specialist"

machine_line

setup() {
  local db=$1 ws=$2 tpw=$3 t0
  t0=$(now)
  migrated_db "$db" "$ws" "$tpw"
  q "$db" -c "VACUUM ANALYZE"
  log "$db: $(q "$db" -c "SELECT count(*) FROM tasks") tasks seeded and migrated in $(since "$t0") s"
}

# Synthetic delivered history: traces of 10 spans each, started 10 to 100 days ago, delivered
# to exporter 'file', until the ledger holds LEDGER_SPANS spans.
grow_ledger() {
  local db=$1 have traces t0
  t0=$(now)
  have=$(q "$db" -c "SELECT count(*) FROM bridge.spans")
  traces=$(( (LEDGER_SPANS - have) / 10 ))
  [ "$traces" -gt 0 ] || return 0
  q "$db" <<SQL
INSERT INTO bridge.exporters (name, target) VALUES ('file', 'bench') ON CONFLICT (name) DO UPDATE SET last_seen_at = now();
INSERT INTO bridge.traces (trace_id, workflow_name, started_at, ended_at, created_at)
SELECT 'trace_' || lpad(to_hex(g), 32, '0'), 'history', t, t + interval '20 seconds', t
FROM generate_series(1, $traces) g, LATERAL (SELECT now() - interval '100 days' + (g::float8 / $traces) * interval '90 days' AS t) x;
INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data, created_at)
SELECT 'span_' || left(md5(g::text || '.' || j), 24), 'trace_' || lpad(to_hex(g), 32, '0'), NULL, t, t + interval '2 seconds',
       jsonb_build_object('type', 'function', 'name', 'store_data', 'input', '{"workspace_id":"x"}', 'output', 'true', 'mcp_data', NULL),
       t + interval '2 seconds'
FROM generate_series(1, $traces) g, generate_series(1, 10) j,
     LATERAL (SELECT now() - interval '100 days' + (g::float8 / $traces) * interval '90 days' AS t) x;
INSERT INTO bridge.trace_deliveries (exporter, trace_id, status, delivered_at)
SELECT 'file', trace_id, 'delivered', started_at + interval '30 seconds' FROM bridge.traces WHERE workflow_name = 'history';
INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status, delivered_at)
SELECT 'file', s.span_id, s.trace_id, 'delivered', s.created_at + interval '1 second'
FROM bridge.spans s JOIN bridge.traces t USING (trace_id) WHERE t.workflow_name = 'history';
VACUUM ANALYZE;
SQL
  log "$db: ledger grown to $(q "$db" -c "SELECT count(*) FROM bridge.spans") spans in $(since "$t0") s"
}

exec_rate() {
  local db=$1 line elapsed n
  q "$db" -c "CHECKPOINT"
  line=$("$BRIDGE" exec --offline --quiet --concurrency 16 --limit "$EXEC_TASKS" --database-url "$(url "$db")" --mappings "$MAP")
  elapsed=$(sed -E 's/.*elapsed ([0-9.]+)s.*/\1/' <<<"$line")
  n=$(sed -E 's/.*completed ([0-9]+),.*/\1/' <<<"$line")
  [ "$n" -ge "$EXEC_TASKS" ] || { echo "exec on $db completed only $n of $EXEC_TASKS tasks: $line" >&2; exit 1; }
  awk -v n="$n" -v e="$elapsed" 'BEGIN { printf "%.1f", n / e }'
}

# Seconds of the first and of the last full batch of a backfill, from the traces' created_at
# (now() of each batch's transaction): the gap to the next batch's start.
backfill_batches() {
  local db=$1 t0
  t0=$(now)
  "$BRIDGE" exec --backfill --quiet --database-url "$(url "$db")" --mappings "$MAP" >/dev/null
  local total; total=$(since "$t0")
  q "$db" -F ' ' -c "
    WITH b AS (SELECT created_at, count(*) AS n FROM bridge.traces WHERE workflow_name <> 'history' GROUP BY 1),
         g AS (SELECT created_at, n, lead(created_at) OVER (ORDER BY created_at) - created_at AS d FROM b)
    SELECT count(*) + 1,
           round(extract(epoch FROM (SELECT d FROM g WHERE d IS NOT NULL ORDER BY created_at LIMIT 1))::numeric, 2),
           round(extract(epoch FROM (SELECT d FROM g WHERE d IS NOT NULL ORDER BY created_at DESC LIMIT 1))::numeric, 2)
    FROM g WHERE d IS NOT NULL" | awk -v t="$total" '{ print $1, $2, $3, t }'
}

verify_since() {
  local db=$1 t0
  t0=$(now)
  "$BRIDGE" verify --since 1h --format json --database-url "$(url "$db")" --mappings "$MAP" >/dev/null || true
  since "$t0"
}

log "seeding small ($SMALL_WORKSPACES x $SMALL_TASKS_PER_WORKSPACE) and large ($LARGE_WORKSPACES x $LARGE_TASKS_PER_WORKSPACE) task tables..."
setup small "$SMALL_WORKSPACES" "$SMALL_TASKS_PER_WORKSPACE"
setup large "$LARGE_WORKSPACES" "$LARGE_TASKS_PER_WORKSPACE"

log "backfill of every historical task, small then large..."
read -r SB_N SB_FIRST SB_LAST SB_T <<<"$(backfill_batches small)"
read -r LB_N LB_FIRST LB_LAST LB_T <<<"$(backfill_batches large)"
log "growing the large ledger to $LEDGER_SPANS spans..."
grow_ledger large
LARGE_SPANS=$(q large -c "SELECT count(*) FROM bridge.spans")

log "exec --limit $EXEC_TASKS, small then large, twice each..."
S1=$(exec_rate small); L1=$(exec_rate large); S2=$(exec_rate small); L2=$(exec_rate large)
SMALL_SPANS=$(q small -c "SELECT count(*) FROM bridge.spans")
LARGE_SPANS=$(q large -c "SELECT count(*) FROM bridge.spans")

log "verify --since 1h..."
VS=$(verify_since small); VL=$(verify_since large)

log "prune --older-than ${PRUNE_DAYS}d on the large ledger..."
t0=$(now)
PRUNE_LINE=$("$BRIDGE" prune --older-than "${PRUNE_DAYS}d" --quiet --database-url "$(url large)")
PRUNE_T=$(since "$t0")
PRUNED_SPANS=$(sed -E 's/.*removed [0-9]+ traces, ([0-9]+) spans.*/\1/' <<<"$PRUNE_LINE")

printf '\n| measure | small | large | large / small |\n|---|---|---|---|\n'
printf '| tasks in the table | %s | %s | |\n' "$(q small -c "SELECT count(*) FROM tasks")" "$(q large -c "SELECT count(*) FROM tasks")"
printf '| spans in the ledger | %s | %s | |\n' "$SMALL_SPANS" "$LARGE_SPANS"
printf '| exec tasks/s, run 1 | %s | %s | %s |\n' "$S1" "$L1" "$(ratio "$L1" "$S1")"
printf '| exec tasks/s, run 2 | %s | %s | %s |\n' "$S2" "$L2" "$(ratio "$L2" "$S2")"
printf '| backfill: batches, total s | %s, %s | %s, %s | |\n' "$SB_N" "$SB_T" "$LB_N" "$LB_T"
printf '| backfill: first batch s, last batch s | %s, %s | %s, %s | last/first (large) %s |\n' \
  "$SB_FIRST" "$SB_LAST" "$LB_FIRST" "$LB_LAST" "$(ratio "$LB_LAST" "$LB_FIRST")"
printf '| verify --since 1h (s) | %s | %s | %s |\n' "$VS" "$VL" "$(ratio "$VL" "$VS")"
printf '| prune --older-than %sd (large): spans, s, spans/s | | %s, %s, %s | |\n' "$PRUNE_DAYS" "$PRUNED_SPANS" "$PRUNE_T" \
  "$(awk -v n="$PRUNED_SPANS" -v t="$PRUNE_T" 'BEGIN { printf "%.0f", n / t }')"
echo "prune: $PRUNE_LINE"

if [ -x bench/export-scale.sh ]; then
  log "export: bench/export-scale.sh..."
  BRIDGE="$BRIDGE" bench/export-scale.sh
fi
