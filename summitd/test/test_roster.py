"""Tests for the roster extension (RFC 6121 §2, §2.6) and its store.

``IMTestCase`` (a server with the roster and presence extensions on a fake clock, clients,
a capture of what is routed to remote domains, and direct access to roster rows) is shared
by the presence tests.
"""

from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.jid import parse_jid
from summitd.plugins import roster_store
from summitd.plugins.presence_config import parse_presence_config, parse_roster_config
from summitd.plugins.presence_states import FIELDS, state_of
from summitd.plugins.roster_store import IRoster, RosterItem
from summitd.test.test_router import error_condition
from summitd.testing import FakeClient, ProtocolMismatch, add_user, make_server, matches, parse_xml, result_of

NS_ROSTER = "jabber:iq:roster"
REMOTE = "contact@remote.example"


def drain(client):
    """Every element the server has sent ``client`` so far."""
    received = []
    while True:
        try:
            received.append(client.next())
        except ProtocolMismatch:
            return received


def error_text(stanza):
    for child in stanza.elements():
        if child.name == "error":
            for text in child.elements():
                if text.name == "text":
                    return str(text)
    return None


def item_is(item, attributes, groups=""):
    """Whether a roster <item/> has these attributes (and these <group/>s, in order)."""
    return matches(item, f"<item xmlns='{NS_ROSTER}' {attributes}>{groups}</item>")


def pushes(elements):
    """The roster push items among ``elements``, as (ver, item element)."""
    found = []
    for element in elements:
        if matches(element, f"<iq type='set'><query xmlns='{NS_ROSTER}'/></iq>"):
            query = element.firstChildElement()
            found.append((query.getAttribute("ver"), query.firstChildElement()))
    return found


def presences(elements, type=None):
    """Presence stanzas among ``elements`` with the given type (None: available)."""
    return [e for e in elements if e.name == "presence" and e.getAttribute("type") == type]


def add_tests(cls, rows, make):
    """Attach one test method per row: ``make(row)`` returns (name, docstring, function)."""
    for row in rows:
        name, doc, test = make(row)
        test.__name__ = name
        test.__doc__ = doc
        setattr(cls, name, test)


class IMTestCase(unittest.TestCase):
    """A server with the roster and presence extensions; stanzas for remote domains are kept
    in ``self.remote`` (there is no s2s yet)."""

    extensions = ("roster", "presence")
    options = {}

    def setUp(self):
        self.server = make_server(extensions=list(self.extensions), extension_options=self.options)
        self.remote = []
        self.server.hooks.add(events.STANZA_TO_REMOTE, self._to_remote)
        self.roster = self.server.providers[IRoster]
        self._users = set()

    def _to_remote(self, stanza, to_jid):
        self.remote.append(stanza)
        return True

    def client(self, name, resource="res", roster=True, available=True, presence="<presence/>"):
        """``name``@localhost logged in (created on first use), having asked for the roster
        and sent initial presence as told; what it was sent so far is drained."""
        if name not in self._users:
            add_user(self.server, f"{name}@localhost", "secret")
            self._users.add(name)
        client = FakeClient(self.server)
        client.login(name, "secret", resource)
        if roster:
            client.send(f"<iq type='get' id='roster'><query xmlns='{NS_ROSTER}'/></iq>")
        if available:
            client.send(presence)
        self.settle()
        drain(client)
        return client

    def settle(self):
        """Run what was scheduled for 'right after' (interim pushes, deletion notices)."""
        self.server.clock.advance(0)

    def inject(self, xml):
        """Route a stanza as if a peer server had sent it."""
        self.server.router.route(parse_xml(xml))

    def set_state(self, user, contact, state, **fields):
        """Make ``user``'s row for ``contact`` be in the Appendix A ``state``."""
        subscription, ask, pending_in = FIELDS[state]
        item = RosterItem(contact, subscription=subscription, ask=ask, pending_in=pending_in, **fields)
        result_of(self.roster.update(parse_jid(user), parse_jid(contact), lambda before: item))

    def item(self, user, contact):
        return result_of(self.roster.item(parse_jid(user), parse_jid(contact)))

    def state(self, user, contact):
        return state_of(self.item(user, contact))

    def rows(self, table, user):
        host, username = user.split("@")[1], user.split("@")[0]
        return result_of(self.server.database.runQuery(
            f"SELECT COUNT(*) FROM {table} WHERE host = ? AND username = ?", (host, username)))[0][0]

    def remote_presence(self, type):
        return [s for s in self.remote if s.name == "presence" and s.getAttribute("type") == type]

    def roster_set(self, client, item_xml, id="set1"):
        """Send a roster set; returns everything the client got back."""
        client.send(f"<iq type='set' id='{id}'><query xmlns='{NS_ROSTER}'>{item_xml}</query></iq>")
        return drain(client)

    def assertResult(self, elements, id):
        results = [e for e in elements if matches(e, f"<iq type='result' id='{id}'/>")]
        self.assertEqual(len(results), 1, [e.toXml() for e in elements])
        return results[0]

    def assertStanzaError(self, elements, condition, id=None):
        errors = [e for e in elements if e.getAttribute("type") == "error"
                  and (id is None or e.getAttribute("id") == id)]
        self.assertEqual([error_condition(e) for e in errors], [condition], [e.toXml() for e in elements])
        return errors[0]


