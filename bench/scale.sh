#!/usr/bin/env bash
# Production-sized tables: the same commands on large and on small tables, in one run.
#
#   bench/scale.sh [WORKSPACES] [SPANS]      (defaults 500 10000000: 1,000,000 tasks, 10M spans)
#
# Starts a throwaway PostgreSQL with two databases:
#   big:   reference-seed.sql with -v workspaces=WORKSPACES -v tasks_per_workspace=2000
#          (1,000,000 tasks, about 600,000 pending) and a ledger of SPANS spans (100,000 traces
#          of SPANS/100,000 spans, spread over 30 days), generated with INSERT … SELECT
#          generate_series after `bridge migrate` (so every row carries the cursor columns);
#   small: 3 workspaces × 1,000 tasks and a 10,000-span ledger, built the same way.
# Then, on each: `bridge exec --offline` (one tool-less agent) for the same number of tasks
# (tasks/s), one idle `bridge export` poll with the file exporter at the end of the ledger,
# one 1,000-span batch, `bridge verify --since 1h`, and on big the first and last backfill
# batch (1,000 tasks each). BRIDGE=path overrides the binary (default: release build).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh
WORKSPACES=${1:-500}
SPANS=${2:-10000000}
EXEC_TASKS=${EXEC_TASKS:-1500}
export PATH="/opt/swift/usr/bin:$PATH"
if [ -z "${BRIDGE:-}" ]; then
  [ -x .build/release/bridge ] || swift build -c release --product bridge >/dev/null
  BRIDGE="$PWD/.build/release/bridge"
fi
WORK=$(mktemp -d /tmp/bridge-scale.XXXXXX)
cleanup() { pg_stop "$WORK"; rm -rf "$WORK"; }
trap cleanup EXIT
pg_start "$WORK" >/dev/null
MAP="$WORK/mappings"; mkdir -p "$MAP"
cp mappings/bridge.yaml "$MAP/"
cat > "$MAP/agents.yaml" <<'YAML'
version: 1
agents:
  - name: Project Manager
    match: Project Manager
    instructions: Answer the task.
    model: gpt-4.1
YAML
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo), $(uname -sr); PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync off); shared with other builds: load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u +%Y-%m-%dT%H:%MZ)"

build() {  # name workspaces tasks_per_workspace spans
  local name=$1 ws=$2 tpw=$3 spans=$4 traces
  traces=$(( spans / 100 < 100000 ? spans / 100 : 100000 )); [ "$traces" -ge 1 ] || traces=1
  psql "$PG_URL" -X -q -c "CREATE DATABASE $name"
  local db="postgres://postgres@127.0.0.1:$PG_PORT/$name"
  psql "$db" -X -q -v ON_ERROR_STOP=1 -f examples/reference-schema.sql
  psql "$db" -X -q -v ON_ERROR_STOP=1 -v workspaces="$ws" -v tasks_per_workspace="$tpw" -f examples/reference-seed.sql
  "$BRIDGE" migrate --database-url "$db" --mappings "$MAP" >/dev/null
  psql "$db" -X -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO bridge.traces (trace_id, workflow_name, task_id, metadata, started_at, ended_at, created_at)
SELECT 'trace_' || lpad(to_hex(g), 32, '0'), 'bench', 'hist-' || g, '{}'::jsonb,
       now() - interval '30 days' + (g * (interval '30 days' / $traces)),
       now() - interval '30 days' + (g * (interval '30 days' / $traces)) + interval '2 seconds',
       now() - interval '30 days' + (g * (interval '30 days' / $traces))
FROM generate_series(1, $traces) g;
INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data, created_at)
SELECT 'span_' || lpad(to_hex(g), 24, '0'), 'trace_' || lpad(to_hex(1 + g % $traces), 32, '0'), NULL,
       now() - interval '30 days' + ((1 + g % $traces) * (interval '30 days' / $traces)),
       now() - interval '30 days' + ((1 + g % $traces) * (interval '30 days' / $traces)) + interval '1 second',
       jsonb_build_object('type', 'function', 'name', 'tool', 'input', '{}', 'output', 'ok'),
       now() - interval '30 days' + ((1 + g % $traces) * (interval '30 days' / $traces))
FROM generate_series(1, $spans) g;
ANALYZE;
SQL
  echo "$db"
}

BIG=$(build big "$WORKSPACES" 2000 "$SPANS")
SMALL=$(build small 3 1000 10000)
echo "built: big $(psql "$BIG" -XAtc "SELECT count(*) FROM tasks") tasks, $(psql "$BIG" -XAtc "SELECT count(*) FROM bridge.spans") spans; small $(psql "$SMALL" -XAtc "SELECT count(*) FROM tasks") tasks, $(psql "$SMALL" -XAtc "SELECT count(*) FROM bridge.spans") spans"

