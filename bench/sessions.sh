#!/usr/bin/env bash
# Sessions (issue 24): what conversation memory costs a worker.
#
#   bench/sessions.sh [TASKS] [SESSIONS] [CONCURRENCY]     (defaults 2000 100 16)
#
# One tool-less agent and the offline model (no latency), so each task is the full lease path
# plus one model call. Reports:
#   1. throughput, TASKS pending tasks drained by one `bridge exec --concurrency C`, each in a
#      fresh database: (a) no `sessions` section, the baseline; (b) `sessions` on bridge's own
#      tables but no task in a session (the claim's pick/lock/claim transaction only); (c) the
#      tasks spread over SESSIONS sessions (history read before, exchange appended at finish,
#      one run per session at a time), as ratios to (a);
#   2. the read of a session's last 50 items when it holds 10,000 (bridge.agent_messages, among
#      210,000 items of 1,001 sessions, and the reference conversation_messages), median
#      execution time of 20 EXPLAIN ANALYZE runs.
. "$(dirname "$0")/lib.sh"
TASKS=${1:-2000}
SESSIONS=${2:-100}
CONC=${3:-16}
bench_start sessions
machine_line

run() { # $1 label, $2 database, $3 mappings dir, $4 context_data SQL expression over g
  migrated_db "$2" 2>/dev/null
  local db
  db=$(url "$2")
  q "$2" -c "INSERT INTO workspaces (name, user_id) VALUES ('bench', gen_random_uuid())"
  q "$2" -c "INSERT INTO tasks (workspace_id, name, status, context_data, created_at) SELECT (SELECT id FROM workspaces LIMIT 1), 'bench ' || g, 'pending', $4, now() + g * interval '1 ms' FROM generate_series(1, $TASKS) g"
  local line elapsed done_n
  line=$("$BRIDGE" exec --offline --quiet --concurrency "$CONC" --database-url "$db" --mappings "$3")
  elapsed=$(sed -E 's/.*elapsed ([0-9.]+)s.*/\1/' <<<"$line")
  done_n=$(q "$2" -c "SELECT count(*) FROM tasks WHERE status = 'completed'")
  echo "$1: $done_n tasks in ${elapsed}s = $(awk -v n="$done_n" -v e="$elapsed" 'BEGIN {printf "%.0f", n / e}') tasks/s" >&2
  awk -v n="$done_n" -v e="$elapsed" 'BEGIN {printf "%.2f", n / e}'
}

BASE="$WORK/base"; noop_mappings "$BASE" "Project Manager"
SESS="$WORK/sessions"; noop_mappings "$SESS" "Project Manager"
printf 'version: 1\nsessions: {key: "{{task.context_data.conversation_id}}", limit: 50}\n' >"$SESS/sessions.yaml"

a=$(run "a) no sessions section" base "$BASE" "'{}'::jsonb")
b=$(run "b) sessions, no task in one" nosession "$SESS" "'{}'::jsonb")
c=$(run "c) $SESSIONS sessions" insession "$SESS" "jsonb_build_object('conversation_id', 'c' || (g % $SESSIONS))")
echo "throughput at --concurrency $CONC, $TASKS tasks: a) $a tasks/s; b) $b tasks/s ($(ratio "$b" "$a") x a); c) $c tasks/s ($(ratio "$c" "$a") x a)"
per=$(q insession -c "SELECT count(*) FROM bridge.agent_messages WHERE session_id = 'c1'")
echo "c) session c1 holds $per items after $((TASKS / SESSIONS)) runs"

# 2. The read of the last 50 of 10,000 items.
q base -c "INSERT INTO bridge.agent_sessions (session_id) VALUES ('long')"
q base -c "INSERT INTO bridge.agent_messages (session_id, message_data, created_at) SELECT 'long', '{\"role\": \"user\", \"content\": \"m' || g || '\"}', now() - (20000 - g) * interval '1 s' FROM generate_series(1, 10000) g"
q base -c "INSERT INTO bridge.agent_sessions (session_id) SELECT 's' || g FROM generate_series(0, 999) g"
q base -c "INSERT INTO bridge.agent_messages (session_id, message_data, created_at) SELECT 's' || (g % 1000), '{\"role\": \"user\"}', now() FROM generate_series(1, 200000) g"
q base -c "INSERT INTO conversations (id, workspace_id, chat_id) SELECT '00000000-0000-0000-0000-000000000001', id, 'long' FROM workspaces LIMIT 1"
q base -c "INSERT INTO conversation_messages (conversation_id, message_id, role, content, created_at) SELECT '00000000-0000-0000-0000-000000000001', 'm' || g, CASE WHEN g % 2 = 0 THEN 'assistant' ELSE 'user' END, 'message ' || g, now() - (20000 - g) * interval '1 s' FROM generate_series(1, 10000) g"
q base -c "ANALYZE"
median_ms() { # $1 query
  for _ in $(seq 20); do
    q base -c "EXPLAIN (ANALYZE, FORMAT JSON) $1" | grep -o '"Execution Time": [0-9.]*' | awk '{print $3}'
  done | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
own=$(median_ms "SELECT m.message_data FROM (SELECT id, created_at, message_data FROM bridge.agent_messages WHERE session_id = 'long' ORDER BY created_at DESC, id DESC LIMIT 50) AS m ORDER BY m.created_at, m.id")
app=$(median_ms "SELECT m.r, m.c FROM (SELECT role AS r, content AS c, created_at AS o0, message_id AS o1 FROM conversation_messages WHERE conversation_id = '00000000-0000-0000-0000-000000000001'::uuid ORDER BY created_at DESC, message_id DESC LIMIT 50) AS m ORDER BY m.o0, m.o1")
echo "last 50 of 10,000 items: bridge.agent_messages ${own} ms, conversation_messages ${app} ms (median of 20, EXPLAIN ANALYZE execution time)"
