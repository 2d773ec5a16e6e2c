#!/usr/bin/env bash
# pgclone-run.sh OPTIONS -- method e of run.sh: one pgclone.database() call,
# with the memory of pgclone's processes sampled meanwhile (every 0.2 s, by
# memsample.py).
# Output (the summary line, then the memory report) goes to stdout, which
# run.sh keeps as e/clone.log. Private memory is RssAnon (the process's own
# heap); VmHWM also counts the shared buffers a process touched.
set -euo pipefail
source "$(dirname "$0")/common.sh"
OPTS=$1
SAMPLES=$(mktemp)
STOP=$(mktemp -u)
python3 "$(dirname "$0")/memsample.py" "$SAMPLES" "$STOP" &
sampler=$!
rc=0
psql -X -h "$CLONE_HOST" -p "$TGT_PORT" -U postgres -d "$TGT_DB" -v ON_ERROR_STOP=1 -At \
    -c "SELECT pgclone.database('host=$CLONE_HOST port=$SRC_PORT dbname=$SRC_DB user=postgres', true, '$OPTS')" || rc=$?
touch "$STOP"
wait "$sampler" || true
echo "--- peak memory of pgclone's processes (sampled every 0.2 s)"
awk '{ if ($3 > a[$2]) a[$2] = $3; if ($4 > h[$2]) h[$2] = $4; n[$2] = $5 }
     END { for (p in a) printf "%s pid %s: private %d kB, VmHWM %d kB\n", n[p], p, a[p], h[p] }' "$SAMPLES" | sort
# The unit that moved the most bytes: which process, when, and its private
# memory meanwhile (a serial clone has no units: nothing to show).
big=$(psql -X -h "$SOCKDIR" -p "$TGT_PORT" -U postgres -d "$TGT_DB" -At -F '|' -c \
    "SELECT worker_pid, extract(epoch FROM finished) - ms / 1000.0, extract(epoch FROM finished), label, rows
     FROM pgclone.job_units WHERE status = 'done' AND bytes IS NOT NULL
     ORDER BY bytes DESC, unit_id LIMIT 1" 2>/dev/null || true)
if [[ -n $big ]]; then
    IFS='|' read -r pid t0 t1 label rows <<<"$big"
    peak=$(awk -v p="$pid" -v a="$t0" -v b="$t1" '$2 == p && $1 >= a && $1 <= b && $3 > m {m = $3} END {print m + 0}' "$SAMPLES")
    echo "--- unit \"$label\" ($rows rows) in pid $pid: peak private memory $peak kB while it ran"
fi
# Where the time went: the job's phases (wall seconds; copy and index time
# summed over workers).
psql -X -h "$SOCKDIR" -p "$TGT_PORT" -U postgres -d "$TGT_DB" -At -c \
    "SELECT 'phases: ' || phases::text FROM pgclone.jobs ORDER BY job_id DESC LIMIT 1" 2>/dev/null || true
rm -f "$STOP" "$SAMPLES"
exit $rc
