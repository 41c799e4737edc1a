#!/usr/bin/env bash
# Formats the tree with the toolchain's swift-format and the checked-in .swift-format, or, with
# --check, lints it and fails on any violation (what CI runs).
#   scripts/format.sh           rewrite Sources, Tests and Package.swift in place
#   scripts/format.sh --check   report violations as file:line:column and exit 1 if there are any
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
paths=(Sources Tests Package.swift)
case "${1:-}" in
--check) exec swift format lint --strict --parallel -r "${paths[@]}" ;;
"") exec swift format format -i --parallel -r "${paths[@]}" ;;
*) echo "usage: scripts/format.sh [--check]" >&2; exit 2 ;;
esac
