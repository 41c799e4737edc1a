# What the benchmarks share. Each bench/*.sh starts with `. "$(dirname "$0")/lib.sh"`, which
# sets `set -euo pipefail`, moves to the project root and sources scripts/lib/pg.sh; then:
#   bench_start NAME   the bridge binary in $BRIDGE (BRIDGE=path overrides; else the release
#                      build, built with --static-swift-stdlib when missing), and a throwaway
#                      PostgreSQL cluster in a new $WORK (/tmp/bridge-bench-NAME.*; sets PG_URL,
#                      PG_PORT, PG_BIN). At exit, bench_cleanup runs when the script defines it,
#                      what `spawn` started and still runs is stopped, then the cluster stops
#                      and $WORK is removed (kept with KEEP_LOGS=1).
#   spawn CMD…         CMD in the background (redirections and VAR=value prefixes apply to it),
#                      its pid in $SPAWNED
#   reap PID [SIG]     sends SIG (TERM; 0 sends nothing) to a spawned PID and waits for it to end
#   wait_for_file F    true once file F is non-empty, within 10 s
#   standin_model PYTHON ARGS…
#                      bench/standin_model.py ARGS on a free port, spawned (its stderr appended
#                      to $WORK/standin.log); sets MODEL_URL (http://127.0.0.1:PORT), or exits 2
#                      with the log when it does not start
#   url DB             the cluster's URL for database DB
#   q DB ARGS…         psql on database DB: quiet, unaligned, tuples only, stops at the first error
#   reference_db DB [WORKSPACES TASKS_PER_WORKSPACE]
#                      creates DB with the reference schema (and seed, when sized)
#   migrated_db DB [WORKSPACES TASKS_PER_WORKSPACE]
#                      the same, then `bridge migrate` with migrations/
#   noop_mappings DIR ROLE…
#                      DIR gets the shipped bridge.yaml and one tool-less agent per ROLE (its
#                      name, matching that role), so every run is one model call
#   log MSG            a progress line on stderr
#   now / since T0 / ms_since T0
#                      the clock in seconds, and the seconds (milliseconds) since T0
#   ratio A B          A / B with two decimals
#   machine_line       the `machine:` line each benchmark's output starts with
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
. scripts/lib/pg.sh
export PATH="/opt/swift/usr/bin:$PATH"

bench_start() {
  if [ -z "${BRIDGE:-}" ]; then
    [ -x .build/release/bridge ] || swift build -c release --static-swift-stdlib --product bridge >/dev/null
    BRIDGE="$PWD/.build/release/bridge"
  fi
  WORK=$(mktemp -d "/tmp/bridge-bench-$1.XXXXXX")
  trap bench_stop EXIT
  trap 'exit 130' INT TERM
  pg_start "$WORK" >/dev/null
}

bench_stop() {
  if declare -F bench_cleanup >/dev/null; then bench_cleanup || true; fi
  local p
  for p in "${SPAWNED_PIDS[@]}"; do reap "$p"; done
  pg_stop "$WORK"
  if [ "${KEEP_LOGS:-}" = 1 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}

SPAWNED_PIDS=()
spawn() {
  "$@" &
  SPAWNED=$!
  SPAWNED_PIDS+=("$SPAWNED")
}

reap() {
  local p keep=()
  kill "-${2:-TERM}" "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${SPAWNED_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  SPAWNED_PIDS=("${keep[@]}")
}

wait_for_file() {
  local _
  for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

standin_model() {
  local python=$1
  shift
  rm -f "$WORK/standin.port"
  spawn "$python" bench/standin_model.py --port-file "$WORK/standin.port" "$@" 2>>"$WORK/standin.log"
  wait_for_file "$WORK/standin.port" || { cat "$WORK/standin.log" >&2; echo "the stand-in model did not start" >&2; exit 2; }
  MODEL_URL="http://127.0.0.1:$(cat "$WORK/standin.port")"
}

url() { echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"; }
q() { local db=$1; shift; psql "$(url "$db")" -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

reference_db() {
  q postgres -c "CREATE DATABASE $1"
  q "$1" -f examples/reference-schema.sql
  [ $# -lt 3 ] || q "$1" -v workspaces="$2" -v tasks_per_workspace="$3" -f examples/reference-seed.sql
}

migrated_db() {
  reference_db "$@"
  "$BRIDGE" migrate --database-url "$(url "$1")" --dir migrations >/dev/null
}

noop_mappings() {
  local dir=$1 role
  shift
  mkdir -p "$dir"
  cp mappings/bridge.yaml "$dir/"
  { echo "version: 1"; echo "agents:"
    for role in "$@"; do echo "  - {name: $role, match: $role, instructions: Answer the task., model: gpt-4.1}"; done
  } >"$dir/agents.yaml"
}

log() { echo "bench: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

machine_line() {
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GB", $2/1048576}' /proc/meminfo), $(uname -sr);" \
       "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync off); load $(cut -d' ' -f1-3 /proc/loadavg);" \
       "$(date -u +%Y-%m-%dT%H:%MZ)"
}
