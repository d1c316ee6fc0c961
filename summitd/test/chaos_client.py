#!/usr/bin/env python3
"""Raw asyncio XMPP clients with stream management, for the crash-safety tests.

    chaos_client.py --port P --users chaos0,chaos1,... chaos   [--cut-every S] [--seed N]
    chaos_client.py --port P --users alice,bob shutdown

The password is in the environment (CHAOS_PASSWORD), never on the command line.
Streams are plain text on loopback (the server allows it); SASL is SCRAM-SHA-256.

``chaos`` (test_chaos.py): every client sends numbered chat messages to the
others' bare JIDs, asks for acknowledgements, answers the server's ``<r/>``,
and now and then drops its socket abruptly and reconnects with ``<resume/>`` (a
fresh login when that fails: the server was killed meanwhile, or the client
stayed away longer than the resumption window: ``--away``, ``--away-share``). A message counts
as acknowledged only once an ``<a h/>`` covering it arrived; unacknowledged ones
are sent again after a reconnection (so they may arrive twice: received
messages are deduplicated by their number and duplicates counted). SIGUSR1
starts the drain: no new messages, every client logs in, waits until the server
acknowledged all it sent and the acknowledged messages arrived (bounded), then
closes its stream. The last output line is JSON with each client's figures.

``shutdown`` (test_shutdown.py): alice enables stream management and sends bob
three messages without asking for an acknowledgement; bob, logged in with
resumable stream management, receives them without acknowledging and vanishes.
The script prints ``{"ready": true}`` and records what alice receives until the
server closes the connection (the test stops the server meanwhile).

Every wait is bounded (``--timeout`` for the whole run).
"""

import argparse
import asyncio
import base64
import json
import os
import random
import signal
import sys
import time
import xml.etree.ElementTree as ET
from collections import deque

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from summitd.testing.scram_client import ScramClient  # noqa: E402

NS_CLIENT = "jabber:client"
NS_STREAMS = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SM = "urn:xmpp:sm:3"
STANZAS = {f"{{{NS_CLIENT}}}{name}" for name in ("message", "presence", "iq")}
MODULUS = 2 ** 32
STEP_TIMEOUT = 10.0     # one protocol step (a reply from the server)
READ_SIZE = 65536


class StreamClosed(Exception):
    """The connection or the stream ended (EOF, </stream:stream>, a stream error)."""


def tag(ns, name):
    return f"{{{ns}}}{name}"


def condition(element):
    """The first child's local name: the defined condition of an error or <failed/>."""
    for child in element:
        return child.tag.rpartition("}")[2]
    return "none"