class RosterGetTests(IMTestCase):
    def test_empty_roster(self):
        """A new account's roster is an empty <query/> with a version (§2.1.4, §2.6.3)."""
        alice = self.client("alice", roster=False, available=False)
        alice.send(f"<iq type='get' id='g1'><query xmlns='{NS_ROSTER}'/></iq>")
        result = alice.expect(f"<iq type='result' id='g1'><query xmlns='{NS_ROSTER}' ver='*'/></iq>")
        self.assertEqual(list(result.firstChildElement().elements()), [])

    def test_items_in_result(self):
        """The roster result lists each item with handle, groups and subscription (§2.1.4)."""
        alice = self.client("alice")
        self.roster_set(alice, "<item jid='bob@localhost' name='Bob'><group>Friends</group><group>Work</group></item>")
        self.roster_set(alice, f"<item jid='{REMOTE}'/>", id="set2")
        alice.send(f"<iq type='get' id='g1'><query xmlns='{NS_ROSTER}'/></iq>")
        alice.expect(f"<iq type='result' id='g1'><query xmlns='{NS_ROSTER}'>"
                     "<item jid='bob@localhost' name='Bob' subscription='none'>"
                     "<group>Friends</group><group>Work</group></item>"
                     f"<item jid='{REMOTE}' subscription='none'/></query></iq>")

    def test_stored_requests_are_not_items(self):
        """A pending request from someone not on the roster is no roster item (§3.1.3)."""
        alice = self.client("alice")
        self.inject(f"<presence from='{REMOTE}' to='alice@localhost' type='subscribe'/>")
        self.assertEqual(self.state("alice@localhost", REMOTE), "None + Pending In")
        alice.send(f"<iq type='get' id='g1'><query xmlns='{NS_ROSTER}'/></iq>")
        result = [e for e in drain(alice) if e.name == "iq"][0]
        self.assertEqual(list(result.firstChildElement().elements()), [])

    def test_other_accounts_roster_forbidden(self):
        """Only the account itself may read or change its roster (§2.1.5, §2.3.3)."""
        self.client("bob")
        alice = self.client("alice")
        alice.send(f"<iq type='get' id='g1' to='bob@localhost'><query xmlns='{NS_ROSTER}'/></iq>")
        self.assertStanzaError(drain(alice), "forbidden", "g1")
        alice.send(f"<iq type='set' id='s2' to='bob@localhost'><query xmlns='{NS_ROSTER}'>"
                   "<item jid='carol@localhost'/></query></iq>")
        self.assertStanzaError(drain(alice), "forbidden", "s2")
        self.assertIsNone(self.item("bob@localhost", "carol@localhost"))


