#!/usr/bin/env bash
# Benchmark: `bridge migrate` on a busy 1,000,000-row tasks table.
#
# Builds the reference schema with ROWS tasks (default 1,000,000), starts a writer (pgbench,
# 4 clients) that keeps inserting and updating tasks, and applies migrations/ while it runs.
# Reports the longest time any single writer statement took during the migration (how long a
# lock blocked the writer) and the migration's total time. The same is then done, on a fresh
# copy, by the naive peer: each migration file run with `psql -1 -f` (what dbmate and
# golang-migrate do: the whole file in one transaction) with the concurrent index builds
# written as plain CREATE INDEX, since CONCURRENTLY cannot run inside a transaction.
#
#   bench/migrate-live.sh [ROWS]
# Needs: a built bridge (swift build -c release), PostgreSQL server binaries, pgbench.
. "$(dirname "$0")/lib.sh"
ROWS=${1:-1000000}
bench_start migrate
PGBENCH="$PG_BIN/pgbench"

setup_db() { # $1 = database name
  reference_db "$1" 10 10
  q "$1" <<SQL
INSERT INTO tasks (workspace_id, name, description, status, priority, context_data)
SELECT (SELECT id FROM workspaces ORDER BY id LIMIT 1 OFFSET g % 10), 'bulk ' || g, 'bulk task ' || g,
       (ARRAY['pending','completed','failed'])[1 + g % 3], (ARRAY['low','medium','high'])[1 + g % 3],
       jsonb_build_object('n', g)
FROM generate_series(1, $ROWS) g;
CREATE TABLE bench_ids AS SELECT row_number() OVER () AS n, id FROM tasks;
CREATE UNIQUE INDEX ON bench_ids (n);
ANALYZE;
SQL
  url "$1"
}

cat > "$WORK/writer.sql" <<SQL
\set n random(1, $ROWS)
UPDATE tasks SET iteration_count = iteration_count + 1 WHERE id = (SELECT id FROM bench_ids WHERE n = :n);
INSERT INTO tasks (workspace_id, name, status) SELECT workspace_id, 'writer', 'pending' FROM tasks WHERE id = (SELECT id FROM bench_ids WHERE n = :n);
SQL

# run_with_writer URL LABEL COMMAND...: runs COMMAND while pgbench writes; prints "max_ms total_s"
run_with_writer() {
  local url=$1 label=$2; shift 2
  rm -f "$WORK"/pgbench_log.*
  (cd "$WORK" && exec "$PGBENCH" -n -c 4 -j 2 -T 600 -l -f writer.sql "$url" >"$WORK/pgbench.out" 2>&1) &
  local writer=$!
  sleep 3
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$WORK/$label.out" 2>&1 || { cat "$WORK/$label.out"; echo "$label failed" >&2; }
  t1=$(date +%s.%N)
  sleep 2
  kill -INT $writer 2>/dev/null || true; wait $writer 2>/dev/null || true
  local s_us e_us
  s_us=$(awk -v t="$t0" 'BEGIN{printf "%.0f", t*1000000}')
  e_us=$(awk -v t="$t1" 'BEGIN{printf "%.0f", t*1000000}')
  # pgbench log columns: client txno latency_us script epoch_s epoch_us (end time of each transaction)
  local max_ms
  max_ms=$(cat "$WORK"/pgbench_log.* | awk -v s="$s_us" -v e="$e_us" '
    { end_us = $5 * 1000000 + $6; start_us = end_us - $3;
      if (end_us >= s && start_us <= e + 1000000 && $3 > m) m = $3 }
    END { printf "%.1f", m / 1000 }')
  local total_s txns
  total_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}')
  txns=$(cat "$WORK"/pgbench_log.* | wc -l)
  echo "$max_ms $total_s $txns"
}

echo "bench: building two databases with $ROWS tasks each (this takes a while)..." >&2
URL_B=$(setup_db bench_bridge)
URL_P=$(setup_db bench_peer)

# The peer: each file in one transaction, CONCURRENTLY dropped (it cannot run in a transaction).
mkdir -p "$WORK/peer"
for f in migrations/*.sql; do
  # The placeholders' defaults (Placeholders.defaults): the reference schema's names.
  sed -E -e 's/\$\{tasks_table\}/tasks/g' -e 's/\$\{executions_table\}/task_executions/g' -e 's/\$\{tasks_key\}/id/g' \
      -e 's/\$\{(tasks|executions)_([a-z_]+)_column\}/\2/g' \
      -e 's/CONCURRENTLY //g' -e '/bridge:no-transaction/d' "$f" > "$WORK/peer/$(basename "$f")"
done
peer_migrate() { for f in "$WORK"/peer/*.sql; do psql "$URL_P" -X -q -1 -v ON_ERROR_STOP=1 -f "$f" || return 1; done; }

echo "bench: baseline (writer alone, 2 s, no migration)..." >&2
read -r N_MAX N_TOTAL N_TX < <(run_with_writer "$URL_B" baseline sleep 2)
echo "bench: bridge migrate under write load..." >&2
read -r B_MAX B_TOTAL B_TX < <(run_with_writer "$URL_B" bridge "$BRIDGE" migrate --database-url "$URL_B")
echo "bench: naive peer (psql -1 -f per file) under write load..." >&2
read -r P_MAX P_TOTAL P_TX < <(run_with_writer "$URL_P" peer peer_migrate)

INVALID=$(psql "$URL_B" -X -A -t -c "SELECT count(*) FROM pg_index WHERE NOT indisvalid")
printf '\n| tool | rows | longest writer stall (ms) | migration time (s) | writer txns |\n|---|---|---|---|---|\n'
printf '| no migration (writer alone) | %s | %s | %s | %s |\n' "$ROWS" "$N_MAX" "$N_TOTAL" "$N_TX"
printf '| bridge migrate | %s | %s | %s | %s |\n' "$ROWS" "$B_MAX" "$B_TOTAL" "$B_TX"
printf '| psql -1 -f (dbmate-style) | %s | %s | %s | %s |\n' "$ROWS" "$P_MAX" "$P_TOTAL" "$P_TX"
awk -v b="$B_MAX" -v p="$P_MAX" 'BEGIN{ if (b > 0) printf "\nstall ratio peer/bridge: %.1fx\n", p / b }'
echo "invalid indexes left by bridge: $INVALID"
awk -v b="$B_MAX" 'BEGIN{ if (b > 100) { print "TARGET MISSED: writer stalled > 100 ms"; exit 1 } else print "target met: writer never stalled > 100 ms" }'
