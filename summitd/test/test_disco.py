"""Service discovery (XEP-0030, XEP-0128) and the server's entity capabilities (XEP-0115)."""

from twisted.internet import defer
from twisted.trial import unittest
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import NS_STREAMS
from summitd.core.jid import parse_jid
from summitd.plugins.caps import CAPS_NODE, NS_CAPS, verification_string
from summitd.plugins.disco import NS_DISCO_INFO, NS_DISCO_ITEMS, NS_X_DATA, form_type, normalise
from summitd.plugins.roster_store import IRoster, RosterItem
from summitd.plugins.version import NS_SOFTWARE_INFO
from summitd.test.service_helpers import PASSWORD, ServiceTestCase, registering
from summitd.testing import FakeClient, parse_xml, result_of

NS_TEST = "urn:example:disco-test"
INFO = f"<query xmlns='{NS_DISCO_INFO}'/>"
ITEMS = f"<query xmlns='{NS_DISCO_ITEMS}'/>"


def info_query(node):
    return f"<query xmlns='{NS_DISCO_INFO}' node='{node}'/>"


def items_query(node):
    return f"<query xmlns='{NS_DISCO_ITEMS}' node='{node}'/>"


def features_of(query):
    return [f["var"] for f in query.elements(NS_DISCO_INFO, "feature")]


def identities_of(query):
    return [(i.getAttribute("category"), i.getAttribute("type"), i.getAttribute("name"))
            for i in query.elements(NS_DISCO_INFO, "identity")]


def items_of(query):
    return [(i.getAttribute("jid"), i.getAttribute("node"), i.getAttribute("name"))
            for i in query.elements(NS_DISCO_ITEMS, "item")]


def result_form(form_type, **fields):
    form = domish.Element((NS_X_DATA, "x"))
    form["type"] = "result"
    for var, value in {"FORM_TYPE": form_type, **fields}.items():
        field = form.addElement("field")
        field["var"] = var
        if var == "FORM_TYPE":
            field["type"] = "hidden"
        field.addElement("value", content=value)
    return form


def _test_services(context):
    """What the 'services' test extension announces: an item, a form, two nodes."""
    context.add_feature(NS_TEST)
    context.add_feature(NS_TEST)         # the same feature twice is listed once
    context.add_feature(NS_TEST + "#account", "account")
    context.hook(events.SERVER_DISCO_ITEMS, lambda host: [(f"rooms.{host}", None, "Chatrooms")])
    context.hook(events.SERVER_DISCO_FORMS, lambda host: [result_form("urn:example:serverinfo", a="1")])
    context.hook(events.ACCOUNT_DISCO_ITEMS, lambda jid, requester: [(jid.userhost(), "bookmarks", None)])

    def node_info(to_jid, node, requester):
        return ([("automation", "command-list", None)], [NS_DISCO_INFO], []) if node == "commands" else None

    def node_items(to_jid, node, requester):
        if node == "commands":
            return [(to_jid.full(), "uptime", "Uptime")]
        return None

    context.hook(events.DISCO_INFO_NODE, node_info)
    context.hook(events.DISCO_ITEMS_NODE, node_items)


class DiscoTestCase(ServiceTestCase):
    extensions = ("disco", "ping", "version", "services")
    users = ("alice", "bob", "carol")

    def extra_factories(self):
        return (registering("services", _test_services),)

    def setUp(self):
        super().setUp()
        self.subscribers = {("alice@localhost", "bob@localhost")}   # (account, may see it)
        self.extension("disco").may_see = self.fake_roster
        self.alice = self.login("alice")
        self.bob = self.login("bob")
        self.carol = self.login("carol")

    def fake_roster(self, account, requester):
        """Stands in for the roster: is ``account`` subscribed "from" ``requester``?"""
        return (account.userhost(), requester.userhost()) in self.subscribers