class RosterSetTests(IMTestCase):
    def test_add_pushes_to_interested_resources_only(self):
        """A new item is pushed to every resource that asked for the roster, with a version,
        and the setter gets a result (§2.2, §2.3.2); a resource that never asked gets no push."""
        home = self.client("alice", "home")
        work = self.client("alice", "work")
        quiet = self.client("alice", "quiet", roster=False)
        elements = self.roster_set(home, "<item jid='bob@localhost' name='Bob'><group>Friends</group></item>")
        self.assertResult(elements, "set1")
        for client, got in ((home, elements), (work, drain(work))):
            [(version, item)] = pushes(got)
            self.assertTrue(version)
            self.assertTrue(item_is(item, "jid='bob@localhost' name='Bob' subscription='none'",
                                    "<group>Friends</group>"), item.toXml())
        self.assertEqual(pushes(drain(quiet)), [])

    def test_update_replaces_handle_and_groups(self):
        """A roster set replaces the item as given: groups left out are gone, an empty name is
        no name (§2.4)."""
        alice = self.client("alice")
        self.roster_set(alice, "<item jid='bob@localhost' name='Bob'><group>A</group><group>B</group></item>")
        [(_, item)] = pushes(self.roster_set(alice, "<item jid='bob@localhost' name=''><group>B</group></item>"))
        self.assertIsNone(item.getAttribute("name"))
        self.assertEqual([str(g) for g in item.elements()], ["B"])
        stored = self.item("alice@localhost", "bob@localhost")
        self.assertEqual((stored.name, stored.groups), ("", ("B",)))

    def test_subscription_ask_approved_ignored(self):
        """The 'subscription' (other than remove), 'ask' and 'approved' attributes of a set
        change nothing (§2.1.2.1, §2.1.2.2, §2.1.5 rule 2)."""
        alice = self.client("alice")
        elements = self.roster_set(
            alice, "<item jid='bob@localhost' subscription='both' ask='subscribe' approved='true'/>")
        self.assertResult(elements, "set1")
        [(_, item)] = pushes(elements)
        self.assertTrue(item_is(item, "jid='bob@localhost' subscription='none'"))
        self.assertIsNone(item.getAttribute("ask"))
        self.assertEqual(self.state("alice@localhost", "bob@localhost"), "None")

    def test_update_keeps_subscription(self):
        """Renaming an item keeps its subscription state and pending flags."""
        alice = self.client("alice")
        self.set_state("alice@localhost", "bob@localhost", "From + Pending Out")
        [(_, item)] = pushes(self.roster_set(alice, "<item jid='bob@localhost' name='B'/>"))
        self.assertTrue(item_is(item, "jid='bob@localhost' name='B' subscription='from' ask='subscribe'"))

    def test_remove(self):
        """subscription='remove' deletes the item and pushes the removal (§2.5.2)."""
        alice = self.client("alice")
        self.roster_set(alice, "<item jid='bob@localhost'/>")
        elements = self.roster_set(alice, "<item jid='bob@localhost' subscription='remove'/>", id="rm")
        self.assertResult(elements, "rm")
        [(_, item)] = pushes(elements)
        self.assertTrue(item_is(item, "jid='bob@localhost' subscription='remove'"))
        self.assertIsNone(self.item("alice@localhost", "bob@localhost"))

    def test_remove_unknown_item(self):
        """Removing an item that is not in the roster is item-not-found (§2.5.3)."""
        alice = self.client("alice")
        elements = self.roster_set(alice, "<item jid='bob@localhost' subscription='remove'/>", id="rm")
        self.assertStanzaError(elements, "item-not-found", "rm")
        self.assertEqual(pushes(elements), [])

    def test_remove_ends_subscriptions(self):
        """Removing a contact with a mutual subscription sends unavailable, unsubscribe and
        unsubscribed to it (§2.5.2, §3.2.2), which the local contact's roster follows."""
        bob = self.client("bob")
        alice = self.client("alice")
        self.set_state("alice@localhost", "bob@localhost", "Both")
        self.set_state("bob@localhost", "alice@localhost", "Both")
        self.roster_set(alice, "<item jid='bob@localhost' subscription='remove'/>", id="rm")
        got = drain(bob)
        kinds = [(e.getAttribute("type"), e.getAttribute("from")) for e in got if e.name == "presence"]
        self.assertEqual(kinds, [("unavailable", "alice@localhost/res"), ("unsubscribe", "alice@localhost"),
                                 ("unsubscribed", "alice@localhost")])
        self.assertEqual(self.state("bob@localhost", "alice@localhost"), "None")

    def test_remove_denies_pending_request(self):
        """Removing an item with a pending inbound request denies it ('unsubscribed')."""
        alice = self.client("alice")
        self.set_state("alice@localhost", REMOTE, "None + Pending Out+In")
        self.roster_set(alice, f"<item jid='{REMOTE}' subscription='remove'/>", id="rm")
        self.assertEqual([s.getAttribute("type") for s in self.remote], ["unsubscribe", "unsubscribed"])


