#!/usr/bin/env python3
"""summitd side by side with Prosody and ejabberd: the figures of issue 9, as ratios.

    python bench/compare.py [--servers summitd,prosody,ejabberd] [--runs 3] [--quick]

For each server in turn (summitd, then Prosody, then ejabberd when installed), on loopback,
with the configs in ``bench/peers/`` (plain-text c2s, internal accounts, SCRAM-SHA-256 at
4096 iterations, MAM archiving everything, carbons) and the same accounts ``user{i}`` /
``pw{i}`` (same salts, see ``peers/credentials.py``), each run starts the server fresh
and measures, with ``bench/loadgen.py`` in a process of its own:

1. logins/s and memory: after a warm-up of a few logins (so that first-use allocations do
   not count as sessions), ``--idle`` users log in (SCRAM-SHA-256, ``--concurrency`` in
   flight, from ``--sources`` 127.0.0.x source addresses) and stay connected, authenticated
   and bound, without presence; logins/s is their rate, and memory per idle session the
   server's resident memory growth (VmRSS of its process) divided by the sessions;
2. messages routed/s at saturation: ``--online`` users online, each keeping ``--window``
   chat messages in flight to the next user (closed loop);
3. latency at a fixed rate: the same number of users sending ``--rate`` messages/s in all
   (open loop), p50 and p99 from send to arrival, and the rate actually delivered.

The run is repeated ``--runs`` times; the table shows each figure's median, and summitd's
ratio to each peer. Everything is written to ``bench/results/compare-<time>.json``.
Every wait is bounded; servers are stopped by PID whatever happens.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from peers import credentials  # noqa: E402
from peers import ejabberd as ejabberd_peer  # noqa: E402
from peers import prosody as prosody_peer  # noqa: E402
from peers.summitd import Summitd  # noqa: E402

LOADGEN = os.path.join(HERE, "loadgen.py")
DOMAIN = "localhost"
SERVERS = ("summitd", "prosody", "ejabberd")

#: (key, label, unit, better, target ratio summitd/prosody or None)
METRICS = (
    ("logins_per_s", "logins/s (SCRAM-SHA-256, 4096 it.)", "/s", "higher", 1.0),
    ("messages_per_s", "messages routed/s at saturation", "/s", "higher", 1.2),
    ("rate_messages_per_s", "messages delivered/s at fixed rate", "/s", "higher", None),
    ("p50_ms", "p50 latency at fixed rate", "ms", "lower", None),
    ("p99_ms", "p99 latency at fixed rate", "ms", "lower", 1.0),
    ("kib_per_session", "memory per idle session", "KiB", "lower", 1.0),
)


class BenchError(Exception):
    pass


# -- the load generator, one process per phase -----------------------------------------------

def loadgen(command, opts, server, extra, timeout):
    """Run ``loadgen.py <command>`` against ``server``; its JSON result (a dict)."""
    fd, out = tempfile.mkstemp(suffix=".json", dir=opts.work)
    os.close(fd)
    argv = [sys.executable, LOADGEN, command, "--host", server.host, "--port", str(server.port),
            "--domain", DOMAIN, "--salt-cache", opts.salt_cache, "--json", out, *map(str, extra)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise BenchError(f"loadgen {command} against {server.name} took over {timeout} s") from None
    try:
        with open(out, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError):
        raise BenchError(f"loadgen {command} against {server.name} failed:\n{output}") from None
    finally:
        os.unlink(out)
    if opts.verbose:
        print(output.rstrip())
    return result


def hold_idle(opts, server, count):
    """Log ``count`` users in and keep the sessions; (held, logins/s, errors, server RSS in kB
    while they are all open)."""
    sources = [f"127.0.0.{i}" for i in range(2, 2 + opts.sources)]
    argv = [sys.executable, LOADGEN, "logins", "--host", server.host, "--port", str(server.port),
            "--domain", DOMAIN, "--salt-cache", opts.salt_cache, "--users", str(count),
            "--concurrency", str(opts.concurrency), "--source-addresses", ",".join(sources),
            "--hold", str(opts.hold_timeout), "--timeout", str(opts.hold_timeout)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(opts.hold_timeout + 30, proc.kill)
    watchdog.start()
    try:
        lines = []
        for line in proc.stdout:            # ends at the hold line, or when loadgen exits
            lines.append(line)
            match = HOLDING.match(line)
            if match:
                break
        else:
            raise BenchError(f"idle sessions on {server.name}: no hold\n{''.join(lines)}")
        time.sleep(opts.settle)
        rss = server.rss_kb()
        held, rate, errors = int(match["held"]), float(match["rate"]), int(match["errors"])
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
    return held, rate, errors, rss


HOLDING = re.compile(r"holding (?P<held>\d+) sessions .*; (?P<rate>[\d.]+) logins/s; "
                     r"(?P<errors>\d+) errors")


def wait_quiet(server, seconds=0.3, limit=15.0):
    """Wait until the server's CPU time stops growing (it finished closing sessions)."""
    deadline = time.monotonic() + limit
    last = server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(seconds)
        now = server.cpu_seconds()
        if now - last < seconds * 0.05:
            return
        last = now


