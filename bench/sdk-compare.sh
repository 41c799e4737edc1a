#!/usr/bin/env bash
# Benchmarks 1 and 2 of issue 7: bridge against the official Python Agents SDK.
#
# The same scenario runs on both sides against the same scripted loopback model
# (bench/standin_model.py, its own process, counted for neither): a Project Manager hands off to
# a Specialist, who calls two function tools in one turn and then answers (3 model calls a run).
#   bridge: `bridge exec` (release build) with bench/mappings/ on a throwaway PostgreSQL with the
#           reference schema, `bridge migrate` applied, and RUNS pending tasks of the Project
#           Manager; the two tools are SQL SELECTs and every span goes to the bridge.spans ledger.
#   SDK:    bench/sdk_bench.py, openai-agents==$SDK_VERSION from PyPI in a fresh virtualenv,
#           Runner.run RUNS times under an asyncio semaphore; the tools are Python functions and
#           nothing is stored anywhere. Tracing is off on both sides.
#
# 1. Zero model latency, concurrency 20: CPU seconds (user + sys of the measured process, from
#    /usr/bin/time) per model call and peak RSS. Targets: bridge <= 1/4 of the SDK's CPU per model
#    call and <= 1/2 of its peak RSS (aim 1/10). The PostgreSQL server's CPU during bridge's run is
#    shown separately (it is not in bridge's process).
# 2. 200 ms model latency, concurrency 50: elapsed time against the ideal (model calls x 0.2 s /
#    50). Target: bridge >= 60 % of the ideal (aim 90 %). The SDK runs the same way.
#
# Each measurement is repeated REPEAT times, the two contenders alternating, and the table shows
# medians (and every run, so noise is visible). Model calls are counted by the stand-in.
#
# --against BINARY compares two bridge builds instead (no SDK, no PyPI beyond the stand-in's
# stdlib): the rounds alternate BINARY ("B", e.g. the previous main's release build) and
# $BRIDGE ("A"), B first, on the same database and stand-in; the verdicts are A / B ratios.
#
#   bench/sdk-compare.sh [--runs N] [--repeat R] [--only 1|2] [--against BINARY]
# Environment: BRIDGE (default .build/release/bridge, built if missing), PYTHON (python3),
# SDK_VERSION (0.24.0), BENCH_VENV (reuse this virtualenv instead of making a fresh one),
# KEEP_LOGS=1 (keep the work directory).
# Needs: Swift (to build bridge), PostgreSQL server binaries, psql, python3 with venv, PyPI access.
. "$(dirname "$0")/lib.sh"

RUNS=200
REPEAT=3
ONLY=""
AGAINST=""
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --repeat) REPEAT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    --against) AGAINST=$2; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
SDK_VERSION=${SDK_VERSION:-0.24.0}
PYTHON=${PYTHON:-python3}
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
STANDIN_PID=""
bench_cleanup() { [ -z "$STANDIN_PID" ] || { kill "$STANDIN_PID" 2>/dev/null && wait "$STANDIN_PID" 2>/dev/null; }; }
log "starting a throwaway PostgreSQL..."
bench_start sdk

# --- the Python side ------------------------------------------------------------------------
if [ -n "${BENCH_VENV:-}" ] && [ -x "$BENCH_VENV/bin/python" ]; then
  VENV=$BENCH_VENV
elif [ -n "$AGAINST" ]; then
  # Two bridge builds: the stand-in needs only the standard library; no SDK is installed.
  VENV=$WORK/venv
  mkdir -p "$VENV/bin"
  ln -s "$(command -v "$PYTHON")" "$VENV/bin/python"
else
  VENV=$WORK/venv
  log "installing openai-agents==$SDK_VERSION into a fresh virtualenv..."
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "openai-agents==$SDK_VERSION" >"$WORK/pip.log" 2>&1 \
    || { cat "$WORK/pip.log" >&2; exit 2; }
fi
SDK_INSTALLED=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("openai-agents"))' 2>/dev/null || echo none)
OPENAI_INSTALLED=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("openai"))' 2>/dev/null || echo none)
PY_VERSION=$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')