class ServerInfoTests(DiscoTestCase):
    """disco#info and disco#items of the server itself."""

    def test_identity_and_features_of_every_extension(self):
        """The server is server/im and lists, once each and sorted, the features of every
        enabled extension (disco's own, ping, version, the test extension)."""
        query = self.assertResult(self.ask(self.alice, INFO, to="localhost"))
        self.assertEqual(identities_of(query), [("server", "im", "summitd")])
        features = features_of(query)
        for feature in (NS_DISCO_INFO, NS_DISCO_ITEMS, "urn:xmpp:ping", "jabber:iq:version", NS_TEST):
            self.assertIn(feature, features)
        self.assertEqual(features, sorted(set(features)))
        self.assertNotIn(NS_TEST + "#account", features)

    def test_extended_information_forms(self):
        """XEP-0128: every extension's forms are in disco#info, after identities and features."""
        query = self.assertResult(self.ask(self.alice, INFO, to="localhost"))
        forms = [child for child in query.elements() if child.name == "x"]
        self.assertEqual([form_type(f) for f in forms], ["urn:example:serverinfo", NS_SOFTWARE_INFO])
        self.assertEqual([c.name for c in query.elements()][-2:], ["x", "x"])

    def test_unloading_removes_features(self):
        """A feature goes when its extension is unloaded: the answer describes what runs."""
        result_of(self.server.extensions.unload("version"))
        features = features_of(self.assertResult(self.ask(self.alice, INFO, to="localhost")))
        self.assertNotIn("jabber:iq:version", features)
        self.assertIn("urn:xmpp:ping", features)

    def test_items(self):
        """disco#items lists the services extensions announce."""
        query = self.assertResult(self.ask(self.alice, ITEMS, to="localhost"))
        self.assertEqual(items_of(query), [("rooms.localhost", None, "Chatrooms")])

    def test_node_info_and_items(self):
        """A node an extension claims is answered, with the node mirrored (XEP-0030 §3.2)."""
        query = self.assertResult(self.ask(self.alice, info_query("commands"), to="localhost"))
        self.assertEqual(query["node"], "commands")
        self.assertEqual(identities_of(query), [("automation", "command-list", None)])
        query = self.assertResult(self.ask(self.alice, items_query("commands"), to="localhost"))
        self.assertEqual((query["node"], items_of(query)), ("commands", [("localhost", "uptime", "Uptime")]))

    def test_unknown_node(self):
        """A node nobody claims is item-not-found, for info and items."""
        self.assertStanzaError(self.ask(self.alice, info_query("nope"), to="localhost"), "item-not-found")
        self.assertStanzaError(self.ask(self.alice, items_query("nope"), to="localhost"), "item-not-found")

    def test_disco_set_is_refused(self):
        """disco is get-only: a set is service-unavailable."""
        self.assertStanzaError(self.ask(self.alice, INFO, to="localhost", type="set"), "service-unavailable")


class AccountInfoTests(DiscoTestCase):
    """Bare JIDs, answered by the server on the account's behalf (XEP-0030 §3.1, §8)."""

    def test_owner(self):
        """The owner (no 'to', or its bare JID) gets account/registered and account features."""
        for to in (None, "alice@localhost"):
            query = self.assertResult(self.ask(self.alice, INFO, to=to))
            self.assertEqual(identities_of(query), [("account", "registered", None)])
            self.assertIn(NS_TEST + "#account", features_of(query))
            self.assertNotIn("jabber:iq:version", features_of(query))

    def test_subscriber(self):
        """Someone the account shares its presence with gets the answer, from the bare JID."""
        reply = self.ask(self.bob, INFO, to="alice@localhost")
        self.assertEqual(reply["from"], "alice@localhost")
        self.assertEqual(identities_of(self.assertResult(reply)), [("account", "registered", None)])

    def test_stranger(self):
        """Someone without a subscription gets service-unavailable (subscriptions are one-way:
        alice sharing with bob lets bob see alice, not alice see bob)."""
        self.assertStanzaError(self.ask(self.carol, INFO, to="alice@localhost"), "service-unavailable")
        self.assertStanzaError(self.ask(self.alice, INFO, to="bob@localhost"), "service-unavailable")

    def test_missing_account_is_indistinguishable(self):
        """An account that does not exist gets the same error, even for a 'subscriber'."""
        self.subscribers.add(("nobody@localhost", "bob@localhost"))
        self.assertStanzaError(self.ask(self.bob, INFO, to="nobody@localhost"), "service-unavailable")
        self.assertStanzaError(self.ask(self.bob, info_query("commands"), to="nobody@localhost"),
                               "service-unavailable")

    def test_may_see_can_be_asynchronous(self):
        """The subscription check may answer later (the roster reads its database)."""
        pending = defer.Deferred()
        self.extension("disco").may_see = lambda account, requester: pending
        self.bob.send(f"<iq type='get' id='q' to='alice@localhost'>{INFO}</iq>")
        self.bob.expect_nothing()
        pending.callback(True)
        self.assertResult(self.bob.next())

    def test_items(self):
        """Owner and subscriber see the account's items; a stranger and a missing account get
        an empty result, never an error (XEP-0030 §8)."""
        for client in (self.alice, self.bob):
            query = self.assertResult(self.ask(client, ITEMS, to="alice@localhost"))
            self.assertEqual(items_of(query), [("alice@localhost", "bookmarks", None)])
        for to in ("alice@localhost", "nobody@localhost"):
            self.assertEqual(items_of(self.assertResult(self.ask(self.carol, ITEMS, to=to))), [])

    def test_nodes(self):
        """Account nodes go to the extensions, after the access check."""
        query = self.assertResult(self.ask(self.bob, items_query("commands"), to="alice@localhost"))
        self.assertEqual(items_of(query), [("alice@localhost", "uptime", "Uptime")])
        self.assertStanzaError(self.ask(self.bob, info_query("nope"), to="alice@localhost"), "item-not-found")
        query = self.assertResult(self.ask(self.carol, items_query("commands"), to="alice@localhost"))
        self.assertEqual((query["node"], items_of(query)), ("commands", []))


