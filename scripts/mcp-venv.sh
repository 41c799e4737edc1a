#!/usr/bin/env bash
# Prints the path of a Python that can import the official MCP SDK (PyPI `mcp`, FastMCP), making
# it first if needed: a virtualenv cached under ${XDG_CACHE_HOME:-~/.cache}/bridge (or
# $BRIDGE_MCP_VENV), so only the first run downloads. The tests and the quick start's example
# MCP server use it; bridge itself does not need Python. Exits non-zero, saying why, when the
# virtualenv cannot be made (no python3/venv, no network to PyPI).
set -euo pipefail
version="1.30.0"
venv="${BRIDGE_MCP_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bridge/mcp-venv-$version}"
py="$venv/bin/python"
if [ -x "$py" ] && "$py" -c 'import mcp.server.fastmcp' >/dev/null 2>&1; then
  echo "$py"
  exit 0
fi
command -v python3 >/dev/null || { echo "mcp-venv: python3 is not installed" >&2; exit 1; }
mkdir -p "$(dirname "$venv")"
rm -rf "$venv"
if ! python3 -m venv "$venv" >&2; then
  echo "mcp-venv: python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)" >&2
  rm -rf "$venv"
  exit 1
fi
if ! "$venv/bin/pip" install --disable-pip-version-check -q "mcp==$version" >&2; then
  echo "mcp-venv: pip install mcp==$version failed (is PyPI reachable?)" >&2
  rm -rf "$venv"
  exit 1
fi
echo "$py"
