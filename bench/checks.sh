#!/usr/bin/env bash
# checks.sh -- what pgclone.verify() costs, against the cheapest exact check
# a DBA could script: count(*) of every table, on the source and then on the
# target, measured in the same run.
#
# Needs the clusters (./cluster.sh start) and a source database
# (./dataset.sh, any SHAPE). Builds and installs the release extension,
# clones the source once into database $CHECK_DB on the target (the
# target preloads pgclone, as in pgclone.sh), checks that verify() finds it
# exact, then times RUNS rounds of:
#   counts  every table's SELECT count(*) FROM ONLY, source then target
#   verify  SELECT * FROM pgclone.verify(conninfo): exact counts and a
#           content checksum of every table, sequence and large object
#   verify with pgclone.verify_content = off: exact counts only
# and prints each round, the medians and their ratio.
set -euo pipefail
cd "$(dirname "$0")"
source ./common.sh

RUNS=${RUNS:-5}
CHECK_DB=${CHECK_DB:-checktgt}
CONNINFO="host=$CLONE_HOST port=$SRC_PORT dbname=$SRC_DB user=postgres"

../scripts/install-ext.sh --release >/dev/null
./cluster.sh start >/dev/null
loaded=$(psql_port "$TGT_PORT" -d postgres -Atc "SHOW shared_preload_libraries")
if [[ ",$loaded," != *",pgclone,"* ]]; then
    psql_port "$TGT_PORT" -d postgres -qc "ALTER SYSTEM SET shared_preload_libraries = 'pgclone'"
fi
runuser -u "$PG_OS_USER" -- "$PGBIN/pg_ctl" restart -w -t 120 -D "$TGT_DATA" -l "$LOGDIR/tgt.log" >/dev/null

echo "== clone $SRC_DB into $CHECK_DB"
psql_port "$TGT_PORT" -d postgres -c "DROP DATABASE IF EXISTS $CHECK_DB WITH (FORCE)" -c "CREATE DATABASE $CHECK_DB"
psql_port "$TGT_PORT" -d "$CHECK_DB" -c "CREATE EXTENSION pgclone" \
    -Atc "SELECT pgclone.database('$CONNINFO', true, '{\"parallel\": 2}')"
psql_port "$TGT_PORT" -d "$CHECK_DB" -Atc "VACUUM ANALYZE" >/dev/null
psql_port "$SRC_PORT" -d "$SRC_DB" -Atc "VACUUM ANALYZE" >/dev/null
bad=$(psql_port "$TGT_PORT" -d "$CHECK_DB" -Atc \
    "SELECT count(*) FROM pgclone.verify('$CONNINFO') WHERE match <> '✓'")
rels=$(psql_port "$TGT_PORT" -d "$CHECK_DB" -Atc "SELECT count(*) FROM pgclone.verify('$CONNINFO')")
[[ $bad == 0 ]] || die "verify() found $bad differences in a fresh clone"
echo "verify(): $rels rows, all ✓"

# Every table's count(*) on one side, one psql session, as a script would.
COUNT_SQL="SELECT format('SELECT count(*) FROM ONLY %s', c.oid::regclass)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgclone')
             AND n.nspname !~ '^pg_toast' \\gexec"
counts() {
    psql_port "$SRC_PORT" -d "$SRC_DB" -o /dev/null <<<"$COUNT_SQL"
    psql_port "$TGT_PORT" -d "$CHECK_DB" -o /dev/null <<<"$COUNT_SQL"
}
verify() {
    psql_port "$TGT_PORT" -d "$CHECK_DB" -o /dev/null -c "SELECT * FROM pgclone.verify('$CONNINFO')"
}
verify_counts() {
    psql_port "$TGT_PORT" -d "$CHECK_DB" -o /dev/null -c "SET pgclone.verify_content = off" \
        -c "SELECT * FROM pgclone.verify('$CONNINFO')"
}
seconds() {   # seconds cmd: wall time of cmd
    local t0 t1
    t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N)
    printf '%.2f' "$(echo "$t1 - $t0" | bc)"
}
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

counts >/dev/null; verify >/dev/null   # warm both caches alike
C=(); V=(); N=()
for i in $(seq 1 "$RUNS"); do
    c=$(seconds counts); v=$(seconds verify); n=$(seconds verify_counts)
    C+=("$c"); V+=("$v"); N+=("$n")
    echo "round $i: counts ${c} s   verify ${v} s   verify (counts only) ${n} s"
done
mc=$(printf '%s\n' "${C[@]}" | median)
mv=$(printf '%s\n' "${V[@]}" | median)
mn=$(printf '%s\n' "${N[@]}" | median)
echo "median: counts ${mc} s   verify ${mv} s (x$(echo "scale=2; $mv / $mc" | bc))   verify counts only ${mn} s (x$(echo "scale=2; $mn / $mc" | bc))"
