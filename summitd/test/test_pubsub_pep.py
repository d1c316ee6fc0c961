"""Personal Eventing (XEP-0163) on the accounts' bare JIDs: auto-create and defaults,
filtered notifications from verified caps, the last item at login and on presence
subscription, access by roster, XEP-0223 private nodes, discovery, limits, account
deletion and the IPersonalEventing API."""

from twisted.words.xish import domish
from zope.interface.verify import verifyObject

from summitd.core import events

from summitd.core.jid import parse_jid
from summitd.plugins.caps import NS_CAPS
from summitd.plugins.pubsub import IPersonalEventing
from summitd.plugins.roster_store import IRoster, RosterItem
from summitd.synchronous import result_of
from summitd.testing import add_user, parse_xml
from summitd.test.test_pubsub_support import (
    NS_PUBSUB, PubSubTestCase, caps_query, drain, events_of, form, owner, pubsub)

TUNE = "http://jabber.org/protocol/tune"
GEOLOC = "http://jabber.org/protocol/geoloc"
ALICE = "alice@localhost"


def tune(artist="Finzi"):
    return f"<tune xmlns='{TUNE}'><artist>{artist}</artist></tune>"


def publish_options(fields):
    return f"<publish-options>{form('submit', fields, NS_PUBSUB + '#publish-options')}</publish-options>"


class PEPCase(PubSubTestCase):
    def publish(self, client, node=TUNE, payload=None, item_id="current", options=None, to=None):
        body = f"<publish node='{node}'><item id='{item_id}'>{payload or tune()}</item></publish>"
        if options:
            body += publish_options(options)
        return self.request(client, pubsub(body), to)

    def items(self, client, node=TUNE, to=ALICE):
        return self.request(client, pubsub(f"<items node='{node}'/>"), to, "get")

    def configure(self, client, node, fields):
        return self.assertResult(self.request(client, owner(f"<configure node='{node}'>{form('submit', fields)}"
                                                            "</configure>")))

    def config_of(self, client, node):
        """{var: [values]} of a node's configuration form."""
        reply = self.request(client, owner(f"<configure node='{node}'/>"), None, "get")
        x = self.assertResult(reply).firstChildElement().firstChildElement()
        return {f["var"]: [str(v) for v in f.elements() if v.name == "value"] for f in x.elements()
                if f.name == "field"}

    def tunes(self, elements):
        return [event for _, event in events_of(elements, TUNE)]


class AutoCreateTests(PEPCase):
    def test_defaults(self):
        """Publishing to a missing node creates it with the PEP defaults (XEP-0163 §5):
        presence access, one item, last item on subscription and presence."""
        alice = self.login("alice")
        self.assertResult(self.publish(alice))
        config = self.config_of(alice, TUNE)
        self.assertEqual(config["pubsub#access_model"], ["presence"])
        self.assertEqual(config["pubsub#max_items"], ["1"])
        self.assertEqual(config["pubsub#send_last_published_item"], ["on_sub_and_presence"])

    def test_publish_options_configure_the_new_node(self):
        """publish-options on auto-create become the configuration (XEP-0060 §7.1.5 rule 3);
        on the next publication they are preconditions."""
        alice = self.login("alice")
        self.assertResult(self.publish(alice, options={"pubsub#access_model": "open"}))
        self.assertEqual(self.config_of(alice, TUNE)["pubsub#access_model"], ["open"])
        self.assertPubSubError(self.publish(alice, options={"pubsub#access_model": "whitelist"}),
                               "conflict", "precondition-not-met")

    def test_only_the_owner(self):
        """Nobody else publishes to or creates nodes at an account's service."""
        alice, bob = self.login("alice"), self.login("bob")
        self.assertResult(self.publish(alice, options={"pubsub#access_model": "open"}))
        self.assertStanzaError(self.publish(bob, to=ALICE), "forbidden")
        self.assertStanzaError(self.request(bob, pubsub("<create node='x'/>"), ALICE), "forbidden")

    def test_failed_publication_creates_nothing(self):
        """A publication refused for its payload leaves no node behind."""
        alice = self.login("alice")
        reply = self.request(alice, pubsub(f"<publish node='{TUNE}'><item id='a'/></publish>"))
        self.assertPubSubError(reply, "bad-request", "payload-required")
        self.assertStanzaError(self.items(alice, to=None), "item-not-found")

    def test_no_account(self):
        """Requests to an account that does not exist get service-unavailable."""
        bob = self.login("bob")
        self.assertStanzaError(self.items(bob, to="nobody@localhost"), "service-unavailable")


