#!/usr/bin/env bash
# Benchmark: an idle `bridge trace tail --follow` and `bridge top` on an empty ledger and on
# one of 10,000,000 spans (1,000,000 traces, 1,000,000 tasks).
#
# Starts a throwaway PostgreSQL cluster with two databases, `bench_empty` and `bench_big`,
# each with the reference schema and `bridge migrate` applied. `bench_big` gets TASKS finished
# tasks (plus 1,000 pending), one trace per task and 10 spans per trace, written over the last
# 30 days (created_at up to an hour ago), set-based. Then, on each database:
#   - runs `bridge trace tail --follow -n 0` for SECONDS seconds with nothing arriving and reads
#     the CPU time used by the tail process and by its PostgreSQL backend from /proc;
#   - EXPLAIN (ANALYZE, BUFFERS) of the tail's poll statement (the forward read after the cursor);
#   - times `bridge top --json` (best of 5, wall, including process start and connect).
# Target: the idle follow costs no more on 10M spans than on the empty ledger.
#
#   bench/monitor-scale.sh [TASKS] [SECONDS]
# Needs: PostgreSQL server binaries, root or the cluster's owner (to read the backend's /proc).
. "$(dirname "$0")/lib.sh"
N=${1:-1000000}
SECONDS_IDLE=${2:-60}
bench_start monitor
TICK_MS=$(awk -v t="$(getconf CLK_TCK)" 'BEGIN{print 1000 / t}')

for db in bench_empty bench_big; do
  migrated_db "$db"
  q "$db" -c "INSERT INTO workspaces (name, user_id) VALUES ('w', gen_random_uuid())"
done
BIG=$(url bench_big)
EMPTY=$(url bench_empty)

log "generating $N tasks, $N traces and $((N * 10)) spans (set-based)..."
t0=$(now)
q bench_big -v n="$N" <<'SQL'
SET synchronous_commit = off;
SET maintenance_work_mem = '1GB';
INSERT INTO tasks (workspace_id, name, status, completed_at, openai_trace_id)
SELECT (SELECT id FROM workspaces LIMIT 1), 'bulk ' || g, 'completed', now() - interval '1 hour' - g * interval '2 s',
       'trace_' || lpad(to_hex(g), 32, '0')
FROM generate_series(1, :n) g;
INSERT INTO tasks (workspace_id, name, status) SELECT (SELECT id FROM workspaces LIMIT 1), 'open ' || g, 'pending'
FROM generate_series(1, 1000) g;
INSERT INTO bridge.traces (trace_id, workflow_name, group_id, task_id, started_at, ended_at, created_at)
SELECT 'trace_' || lpad(to_hex(g), 32, '0'), 'bridge exec', 'w', 'bulk ' || g,
       now() - interval '1 hour' - g * interval '2 s', now() - interval '1 hour' - g * interval '2 s',
       now() - interval '1 hour' - g * interval '2 s'
FROM generate_series(1, :n) g;
-- 10 spans per trace: task, agent, turn, generation, 3 function calls, handoff, agent, turn.
INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data, created_at)
SELECT 'span_' || lpad(to_hex(g * 10 + k), 24, '0'), 'trace_' || lpad(to_hex(g), 32, '0'),
       CASE WHEN k = 0 THEN NULL ELSE 'span_' || lpad(to_hex(g * 10), 24, '0') END,
       now() - interval '1 hour' - g * interval '2 s', now() - interval '1 hour' - g * interval '2 s' + k * interval '10 ms',
       CASE k WHEN 0 THEN '{"type":"custom","name":"task","data":{"sdk_span_type":"task"}}'::jsonb
              WHEN 1 THEN '{"type":"agent","name":"Project Manager"}'::jsonb
              WHEN 2 THEN '{"type":"custom","name":"turn","data":{"sdk_span_type":"turn","agent_name":"Project Manager"}}'::jsonb
              WHEN 3 THEN '{"type":"generation","model":"gpt-4.1","usage":{"input_tokens":115,"output_tokens":36}}'::jsonb
              WHEN 7 THEN '{"type":"handoff","from_agent":"Project Manager","to_agent":"Researcher"}'::jsonb
              WHEN 8 THEN '{"type":"agent","name":"Researcher"}'::jsonb
              WHEN 9 THEN '{"type":"custom","name":"turn","data":{"sdk_span_type":"turn","agent_name":"Researcher"}}'::jsonb
              ELSE jsonb_build_object('type', 'function', 'name', 'tool_' || k, 'input', '{"q":1}', 'output', 'ok') END,
       now() - interval '1 hour' - g * interval '2 s' + k * interval '10 ms'
