#!/usr/bin/env bash
# Benchmark: `bridge exec --backfill` on 40,000 historical tasks, against one bare SQL insert
# of the same number of span rows.
#
# Loads the reference schema and seed with WORKSPACES x TASKS tasks (default 50 x 2,000 =
# 100,000 tasks, of which 40,000 are completed or failed, with their task_executions and
# execution_logs rows), applies migrations/, then times:
#   1. bridge exec --backfill (release build), which rebuilds every historical trace;
#   2. the floor: ONE bare `INSERT … SELECT` of the same number of span rows into a copy of
#      bridge.spans (same columns, primary key and trace index; no foreign key), each row a
#      constant-shaped span built with jsonb_build_object from generate_series.
# Prints a table and the ratio (target: at most 10x).
#
#   bench/backfill.sh [WORKSPACES] [TASKS_PER_WORKSPACE]
# Needs: PostgreSQL server binaries; builds bridge in release mode if needed.
. "$(dirname "$0")/lib.sh"
WORKSPACES=${1:-50}
TASKS=${2:-2000}
bench_start backfill
URL=$(url bench)

log "seeding $WORKSPACES workspaces x $TASKS tasks..."
migrated_db bench "$WORKSPACES" "$TASKS"
q bench -c "VACUUM ANALYZE"
HIST=$(q bench -c "SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed')")
LOGS=$(q bench -c "SELECT count(*) FROM execution_logs WHERE type = 'tool_call'")

log "bridge exec --backfill ($HIST historical tasks)..."
t0=$(now)
"$BRIDGE" exec --backfill --database-url "$URL" --mappings mappings >"$WORK/backfill.out" 2>"$WORK/backfill.err" \
  || { cat "$WORK/backfill.err" >&2; exit 1; }
B_S=$(since "$t0")
SPANS=$(q bench -c "SELECT count(*) FROM bridge.spans")
TRACED=$(q bench -c "SELECT count(*) FROM tasks WHERE openai_trace_id IS NOT NULL")
AGAIN=$("$BRIDGE" exec --backfill --database-url "$URL" --mappings mappings 2>/dev/null)

# bare_insert ID_EXPR: ONE INSERT ... SELECT of $SPANS rows into a fresh copy of bridge.spans; prints seconds.
bare_insert() {
  q bench -c "DROP TABLE IF EXISTS bench_spans" -c "CREATE TABLE bench_spans (LIKE bridge.spans INCLUDING DEFAULTS INCLUDING INDEXES)" -c "CHECKPOINT"
  q bench <<SQL | awk '/^Time:/ {printf "%.2f", $2 / 1000}'
\\timing on
INSERT INTO bench_spans (span_id, trace_id, parent_id, started_at, ended_at, span_data, error)
SELECT 'span_' || $1, 'trace_' || left(md5((g / 5)::text), 32), NULL, now() - interval '30 seconds', now(),
       jsonb_build_object('type', 'function', 'name', 'store_data', 'input', '{"workspace_id":"x"}',
                          'output', 'true', 'mcp_data', NULL), NULL
FROM generate_series(1, $SPANS) AS g;
SQL
}
echo "bench: one bare INSERT ... SELECT of $SPANS span rows (random ids, as real span ids are)..." >&2
P_S=$(bare_insert "left(md5(g::text), 24)")
echo "bench: the same with sequential ids (right-edge B-tree inserts, the most favourable case)..." >&2
PSEQ_S=$(bare_insert "lpad(to_hex(g), 24, '0')")

printf '\n| step | tasks | span rows | time (s) |\n|---|---|---|---|\n'
printf '| bridge exec --backfill (release) | %s | %s | %s |\n' "$TRACED" "$SPANS" "$B_S"
printf '| one bare INSERT ... SELECT into a copy of bridge.spans, random span ids | - | %s | %s |\n' "$SPANS" "$P_S"
printf '| the same, sequential span ids | - | %s | %s |\n' "$SPANS" "$PSEQ_S"
echo
echo "historical tasks: $HIST, traced: $TRACED, tool_call logs: $LOGS"
echo "second run: $AGAIN"
RATIO=$(awk -v b="$B_S" -v p="$P_S" 'BEGIN{ printf "%.1f", b / p }')
echo "ratio backfill / bare insert: ${RATIO}x (random ids); $(awk -v b="$B_S" -v p="$PSEQ_S" 'BEGIN{ printf "%.1f", b / p }')x (sequential ids)"
awk -v r="$RATIO" 'BEGIN{ if (r > 10) { print "TARGET MISSED: more than 10x the bare insert"; exit 1 } else print "target met: at most 10x the bare insert" }'
