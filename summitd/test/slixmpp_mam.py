"""A slixmpp Message Archive Management scenario (XEP-0313, XEP-0359, XEP-0431) against a
running summitd; run by test_integration_mam.

Alice (with slixmpp's xep_0313 plugin) and bob log in; bob sends ``SCENARIO_MAM_COUNT``
(environment, default 120) chat messages to alice's bare JID, one of them with a rare word. Every live message must
carry a ``<stanza-id by='alice'/>``. Alice logs out and in again (a new session)
and fetches the newest 100 messages of her archive in pages of 25 going back in
time (RSM ``<before/>``), checks they are the last 100 bob sent, in order, with the
live stanza-ids as their archive ids; then finds the rare message with the
``{urn:xmpp:fulltext:0}fulltext`` field, asks the archive metadata, and bob checks
his own archive counts what he sent. Pages are driven here with the plugin's stanza
classes rather than its ``iterate(reverse=True)``: that iterator stops after the
first page whenever a server reports RSM count and index (it tests ``first + n ==
count``, which the newest page always satisfies).

The connection, TLS and output conventions (one JSON line, exit status, --timeout,
watchdog) are those of ``slixmpp_scenario``, whose runner this script reuses.
"""

import asyncio
import os
import sys
import time
import uuid

import slixmpp
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import StanzaPath

from summitd.test import slixmpp_scenario as base

NS_SID = "{urn:xmpp:sid:0}stanza-id"
FULLTEXT = "{urn:xmpp:fulltext:0}fulltext"
PAGE = 25
FETCH = 100
COUNT = int(os.environ.get("SCENARIO_MAM_COUNT", "120"))


def _remaining(deadline):
    return max(deadline - time.monotonic(), 0.1)


def archive_client(name, jid, password, args):
    client = base.Client(name, jid, password, args)
    client.xmpp.register_plugin("xep_0313")
    return client


class Results:
    """Collects the archive results of one query id from a client's message stream."""

    def __init__(self, client):
        self.queries = {}
        # slixmpp's "message" event is only for messages with a body; results have none.
        client.xmpp.register_handler(Callback("mam results", StanzaPath("message/mam_result"),
                                              self._message))

    def _message(self, message):
        result = message["mam_result"]
        found = self.queries.get(result["queryid"])
        if found is not None:
            inner = result["forwarded"]["stanza"]
            found.append({"id": result["id"], "body": inner["body"], "from": inner["from"].full,
                          "archive": message["from"].full})


async def query(client, results, deadline, fields=None, **rsm):
    """One MAM query: (results, fin) with the plugin's stanzas; rsm before=True is <before/>."""
    iq = client.xmpp.make_iq_set()
    queryid = iq["id"]
    iq["mam"]["queryid"] = queryid
    for var, value in (fields or {}).items():
        iq["mam"].set_custom_field(var, value)
    for key, value in rsm.items():
        iq["mam"]["rsm"][key] = value if value is True else str(value)
    found = results.queries[queryid] = []
    reply = await iq.send(timeout=_remaining(deadline))
    del results.queries[queryid]
    fin = reply["mam_fin"]
    return found, {"complete": fin["complete"], "first": fin["rsm"]["first"],
                   "last": fin["rsm"]["last"], "count": fin["rsm"]["count"]}


async def fetch_newest(client, results, with_jid, deadline):
    """The newest FETCH messages with ``with_jid``, oldest first, PAGE at a time backwards."""
    pages, before = [], True
    while sum(len(p) for p in pages) < FETCH:
        page, fin = await query(client, results, deadline, {"with": with_jid}, max=PAGE, before=before)
        if not page:
            break
        pages.insert(0, page)
        before = fin["first"]
    return [item for page in pages for item in page][-FETCH:], len(pages)


async def scenario_mam(args, result, reasons, deadline):
    alice_bare, bob_bare = slixmpp.JID(args.alice).bare, slixmpp.JID(args.bob).bare
    alice = archive_client("alice", args.alice, args.alice_password, args)
    bob = archive_client("bob", args.bob, args.bob_password, args)
    token = uuid.uuid4().hex[:8]
    rare = f"zebrafinch{token}"
    bodies = [f"note {i} from bob ({token})" for i in range(COUNT)]
    rare_index = COUNT - 37
    bodies[rare_index] = f"note {rare_index} mentions the {rare.upper()} at last"
    live = {}
    all_received = asyncio.get_running_loop().create_future()

    def on_live(message):
        if message["body"] in bodies and message["body"] not in live:
            stamp = message.xml.find(NS_SID)
            live[message["body"]] = None if stamp is None else (stamp.get("by"), stamp.get("id"))
            if len(live) == len(bodies) and not all_received.done():
                all_received.set_result(None)

    alice.xmpp.add_event_handler("message", on_live)
    clients = [alice, bob]
    again = None
    try:
        await base.start_sessions(clients, deadline)
        for client in clients:
            client.xmpp.send_presence()
        for client in clients:
            await client.xmpp.plugin["xep_0199"].ping(timeout=_remaining(deadline))
        for body in bodies:
            bob.xmpp.send_message(mto=alice_bare, mbody=body, mtype="chat")
        await asyncio.wait_for(all_received, _remaining(deadline))
        unstamped = [b for b, s in live.items() if s is None or s[0] != alice_bare]
        if unstamped:
            reasons.append(f"{len(unstamped)} live messages without stanza-id by {alice_bare}")
        await alice.close()

        again = archive_client("alice-again", args.alice, args.alice_password, args)
        results = Results(again)
        await base.start_sessions([again], deadline)
        newest, pages = await fetch_newest(again, results, bob_bare, deadline)
        result["pages"] = pages
        result["fetched"] = len(newest)
        if [item["body"] for item in newest] != bodies[-FETCH:]:
            reasons.append("the newest archived messages are not the last ones bob sent, in order")
        if [item["id"] for item in newest] != [live[b][1] for b in bodies[-FETCH:]]:
            reasons.append("archive ids differ from the live stanza-ids")
        if {item["archive"] for item in newest} != {alice_bare}:
            reasons.append("results did not come from alice's bare JID")

        found, fin = await query(again, results, deadline, {FULLTEXT: rare.lower()})
        result["fulltext"] = [item["body"] for item in found]
        if result["fulltext"] != [bodies[rare_index]] or fin["complete"] not in (True, "true"):
            reasons.append(f"full-text search found {result['fulltext']} (fin {fin})")
        metadata = await again.xmpp.plugin["xep_0313"].get_archive_metadata(timeout=_remaining(deadline))
        result["metadata_end"] = metadata["mam_metadata"]["end"]["id"]
        if result["metadata_end"] != live[bodies[-1]][1]:
            reasons.append("metadata does not end with the last message")

        results_bob = Results(bob)
        _, fin = await query(bob, results_bob, deadline, {"with": alice_bare}, max=0)
        result["bob_sent_count"] = fin["count"]
        if str(fin["count"]) != str(COUNT):
            reasons.append(f"bob's archive counts {fin['count']} messages with alice")
    finally:
        result["sessions"] = {c.name: c.info for c in clients + ([again] if again else [])}
        await asyncio.gather(*(c.close() for c in clients + ([again] if again else [])),
                             return_exceptions=True)


if __name__ == "__main__":
    base.SCENARIOS["mam"] = scenario_mam
    sys.exit(base.main())
