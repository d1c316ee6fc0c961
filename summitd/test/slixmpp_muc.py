"""A slixmpp Multi-User Chat scenario (XEP-0045, its xep_0045 plugin) against a running summitd;
run by test_integration_groupchat.

``muc``: alice enters a new room (it is created: status 201), fetches its configuration
form, makes it persistent and names it, and says three things; bob enters asking for the
last ten messages of history and must get alice's three lines (delayed, from the room),
see alice among the occupants and get the subject last; bob speaks and alice hears it;
then alice kicks bob with a reason and bob must see himself kicked (status 307, the reason).

The connection, TLS and output conventions (one JSON line, exit status, --timeout,
watchdog) are those of ``slixmpp_scenario``, whose runner this script reuses.
"""

import asyncio
import sys
import time
import uuid

import slixmpp

from summitd.test import slixmpp_scenario as base

ROOM = "coven@conference.localhost"


def remaining(deadline):
    return max(deadline - time.monotonic(), 0.1)


def muc_client(name, jid, password, args):
    client = base.Client(name, jid, password, args)
    client.xmpp.register_plugin("xep_0045")
    client.xmpp.register_plugin("xep_0004")
    return client


def future():
    return asyncio.get_running_loop().create_future()


async def scenario_muc(args, result, reasons, deadline):
    alice = muc_client("alice", args.alice, args.alice_password, args)
    bob = muc_client("bob", args.bob, args.bob_password, args)
    clients = [alice, bob]
    room = slixmpp.JID(ROOM)
    token = uuid.uuid4().hex[:8]
    lines = [f"line {n} ({token})" for n in range(1, 4)]
    heard, kicked = future(), future()

    def alice_heard(message):
        if message["body"] == f"bob here ({token})" and not heard.done():
            heard.set_result(message["from"].full)

    def bob_presence(presence):
        codes = presence["muc"]["status_codes"]
        if presence["type"] == "unavailable" and 110 in codes and not kicked.done():
            kicked.set_result({"codes": sorted(codes), "reason": presence["muc"]["item"]["reason"]})

    alice.xmpp.add_event_handler(f"muc::{ROOM}::message", alice_heard)
    bob.xmpp.add_event_handler(f"muc::{ROOM}::presence", bob_presence)
    muc_a, muc_b = alice.xmpp.plugin["xep_0045"], bob.xmpp.plugin["xep_0045"]
    try:
        await base.start_sessions(clients, deadline)
        own, _, _, _ = await muc_a.join_muc_wait(room, "hecate", maxstanzas=0, timeout=remaining(deadline))
        result["created_codes"] = sorted(own["muc"]["status_codes"])
        if 201 not in result["created_codes"]:
            reasons.append(f"entering a new room did not say 201: {result['created_codes']}")
        form = await muc_a.get_room_config(room, timeout=remaining(deadline))
        form["type"] = "submit"
        form.set_values({"muc#roomconfig_persistentroom": True, "muc#roomconfig_roomname": "The Coven"})
        await muc_a.set_room_config(room, form, timeout=remaining(deadline))
        for line in lines:
            alice.xmpp.send_message(mto=room, mbody=line, mtype="groupchat")
        await alice.xmpp.plugin["xep_0199"].ping(timeout=remaining(deadline))

        presence, subject, occupants, history = await muc_b.join_muc_wait(
            room, "bob", maxstanzas=10, timeout=remaining(deadline))
        result["history"] = [m["body"] for m in history]
        result["occupants"] = sorted(p["from"].resource for p in occupants)
        result["subject_from"] = subject["from"].full
        if result["history"] != lines:
            reasons.append(f"bob's history is {result['history']}, not alice's three lines")
        if "hecate" not in result["occupants"]:
            reasons.append(f"bob did not see hecate among {result['occupants']}")

        bob.xmpp.send_message(mto=room, mbody=f"bob here ({token})", mtype="groupchat")
        result["alice_heard_from"] = await asyncio.wait_for(heard, remaining(deadline))
        if result["alice_heard_from"] != f"{ROOM}/bob":
            reasons.append(f"alice heard bob from {result['alice_heard_from']}")

        await muc_a.set_role(room, "bob", "none", reason="Avaunt", timeout=remaining(deadline))
        result["kicked"] = await asyncio.wait_for(kicked, remaining(deadline))
        if 307 not in result["kicked"]["codes"] or result["kicked"]["reason"] != "Avaunt":
            reasons.append(f"bob's kick presence says {result['kicked']}")
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


if __name__ == "__main__":
    base.SCENARIOS["muc"] = scenario_muc
    sys.exit(base.main())
