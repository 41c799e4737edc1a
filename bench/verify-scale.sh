#!/usr/bin/env bash
# Benchmark: `bridge verify` on 100,000 finished executions with 1,000,000 spans.
#
# Starts a throwaway PostgreSQL cluster, loads the reference schema and seed, runs
# `bridge migrate`, then generates EXECUTIONS traced runs set-based (INSERT … SELECT from
# generate_series): per run a completed task and execution row with its trace id, a trace, a
# run transcript (3 tool calls and a handoff), 10 spans in the SDK's shape (task > agent >
# turn > generation + 2 function spans + handoff; agent > turn > function) and, for one
# registered exporter, a delivery record per span. Then times `bridge verify` (release build)
# RUNS times and prints a table of the per-check times of the fastest run. Target: < 10 s.
#
#   bench/verify-scale.sh [EXECUTIONS] [RUNS]
# Needs: PostgreSQL server binaries; builds bridge in release mode if needed.
. "$(dirname "$0")/lib.sh"
N=${1:-100000}
RUNS=${2:-3}
bench_start verify
migrated_db bench_verify 10 10
export DATABASE_URL
DATABASE_URL=$(url bench_verify)

log "generating $N executions with $((N * 10)) spans (set-based)..."
t0=$(now)
q bench_verify -v n="$N" <<'SQL'
SET synchronous_commit = off;
CREATE TEMP TABLE runs AS
SELECT g,
       md5('task' || g)::uuid AS task_id,
       'trace_' || md5('trace' || g) AS trace_id,
       (SELECT id FROM workspaces ORDER BY id LIMIT 1 OFFSET g % 10) AS workspace_id,
       now() - interval '2 hours' + g * interval '50 ms' AS t0
FROM generate_series(1, :n) g;
CREATE INDEX ON runs (g);
ANALYZE runs;

INSERT INTO tasks (id, workspace_id, name, description, status, priority, completed_at, openai_trace_id, result)
SELECT task_id, workspace_id, 'bulk ' || g, 'bulk task ' || g, 'completed', 'medium', t0 + interval '40 ms', trace_id,
       jsonb_build_object('output', 'done', 'trace_id', trace_id)
FROM runs;

INSERT INTO task_executions (task_id, workspace_id, status, started_at, completed_at, execution_time_seconds, openai_trace_id)
SELECT task_id, workspace_id, 'completed', t0, t0 + interval '40 ms', 0.04, trace_id FROM runs;

INSERT INTO bridge.traces (trace_id, workflow_name, group_id, metadata, task_id, started_at, ended_at)
SELECT trace_id, 'bridge exec', workspace_id::text,
       jsonb_build_object('task_id', task_id::text, 'workspace_id', workspace_id::text, 'attempt', '1'),
       task_id::text, t0, t0 + interval '40 ms'
FROM runs;

INSERT INTO bridge.run_transcripts (trace_id, task_id, attempt, items)
SELECT trace_id, task_id::text, 1, jsonb_build_array(
    jsonb_build_object('type', 'function_call', 'call_id', 'call_a' || g, 'name', 'get_team_roles_and_status', 'arguments', '{"include_inactive":false}'),
    jsonb_build_object('type', 'function_call', 'call_id', 'call_b' || g, 'name', 'create_and_assign_sub_task', 'arguments', '{"name":"Research","role":"Researcher"}'),
    jsonb_build_object('type', 'function_call_output', 'call_id', 'call_a' || g, 'output', '[{"name":"ResearchBot"}]'),
    jsonb_build_object('type', 'function_call_output', 'call_id', 'call_b' || g, 'output', '[{"id":"' || g || '"}]'),
    jsonb_build_object('type', 'function_call', 'call_id', 'call_h' || g, 'name', 'transfer_to_researcher', 'arguments', '{}'),
    jsonb_build_object('type', 'function_call_output', 'call_id', 'call_h' || g, 'output', '{"assistant": "Researcher"}'),
    jsonb_build_object('type', 'function_call', 'call_id', 'call_c' || g, 'name', 'store_data', 'arguments', '{"key":"k","value":"v"}'),
    jsonb_build_object('type', 'function_call_output', 'call_id', 'call_c' || g, 'output', '{"stored": true}'),
    jsonb_build_object('type', 'message', 'role', 'assistant', 'content', jsonb_build_array(jsonb_build_object('type', 'output_text', 'text', 'done'))))
FROM runs;

-- 10 spans per run: k = 0 task, 1 agent PM, 2 turn 1, 3 generation, 4-5 function, 6 handoff,
-- 7 agent Researcher, 8 turn 2, 9 function. Parents by k.
INSERT INTO bridge.spans (span_id, trace_id, parent_id, started_at, ended_at, span_data)
SELECT 'span_' || left(md5(r.trace_id || ':' || s.k), 24), r.trace_id,
       CASE WHEN s.parent IS NULL THEN NULL ELSE 'span_' || left(md5(r.trace_id || ':' || s.parent), 24) END,
       r.t0 + s.start_ms * interval '1 ms', r.t0 + (s.start_ms + s.dur_ms + (r.g % 7) * 0.1) * interval '1 ms',
       s.data
