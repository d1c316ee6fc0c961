"""A bounded flood against a real summitd on loopback: registration attempts and strangers'
messages in a short burst, while two existing users keep talking.

The trial test starts ``twistd summitd`` (registration open with a proof-of-work,
stranger_challenge, abuse_limits) and runs this module as a script: raw sockets over
direct TLS (asyncio), no XMPP library. The script

1. logs in alice and bob (bob is in alice's roster) and measures bob → alice message
   latency (send, wait for arrival) before the flood;
2. floods: ``--registrations`` attempts over ``--reg-connections`` connections (XEP-0389
   flow selections answered with no work, and XEP-0077 submissions without the
   CAPTCHA), and ``--messages`` chat messages from ``--spammers`` logged-in strangers to
   alice and bob, as fast as the sockets take them; meanwhile it measures latency again;
3. prints one JSON line: latencies (median, 95th percentile, max, ms), what the
   registration attempts got, how many spam messages reached alice or bob (must be 0)
   and what the spammers got back.

The test then checks that no account was created, nothing was delivered unchallenged,
every attempt and message was answered, and prints the latencies. Every wait is bounded
and the whole run has a deadline; CI runs the default sizes (1,000 and 10,000) in well
under a minute; ``make bench``-sized runs take the same script with bigger numbers.
"""

import asyncio
import base64
import json
import os
import ssl
import statistics
import sys
import time
from xml.etree import ElementTree as ET

from twisted.internet import defer
from twisted.trial import unittest

from summitd.testing.process import SummitdProcessMixin, child_env, run_process

NS_STREAMS = "http://etherx.jabber.org/streams"
HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' to='localhost' version='1.0' "
          "xmlns:stream='http://etherx.jabber.org/streams'>")