BAD_SETS = [
    # (name, query content, condition, RFC rule)
    ("two_items", "<item jid='a@localhost'/><item jid='b@localhost'/>", "bad-request", "§2.3.3: one item"),
    ("no_item", "", "bad-request", "§2.1.5 rule 1: one item"),
    ("no_jid", "<item name='x'/>", "bad-request", "§2.1.2.3: 'jid' is required"),
    ("malformed_jid", "<item jid='a@b@c'/>", "jid-malformed", "RFC 6120 §8.3.3.8"),
    ("full_jid", "<item jid='bob@localhost/phone'/>", "bad-request", "roster items are bare JIDs"),
    ("own_jid", "<item jid='alice@localhost'/>", "not-allowed", "§2.3.3 interoperability note"),
    ("duplicate_groups", "<item jid='bob@localhost'><group>A</group><group>A</group></item>",
     "bad-request", "§2.3.3: duplicate groups"),
    ("duplicate_groups_normalised",
     "<item jid='bob@localhost'><group>caf\u00e9</group><group>cafe\u0301</group></item>",
     "bad-request", "§2.3.3: groups compared as resourceparts"),
    ("empty_group", "<item jid='bob@localhost'><group></group></item>", "not-acceptable", "§2.3.3: empty group"),
    ("long_name", "<item jid='bob@localhost' name='{long}'/>", "not-acceptable", "§2.3.3: oversized handle"),
    ("long_group", "<item jid='bob@localhost'><group>{long}</group></item>", "not-acceptable",
     "§2.3.3: oversized group"),
    ("too_many_groups", "<item jid='bob@localhost'>{groups}</item>", "not-acceptable", "max_groups"),
]


class RosterSetErrorTests(IMTestCase):
    """Each malformed roster set gets its stanza error and changes nothing."""

    options = {"roster": {"max_name_length": 10, "max_group_length": 10, "max_groups": 3, "max_items": 2}}

    def test_roster_full(self):
        """Beyond max_items a new item is refused with policy-violation and a text; existing
        items can still be changed."""
        alice = self.client("alice")
        self.roster_set(alice, "<item jid='a@localhost'/>")
        self.roster_set(alice, "<item jid='b@localhost'/>")
        error = self.assertStanzaError(self.roster_set(alice, "<item jid='c@localhost'/>", id="full"),
                                       "policy-violation", "full")
        self.assertIn("at most 2", error_text(error))
        self.assertResult(self.roster_set(alice, "<item jid='b@localhost' name='B'/>", id="ok"), "ok")

    def test_roster_full_for_subscribe(self):
        """A subscription request that would add a roster item beyond max_items is refused
        with policy-violation and not routed."""
        alice = self.client("alice")
        self.roster_set(alice, "<item jid='a@localhost'/>")
        self.roster_set(alice, "<item jid='b@localhost'/>")
        alice.send(f"<presence to='{REMOTE}' type='subscribe' id='sub'/>")
        self.assertStanzaError(drain(alice), "policy-violation", "sub")
        self.assertEqual(self.remote, [])