class Connection:
    """One TCP connection: bytes out, complete top-level elements in (an incremental parser)."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.alive = True
        self.aborted = False
        self.stream_error = None
        self.restart()

    def restart(self):
        """A new stream (after SASL success): a new parser."""
        self.parser = ET.XMLPullParser(events=("start", "end"))
        self.depth = 0
        self.root = None
        self.ready = deque()

    def send(self, text):
        if self.alive:
            self.writer.write(text.encode("utf-8"))

    def open(self, domain):
        self.send(f"<?xml version='1.0'?><stream:stream to='{domain}' version='1.0' "
                  f"xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAMS}'>")

    async def next(self, timeout=STEP_TIMEOUT):
        """The next top-level element; StreamClosed when the stream is over."""
        deadline = time.monotonic() + timeout
        while not self.ready or self.aborted:
            if not self.alive:
                raise StreamClosed(self.stream_error or "connection closed")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer from the server")
            try:
                data = await asyncio.wait_for(self.reader.read(READ_SIZE), remaining)
            except (OSError, asyncio.IncompleteReadError) as e:
                data = b""
                self.stream_error = f"{type(e).__name__}"
            if not data:
                self.alive = False
                continue
            self._feed(data)
        element = self.ready.popleft()
        if element.tag == tag(NS_STREAMS, "error"):
            self.stream_error = condition(element)
            self.alive = False
            raise StreamClosed(self.stream_error)
        return element

    def _feed(self, data):
        try:
            self.parser.feed(data)
            for event, element in self.parser.read_events():
                if event == "start":
                    self.depth += 1
                    if self.depth == 1:
                        self.root = element
                else:
                    self.depth -= 1
                    if self.depth == 1:
                        self.ready.append(element)
                        self.root.remove(element)
                    elif self.depth == 0:
                        self.alive = False      # </stream:stream>
        except ET.ParseError as e:
            self.stream_error = f"not-well-formed: {e}"
            self.alive = False

    def abort(self):
        """Vanish without a goodbye (what a phone losing coverage does): whatever is still
        unread is lost with the connection."""
        self.alive = False
        self.aborted = True
        self.writer.transport.abort()

    def close(self):
        self.send("</stream:stream>")
        self.alive = False
        self.writer.close()


class Client:
    """One account with resumable stream management, counting both ways (XEP-0198)."""

    def __init__(self, index, user, args, salted_cache):
        self.index = index
        self.user = user
        self.args = args
        self.salted_cache = salted_cache
        self.conn = None
        self.sm_id = None
        self.counting = False       # stream management enabled on this stream
        self.handled = 0            # stanzas received: our h
        self.out_count = 0          # stanzas sent: the server's h counts these
        self.server_h = 0
        self.unacked = deque()      # (seq, number or None, xml)
        self.next_number = 1
        self.sent = set()           # message numbers sent at least once
        self.acked = set()          # message numbers an <a h/> covered
        self.received = {}          # sender index -> set of numbers
        self.duplicates = 0
        self.bounced = set()
        self.log = []               # what happened, for the report (bounded)
        self.counters = {"cuts": 0, "resumed": 0, "resume_failed": 0, "logins": 0,
                         "connect_failures": 0, "protocol_errors": 0}
        self.elements = []          # the last elements that arrived (names)
        self.answering = True       # answer the server's <r/>
        self.reader_task = None
        self.last_received = time.monotonic()

    @property
    def jid(self):
        return f"{self.user}@{self.args.domain}"

    def note(self, text):
        if len(self.log) < 200:
            self.log.append(f"{time.monotonic() - STARTED:.2f} {text}")

    # -- connecting ----------------------------------------------------------------

    async def connect(self, deadline):
        """Resume the session, or log in anew; retried until ``deadline``."""
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.user}: could not reconnect in time")
            try:
                await self._connect_once()
                return
            except (OSError, StreamClosed, TimeoutError, ValueError) as e:
                self.counters["connect_failures"] += 1
                self.note(f"connect failed: {type(e).__name__}: {e}")
                if self.conn is not None:
                    self.conn.abort()
                await asyncio.sleep(0.2)

    async def _connect_once(self):
        await self.stop_reading()
        self.counting = False
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.args.host, self.args.port, limit=READ_SIZE * 4), STEP_TIMEOUT)
        conn = self.conn = Connection(reader, writer)
        conn.open(self.args.domain)
        await self.expect(tag(NS_STREAMS, "features"))
        scram = ScramClient(self.user, self.args.password, "sha256", salted_cache=self.salted_cache)
        conn.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256'>"
                  f"{base64.b64encode(scram.first()).decode()}</auth>")
        challenge = await self.expect(tag(NS_SASL, "challenge"))
        final = scram.final(base64.b64decode(challenge.text or ""))
        conn.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(final).decode()}</response>")
        success = await self.expect(tag(NS_SASL, "success"))
        if not scram.verify(base64.b64decode(success.text or "")):
            raise ValueError("bad server signature")
        conn.restart()
        conn.open(self.args.domain)
        await self.expect(tag(NS_STREAMS, "features"))
        if self.sm_id is not None and await self._resume():
            return
        await self._login()

    async def _resume(self):
        self.conn.send(f"<resume xmlns='{NS_SM}' previd='{self.sm_id}' h='{self.handled}'/>")
        answer = await self.expect(tag(NS_SM, "resumed"), tag(NS_SM, "failed"))
        if answer.tag == tag(NS_SM, "failed"):
            self.counters["resume_failed"] += 1
            self.note(f"resume failed: {condition(answer)}")
            self.sm_id = None
            return False
        self.counters["resumed"] += 1
        self.counting = True
        self.server_acked(int(answer.get("h")))
        self.start_reading()
        self.resend()
        return True

    async def _login(self):
        conn = self.conn
        conn.send(f"<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>chaos</resource></bind></iq>")
        bound = await self.expect(tag(NS_CLIENT, "iq"))
        if bound.get("type") != "result":
            raise ValueError(f"bind failed: {ET.tostring(bound)[:200]!r}")
        conn.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        enabled = await self.expect(tag(NS_SM, "enabled"))
        self.sm_id = enabled.get("id")
        self.counting = True
        self.handled = self.out_count = self.server_h = 0
        self.counters["logins"] += 1
        self.start_reading()
        # What the previous session never acknowledged is ours to send again.
        pending, self.unacked = list(self.unacked), deque()
        self.send("<presence/>")
        for _, number, xml in pending:
            if number is not None:
                self.send(xml, number)

    async def expect(self, *tags):
        """The next element with one of ``tags``; stanzas and acks met on the way are handled."""
        while True:
            element = await self.conn.next()
            if element.tag in tags:
                return element
            self.handle(element)

    def start_reading(self):
        self.reader_task = asyncio.ensure_future(self.read(self.conn))

    async def stop_reading(self):
        """Before a new connection: the old one's reader has processed what arrived (it ends
        at EOF), or is stopped; nothing from the old stream may count after <resume/>."""
        task, self.reader_task = self.reader_task, None
        if task is None:
            return
        await asyncio.wait([task], timeout=2)
        if not task.done():
            self.conn.abort()
            task.cancel()

    async def read(self, conn):
        try:
            while True:
                self.handle(await conn.next(timeout=3600))
        except (StreamClosed, TimeoutError) as e:
            self.note(f"stream over: {e}")
        finally:
            conn.alive = False

    # -- stream management, client side --------------------------------------------------

    def send(self, xml, number=None):
        self.out_count = (self.out_count + 1) % MODULUS
        self.unacked.append((self.out_count, number, xml))
        self.conn.send(xml)

    def resend(self):
        """After <resumed/>: what the server has not handled, again, in order."""
        pending, self.unacked = list(self.unacked), deque()
        self.out_count = self.server_h
        for _, number, xml in pending:
            self.send(xml, number)

    def server_acked(self, h):
        count = (h - self.server_h) % MODULUS
        if count > len(self.unacked):
            self.counters["protocol_errors"] += 1
            self.note(f"server acked h={h} beyond {self.server_h}+{len(self.unacked)}")
            return
        for _ in range(count):
            _, number, _ = self.unacked.popleft()
            if number is not None:
                self.acked.add(number)
        self.server_h = h

    def handle(self, element):
        name = element.tag
        if name in STANZAS:
            if self.counting:
                self.handled = (self.handled + 1) % MODULUS
            self.last_received = time.monotonic()
            if name == tag(NS_CLIENT, "message"):
                self.message(element)
            elif name == tag(NS_CLIENT, "iq") and element.get("type") in ("get", "set"):
                self.send(f"<iq type='error' id='{element.get('id', '')}' to='{element.get('from', '')}'>"
                          "<error type='cancel'><service-unavailable "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        elif name == tag(NS_SM, "r") and self.answering:
            self.conn.send(f"<a xmlns='{NS_SM}' h='{self.handled}'/>")
        elif name == tag(NS_SM, "a"):
            self.server_acked(int(element.get("h")))
        self.elements.append(name.rpartition("}")[2] + (f" h={element.get('h')}" if element.get("h") else ""))
        del self.elements[:-50]

    def message(self, element):
        body = element.find(tag(NS_CLIENT, "body"))
        text = body.text if body is not None else ""
        if element.get("type") == "error":
            sender, _, number = (element.get("id") or "").partition("-")
            if sender == str(self.index) and number.isdigit():
                self.bounced.add(int(number))
            return
        parts = (text or "").split()
        if len(parts) != 3 or parts[0] != "chaos":
            return
        if (element.get("to") or "").partition("/")[0] != self.jid:
            self.counters["protocol_errors"] += 1
            self.note(f"got a message for {element.get('to')}")
            return
        sender, number = int(parts[1]), int(parts[2])
        seen = self.received.setdefault(sender, set())
        if number in seen:
            self.duplicates += 1
        seen.add(number)

    # -- the chaos ---------------------------------------------------------------------

    def send_message(self, peer):
        number = self.next_number
        self.next_number += 1
        self.sent.add(number)
        self.send(f"<message to='{peer}@{self.args.domain}' type='chat' id='{self.index}-{number}'>"
                  f"<body>chaos {self.index} {number}</body></message>", number)
        if number % 3 == 0:
            self.conn.send(f"<r xmlns='{NS_SM}'/>")

    def cut(self):
        self.counters["cuts"] += 1
        self.note("cut")
        self.conn.abort()

    def report(self):
        return {"user": self.user, "sent": sorted(self.sent), "acked": sorted(self.acked),
                "received": {str(k): sorted(v) for k, v in self.received.items()},
                "duplicates": self.duplicates, "bounced": sorted(self.bounced),
                "unacked_at_end": len(self.unacked), **self.counters, "log": self.log[-30:]}


STARTED = time.monotonic()


async def chaos(args, clients, deadline):
    rng = random.Random(args.seed)
    draining = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, draining.set)
    drain_by = min(deadline - args.drain_time, time.monotonic() + args.max_chaos)
    await asyncio.gather(*(c.connect(deadline) for c in clients))
    print(json.dumps({"ready": True}), flush=True)

    async def run(client):
        peers = [c.user for c in clients if c is not client]
        r = random.Random(rng.random())
        away = 0.0
        while not draining.is_set() and time.monotonic() < drain_by:
            if not client.conn.alive:
                await asyncio.sleep(away or r.uniform(0, 0.3))
                await client.connect(deadline)
            client.send_message(peers[client.next_number % len(peers)])
            if r.random() < args.interval / args.cut_every:
                client.cut()
                # Sometimes longer than the server's resumption window: the session expires.
                away = args.away if r.random() < args.away_share else 0.0
            try:
                await asyncio.wait_for(draining.wait(), args.interval)
            except asyncio.TimeoutError:
                pass

    await asyncio.gather(*(run(c) for c in clients))
    await drain(clients, deadline)


async def drain(clients, deadline):
    """Everyone back, everything acknowledged and delivered (or the time is up)."""
    wanted = {(c.index, n) for c in clients for n in c.acked}
    end = min(deadline, time.monotonic() + 30)
    while time.monotonic() < end:
        for client in clients:
            if not client.conn.alive:
                await client.connect(deadline)
            client.conn.send(f"<r xmlns='{NS_SM}'/>")
        await asyncio.sleep(0.5)
        wanted = {(c.index, n) for c in clients for n in c.acked}
        arrived = {(s, n) for c in clients for s, ns in c.received.items() for n in ns}
        if not any(c.unacked for c in clients) and wanted <= arrived and \
                time.monotonic() - max(c.last_received for c in clients) > 1.0:
            break
    for client in clients:
        client.conn.send(f"<a xmlns='{NS_SM}' h='{client.handled}'/>")
        client.conn.close()
    await asyncio.sleep(0.2)


async def shutdown(args, clients, deadline):
    alice, bob = clients
    bob.answering = False
    await alice.connect(deadline)
    await bob.connect(deadline)
    for n in (1, 2, 3):
        alice.send(f"<message to='{bob.jid}' type='chat' id='0-{n}'><body>chaos 0 {n}</body></message>", n)
    end = time.monotonic() + STEP_TIMEOUT
    while sum(len(v) for v in bob.received.values()) < 3 and time.monotonic() < end:
        await asyncio.sleep(0.05)
    bob.conn.abort()        # bob received, never acknowledged: his session hibernates
    alice.elements.clear()
    print(json.dumps({"ready": True, "bob_received": sum(len(v) for v in bob.received.values())}), flush=True)
    while alice.conn.alive and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return {"alice_elements": alice.elements, "alice_stream_error": alice.conn.stream_error,
            "alice_acked": sorted(alice.acked)}


async def main_async(args):
    salted = {}
    clients = [Client(i, user, args, salted) for i, user in enumerate(args.users.split(","))]
    deadline = time.monotonic() + args.timeout
    result = {"mode": args.mode, "ok": False}
    try:
        if args.mode == "chaos":
            await asyncio.wait_for(chaos(args, clients, deadline), args.timeout)
        else:
            result.update(await asyncio.wait_for(shutdown(args, clients, deadline), args.timeout))
        result["ok"] = True
    except Exception as e:  # reported, not hidden: the test shows it
        result["reasons"] = [f"{type(e).__name__}: {e}"]
    result["clients"] = [c.report() for c in clients]
    result["elapsed"] = round(time.monotonic() - STARTED, 3)
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("chaos", "shutdown"))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--domain", default="localhost")
    p.add_argument("--users", required=True, help="comma-separated local parts")
    p.add_argument("--timeout", type=float, default=90, help="seconds for the whole run")
    p.add_argument("--max-chaos", type=float, default=60, help="seconds of sending at most")
    p.add_argument("--drain-time", type=float, default=25, help="seconds kept for the drain")
    p.add_argument("--interval", type=float, default=0.05, help="seconds between a client's messages")
    p.add_argument("--cut-every", type=float, default=3.0, help="mean seconds between a client's cuts")
    p.add_argument("--away", type=float, default=0.0, help="seconds a client stays away after some cuts")
    p.add_argument("--away-share", type=float, default=0.0, help="the share of cuts followed by --away")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    args.password = os.environ["CHAOS_PASSWORD"]
    result = asyncio.run(main_async(args))
    print(json.dumps(result), flush=True)
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
