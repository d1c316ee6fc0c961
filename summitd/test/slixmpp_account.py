"""An in-band account removal scenario (XEP-0077 §3.2) for slixmpp against a running summitd;
run by test_integration_account_removal.

``account_removal``: the staying user (--bob) logs in, stores a vCard (XEP-0054) and
private XML (XEP-0049) and, when SCENARIO_OFFLINE=1, writes to the leaving user (--alice)
while that one is offline, so an offline message waits for it. The message carries
<no-permanent-store/> (XEP-0334): it belongs in the leaver's offline storage, not in an
archive of the stayer's. Then the leaving user logs in twice (two resources, no presence,
so the offline message stays stored), stores a vCard, private XML and, when the server has
rosters, a roster item; and removes its account with slixmpp's ``cancel_registration``.
Checks: the removal is answered with a result, both sessions get the not-authorized stream
error and are disconnected, logging in again fails, and the leaver's vCard is gone
(service-unavailable) while the stayer's is still there.

It adds its scenario to slixmpp_scenario's runner and reuses its client, TLS and output
conventions (one JSON line, exit 0 only when "ok" is true).
"""

import asyncio
import os
import sys
import time
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError

from summitd.test import slixmpp_scenario as base


def remaining(deadline):
    return max(deadline - time.monotonic(), 0.1)


async def send_iq(client, type, payload, deadline):
    """An IQ without 'to' (the account itself) carrying ``payload`` (XML text)."""
    iq = client.xmpp.make_iq(itype=type)
    iq.set_payload(ET.fromstring(payload))
    return await iq.send(timeout=remaining(deadline))


async def store_data(client, deadline):
    """A vCard and private XML that name the account, so a trace would be found."""
    bare = slixmpp.JID(client.info["jid"]).bare
    vcard = client.xmpp.plugin["xep_0054"].make_vcard()
    vcard["FN"] = f"The owner of {bare}"
    vcard["NICKNAME"] = bare
    await client.xmpp.plugin["xep_0054"].publish_vcard(vcard, timeout=remaining(deadline))
    await send_iq(client, "set", "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>"
                                 f"<conference jid='room@conference.localhost' name='{bare}'/>"
                                 "</storage></query>", deadline)


async def add_roster_item(client, contact, deadline):
    """'stored', or 'unsupported' when the server has no rosters."""
    try:
        await send_iq(client, "set", f"<query xmlns='jabber:iq:roster'><item jid='{contact}' name='stayer'/>"
                                     "</query>", deadline)
    except IqError as e:
        if e.iq["error"]["condition"] in ("service-unavailable", "feature-not-implemented"):
            return "unsupported"
        raise
    return "stored"


async def vcard_error(client, jid, deadline):
    """The error condition of fetching ``jid``'s vCard, or None when it came back."""
    try:
        await client.xmpp.plugin["xep_0054"].get_vcard(slixmpp.JID(jid), timeout=remaining(deadline))
    except IqError as e:
        return e.iq["error"]["condition"]
    return None


def leaving_client(name, args):
    client = base.Client(name, args.alice, args.alice_password, args)
    client.xmpp.register_plugin("xep_0054")
    client.xmpp.register_plugin("xep_0077")
    client.xmpp.add_event_handler(
        "stream_error", lambda error: client.info.setdefault("stream_error", error["condition"]))
    return client


async def relogin_fails(args, deadline):
    """Whether logging in as the removed account is refused."""
    ghost = base.Client("ghost", args.alice, args.alice_password, args)
    try:
        await base.start_sessions([ghost], deadline)
    except base.ScenarioFailed as e:
        return "authentication" in str(e) or "SASL" in str(e)
    finally:
        await ghost.close()
    return False


async def scenario_account_removal(args, result, reasons, deadline):
    stayer = base.Client("stayer", args.bob, args.bob_password, args)
    stayer.xmpp.register_plugin("xep_0054")
    leavers = [leaving_client("leaver", args), leaving_client("leaver-2", args)]
    leaver_bare = slixmpp.JID(args.alice).bare
    bounced = []    # errors for the stayer's message: it should have been stored, not refused
    stayer.xmpp.add_event_handler("message_error", lambda msg: bounced.append(msg["error"]["condition"]))
    try:
        await base.start_sessions([stayer], deadline)
        await store_data(stayer, deadline)
        if os.environ.get("SCENARIO_OFFLINE") == "1":
            message = stayer.xmpp.make_message(mto=leaver_bare, mbody="for when you are back", mtype="chat")
            message.append(ET.Element("{urn:xmpp:hints}no-permanent-store"))
            message.send()
            await stayer.xmpp.plugin["xep_0199"].ping(timeout=remaining(deadline))   # handled by now
        await base.start_sessions(leavers, deadline)
        await store_data(leavers[0], deadline)
        result["roster"] = await add_roster_item(leavers[0], slixmpp.JID(args.bob).bare, deadline)

        reply = await leavers[0].xmpp.plugin["xep_0077"].cancel_registration(timeout=remaining(deadline))
        result["removal_reply"] = reply["type"]
        if bounced:
            reasons.append(f"the message to the offline leaver was refused: {bounced}")
        await asyncio.wait_for(asyncio.gather(*(c.disconnected for c in leavers)), remaining(deadline))
        result["stream_errors"] = [c.info.get("stream_error") for c in leavers]
        if result["stream_errors"] != ["not-authorized", "not-authorized"]:
            reasons.append(f"stream errors after the removal: {result['stream_errors']}")

        result["relogin_refused"] = await relogin_fails(args, deadline)
        if not result["relogin_refused"]:
            reasons.append("the removed account could still log in")
        result["leaver_vcard"] = await vcard_error(stayer, leaver_bare, deadline)
        if result["leaver_vcard"] != "service-unavailable":
            reasons.append(f"the removed account's vCard answered {result['leaver_vcard']!r}")
        result["stayer_vcard"] = await vcard_error(stayer, slixmpp.JID(args.bob).bare, deadline)
        if result["stayer_vcard"] is not None:
            reasons.append(f"the staying account's vCard answered {result['stayer_vcard']!r}")
    finally:
        result["sessions"] = {c.name: c.info for c in [stayer, *leavers]}
        await asyncio.gather(*(c.close() for c in [stayer, *leavers]), return_exceptions=True)


base.SCENARIOS["account_removal"] = scenario_account_removal

if __name__ == "__main__":
    sys.exit(base.main())