FROM runs r
CROSS JOIN LATERAL (VALUES
  (0, NULL::int, 0.0, 40.0, jsonb_build_object('type', 'custom', 'name', 'task', 'data', jsonb_build_object('sdk_span_type', 'task', 'name', 'bridge exec'))),
  (1, 0, 0.5, 20.0, jsonb_build_object('type', 'agent', 'name', 'Project Manager', 'tools', jsonb_build_array('get_team_roles_and_status', 'create_and_assign_sub_task'), 'handoffs', jsonb_build_array('Researcher'), 'output_type', 'str')),
  (2, 1, 0.6, 19.0, jsonb_build_object('type', 'custom', 'name', 'turn', 'data', jsonb_build_object('sdk_span_type', 'turn', 'turn', 1, 'agent_name', 'Project Manager'))),
  (3, 2, 0.7, 2.0, jsonb_build_object('type', 'generation', 'model', 'gpt-4.1', 'usage', jsonb_build_object('input_tokens', 115, 'output_tokens', 136))),
  (4, 2, 3.0, 4.0, jsonb_build_object('type', 'function', 'name', 'get_team_roles_and_status', 'input', '{"include_inactive":false}', 'output', '[{"name":"ResearchBot"}]', 'mcp_data', NULL)),
  (5, 2, 3.1, 9.0, jsonb_build_object('type', 'function', 'name', 'create_and_assign_sub_task', 'input', '{"name":"Research","role":"Researcher"}', 'output', '[{"id":"1"}]', 'mcp_data', NULL)),
  (6, 2, 18.0, 0.1, jsonb_build_object('type', 'handoff', 'from_agent', 'Project Manager', 'to_agent', 'Researcher')),
  (7, 0, 21.0, 18.0, jsonb_build_object('type', 'agent', 'name', 'Researcher', 'tools', jsonb_build_array('store_data'), 'handoffs', jsonb_build_array(), 'output_type', 'str')),
  (8, 7, 21.1, 17.0, jsonb_build_object('type', 'custom', 'name', 'turn', 'data', jsonb_build_object('sdk_span_type', 'turn', 'turn', 2, 'agent_name', 'Researcher'))),
  (9, 8, 22.0, 6.0, jsonb_build_object('type', 'function', 'name', 'store_data', 'input', '{"key":"k","value":"v"}', 'output', '{"stored": true}', 'mcp_data', NULL))
) AS s(k, parent, start_ms, dur_ms, data);

INSERT INTO bridge.exporters (name, target, registered_at) VALUES ('otlp', 'http://collector:4318', now() - interval '1 day');
INSERT INTO bridge.span_deliveries (exporter, span_id, trace_id, status, attempts, delivered_at)
SELECT 'otlp', span_id, trace_id, 'delivered', 1, ended_at + (0.5 + (hashtext(span_id) & 1023) / 1000.0) * interval '1 s'
FROM bridge.spans;
VACUUM ANALYZE;
SQL
q bench_verify -c "SELECT format('bench: generated in %s s: %s executions, %s traces, %s spans, %s deliveries, database %s', $(since "$t0"), (SELECT count(*) FROM task_executions), (SELECT count(*) FROM bridge.traces), (SELECT count(*) FROM bridge.spans), (SELECT count(*) FROM bridge.span_deliveries), pg_size_pretty(pg_database_size(current_database())))" >&2

best=""
best_s=999999
for i in $(seq 1 "$RUNS"); do
  s0=$(now)
  status=0
  "$BRIDGE" verify --format json --output "$WORK/run$i.json" >/dev/null || status=$?
  secs=$(since "$s0")
  log "run $i: bridge verify exit $status in $secs s (wall, including connect and process start)"
  if awk -v a="$secs" -v b="$best_s" 'BEGIN{exit !(a < b)}'; then best_s=$secs; best="$WORK/run$i.json"; fi
done

echo
echo "bridge verify on $N executions / $(q bench_verify -c 'SELECT count(*) FROM bridge.spans') spans — fastest of $RUNS runs: $best_s s wall (target < 10 s)"
python3 - "$best" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{'check':<22} {'status':<6} {'checked':>10} {'failed':>7} {'time':>10}")
for c in r["checks"]:
    print(f"{c['id']:<22} {c['status']:<6} {c['checked']:>10,} {c['failed']:>7,} {c['elapsed_ms']/1000:>9.2f}s")
print(f"{'all checks':<22} {'ok' if r['ok'] else 'FAIL':<6} {'':>10} {'':>7} {r['elapsed_ms']/1000:>9.2f}s")
PY
if [ -n "${BENCH_KEEP:-}" ]; then
  echo "BENCH_KEEP set: the cluster keeps running at $DATABASE_URL; press Enter to stop it" >&2
  read -r _
fi
