#!/usr/bin/env bash
# Interop with a real Arize Phoenix (issue 22): exports an offline run to Phoenix over OTLP/HTTP
# (protobuf, the default; gzip with COMPRESSION=gzip), reads it back through Phoenix's REST API
# and checks what a user would look at, then saves a headless Chromium screenshot of the trace.
#
#   bench/phoenix-interop.sh                 check, and screenshot to docs/phoenix-trace.png
#   SCREENSHOT=0 bench/phoenix-interop.sh    check only (no Chromium needed)
#
# Phoenix (PyPI arize-phoenix, pinned) goes into a virtualenv cached under ~/.cache/bridge (or
# $BRIDGE_PHOENIX_VENV): about 860 MB, about 3 minutes to install the first time on this
# machine, which is why this is an interop script and not part of scripts/test.sh (the unit and
# integration tests check every OTLP body with the official definitions instead). Chromium is
# Debian's `chromium` package (installed by this script when missing). Everything listens on
# loopback only; Phoenix keeps its data in the run's temporary folder.
#
# Checked through GET /v1/projects/{project}/spans (bench/phoenix_check.py):
#   - every span of the ledger arrived, in the project named by OTEL_SERVICE_NAME;
#   - agent spans are AGENT, tool spans TOOL with input, output and gen_ai.tool.call.id, model
#     spans LLM with input and output messages and token counts; task/turn/handoff spans have
#     a kind (none "unknown"); every status is OK or ERROR, none UNSET.
. "$(dirname "$0")/lib.sh"
PHOENIX_VERSION=20.26.1
SCREENSHOT=${SCREENSHOT:-1}
COMPRESSION=${COMPRESSION:-gzip}
BRIDGE=${BRIDGE:-$PWD/.build/debug/bridge}
[ -x "$BRIDGE" ] || swift build --product bridge >/dev/null

venv="${BRIDGE_PHOENIX_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bridge/phoenix-venv-$PHOENIX_VERSION}"
[ -x "$venv/bin/phoenix" ] || log "installing arize-phoenix==$PHOENIX_VERSION into $venv (first run only)"
. scripts/lib/venv.sh
cached_venv phoenix-interop "$venv" 'import phoenix' "arize-phoenix==$PHOENIX_VERSION" >/dev/null
if [ "$SCREENSHOT" = 1 ] && ! command -v chromium >/dev/null; then
  apt-get install -y --no-install-recommends chromium >/dev/null
fi

# The shipped mappings use the example MCP server (the official Python MCP SDK), as the tests do.
PATH="$(dirname "$(scripts/mcp-venv.sh)"):$PATH"
bench_start phoenix
machine_line
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
GRPC_PORT=$(free_port)
bench_cleanup() { [ -z "${PHOENIX_PID:-}" ] || { kill "$PHOENIX_PID" 2>/dev/null; wait "$PHOENIX_PID" 2>/dev/null; }; }
PHOENIX_HOST=127.0.0.1 PHOENIX_PORT=$PORT PHOENIX_GRPC_PORT=$GRPC_PORT PHOENIX_WORKING_DIR="$WORK/phoenix" \
  PHOENIX_TELEMETRY_ENABLED=false "$venv/bin/phoenix" serve >"$WORK/phoenix.log" 2>&1 &
PHOENIX_PID=$!
t0=$(now)
until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
  kill -0 "$PHOENIX_PID" 2>/dev/null || { tail -20 "$WORK/phoenix.log" >&2; exit 1; }
  [ "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { print (b - a > 120) }')" = 0 ] || { echo "Phoenix did not start in 120 s" >&2; exit 1; }
  sleep 0.5
done
log "Phoenix $PHOENIX_VERSION on 127.0.0.1:$PORT (started in $(since "$t0") s)"

migrated_db interop 1 3
PROJECT=bridge-interop
t0=$(now)
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$PORT" OTEL_SERVICE_NAME=$PROJECT OTEL_EXPORTER_OTLP_COMPRESSION=$COMPRESSION \
  OTEL_METRICS_EXPORTER=none OPENAI_AGENTS_DISABLE_TRACING=1 \
  "$BRIDGE" exec --offline --quiet --database-url "$(url interop)" --mappings mappings --flush-timeout 60
log "bridge exec --offline: $(since "$t0") s"
SPANS=$(q interop -c "SELECT count(*) FROM bridge.spans")
DELIVERED=$(q interop -c "SELECT count(*) FROM bridge.span_deliveries WHERE exporter = 'otlp' AND status = 'delivered'")
echo "ledger: $SPANS spans, $DELIVERED recorded delivered to Phoenix"
[ "$SPANS" = "$DELIVERED" ] || { echo "not every span was delivered" >&2; exit 1; }
TRACE=$(q interop -c "SELECT substr(trace_id, 7) FROM bridge.spans WHERE span_data->>'type' = 'handoff' LIMIT 1")

"$venv/bin/python" bench/phoenix_check.py "http://127.0.0.1:$PORT" "$PROJECT" "$SPANS"

if [ "$SCREENSHOT" = 1 ]; then
  out=docs/phoenix-trace.png
  # The trace view (Phoenix redirects the OTel trace id to its page); virtual time lets the
  # single-page app load its data before the shot.
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,1000 \
    --virtual-time-budget=15000 --screenshot="$out" "http://127.0.0.1:$PORT/redirects/traces/$TRACE" >/dev/null 2>&1
  log "screenshot of trace $TRACE: $out"
fi
