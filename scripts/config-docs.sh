#!/bin/sh
# Regenerates the tables of the docs that come from the binary's own tables:
# the key table of docs/configuration.md (between the BEGIN/END KEYS markers)
# and the route table of docs/api.md (BEGIN/END ROUTES).
# Usage: scripts/config-docs.sh [BIN]
set -eu
bin=${1:-build/lastseen}

# splice DOC MARKER OPTION: replaces what is between the markers with `bin OPTION`.
splice() {
    doc=$1
    tmp=$(mktemp)
    "$bin" "$3" >"$tmp.table"
    awk -v table="$tmp.table" -v begin="<!-- BEGIN $2 -->" -v end="<!-- END $2 -->" '
      $0 == begin { print; while ((getline l < table) > 0) print l; skip = 1; next }
      $0 == end   { skip = 0 }
      !skip { print }' "$doc" >"$tmp"
    mv "$tmp" "$doc"
    rm -f "$tmp.table"
}
splice docs/configuration.md KEYS --config-markdown
splice docs/api.md ROUTES --routes-markdown
