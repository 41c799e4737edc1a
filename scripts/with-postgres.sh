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
. "$(dirname "$0")/lib/pg.sh"

# The whole test suite runs its suites in parallel, each with its own databases and bridge
# processes (a worker holds a connection per run in flight): a loaded run was measured at 188
# client connections at its peak, too close to the 200 that scripts/lib/pg.sh sets otherwise.
export PG_MAX_CONNECTIONS=${PG_MAX_CONNECTIONS:-400}

WORK=$(mktemp -d /tmp/bridge-pg.XXXXXX)
# Never changes the command's exit status: under `set -e` a failing command in an EXIT trap
# would replace it (a passing test run reported as failed because a folder was still busy).
cleanup() {
  pg_stop "$WORK" || true
  rm -rf "$WORK" 2>/dev/null || { sleep 2; rm -rf "$WORK" 2>/dev/null; } ||
    echo "with-postgres: could not remove $WORK" >&2 || true
}
trap cleanup EXIT INT TERM
pg_start "$WORK" || exit 2

export DATABASE_URL="$PG_URL"
export BRIDGE_TEST_DATABASE_URL="$PG_URL"
export BRIDGE_PG_BIN="$PG_BIN"
export BRIDGE_PG_LOG="$WORK/server.log"
echo "with-postgres: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PG_PORT ($WORK)" >&2

set +e
"$@"
status=$?
set -e
exit $status
