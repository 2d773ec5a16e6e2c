#!/usr/bin/env bash
# pgclone.sh [run.sh args via env] -- the benchmark with pgclone as method e.
# Builds and installs the release extension, preloads it on the target
# cluster (its copy workers are background workers), then runs run.sh with
# PGCLONE_CMD set to a pgclone.database() call over TCP, like the other
# methods. PGCLONE_OPTIONS (JSON, default {"parallel": JOBS}) is passed to
# database(); method f runs it again with PGCLONE_OPTIONS_F (default serial,
# {"parallel": 1}). pgclone-run.sh samples the memory of pgclone's processes
# meanwhile; its report ends <results>/run*/e/clone.log.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh
# The target preloads the library: the new build goes to a new file, then a
# restart loads it.
../scripts/install-ext.sh --release
./cluster.sh start >/dev/null
loaded=$(psql_port "$TGT_PORT" -d postgres -Atc "SHOW shared_preload_libraries")
if [[ ",$loaded," != *",pgclone,"* ]]; then
    psql_port "$TGT_PORT" -d postgres -qc "ALTER SYSTEM SET shared_preload_libraries = 'pgclone'"
fi
runuser -u "$PG_OS_USER" -- "$PGBIN/pg_ctl" restart -w -t 120 -D "$TGT_DATA" -l "$LOGDIR/tgt.log" >/dev/null
OPTS=${PGCLONE_OPTIONS:-"{\"parallel\": ${JOBS:-2}}"}
export PGCLONE_SETUP_SQL='CREATE EXTENSION pgclone'
# The extension's own schema holds its functions and job state, not cloned data.
export VERIFY_EXCLUDE_SCHEMAS="${VERIFY_EXCLUDE_SCHEMAS:-pgclone}"
export PGCLONE_CMD="$PWD/pgclone-run.sh '$OPTS'"
# Method f: a second variant, serial in the calling session unless
# PGCLONE_OPTIONS_F says otherwise (used only when METHODS names f).
OPTS_F=${PGCLONE_OPTIONS_F:-'{"parallel": 1}'}
export PGCLONE_CMD_F="$PWD/pgclone-run.sh '$OPTS_F'"
exec ./run.sh "$@"
