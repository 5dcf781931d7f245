#!/usr/bin/env bash
# Run Prometheus on this machine, without Docker, against a local shopguard job.
#
#   scripts/prometheus_local.sh [METRICS_PORT] [PROCESSES]
#
# METRICS_PORT is the port of `shopguard run --metrics-port` (default 9464);
# PROCESSES the `-p N` of the job (default 1): process i serves METRICS_PORT + i
# and every one of them is scraped.
# Prometheus (Debian's `prometheus` package: apt-get install prometheus)
# listens on 127.0.0.1:9090 (override with PROMETHEUS_LISTEN=127.0.0.1:9091),
# keeps its data in ./.cache/prometheus/data, loads the shopguard alert rules,
# and scrapes every 5s. Open http://127.0.0.1:9090/graph for queries and
# /alerts for the rules. Ctrl-C stops it; the data stays for the next run
# (rm -rf .cache/prometheus to start over).
#
# Example, two terminals:
#   .venv/bin/shopguard run -p 2 --metrics-port 9464 --out out/
#   scripts/prometheus_local.sh 9464 2
set -euo pipefail

port="${1:-9464}"
processes="${2:-1}"
listen="${PROMETHEUS_LISTEN:-127.0.0.1:9090}"

if [[ ! "$port" =~ ^[0-9]+$ ]] || [[ ! "$processes" =~ ^[0-9]+$ ]] \
        || (( port < 1 || processes < 1 || port + processes - 1 > 65535 )); then
    echo "usage: $0 [METRICS_PORT] [PROCESSES]   (default 9464 1; got '$port' '$processes')" >&2
    exit 2
fi
targets=""
for (( i = 0; i < processes; i++ )); do
    targets+="${targets:+, }'127.0.0.1:$(( port + i ))'"
done
if ! command -v prometheus >/dev/null 2>&1; then
    echo "prometheus not found: install it with 'apt-get install prometheus' (Debian)" >&2
    exit 1
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${PROMETHEUS_CACHE:-$root/.cache/prometheus}"
mkdir -p "$cache/data"

# The checked-in local config, with the chosen port and absolute rule paths.
sed -e "s#'127\.0\.0\.1:9464'#${targets}#" \
    -e "s#^\(  - \)rules/\*\.yml#\1${root}/config/prometheus/rules/*.yml#" \
    "$root/config/prometheus/prometheus.local.yml" > "$cache/prometheus.yml"

if command -v promtool >/dev/null 2>&1; then
    promtool check config "$cache/prometheus.yml" >/dev/null
fi

echo "prometheus on http://${listen}  scraping ${targets}  data in ${cache}/data" >&2
exec prometheus \
    --config.file="$cache/prometheus.yml" \
    --storage.tsdb.path="$cache/data" \
    --storage.tsdb.retention.time=7d \
    --web.listen-address="$listen" \
    --web.enable-lifecycle
