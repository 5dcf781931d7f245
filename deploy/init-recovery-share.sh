#!/bin/sh
# Give one process of a shopguard cluster its share of the recovery partitions, once.
#
#   init-recovery-share.sh DIR PROCESS_ID PROCESSES PARTITIONS
#
# Bytewax keeps a fixed number of recovery partitions (SQLite files
# part-N.sqlite3); the cluster as a whole must hold each of them exactly once,
# while any one process may hold any subset. Each process keeps its recovery
# folder on its own volume (a docker volume, a PersistentVolumeClaim), so
# process I keeps partitions I, I+PROCESSES, I+2*PROCESSES... A folder that
# already holds partitions is left as it is (a restart resumes from them), but
# only for the process count it was made for (`cluster.env` beside them): the
# shares of a store fit one process count (deploy/README.md, "Adding a process").
set -eu

if [ "$#" -ne 4 ]; then
    echo "usage: $0 DIR PROCESS_ID PROCESSES PARTITIONS" >&2
    exit 2
fi
dir=$1 id=$2 processes=$3 partitions=$4

if ls "$dir"/part-*.sqlite3 >/dev/null 2>&1; then
    made_for=$(sed -n 's/^processes=//p' "$dir/cluster.env" 2>/dev/null || true)
    if [ -n "$made_for" ] && [ "$made_for" != "$processes" ]; then
        echo "error: the recovery store in $dir belongs to a cluster of $made_for processes, not $processes: run $made_for processes, or follow deploy/README.md \"Adding a process\"" >&2
        exit 2
    fi
    echo "recovery: $dir already holds its partitions; resuming from them" >&2
    exit 0
fi
if [ "$id" -lt 0 ] || [ "$id" -ge "$processes" ]; then
    echo "error: process id $id is outside 0..$((processes - 1)): check SHOPGUARD_PROCESS_ID and SHOPGUARD_PROCESSES" >&2
    exit 2
fi
if [ "$partitions" -lt "$processes" ]; then
    echo "error: $partitions recovery partitions cannot be shared by $processes processes: set SHOPGUARD_RECOVERY_PARTITIONS >= the most processes you will run" >&2
    exit 2
fi

all=$(mktemp -d)
python -m bytewax.recovery "$all" "$partitions"
mkdir -p "$dir"
i=$id
while [ "$i" -lt "$partitions" ]; do
    mv "$all/part-$i.sqlite3" "$dir/"
    i=$((i + processes))
done
rm -rf "$all"
printf 'processes=%s\npartitions=%s\n' "$processes" "$partitions" > "$dir/cluster.env"
echo "recovery: created partitions $id, $((id + processes))... of $partitions in $dir" >&2
