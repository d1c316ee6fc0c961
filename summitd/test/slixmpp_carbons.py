"""A slixmpp Message Carbons scenario (XEP-0280) against a running summitd; run by
test_integration_carbons.

Alice logs in twice (resources "one" and "two", both enable carbons with slixmpp's
xep_0280 plugin), bob once. Bob sends a chat message to alice/one: it must reach
alice/one and appear on alice/two as a received carbon only. Alice/one sends a chat
message to bob: it must reach bob and appear on alice/two as a sent carbon, never on
alice/one itself. The connection, TLS and output conventions (one JSON line, exit
status, --timeout, watchdog) are those of ``slixmpp_scenario``, whose runner this
script reuses by adding a "carbons" scenario to it.
"""

import asyncio
import sys
import time
import uuid

import slixmpp

from summitd.test import slixmpp_scenario as base


def _remaining(deadline):
    return max(deadline - time.monotonic(), 0.1)


def _describe(message):
    return {"from": message["from"].full, "to": message["to"].full, "type": message["type"],
            "body": message["body"]}


class Observer:
    """What one client saw: carbons by kind and plain messages, and futures for bodies."""

    def __init__(self, client):
        self.client = client
        self.seen = []      # (kind, wrapper description, forwarded description)
        self.waiting = {}   # (kind, body) -> future
        xmpp = client.xmpp
        xmpp.add_event_handler("carbon_received", lambda m: self._saw("received", m, m["carbon_received"]))
        xmpp.add_event_handler("carbon_sent", lambda m: self._saw("sent", m, m["carbon_sent"]))
        xmpp.add_event_handler("message", self._message)

    def _message(self, message):
        if message.xml.find("{urn:xmpp:carbons:2}received") is None and \
                message.xml.find("{urn:xmpp:carbons:2}sent") is None:
            self._saw("plain", message, message)

    def _saw(self, kind, wrapper, inner):
        entry = (kind, _describe(wrapper), _describe(inner))
        self.seen.append(entry)
        future = self.waiting.get((kind, inner["body"]))
        if future is not None and not future.done():
            future.set_result(entry)

    def expect(self, kind, body):
        future = asyncio.get_running_loop().create_future()
        self.waiting[(kind, body)] = future
        return future

    def saw(self, body):
        return [kind for kind, _, inner in self.seen if inner["body"] == body]


async def scenario_carbons(args, result, reasons, deadline):
    bare = slixmpp.JID(args.alice).bare
    one = base.Client("alice#1", bare + "/one", args.alice_password, args)
    two = base.Client("alice#2", bare + "/two", args.alice_password, args)
    bob = base.Client("bob", args.bob, args.bob_password, args)
    clients = [one, two, bob]
    for client in (one, two):
        client.xmpp.register_plugin("xep_0280")
    observers = {c.name: Observer(c) for c in clients}
    token = uuid.uuid4().hex
    inbound, outbound = f"to alice#1 from bob ({token})", f"to bob from alice#1 ({token})"
    try:
        await base.start_sessions(clients, deadline)
        for client in clients:
            base.check_session(client, args, reasons)
            client.xmpp.send_presence()
        for client in (one, two):
            await client.xmpp.plugin["xep_0280"].enable(timeout=_remaining(deadline))
        # Each stream is handled in order: a ping answered means presence was processed.
        await bob.xmpp.plugin["xep_0199"].ping(timeout=_remaining(deadline))

        received = observers["alice#2"].expect("received", inbound)
        original = observers["alice#1"].expect("plain", inbound)
        bob.xmpp.send_message(mto=one.info["bound_jid"], mbody=inbound, mtype="chat")
        result["received_carbon"] = (await asyncio.wait_for(received, _remaining(deadline)))[1:]
        await asyncio.wait_for(original, _remaining(deadline))

        sent = observers["alice#2"].expect("sent", outbound)
        delivered = observers["bob"].expect("plain", outbound)
        one.xmpp.send_message(mto=slixmpp.JID(args.bob).bare, mbody=outbound, mtype="chat")
        result["sent_carbon"] = (await asyncio.wait_for(sent, _remaining(deadline)))[1:]
        await asyncio.wait_for(delivered, _remaining(deadline))

        # A carbon for alice#1 would have been written before the answer to this ping.
        for client in clients:
            await client.xmpp.plugin["xep_0199"].ping(timeout=_remaining(deadline))
        result["seen"] = {name: {"inbound": o.saw(inbound), "outbound": o.saw(outbound)}
                          for name, o in observers.items()}
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    check(result, one, two, bob, bare, reasons)


def check(result, one, two, bob, bare, reasons):
    """XEP-0280 §7 and §8: the wrappers come from the bare JID to alice#2 and forward the
    original addresses; each client sees each message exactly once."""
    for kind, original_from, original_to in (
            ("received", bob.info["bound_jid"], one.info["bound_jid"]),
            ("sent", one.info["bound_jid"], slixmpp.JID(bob.info["jid"]).bare)):
        wrapper, inner = result[f"{kind}_carbon"]
        if (wrapper["from"], wrapper["to"], wrapper["type"]) != (bare, two.info["bound_jid"], "chat"):
            reasons.append(f"{kind} carbon wrapper: {wrapper}")
        if (inner["from"], inner["to"], inner["type"]) != (original_from, original_to, "chat"):
            reasons.append(f"{kind} carbon forwards {inner}")
    expected = {"alice#1": {"inbound": ["plain"], "outbound": []},
                "alice#2": {"inbound": ["received"], "outbound": ["sent"]},
                "bob": {"inbound": [], "outbound": ["plain"]}}
    if result["seen"] != expected:
        reasons.append(f"seen {result['seen']}, expected {expected}")


if __name__ == "__main__":
    base.SCENARIOS["carbons"] = scenario_carbons
    sys.exit(base.main())
