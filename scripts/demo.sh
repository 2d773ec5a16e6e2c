#!/usr/bin/env bash
# demo.sh -- set everything up and show pgclone at work on local throwaway
# clusters: build and install the extension, start a source and a target
# cluster, load a sample schema with data into the source, clone its tables
# into the target with pgclone.table(), and show what was cloned.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

./scripts/setup.sh
cargo pgrx install --release --pg-config /usr/bin/pg_config >/dev/null
export PGCLONE_IT_DIR=${PGCLONE_IT_DIR:-/tmp/pgclone-demo}
./scripts/clusters.sh reset >/dev/null
set -a
eval "$(./scripts/clusters.sh env)"
set +a
psql_at() { local port=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -h "$PGCLONE_IT_SOCK" -p "$port" -U postgres "$@"; }

roles="DO \$\$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fixture_reader') THEN CREATE ROLE fixture_reader NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fixture_owner') THEN CREATE ROLE fixture_owner NOLOGIN; END IF;
END \$\$;"
echo "== source: sample schema with data (tests/fixtures/tables.sql)"
psql_at "$PGCLONE_IT_SRC_PORT" -d postgres -c "CREATE DATABASE sample" -c "$roles"
psql_at "$PGCLONE_IT_SRC_PORT" -d sample -f tests/fixtures/tables.sql
echo "== target: empty database with pgclone"
psql_at "$PGCLONE_IT_TGT_PORT" -d postgres -c "CREATE DATABASE staging" -c "$roles"
psql_at "$PGCLONE_IT_TGT_PORT" -d staging -f tests/fixtures/tables_prereq.sql -c "CREATE EXTENSION pgclone"

SRC="host=127.0.0.1 port=$PGCLONE_IT_SRC_PORT dbname=sample user=postgres password=$PGCLONE_IT_PASSWORD"
echo "== clone"
psql_at "$PGCLONE_IT_TGT_PORT" -d staging -v src="$SRC" <<'SQL'
\pset format unaligned
\pset tuples_only on
SELECT pgclone.table(:'src', 'app', 'accounts');
SELECT pgclone.table(:'src', 'app', 'nodes');
SELECT pgclone.table(:'src', 'app', 'scratch');
SELECT pgclone.table(:'src', 'app', 'orders');
SELECT pgclone.table(:'src', 'Odd Schema', 'Weird "Table"; DROP');
SELECT pgclone.table(:'src', 'app', 'orders', true, 'orders_on_hold', '{"where": "note = ''Do not ship; ever''"}');
SQL
echo "== what the target holds"
psql_at "$PGCLONE_IT_TGT_PORT" -d staging -c "
SELECT n.nspname AS schema, c.relname AS table, c.reltuples::bigint AS rows_estimated,
       pg_size_pretty(pg_total_relation_size(c.oid)) AS size,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid) AS indexes,
       (SELECT count(*) FROM pg_constraint k WHERE k.conrelid = c.oid) AS constraints,
       (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal) AS triggers
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname IN ('app', 'Odd Schema') ORDER BY 1, 2"
echo "== pg_dump --schema-only of app.accounts, source vs target"
for port_db in "$PGCLONE_IT_SRC_PORT sample" "$PGCLONE_IT_TGT_PORT staging"; do
    set -- $port_db
    pg_dump -h "$PGCLONE_IT_SOCK" -p "$1" -U postgres -d "$2" --schema-only -t app.accounts \
        | grep -v -e '^\\restrict' -e '^\\unrestrict' -e '^--' >"$PGCLONE_IT_DIR/dump-$2.sql"
done
if diff -q "$PGCLONE_IT_DIR/dump-sample.sql" "$PGCLONE_IT_DIR/dump-staging.sql" >/dev/null; then
    echo "identical ($(wc -l <"$PGCLONE_IT_DIR/dump-staging.sql") lines)"
else
    diff "$PGCLONE_IT_DIR/dump-sample.sql" "$PGCLONE_IT_DIR/dump-staging.sql" || true
fi
echo
echo "The clusters keep running: psql -h $PGCLONE_IT_SOCK -p $PGCLONE_IT_TGT_PORT -U postgres staging"
echo "Stop them with: PGCLONE_IT_DIR=$PGCLONE_IT_DIR ./scripts/clusters.sh stop"