class Connection:
    """A raw XMPP client connection: top-level elements arrive in ``inbox``."""

    def __init__(self, reader, writer):
        self.reader, self.writer = reader, writer
        self.inbox = asyncio.Queue()
        self._parser = None
        self._depth = 0
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, port):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE     # the loopback test's self-signed certificate only
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
        connection = cls(reader, writer)
        await connection.restart()
        return connection

    async def restart(self):
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self.send(HEADER)
        return await self.expect("features")

    def send(self, text):
        self.writer.write(text.encode("utf-8"))

    async def _read(self):
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    break
                self._parser.feed(data)
                for event, element in self._parser.read_events():
                    if event == "start":
                        self._depth += 1
                    else:
                        self._depth -= 1
                        if self._depth == 1:
                            self.inbox.put_nowait(element)
        except (ConnectionError, ET.ParseError, ssl.SSLError):
            pass
        self.inbox.put_nowait(None)

    async def next(self, timeout=20):
        element = await asyncio.wait_for(self.inbox.get(), timeout)
        if element is None:
            raise ConnectionError("the server closed the stream")
        return element

    async def expect(self, name, timeout=20):
        while True:
            element = await self.next(timeout)
            if element.tag.rsplit("}", 1)[-1] == name:
                return element

    async def login(self, user, password, resource):
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        self.send(f"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>")
        result = await self.next()
        if not result.tag.endswith("success"):
            raise RuntimeError(f"{user} could not log in")
        await self.restart()
        self.send(f"<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                  f"<resource>{resource}</resource></bind></iq>")
        await self.expect("iq")
        self.send("<presence/>")

    def close(self):
        self._task.cancel()
        self.writer.close()


def summary(samples):
    ms = sorted(s * 1000 for s in samples)
    if not ms:
        return None
    return {"n": len(ms), "median": round(statistics.median(ms), 2),
            "p95": round(ms[min(len(ms) - 1, int(len(ms) * 0.95))], 2), "max": round(ms[-1], 2)}


async def latencies(bob, alice_bodies, count, label):
    """bob → alice, one at a time: seconds from sending until alice has it."""
    samples = []
    for n in range(count):
        body = f"{label}-{n}"
        arrived = asyncio.get_running_loop().create_future()
        alice_bodies[body] = arrived
        started = time.monotonic()
        bob.send(f"<message to='alice@localhost' type='chat' id='{body}'><body>{body}</body></message>")
        await asyncio.wait_for(arrived, 20)
        samples.append(time.monotonic() - started)
        await asyncio.sleep(0.01)
    return samples


async def watch(connection, alice_bodies, seen):
    """Record every body and error a connection receives."""
    while True:
        element = await connection.inbox.get()
        if element is None:
            return
        body = element.findtext("{jabber:client}body")
        if element.get("type") == "error":
            error = element.find("{jabber:client}error")
            condition = next((c.tag.rsplit("}", 1)[-1] for c in error if not c.tag.endswith("text")), "?") \
                if error is not None else "?"
            seen["errors"][condition] = seen["errors"].get(condition, 0) + 1
        elif element.find("{urn:xmpp:captcha}captcha") is not None:
            seen["challenges"] += 1
        elif body is not None:
            seen["bodies"].append(body)
            future = alice_bodies.get(body)
            if future is not None and not future.done():
                future.set_result(None)


async def registration_flood(port, connections, attempts):
    """``attempts`` registration tries over ``connections`` streams; what each got."""
    outcomes = {}
    per_connection = max(1, attempts // connections)

    async def one(index):
        connection = await Connection.open(port)
        try:
            for n in range(per_connection):
                if n % 2:
                    connection.send(f"<iq type='set' id='r{n}'><query xmlns='jabber:iq:register'>"
                                    f"<username>bot{index}x{n}</username><password>pw-{index}-{n}-xxxx</password>"
                                    "</query></iq>")
                else:
                    connection.send("<register xmlns='urn:xmpp:register:0'><flow id='open'/></register>")
                reply = await connection.next()
                kind = reply.tag.rsplit("}", 1)[-1]
                if kind == "challenge":         # no work done: answer nonsense
                    connection.send("<response xmlns='urn:xmpp:register:0'><x xmlns='jabber:x:data' "
                                    "type='submit'><field var='FORM_TYPE'><value>urn:xmpp:captcha</value>"
                                    "</field></x></response>")
                    reply = await connection.next()
                    kind = "challenge+" + reply.tag.rsplit("}", 1)[-1]
                condition = next((c.tag.rsplit("}", 1)[-1] for c in reply.iter() if c is not reply and
                                  c.tag.startswith("{urn:ietf:params:xml:ns:xmpp-stanzas}")
                                  and not c.tag.endswith("text")), "")
                key = f"{kind}:{condition}"
                outcomes[key] = outcomes.get(key, 0) + 1
        finally:
            connection.close()

    await asyncio.gather(*(one(i) for i in range(connections)))
    return outcomes, per_connection * connections


async def message_flood(spammers, total):
    """``total`` messages from the spammers to alice and bob, written without waiting."""
    per_spammer = total // len(spammers)
    for n in range(per_spammer):
        for index, spammer in enumerate(spammers):
            target = "alice@localhost" if (n + index) % 2 else "bob@localhost"
            spammer.send(f"<message to='{target}' type='chat' id='s{index}-{n}'><body>SPAM {index}-{n}</body></message>")
        if n % 100 == 0:
            await asyncio.gather(*(s.writer.drain() for s in spammers))
    await asyncio.gather(*(s.writer.drain() for s in spammers))
    return per_spammer * len(spammers)


async def main_async(args):
    passwords = json.loads(os.environ["FLOOD_PASSWORDS"])
    result = {}
    started = time.monotonic()
    alice, bob = await Connection.open(args.port), await Connection.open(args.port)
    await alice.login("alice", passwords["alice"], "desk")
    await bob.login("bob", passwords["bob"], "desk")
    alice.send("<iq type='set' id='ros'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>")
    await alice.expect("iq")
    alice_bodies = {}
    seen = {name: {"bodies": [], "errors": {}, "challenges": 0} for name in ("alice", "bob", "spammers")}
    watchers = [asyncio.ensure_future(watch(alice, alice_bodies, seen["alice"])),
                asyncio.ensure_future(watch(bob, {}, seen["bob"]))]
    result["latency_before"] = summary(await latencies(bob, alice_bodies, args.samples, "before"))
    spammers = []
    for index in range(args.spammers):
        spammer = await Connection.open(args.port)
        await spammer.login(f"spammer{index}", passwords[f"spammer{index}"], "bot")
        spammers.append(spammer)
        watchers.append(asyncio.ensure_future(watch(spammer, {}, seen["spammers"])))
    flood_started = time.monotonic()
    during = asyncio.ensure_future(latencies(bob, alice_bodies, args.samples, "during"))
    (registrations, attempts), sent = await asyncio.gather(
        registration_flood(args.port, args.reg_connections, args.registrations),
        message_flood(spammers, args.messages))
    result["flood_seconds"] = round(time.monotonic() - flood_started, 3)
    result["latency_during"] = summary(await during)
    # Every spam message is answered (an error, or held with one challenge per pair):
    # wait until the answers stop coming, bounded.
    for _ in range(100):
        before = sum(seen["spammers"]["errors"].values())
        await asyncio.sleep(0.2)
        if sum(seen["spammers"]["errors"].values()) == before and before:
            break
    result.update({
        "registration_attempts": attempts, "registration_outcomes": registrations, "spam_sent": sent,
        "spam_delivered": [b for who in ("alice", "bob") for b in seen[who]["bodies"] if b.startswith("SPAM")],
        "spammer_errors": seen["spammers"]["errors"], "spammer_challenges": seen["spammers"]["challenges"],
        "elapsed": round(time.monotonic() - started, 3)})
    for task in watchers:
        task.cancel()
    for connection in [alice, bob] + spammers:
        connection.close()
    return result


def main(argv=None):
    import argparse
    parser = argparse.ArgumentParser(description="registration and stranger-message flood")
    parser.add_argument("--port", type=int, required=True, help="the direct TLS port")
    parser.add_argument("--registrations", type=int, default=1000)
    parser.add_argument("--reg-connections", type=int, default=50)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--spammers", type=int, default=4)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args(argv)
    try:
        result = asyncio.run(asyncio.wait_for(main_async(args), args.timeout))
        result["ok"] = True
    except (asyncio.TimeoutError, ConnectionError, RuntimeError) as e:
        result = {"ok": False, "reasons": [f"{type(e).__name__}: {e}"]}
    print(json.dumps(result, sort_keys=True))
    return 0 if result["ok"] else 1


# -- the trial test -------------------------------------------------------------------------------

SPAMMERS = 4
PASSWORDS = {"alice": "alice-flood-pw", "bob": "bob-flood-pw",
             **{f"spammer{i}": f"spammer-{i}-pw" for i in range(SPAMMERS)}}


class FloodTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 170
    extensions = ("roster", "delivery", "blocking", "registration", "stranger_challenge", "abuse_limits")
    extra_config = """
[extensions.registration]
mode = "open"
pow_bits = 16
attempts_per_address = 20

[extensions.stranger_challenge]
mode = "new-contacts"

[extensions.abuse_limits]
account_rate = 20
account_burst = 100
"""
    accounts = {f"{name}@localhost": password for name, password in PASSWORDS.items()}

    @defer.inlineCallbacks
    def test_flood(self):
        """1,000 registration attempts and 10,000 strangers' messages in a burst: no account
        is created, no spam reaches alice or bob, every attempt is answered, and bob's
        messages to alice keep arriving (latency before and during printed)."""
        code, out, err = yield run_process(
            [os.path.abspath(__file__), "--port", str(self.tls_port), "--spammers", str(SPAMMERS)],
            child_env(FLOOD_PASSWORDS=json.dumps(PASSWORDS)), 150)
        lines = [line for line in out.splitlines() if line.strip()]
        self.assertTrue(lines, f"no output (exit {code}):\n{err}\n{self.server_log()[-3000:]}")
        result = json.loads(lines[-1])
        self.assertTrue(result["ok"], f"{result}\n{err[-3000:]}\n{self.server_log()[-3000:]}")
        print(f"\nflood: {result['registration_attempts']} registration attempts, {result['spam_sent']} "
              f"stranger messages in {result['flood_seconds']} s; bob->alice latency (ms) before "
              f"{result['latency_before']}, during {result['latency_during']}")
        self.assertEqual(result["spam_delivered"], [])
        self.assertEqual(result["registration_attempts"], 1000)
        self.assertEqual(sum(result["registration_outcomes"].values()), 1000)
        self.assertNotIn("success:", result["registration_outcomes"])
        outcomes = result["registration_outcomes"]
        self.assertGreater(outcomes.get("cancel:policy-violation", 0) + outcomes.get("iq:policy-violation", 0), 900)
        self.assertEqual(result["spam_sent"], 10000)
        errors = result["spammer_errors"]
        self.assertGreater(errors.get("policy-violation", 0), 9000)
        self.assertEqual(result["latency_during"]["n"], 20)
        code, users, _ = yield run_process(["-m", "summitd.ctl", "--config", self.config_path, "list-users"],
                                           child_env(), 60)
        self.assertEqual(sorted(users.split()), sorted(f"{name}@localhost" for name in PASSWORDS))
        yield self.stop_server()
        self.assertCleanServerLog()


if __name__ == "__main__":
    sys.exit(main())
