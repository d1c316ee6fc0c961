"""PEP Native Bookmarks (XEP-0402) with the XEP-0048-over-PEP compatibility, and the
Displayed Markers node (XEP-0490) with server assist."""

from summitd.core.jid import parse_jid
from summitd.plugins.pubsub import IPersonalEventing
from summitd.plugins.pubsub.bookmarks import NS_BOOKMARKS, NS_LEGACY
from summitd.plugins.pubsub.mds import NS_MDS, displayed_markers
from summitd.synchronous import result_of
from summitd.test.test_pubsub_pep import PEPCase, publish_options
from summitd.test.test_pubsub_support import NS_PUBSUB, drain, events_of, pubsub

PRIVATE_OPTIONS = {"pubsub#persist_items": "true", "pubsub#max_items": "max",
                   "pubsub#send_last_published_item": "never", "pubsub#access_model": "whitelist"}
ROOM = "council@conference.example.org"


def conference(name="Council", nick="Puck", autojoin="true"):
    return (f"<conference xmlns='{NS_BOOKMARKS}' name='{name}' autojoin='{autojoin}'><nick>{nick}</nick>"
            "<extensions><color xmlns='urn:example:color'>red</color></extensions></conference>")


class BookmarksTests(PEPCase):
    def add(self, client, room=ROOM, payload=None, options=PRIVATE_OPTIONS):
        return self.publish(client, NS_BOOKMARKS, payload or conference(), room, options)

    def legacy(self, client):
        """The conferences of the XEP-0048 node's item, as (jid, name, autojoin, nick)."""
        reply = self.items(client, NS_LEGACY, to=None)
        storage = self.assertResult(reply).firstChildElement().firstChildElement().firstChildElement()
        self.assertEqual((storage.uri, storage.name), (NS_LEGACY, "storage"))
        return [(c["jid"], c.getAttribute("name"), c.getAttribute("autojoin"), str(c.firstChildElement()))
                for c in storage.elements(NS_LEGACY, "conference")]

    def native(self, client):
        reply = self.items(client, NS_BOOKMARKS, to=None)
        return {i["id"]: i.firstChildElement() for i in self.assertResult(reply).firstChildElement().elements()}

    def test_round_trip_with_publish_options(self):
        """XEP-0402 §3: adding with the recommended publish-options succeeds, the item comes
        back, and the node is private."""
        alice = self.login("alice")
        self.assertResult(self.add(alice))
        self.assertEqual(list(self.native(alice)), [ROOM])
        self.assertEqual(self.config_of(alice, NS_BOOKMARKS)["pubsub#access_model"], ["whitelist"])

    def test_private_by_default(self):
        """A client that forgets publish-options still gets a private node (whitelist, 'max')."""
        alice = self.login("alice")
        self.assertResult(self.add(alice, options=None))
        config = self.config_of(alice, NS_BOOKMARKS)
        self.assertEqual((config["pubsub#access_model"], config["pubsub#max_items"]), (["whitelist"], ["max"]))

    def test_other_resource_notified(self):
        """Another resource with the +notify interest hears of the new bookmark; a retraction
        with notify reaches it too (XEP-0402 §4)."""
        desk = self.online("alice")
        phone = self.online("alice", "phone", features=[NS_BOOKMARKS + "+notify"])
        self.assertResult(self.add(desk))
        [(message, event)] = events_of(drain(phone), NS_BOOKMARKS)
        self.assertEqual(message["from"], "alice@localhost")
        self.assertIn("<nick>Puck</nick>", event.toXml())
        self.assertResult(self.request(desk, pubsub(f"<retract node='{NS_BOOKMARKS}' notify='1'>"
                                                    f"<item id='{ROOM}'/></retract>")))
        [(_, event)] = events_of(drain(phone), NS_BOOKMARKS)
        self.assertEqual(event.firstChildElement().firstChildElement().name, "retract")

    def test_native_to_legacy(self):
        """A native change rewrites the XEP-0048 node's item as a <storage/> list (§5.3)."""
        alice = self.login("alice")
        self.add(alice)
        self.add(alice, "other@conference.example.org", conference("Other", "Bottom", "false"))
        self.assertEqual(self.legacy(alice), [(ROOM, "Council", "true", "Puck"),
                                              ("other@conference.example.org", "Other", None, "Bottom")])
        self.request(alice, pubsub(f"<retract node='{NS_BOOKMARKS}'><item id='{ROOM}'/></retract>"))
        self.assertEqual([c[0] for c in self.legacy(alice)], ["other@conference.example.org"])
        self.assertEqual(self.config_of(alice, NS_LEGACY)["pubsub#access_model"], ["whitelist"])

    def test_legacy_to_native(self):
        """A legacy list updates the native items: new and changed ones published (keeping
        their extensions), missing ones retracted, unchanged ones left alone."""
        desk = self.online("alice")
        phone = self.online("alice", "phone", features=[NS_BOOKMARKS + "+notify"])
        self.add(desk)
        self.add(desk, "gone@conference.example.org", conference("Gone"))
        self.add(desk, "same@conference.example.org", conference("Same"))
        drain(phone)
        storage = (f"<storage xmlns='{NS_LEGACY}'>"
                   f"<conference jid='{ROOM}' name='Council' autojoin='true'><nick>Oberon</nick></conference>"
                   "<conference jid='same@conference.example.org' name='Same' autojoin='true'><nick>Puck</nick>"
                   "</conference>"
                   "<conference jid='new@conference.example.org' name='New'/></storage>")
        legacy_options = {"pubsub#persist_items": "true", "pubsub#access_model": "whitelist"}   # XEP-0048 §3
        self.assertResult(self.publish(desk, NS_LEGACY, storage, "current", options=legacy_options))
        native = self.native(desk)
        self.assertEqual(sorted(native), [ROOM, "new@conference.example.org", "same@conference.example.org"])
        self.assertIn("<nick>Oberon</nick>", native[ROOM].toXml())
        self.assertIn("urn:example:color", native[ROOM].toXml())
        changed = []
        for _, event in events_of(drain(phone), NS_BOOKMARKS):
            for child in event.firstChildElement().elements():
                changed.append((child.name, child["id"]))
        self.assertEqual(sorted(changed), [("item", ROOM), ("item", "new@conference.example.org"),
                                           ("retract", "gone@conference.example.org")])