class WithoutRosterTests(ServiceTestCase):
    """With no roster extension to say who is subscribed, only the owner sees an account."""

    extensions = ("disco",)

    def test_only_the_owner(self):
        """alice sees her account; bob gets service-unavailable and empty items."""
        alice, bob = self.login("alice"), self.login("bob")
        self.assertResult(self.ask(alice, INFO))
        self.assertStanzaError(self.ask(bob, INFO, to="alice@localhost"), "service-unavailable")
        self.assertEqual(items_of(self.assertResult(self.ask(bob, ITEMS, to="alice@localhost"))), [])


class RosterBackedTests(ServiceTestCase):
    """With the roster extension, its subscriptions decide (through IRoster)."""

    extensions = ("disco", "roster")
    users = ("alice", "bob", "carol")

    def test_subscription_from_lets_the_contact_see(self):
        """bob, to whom alice's roster gives a "from" subscription, sees her account; a
        contact on her roster without one does not."""
        alice_jid, bob, carol = parse_jid("alice@localhost"), self.login("bob"), self.login("carol")
        roster = self.server.providers[IRoster]
        for contact, subscription in (("bob@localhost", "from"), ("carol@localhost", "to")):
            result_of(roster.update(alice_jid, parse_jid(contact),
                                    lambda before, c=contact, s=subscription: RosterItem(c, subscription=s)))
        self.assertResult(self.ask(bob, INFO, to="alice@localhost"))
        self.assertStanzaError(self.ask(carol, INFO, to="alice@localhost"), "service-unavailable")


class NormaliseTests(unittest.TestCase):
    """normalise(): the shape XEP-0030 and XEP-0115 require of an answer."""

    def test_one_identity_per_category_and_type(self):
        """Two identities with the same category/type but other names: the first stays."""
        info = normalise([("server", "im", "a"), ("pubsub", "pep", None), ("server", "im", "b")], [], [])
        self.assertEqual(info.identities, (("pubsub", "pep", None), ("server", "im", "a")))

    def test_one_form_per_form_type(self):
        """Forms sorted by FORM_TYPE, the first of a type kept, forms without one dropped."""
        untyped = domish.Element((NS_X_DATA, "x"))
        first, second = result_form("urn:b", x="1"), result_form("urn:b", x="2")
        info = normalise([], [], [first, untyped, result_form("urn:a"), second])
        self.assertEqual([form_type(f) for f in info.forms], ["urn:a", "urn:b"])
        self.assertIs(info.forms[1], first)


# -- entity capabilities -----------------------------------------------------------------

EXAMPLE_FEATURES = "".join(f"<feature var='http://jabber.org/protocol/{name}'/>"
                           for name in ("caps", "disco#info", "disco#items", "muc"))

SIMPLE_EXAMPLE = f"""<query xmlns='{NS_DISCO_INFO}'>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  {EXAMPLE_FEATURES}
</query>"""

COMPLEX_EXAMPLE = f"""<query xmlns='{NS_DISCO_INFO}' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>
  {EXAMPLE_FEATURES}
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>"""


