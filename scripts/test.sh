#!/usr/bin/env bash
# The whole test suite: unit, integration (real PostgreSQL) and end-to-end (the built binary).
# Starts its own throwaway PostgreSQL cluster; needs Swift, PostgreSQL server binaries,
# libpq-dev and libcurl4-openssl-dev (scripts/install-deps.sh installs them on Debian/Ubuntu).
set -euo pipefail
cd "$(dirname "$0")/.."
export BRIDGE_REQUIRE_DB=1
swift build --build-tests "$@"
exec scripts/with-postgres.sh swift test --skip-build "$@"
