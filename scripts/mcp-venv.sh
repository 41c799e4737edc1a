#!/usr/bin/env bash
# Prints the path of a Python that can import the official MCP SDK (PyPI `mcp`), making it first
# if needed: a virtualenv cached as ${XDG_CACHE_HOME:-~/.cache}/bridge/mcp-venv-VERSION (or
# $BRIDGE_MCP_VENV-VERSION),
# so only the first run downloads. The tests and the quick start's example MCP server use it;
# bridge itself does not need Python. Exits non-zero, saying why, when the virtualenv cannot be
# made (no python3/venv, no network to PyPI).
#
#   scripts/mcp-venv.sh          the current major version (2.x, MCPServer), pinned
#   scripts/mcp-venv.sh 1        the previous one (1.x, FastMCP), which the example still supports
set -euo pipefail
. "$(dirname "$0")/lib/venv.sh"
case "${1:-2}" in
  2) version="2.3.0" ;;
  1) version="1.30.0" ;;
  *) echo "mcp-venv: usage: mcp-venv.sh [1|2]" >&2; exit 2 ;;
esac
venv="${BRIDGE_MCP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bridge/mcp-venv}-$version"
cached_venv mcp-venv "$venv" "import importlib.metadata as m, sys; sys.exit(m.version('mcp') != '$version')" "mcp==$version"
