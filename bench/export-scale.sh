#!/usr/bin/env bash
# Export at ledger scale (issue 10): an idle export poll and a 1,000-span batch on a small
# ledger against a large one, plus `bridge verify --since 1h` on both, in one run, on its own
# throwaway cluster.
#
#   bench/export-scale.sh        10,000 spans against 1,000,000 spans
#
# Sizes (environment): SMALL_SPANS=10000, LARGE_SPANS=1000000 (10000000 for the issue's
# target; generation takes a few minutes per 10M). IDLE_RUNS=7. BRIDGE=path overrides the
# binary (default: release build, built if missing). bench/scale.sh calls this script.
#
# Each ledger is synthetic history written straight into bridge.spans with generate_series,
# 10,000 spans per transaction (so rows carry realistic, distinct txids), traces of 10 spans,
# every item delivered to exporter 'file', whose position is at the end: a caught-up exporter.
# Reported, large against small (ratio), from PostgreSQL's own statement durations
# (log_min_duration_statement = 0) and from the wall clock of whole `bridge export` runs:
#   1. idle poll: the poll statement (median of IDLE_RUNS runs of `bridge export`).
#   2. 1,000-span batch: 1,000 new spans committed, then one `bridge export` delivers them:
#      the poll statements' total, and the run's wall time.
#   3. bridge verify --since 1h (the last hour holds 1,000 spans on both).
. "$(dirname "$0")/lib.sh"
SMALL_SPANS=${SMALL_SPANS:-10000}
LARGE_SPANS=${LARGE_SPANS:-1000000}
IDLE_RUNS=${IDLE_RUNS:-7}
bench_start export
LOG="$WORK/server.log"
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# The durations (ms) of the export poll statements logged after line $1 of the server log.
polls_after() { tail -n +"$(( $1 + 1 ))" "$LOG" | grep -o 'duration: [0-9.]* ms  execute <unnamed>: WITH h AS MATERIALIZED' | awk '{ print $2 }'; }
lines() { wc -l < "$LOG"; }

machine_line

setup() {
  local db=$1 spans=$2 t0 chunks
  t0=$(now)
  migrated_db "$db" 1 20
  chunks=$(( (spans + 9999) / 10000 ))
  # History from 100 days ago up to 2 hours ago; 10,000 spans (1,000 traces) per transaction.
  q "$db" <<SQL
DO \$\$ BEGIN
  FOR c IN 0..$(( chunks - 1 )) LOOP
    INSERT INTO bridge.traces (trace_id, workflow_name, started_at, ended_at)
    SELECT 'trace_' || lpad(to_hex(g), 32, '0'), 'history', t, t + interval '20 seconds'
    FROM generate_series(c * 1000 + 1, c * 1000 + 1000) g,
         LATERAL (SELECT now() - interval '100 days' + (g::float8 / ($chunks * 1000)) * (interval '100 days' - interval '2 hours') AS t) x;
    INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data)
    SELECT 'span_' || lpad(to_hex(g), 24, '0'), 'trace_' || lpad(to_hex((g - 1) / 10 + 1), 32, '0'), NULL, tr.started_at, tr.ended_at,
           jsonb_build_object('type', 'custom', 'name', 'step', 'data', jsonb_build_object('n', g))
    FROM generate_series(c * 10000 + 1, c * 10000 + 10000) g
    JOIN bridge.traces tr ON tr.trace_id = 'trace_' || lpad(to_hex((g - 1) / 10 + 1), 32, '0');
    COMMIT;
  END LOOP;
END \$\$;
INSERT INTO bridge.exporters (name, target) VALUES ('file', 'bench');
INSERT INTO bridge.trace_deliveries (exporter, trace_id, status) SELECT 'file', trace_id, 'delivered' FROM bridge.traces;
INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status) SELECT 'file', span_id, trace_id, 'delivered' FROM bridge.spans;
INSERT INTO bridge.export_positions (exporter, trace_txid, span_txid) VALUES ('file', pg_current_xact_id(), pg_current_xact_id());
SQL
  q "$db" -c "VACUUM ANALYZE"
  q "$db" -c "ALTER DATABASE $db SET log_min_duration_statement = 0"
  log "$db: $(q "$db" -c "SELECT count(*) FROM bridge.spans") spans in $(q "$db" -c "SELECT count(*) FROM bridge.traces") traces, built in $(ms_since "$t0") ms"
}

