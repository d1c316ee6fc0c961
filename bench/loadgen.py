#!/usr/bin/env python3
"""summitd load generator: many XMPP logins, or chat between them, over raw asyncio sockets
(no XMPP library).

    python bench/loadgen.py logins --host 127.0.0.1 --port 5222 --domain localhost \\
        --users 1000 --concurrency 100 --password-template 'pw{i}' --user-template 'user{i}' \\
        [--salt-cache FILE] [--json FILE] [--timeout 120]

    python bench/loadgen.py messages --host 127.0.0.1 --port 5222 --users 200 --window 10 \\
        --duration 10 [--rate R] [--warmup 2] [--server-pid PID] [--salt-cache FILE] [--json FILE]

    python bench/loadgen.py mkusers --config summitd.toml --users 1000 --salt-cache FILE ...

``logins`` logs in N users (i = 1..N) with at most C logins in flight, on plain-text
streams (the server must allow them: ``require_encryption = false``): stream
header, features, SASL SCRAM-SHA-256 (auth, challenge, response, success, the
server signature checked), stream restart, resource binding. Every session stays
connected until all logins are done; then one XEP-0199 ping goes down every
session at once (``--verify``, the default) to show they are all alive together,
and the sessions close. It prints logins/s, login latency (p50/p90/p99/max),
per-phase latency, errors, and writes them as JSON with ``--json``.

It is written to cost the client far less than the server: one asyncio loop,
byte-string scanning instead of an XML parser, and no PBKDF2 during the run. The
salted password (SCRAM's Hi(), 4096+ HMAC rounds) is looked up in
``--salt-cache``: written by ``mkusers`` when it creates the accounts (it knows
the salt it picked), or filled and saved by a first ``logins`` run (computed once
per user, keyed by the server's salt and iteration count, so a stale entry is
simply recomputed).

``messages`` logs the N users in the same way, sends initial presence (pinging each
session after it, so the server has processed it), then every user sends chat
messages to the next user's bare JID (a ring), keeping ``--window`` messages in
flight: each one that arrives at its recipient (found by its id) makes its sender
send the next (closed loop: the server's capacity). With ``--rate R`` it sends R
messages/s in all instead, whatever arrives (open loop: latency at a given load). After ``--warmup`` seconds it counts for ``--duration`` seconds:
messages routed per second, latency from send to arrival (p50/p90/p99/max), its
own CPU per message and, with ``--server-pid``, the server's (from /proc).
Bounced messages are counted as errors.

``mkusers`` creates the accounts straight in the server's database through
summitd's own account store (the way ``summitctl adduser`` does, without one
process per account), before the server starts.

Everything is bounded: ``--timeout`` for the whole run (default 120 s) and
``--login-timeout`` per login; only loopback or explicitly given hosts are used.
"""

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import math
import os
import re
import resource
import secrets
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_PING = "urn:xmpp:ping"
MECHANISM = "SCRAM-SHA-256"
HASH = "sha256"
READ_SIZE = 65536


class LoginError(Exception):
    """A login that did not make it; ``kind`` groups them in the report."""

    def __init__(self, kind, detail=""):
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


# -- SCRAM (RFC 5802), client side, with the salted password supplied ---------------

def _b64(data):
    return base64.b64encode(data).decode("ascii")


class SaltCache:
    """username -> (salt, iterations, salted password); a JSON file between runs."""

    def __init__(self, path=None):
        self.path = path
        self.entries = {}
        self.computed = 0
        self.changed = False
        if path and os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            for user, e in data.get("entries", {}).items():
                self.entries[user] = (base64.b64decode(e["salt"]), int(e["iterations"]),
                                      base64.b64decode(e["salted"]))

    def salted(self, user, password, salt, iterations):
        entry = self.entries.get(user)
        if entry is not None and entry[0] == salt and entry[1] == iterations:
            return entry[2]
        # Not cached (or the account was re-created): compute once, remember.
        salted = hashlib.pbkdf2_hmac(HASH, password.encode("utf-8"), salt, iterations)
        self.entries[user] = (salt, iterations, salted)
        self.computed += 1
        self.changed = True
        return salted

    def put(self, user, salt, iterations, salted):
        self.entries[user] = (salt, iterations, salted)
        self.changed = True

    def save(self):
        if not self.path or not self.changed:
            return
        data = {"hash": HASH, "entries": {
            user: {"salt": _b64(s), "iterations": i, "salted": _b64(p)}
            for user, (s, i, p) in self.entries.items()}}
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)
        self.changed = False


