"""A slixmpp scenario across two federated servers: alice on one, bob on the other.

Run by the federation tests (``test_s2s_loopback``, ``test_s2s_prosody``) in a process of
its own (slixmpp is asyncio). Both log in (STARTTLS, the given SASL mechanism each),
send initial presence, subscribe to each other (each side approves the other's
request by hand: no auto-authorisation), wait until each sees the other's available
presence, then exchange one chat message each way. It prints one JSON line with
"ok" and what it saw; exit 0 when every step worked, 1 otherwise, 2 on bad arguments.

With ``--probe JID`` (repeatable) alice alone writes to each JID and reports the error
conditions that come back (see ``probe``).

Addresses: ``--alice JID@HOST:PORT/MECHANISM`` and ``--bob ...``; passwords come from
SCENARIO_ALICE_PASSWORD and SCENARIO_BOB_PASSWORD. ``--cafile`` verifies each server's
certificate for its domain (without it, checks are off: loopback tests only).
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
import uuid

import slixmpp

from summitd.test.slixmpp_scenario import Client, ScenarioFailed, _watchdog, start_sessions


def parse_account(text):
    """``alice@a.test@127.0.0.2:5222/SCRAM-SHA-1`` -> (jid, host, port, mechanism)."""
    address, _, mechanism = text.rpartition("/")
    jid, _, hostport = address.rpartition("@")
    host, _, port = hostport.rpartition(":")
    if not (jid and host and port.isdigit() and mechanism):
        raise argparse.ArgumentTypeError(f"{text!r} is not JID@HOST:PORT/MECHANISM")
    return jid, host, int(port), mechanism


class Party:
    """One user: a slixmpp session plus what it observed of the other one."""

    def __init__(self, name, account, password, args):
        jid, host, port, mechanism = account
        client_args = argparse.Namespace(host=host, port=port, mechanism=mechanism, tls="starttls",
                                         cafile=args.cafile)
        self.name = name
        self.jid = slixmpp.JID(jid)
        self.client = Client(name, jid, password, client_args)
        xmpp = self.client.xmpp
        xmpp.register_plugin("xep_0030")
        xmpp.roster.auto_authorize = None     # None: ask (our handler); False would refuse
        xmpp.roster.auto_subscribe = False
        loop = asyncio.get_running_loop()
        self.saw_available = loop.create_future()
        self.got_subscribe = loop.create_future()
        self.messages = asyncio.Queue()
        self.other = None
        xmpp.add_event_handler("presence_subscribe", self._subscribe)
        xmpp.add_event_handler("presence_available", self._available)
        xmpp.add_event_handler("message", self._message)

    def _subscribe(self, presence):
        if presence["from"].bare == self.other.bare and not self.got_subscribe.done():
            self.got_subscribe.set_result(presence["from"].bare)

    def _available(self, presence):
        if presence["from"].bare == self.other.bare and not self.saw_available.done():
            self.saw_available.set_result(presence["from"].full)

    def _message(self, message):
        if message["type"] in ("chat", "normal") and message["body"]:
            self.messages.put_nowait({"from": message["from"].full, "to": message["to"].full,
                                      "body": message["body"], "type": message["type"]})

    def send_presence(self, to, ptype):
        self.client.xmpp.send_presence(pto=to, ptype=ptype)


def remaining(deadline):
    return max(deadline - time.monotonic(), 0.1)


async def expect_message(party, body, deadline):
    while True:
        message = await asyncio.wait_for(party.messages.get(), remaining(deadline))
        if message["body"] == body:
            return message


async def run(args, result, reasons, deadline):
    alice = Party("alice", args.alice, os.environ.get("SCENARIO_ALICE_PASSWORD", ""), args)
    bob = Party("bob", args.bob, os.environ.get("SCENARIO_BOB_PASSWORD", ""), args)
    alice.other, bob.other = bob.jid, alice.jid
    parties = [alice, bob]
    try:
        await start_sessions([p.client for p in parties], deadline)
        for party in parties:
            party.client.xmpp.send_presence()
        # Subscriptions both ways, each approved by the other user (RFC 6121 §3.1).
        alice.send_presence(bob.jid.bare, "subscribe")
        await asyncio.wait_for(bob.got_subscribe, remaining(deadline))
        bob.send_presence(alice.jid.bare, "subscribed")
        bob.send_presence(alice.jid.bare, "subscribe")
        await asyncio.wait_for(alice.got_subscribe, remaining(deadline))
        alice.send_presence(bob.jid.bare, "subscribed")
        seen = await asyncio.wait_for(asyncio.gather(alice.saw_available, bob.saw_available),
                                      remaining(deadline))
        result["presence"] = {"alice_saw": seen[0], "bob_saw": seen[1]}
        token = uuid.uuid4().hex
        exchanges = {}
        for sender, receiver in ((alice, bob), (bob, alice)):
            body = f"hello {receiver.name} from {sender.name} across federation ({token}) \u2603 <&>"
            sender.client.xmpp.send_message(mto=receiver.jid.bare, mbody=body, mtype="chat")
            exchanges[f"{sender.name}_to_{receiver.name}"] = await expect_message(receiver, body, deadline)
        result["messages"] = exchanges
        for name, message in exchanges.items():
            sender = alice if name.startswith("alice") else bob
            if slixmpp.JID(message["from"]).bare != sender.jid.bare:
                reasons.append(f"{name}: 'from' is {message['from']!r}")
        result["rosters"] = {p.name: p.client.xmpp.client_roster[p.other.bare]["subscription"] for p in parties}
    finally:
        result["sessions"] = {p.name: p.client.info for p in parties}
        await asyncio.gather(*(p.client.close() for p in parties), return_exceptions=True)


async def probe(args, result, reasons, deadline):
    """``--probe JID ...``: alice writes to each JID and records the error condition that comes
    back ("none" if nothing does before the deadline): it tells refused peers
    (remote-server-not-found from our server) from reached ones (the peer's own error)."""
    alice = Party("alice", args.alice, os.environ.get("SCENARIO_ALICE_PASSWORD", ""), args)
    alice.other = slixmpp.JID("nobody@invalid")
    errors = {jid: asyncio.get_running_loop().create_future() for jid in args.probe}

    def on_error(message):
        waiting = errors.get(message["from"].bare)
        if waiting is not None and not waiting.done():
            waiting.set_result(message["error"]["condition"])

    alice.client.xmpp.add_event_handler("message_error", on_error)
    try:
        await start_sessions([alice.client], deadline)
        for jid in args.probe:
            alice.client.xmpp.send_message(mto=jid, mbody="are you there?", mtype="chat")
        await asyncio.wait(errors.values(), timeout=remaining(deadline))
        result["probes"] = {jid: f.result() if f.done() else "none" for jid, f in errors.items()}
    finally:
        result["sessions"] = {"alice": alice.client.info}
        await alice.client.close()


async def main_async(args):
    result = {"ok": False}
    reasons = []
    deadline = time.monotonic() + args.timeout
    scenario = probe if args.probe else run
    try:
        await asyncio.wait_for(scenario(args, result, reasons, deadline), args.timeout + 5)
    except (asyncio.TimeoutError, TimeoutError):
        reasons.append(f"timed out after {args.timeout} s (at {sorted(result)})")
    except ScenarioFailed as e:
        reasons.append(str(e))
    except Exception as e:  # reported, not hidden: the test shows it
        reasons.append(f"{type(e).__name__}: {e}")
    result["reasons"] = reasons
    result["ok"] = not reasons
    return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alice", type=parse_account, required=True)
    p.add_argument("--bob", type=parse_account)
    p.add_argument("--probe", action="append", default=[], help="a JID to probe (see probe())")
    p.add_argument("--cafile")
    p.add_argument("--host", help="ignored (the accounts name their servers)")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    if not args.probe and args.bob is None:
        p.error("--bob is needed unless --probe is given")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR, stream=sys.stderr)
    signal.signal(signal.SIGALRM, _watchdog)
    signal.alarm(int(args.timeout) + 15)
    result = asyncio.run(main_async(args))
    signal.alarm(0)
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
