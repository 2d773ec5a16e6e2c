#!/usr/bin/env bash
# install-ext.sh [--release] -- build pgclone for the PostgreSQL of
# /usr/bin/pg_config and install it without disturbing a running server.
#
# `cargo pgrx install` copies the new library over the old file in place;
# every server process that has the old one mapped (a server that preloads
# pgclone: all of them, the postmaster included) then runs changed code and
# crashes, and the postmaster cannot restart its children. So the extension
# is packaged first and each file goes into place by rename: processes keep
# the file they mapped, and load the new build at their next start.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/bin/pg_config}
profile=(--debug)
if [[ ${1:-} == --release ]]; then
    profile=()
fi
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cargo pgrx package --pg-config "$PG_CONFIG" "${profile[@]}" --out-dir "$stage" >/dev/null
(cd "$stage" && find . -type f) | while read -r rel; do
    dest=/${rel#./}
    mkdir -p "$(dirname "$dest")"
    cp "$stage/$rel" "$dest.pgclone-new"
    chmod 644 "$dest.pgclone-new"
    [[ $dest == *.so ]] && chmod 755 "$dest.pgclone-new"
    mv -f "$dest.pgclone-new" "$dest"
done