def scram_first(user):
    nonce = secrets.token_urlsafe(18)
    bare = f"n={user.replace('=', '=3D').replace(',', '=2C')},r={nonce}"
    return nonce, bare, ("n,," + bare).encode("utf-8")


def scram_final(cache, user, password, nonce, client_first_bare, server_first):
    """(client-final message, expected server signature)."""
    try:
        text = server_first.decode("utf-8")
        attrs = dict(part.split("=", 1) for part in text.split(","))
        salt, iterations, server_nonce = base64.b64decode(attrs["s"]), int(attrs["i"]), attrs["r"]
    except (ValueError, KeyError, UnicodeDecodeError) as e:
        raise LoginError("scram", f"bad server-first-message: {e}") from None
    if not server_nonce.startswith(nonce):
        raise LoginError("scram", "server nonce does not extend ours")
    salted = cache.salted(user, password, salt, iterations)
    without_proof = f"c=biws,r={server_nonce}"       # biws = base64("n,,")
    auth_message = f"{client_first_bare},{text},{without_proof}".encode("utf-8")
    client_key = hmac.new(salted, b"Client Key", HASH).digest()
    signature = hmac.new(hashlib.sha256(client_key).digest(), auth_message, HASH).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, signature))
    server_key = hmac.new(salted, b"Server Key", HASH).digest()
    expected = hmac.new(server_key, auth_message, HASH).digest()
    return f"{without_proof},p={_b64(proof)}".encode("utf-8"), expected


# -- one XMPP connection, read with byte scanning --------------------------------------

class Conn:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.index = None           # the user number i, once logged in

    async def expect(self, *names):
        """Read until one of the top-level elements ``names`` (bytes, e.g. b"challenge")
        is complete; returns (name, element bytes). Stream errors and EOF raise."""
        while True:
            found = self._find(names + (b"stream:error",))
            if found is not None:
                name, start, end = found
                element = bytes(self.buf[start:end])
                del self.buf[:end]
                if name == b"stream:error":
                    raise LoginError("stream-error:" + _condition(element))
                return name, element
            data = await self.reader.read(READ_SIZE)
            if not data:
                if b"</stream:stream>" in self.buf:
                    raise LoginError("stream-closed", "the server closed the stream")
                raise LoginError("eof", "connection closed by the server")
            self.buf += data

    def _find(self, names):
        """(name, start, end) of the earliest complete element among ``names``, or None."""
        best = None
        for name in names:
            span = _locate(self.buf, name)
            if span is not None and (best is None or span[0] < best[1]):
                best = (name, span[0], span[1])
        return best

    def send(self, data):
        self.writer.write(data if isinstance(data, bytes) else data.encode("utf-8"))

    def close(self):
        try:
            self.writer.write(b"</stream:stream>")
        except Exception:
            pass
        self.writer.close()


def _locate(buf, name):
    """Where the element ``<name ...>...</name>`` (or ``<name .../>``) is in ``buf``, once
    complete: (start, end), else None. Enough for the flat, known replies of a login."""
    tag = b"<" + name
    pos = 0
    while True:
        start = buf.find(tag, pos)
        if start < 0:
            return None
        after = start + len(tag)
        if after >= len(buf):
            return None                       # the name may go on: wait for more
        if buf[after] in b" />\t\r\n":
            break
        pos = after
    gt = buf.find(b">", after)
    if gt < 0:
        return None
    if buf[gt - 1] == 0x2F:                   # <name .../>
        return start, gt + 1
    close = buf.find(b"</" + name + b">", gt)
    if close < 0:
        return None
    return start, close + len(name) + 3


def _condition(element):
    """The defined condition of an error or SASL failure: its first child other than <text>."""
    gt = element.find(b">")
    for match in _CHILD.finditer(element, gt + 1):
        name = match.group(1)
        if name not in (b"text", b"error"):
            return name.decode("utf-8", "replace")
    return "unknown"


