#!/usr/bin/env bash
# The README quick start: from a fresh Debian/Ubuntu machine with Swift, install what bridge
# needs, build it, start a throwaway PostgreSQL in ./.demo, load the sample "existing schema"
# (examples/reference-schema.sql) with its seed data, and run the pipeline on it:
#   bridge migrate → bridge migrate status → bridge exec --offline → bridge exec --backfill
#   → bridge trace show → bridge verify
# The cluster keeps running afterwards so you can look around; `scripts/quickstart.sh --stop`
# stops it and removes ./.demo. Running the script again starts from scratch.
# The cluster's files live in a fresh directory under /tmp (named in .demo/cluster), not in the
# checkout: run as root, initdb runs as `postgres`, which cannot enter a checkout under /root or
# any other 0700 directory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pg.sh
DEMO="$PWD/.demo"

stop_demo() {
  local cluster
  if [ -f "$DEMO/cluster" ]; then
    cluster=$(cat "$DEMO/cluster")
    case "$cluster" in /tmp/bridge-demo.*) pg_stop "$cluster"; rm -rf "$cluster" ;; esac
  fi
  pg_stop "$DEMO"  # a cluster made by an older quick start, inside .demo
  rm -rf "$DEMO"
}

if [ "${1:-}" = "--stop" ]; then
  stop_demo; rm -rf "$PWD/.demo-mappings"; echo "quickstart: stopped and removed $DEMO"; exit 0
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "installing system packages (libpq-dev, libcurl4-openssl-dev, postgresql)"
scripts/install-deps.sh
export PATH="/opt/swift/usr/bin:$PATH"

step "building bridge (swift build -c release --static-swift-stdlib)"
swift build -c release --static-swift-stdlib --product bridge 2>&1 | tail -n 3
BRIDGE="$PWD/.build/release/bridge"

step "the Python MCP SDK for the example MCP server (examples/team_tools_server.py)"
MAPPINGS="$PWD/mappings"
if MCP_PYTHON="$(scripts/mcp-venv.sh)"; then
  # The shipped mappings start the server with `python3`: the virtualenv's comes first.
  export PATH="$(dirname "$MCP_PYTHON"):$PATH"
  echo "using $MCP_PYTHON"
