#!/usr/bin/env bash
# Regenerates the key table of docs/mappings.md from the mapping loader's declarations
# (Sources/BridgeMapping/MappingKeys*.swift), between its begin and end markers.
# MappingKeyTableTests fails while the checked-in table differs from the generated one.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
swift build --product bridge >&2
table="$(mktemp)"
trap 'rm -f "$table" "$table.md"' EXIT
"$(swift build --show-bin-path)/bridge" mappings keys --markdown >"$table"
doc=docs/mappings.md
grep -q '^<!-- mapping-keys:begin' "$doc" || { echo "gen-mapping-keys.sh: $doc has no mapping-keys:begin marker" >&2; exit 1; }
awk -v table="$table" '
    /^<!-- mapping-keys:begin/ { print; while ((getline line < table) > 0) print line; skip = 1; next }
    /^<!-- mapping-keys:end/ { skip = 0 }
    !skip { print }
' "$doc" >"$table.md"
mv "$table.md" "$doc"
echo "gen-mapping-keys.sh: wrote $doc" >&2