# --- the database -----------------------------------------------------------------------------
psql "$PG_URL" -X -q -v ON_ERROR_STOP=1 -f examples/reference-schema.sql >/dev/null
psql "$PG_URL" -X -q -v ON_ERROR_STOP=1 -v workspaces=10 -v tasks_per_workspace=0 -f examples/reference-seed.sql >/dev/null
"$BRIDGE" migrate --database-url "$PG_URL" --mappings bench/mappings >"$WORK/migrate.log" 2>&1 \
  || { cat "$WORK/migrate.log" >&2; exit 2; }
PG_VERSION=$(psql "$PG_URL" -X -A -t -c "SHOW server_version")

# add_tasks N: N pending tasks of the workspaces' Project Managers.
add_tasks() {
  psql "$PG_URL" -X -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO tasks (workspace_id, agent_id, assigned_to_role, name, description, status, priority, context_data)
SELECT pm.workspace_id, pm.id, pm.role, 'Bench task ' || g, 'Produce deliverable ' || g, 'pending', 'medium',
       jsonb_build_object('project_phase', 'ANALYSIS', 'n', g)
FROM generate_series(1, $1) g
CROSS JOIN LATERAL (SELECT * FROM agents WHERE role = 'Project Manager' ORDER BY id OFFSET g % 10 LIMIT 1) pm;
VACUUM ANALYZE tasks;
SQL
}

