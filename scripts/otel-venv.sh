#!/usr/bin/env bash
# Prints the path of a Python that can import the official OTLP definitions (PyPI
# `opentelemetry-proto`, which brings `protobuf`), making it first if needed: a virtualenv cached
# under ${XDG_CACHE_HOME:-~/.cache}/bridge (or $BRIDGE_OTEL_VENV), so only the first run
# downloads. The tests decode every OTLP body bridge sends with it (Tests/Fixtures/otlp/);
# bridge itself does not need Python. Exits non-zero, saying why, when the virtualenv cannot be
# made (no python3/venv, no network to PyPI).
set -euo pipefail
version="1.45.2"
venv="${BRIDGE_OTEL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bridge/otel-venv-$version}"
py="$venv/bin/python"
check='from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest'
if [ -x "$py" ] && "$py" -c "$check" >/dev/null 2>&1; then
  echo "$py"
  exit 0
fi
command -v python3 >/dev/null || { echo "otel-venv: python3 is not installed" >&2; exit 1; }
mkdir -p "$(dirname "$venv")"
rm -rf "$venv"
if ! python3 -m venv "$venv" >&2; then
  echo "otel-venv: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
  rm -rf "$venv"
  exit 1
fi
if ! "$venv/bin/pip" install --disable-pip-version-check -q "opentelemetry-proto==$version" >&2; then
  echo "otel-venv: pip install opentelemetry-proto==$version failed (is PyPI reachable?)" >&2
  rm -rf "$venv"
  exit 1
fi
echo "$py"