def _bad_set(row):
    name, content, condition, rule = row

    def test(self):
        alice = self.client("alice")
        content_xml = content.format(long="x" * 11, groups="".join(f"<group>{i}</group>" for i in range(4)))
        elements = self.roster_set(alice, content_xml, id="bad")
        self.assertStanzaError(elements, condition, "bad")
        self.assertEqual(pushes(elements), [])
        self.assertEqual(self.rows("roster_items", "alice@localhost"), 0)

    return f"test_{name}", f"A roster set with {name.replace('_', ' ')} gets {condition} ({rule}).", test


add_tests(RosterSetErrorTests, BAD_SETS, _bad_set)


class RosterVersioningTests(IMTestCase):
    """Roster versioning (§2.6, XEP-0237)."""

    def get(self, client, ver):
        client.send(f"<iq type='get' id='v'><query xmlns='{NS_ROSTER}' ver='{ver}'/></iq>")
        self.settle()
        return drain(client)

    def version(self, client):
        client.send(f"<iq type='get' id='v0'><query xmlns='{NS_ROSTER}'/></iq>")
        return self.assertResult(drain(client), "v0").firstChildElement()["ver"]

    def populate(self, client, count):
        for i in range(count):
            self.roster_set(client, f"<item jid='c{i}@localhost'/>", id=f"p{i}")

    def test_stream_feature(self):
        """The versioning feature is offered after authentication (§2.6.1)."""
        add_user(self.server, "alice@localhost", "secret")
        client = FakeClient(self.server)
        client.open_stream()
        self.assertIs(client.authenticate("alice", "secret"), True)
        features = client.open_stream()
        names = {(c.uri, c.name) for c in features.elements()}
        self.assertIn(("urn:xmpp:features:rosterver", "ver"), names)

    def test_unchanged_roster_empty_result(self):
        """A client whose cached version is current gets an empty result and no pushes (§2.6.3)."""
        alice = self.client("alice")
        self.populate(alice, 2)
        got = self.get(alice, self.version(alice))
        result = self.assertResult(got, "v")
        self.assertIsNone(result.firstChildElement())
        self.assertEqual(pushes(got), [])

    def test_interim_pushes(self):
        """A client with an older version gets an empty result, then one push per changed
        item (removals included) in version order, the last one carrying the current
        version (§2.6.3)."""
        alice = self.client("alice")
        self.populate(alice, 5)
        cached = self.version(alice)
        self.roster_set(alice, "<item jid='c1@localhost' name='One'/>", id="u1")
        self.roster_set(alice, "<item jid='c2@localhost' subscription='remove'/>", id="u2")
        current = self.version(alice)
        laptop = self.client("alice", "laptop", roster=False)
        got = self.get(laptop, cached)
        self.assertIsNone(self.assertResult(got, "v").firstChildElement())
        interim = pushes(got)
        self.assertEqual([(i["jid"], i.getAttribute("name"), i["subscription"]) for _, i in interim],
                         [("c1@localhost", "One", "none"), ("c2@localhost", None, "remove")])
        self.assertEqual(interim[-1][0], current)
        self.assertNotEqual(interim[0][0], interim[1][0])
        self.assertLess(got.index(self.assertResult(got, "v")), got.index(
            [e for e in got if e.getAttribute("type") == "set"][0]))

    def test_many_changes_full_roster(self):
        """When the changes outnumber the items, the whole roster is cheaper and is sent."""
        alice = self.client("alice")
        self.populate(alice, 2)
        cached = self.version(alice)
        self.roster_set(alice, "<item jid='c0@localhost' name='x'/>", id="u1")
        self.roster_set(alice, "<item jid='c1@localhost' name='y'/>", id="u2")
        query = self.assertResult(self.get(alice, cached), "v").firstChildElement()
        self.assertEqual(len(list(query.elements())), 2)

    def test_unknown_versions_full_roster(self):
        """A version the server cannot place (garbage, empty, another epoch, the future)
        gets the complete roster (§2.6.2, §2.6.3)."""
        alice = self.client("alice")
        self.populate(alice, 3)
        epoch = self.version(alice).partition("-")[0]
        for ver in ("bogus", "", "beef-1", f"{epoch}-999", f"{epoch}-\u00b2"):
            query = self.assertResult(self.get(alice, ver), "v").firstChildElement()
            self.assertEqual(len(list(query.elements())), 3, ver)

    def test_forgotten_removals_full_roster(self):
        """Only the newest removals are remembered; a client from before the oldest one
        remembered gets the complete roster."""
        self.patch(roster_store, "MAX_TOMBSTONES", 2)
        alice = self.client("alice")
        self.populate(alice, 10)
        cached = self.version(alice)
        for i in range(4):
            self.roster_set(alice, f"<item jid='c{i}@localhost' subscription='remove'/>", id=f"r{i}")
        query = self.assertResult(self.get(alice, cached), "v").firstChildElement()
        self.assertEqual(len(list(query.elements())), 6)
        self.assertEqual(self.rows("roster_removed", "alice@localhost"), 2)

    def test_readded_item_is_no_removal(self):
        """An item removed and added again is pushed once, as present."""
        alice = self.client("alice")
        self.populate(alice, 4)
        cached = self.version(alice)
        self.roster_set(alice, "<item jid='c0@localhost' subscription='remove'/>", id="r")
        self.roster_set(alice, "<item jid='c0@localhost' name='back'/>", id="a")
        interim = pushes(self.get(alice, cached))
        self.assertEqual([(i["jid"], i["subscription"]) for _, i in interim], [("c0@localhost", "none")])


