#!/usr/bin/env bash
# The whole test suite: unit, integration (real PostgreSQL) and end-to-end (the built binary).
# Installs missing system packages (Debian/Ubuntu), builds, starts its own throwaway
# PostgreSQL cluster, runs `swift test`, and removes the cluster. Extra arguments go to
# `swift test` (e.g. --filter Migrate).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export BRIDGE_REQUIRE_DB=1
# The MCP tests, and the shipped mappings' example MCP server, run on the official Python MCP
# SDK, installed into a cached virtualenv (the first run downloads it from PyPI). Like
# PostgreSQL it is required: a failed install fails the run. Its bin directory goes first on
# PATH, so the shipped mappings' `python3` is that one.
export BRIDGE_REQUIRE_MCP=1
BRIDGE_MCP_PYTHON="$(scripts/mcp-venv.sh)" || { echo "test.sh: cannot install the Python MCP SDK (PyPI package mcp) that the tests need" >&2; exit 1; }
export BRIDGE_MCP_PYTHON
# The example server also supports the previous major version (mcp 1.x, FastMCP): one test runs
# it there too, from a second cached virtualenv.
BRIDGE_MCP_V1_PYTHON="$(scripts/mcp-venv.sh 1)" || { echo "test.sh: cannot install mcp 1.x for the compatibility test" >&2; exit 1; }
export BRIDGE_MCP_V1_PYTHON
export PATH="$(dirname "$BRIDGE_MCP_PYTHON"):$PATH"
# Every OTLP body bridge sends is decoded by the official definitions (PyPI opentelemetry-proto),
# in a cached virtualenv of its own; required like the MCP SDK.
export BRIDGE_REQUIRE_OTEL=1
BRIDGE_OTEL_PYTHON="$(scripts/otel-venv.sh)" || { echo "test.sh: cannot install opentelemetry-proto that the tests need" >&2; exit 1; }
export BRIDGE_OTEL_PYTHON
swift build --build-tests
exec scripts/with-postgres.sh swift test --skip-build "$@"
