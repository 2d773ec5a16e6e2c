#!/usr/bin/env bash
# pgclone-run.sh OPTIONS -- method e of run.sh: one pgclone.database() call,
# with the memory of pgclone's worker processes sampled meanwhile. Output
# (the summary line, then the memory report) goes to stdout, which run.sh
# keeps as e/clone.log.
set -euo pipefail
source "$(dirname "$0")/common.sh"
OPTS=$1
sample() {    # peak RssAnon and VmHWM (kB) of every "pgclone job" process
    declare -A anon hwm name
    while :; do
        for p in $(pgrep -f 'pgclone job' || true); do
            [[ -r /proc/$p/status ]] || continue
            local a h
            a=$(awk '/^RssAnon:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
            h=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
            [[ -n $a ]] || continue
            name[$p]=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | sed 's/ *$//')
            (( a > ${anon[$p]:-0} )) && anon[$p]=$a
            (( h > ${hwm[$p]:-0} )) && hwm[$p]=$h
        done
        if [[ -e $STOP ]]; then
            for p in "${!anon[@]}"; do
                printf '%s\tpid %s\tpeak private %s kB\tVmHWM %s kB\n' "${name[$p]}" "$p" "${anon[$p]}" "${hwm[$p]}"
            done | sort
            return
        fi
        sleep 0.2
    done
}
STOP=$(mktemp -u)
MEM=$(mktemp)
sample >"$MEM" &
sampler=$!
rc=0
psql -X -h "$CLONE_HOST" -p "$TGT_PORT" -U postgres -d "$TGT_DB" -v ON_ERROR_STOP=1 -At \
    -c "SELECT pgclone.database('host=$CLONE_HOST port=$SRC_PORT dbname=$SRC_DB user=postgres', true, '$OPTS')" || rc=$?
touch "$STOP"
wait "$sampler" || true
echo "--- memory of pgclone's processes (sampled every 0.2 s)"
cat "$MEM"
echo "--- the largest table's copy ran in worker pid:"
psql -X -h "$SOCKDIR" -p "$TGT_PORT" -U postgres -d "$TGT_DB" -At \
    -c "SELECT worker_pid || ' ' || format('%I.%I', schema_name, table_name) || ' ' || rows || ' rows ' || ms || ' ms' FROM pgclone.job_units WHERE kind = 'copy' ORDER BY est_bytes DESC LIMIT 1" || true
rm -f "$STOP" "$MEM"
exit $rc
