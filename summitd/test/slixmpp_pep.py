"""slixmpp PEP scenarios (XEP-0163) against a running summitd; run by test_integration_pep.

``avatar``: alice and bob become contacts both ways through presence subscriptions (the
  roster and presence extensions), bob's caps announce urn:xmpp:avatar:metadata+notify
  (slixmpp's xep_0084); alice publishes an avatar (XEP-0084 data, then metadata); bob must
  receive the metadata notification from alice's bare JID and fetch the data by its id.
``bookmarks``: alice's resources "one" and "two" want urn:xmpp:bookmarks:1 notifications;
  "one" adds a bookmark (XEP-0402 with its publish-options), "two" must be notified and read
  it back; "two" retracts it with notify and "one" must hear of the retraction.
``omemo``: alice publishes an OMEMO-style device list and bundle
  (eu.siacs.conversations.axolotl.devicelist / .bundles:ID) with publish-options
  access_model=open; bob, a contact, fetches both and gets the device list notification.

Connection, TLS and output conventions (one JSON line, exit status, --timeout, watchdog)
are those of ``slixmpp_scenario``, whose runner this script reuses.
"""

import asyncio
import base64
import hashlib
import sys
import time
import xml.etree.ElementTree as ET

import slixmpp

from summitd.test import slixmpp_scenario as base

NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event"
NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_AXOLOTL = "eu.siacs.conversations.axolotl"
DEVICELIST = NS_AXOLOTL + ".devicelist"
DEVICE_ID = "31415"
BUNDLE = f"{NS_AXOLOTL}.bundles:{DEVICE_ID}"
AVATAR = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
PEP_PLUGINS = ("xep_0030", "xep_0004", "xep_0060", "xep_0115", "xep_0163")


def _remaining(deadline):
    return max(deadline - time.monotonic(), 0.1)


def _client(name, jid, password, args, plugins=()):
    client = base.Client(name, jid, password, args)
    for plugin in PEP_PLUGINS + tuple(plugins):
        client.xmpp.register_plugin(plugin)
    return client


class Events:
    """PubSub event notifications one client received, as (from, node, kind, item id, item XML)."""

    def __init__(self, client):
        self.seen = []
        self.waiting = []   # (predicate, future)
        client.xmpp.add_event_handler("pubsub_publish", lambda m: self._saw(m, "item"))
        client.xmpp.add_event_handler("pubsub_retract", lambda m: self._saw(m, "retract"))

    def _saw(self, message, kind):
        items = message.xml.find(f"{{{NS_PUBSUB_EVENT}}}event/{{{NS_PUBSUB_EVENT}}}items")
        if items is None:
            return
        for child in items:
            if not child.tag.endswith("}" + kind):
                continue
            entry = (message["from"].full, items.get("node"), kind, child.get("id"),
                     ET.tostring(child, encoding="unicode"))
            self.seen.append(entry)
            for predicate, future in self.waiting:
                if not future.done() and predicate(entry):
                    future.set_result(entry)

    def expect(self, node, kind="item"):
        future = asyncio.get_running_loop().create_future()
        predicate = (lambda entry: entry[1] == node and entry[2] == kind)
        for entry in self.seen:
            if predicate(entry):
                future.set_result(entry)
                return future
        self.waiting.append((predicate, future))
        return future


def publish_options(xmpp, fields):
    form = xmpp.plugin["xep_0004"].make_form("submit")
    form.add_field(var="FORM_TYPE", ftype="hidden", value="http://jabber.org/protocol/pubsub#publish-options")
    for var, value in fields.items():
        form.add_field(var=var, value=value)
    return form


async def online(clients, deadline, interests=()):
    """Start the sessions, fetch rosters (for pushes), announce caps with ``interests``."""
    await base.start_sessions(clients, deadline)
    for client in clients:
        for namespace in interests:
            client.xmpp.plugin["xep_0163"].add_interest(namespace)
        await client.xmpp.get_roster(timeout=_remaining(deadline))
        await client.xmpp.plugin["xep_0115"].update_caps(broadcast=False)
        client.xmpp.send_presence()