class AccountDeletionTests(IMTestCase):
    """ACCOUNT_DELETING: the account's rows go, contacts' items are reset and told."""

    def delete(self, jid):
        self.assertTrue(result_of(self.server.account_manager.delete(jid)))
        self.settle()

    def test_rows_deleted_and_contacts_reset(self):
        """Deleting alice removes her roster, removals and version rows; bob's item for her
        stays with subscription none and nothing pending, and bob's online resource is told
        (unavailable, unsubscribed, unsubscribe) and gets the push."""
        bob = self.client("bob")
        alice = self.client("alice")
        self.roster_set(alice, "<item jid='carol@localhost'/>")
        self.roster_set(alice, "<item jid='carol@localhost' subscription='remove'/>", id="rm")
        self.set_state("alice@localhost", "bob@localhost", "Both")
        self.set_state("bob@localhost", "alice@localhost", "Both", name="Alice")
        drain(bob)
        self.delete("alice@localhost")
        for table in ("roster_items", "roster_removed", "roster_versions"):
            self.assertEqual(self.rows(table, "alice@localhost"), 0, table)
        kept = self.item("bob@localhost", "alice@localhost")
        self.assertEqual((kept.subscription, kept.ask, kept.pending_in, kept.name), ("none", False, False, "Alice"))
        got = drain(bob)
        self.assertEqual([(e.getAttribute("type"), e["from"]) for e in got if e.name == "presence"],
                         [("unavailable", "alice@localhost"), ("unsubscribed", "alice@localhost"),
                          ("unsubscribe", "alice@localhost")])
        [(_, item)] = pushes(got)
        self.assertTrue(item_is(item, "jid='alice@localhost' name='Alice' subscription='none'"))

    def test_pending_request_dropped(self):
        """A request the deleted account had pending with a contact disappears with it."""
        self.client("bob", available=False)
        carol = self.client("carol")
        carol.send("<presence to='bob@localhost' type='subscribe'/>")
        self.assertEqual(self.state("bob@localhost", "carol@localhost"), "None + Pending In")
        self.delete("carol@localhost")
        self.assertIsNone(self.item("bob@localhost", "carol@localhost"))
        self.assertEqual(self.rows("roster_items", "carol@localhost"), 0)

    def test_recreated_account_not_told(self):
        """Nothing is sent when the account exists again by the time the notice would go."""
        bob = self.client("bob")
        self.client("alice", available=False)
        self.set_state("bob@localhost", "alice@localhost", "To")
        result_of(self.server.account_manager.delete("alice@localhost"))
        add_user(self.server, "alice@localhost", "again")
        self.settle()
        self.assertEqual(presences(drain(bob), "unsubscribed"), [])


