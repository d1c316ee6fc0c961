"""slixmpp MIX scenarios (XEP-0369 and XEP-0405, its xep_0369 and xep_0405 plugins) against a
running summitd; run by test_integration_groupchat.

``mix``: alice creates a channel (xep_0369 ``create_channel``), joins it through her own
server (xep_0405 ``join_channel``: a client-join) and reads her annotated roster (the
channel with a participant id); bob joins the same way; bob's message reaches alice with
``<mix/>`` naming him; alice goes offline, bob sends two more, alice comes back with a new
client and finds all three in her own archive with the channel (MAM ``with``).

``both``: the channel is also the MUC room ``coven@conference.localhost``; carol is a MUC
client (xep_0045) and alice a MIX client: carol hears alice's message from ``room/hecate``
and alice hears carol's as a MIX message from her nick.

Conventions (one JSON line, exit status, --timeout, watchdog) are ``slixmpp_scenario``'s;
carol's password comes from SCENARIO_CAROL_PASSWORD.
"""

import asyncio
import os
import sys
import time
import uuid

import slixmpp

from summitd.test import slixmpp_scenario as base
from summitd.test.slixmpp_mam import Results, query

CHANNEL = "coven@mix.localhost"
ROOM = "coven@conference.localhost"
CAROL = "carol@localhost"


def remaining(deadline):
    return max(deadline - time.monotonic(), 0.1)


def mix_client(name, jid, password, args):
    client = base.Client(name, jid, password, args)
    for plugin in ("xep_0030", "xep_0060", "xep_0369", "xep_0405", "xep_0313"):
        client.xmpp.register_plugin(plugin)
    return client


def heard(client, body, event="mix_message"):
    """A future set to the first message with ``body`` (its from, and its <mix/> nick)."""
    found = asyncio.get_running_loop().create_future()

    def on_message(message):
        if message["body"] == body and not found.done():
            found.set_result({"from": message["from"].full, "nick": message["mix"]["nick"]})
    client.xmpp.add_event_handler(event, on_message)
    return found


async def online(clients, deadline):
    """Sessions with available presence, processed by the server (a ping after it)."""
    await base.start_sessions(clients, deadline)
    for client in clients:
        client.xmpp.send_presence()
        await client.xmpp.plugin["xep_0199"].ping(timeout=remaining(deadline))


async def scenario_mix(args, result, reasons, deadline):
    token = uuid.uuid4().hex[:8]
    alice = mix_client("alice", args.alice, args.alice_password, args)
    bob = mix_client("bob", args.bob, args.bob_password, args)
    clients, again = [alice, bob], None
    channel = slixmpp.JID(CHANNEL)
    first = f"first ({token})"
    live = heard(alice, first)
    try:
        await online(clients, deadline)
        result["created"] = await alice.xmpp.plugin["xep_0369"].create_channel(
            slixmpp.JID("mix.localhost"), "coven", timeout=remaining(deadline))
        failed = await alice.xmpp.plugin["xep_0405"].join_channel(channel, "hecate", timeout=remaining(deadline))
        if failed:
            reasons.append(f"alice's join left nodes unsubscribed: {sorted(failed)}")
        _, channels = await alice.xmpp.plugin["xep_0405"].get_mix_roster(timeout=remaining(deadline))
        result["roster_channels"] = [(item["jid"].full, item["channel"]["participant-id"]) for item in channels]
        if [jid for jid, _ in result["roster_channels"]] != [CHANNEL] or not result["roster_channels"][0][1]:
            reasons.append(f"the annotated roster shows {result['roster_channels']}")
        await bob.xmpp.plugin["xep_0405"].join_channel(channel, "bob", timeout=remaining(deadline))
        bob.xmpp.send_message(mto=channel, mbody=first, mtype="groupchat")
        result["live"] = await asyncio.wait_for(live, remaining(deadline))
        if result["live"]["nick"] != "bob" or not result["live"]["from"].startswith(CHANNEL + "/"):
            reasons.append(f"alice got bob's message as {result['live']}")

        await alice.close()
        missed = [f"missed {n} ({token})" for n in (1, 2)]
        for body in missed:
            bob.xmpp.send_message(mto=channel, mbody=body, mtype="groupchat")
        await bob.xmpp.plugin["xep_0199"].ping(timeout=remaining(deadline))

        again = mix_client("alice-again", args.alice, args.alice_password, args)
        results = Results(again)
        await online([again], deadline)
        found, fin = await query(again, results, deadline, {"with": CHANNEL})
        result["caught_up"] = [item["body"] for item in found]
        if result["caught_up"] != [first] + missed:
            reasons.append(f"alice's archive with the channel holds {result['caught_up']}")
    finally:
        everyone = clients + ([again] if again else [])
        result["sessions"] = {c.name: c.info for c in everyone}
        await asyncio.gather(*(c.close() for c in everyone), return_exceptions=True)


async def scenario_both(args, result, reasons, deadline):
    token = uuid.uuid4().hex[:8]
    alice = mix_client("alice", args.alice, args.alice_password, args)
    carol = base.Client("carol", CAROL, os.environ.get("SCENARIO_CAROL_PASSWORD", ""), args)
    carol.xmpp.register_plugin("xep_0045")
    clients = [alice, carol]
    from_mix, from_muc = f"from MIX ({token})", f"from MUC ({token})"
    carol_heard = asyncio.get_running_loop().create_future()
    alice_heard = heard(alice, from_muc)

    def on_groupchat(message):
        if message["body"] == from_mix and not carol_heard.done():
            carol_heard.set_result(message["from"].full)
    carol.xmpp.add_event_handler("groupchat_message", on_groupchat)
    try:
        await online(clients, deadline)
        await alice.xmpp.plugin["xep_0369"].create_channel(slixmpp.JID("mix.localhost"), "coven",
                                                           timeout=remaining(deadline))
        await alice.xmpp.plugin["xep_0405"].join_channel(slixmpp.JID(CHANNEL), "hecate", timeout=remaining(deadline))
        _, _, occupants, _ = await carol.xmpp.plugin["xep_0045"].join_muc_wait(
            slixmpp.JID(ROOM), "graymalkin", maxstanzas=0, timeout=remaining(deadline))
        result["muc_occupants"] = sorted(p["from"].resource for p in occupants)
        alice.xmpp.send_message(mto=slixmpp.JID(CHANNEL), mbody=from_mix, mtype="groupchat")
        result["carol_heard_from"] = await asyncio.wait_for(carol_heard, remaining(deadline))
        if result["carol_heard_from"] != f"{ROOM}/hecate":
            reasons.append(f"carol heard alice from {result['carol_heard_from']}")
        carol.xmpp.send_message(mto=slixmpp.JID(ROOM), mbody=from_muc, mtype="groupchat")
        result["alice_heard"] = await asyncio.wait_for(alice_heard, remaining(deadline))
        if result["alice_heard"]["nick"] != "graymalkin":
            reasons.append(f"alice heard carol as {result['alice_heard']}")
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


if __name__ == "__main__":
    base.SCENARIOS["mix"] = scenario_mix
    base.SCENARIOS["both"] = scenario_both
    sys.exit(base.main())
