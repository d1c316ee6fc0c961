"""slixmpp scenarios for spam defence; run by test_integration_registration.

They add to ``slixmpp_scenario`` (same arguments, JSON report, bounds and watchdog):

``invite-register``: a new user registers with slixmpp's XEP-0077 plugin after sending
  the invitation token (``SCENARIO_TOKEN``) the XEP-0445 way, then logs in as the new
  account on the same stream. A second client presenting the same (single-use) token
  is refused with item-not-found.
``stranger``: bob, not in alice's roster, writes to alice: his message is held and he
  gets an XEP-0158 challenge; he does the SHA-256 hashcash and answers with an IQ; the
  server says result and alice then receives the message. Before the answer alice
  has received nothing.
``report``: alice blocks bob with a spam report (slixmpp's xep_0377).
"""

import asyncio
import os
import sys
import time
import uuid
from xml.etree import ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slixmpp_scenario as base  # noqa: E402  (the shared client harness)
from slixmpp_blocking import Inbox, remaining, sync  # noqa: E402

from summitd.plugins.registration import hashcash  # noqa: E402  (PYTHONPATH has the repo)

NS_CAPTCHA = "urn:xmpp:captcha"
NS_DATA = "jabber:x:data"


def registering_client(name, jid, password, token, args, outcome):
    """A client that redeems ``token`` and registers ``jid`` when offered XEP-0077."""
    client = base.Client(name, jid, password, args)
    client.xmpp.register_plugin("xep_0077")

    async def register(form):
        preauth = client.xmpp.Iq()
        preauth["type"] = "set"
        preauth.append(ET.Element("{urn:xmpp:pars:0}preauth", token=token))
        # slixmpp lets only IQs with a jabber:iq:register payload out before the session
        # starts (XMLStream.send); XEP-0445's <preauth/> must go first, so open the gate.
        client.xmpp._always_send_everything = True
        try:
            await preauth.send(timeout=10)
        except IqError as e:
            outcome.set_result({"preauth_error": e.iq["error"]["condition"]})
            client.xmpp.disconnect()
            return
        finally:
            client.xmpp._always_send_everything = False
        request = client.xmpp.Iq()
        request["type"] = "set"
        request["register"]["username"] = slixmpp.JID(jid).user
        request["register"]["password"] = password
        try:
            await request.send(timeout=10)
        except IqError as e:
            outcome.set_result({"register_error": e.iq["error"]["condition"]})
            client.xmpp.disconnect()
            return
        outcome.set_result({"registered": True})

    client.xmpp.add_event_handler("register", register)
    return client


async def scenario_invite_register(args, result, reasons, deadline):
    token = os.environ["SCENARIO_TOKEN"]
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    newbie = registering_client("newbie", "juliet@localhost", "juliet's new p4ssword", token, args, first)
    again = registering_client("again", "romeo@localhost", "romeo's new p4ssword", token, args, second)
    try:
        newbie.connect()
        result["registration"] = await asyncio.wait_for(first, remaining(deadline))
        await asyncio.wait_for(newbie.session_started, remaining(deadline))
        base.check_session(newbie, args, reasons)
        await sync(newbie, deadline)
        again.connect()
        result["replay"] = await asyncio.wait_for(second, remaining(deadline))
    finally:
        result["sessions"] = {"newbie": newbie.info}
        await asyncio.gather(newbie.close(), again.close(), return_exceptions=True)
    if result["registration"] != {"registered": True}:
        reasons.append(f"registration: {result['registration']}")
    if result["replay"] != {"preauth_error": "item-not-found"}:
        reasons.append(f"the replayed token was not refused: {result['replay']}")


