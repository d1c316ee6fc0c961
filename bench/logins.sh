#!/usr/bin/env bash
# Login benchmark: a throw-away summitd on a free loopback port, N accounts, the load
# generator logging them all in (C at a time), the figures, and the server stopped.
#
#   bash bench/logins.sh [N] [C]          # from the repo root; N=1000, C=100 by default
#
# Environment: USERS, CONCURRENCY (instead of the arguments), TIMEOUT (loadgen's bound
# on the run, default 120 s), BACKLOG (listen backlog of the c2s port, default: the
# endpoint's own), PYTHON (default .venv/bin/python), KEEP=1 (keep the temp dir),
# RESULTS (folder for the JSON result, default bench/results).
set -euo pipefail

N=${1:-${USERS:-1000}}
C=${2:-${CONCURRENCY:-100}}
TIMEOUT=${TIMEOUT:-120}
RESULTS=${RESULTS:-bench/results}
PY=${PYTHON:-.venv/bin/python}
. "$(dirname "$0")/lib.sh"
[ -x "$PY" ] || PY=python3

if [ ! -f summitd/__init__.py ] || [ ! -d twisted/plugins ]; then
    echo "logins.sh: run me from the summitd repo root" >&2
    exit 2
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

# Room for N client sockets here and N in the server (it inherits this limit).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((N + 200)) ]; then
    echo "logins.sh: warning: ulimit -n is $(ulimit -n), below N+200; logins may fail" >&2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/summitd-bench.XXXXXX")
SERVER_PID=""

cleanup() {
    stop_pid logins.sh "$SERVER_PID"
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
ENDPOINT="tcp:$PORT:interface=127.0.0.1${BACKLOG:+:backlog=$BACKLOG}"

cat > "$WORK/summitd.toml" <<EOF
[server]
domains = ["localhost"]
data_dir = "var"

[c2s]
endpoints = ["$ENDPOINT"]
direct_tls_endpoints = []
require_encryption = false

[auth]
scram_iterations = 4096

[storage]
database = "sqlite:///var/summitd.sqlite"

[extensions]
enabled = ["ping"]
EOF

echo "== summitd login benchmark: N=$N users, C=$C in flight, port $PORT, data in $WORK"
SECONDS=0
"$PY" bench/loadgen.py mkusers --config "$WORK/summitd.toml" --users "$N" \
    --user-template 'user{i}' --password-template 'pw{i}' --salt-cache "$WORK/salts.json"

"$PY" -c "from twisted.scripts.twistd import run; run()" -n --pidfile= \
    summitd --config "$WORK/summitd.toml" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Wait (20 s at most) until the port accepts connections.
ready=0
for _ in $(seq 1 200); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "logins.sh: summitd exited at start:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" != 1 ]; then
    echo "logins.sh: summitd did not listen on $PORT within 20 s" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi

server_cpu_ticks() {    # utime + stime of the server, in clock ticks
    awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"
}
cpu_before=$(server_cpu_ticks)

mkdir -p "$RESULTS"
RESULT="$RESULTS/logins-n$N-c$C-$(date +%Y%m%dT%H%M%S).json"
status=0
"$PY" bench/loadgen.py logins --host 127.0.0.1 --port "$PORT" --domain localhost \
    --users "$N" --concurrency "$C" --user-template 'user{i}' --password-template 'pw{i}' \
    --salt-cache "$WORK/salts.json" --timeout "$TIMEOUT" --json "$RESULT" || status=$?

cpu_after=$(server_cpu_ticks)
hz=$(getconf CLK_TCK)
peak_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$SERVER_PID/status")
tracebacks=$(grep -c Traceback "$WORK/server.log" || true)
"$PY" - "$RESULT" "$cpu_before" "$cpu_after" "$hz" "$peak_kb" "$tracebacks" <<'EOF'
import json, sys
path, before, after, hz, peak_kb, tracebacks = sys.argv[1:]
with open(path) as f:
    r = json.load(f)
cpu = (int(after) - int(before)) / int(hz)
r["server_cpu_s"] = round(cpu, 2)
r["server_cpu_per_login_ms"] = round(cpu / r["logins_ok"] * 1000, 3) if r["logins_ok"] else None
r["server_peak_rss_mb"] = round(int(peak_kb) / 1024, 1)
r["server_log_tracebacks"] = int(tracebacks)
with open(path, "w") as f:
    json.dump(r, f, indent=2, sort_keys=True)
    f.write("\n")
print(f"server CPU: {r['server_cpu_s']} s ({r['server_cpu_per_login_ms']} ms/login), "
      f"peak RSS {r['server_peak_rss_mb']} MB, tracebacks in its log: {tracebacks}")
EOF
echo "result: $RESULT  (whole run ${SECONDS} s)"
if [ "$tracebacks" != 0 ]; then
    echo "logins.sh: the server log has tracebacks:" >&2
    grep -n -A 15 Traceback "$WORK/server.log" | head -60 >&2
    status=1
fi
exit "$status"
