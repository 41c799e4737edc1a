#!/usr/bin/env bash
# Durable runs under interruption: RUNS tasks through a loopback model, each run calling a writing
# SQL tool (one irreversible action row per call) and then answering. Once undisturbed; once with
# one worker SIGKILLed mid-run, a second SIGTERMed mid-run (--drain-timeout 1), and a third that
# finishes the queue. Counts, for both: model requests (the stand-in model's own counter), action
# rows, tasks with more than one action, traces per task, orphan spans, resume spans, execution
# rows by outcome, and whether `bridge verify` passes.
#
#   bench/durable-interrupt.sh [RUNS] [LATENCY_MS]      (defaults 100 500)
#
# BRIDGE=path overrides the binary (default: release build, built if missing).
. "$(dirname "$0")/lib.sh"
RUNS=${1:-100}
LATENCY=${2:-500}
bench_start durable

standin_model python3 --latency-ms "$LATENCY"
BASE=$MODEL_URL
requests() { curl -s "$BASE/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["responses"])'; }

MAP="$WORK/mappings"
mkdir -p "$MAP"
cp mappings/bridge.yaml "$MAP/"
cp Tests/Fixtures/durable/agents.yaml Tests/Fixtures/durable/record-action.yaml "$MAP/"

prepare() { # $1 = database
  migrated_db "$1"
  q "$1" -c "INSERT INTO workspaces (name, user_id) VALUES ('bench', gen_random_uuid())" \
         -c "CREATE TABLE durable_actions (id bigserial PRIMARY KEY, task_id text NOT NULL, note text)" \
         -c "INSERT INTO tasks (workspace_id, name, status) SELECT (SELECT id FROM workspaces LIMIT 1), 'bench ' || g, 'pending' FROM generate_series(1, $RUNS) g"
}
worker() { # $1 = database, rest: extra flags; runs in the background, its pid in $SPAWNED
  OPENAI_BASE_URL="$BASE/v1" OPENAI_API_KEY=sk-bench \
    spawn "$BRIDGE" exec --database-url "$(url "$1")" --mappings "$MAP" --concurrency 8 --lease 2 --quiet "${@:2}" \
    >>"$WORK/$1.log" 2>&1
}
wait_for() { # $1 = database, $2 = SQL returning t/f; up to 120 s
  for _ in $(seq 1 1200); do [ "$(q "$1" -c "$2")" = t ] && return 0; sleep 0.1; done
  echo "timed out waiting for: $2" >&2; exit 1
}
report() { # $1 = database, $2 = label, $3 = model requests
  local v
  if "$BRIDGE" verify --database-url "$(url "$1")" --mappings "$MAP" >"$WORK/$1.verify" 2>&1; then v=pass; else v=FAIL; fi
  q "$1" -F ' | ' -c "
    SELECT '| $2', $3, (SELECT count(*) FROM durable_actions),
           (SELECT count(*) FROM (SELECT task_id FROM durable_actions GROUP BY 1 HAVING count(*) > 1) d),
           (SELECT count(*) FROM tasks WHERE status = 'completed'),
           (SELECT count(*) FROM tasks t WHERE (SELECT count(DISTINCT e.openai_trace_id) FROM task_executions e WHERE e.task_id = t.id) > 1),
           (SELECT count(*) FROM bridge.spans s WHERE s.parent_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM bridge.spans p WHERE p.span_id = s.parent_id)),
           (SELECT count(*) FROM bridge.spans WHERE span_data->>'name' = 'resume'),
           (SELECT count(*) FILTER (WHERE error_type = 'LeaseExpired') || ' / ' || count(*) FILTER (WHERE error_type = 'Released')
              FROM task_executions),
           '$v |'"
}

machine_line
echo "runs: $RUNS, model latency ${LATENCY} ms, 2 model calls and 1 writing SQL call per undisturbed run"
echo
echo "| run | model requests | action rows | tasks acted twice | completed | tasks over 2+ traces | orphan spans | resume spans | reaped / released stints | verify |"
echo "|---|---|---|---|---|---|---|---|---|---|"

# Undisturbed.
prepare calm
r0=$(requests)
worker calm; reap "$SPAWNED" 0
report calm "undisturbed" $(( $(requests) - r0 ))

# SIGKILL, SIGTERM, then a worker that finishes the queue.
prepare storm
r0=$(requests)
worker storm; a=$SPAWNED
wait_for storm "SELECT count(*) >= $((RUNS / 5)) FROM durable_actions"
reap "$a" KILL
log "worker A killed after $(q storm -c 'SELECT count(*) FROM durable_actions') actions"
journal_bytes=$(q storm -c "SELECT round(avg(pg_column_size(spec) + coalesce(pg_column_size(checkpoint), 0))) || ' B per unfinished run (spec + checkpoint), '
                              || (SELECT round(avg(pg_column_size(data))) FROM bridge.journal_calls) || ' B per journaled call'
                            FROM bridge.run_journals")
worker storm --drain-timeout 1; b=$SPAWNED
wait_for storm "SELECT count(*) >= $((RUNS / 2)) FROM durable_actions"
reap "$b"
log "worker B stopped after $(q storm -c 'SELECT count(*) FROM durable_actions') actions"
worker storm; reap "$SPAWNED" 0
report storm "SIGKILL + SIGTERM + finisher" $(( $(requests) - r0 ))
echo
echo "journal: $journal_bytes (measured after the SIGKILL); left after the runs finished: $(q storm -c 'SELECT count(*) FROM bridge.run_journals') run journals, $(q storm -c "SELECT pg_size_pretty(coalesce(sum(pg_column_size(data)), 0)) FROM bridge.journal_calls") of call rows (deleted by prune with their traces)"
