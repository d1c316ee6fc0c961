"""Presence scenarios with slixmpp against a running summitd; run by test_integration_presence.

Built on slixmpp_scenario.py (its client, TLS/SASL checks, JSON report, timeouts and
watchdog); this script adds two scenarios to it:

``presence``: alice and bob log in, fetch their rosters and send initial presence (with
  slixmpp's automatic subscription handling switched off). alice asks for bob's presence;
  each side approves requests by hand and asks back. Both rosters must end with
  subscription "both" and each client must have seen the other's available presence
  from its full JID. Then bob disconnects cleanly and alice must see him go unavailable.
``presence-abort``: the same, but bob's connection is cut without closing the stream.
"""

import asyncio
import functools
import os
import sys
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import slixmpp  # noqa: E402

from summitd.test import slixmpp_scenario as base  # noqa: E402


async def wait_until(condition, deadline, what):
    """Poll ``condition`` until it holds; ScenarioFailed naming ``what`` at the deadline."""
    while not condition():
        if time.monotonic() > deadline:
            raise base.ScenarioFailed(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Watcher:
    """What one client has seen of presence, and its hand-made approvals."""

    def __init__(self, client):
        self.client = client
        self.available = set()
        self.unavailable = set()
        xmpp = client.xmpp
        xmpp.auto_authorize = None      # no automatic answers: this scenario answers itself
        xmpp.auto_subscribe = False
        xmpp.add_event_handler("presence_available", lambda p: self.available.add(p["from"].full))
        xmpp.add_event_handler("presence_unavailable", lambda p: self.unavailable.add(p["from"].full))
        xmpp.add_event_handler("presence_subscribe", self._approve)

    def _approve(self, presence):
        contact = presence["from"].bare
        xmpp = self.client.xmpp
        xmpp.send_presence(pto=contact, ptype="subscribed")
        if not xmpp.client_roster[contact]["to"]:
            xmpp.send_presence(pto=contact, ptype="subscribe")

    def subscription(self, contact):
        return self.client.xmpp.client_roster[contact]["subscription"]


async def scenario_presence(args, result, reasons, deadline, abort=False):
    alice = base.Client("alice", args.alice, args.alice_password, args)
    bob = base.Client("bob", args.bob, args.bob_password, args)
    clients = [alice, bob]
    watchers = {c.name: Watcher(c) for c in clients}
    alice_bare, bob_bare = slixmpp.JID(args.alice).bare, slixmpp.JID(args.bob).bare
    try:
        await base.start_sessions(clients, deadline)
        for client in clients:
            base.check_session(client, args, reasons)
            await client.xmpp.get_roster(timeout=max(deadline - time.monotonic(), 0.1))
            client.xmpp.send_presence()
        alice_full, bob_full = alice.info["bound_jid"], bob.info["bound_jid"]
        alice.xmpp.send_presence(pto=bob_bare, ptype="subscribe")
        await wait_until(lambda: (watchers["alice"].subscription(bob_bare) == "both"
                                  and watchers["bob"].subscription(alice_bare) == "both"),
                         deadline, "a mutual subscription in both rosters")
        await wait_until(lambda: bob_full in watchers["alice"].available and alice_full in watchers["bob"].available,
                         deadline, "each to see the other's available presence")
        result["rosters"] = {"alice": watchers["alice"].subscription(bob_bare),
                             "bob": watchers["bob"].subscription(alice_bare)}
        result["seen_available"] = {"alice": sorted(watchers["alice"].available),
                                    "bob": sorted(watchers["bob"].available)}
        if abort:
            bob.xmpp.abort()
        else:
            await bob.close()
        await wait_until(lambda: bob_full in watchers["alice"].unavailable, deadline,
                         "alice to see bob go unavailable")
        result["alice_saw_bob_leave"] = bob_full
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


base.SCENARIOS.update({
    "presence": scenario_presence,
    "presence-abort": functools.partial(scenario_presence, abort=True),
})

if __name__ == "__main__":
    sys.exit(base.main())
