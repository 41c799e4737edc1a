#!/usr/bin/env bash
# The whole test suite: unit, integration (real PostgreSQL) and end-to-end (the built binary).
# Installs missing system packages (Debian/Ubuntu), builds, starts its own throwaway
# PostgreSQL cluster, runs `swift test`, and removes the cluster. Extra arguments go to
# `swift test` (e.g. --filter Migrate).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export BRIDGE_REQUIRE_DB=1
# The MCP tests run against a real server written with the official Python MCP SDK, installed
# into a cached virtualenv. CI (and anyone running this script) must have it: a failed install
# fails the run. BRIDGE_REQUIRE_MCP=0 skips those tests instead, for a machine without PyPI.
if [ "${BRIDGE_REQUIRE_MCP:-1}" = "1" ]; then
  export BRIDGE_REQUIRE_MCP=1
  BRIDGE_MCP_PYTHON="$(scripts/mcp-venv.sh)" || { echo "test.sh: cannot install the MCP SDK for the MCP tests (set BRIDGE_REQUIRE_MCP=0 to skip them)" >&2; exit 1; }
  export BRIDGE_MCP_PYTHON
elif BRIDGE_MCP_PYTHON="$(scripts/mcp-venv.sh 2>/dev/null)"; then
  export BRIDGE_MCP_PYTHON
fi
swift build --build-tests
exec scripts/with-postgres.sh swift test --skip-build "$@"
