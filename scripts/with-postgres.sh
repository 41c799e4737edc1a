#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster.
#
#   scripts/with-postgres.sh COMMAND [ARGS...]
#
# Creates a cluster in a temporary folder, starts it on a free loopback port (as the
# `postgres` user when called as root), exports DATABASE_URL and BRIDGE_TEST_DATABASE_URL
# (a superuser URL to database `postgres`) plus BRIDGE_PG_BIN, runs the command, then stops
# the cluster and removes the folder, whatever the command's outcome. Exits with the
# command's status.
set -euo pipefail

find_pg_bin() {
  local d
  if [ -n "${BRIDGE_PG_BIN:-}" ] && [ -x "$BRIDGE_PG_BIN/initdb" ]; then echo "$BRIDGE_PG_BIN"; return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  echo "with-postgres: no PostgreSQL server binaries found (apt-get install postgresql)" >&2
  exit 2
}

PG_BIN=$(find_pg_bin)
WORK=$(mktemp -d /tmp/bridge-pg.XXXXXX)
chmod 755 "$WORK"
RUN_AS=()
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir "$WORK" --shell /bin/bash postgres
  chown postgres "$WORK"
  RUN_AS=(runuser -u postgres --)
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=""
for _ in $(seq 1 50); do
  candidate=$(( 20000 + RANDOM % 20000 ))
  if ! port_in_use "$candidate"; then PORT=$candidate; break; fi
done
[ -n "$PORT" ] || { echo "with-postgres: no free port found" >&2; exit 2; }

cleanup() {
  "${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

"${RUN_AS[@]}" "$PG_BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$WORK/initdb.log" 2>&1 \
  || "${RUN_AS[@]}" "$PG_BIN/initdb" -D "$WORK/data" -U postgres --auth=trust -E UTF8 >"$WORK/initdb.log" 2>&1 \
  || { cat "$WORK/initdb.log" >&2; echo "with-postgres: initdb failed" >&2; exit 2; }

"${RUN_AS[@]}" "$PG_BIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$WORK -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >/dev/null || { cat "$WORK/server.log" >&2; echo "with-postgres: server did not start" >&2; exit 2; }

export DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
export BRIDGE_TEST_DATABASE_URL="$DATABASE_URL"
export BRIDGE_PG_BIN="$PG_BIN"
export BRIDGE_PG_LOG="$WORK/server.log"
echo "with-postgres: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT ($WORK)" >&2

set +e
"$@"
status=$?
set -e
exit $status