FROM generate_series(1, :n) g CROSS JOIN generate_series(0, 9) k;
INSERT INTO bridge.exporters (name, target) VALUES ('otlp', 'http://collector:4318');
VACUUM ANALYZE;
SQL
q bench_big -c "SELECT format('bench: generated in %s s: %s tasks, %s traces, %s spans, database %s', $(since "$t0"), (SELECT count(*) FROM tasks), (SELECT count(*) FROM bridge.traces), (SELECT count(*) FROM bridge.spans), pg_size_pretty(pg_database_size(current_database())))" >&2

cpu_ms() { awk -v tick="$TICK_MS" '{print ($14 + $15) * tick}' "/proc/$1/stat"; }

# The tail's forward poll, as SpanTail.forwardQuery writes it, from a cursor at the database's clock.
POLL_SQL="EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF, SUMMARY ON)
SELECT s.span_id, s.trace_id, s.parent_id, s.started_at, s.ended_at, s.span_data::text, s.error::text, s.created_at::text,
       coalesce(p.span_data->'data'->>'agent_name', p.span_data->>'name') AS agent
FROM bridge.spans s LEFT JOIN bridge.spans p ON p.span_id = s.parent_id
WHERE s.created_at >= now() - interval '2 seconds' AND (s.created_at, s.span_id) > (now() - interval '2 seconds', '')
ORDER BY s.created_at, s.span_id LIMIT 1000"

printf '\n%-10s %12s %16s %18s %14s %12s\n' "ledger" "spans" "tail CPU ms/min" "backend CPU ms/min" "poll stmt ms" "top ms"
for url in "$EMPTY" "$BIG"; do
  spans=$(psql "$url" -XAtc "SELECT count(*) FROM bridge.spans")
  spawn "$BRIDGE" trace tail --follow -n 0 --database-url "$url" >/dev/null 2>"$WORK/tail.err"
  TAIL_PID=$SPAWNED
  sleep 3
  backend=$(psql "$url" -XAtc "SELECT pid FROM pg_stat_activity WHERE application_name = 'bridge-trace-tail' LIMIT 1")
  c0=$(cpu_ms "$TAIL_PID"); b0=$(cpu_ms "$backend")
  sleep "$SECONDS_IDLE"
  c1=$(cpu_ms "$TAIL_PID"); b1=$(cpu_ms "$backend")
  reap "$TAIL_PID"
  poll=$(psql "$url" -XAt -c "$POLL_SQL" | sed -n 's/^Execution Time: \([0-9.]*\) ms/\1/p')
  best=""
  for _ in 1 2 3 4 5; do
    s0=$(date +%s%N); "$BRIDGE" top --json --database-url "$url" --mappings mappings >/dev/null; s1=$(date +%s%N)
    ms=$(( (s1 - s0) / 1000000 )); if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  name=$([ "$url" = "$EMPTY" ] && echo empty || echo 10M)
  printf '%-10s %12s %16.0f %18.0f %14s %12s\n' "$name" "$spans" \
    "$(awk -v a="$c0" -v b="$c1" -v s="$SECONDS_IDLE" 'BEGIN{print (b - a) * 60 / s}')" \
    "$(awk -v a="$b0" -v b="$b1" -v s="$SECONDS_IDLE" 'BEGIN{print (b - a) * 60 / s}')" "$poll" "$best"
done
echo
echo "The poll statement's plan on the 10M ledger:"
psql "$BIG" -XAt -c "$POLL_SQL"
