#!/usr/bin/env bash
# install-ext.sh [cargo pgrx install args] -- build and install pgclone for
# the PostgreSQL of /usr/bin/pg_config. cargo pgrx install removes the old
# library file before copying the new one, so a server that preloads
# pgclone keeps the file it mapped; it loads the new build at its next
# restart (tests/install.rs holds a running server to that).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo pgrx install --pg-config /usr/bin/pg_config "$@" >/dev/null
