#!/usr/bin/env bash
# Install Debian packages for bench/compare.py (prosody, ejabberd) without starting their
# system services: the benchmark runs its own instances, with its own configs and ports.
# While apt runs, a policy-rc.d that refuses every start is in place (unless the machine
# already has one, which is left as it is).
#
#   bash bench/peers/install.sh prosody ejabberd
set -euo pipefail
[ "$#" -gt 0 ] || exit 0
if ! command -v apt-get >/dev/null; then
    echo "install.sh: no apt-get for $*; the comparison skips them" >&2
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install.sh: $* not installed, and installing needs root; the comparison skips them" >&2
    exit 0
fi
POLICY=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# bench/peers/install.sh: no service starts while it installs packages\nexit 101\n' > "$POLICY"
    chmod 755 "$POLICY"
    created=1
fi
cleanup() { if [ "$created" = 1 ]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT
echo "== installing $* from Debian (their services stay stopped)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