declare -A R
for which in big small; do
  db=$([ $which = big ] && echo "$BIG" || echo "$SMALL")
  # exec: the same number of tasks on each.
  line=$("$BRIDGE" exec --offline --quiet --concurrency 16 --limit "$EXEC_TASKS" --database-url "$db" --mappings "$MAP" 2>&1 | tail -1)
  n=$(psql "$db" -XAtc "SELECT count(*) FROM task_executions WHERE openai_trace_id IS NOT NULL")
  el=$(sed -E 's/.*elapsed ([0-9.]+)s.*/\1/' <<<"$line")
  R[$which.exec]=$(awk -v n="$n" -v e="$el" 'BEGIN {printf "%.1f", n / e}')
  # export: the file exporter's cursor at the end of the ledger (as after delivering it all;
  # writing 10M spans to a file first would only measure the disk), then an idle poll, then a
  # 1,000-span batch.
  psql "$db" -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO bridge.exporters (name, target, span_txid, span_seq, trace_txid, trace_seq, legacy_done)
    SELECT 'file', '$WORK/$which.jsonl', s.txid, s.seq, t.txid, t.seq, true
    FROM (SELECT txid, seq FROM bridge.spans ORDER BY txid DESC, seq DESC LIMIT 1) s,
         (SELECT txid, seq FROM bridge.traces ORDER BY txid DESC, seq DESC LIMIT 1) t
    ON CONFLICT (name) DO UPDATE SET span_txid = EXCLUDED.span_txid, span_seq = EXCLUDED.span_seq,
      trace_txid = EXCLUDED.trace_txid, trace_seq = EXCLUDED.trace_seq, legacy_done = true"
  t0=$(now); "$BRIDGE" export --quiet --database-url "$db" --trace-file "$WORK/$which.jsonl" >/dev/null 2>&1 || true; t1=$(now)
  R[$which.idle]=$(secs "$t0" "$t1")
  psql "$db" -X -q -c "INSERT INTO bridge.traces (trace_id, workflow_name, started_at, ended_at) VALUES ('trace_fresh', 'bench', now(), now());
    INSERT INTO bridge.spans (span_id, trace_id, started_at, ended_at, span_data)
    SELECT 'span_fresh_' || g, 'trace_fresh', now(), now(), '{\"type\": \"custom\", \"name\": \"x\", \"data\": {}}' FROM generate_series(1, 1000) g"
  t0=$(now); "$BRIDGE" export --quiet --database-url "$db" --trace-file "$WORK/$which.jsonl" >/dev/null 2>&1 || true; t1=$(now)
  R[$which.batch]=$(secs "$t0" "$t1")
  t0=$(now); "$BRIDGE" verify --since 1h --format json --database-url "$db" --mappings "$MAP" >/dev/null 2>&1 || true; t1=$(now)
  R[$which.verify]=$(secs "$t0" "$t1")
done

# backfill on big: the first batch, then (everything else marked traced) the last batch.
t0=$(now); "$BRIDGE" exec --backfill --limit 1000 --batch-size 1000 --database-url "$BIG" --mappings "$MAP" >/dev/null 2>&1; t1=$(now)
R[bf.first]=$(secs "$t0" "$t1")
psql "$BIG" -X -q -c "UPDATE tasks SET openai_trace_id = 'trace_elsewhere' WHERE id IN (
  SELECT id FROM tasks WHERE openai_trace_id IS NULL AND status IN ('completed', 'failed') ORDER BY id OFFSET 1000)"
psql "$BIG" -X -q -c "VACUUM ANALYZE tasks"
t0=$(now); "$BRIDGE" exec --backfill --limit 1000 --batch-size 1000 --database-url "$BIG" --mappings "$MAP" >/dev/null 2>&1; t1=$(now)
R[bf.last]=$(secs "$t0" "$t1")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo
echo "| measure | large | small | large / small | target |"
echo "|---|---:|---:|---:|---|"
echo "| exec tasks/s ($EXEC_TASKS tasks, --concurrency 16) | ${R[big.exec]} | ${R[small.exec]} | $(ratio "${R[big.exec]}" "${R[small.exec]}") | ≥ 0.8 |"
echo "| idle export poll, bridge export (s) | ${R[big.idle]} | ${R[small.idle]} | $(ratio "${R[big.idle]}" "${R[small.idle]}") | ≤ 1.5 |"
echo "| one 1,000-span batch, bridge export (s) | ${R[big.batch]} | ${R[small.batch]} | $(ratio "${R[big.batch]}" "${R[small.batch]}") | ≤ 1.5 |"
echo "| bridge verify --since 1h (s) | ${R[big.verify]} | ${R[small.verify]} | $(ratio "${R[big.verify]}" "${R[small.verify]}") | |"
echo "| backfill batch of 1,000: last / first (s) | ${R[bf.last]} | ${R[bf.first]} | $(ratio "${R[bf.last]}" "${R[bf.first]}") | |"