# pg_cpu: CPU seconds used so far by the PostgreSQL server (postmaster, its live children and
# the children it has reaped, i.e. the backends of closed connections).
CLK_TCK=$(getconf CLK_TCK)
pg_cpu() {
  local pm kids
  pm=$(head -1 "$WORK/data/postmaster.pid")
  kids=$(cat /proc/"$pm"/task/*/children 2>/dev/null || true)
  { awk '{print $14 + $15 + $16 + $17}' /proc/"$pm"/stat
    for k in $kids; do awk '{print $14 + $15}' /proc/"$k"/stat 2>/dev/null || true; done
  } | awk -v hz="$CLK_TCK" '{s += $1} END {printf "%.3f", s / hz}'
}

# --- the stand-in model ---------------------------------------------------------------------
start_standin() { # $1 = latency in ms
  if [ -n "$STANDIN_PID" ]; then kill "$STANDIN_PID"; wait "$STANDIN_PID" 2>/dev/null || true; fi
  rm -f "$WORK/port"
  "$VENV/bin/python" bench/standin_model.py --latency-ms "$1" --port-file "$WORK/port" 2>>"$WORK/standin.log" &
  STANDIN_PID=$!
  for _ in $(seq 1 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
  [ -s "$WORK/port" ] || { cat "$WORK/standin.log" >&2; echo "the stand-in model did not start" >&2; exit 2; }
  BASE_URL="http://127.0.0.1:$(cat "$WORK/port")/v1"
}
model_calls() { curl -s "${BASE_URL%/v1}/stats" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["responses"])'; }
standin_errors() { curl -s "${BASE_URL%/v1}/stats" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["errors"])'; }

# run_bridge CONCURRENCY LABEL [BINARY] -> prints "cpu_s rss_kb calls wall_s pg_cpu_s loop_s"
run_bridge() {
  local conc=$1 label=$2 bin=${3:-$BRIDGE} c0 c1 p0 p1
  add_tasks "$RUNS"
  c0=$(model_calls); p0=$(pg_cpu)
  OPENAI_BASE_URL=$BASE_URL OPENAI_API_KEY=sk-bench OPENAI_AGENTS_DISABLE_TRACING=1 \
    "$TIME" -f "%U %S %M %e" -o "$WORK/$label.time" \
    "$bin" exec --database-url "$PG_URL" --mappings bench/mappings --concurrency "$conc" --quiet \
    >"$WORK/$label.out" 2>&1 || { cat "$WORK/$label.out" >&2; echo "bridge exec failed ($label)" >&2; exit 1; }
  sleep 0.3 # let the postmaster reap the closed connections' backends
  c1=$(model_calls); p1=$(pg_cpu)
  grep -q "completed $RUNS, failed 0" "$WORK/$label.out" \
    || { cat "$WORK/$label.out" >&2; echo "bridge did not complete $RUNS tasks ($label)" >&2; exit 1; }
  local loop
  loop=$(sed -n 's/.*elapsed \([0-9.]*\)s.*/\1/p' "$WORK/$label.out" | tail -1)
  awk -v c=$((c1 - c0)) -v p0="$p0" -v p1="$p1" -v l="$loop" \
    '{printf "%.3f %d %d %.3f %.3f %.3f\n", $1 + $2, $3, c, $4, p1 - p0, l}' "$WORK/$label.time"
}

# run_sdk CONCURRENCY LABEL -> prints "cpu_s rss_kb calls wall_s 0 loop_s"
run_sdk() {
  local conc=$1 label=$2 c0 c1
  c0=$(model_calls)
  "$TIME" -f "%U %S %M %e" -o "$WORK/$label.time" \
    "$VENV/bin/python" bench/sdk_bench.py --base-url "$BASE_URL" --runs "$RUNS" --concurrency "$conc" \
    >"$WORK/$label.out" 2>"$WORK/$label.err" || { cat "$WORK/$label.out" "$WORK/$label.err" >&2; echo "the SDK run failed ($label)" >&2; exit 1; }
  c1=$(model_calls)
  local loop
  loop=$("$VENV/bin/python" -c 'import json,sys; print(json.loads(open(sys.argv[1]).read())["wall_seconds"])' "$WORK/$label.out")
  awk -v c=$((c1 - c0)) -v l="$loop" '{printf "%.3f %d %d %.3f 0 %.3f\n", $1 + $2, $3, c, $4, l}' "$WORK/$label.time"
}

# rounds BENCHMARK CONCURRENCY LATENCY_MS NOTE: REPEAT rounds, bridge then the SDK, against a
# stand-in with that latency; each side's result lines go to $WORK/bBENCHMARK.{bridge,sdk}.
rounds() {
  local b=$1 conc=$2 note=$4 r
  start_standin "$3"
  : >"$WORK/b$b.bridge"; : >"$WORK/b$b.sdk"; : >"$WORK/b$b.against"
  for r in $(seq 1 "$REPEAT"); do
    if [ -n "$AGAINST" ]; then
      log "benchmark $b, round $r of $REPEAT: B ($AGAINST) exec --concurrency $conc ($RUNS tasks$note)..."
      run_bridge "$conc" "b$b-against-$r" "$AGAINST" >>"$WORK/b$b.against"
      log "benchmark $b, round $r of $REPEAT: A ($BRIDGE) exec --concurrency $conc ($RUNS tasks$note)..."
      run_bridge "$conc" "b$b-bridge-$r" >>"$WORK/b$b.bridge"
      continue
    fi
    log "benchmark $b, round $r of $REPEAT: bridge exec --concurrency $conc ($RUNS tasks$note)..."
    run_bridge "$conc" "b$b-bridge-$r" >>"$WORK/b$b.bridge"
    log "benchmark $b, round $r of $REPEAT: SDK, $RUNS runs at concurrency $conc$note..."
    run_sdk "$conc" "b$b-sdk-$r" >>"$WORK/b$b.sdk"
  done
  [ "$(standin_errors)" = 0 ] || { echo "the stand-in answered errors; see $WORK" >&2; STATUS=1; }
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# med EXPR FILE: the median over FILE's rounds (one result line each) of the awk expression EXPR
# of a line's fields: $1 cpu_s, $2 rss_kb, $3 model calls, $4 wall_s, $5 pg_cpu_s, $6 loop_s.
med() { awk "{print $1}" "$2" | median; }

# Benchmark 2's efficiency in %: the ideal (model calls x 0.2 s / 50) over the elapsed seconds of
# the process ($4) or of the run loop ($6).
EFF_PROCESS='100 * ($3 * 0.2 / 50) / $4'
EFF_LOOP='100 * ($3 * 0.2 / 50) / $6'

# b2_table COLUMN SIDE=LABEL...: benchmark 2's table of every round, a row for each SIDE (its
# results in $WORK/b2.SIDE) named LABEL in the column headed COLUMN.
b2_table() {
  local who=$1 r pair
  shift
  echo "| round | $who | model calls | ideal s | process s | run loop s | efficiency (process) | efficiency (run loop) |"
  echo "|---|---|---|---|---|---|---|---|"
  for r in $(seq 1 "$REPEAT"); do
    for pair in "$@"; do
      sed -n "${r}p" "$WORK/b2.${pair%%=*}" | awk -v r="$r" -v s="${pair#*=}" '{i = $3 * 0.2 / 50;
        printf "| %s | %s | %d | %.2f | %.2f | %.2f | %.0f %% | %.0f %% |\n", r, s, $3, i, $4, $6, 100 * i / $4, 100 * i / $6}'
    done
  done
}

echo "# bench/sdk-compare.sh --runs $RUNS --repeat $REPEAT"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo);" \
     "$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# bridge $(git rev-parse --short HEAD 2>/dev/null || echo '?') (release), PostgreSQL $PG_VERSION;" \
     "openai-agents $SDK_INSTALLED, openai $OPENAI_INSTALLED, Python $PY_VERSION"

