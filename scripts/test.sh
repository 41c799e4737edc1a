#!/usr/bin/env bash
# The whole test suite: unit, integration (real PostgreSQL) and end-to-end (the built binary).
# Installs missing system packages (Debian/Ubuntu), builds, starts its own throwaway
# PostgreSQL cluster, runs `swift test`, and removes the cluster. Extra arguments go to
# `swift test` (e.g. --filter Migrate).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export BRIDGE_REQUIRE_DB=1
swift build --build-tests
exec scripts/with-postgres.sh swift test --skip-build "$@"
