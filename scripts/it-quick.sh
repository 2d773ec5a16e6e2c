#!/usr/bin/env bash
# it-quick.sh [cargo test args] -- reinstall the extension into the running
# development clusters of scripts/clusters.sh (PGCLONE_IT_DIR, default
# /tmp/pgclone-it), restart the target so it loads the new library, and run
# the integration tests. For iterating; scripts/test.sh is the full run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PGCLONE_IT_DIR=${PGCLONE_IT_DIR:-/tmp/pgclone-it}
./scripts/install-ext.sh
./scripts/clusters.sh start >/dev/null
runuser -u postgres -- env -u RUST_BACKTRACE "$(pg_config --bindir)/pg_ctl" restart -w \
    -D "$PGCLONE_IT_DIR/tgt/data" -l "$PGCLONE_IT_DIR/tgt/server.log" >/dev/null
set -a
eval "$(./scripts/clusters.sh env)"
set +a
cargo test --features integration "$@"