STATUS=0
if [ -n "$AGAINST" ]; then
  # Two bridge builds: A ($BRIDGE) against B ($AGAINST), alternating, B first in each round.
  echo "# A = $BRIDGE, B = $AGAINST"
  if [ -z "$ONLY" ] || [ "$ONLY" = 1 ]; then
    rounds 1 20 0 ""
    echo
    echo "## Benchmark 1: $RUNS runs at concurrency 20, zero model latency (medians of $REPEAT)"
    echo
    echo "| round | build | model calls | CPU s | CPU ms / model call | peak RSS MiB | wall s | PostgreSQL server CPU ms / model call |"
    echo "|---|---|---|---|---|---|---|---|"
    for r in $(seq 1 "$REPEAT"); do
      for side in against bridge; do
        sed -n "${r}p" "$WORK/b1.$side" | awk -v r="$r" -v s="$side" '{printf "| %s | %s | %d | %.2f | %.3f | %.1f | %.2f | %.3f |\n",
          r, (s == "bridge" ? "A" : "B"), $3, $1, 1000 * $1 / $3, $2 / 1024, $4, 1000 * $5 / $3}'
      done
    done
    A_CPC=$(med '$1 / $3' "$WORK/b1.bridge")
    B_CPC=$(med '$1 / $3' "$WORK/b1.against")
    A_PG=$(med '$5 / $3' "$WORK/b1.bridge")
    B_PG=$(med '$5 / $3' "$WORK/b1.against")
    echo
    awk -v a="$A_CPC" -v b="$B_CPC" -v ap="$A_PG" -v bp="$B_PG" 'BEGIN{
      printf "median CPU ms per model call: A %.3f, B %.3f, A / B = %.3f; PostgreSQL server: A %.3f, B %.3f, A / B = %.3f\n",
        1000 * a, 1000 * b, a / b, 1000 * ap, 1000 * bp, ap / bp }'
  fi
  if [ -z "$ONLY" ] || [ "$ONLY" = 2 ]; then
    rounds 2 50 200 ", 200 ms model latency"
    echo
    echo "## Benchmark 2: $RUNS runs at concurrency 50, 200 ms model latency (medians of $REPEAT)"
    echo
    b2_table build against=B bridge=A
    A_EFF=$(med "$EFF_PROCESS" "$WORK/b2.bridge")
    B_EFF=$(med "$EFF_PROCESS" "$WORK/b2.against")
    echo
    awk -v a="$A_EFF" -v b="$B_EFF" 'BEGIN{printf "median efficiency (process): A %.0f %%, B %.0f %%\n", a, b}'
  fi
  exit 0
fi