class IRosterTests(IMTestCase):
    """The service other extensions use."""

    def test_subscription_questions(self):
        """is_subscribed_from / is_subscribed_to / sharing_with answer from the stored state."""
        alice, bob = parse_jid("alice@localhost"), parse_jid("bob@localhost")
        self.set_state("alice@localhost", "bob@localhost", "From")
        self.set_state("carol@localhost", "alice@localhost", "Both")
        self.assertTrue(result_of(self.roster.is_subscribed_from(alice, bob)))
        self.assertFalse(result_of(self.roster.is_subscribed_to(alice, bob)))
        self.assertFalse(result_of(self.roster.is_subscribed_from(bob, alice)))
        self.assertEqual(result_of(self.roster.sharing_with(alice)), {"carol@localhost"})
        self.assertEqual(result_of(self.roster.sharing_with(bob)), {"alice@localhost"})



class StoredRequestLimitTests(IMTestCase):
    options = {"roster": {"max_pending": 1}}

    def test_limit_on_stored_requests(self):
        """Stored inbound requests are bounded per account: the one over max_pending is
        answered resource-constraint and not stored (§3.1.3 security warning)."""
        self.client("alice", available=False)
        self.inject("<presence from='a@remote.example' to='alice@localhost' type='subscribe'/>")
        self.inject("<presence from='b@remote.example' to='alice@localhost' type='subscribe' id='x'/>")
        [error] = self.remote_presence("error")
        self.assertEqual((error_condition(error), error["to"], error["id"]),
                         ("resource-constraint", "b@remote.example", "x"))
        self.assertIsNone(self.item("alice@localhost", "b@remote.example"))


class ConfigTests(unittest.TestCase):
    def test_defaults(self):
        """Without options the limits are the documented defaults."""
        config = parse_roster_config({}, "extensions.roster")
        self.assertEqual((config.max_items, config.max_pending), (1000, 100))
        presence = parse_presence_config({"rate": 2}, "extensions.presence")
        self.assertEqual((presence.rate, presence.burst), (2.0, 100.0))

    def test_errors_name_their_keys(self):
        """Bad values and unknown keys are all reported with their key paths."""
        error = self.assertRaises(ConfigError, parse_roster_config,
                                  {"max_items": 0, "max_groups": True, "colour": "red"}, "extensions.roster")
        self.assertEqual(sorted(path for path, _ in error.errors),
                         ["extensions.roster.colour", "extensions.roster.max_groups", "extensions.roster.max_items"])
        error = self.assertRaises(ConfigError, parse_presence_config, {"burst": "lots"}, "extensions.presence")
        self.assertEqual([path for path, _ in error.errors], ["extensions.presence.burst"])

    def test_server_refuses_bad_options(self):
        """The server does not start with bad roster options."""
        self.assertRaises(ConfigError, make_server, extensions=["roster"],
                          extension_options={"roster": {"max_items": -1}})