_CHILD = re.compile(rb"<([A-Za-z][-\w.:]*)")


def _text(element):
    gt = element.find(b">")
    if element[gt - 1] == ord("/"):
        return b""
    lt = element.rfind(b"</")
    return element[gt + 1:lt].strip()


def _attr(element, name):
    gt = element.find(b">")
    head = element[:gt]
    for quote in (b"'", b'"'):
        key = b" " + name + b"=" + quote
        i = head.find(key)
        if i >= 0:
            j = head.find(quote, i + len(key))
            return head[i + len(key):j].decode("utf-8", "replace")
    return None


def stream_header(domain):
    return (f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' xml:lang='en' "
            "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>").encode("utf-8")


async def login(args, cache, i, phases):
    """Log in user i; returns the open Conn (bound). Raises LoginError."""
    user = args.user_template.format(i=i)
    password = args.password_template.format(i=i)
    t0 = time.perf_counter()
    try:
        sources = getattr(args, "source_addresses", None)
        local = (sources[i % len(sources)], 0) if sources else None
        reader, writer = await asyncio.open_connection(args.host, args.port, limit=READ_SIZE * 4,
                                                       local_addr=local)
    except OSError as e:
        raise LoginError("connect", f"{type(e).__name__}: {e}") from None
    conn = Conn(reader, writer)
    try:
        t_connected = time.perf_counter()
        header = stream_header(args.domain)
        conn.send(header)
        _, features = await conn.expect(b"stream:features")
        if f">{MECHANISM}<".encode() not in features:
            raise LoginError("no-mechanism", f"{MECHANISM} not offered")
        t_features = time.perf_counter()
        nonce, bare, first = scram_first(user)
        conn.send(f"<auth xmlns='{NS_SASL}' mechanism='{MECHANISM}'>{_b64(first)}</auth>")
        name, element = await conn.expect(b"challenge", b"failure")
        if name == b"failure":
            raise LoginError("sasl-failure:" + _condition(element))
        try:
            server_first = base64.b64decode(_text(element), validate=True)
        except ValueError:
            raise LoginError("scram", "challenge is not base64") from None
        final, expected = scram_final(cache, user, password, nonce, bare, server_first)
        conn.send(f"<response xmlns='{NS_SASL}'>{_b64(final)}</response>")
        name, element = await conn.expect(b"success", b"failure", b"challenge")
        if name != b"success":
            raise LoginError("sasl-failure:" + _condition(element) if name == b"failure"
                             else "sasl-unexpected-challenge")
        data = base64.b64decode(_text(element) or b"")
        verifier = dict(p.split(b"=", 1) for p in data.split(b",") if b"=" in p).get(b"v", b"")
        if not hmac.compare_digest(base64.b64decode(verifier), expected):
            raise LoginError("scram", "bad server signature")
        t_auth = time.perf_counter()
        conn.send(header)
        _, features = await conn.expect(b"stream:features")
        if NS_BIND.encode() not in features:
            raise LoginError("no-bind", "no bind feature after authentication")
        conn.send(f"<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>lg{i}</resource>"
                  "</bind></iq>")
        _, element = await conn.expect(b"iq")
        if _attr(element, b"type") != "result":
            condition = _condition(element[element.find(b"<error"):]) \
                if b"<error" in element else "no-result"
            raise LoginError("bind-failure:" + condition)
        t_bound = time.perf_counter()
    except BaseException:
        conn.writer.close()
        raise
    phases["connect"].append(t_connected - t0)
    phases["features"].append(t_features - t_connected)
    phases["sasl"].append(t_auth - t_features)
    phases["bind"].append(t_bound - t_auth)
    phases["total"].append(t_bound - t0)
    return conn