class NotificationTests(PEPCase):
    def setUp(self):
        super().setUp()
        self.befriend("alice", "bob")
        self.befriend("alice", "carol")

    def test_filtered_by_caps(self):
        """A contact whose caps say TUNE+notify gets the notification, from the owner's bare JID
        to its full JID; a contact without the interest does not (XEP-0060 §9.2)."""
        alice = self.online("alice")
        bob = self.online("bob", features=[TUNE, TUNE + "+notify"])
        carol = self.online("carol", features=[GEOLOC + "+notify"])
        drain(alice)
        self.assertResult(self.publish(alice))
        [event] = self.tunes(drain(bob))
        self.assertIn("<artist>Finzi</artist>", event.toXml())
        self.assertEqual(self.tunes(drain(carol)), [])
        message = event.parent
        self.assertEqual((message["from"], message["to"], message["type"]), (ALICE, bob.jid, "headline"))

    def test_own_resources(self):
        """The owner's resources that want the node hear of it; the others do not."""
        alice = self.online("alice")
        phone = self.online("alice", "phone", features=[TUNE + "+notify"])
        drain(alice)
        self.assertResult(self.publish(alice))
        self.assertEqual(len(self.tunes(drain(phone))), 1)
        self.assertEqual(self.tunes(drain(alice)), [])

    def test_retract_and_delete_reach_interested(self):
        """Retractions (notify) and deletion reach the interested contact too."""
        alice = self.online("alice")
        bob = self.online("bob", features=[TUNE + "+notify"])
        self.publish(alice)
        drain(bob)
        self.assertResult(self.request(alice, pubsub(f"<retract node='{TUNE}' notify='1'><item id='current'/>"
                                                     "</retract>")))
        self.assertResult(self.request(alice, owner(f"<delete node='{TUNE}'/>")))
        kinds = [e.firstChildElement().firstChildElement().name if e.firstChildElement().name == "items"
                 else e.firstChildElement().name for e in self.tunes(drain(bob))]
        self.assertEqual(kinds, ["retract", "delete"])

    def test_lost_subscription_stops_notifications(self):
        """The roster is asked again at each notification: a contact whose subscription
        went no longer hears (XEP-0163 §7.1)."""
        alice = self.online("alice")
        bob = self.online("bob", features=[TUNE + "+notify"])
        self.publish(alice)
        self.assertEqual(len(self.tunes(drain(bob))), 1)
        roster = self.server.providers[IRoster]
        result_of(roster.update(parse_jid(ALICE), parse_jid("bob@localhost"), lambda before: None))
        self.publish(alice, payload=tune("Elgar"))
        self.assertEqual(self.tunes(drain(bob)), [])

    def test_explicit_subscriber(self):
        """A contact may also subscribe explicitly; it is notified once."""
        alice = self.online("alice")
        bob = self.online("bob", features=[TUNE + "+notify"])
        self.publish(alice)
        self.assertResult(self.request(bob, pubsub(f"<subscribe node='{TUNE}' jid='{bob.jid}'/>"), ALICE))
        drain(bob)
        self.publish(alice, payload=tune("Britten"))
        self.assertEqual(len(self.tunes(drain(bob))), 1)

    def test_whitelist_node_not_sent(self):
        """A private (whitelist) node notifies only the owner, whatever contacts want."""
        alice = self.online("alice")
        bob = self.online("bob", features=[TUNE + "+notify"])
        self.assertResult(self.publish(alice, options={"pubsub#access_model": "whitelist",
                                                       "pubsub#persist_items": "true"}))
        self.assertEqual(self.tunes(drain(bob)), [])


