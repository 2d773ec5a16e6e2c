#!/usr/bin/env bash
# demo.sh -- set everything up and show pgclone at work on local throwaway
# clusters: build and install the extension, start a source and a target
# cluster, load the pagila sample database (tests/fixtures/pagila: schema,
# MIT licence; tests/fixtures/pagila-data.sql: data) into the source, clone the whole
# database into the target with pgclone.database(), and show the result.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
PAGILA=${PAGILA:-tests/fixtures/pagila/pagila-schema-pg15.sql}
[[ -f $PAGILA ]] || { echo "demo: $PAGILA not found (set PAGILA=...)" >&2; exit 1; }

./scripts/setup.sh
./scripts/install-ext.sh --release
export PGCLONE_IT_DIR=${PGCLONE_IT_DIR:-/tmp/pgclone-demo}
./scripts/clusters.sh reset >/dev/null
set -a
eval "$(./scripts/clusters.sh env)"
set +a
psql_at() { local port=$1; shift; psql -X -q -v ON_ERROR_STOP=1 -h "$PGCLONE_IT_SOCK" -p "$port" -U postgres "$@"; }

echo "== source: pagila with data"
psql_at "$PGCLONE_IT_SRC_PORT" -d postgres -c "CREATE DATABASE pagila"
psql_at "$PGCLONE_IT_SRC_PORT" -d pagila -f "$PAGILA" >/dev/null
psql_at "$PGCLONE_IT_SRC_PORT" -d pagila -f tests/fixtures/pagila-data.sql >/dev/null
echo "== target: an empty database with pgclone"
psql_at "$PGCLONE_IT_TGT_PORT" -d postgres -c "CREATE DATABASE staging"
psql_at "$PGCLONE_IT_TGT_PORT" -d staging -c "CREATE EXTENSION pgclone"

SRC="host=127.0.0.1 port=$PGCLONE_IT_SRC_PORT dbname=pagila user=postgres password=$PGCLONE_IT_PASSWORD"
echo "== clone: pgclone.database(), then one table under another name"
psql_at "$PGCLONE_IT_TGT_PORT" -d staging -v src="$SRC" <<'SQL'
\pset format unaligned
\pset tuples_only on
SELECT pgclone.database(:'src');
SELECT pgclone.table(:'src', 'public', 'film', true, 'film_short', '{"where": "length < 60"}');
SQL
echo "== what the target holds (largest tables)"
psql_at "$PGCLONE_IT_TGT_PORT" -d staging -c "
SELECT c.oid::regclass AS relation, c.relkind AS kind,
       (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', c.oid::regclass), false, true, '')))[1]::text::bigint AS rows,
       pg_size_pretty(pg_total_relation_size(c.oid)) AS size
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname = 'public' AND NOT c.relispartition
ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 12"
echo "== pg_dump --schema-only, source vs target"
for port_db in "$PGCLONE_IT_SRC_PORT pagila" "$PGCLONE_IT_TGT_PORT staging"; do
    set -- $port_db
    pg_dump -h "$PGCLONE_IT_SOCK" -p "$1" -U postgres -d "$2" --schema-only -N pgclone -T public.film_short \
        | grep -v -e '^\\restrict' -e '^\\unrestrict' -e '^--' -e '^$' -e 'EXTENSION IF NOT EXISTS pgclone' \
                  -e 'COMMENT ON EXTENSION pgclone' >"$PGCLONE_IT_DIR/dump-$2.sql"
done
if diff -q "$PGCLONE_IT_DIR/dump-pagila.sql" "$PGCLONE_IT_DIR/dump-staging.sql" >/dev/null; then
    echo "identical ($(wc -l <"$PGCLONE_IT_DIR/dump-staging.sql") lines)"
else
    diff "$PGCLONE_IT_DIR/dump-pagila.sql" "$PGCLONE_IT_DIR/dump-staging.sql" || true
fi
echo
echo "The clusters keep running: psql -h $PGCLONE_IT_SOCK -p $PGCLONE_IT_TGT_PORT -U postgres staging"
echo "Stop them with: PGCLONE_IT_DIR=$PGCLONE_IT_DIR ./scripts/clusters.sh stop"