class VerificationStringTests(unittest.TestCase):
    """XEP-0115 §5: the 'ver' algorithm, checked against the XEP's own examples."""

    def test_simple_example(self):
        """§5.2: one identity, four features."""
        self.assertEqual(verification_string(parse_xml(SIMPLE_EXAMPLE)), "QgayPKawpkPSDYmwT/WM94uAlu0=")

    def test_complex_example(self):
        """§5.3: identities in two languages, and an extended information form."""
        self.assertEqual(verification_string(parse_xml(COMPLEX_EXAMPLE)), "q07IKJEyjvHSyhy//CH0CxmKi8w=")

    def test_order_does_not_matter(self):
        """Reordering identities, features, fields and values gives the same string."""
        query = parse_xml(COMPLEX_EXAMPLE)
        children = list(query.elements())
        query.children = list(reversed(children))
        form = children[-1]
        form.children = list(reversed(list(form.elements())))
        self.assertEqual(verification_string(query), "q07IKJEyjvHSyhy//CH0CxmKi8w=")

    def test_other_hashes(self):
        """sha-256 (a name from the IANA registry) hashes the same string differently."""
        self.assertNotEqual(verification_string(parse_xml(SIMPLE_EXAMPLE), "sha-256"),
                            verification_string(parse_xml(SIMPLE_EXAMPLE)))


class CapsTests(ServiceTestCase):
    """The server's own caps in <stream:features/> (XEP-0115 §6.3)."""

    extensions = ("caps", "ping", "version")

    def caps_of(self, features):
        found = [c for c in features.elements() if (c.uri, c.name) == (NS_CAPS, "c")]
        self.assertEqual(len(found), 1, features.toXml())
        return found[0]

    def test_in_every_phase(self):
        """Before TLS/SASL and after authentication, the same <c/> with hash and node."""
        client = FakeClient(self.server)
        before = self.caps_of(client.open_stream())
        self.assertTrue(client.authenticate("alice", PASSWORD))
        after = self.caps_of(client.open_stream())
        self.assertEqual((before["hash"], before["node"]), ("sha-1", CAPS_NODE))
        self.assertEqual(before.attributes, after.attributes)

    def test_ver_matches_disco_info(self):
        """'ver' is the hash of what disco#info tells (including the XEP-0232 form), so a
        client can check it; the caps node answers with the same information."""
        ver = self.caps_of(FakeClient(self.server).open_stream())["ver"]
        alice = self.login()
        query = self.assertResult(self.ask(alice, INFO, to="localhost"))
        self.assertIn(NS_CAPS, features_of(query))
        self.assertEqual(verification_string(query), ver)
        node = f"{CAPS_NODE}#{ver}"
        by_node = self.assertResult(self.ask(alice, info_query(node), to="localhost", iq_id="n"), "n")
        self.assertEqual(by_node["node"], node)
        self.assertEqual(verification_string(by_node), ver)

    def test_old_ver_node(self):
        """A caps node with a 'ver' the server no longer has is item-not-found."""
        alice = self.login()
        self.assertStanzaError(self.ask(alice, info_query(f"{CAPS_NODE}#stale="), to="localhost"),
                               "item-not-found")

    def test_cached_until_extensions_change(self):
        """The hash is computed once per make-up of the server: streams reuse it, loading
        or unloading an extension changes it."""
        disco = self.server.extensions.loaded["disco"][0]
        computed = []
        real = disco.server_info
        disco.server_info = lambda host: computed.append(host) or real(host)
        first = self.caps_of(FakeClient(self.server).open_stream())["ver"]
        self.assertEqual(self.caps_of(FakeClient(self.server).open_stream())["ver"], first)
        self.assertEqual(computed, ["localhost"])
        result_of(self.server.extensions.unload("version"))
        second = self.caps_of(FakeClient(self.server).open_stream())["ver"]
        self.assertNotEqual(second, first)
        self.assertEqual(len(computed), 2)


class StreamFeaturesTests(ServiceTestCase):
    """Without caps the stream features carry no <c/>: disco alone does not add one."""

    extensions = ("disco",)

    def test_no_caps_without_the_extension(self):
        """disco without caps: no caps stream feature."""
        features = FakeClient(self.server).open_stream()
        self.assertEqual(features.name, "features")
        self.assertEqual(features.uri, NS_STREAMS)
        self.assertFalse([c for c in features.elements() if c.uri == NS_CAPS])
