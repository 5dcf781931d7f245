#!/bin/sh
# One process of a shopguard cluster across hosts (docker-compose, Kubernetes).
#
# Environment:
#   SHOPGUARD_PROCESS_ID            this process's index, 0..N-1 (Kubernetes: the pod ordinal)
#   SHOPGUARD_PROCESSES             N, the number of processes of the cluster
#   SHOPGUARD_ADDRESSES             host:port of every process, in process order, comma-separated
#   SHOPGUARD_RECOVERY_PARTITIONS   recovery partitions of the whole cluster (fixed once created)
#   SHOPGUARD_RECOVERY_DIR          this process's recovery folder (default /data/recovery)
# Arguments are passed on to `shopguard run` (e.g. --config FILE).
set -eu

: "${SHOPGUARD_PROCESS_ID:?set SHOPGUARD_PROCESS_ID to this process index (0..N-1)}"
: "${SHOPGUARD_PROCESSES:?set SHOPGUARD_PROCESSES to the number of processes of the cluster}"
: "${SHOPGUARD_ADDRESSES:?set SHOPGUARD_ADDRESSES to host:port of every process, comma-separated}"
recovery_dir=${SHOPGUARD_RECOVERY_DIR:-/data/recovery}

listed=$(echo "$SHOPGUARD_ADDRESSES" | tr ',' '\n' | grep -c .)
if [ "$listed" -ne "$SHOPGUARD_PROCESSES" ]; then
    echo "error: SHOPGUARD_ADDRESSES lists $listed processes but SHOPGUARD_PROCESSES is $SHOPGUARD_PROCESSES: list every process once" >&2
    exit 2
fi

"$(dirname "$0")/init-recovery-share.sh" "$recovery_dir" "$SHOPGUARD_PROCESS_ID" "$SHOPGUARD_PROCESSES" \
    "${SHOPGUARD_RECOVERY_PARTITIONS:-8}"
exec shopguard run --process-id "$SHOPGUARD_PROCESS_ID" --addresses "$SHOPGUARD_ADDRESSES" \
    --recovery-dir "$recovery_dir" "$@"