# --- benchmark 1 ------------------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = 1 ]; then
  rounds 1 20 0 ""
  echo
  echo "## Benchmark 1: $RUNS runs at concurrency 20, zero model latency (medians of $REPEAT)"
  echo
  echo "| round | contender | model calls | CPU s | CPU ms / model call | peak RSS MiB | wall s | PostgreSQL server CPU s |"
  echo "|---|---|---|---|---|---|---|---|"
  for r in $(seq 1 "$REPEAT"); do
    sed -n "${r}p" "$WORK/b1.bridge" | awk -v r="$r" '{printf "| %s | bridge | %d | %.2f | %.2f | %.1f | %.2f | %.2f |\n", r, $3, $1, 1000 * $1 / $3, $2 / 1024, $4, $5}'
    sed -n "${r}p" "$WORK/b1.sdk" | awk -v r="$r" '{printf "| %s | SDK | %d | %.2f | %.2f | %.1f | %.2f | - |\n", r, $3, $1, 1000 * $1 / $3, $2 / 1024, $4}'
  done
  B_CPC=$(med '$1 / $3' "$WORK/b1.bridge")
  S_CPC=$(med '$1 / $3' "$WORK/b1.sdk")
  B_RSS=$(med '$2' "$WORK/b1.bridge")
  S_RSS=$(med '$2' "$WORK/b1.sdk")
  B_PG=$(med '$5 / $3' "$WORK/b1.bridge")
  S_LOOP=$("$VENV/bin/python" -c '
import json, sys, statistics
rows = [json.loads(open(f).read()) for f in sys.argv[1:]]
print(statistics.median((r["cpu_loop_seconds"]) / r["model_calls"] for r in rows))' "$WORK"/b1-sdk-*.out)
  echo
  echo "| median | bridge | SDK | bridge / SDK | target | met |"
  echo "|---|---|---|---|---|---|"
  awk -v b="$B_CPC" -v s="$S_CPC" 'BEGIN{r = b / s; printf "| CPU ms per model call | %.2f | %.2f | 1/%.1f | <= 1/4 (aim 1/10) | %s |\n", 1000 * b, 1000 * s, s / b, (r <= 0.25 ? "yes" : "NO")}'
  awk -v b="$B_RSS" -v s="$S_RSS" 'BEGIN{r = b / s; printf "| peak RSS MiB | %.1f | %.1f | 1/%.1f | <= 1/2 (aim 1/10) | %s |\n", b / 1024, s / 1024, s / b, (r <= 0.5 ? "yes" : "NO")}'
  echo
  awk -v b="$B_CPC" -v p="$B_PG" -v l="$S_LOOP" 'BEGIN{
    printf "Not in the ratios: the PostgreSQL server spent %.2f ms per model call serving bridge (bridge + server: %.2f ms);\n", 1000 * p, 1000 * (b + p)
    printf "the SDK run loop alone (without interpreter start and imports) spent %.2f ms per model call.\n", 1000 * l }'
  awk -v b="$B_CPC" -v s="$S_CPC" -v bm="$B_RSS" -v sm="$S_RSS" 'BEGIN{exit !(b / s <= 0.25 && bm / sm <= 0.5)}' || STATUS=1
fi

# --- benchmark 2 ------------------------------------------------------------------------------
if [ -z "$ONLY" ] || [ "$ONLY" = 2 ]; then
  rounds 2 50 200 ", 200 ms model latency"
  echo
  echo "## Benchmark 2: $RUNS runs at concurrency 50, 200 ms model latency (medians of $REPEAT)"
  echo
  echo "ideal = model calls x 0.2 s / 50; efficiency = ideal / elapsed. 'process' is the whole process"
  echo "(start, mappings, connections); 'run loop' is the contender's own timing of its runs."
  echo
  b2_table contender bridge=bridge sdk=SDK
  B_EFF=$(med "$EFF_PROCESS" "$WORK/b2.bridge")
  B_EFFL=$(med "$EFF_LOOP" "$WORK/b2.bridge")
  S_EFF=$(med "$EFF_PROCESS" "$WORK/b2.sdk")
  S_EFFL=$(med "$EFF_LOOP" "$WORK/b2.sdk")
  echo
  echo "| median efficiency | process | run loop | target | met |"
  echo "|---|---|---|---|---|"
  awk -v p="$B_EFF" -v l="$B_EFFL" 'BEGIN{printf "| bridge | %.0f %% | %.0f %% | >= 60 %% (aim 90 %%) of the process | %s |\n", p, l, (p >= 60 ? "yes" : "NO")}'
  awk -v p="$S_EFF" -v l="$S_EFFL" 'BEGIN{printf "| SDK | %.0f %% | %.0f %% | (for comparison) | |\n", p, l}'
  awk -v p="$B_EFF" 'BEGIN{exit !(p >= 60)}' || STATUS=1
fi

[ "$STATUS" = 0 ] && echo && echo "all targets met" || { echo; echo "TARGET MISSED (see above)"; }
exit "$STATUS"