# -- one run: a fresh server, the four measurements -----------------------------------------

def run_once(opts, server):
    figures = {}
    phases = figures["phase_s"] = {}
    clock = [time.monotonic()]

    def lap(name):
        now = time.monotonic()
        phases[name] = round(now - clock[0], 1)
        clock[0] = now

    server.start()
    lap("start")
    try:
        loadgen("logins", opts, server, ["--users", opts.warmup_logins, "--concurrency", 20,
                                         "--timeout", 60], 90)
        wait_quiet(server)
        before = server.rss_kb()
        held, rate, errors, after = hold_idle(opts, server, opts.idle)
        figures.update(idle_sessions=held, logins_per_s=rate, login_errors=errors,
                       rss_before_kib=before, rss_after_kib=after,
                       kib_per_session=round((after - before) / held, 2) if held else None)
        wait_quiet(server)
        lap("idle")

        common = ["--users", opts.online, "--concurrency", opts.concurrency, "--duration", opts.duration,
                  "--warmup", opts.warmup, "--drain", opts.drain, "--server-pid", server.pid,
                  "--timeout", 120]
        r = loadgen("messages", opts, server, common + ["--window", opts.window], 200)
        figures["messages_per_s"] = r.get("messages_per_s")
        figures["messages_errors"] = sum(r["errors"].values())
        figures["server_cpu_per_message_us"] = r.get("server_cpu_per_message_us")
        figures["saturation_p99_ms"] = r.get("latency", {}).get("p99_ms")
        wait_quiet(server)
        lap("saturation")

        r = loadgen("messages", opts, server, common + ["--rate", opts.rate], 200)
        latency = r.get("latency", {})
        figures["rate_messages_per_s"] = r.get("messages_per_s")
        figures["p50_ms"] = latency.get("p50_ms")
        figures["p99_ms"] = latency.get("p99_ms")
        figures["rate_errors"] = sum(r["errors"].values())
        lap("rate")
    finally:
        server.stop()
        lap("stop")
    figures["log_problems"] = server.log_problems()
    return figures


def make_server(name, work, opts):
    if name == "summitd":
        return Summitd(work, DOMAIN, opts.iterations)
    if name == "prosody":
        return prosody_peer.Prosody(work, DOMAIN, opts.iterations)
    return ejabberd_peer.Ejabberd(work, DOMAIN, opts.iterations)


def usable(name):
    if name == "prosody":
        return (True, "") if prosody_peer.available() else (False, "prosody not installed")
    if name == "ejabberd":
        return ejabberd_peer.available()
    return True, ""


def bench_server(opts, name, accounts):
    ok, why = usable(name)
    if not ok:
        print(f"== {name}: skipped ({why})")
        return None
    work = os.path.join(opts.work, name)
    os.makedirs(work)
    server = make_server(name, work, opts)
    started = time.monotonic()
    server.setup(accounts)
    print(f"== {name}: port {server.port}, {len(accounts)} accounts in {time.monotonic() - started:.1f} s")
    runs = []
    for n in range(1, opts.runs + 1):
        t0 = time.monotonic()
        try:
            figures = run_once(opts, server)
        except (BenchError, RuntimeError, OSError, subprocess.SubprocessError) as e:
            print(f"   run {n}: failed: {e}")
            runs.append({"error": str(e)})
            continue
        runs.append(figures)
        print(f"   run {n}: " + ", ".join(f"{key} {figures.get(key)}" for key, *_ in METRICS)
              + f" ({time.monotonic() - t0:.0f} s: {figures['phase_s']})")
        for line in figures["log_problems"]:
            print(f"   {name} log: {line}")
    return {"runs": runs, "median": medians(runs)}


def medians(runs):
    result = {}
    keys = {key for r in runs for key in r}
    for key in sorted(keys):
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if values:
            result[key] = round(statistics.median(values), 2)
    return result


# -- the table ----------------------------------------------------------------------------------

def ratio(a, b):
    return a / b if a is not None and b else None


def table(results):
    names = [n for n in SERVERS if results.get(n)]
    peers = [n for n in names if n != "summitd"]
    head = ["metric"] + names + [f"summitd/{p}" for p in peers] + ["target vs prosody"]
    rows = []
    for key, label, unit, better, target in METRICS:
        row = [f"{label} ({unit}, {better} is better)"]
        values = {n: results[n]["median"].get(key) for n in names}
        row += ["-" if values[n] is None else f"{values[n]:g}" for n in names]
        mine = values.get("summitd")
        row += [_fmt(ratio(mine, values[p])) for p in peers]
        if target is None:
            row.append("")
        else:
            r = ratio(mine, values.get("prosody"))
            met = r is not None and (r >= target if better == "higher" else r <= target)
            sign = ">=" if better == "higher" else "<="
            row.append(f"{sign} {target:g}: {'met' if met else 'NOT met'}" if r is not None else "n/a")
        rows.append(row)
    return head, rows


