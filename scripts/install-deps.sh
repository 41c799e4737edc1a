#!/usr/bin/env bash
# Installs the system packages bridge needs on Debian/Ubuntu (run as root, or with sudo on PATH):
# libpq-dev, libcurl4-openssl-dev, libssl-dev (SHA-256 from libcrypto) and zlib1g-dev (gzip for OTLP) to build, postgresql to run tests and the quick start,
# python3-venv for the MCP tests and the example MCP server (the official Python MCP SDK),
# prometheus for promtool (the tests check /metrics with `promtool check metrics`; its server is not started).
set -euo pipefail
need=()
for pkg in libpq-dev libcurl4-openssl-dev libssl-dev zlib1g-dev postgresql postgresql-client pkg-config python3 python3-venv prometheus; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
[ "$(id -u)" = "0" ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${need[@]}"
