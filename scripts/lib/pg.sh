# Shell functions to run a throwaway PostgreSQL cluster (sourced by scripts/*.sh).
#   pg_start DIR   initdb + start on a free loopback port; sets PG_URL, PG_PORT, PG_BIN
#                  (max_connections: PG_MAX_CONNECTIONS, default 200)
#   pg_stop DIR    stop it (the caller removes DIR)

pg_find_bin() {
  local d
  if [ -n "${BRIDGE_PG_BIN:-}" ] && [ -x "$BRIDGE_PG_BIN/initdb" ]; then echo "$BRIDGE_PG_BIN"; return; fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k4 -V -r); do
    if [ -x "$d/initdb" ]; then echo "$d"; return; fi
  done
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return; fi
  echo "no PostgreSQL server binaries found (apt-get install postgresql)" >&2
  return 2
}

pg_run_as() {
  # From /, so a caller in a directory the postgres user cannot enter (a 0700 checkout) gets no warning.
  if [ "$(id -u)" = "0" ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

pg_port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pg_start() {
  local dir=$1 candidate
  PG_BIN=$(pg_find_bin) || return 2
  mkdir -p "$dir"
  chmod 755 "$dir"
  if [ "$(id -u)" = "0" ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /bin/bash postgres
    chown postgres "$dir"
  fi
  PG_PORT=""
  for _ in $(seq 1 50); do
    candidate=$(( 20000 + RANDOM % 20000 ))
    if ! pg_port_in_use "$candidate"; then PG_PORT=$candidate; break; fi
  done
  [ -n "$PG_PORT" ] || { echo "no free port found" >&2; return 2; }
  pg_run_as "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || pg_run_as "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; echo "initdb failed" >&2; return 2; }
  pg_run_as "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=${PG_MAX_CONNECTIONS:-200}" \
    start >/dev/null || { cat "$dir/server.log" >&2; echo "PostgreSQL did not start" >&2; return 2; }
  PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
}

pg_stop() {
  local dir=$1
  [ -d "$dir/data" ] || return 0
  local bin
  bin=$(pg_find_bin) || return 0
  # A fast shutdown after a whole test suite writes a checkpoint for hundreds of databases; on
  # a loaded machine that can outlast pg_ctl's default 60 s wait.
  pg_run_as "$bin/pg_ctl" -D "$dir/data" -m fast -t 300 stop >/dev/null 2>&1 && return 0
  # Not stopped in time (or not running): end the postmaster, so nothing writes into DIR while
  # the caller removes it.
  local pid
  pid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || true)
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  kill -KILL "$pid" 2>/dev/null || true
  local i
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}
