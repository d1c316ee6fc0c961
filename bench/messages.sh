#!/usr/bin/env bash
# Message routing benchmark, archiving off and on: a throw-away summitd on a free loopback
# port, N accounts chatting in a ring (loadgen.py messages, W messages in flight each), run
# once with extensions ping+delivery and once with mam added; the two results and the cost
# of archiving (server CPU per message, messages/s) are printed and saved.
#
#   bash bench/messages.sh [N] [W]        # from the repo root; N=200 users, W=10 in flight
#
# Environment: USERS, WINDOW (instead of the arguments), RATE (open loop: messages/s offered in
# all; default 0, closed loop), DURATION (measured seconds, default 10), WARMUP (default 2), MODES (default "off on"), PYTHON (default .venv/bin/python),
# KEEP=1 (keep the temp dirs), RESULTS (folder for the JSON results, default bench/results).
set -euo pipefail

N=${1:-${USERS:-200}}
W=${2:-${WINDOW:-10}}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
MODES=${MODES:-off on}
RATE=${RATE:-0}
RESULTS=${RESULTS:-bench/results}
PY=${PYTHON:-.venv/bin/python}
. "$(dirname "$0")/lib.sh"
[ -x "$PY" ] || PY=python3

if [ ! -f summitd/__init__.py ] || [ ! -d twisted/plugins ]; then
    echo "messages.sh: run me from the summitd repo root" >&2
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=""
SERVER_PID=""

stop_server() {
    stop_pid messages.sh "$SERVER_PID"
    SERVER_PID=""
}

cleanup() {
    stop_server
    if [ -n "$WORK" ]; then
        if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$RESULTS"
STAMP=$(date +%Y%m%dT%H%M%S)
status=0

run_mode() {    # $1: off|on
    local mode=$1 extensions='["ping", "delivery"]' mam_section=""
    if [ "$mode" = on ]; then
        extensions='["ping", "delivery", "mam"]'
        mam_section=$(printf '[extensions.mam]\n%s' "${MAM_OPTIONS:-}")
    fi
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/summitd-bench.XXXXXX")
    local port
    port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    cat > "$WORK/summitd.toml" <<CONF
[server]
domains = ["localhost"]
data_dir = "var"

[c2s]
endpoints = ["tcp:$port:interface=127.0.0.1:backlog=1024"]
direct_tls_endpoints = []
require_encryption = false

[storage]
database = "sqlite:///var/summitd.sqlite"

[extensions]
enabled = $extensions

$mam_section
CONF
    "$PY" bench/loadgen.py mkusers --config "$WORK/summitd.toml" --users "$N" \
        --user-template 'user{i}' --password-template 'pw{i}' --salt-cache "$WORK/salts.json" >/dev/null
    "$PY" -c "from twisted.scripts.twistd import run; run()" -n --pidfile= \
        summitd --config "$WORK/summitd.toml" > "$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    local ready=0
    for _ in $(seq 1 200); do               # 20 s at most to listen
        kill -0 "$SERVER_PID" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then ready=1; break; fi
        sleep 0.1
    done
    if [ "$ready" != 1 ]; then
        echo "messages.sh: summitd did not start:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    echo "== archiving $mode: N=$N users, W=$W in flight each (rate $RATE), ${DURATION} s measured"
    local result="$RESULTS/messages-$mode-n$N-w$W-r$RATE-$STAMP.json"
    "$PY" bench/loadgen.py messages --host 127.0.0.1 --port "$port" --domain localhost \
        --users "$N" --window "$W" --rate "$RATE" --duration "$DURATION" --warmup "$WARMUP" \
        --salt-cache "$WORK/salts.json" --server-pid "$SERVER_PID" --json "$result" || status=1
    if grep -q "falling behind" "$WORK/server.log"; then
        echo "messages.sh: the archive fell behind (messages routed but not archived):" >&2
        grep "falling behind" "$WORK/server.log" | tail -3 >&2
    fi
    if grep -q Traceback "$WORK/server.log"; then
        echo "messages.sh: the server log has tracebacks:" >&2
        grep -n -A 15 Traceback "$WORK/server.log" | head -40 >&2
        status=1
    fi
    stop_server
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
    WORK=""
}

for mode in $MODES; do
    run_mode "$mode"
done

off="$RESULTS/messages-off-n$N-w$W-r$RATE-$STAMP.json"
on="$RESULTS/messages-on-n$N-w$W-r$RATE-$STAMP.json"
if [ -f "$off" ] && [ -f "$on" ]; then
    "$PY" - "$off" "$on" <<'EOF'
import json, sys
off, on = (json.load(open(p)) for p in sys.argv[1:3])
cpu_off, cpu_on = off.get("server_cpu_per_message_us"), on.get("server_cpu_per_message_us")
print(f"archiving off: {off['messages_per_s']} messages/s, p50 {off['latency']['p50_ms']} ms, "
      f"p99 {off['latency']['p99_ms']} ms, server {cpu_off} us CPU/message")
print(f"archiving on:  {on['messages_per_s']} messages/s, p50 {on['latency']['p50_ms']} ms, "
      f"p99 {on['latency']['p99_ms']} ms, server {cpu_on} us CPU/message")
if cpu_off and cpu_on:
    print(f"archiving costs {100 * (cpu_on / cpu_off - 1):+.1f}% server CPU per message, "
          f"{100 * (1 - on['messages_per_s'] / off['messages_per_s']):+.1f}% throughput")
EOF
fi
exit "$status"