def challenge_answer(message):
    """The IQ payload answering the XEP-0158 challenge in ``message`` (the work done)."""
    form = message.xml.find(f"{{{NS_CAPTCHA}}}captcha/{{{NS_DATA}}}x")
    fields = {f.get("var"): f for f in form.findall(f"{{{NS_DATA}}}field")}
    value = {var: (f.findtext(f"{{{NS_DATA}}}value") or "") for var, f in fields.items()}
    answer = hashcash.solve(value["from"], fields["SHA-256"].get("label"))
    captcha = ET.Element(f"{{{NS_CAPTCHA}}}captcha")
    x = ET.SubElement(captcha, f"{{{NS_DATA}}}x", type="submit")
    for var, text in (("FORM_TYPE", NS_CAPTCHA), ("from", value["from"]), ("challenge", value["challenge"]),
                      ("SHA-256", answer)):
        ET.SubElement(ET.SubElement(x, f"{{{NS_DATA}}}field", var=var), f"{{{NS_DATA}}}value").text = text
    return captcha, value


async def scenario_stranger(args, result, reasons, deadline):
    alice = base.Client("alice", args.alice, args.alice_password, args)
    bob = base.Client("bob", args.bob, args.bob_password, args)
    clients = [alice, bob]
    alice_messages = Inbox(alice.xmpp, "message")
    bob_messages = Inbox(bob.xmpp, "message")
    token = uuid.uuid4().hex
    body = f"hello stranger alice ({token})"
    try:
        await base.start_sessions(clients, deadline)
        for client in clients:
            base.check_session(client, args, reasons)
            client.xmpp.send_presence()
        for client in clients:
            await sync(client, deadline)
        challenged = bob_messages.wait_for(lambda m: m.xml.find(f"{{{NS_CAPTCHA}}}captcha") is not None, deadline)
        bob.xmpp.send_message(mto=slixmpp.JID(args.alice).bare, mbody=body, mtype="chat")
        challenge = await challenged
        await sync(alice, deadline)
        result["held"] = [m["body"] for m in alice_messages.seen]
        result["challenge_from"] = challenge["from"].full
        arrived = alice_messages.wait_for(lambda m: m["body"] == body, deadline)
        started = time.monotonic()
        captcha, fields = challenge_answer(challenge)
        result["work_seconds"] = round(time.monotonic() - started, 3)
        result["form_from"] = fields["from"]
        iq = bob.xmpp.Iq()
        iq["type"], iq["to"] = "set", challenge["from"]
        iq.append(captcha)
        reply = await iq.send(timeout=remaining(deadline))
        result["answer"] = reply["type"]
        got = await arrived
        result["delivered"] = {"from": got["from"].full, "body": got["body"]}
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    expected = {"held": [], "challenge_from": "localhost", "form_from": slixmpp.JID(args.alice).bare,
                "answer": "result"}
    for key, value in expected.items():
        if result.get(key) != value:
            reasons.append(f"{key}: expected {value!r}, got {result.get(key)!r}")
    if result["delivered"]["from"] != bob.info.get("bound_jid"):
        reasons.append(f"delivered from {result['delivered']['from']!r}")


async def scenario_report(args, result, reasons, deadline):
    alice = base.Client("alice", args.alice, args.alice_password, args)
    alice.xmpp.register_plugin("xep_0377")
    try:
        await base.start_sessions([alice], deadline)
        base.check_session(alice, args, reasons)
        await alice.xmpp.plugin["xep_0377"].report(slixmpp.JID(args.bob).bare, reason="spam",
                                                   timeout=remaining(deadline))
        blocked = await alice.xmpp.plugin["xep_0191"].get_blocked_jids(timeout=remaining(deadline))
        result["blocked"] = sorted(str(j) for j in blocked)
    finally:
        result["sessions"] = {"alice": alice.info}
        await alice.close()
    if result["blocked"] != [slixmpp.JID(args.bob).bare]:
        reasons.append(f"blocklist after the report: {result['blocked']}")


base.SCENARIOS.update({"invite-register": scenario_invite_register, "stranger": scenario_stranger,
                       "report": scenario_report})

if __name__ == "__main__":
    sys.exit(base.main())
