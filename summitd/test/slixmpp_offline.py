"""An offline-message scenario (XEP-0160, XEP-0203) for slixmpp against a running summitd;
run by test_integration_offline.

``offline``: alice logs in and sends a chat message to bob's bare JID while bob is
offline; once her ping shows the server has routed it, bob logs in, receives
nothing before his initial presence, then receives the message from alice's
full JID with a <delay/> from the domain whose stamp parses as a UTC time
between sending and receiving. Alice must get no error back.

It adds its scenario to slixmpp_scenario's runner and reuses its client, TLS and
output conventions (one JSON line, exit 0 only when "ok" is true).
"""

import asyncio
import datetime
import sys
import time
import uuid

import slixmpp

from summitd.test import slixmpp_scenario as base

STAMP_TOLERANCE = datetime.timedelta(seconds=2)    # stamps may be rounded to the second


def remaining(deadline):
    return max(deadline - time.monotonic(), 0.1)


async def ping_server(client, deadline):
    """Round trip to the server: everything the client sent before has been handled."""
    await client.xmpp.plugin["xep_0199"].ping(timeout=remaining(deadline))


def check_offline_message(got, alice, sent_at, reasons):
    if got["from"] != alice.info["bound_jid"]:
        reasons.append(f"message 'from' is {got['from']!r}, expected {alice.info['bound_jid']!r}")
    if got["delay_from"] != slixmpp.JID(alice.info["jid"]).domain:
        reasons.append(f"delay 'from' is {got['delay_from']!r}, expected the domain")
    stamp = got["stamp"]
    if stamp is None or stamp.utcoffset() != datetime.timedelta(0):
        reasons.append(f"delay stamp {got['stamp_text']!r} is not a UTC time")
    elif not sent_at - STAMP_TOLERANCE <= stamp <= got["received_at"] + STAMP_TOLERANCE:
        reasons.append(f"delay stamp {got['stamp_text']!r} is not between sending ({sent_at}) "
                       f"and receiving ({got['received_at']})")


async def scenario_offline(args, result, reasons, deadline):
    alice = base.Client("alice", args.alice, args.alice_password, args)
    bob = base.Client("bob", args.bob, args.bob_password, args)
    bob.xmpp.register_plugin("xep_0203")
    body = f"while you were out ({uuid.uuid4().hex}) \u2603"
    received = asyncio.get_running_loop().create_future()
    state = {"presence_sent": False, "early": [], "errors": []}

    def on_bob_message(msg):
        if msg["body"] != body:
            return
        if not state["presence_sent"]:
            state["early"].append(msg["id"])
        delay = msg["delay"]
        if not received.done():
            received.set_result({
                "from": msg["from"].full, "type": msg["type"],
                "delay_from": delay["from"].full if delay["from"] else None,
                "stamp_text": delay.xml.get("stamp"), "stamp": delay["stamp"],
                "received_at": datetime.datetime.now(datetime.timezone.utc)})

    bob.xmpp.add_event_handler("message", on_bob_message)
    alice.xmpp.add_event_handler(
        "message_error", lambda msg: state["errors"].append(msg["error"]["condition"]))
    try:
        await base.start_sessions([alice], deadline)
        base.check_session(alice, args, reasons)
        sent_at = datetime.datetime.now(datetime.timezone.utc)
        alice.xmpp.send_message(mto=slixmpp.JID(args.bob).bare, mbody=body, mtype="chat")
        await ping_server(alice, deadline)
        await base.start_sessions([bob], deadline)
        await ping_server(bob, deadline)
        state["presence_sent"] = True
        bob.xmpp.send_presence()
        got = await asyncio.wait_for(received, remaining(deadline))
        await ping_server(alice, deadline)
        check_offline_message(got, alice, sent_at, reasons)
        if state["early"]:
            reasons.append("the message arrived before bob's initial presence")
        if state["errors"]:
            reasons.append(f"alice got errors back: {state['errors']}")
        result["offline"] = {k: (v.isoformat() if isinstance(v, datetime.datetime) else v)
                             for k, v in got.items()}
    finally:
        result["sessions"] = {c.name: c.info for c in (alice, bob)}
        await asyncio.gather(*(c.close() for c in (alice, bob)), return_exceptions=True)


base.SCENARIOS["offline"] = scenario_offline

if __name__ == "__main__":
    sys.exit(base.main())
