#!/bin/sh
# Install the Debian packages given as arguments when some are missing.
#
#   scripts/system-packages.sh PACKAGE...
#
# Already installed: returns at once (one dpkg-query). As root: apt-get update,
# then apt-get install of the missing ones, non-interactive. Otherwise: one
# line saying exactly what to install and how, and exit 1. Not Debian (no
# dpkg-query): names the packages to install by other means and goes on.
set -eu

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "note: not a Debian system; make sure the equivalents of these are installed: $*" >&2
    exit 0
fi
missing=""
for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages:$missing; install them with: sudo apt-get update && sudo apt-get install -y --no-install-recommends$missing" >&2
    exit 1
fi
echo "installing system packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # one word per package
apt-get install -y -qq --no-install-recommends $missing >/dev/null