async def befriend(a, b, deadline):
    """A presence subscription both ways: a asks, b's slixmpp approves and asks back,
    a's approves (slixmpp's auto_authorize and auto_subscribe)."""
    b_bare, a_bare = slixmpp.JID(b.info["jid"]).bare, slixmpp.JID(a.info["jid"]).bare
    a.xmpp.send_presence_subscription(pto=b_bare)
    while time.monotonic() < deadline:
        if a.xmpp.client_roster[b_bare]["subscription"] == "both" and \
                b.xmpp.client_roster[a_bare]["subscription"] == "both":
            return
        await asyncio.sleep(0.05)
    raise base.ScenarioFailed("the presence subscription did not become mutual")


async def scenario_avatar(args, result, reasons, deadline):
    alice = _client("alice", args.alice, args.alice_password, args, ("xep_0084",))
    bob = _client("bob", args.bob, args.bob_password, args, ("xep_0084",))
    clients = [alice, bob]
    events = Events(bob)
    try:
        await online(clients, deadline)
        for client in clients:
            base.check_session(client, args, reasons)
        await befriend(alice, bob, deadline)
        avatar_id = hashlib.sha1(AVATAR).hexdigest()
        metadata = events.expect("urn:xmpp:avatar:metadata")
        await alice.xmpp.plugin["xep_0084"].publish_avatar(AVATAR, timeout=_remaining(deadline))
        await alice.xmpp.plugin["xep_0084"].publish_avatar_metadata(
            {"id": avatar_id, "type": "image/png", "bytes": len(AVATAR)}, timeout=_remaining(deadline))
        sender, _, _, item_id, xml = await asyncio.wait_for(metadata, _remaining(deadline))
        result["metadata"] = {"from": sender, "id": item_id, "expected_id": avatar_id,
                              "has_info": "urn:xmpp:avatar:metadata" in xml and "image/png" in xml}
        reply = await bob.xmpp.plugin["xep_0084"].retrieve_avatar(slixmpp.JID(args.alice).bare, item_id,
                                                                  timeout=_remaining(deadline))
        data = reply.xml.find(".//{urn:xmpp:avatar:data}data")
        result["data_matches"] = data is not None and base64.b64decode(data.text) == AVATAR
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    if result["metadata"]["from"] != slixmpp.JID(args.alice).bare:
        reasons.append(f"the notification came from {result['metadata']['from']}")
    if result["metadata"]["id"] != avatar_id or not result["metadata"]["has_info"]:
        reasons.append(f"unexpected metadata {result['metadata']}")
    if not result["data_matches"]:
        reasons.append("the avatar data fetched is not what was published")