def _fmt(value):
    """Three significant digits: 0.00113 stays readable next to 55.6."""
    return "-" if value is None else f"{value:.3g}"


def render(head, rows):
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(head, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------

def versions():
    found = {"python": platform.python_version()}
    for name, argv in (("prosody", ["dpkg-query", "-W", "-f=${Version}", "prosody"]),
                       ("ejabberd", ["dpkg-query", "-W", "-f=${Version}", "ejabberd"])):
        try:
            found[name] = subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            found[name] = None
    return found


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--servers", default=",".join(SERVERS), help="comma-separated, in this order")
    p.add_argument("--runs", type=int, default=3, help="runs per server (median reported)")
    p.add_argument("--concurrency", type=int, default=100, help="logins in flight")
    p.add_argument("--online", type=int, default=1000, help="users online for the message phases")
    p.add_argument("--window", type=int, default=1, help="messages in flight per user at saturation")
    p.add_argument("--rate", type=int, default=2000, help="messages/s for the latency phase")
    p.add_argument("--duration", type=float, default=2.5, help="measured seconds per message phase")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each")
    p.add_argument("--drain", type=float, default=1.0,
                   help="seconds to wait for messages still in flight after each (then: unanswered)")
    p.add_argument("--idle", type=int, default=10000, help="idle sessions for the memory figure")
    p.add_argument("--sources", type=int, default=4, help="127.0.0.x source addresses for them")
    p.add_argument("--warmup-logins", type=int, default=200, help="logins before the memory baseline")
    p.add_argument("--settle", type=float, default=3.0, help="seconds between the last idle login and RSS")
    p.add_argument("--hold-timeout", type=float, default=180.0, help="bound on the idle phase")
    p.add_argument("--iterations", type=int, default=4096, help="SCRAM iteration count")
    p.add_argument("--quick", action="store_true", help="one short run with fewer sessions (a smoke test)")
    p.add_argument("--json", help="result file (default bench/results/compare-<time>.json)")
    p.add_argument("--keep", action="store_true", help="keep the servers' work folders")
    p.add_argument("--verbose", action="store_true", help="print every load generator report")
    return p


def main(argv=None):
    opts = build_parser().parse_args(argv)
    if opts.quick:
        opts.runs, opts.online, opts.idle, opts.duration = 1, 200, 1000, 2.0
    names = [n.strip() for n in opts.servers.split(",") if n.strip()]
    unknown = set(names) - set(SERVERS)
    if unknown:
        print(f"compare: unknown servers {sorted(unknown)}", file=sys.stderr)
        return 2
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = opts.idle + 1000
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        print(f"compare: warning: open files limited to {soft}, below {need}", file=sys.stderr)

    stamp = time.strftime("%Y%m%dT%H%M%S")
    results_dir = os.path.join(HERE, "results")
    os.makedirs(results_dir, exist_ok=True)
    opts.work = tempfile.mkdtemp(prefix="summitd-compare.")
    os.chmod(opts.work, 0o755)
    started = time.monotonic()
    try:
        count = max(opts.online, opts.idle, opts.warmup_logins)
        t0 = time.monotonic()
        accounts, computed = credentials.accounts(count, opts.iterations, os.path.join(results_dir, ".cache"))
        opts.salt_cache = os.path.join(opts.work, "salts.json")
        credentials.write_salt_cache(opts.salt_cache, accounts)
        print(f"== {count} accounts' SCRAM keys ready ({computed} computed) in {time.monotonic() - t0:.1f} s")
        results = {}
        for name in names:
            results[name] = bench_server(opts, name, accounts)
    finally:
        if opts.keep:
            print(f"kept {opts.work}")
        else:
            shutil.rmtree(opts.work, ignore_errors=True)
    head, rows = table(results)
    text = render(head, rows)
    print()
    print(text)
    elapsed = time.monotonic() - started
    print(f"\n(median of {opts.runs} runs; {len(accounts)} accounts; whole comparison {elapsed:.0f} s)")
    report = {
        "time": stamp, "elapsed_s": round(elapsed, 1), "machine": {"cpus": os.cpu_count(), **versions()},
        "settings": {k: v for k, v in vars(opts).items() if k not in ("work", "salt_cache")},
        "servers": results, "table": {"head": head, "rows": rows}, "markdown": text,
    }
    path = opts.json or os.path.join(results_dir, f"compare-{stamp}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