class CompatOffTests(PEPCase):
    options = {"pep": {"bookmarks_compat": False, "mds_server_assist": False}}

    def test_no_legacy_copy(self):
        """With bookmarks_compat off, no XEP-0048 node is written and no feature announced."""
        alice = self.login("alice")
        self.assertResult(self.publish(alice, NS_BOOKMARKS, conference(), ROOM))
        self.assertStanzaError(self.items(alice, NS_LEGACY, to=None), "item-not-found")
        query = self.assertResult(self.request(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                                               "alice@localhost", "get"))
        features = {f["var"] for f in query.elements() if f.name == "feature"}
        self.assertNotIn(NS_BOOKMARKS + "#compat-pep", features)
        self.assertNotIn("urn:xmpp:mds:server-assist:0", features)


def displayed(stanza_id="sid-1"):
    return f"<displayed xmlns='{NS_MDS}'><stanza-id xmlns='urn:xmpp:sid:0' id='{stanza_id}' by='alice@localhost'/>" \
           "</displayed>"


class DisplayedMarkersTests(PEPCase):
    def test_private_node_defaults(self):
        """XEP-0490 §7: the displayed node, implicitly created, is private and keeps every chat."""
        alice = self.login("alice")
        self.assertResult(self.publish(alice, NS_MDS, displayed(), "bob@localhost"))
        config = self.config_of(alice, NS_MDS)
        self.assertEqual((config["pubsub#access_model"], config["pubsub#max_items"],
                          config["pubsub#send_last_published_item"]), (["whitelist"], ["max"], ["never"]))

    def test_server_assist(self):
        """XEP-0490 §4.5: a <displayed/> in a message is stripped before the message goes on and
        published under the message's 'to'; the feature is announced."""
        self.befriend("alice", "bob")
        alice, bob = self.online("alice"), self.online("bob")
        alice.send(f"<message to='bob@localhost' type='chat' id='m1'><body>hi</body>{displayed()}</message>")
        [message] = [e for e in drain(bob) if e.name == "message"]
        self.assertEqual([c.name for c in message.elements()], ["body"])
        pep = self.server.providers[IPersonalEventing]
        markers = result_of(displayed_markers(pep, parse_jid("alice@localhost")))
        self.assertEqual(markers, {"bob@localhost": ("sid-1", "alice@localhost")})
        query = self.assertResult(self.request(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                                               "alice@localhost", "get"))
        self.assertIn("urn:xmpp:mds:server-assist:0", {f["var"] for f in query.elements() if f.name == "feature"})

    def test_empty_message_refused(self):
        """A message holding only <displayed/> is refused with bad-request, not sent on."""
        alice, bob = self.online("alice"), self.online("bob")
        alice.send(f"<message to='bob@localhost' id='m2'>{displayed()}</message>")
        reply = next(e for e in drain(alice) if e.name == "message")
        self.assertEqual((reply["type"], reply["id"]), ("error", "m2"))
        self.assertEqual([e for e in drain(bob) if e.name == "message"], [])

    def test_no_markers(self):
        """displayed_markers of an account without the node is empty."""
        pep = self.server.providers[IPersonalEventing]
        self.assertEqual(result_of(displayed_markers(pep, parse_jid("carol@localhost"))), {})

    def test_publish_options_contract(self):
        """The publication XEP-0490 §4.2 shows (publish-options included) succeeds."""
        alice = self.login("alice")
        body = (f"<publish node='{NS_MDS}'><item id='bob@localhost'>{displayed()}</item></publish>"
                + publish_options({"pubsub#persist_items": "true", "pubsub#max_items": "max",
                                   "pubsub#send_last_published_item": "never",
                                   "pubsub#access_model": "whitelist"}))
        self.assertResult(self.request(alice, pubsub(body)))
        self.assertNotIn(NS_PUBSUB + "#event", "".join(e.toXml() for e in self.before_reply))
