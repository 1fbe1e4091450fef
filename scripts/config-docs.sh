#!/bin/sh
# Regenerates the key table of docs/configuration.md from the binary's key
# table (between the BEGIN/END KEYS markers).  Usage: scripts/config-docs.sh [BIN]
set -eu
bin=${1:-build/lastseen}
doc=docs/configuration.md
tmp=$(mktemp)
"$bin" --config-markdown >"$tmp.table"
awk -v table="$tmp.table" '
  /<!-- BEGIN KEYS -->/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
  /<!-- END KEYS -->/   { skip = 0 }
  !skip { print }' "$doc" >"$tmp"
mv "$tmp" "$doc"
rm -f "$tmp.table"