async def scenario_bookmarks(args, result, reasons, deadline):
    bare = slixmpp.JID(args.alice).bare
    one = _client("alice#1", bare + "/one", args.alice_password, args, ("xep_0402",))
    two = _client("alice#2", bare + "/two", args.alice_password, args, ("xep_0402",))
    clients = [one, two]
    heard = {c.name: Events(c) for c in clients}
    room = "council@conference.example.org"
    try:
        await online(clients, deadline, interests=(NS_BOOKMARKS,))
        for client in clients:
            base.check_session(client, args, reasons)
        # A round trip on each stream: the server has handled the presence (and caps) before.
        for client in clients:
            await client.xmpp.plugin["xep_0199"].ping(timeout=_remaining(deadline))
        added = heard["alice#2"].expect(NS_BOOKMARKS)
        item = one.xmpp.plugin["xep_0060"].stanza.Item()
        item["id"] = room
        item["conference"]["name"] = "The Council"
        item["conference"]["autojoin"] = True
        item["conference"]["nick"] = "Puck"
        options = publish_options(one.xmpp, {"pubsub#persist_items": "true", "pubsub#max_items": "max",
                                             "pubsub#send_last_published_item": "never",
                                             "pubsub#access_model": "whitelist"})
        await one.xmpp.plugin["xep_0060"].publish(None, NS_BOOKMARKS, id=room, payload=item["conference"].xml,
                                                  options=options, timeout=_remaining(deadline))
        sender, _, _, item_id, xml = await asyncio.wait_for(added, _remaining(deadline))
        result["notified"] = {"from": sender, "id": item_id, "nick": "<ns0:nick>Puck</ns0:nick>" in xml
                              or ">Puck<" in xml}
        reply = await two.xmpp.plugin["xep_0060"].get_items(bare, NS_BOOKMARKS, timeout=_remaining(deadline))
        result["fetched"] = [(i["id"], i["conference"]["name"], i["conference"]["nick"])
                             for i in reply["pubsub"]["items"]]
        retracted = heard["alice#1"].expect(NS_BOOKMARKS, "retract")
        await two.xmpp.plugin["xep_0060"].retract(bare, NS_BOOKMARKS, room, notify=True,
                                                  timeout=_remaining(deadline))
        result["retracted"] = (await asyncio.wait_for(retracted, _remaining(deadline)))[3]
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    if result["notified"] != {"from": bare, "id": room, "nick": True}:
        reasons.append(f"alice#2 was notified {result['notified']}")
    if result["fetched"] != [(room, "The Council", "Puck")]:
        reasons.append(f"alice#2 fetched {result['fetched']}")
    if result["retracted"] != room:
        reasons.append(f"alice#1 heard the retraction of {result['retracted']}")


async def scenario_omemo(args, result, reasons, deadline):
    alice = _client("alice", args.alice, args.alice_password, args)
    bob = _client("bob", args.bob, args.bob_password, args)
    clients = [alice, bob]
    events = Events(bob)
    alice_bare = slixmpp.JID(args.alice).bare
    try:
        await online(clients, deadline, interests=(DEVICELIST,))
        await befriend(alice, bob, deadline)
        pubsub = alice.xmpp.plugin["xep_0060"]
        open_access = {"pubsub#access_model": "open"}
        device_list = ET.fromstring(f"<list xmlns='{NS_AXOLOTL}'><device id='{DEVICE_ID}'/></list>")
        bundle = ET.fromstring(
            f"<bundle xmlns='{NS_AXOLOTL}'><signedPreKeyPublic signedPreKeyId='1'>BQ==</signedPreKeyPublic>"
            "<signedPreKeySignature>AA==</signedPreKeySignature><identityKey>BQ==</identityKey>"
            "<prekeys><preKeyPublic preKeyId='1'>BQ==</preKeyPublic></prekeys></bundle>")
        notified = events.expect(DEVICELIST)
        await pubsub.publish(None, BUNDLE, id="current", payload=bundle,
                             options=publish_options(alice.xmpp, open_access), timeout=_remaining(deadline))
        await pubsub.publish(None, DEVICELIST, id="current", payload=device_list,
                             options=publish_options(alice.xmpp, open_access), timeout=_remaining(deadline))
        result["notified"] = (await asyncio.wait_for(notified, _remaining(deadline)))[0]
        fetch = bob.xmpp.plugin["xep_0060"]
        reply = await fetch.get_items(alice_bare, DEVICELIST, timeout=_remaining(deadline))
        result["devices"] = [d.get("id") for d in reply.xml.iter(f"{{{NS_AXOLOTL}}}device")]
        reply = await fetch.get_items(alice_bare, BUNDLE, max_items=1, timeout=_remaining(deadline))
        result["bundle_keys"] = [k.get("preKeyId") for k in reply.xml.iter(f"{{{NS_AXOLOTL}}}preKeyPublic")]
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    if result["notified"] != alice_bare:
        reasons.append(f"the device list notification came from {result['notified']}")
    if result["devices"] != [DEVICE_ID] or result["bundle_keys"] != ["1"]:
        reasons.append(f"bob fetched devices {result['devices']} and pre-keys {result['bundle_keys']}")


if __name__ == "__main__":
    base.SCENARIOS.update(avatar=scenario_avatar, bookmarks=scenario_bookmarks, omemo=scenario_omemo)
    sys.exit(base.main())
