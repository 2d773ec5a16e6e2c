#!/usr/bin/env bash
# pgclone.sh [run.sh args via env] -- the benchmark with pgclone as method e.
# Builds and installs the release extension, then runs run.sh with
# PGCLONE_CMD set to a pgclone.database() call over TCP, like the other
# methods. PGCLONE_OPTIONS (JSON, default '{}') is passed to database().
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh
(cd .. && cargo pgrx install --release --pg-config /usr/bin/pg_config >/dev/null)
OPTS=${PGCLONE_OPTIONS:-'{}'}
export PGCLONE_SETUP_SQL='CREATE EXTENSION pgclone'
# The extension's own schema holds its functions, not cloned data.
export VERIFY_EXCLUDE_SCHEMAS="${VERIFY_EXCLUDE_SCHEMAS:-pgclone}"
export PGCLONE_CMD="psql -X -h $CLONE_HOST -p $TGT_PORT -U postgres -d $TGT_DB -v ON_ERROR_STOP=1 \
  -c \"SELECT pgclone.database('host=$CLONE_HOST port=$SRC_PORT dbname=$SRC_DB user=postgres', true, '$OPTS')\""
exec ./run.sh "$@"
