#!/usr/bin/env bash
# Prints the path of a Python that can import the official OTLP definitions (PyPI
# `opentelemetry-proto`, which brings `protobuf`), making it first if needed: a virtualenv cached
# under ${XDG_CACHE_HOME:-~/.cache}/bridge (or $BRIDGE_OTEL_VENV), so only the first run
# downloads. The tests decode every OTLP body bridge sends with it (Tests/Fixtures/otlp/);
# bridge itself does not need Python. Exits non-zero, saying why, when the virtualenv cannot be
# made (no python3/venv, no network to PyPI).
set -euo pipefail
. "$(dirname "$0")/lib/venv.sh"
version="1.45.2"
venv="${BRIDGE_OTEL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bridge/otel-venv-$version}"
check='from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest'
cached_venv otel-venv "$venv" "$check" "opentelemetry-proto==$version"