export_once() { "$BRIDGE" export --quiet --database-url "$(url "$1")" --exporter file --trace-file "$WORK/$1.jsonl" >/dev/null; }

# Idle: the exporter is caught up. Prints "poll_ms wall_ms" (medians).
idle() {
  local db=$1 before t0 walls=""
  export_once "$db"   # warm-up
  before=$(lines)
  for _ in $(seq 1 "$IDLE_RUNS"); do
    t0=$(now); export_once "$db"; walls+="$(ms_since "$t0")"$'\n'
  done
  echo "$(polls_after "$before" | median) $(printf '%s' "$walls" | median)"
}

# 1,000 new spans in one transaction (one trace, ended within the last hour), then one export
# run. Prints "poll_total_ms wall_ms delivered".
batch() {
  local db=$1 before t0 wall sent
  q "$db" <<'SQL'
BEGIN;
INSERT INTO bridge.traces (trace_id, workflow_name, started_at, ended_at) VALUES ('trace_' || md5('bench-batch'), 'fresh', now() - interval '10 minutes', now());
INSERT INTO bridge.spans (span_id, trace_id, started_at, ended_at, span_data)
SELECT 'span_fresh' || lpad(g::text, 14, '0'), 'trace_' || md5('bench-batch'), now() - interval '10 minutes', now(),
       jsonb_build_object('type', 'custom', 'name', 'fresh', 'data', jsonb_build_object('n', g))
FROM generate_series(1, 1000) g;
COMMIT;
SQL
  : > "$WORK/$db.jsonl"
  before=$(lines)
  t0=$(now); export_once "$db"; wall=$(ms_since "$t0")
  sent=$(grep -c '"trace.span"' "$WORK/$db.jsonl" || true)
  echo "$(polls_after "$before" | awk '{ s += $1 } END { printf "%.3f", s }') $wall $sent"
}

verify_since() {
  local db=$1 t0
  t0=$(now)
  "$BRIDGE" verify --since 1h --format json --database-url "$(url "$db")" --mappings mappings >/dev/null 2>&1 || true
  ms_since "$t0"
}

log "building the ledgers ($SMALL_SPANS and $LARGE_SPANS spans)..."
setup small "$SMALL_SPANS"
setup large "$LARGE_SPANS"
log "idle polls..."
read -r IS IWS <<<"$(idle small)"; read -r IL IWL <<<"$(idle large)"
log "1,000-span batches..."
read -r BS BWS NS <<<"$(batch small)"; read -r BL BWL NL <<<"$(batch large)"
[ "$NS" = 1000 ] && [ "$NL" = 1000 ] || { echo "export-scale: expected 1000 spans delivered, got $NS (small) and $NL (large)" >&2; exit 1; }
log "verify --since 1h..."
VS=$(verify_since small); VL=$(verify_since large)

printf '\n| %s spans against %s | small | large | large / small |\n|---|---|---|---|\n' "$LARGE_SPANS" "$SMALL_SPANS"
printf '| idle export poll, statement (ms, median of %s) | %s | %s | %s |\n' "$IDLE_RUNS" "$IS" "$IL" "$(ratio "$IL" "$IS")"
printf '| idle `bridge export` run, wall (ms, median) | %s | %s | %s |\n' "$IWS" "$IWL" "$(ratio "$IWL" "$IWS")"
printf '| 1,000-span batch, poll statements (ms, total) | %s | %s | %s |\n' "$BS" "$BL" "$(ratio "$BL" "$BS")"
printf '| 1,000-span batch, `bridge export` run, wall (ms) | %s | %s | %s |\n' "$BWS" "$BWL" "$(ratio "$BWL" "$BWS")"
printf '| `bridge verify --since 1h`, wall (ms) | %s | %s | %s |\n' "$VS" "$VL" "$(ratio "$VL" "$VS")"