else
  # No PyPI here: run the demo with the mappings minus the example MCP server.
  MAPPINGS="$PWD/.demo-mappings"
  rm -rf "$MAPPINGS"; mkdir -p "$MAPPINGS"
  for f in mappings/*.yaml; do
    [ "$(basename "$f")" = "mcp.yaml" ] || grep -v '^ *mcp_servers: \[team_tools\]' "$f" >"$MAPPINGS/$(basename "$f")"
  done
  echo "note: the MCP SDK could not be installed; the demo runs without the example MCP server ($MAPPINGS)"
fi

stop_demo
mkdir -p "$DEMO"
CLUSTER=$(mktemp -d /tmp/bridge-demo.XXXXXX)
echo "$CLUSTER" >"$DEMO/cluster"
step "starting a throwaway PostgreSQL in $CLUSTER"
pg_start "$CLUSTER"
psql "$PG_URL" -X -q -c "CREATE DATABASE bridge_demo"
export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/bridge_demo"
echo "DATABASE_URL=$DATABASE_URL"

step "loading the sample existing schema and seed data (3 workspaces x 20 tasks)"
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f examples/reference-schema.sql
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -v workspaces=3 -v tasks_per_workspace=20 -f examples/reference-seed.sql
# One conversation per workspace that two of its pending tasks continue (mappings/sessions.yaml).
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f examples/sessions-seed.sql
psql "$DATABASE_URL" -X -A -t -c "SELECT status || ': ' || count(*) FROM tasks GROUP BY status ORDER BY status"

step "bridge migrate plan (changes nothing)"
"$BRIDGE" migrate plan

step "bridge migrate"
"$BRIDGE" migrate

step "bridge migrate status"
"$BRIDGE" migrate status

# (Read the help into a variable first: with pipefail, `grep -q` closing the pipe early could
# fail the check at random.)
ROOT_HELP=$("$BRIDGE" --help 2>/dev/null || true)
EXEC_HELP=$("$BRIDGE" exec --help 2>/dev/null || true)
has_command() { grep -E "^ +$1( |$)" <<<"$ROOT_HELP" >/dev/null; }

if has_command approvals; then
  step "flagging two Project Manager tasks for review (their sub-task delegation will need approval)"
  psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "UPDATE tasks SET context_data = coalesce(context_data, '{}') || '{\"requires_approval\": true}' WHERE id IN (SELECT t.id FROM tasks t JOIN agents a ON a.id = t.agent_id WHERE a.role = 'Project Manager' AND t.status = 'pending' ORDER BY t.created_at LIMIT 2)"
fi

if has_command cost; then
  step "a budget for the first workspace (mappings/spend.yaml reads workspaces.budget->>'max_budget')"
  psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "UPDATE workspaces SET budget = '{\"max_budget\": 5}' WHERE id = (SELECT id FROM workspaces ORDER BY name LIMIT 1)"
fi

if has_command exec; then
  step "bridge exec --offline (the built-in deterministic model: no network, no key)"
  "$BRIDGE" exec --offline --mappings "$MAPPINGS" --trace-file "$DEMO/traces.jsonl"
  if [ -f "$MAPPINGS/sessions.yaml" ]; then
    step "sessions: the conversations in the application's own table, with the runs' exchanges appended"
    psql "$DATABASE_URL" -X -A -t -c "SELECT m.role || ': ' || left(replace(m.content, E'\n', ' '), 70) FROM conversation_messages m JOIN conversations c ON c.id = m.conversation_id WHERE c.id = (SELECT id FROM conversations ORDER BY chat_id LIMIT 1) ORDER BY m.created_at, m.message_id"
  fi
fi

if has_command approvals; then
  step "bridge approvals list (Project Manager runs paused at create_and_assign_sub_task, which needs approval)"
  "$BRIDGE" approvals list --mappings "$MAPPINGS"
  PENDING=$("$BRIDGE" approvals list --mappings "$MAPPINGS" --ids)
  FIRST=$(head -n 1 <<<"$PENDING")
  if [ -n "$FIRST" ]; then
    step "bridge reject one request with a message, bridge approve the others"
    "$BRIDGE" reject "$FIRST" --mappings "$MAPPINGS" --message "Not now: the Researcher has enough work this week."
    for id in $(tail -n +2 <<<"$PENDING"); do "$BRIDGE" approve "$id" --mappings "$MAPPINGS" >/dev/null; done
    echo "approved $(($(wc -l <<<"$PENDING") - 1)) request(s)"
    step "bridge exec --offline again: the paused runs resume in their own traces"
    "$BRIDGE" exec --offline --mappings "$MAPPINGS" --trace-file "$DEMO/traces.jsonl"
  fi
fi

if has_command cost; then
  step "bridge cost --by workspace (every model call priced from mappings/spend.yaml; used written back to workspaces.budget)"
  "$BRIDGE" cost --by workspace
  psql "$DATABASE_URL" -X -A -t -c "SELECT name || ': ' || budget::text FROM workspaces WHERE budget IS NOT NULL ORDER BY name"
fi

if has_command exec && grep -- "--backfill" <<<"$EXEC_HELP" >/dev/null; then
  step "bridge exec --backfill (traces for the historical tasks, rebuilt from stored records; no model)"
  "$BRIDGE" exec --backfill --mappings "$MAPPINGS" --trace-file "$DEMO/traces.jsonl"
fi

if has_command trace; then
  PM_TASK=$(psql "$DATABASE_URL" -X -A -t -c "SELECT t.id FROM tasks t JOIN agents a ON a.id = t.agent_id WHERE a.role = 'Project Manager' AND t.openai_trace_id LIKE 'trace_%' AND t.status = 'completed' AND t.result ? 'last_agent' LIMIT 1")
  if [ -n "$PM_TASK" ]; then
    step "bridge trace show $PM_TASK (a Project Manager task: tools, then a handoff)"
    "$BRIDGE" trace show "$PM_TASK" --html "$DEMO/trace.html"
  fi
fi

if has_command verify; then
  step "bridge verify"
  "$BRIDGE" verify --mappings "$MAPPINGS"
fi

step "done"
cat <<MSG
The demo database is still running:
  psql "$DATABASE_URL"
Where to look:
  SELECT * FROM bridge.schema_migrations;                        -- migration history
  SELECT id, status, openai_trace_id FROM tasks;                 -- trace ids on tasks
  SELECT trace_id, workflow_name, metadata FROM bridge.traces;   -- traces
  SELECT span_id, parent_id, span_data->>'type' FROM bridge.spans; -- spans (SDK format)
  SELECT conversation_id, role, content FROM conversation_messages ORDER BY created_at; -- sessions
MSG
[ -f "$DEMO/traces.jsonl" ] && echo "  $DEMO/traces.jsonl   -- spans as JSONL in the SDK's export format"
[ -f "$DEMO/trace.html" ] && echo "  $DEMO/trace.html     -- a trace's timeline (open it in a browser)"
# A fresh shell needs DATABASE_URL to reach the demo database (the README's "after the quick
# start" commands rely on it). The shipped mappings start the example MCP server with `python3`:
# in a new shell, bridge exec needs the virtualenv's first on PATH (otherwise it stops at once,
# exit 2, naming the server), so PATH is part of the line when that virtualenv exists.
if [ -n "${MCP_PYTHON:-}" ]; then
  echo "To run bridge from another shell: export PATH=\"$(dirname "$MCP_PYTHON"):\$PATH\" DATABASE_URL=\"$DATABASE_URL\""
else
  echo "To run bridge from another shell: export DATABASE_URL=\"$DATABASE_URL\""
fi
echo "Stop it with: scripts/quickstart.sh --stop"