async def verify_sessions(args, conns, deadline):
    """A ping down every open session at once; how many answered."""
    async def ping(conn):
        conn.send(f"<iq type='get' id='v1' to='{args.domain}'><ping xmlns='{NS_PING}'/></iq>")
        _, element = await conn.expect(b"iq")
        return _attr(element, b"type") == "result"

    remaining = max(deadline - time.monotonic(), 0.5)
    tasks = [asyncio.ensure_future(ping(c)) for c in conns]
    done, pending = await asyncio.wait(tasks, timeout=min(remaining, 30))
    for t in pending:
        t.cancel()
    alive = sum(1 for t in done if not t.cancelled() and t.exception() is None and t.result())
    return alive


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    # nearest rank
    k = max(0, min(len(sorted_values) - 1, math.ceil(p / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def summary(values):
    v = sorted(values)
    if not v:
        return {"count": 0}
    ms = lambda x: round(x * 1000, 3)  # noqa: E731
    return {"count": len(v), "mean_ms": ms(sum(v) / len(v)), "p50_ms": ms(percentile(v, 50)),
            "p90_ms": ms(percentile(v, 90)), "p99_ms": ms(percentile(v, 99)), "max_ms": ms(v[-1])}


async def login_many(args, cache, phases, errors, deadline):
    """Log users args.first .. args.first+args.users-1 in, args.concurrency at a time;
    returns (open connections in login order of completion, whether the deadline hit)."""
    conns = []
    next_index = iter(range(args.first, args.first + args.users))

    async def worker():
        for i in next_index:
            try:
                async with asyncio.timeout(args.login_timeout):
                    conn = await login(args, cache, i, phases)
                    conn.index = i
                    conns.append(conn)
            except LoginError as e:
                errors[e.kind] = errors.get(e.kind, 0) + 1
                if args.verbose:
                    print(f"user {i}: {e}", file=sys.stderr)
            except TimeoutError:
                errors["login-timeout"] = errors.get("login-timeout", 0) + 1
            except OSError as e:
                kind = f"socket:{type(e).__name__}"
                errors[kind] = errors.get(kind, 0) + 1

    workers = [asyncio.ensure_future(worker()) for _ in range(min(args.concurrency, args.users))]
    done, pending = await asyncio.wait(workers, timeout=max(deadline - time.monotonic(), 0.1))
    for w in pending:
        w.cancel()
    if pending:
        await asyncio.wait(pending, timeout=5)
    ok = len(phases["total"])
    not_done = args.users - ok - sum(errors.values())
    if not_done > 0:
        errors["not-finished (total timeout)"] = not_done
    return conns, bool(pending)


def new_phases():
    return {k: [] for k in ("connect", "features", "sasl", "bind", "total")}


async def run_logins(args):
    cache = SaltCache(args.salt_cache)
    cached_at_start = len(cache.entries)
    phases = new_phases()
    errors = {}
    deadline = time.monotonic() + args.timeout
    cpu0 = time.process_time()
    started = time.perf_counter()
    conns, timed_out = await login_many(args, cache, phases, errors, deadline)
    elapsed = time.perf_counter() - started
    cpu_logins = time.process_time() - cpu0
    ok = len(phases["total"])

    # Every session is still up: prove it with one ping each, all at once.
    concurrent = len(conns)
    alive = None
    if args.verify and conns and time.monotonic() < deadline:
        alive = await verify_sessions(args, conns, deadline)
    if args.hold > 0:
        # A line for whoever measures the server meanwhile (bench/compare.py reads it).
        print(f"holding {concurrent} sessions ({alive} answered a ping); "
              f"{ok / elapsed if elapsed > 0 else 0:.1f} logins/s; {sum(errors.values())} errors",
              flush=True)
        await asyncio.sleep(min(args.hold, max(deadline - time.monotonic(), 0)))
    for c in conns:
        c.close()
    await asyncio.sleep(0.2)     # let the closes go out
    cache.save()
    return {
        "users": args.users,
        "concurrency": args.concurrency,
        "logins_ok": ok,
        "errors": errors,
        "elapsed_s": round(elapsed, 3),
        "logins_per_s": round(ok / elapsed, 1) if elapsed > 0 else None,
        "latency": summary(phases["total"]),
        "phases": {k: summary(v) for k, v in phases.items() if k != "total"},
        "concurrent_sessions": concurrent,
        "sessions_alive_after": alive,
        "client_cpu_s": round(cpu_logins, 3),
        "client_cpu_per_login_ms": round(cpu_logins / ok * 1000, 3) if ok else None,
        "salted_passwords_computed": cache.computed,
        "salt_cache_entries_at_start": cached_at_start,
        "timed_out": timed_out,
        "mechanism": MECHANISM,
        "host": args.host,
        "port": args.port,
    }


def print_report(r):
    lat = r["latency"]
    print(f"logins: {r['logins_ok']}/{r['users']} ok in {r['elapsed_s']} s "
          f"(concurrency {r['concurrency']}): {r['logins_per_s']} logins/s")
    if lat.get("count"):
        print(f"login latency: p50 {lat['p50_ms']} ms, p90 {lat['p90_ms']} ms, "
              f"p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms, mean {lat['mean_ms']} ms")
        print("phases p50/p99 (ms): " + ", ".join(
            f"{k} {v['p50_ms']}/{v['p99_ms']}" for k, v in r["phases"].items() if v.get("count")))
    print(f"concurrent sessions: {r['concurrent_sessions']}"
          + (f", {r['sessions_alive_after']} answered a ping after all logins"
             if r["sessions_alive_after"] is not None else ""))
    print(f"errors: {sum(r['errors'].values())}" +
          (" " + json.dumps(r["errors"], sort_keys=True) if r["errors"] else ""))
    print(f"client CPU: {r['client_cpu_s']} s ({r['client_cpu_per_login_ms']} ms/login); "
          f"PBKDF2 computed {r['salted_passwords_computed']} times")


# -- messages: pipelined chat between logged-in users -----------------------------------

FILLER = "the quick brown fox jumps over the lazy dog while the archive keeps everything"


def server_cpu_seconds(pid):
    """utime + stime of a local process (None without a pid or /proc)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Chat:
    """The message traffic of one run: who sent what when, what arrived, in which window."""

    def __init__(self, args, conns):
        self.args = args
        self.by_index = {c.index: c for c in conns}
        ring = sorted(self.by_index)
        # user i writes to the next logged-in user (a ring), so every user sends and receives
        self.partner = {i: ring[(n + 1) % len(ring)] for n, i in enumerate(ring)}
        self.sent_at = {}               # (sender, seq) -> perf_counter at send
        self.seq = dict.fromkeys(ring, 0)
        self.running = True
        self.measuring = False
        self.latencies = []
        self.received = 0               # in the measurement window
        self.errors = {}

    def send(self, i):
        self.seq[i] += 1
        seq = self.seq[i]
        self.sent_at[(i, seq)] = time.perf_counter()
        to = self.args.user_template.format(i=self.partner[i])
        self.by_index[i].send(f"<message to='{to}@{self.args.domain}' type='chat' id='{i}-{seq}'>"
                              f"<body>message {seq} from {i}: {FILLER}</body></message>")

    def arrived(self, element):
        now = time.perf_counter()
        ident = _attr(element, b"id") or ""
        sender, _, seq = ident.partition("-")
        try:
            key = (int(sender), int(seq))
        except ValueError:
            return
        sent = self.sent_at.pop(key, None)
        if sent is None:
            return
        if _attr(element, b"type") == "error":
            kind = "bounced:" + _condition(element[element.find(b"<error"):])
            self.errors[kind] = self.errors.get(kind, 0) + 1
        elif self.measuring:
            self.received += 1
            self.latencies.append(now - sent)
        if self.running and not self.args.rate:
            self.send(key[0])

    async def pace(self):
        """Open loop (--rate): send rate messages/s round the ring, whatever arrives."""
        users = list(self.by_index)
        started, sent = time.perf_counter(), 0
        while self.running:
            due = int((time.perf_counter() - started) * self.args.rate)
            while sent < due:
                self.send(users[sent % len(users)])
                sent += 1
            await asyncio.sleep(0.005)

    async def read(self, conn):
        """Every complete <message/> on this connection goes to arrived()."""
        buf = conn.buf
        while True:
            end = buf.find(b"</message>")
            if end >= 0:
                start = buf.find(b"<message")
                element = bytes(buf[start:end + 10])
                del buf[:end + 10]
                self.arrived(element)
                continue
            data = await conn.reader.read(READ_SIZE)
            if not data:
                return
            buf += data


async def run_messages(args):
    cache = SaltCache(args.salt_cache)
    errors = {}
    deadline = time.monotonic() + args.timeout
    conns, _ = await login_many(args, cache, new_phases(), errors, deadline)
    cache.save()
    result = {"users": args.users, "logged_in": len(conns), "window": args.window,
              "rate": args.rate, "duration_s": args.duration, "errors": errors}
    if len(conns) < 2 or errors:
        return result
    # Initial presence makes the bare JIDs deliverable; the pings prove it was processed.
    for conn in conns:
        conn.send("<presence/>")
    await verify_sessions(args, conns, deadline)
    chat = Chat(args, conns)
    readers = [asyncio.ensure_future(chat.read(c)) for c in conns]
    if args.rate:
        readers.append(asyncio.ensure_future(chat.pace()))
    else:
        for i in chat.by_index:
            for _ in range(args.window):
                chat.send(i)
    await asyncio.sleep(args.warmup)
    cpu0, server0, t0 = time.process_time(), server_cpu_seconds(args.server_pid), time.perf_counter()
    chat.measuring = True
    await asyncio.sleep(args.duration)
    chat.measuring = False
    elapsed = time.perf_counter() - t0
    cpu, server1 = time.process_time() - cpu0, server_cpu_seconds(args.server_pid)
    chat.running = False
    drain_until = time.monotonic() + args.drain
    while chat.sent_at and time.monotonic() < drain_until:
        await asyncio.sleep(0.05)
    for task in readers:
        task.cancel()
    for conn in conns:
        conn.close()
    await asyncio.sleep(0.2)
    errors.update(chat.errors)
    if chat.sent_at:
        errors["unanswered"] = len(chat.sent_at)
    received = chat.received
    result.update({
        "messages": received,
        "elapsed_s": round(elapsed, 3),
        "messages_per_s": round(received / elapsed, 1),
        "latency": summary(chat.latencies),
        "client_cpu_per_message_us": round(cpu / received * 1e6, 1) if received else None,
    })
    if server0 is not None and server1 is not None and received:
        result["server_cpu_s"] = round(server1 - server0, 2)
        result["server_cpu_per_message_us"] = round((server1 - server0) / received * 1e6, 1)
    return result


def print_messages_report(r):
    load = f"{r['rate']} messages/s offered" if r["rate"] else f"{r['window']} in flight each"
    print(f"messages: {r.get('messages', 0)} routed in {r.get('elapsed_s')} s by {r['logged_in']} "
          f"users ({load}): {r.get('messages_per_s')} messages/s")
    lat = r.get("latency", {})
    if lat.get("count"):
        print(f"latency: p50 {lat['p50_ms']} ms, p90 {lat['p90_ms']} ms, p99 {lat['p99_ms']} ms, "
              f"max {lat['max_ms']} ms")
    if "server_cpu_per_message_us" in r:
        print(f"server CPU: {r['server_cpu_s']} s, {r['server_cpu_per_message_us']} us/message")
    print(f"client CPU: {r.get('client_cpu_per_message_us')} us/message; errors: "
          f"{sum(r['errors'].values())}" + (" " + json.dumps(r["errors"], sort_keys=True)
                                             if r["errors"] else ""))


# -- mkusers: accounts straight into the server's database ------------------------------

def mkusers(args):
    from twisted.internet import task

    from summitd.config import load_config
    from summitd.sasl.credentials import SCRAM_HASHES, ScramCredentials
    from summitd.sasl.scram import derive_credentials, prepare_password
    from summitd.server import SummitServer
    from summitd.storage.accounts import AccountExists
    from summitd.storage.database import Database
    from summitd.storage.engines import engine_from_url
    from summitd.testing import result_of

    config = load_config(args.config)
    config.server.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(engine_from_url(config.storage.database, config.path.parent), None,
                        synchronous=True)
    clock = task.Clock()
    server = SummitServer(config, clock, clock=clock, database=database)
    result_of(server.start())
    iterations = config.auth.scram_iterations
    cache = SaltCache(args.salt_cache)
    manager = server.account_manager
    created = existed = 0
    started = time.monotonic()
    for i in range(args.first, args.first + args.users):
        user = args.user_template.format(i=i)
        password = args.password_template.format(i=i)
        jid = manager.account_jid(f"{user}@{args.domain}")
        salt = os.urandom(16)
        prepared = prepare_password(password)
        credentials = {h: derive_credentials(password, h, iterations, salt=os.urandom(16))
                       for h in SCRAM_HASHES if h != HASH}
        # Our own SHA-256 keys from a salted password we keep for the load generator.
        salted = hashlib.pbkdf2_hmac(HASH, prepared, salt, iterations)
        client_key = hmac.new(salted, b"Client Key", HASH).digest()
        credentials[HASH] = ScramCredentials(
            hash_name=HASH, salt=salt, iterations=iterations,
            stored_key=hashlib.sha256(client_key).digest(),
            server_key=hmac.new(salted, b"Server Key", HASH).digest())
        try:
            result_of(manager.store.create(jid.host, jid.user, credentials))
        except AccountExists:
            existed += 1
            continue
        cache.put(user, salt, iterations, salted)
        created += 1
    result_of(server.stop())
    cache.save()
    print(f"mkusers: {created} created, {existed} existed already, in "
          f"{time.monotonic() - started:.1f} s; salt cache {args.salt_cache or '(none)'}")
    return 0


# -- command line --------------------------------------------------------------------------

def build_parser():
    p = argparse.ArgumentParser(prog="loadgen", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(q):
        q.add_argument("--domain", default="localhost")
        q.add_argument("--users", type=int, default=1000, help="how many users (N)")
        q.add_argument("--first", type=int, default=1, help="first user index i (default 1)")
        q.add_argument("--user-template", default="user{i}")
        q.add_argument("--password-template", default="pw{i}")
        q.add_argument("--salt-cache", help="JSON file of salted passwords (read, and written back)")

    q = sub.add_parser("logins", help="log N users in, C at a time")
    common(q)
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=5222)
    q.add_argument("--concurrency", type=int, default=100, help="logins in flight (C)")
    q.add_argument("--timeout", type=float, default=120.0, help="bound on the whole run, seconds")
    q.add_argument("--login-timeout", type=float, default=30.0, help="bound on one login, seconds")
    q.add_argument("--hold", type=float, default=0.0,
                   help="keep all sessions open this many seconds after the last login")
    q.add_argument("--source-addresses", type=lambda v: [a for a in v.split(",") if a],
                   help="comma-separated local addresses to connect from, in turn (e.g. "
                        "127.0.0.2,127.0.0.3: more than one source port range for many sessions)")
    q.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the ping down every session after the logins")
    q.add_argument("--json", help="write the results to this file")
    q.add_argument("--verbose", action="store_true", help="print each failed login")

    q = sub.add_parser("messages", help="N logged-in users chat, pipelined, for a fixed time")
    common(q)
    q.add_argument("--host", default="127.0.0.1")
    q.add_argument("--port", type=int, default=5222)
    q.add_argument("--concurrency", type=int, default=100, help="logins in flight while logging in")
    q.add_argument("--window", type=int, default=10, help="messages in flight per sender")
    q.add_argument("--rate", type=float, default=0.0,
                   help="open loop: send this many messages/s in all (0: closed loop, --window)")
    q.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    q.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before")
    q.add_argument("--drain", type=float, default=5.0,
                   help="seconds to wait after the measurement for messages still in flight "
                        "(those that do not arrive count as 'unanswered' errors)")
    q.add_argument("--timeout", type=float, default=120.0, help="bound on the logins, seconds")
    q.add_argument("--login-timeout", type=float, default=30.0, help="bound on one login, seconds")
    q.add_argument("--server-pid", type=int, help="measure this process's CPU time (Linux /proc)")
    q.add_argument("--json", help="write the results to this file")
    q.add_argument("--verbose", action="store_true", help="print each failed login")

    q = sub.add_parser("mkusers", help="create the accounts in the server's database (server stopped)")
    common(q)
    q.add_argument("--config", required=True, help="the server's TOML config")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "mkusers":
        return mkusers(args)
    if args.users < 1 or args.concurrency < 1:
        print("loadgen: --users and --concurrency must be positive", file=sys.stderr)
        return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.users + 100 and hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.users + 1000), hard))
    if args.command == "messages":
        result = asyncio.run(run_messages(args))
        print_messages_report(result)
        ok = result["logged_in"] == args.users and not result["errors"] and result.get("messages")
    else:
        result = asyncio.run(run_logins(args))
        print_report(result)
        ok = result["logins_ok"] == args.users and not result["errors"]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