class CapsTests(PEPCase):
    def setUp(self):
        super().setUp()
        self.befriend("alice", "bob")

    def test_verified_caps_are_cached(self):
        """Caps that verify are asked once: a second client with the same caps gets no query."""
        self.online("alice")
        self.online("bob", features=[TUNE + "+notify"])
        query, ver = caps_query([TUNE + "+notify"])
        second = self.login("bob", "laptop")
        second.send(f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='n' ver='{ver}'/></presence>")
        asked = [e for e in drain(second) if e.name == "iq" and e.getAttribute("type") == "get"]
        self.assertEqual(asked, [])

    def test_unverified_caps_not_cached(self):
        """Caps whose answer does not match 'ver' are not cached (XEP-0115 §8.3): the next
        client announcing them is asked again, and the liar's answer still counts for itself."""
        alice = self.online("alice")
        bob = self.login("bob")
        bob.send(f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='n' ver='bogus'/></presence>")
        query, _ = caps_query([TUNE + "+notify"])
        self.answer_caps(bob, query)
        other = self.login("bob", "laptop")
        other.send(f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='n' ver='bogus'/></presence>")
        asked = [e for e in drain(other) if e.name == "iq" and e.getAttribute("type") == "get"]
        self.assertEqual(len(asked), 1)
        drain(alice)
        self.publish(alice)
        self.assertEqual(len(self.tunes(drain(bob))), 1)

    def test_no_answer(self):
        """A client that never answers the disco#info query gets no notifications."""
        alice = self.online("alice")
        bob = self.login("bob")
        query, ver = caps_query([TUNE + "+notify"])
        bob.send(f"<presence><c xmlns='{NS_CAPS}' hash='sha-1' node='n' ver='{ver}'/></presence>")
        drain(bob)
        self.clock.advance(31)
        self.publish(alice)
        self.assertEqual(self.tunes(drain(bob)), [])


class LastItemTests(PEPCase):
    def test_contact_login(self):
        """A contact coming online with the interest gets the last item (XEP-0163 §4.3.4)."""
        self.befriend("alice", "bob")
        alice = self.online("alice")
        self.publish(alice, payload=tune("old"))
        self.publish(alice, payload=tune("newest"))
        self.online("bob", features=[TUNE + "+notify"])
        [event] = self.tunes(self.arrived["bob", "desk"])
        self.assertIn("newest", event.toXml())

    def test_own_login(self):
        """The owner's newly available resource gets the last item of its nodes."""
        alice = self.online("alice")
        self.publish(alice)
        self.online("alice", "phone", features=[TUNE + "+notify"])
        self.assertEqual(len(self.tunes(self.arrived["alice", "phone"])), 1)

    def test_send_last_never(self):
        """A node configured never to send its last item does not."""
        self.befriend("alice", "bob")
        alice = self.online("alice")
        self.publish(alice, options={"pubsub#send_last_published_item": "never"})
        self.online("bob", features=[TUNE + "+notify"])
        self.assertEqual(self.tunes(self.arrived["bob", "desk"]), [])

    def test_on_presence_subscription(self):
        """When a presence subscription both ways is set up (through presence stanzas), the
        contact's presence reaches the owner and the last item follows."""
        alice = self.online("alice")
        self.publish(alice)
        bob = self.online("bob", features=[TUNE + "+notify"])
        query, _ = caps_query([TUNE + "+notify"])
        for stanza, client in ((f"<presence to='{ALICE}' type='subscribe'/>", bob),
                               ("<presence to='bob@localhost' type='subscribed'/>", alice),
                               ("<presence to='bob@localhost' type='subscribe'/>", alice),
                               (f"<presence to='{ALICE}' type='subscribed'/>", bob)):
            client.send(stanza)
            drain(alice)
        received = self.answer_caps(bob, query)
        self.assertEqual(len(self.tunes(received)), 1)


class AccessTests(PEPCase):
    def setUp(self):
        super().setUp()
        self.befriend("alice", "bob", groups=("Friends",))
        self.befriend("alice", "carol", groups=("Work",))
        self.alice, self.bob, self.carol = self.login("alice"), self.login("bob"), self.login("carol")

    def test_presence_node(self):
        """Presence access: contacts read, a stranger gets presence-subscription-required."""
        self.publish(self.alice)
        self.assertResult(self.items(self.bob))
        add_user(self.server, "dave@localhost", "pw")
        dave = self.login("dave", password="pw")
        self.assertPubSubError(self.items(dave), "not-authorized", "presence-subscription-required")

    def test_roster_node(self):
        """A roster-only node: a stranger (even a contact outside the groups) cannot read it;
        a contact in an allowed group can."""
        self.publish(self.alice, options={"pubsub#access_model": "roster",
                                          "pubsub#roster_groups_allowed": "Friends"})
        self.assertResult(self.items(self.bob))
        self.assertPubSubError(self.items(self.carol), "not-authorized", "not-in-roster-group")

    def test_whitelist_node(self):
        """A whitelist node: refused (closed-node) until the owner whitelists the entity
        with the member affiliation; then it reads."""
        self.publish(self.alice, options={"pubsub#access_model": "whitelist"})
        self.assertPubSubError(self.items(self.bob), "not-allowed", "closed-node")
        self.assertResult(self.request(self.alice, owner(
            f"<affiliations node='{TUNE}'><affiliation jid='bob@localhost' affiliation='member'/></affiliations>")))
        self.assertResult(self.items(self.bob))
        self.assertPubSubError(self.items(self.carol), "not-allowed", "closed-node")

    def test_owner_affiliation_fixed(self):
        """The account stays the owner of its nodes."""
        self.publish(self.alice)
        self.assertStanzaError(self.request(self.alice, owner(
            f"<affiliations node='{TUNE}'><affiliation jid='{ALICE}' affiliation='none'/></affiliations>")),
            "not-acceptable")

    def test_private_storage_node(self):
        """XEP-0223: a node published with persist_items and whitelist is the owner's alone."""
        options = {"pubsub#persist_items": "true", "pubsub#access_model": "whitelist"}
        self.assertResult(self.publish(self.alice, "urn:example:private", "<data xmlns='urn:example:private'/>",
                                       options=options))
        self.assertResult(self.items(self.alice, "urn:example:private", to=None))
        self.assertPubSubError(self.items(self.bob, "urn:example:private"), "not-allowed", "closed-node")


class DiscoveryTests(PEPCase):
    def test_server_announces_pep(self):
        """The domain's disco#info has the pubsub/pep identity and publish-options (XEP-0223 §5)."""
        alice = self.login("alice")
        query = self.assertResult(self.request(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                                               "localhost", "get"))
        identities = [(i["category"], i["type"]) for i in query.elements() if i.name == "identity"]
        features = {f["var"] for f in query.elements() if f.name == "feature"}
        self.assertIn(("pubsub", "pep"), identities)
        self.assertIn(NS_PUBSUB + "#publish-options", features)
        self.assertIn(NS_PUBSUB + "#auto-create", features)

    def test_account_identity(self):
        """PEP offers the pubsub/pep identity of every account (XEP-0163 §6.1) through
        ACCOUNT_DISCO_IDENTITIES."""
        identities = self.server.hooks.collect(events.ACCOUNT_DISCO_IDENTITIES, parse_jid(ALICE))
        self.assertIn(("pubsub", "pep", None), identities)

    def test_account_features(self):
        """The account's disco#info lists pubsub-on-a-jid and the PEP features."""
        alice = self.login("alice")
        query = self.assertResult(self.request(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                                               ALICE, "get"))
        features = {f["var"] for f in query.elements() if f.name == "feature"}
        self.assertIn(NS_PUBSUB + "#pubsub-on-a-jid", features)
        self.assertIn(NS_PUBSUB + "#filtered-notifications", features)
        self.assertIn("urn:xmpp:bookmarks:1#compat-pep", features)

    def test_nodes_visible_to_contacts(self):
        """A contact's disco#items of the account lists the nodes it may read, not the
        private ones; disco#info of a node gives pubsub/leaf with meta-data."""
        self.befriend("alice", "bob")
        alice, bob = self.login("alice"), self.login("bob")
        self.publish(alice)
        self.publish(alice, "urn:example:private", "<d xmlns='urn:example:private'/>",
                     options={"pubsub#access_model": "whitelist"})
        query = self.assertResult(self.request(bob, "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                                               ALICE, "get"))
        self.assertEqual([i["node"] for i in query.elements()], [TUNE])
        query = self.assertResult(self.request(alice, "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                                               ALICE, "get"))
        self.assertEqual(sorted(i["node"] for i in query.elements()), sorted([TUNE, "urn:example:private"]))
        query = self.assertResult(self.request(
            bob, f"<query xmlns='http://jabber.org/protocol/disco#info' node='{TUNE}'/>", ALICE, "get"))
        self.assertEqual([(i["category"], i["type"]) for i in query.elements() if i.name == "identity"],
                         [("pubsub", "leaf")])
        reply = self.request(bob, "<query xmlns='http://jabber.org/protocol/disco#info' node='urn:example:private'/>",
                             ALICE, "get")
        self.assertStanzaError(reply, "item-not-found")


class LimitTests(PEPCase):
    options = {"pep": {"max_nodes": 2, "max_item_size": 100}}

    def test_node_count(self):
        """An account has at most max_nodes PEP nodes: not-allowed, max-nodes-exceeded."""
        alice = self.login("alice")
        self.assertResult(self.publish(alice, "n1"))
        self.assertResult(self.publish(alice, "n2"))
        self.assertPubSubError(self.publish(alice, "n3"), "not-allowed", "max-nodes-exceeded")

    def test_item_size(self):
        """An item over max_item_size: not-acceptable, payload-too-big."""
        alice = self.login("alice")
        self.assertPubSubError(self.publish(alice, payload=tune("x" * 200)), "not-acceptable", "payload-too-big")


class AccountDeletionTests(PEPCase):
    def test_nodes_and_subscriptions_go(self):
        """Deleting an account deletes its PEP nodes and items, and its subscriptions to
        other accounts' nodes."""
        alice, bob = self.login("alice"), self.login("bob")
        self.publish(bob, options={"pubsub#access_model": "open"})
        self.publish(alice, options={"pubsub#access_model": "open"})
        self.assertResult(self.request(alice, pubsub(f"<subscribe node='{TUNE}' jid='{alice.jid}'/>"),
                                       "bob@localhost"))
        result_of(self.server.account_manager.delete(ALICE))
        reply = self.request(bob, owner(f"<subscriptions node='{TUNE}'/>"), None, "get")
        self.assertEqual(list(self.assertResult(reply).firstChildElement().elements()), [])
        add_user(self.server, ALICE, "pw")
        again = self.login("alice", password="pw")
        self.assertStanzaError(self.items(again, to=None), "item-not-found")


class APITests(PEPCase):
    def test_publish_and_get_items(self):
        """IPersonalEventing publishes on the owner's behalf (creating the node with the given
        configuration) and reads items back as elements."""
        pep = self.server.providers[IPersonalEventing]
        self.assertTrue(verifyObject(IPersonalEventing, pep))
        payload = domish.Element((TUNE, "tune"))
        payload.addElement("artist", content="Holst")
        owner_jid = parse_jid(ALICE)
        result_of(pep.publish(owner_jid, TUNE, "current", payload, {"pubsub#access_model": "whitelist"}))
        [(item_id, element)] = result_of(pep.get_items(owner_jid, TUNE))
        self.assertEqual((item_id, element.uri, str(element.firstChildElement())), ("current", TUNE, "Holst"))
        self.assertEqual(result_of(pep.get_items(owner_jid, "urn:nothing")), [])
        alice = self.login("alice")
        self.assertEqual(self.config_of(alice, TUNE)["pubsub#access_model"], ["whitelist"])


class RemoteContactTests(PEPCase):
    """Contacts at other servers are learnt from the presence they send (XEP-0060 §9.2);
    what leaves for them is caught where s2s would take it (STANZA_TO_REMOTE)."""

    REMOTE = "bob@remote.example/phone"

    def setUp(self):
        super().setUp()
        roster = self.server.providers[IRoster]
        item = RosterItem(contact="bob@remote.example", subscription="both")
        result_of(roster.update(parse_jid(ALICE), parse_jid("bob@remote.example"), lambda before: item))
        self.outgoing = []
        remove = self.server.hooks.add(events.STANZA_TO_REMOTE, lambda stanza, to: self.outgoing.append(stanza) or True)
        self.addCleanup(remove)
        self.alice = self.online("alice")
        del self.outgoing[:]    # alice's presence and probe for the remote contact

    def arrive(self, xml):
        self.server.router.route(parse_xml(xml))

    def test_remote_contact_notified(self):
        """A remote contact's presence with caps makes the server ask its disco#info (from the
        account's bare JID); once answered, publications reach it."""
        query, ver = caps_query([TUNE + "+notify"])
        self.arrive(f"<presence xmlns='jabber:client' from='{self.REMOTE}' to='{ALICE}'>"
                    f"<c xmlns='{NS_CAPS}' hash='sha-1' node='n' ver='{ver}'/></presence>")
        [ask] = [s for s in self.outgoing if s.name == "iq"]
        self.assertEqual((ask["from"], ask["to"], ask.firstChildElement()["node"]), (ALICE, self.REMOTE, f"n#{ver}"))
        query["node"] = f"n#{ver}"
        self.arrive(f"<iq xmlns='jabber:client' type='result' id='{ask['id']}' from='{self.REMOTE}' to='{ALICE}'>"
                    f"{query.toXml()}</iq>")
        del self.outgoing[:]
        self.publish(self.alice)
        self.assertEqual([(s.name, s["to"]) for s in self.outgoing], [("message", self.REMOTE)])
        self.arrive(f"<presence xmlns='jabber:client' type='unavailable' from='{self.REMOTE}' to='{ALICE}'/>")
        del self.outgoing[:]
        self.publish(self.alice, payload=tune("Tallis"))
        self.assertEqual(self.outgoing, [])

    def test_room_occupants_ignored(self):
        """Occupant presence from a chat room (muc#user) is not a contact's: no roster lookup,
        no query."""
        roster = self.server.providers[IRoster]
        looked_up = []
        original = roster.item
        self.patch(roster, "item", lambda user, contact: looked_up.append(contact) or original(user, contact))
        _, ver = caps_query([TUNE + "+notify"])
        self.arrive(f"<presence xmlns='jabber:client' from='room@muc.remote.example/nick' to='{ALICE}/desk'>"
                    f"<c xmlns='{NS_CAPS}' hash='sha-1' node='n' ver='{ver}'/>"
                    "<x xmlns='http://jabber.org/protocol/muc#user'/></presence>")
        self.assertEqual((self.outgoing, looked_up), ([], []))
