"""Tests for the "blocking" extension: the Blocking Command (XEP-0191) and spam reports
(XEP-0377): the blocklist protocol, its pushes, the JID matching rules, enforcement in
both directions (presence included) and the moderation table."""

from twisted.logger import LogLevel, capturedLogs
from twisted.trial import unittest
from twisted.words.xish import domish

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.hooks import Priority
from summitd.core.jid import parse_jid
from summitd.plugins import blocking, blocking_store
from summitd.testing import FakeClient, add_user, make_server, parse_xml, result_of

NS = blocking.NS_BLOCKING
PASSWORD = "secret"
USERS = ("alice", "bob", "carol")
BLOCKED = ("<error type='cancel'><not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
           "<blocked xmlns='urn:xmpp:blocking:errors'/></error>")
UNAVAILABLE = "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
BAD_REQUEST = "<error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
SPAM_REPORT = ("<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:spam'>"
               "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='sid-1'/>"
               "<stanza-id xmlns='urn:xmpp:sid:0' by='alice@localhost' id='sid-2'/>"
               "<text xml:lang='en'>Never came trouble to my house like this.</text></report>")


def items_xml(*jids):
    return "".join(f"<item jid='{jid}'/>" for jid in jids)


class BlockingTestCase(unittest.TestCase):
    """A server with the blocking extension and the accounts alice, bob and carol."""

    options = {}

    def setUp(self):
        self.server = make_server(extensions=["blocking"], extension_options={"blocking": self.options})
        for user in USERS:
            add_user(self.server, f"{user}@localhost", PASSWORD)

    def login(self, user, resource, available=False, wants_pushes=False):
        client = FakeClient(self.server)
        client.login(user, PASSWORD, resource)
        if available:
            client.send("<presence/>")
        if wants_pushes:
            self.blocklist(client)
        return client

    def blocklist(self, client):
        """The blocklist as the server returns it (which also asks for pushes)."""
        client.send(f"<iq type='get' id='get'><blocklist xmlns='{NS}'/></iq>")
        reply = client.expect(f"<iq type='result' id='get'><blocklist xmlns='{NS}'/></iq>")
        return [item["jid"] for item in next(reply.elements()).elements()]

    def command(self, client, name, *jids, body=None, expect="result"):
        """Send <block/> or <unblock/>; check the reply type; returns the reply."""
        client.send(f"<iq type='set' id='{name}'><{name} xmlns='{NS}'>"
                    f"{items_xml(*jids) if body is None else body}</{name}></iq>")
        return self.expect_reply(client, name, expect)

    def expect_reply(self, client, id, type="result"):
        """The reply with ``id``, skipping the blocklist pushes sent to this same resource."""
        reply = client.next()
        while reply.getAttribute("id", "").startswith("block-push-"):
            reply = client.next()
        self.assertEqual((reply.getAttribute("id"), reply.getAttribute("type")), (id, type), reply.toXml())
        return reply

    def assertCondition(self, reply, condition):
        self.assertEqual(reply.firstChildElement().firstChildElement().name, condition, reply.toXml())

    def block(self, client, *jids):
        return self.command(client, "block", *jids)

    def unblock(self, client, *jids):
        return self.command(client, "unblock", *jids)

    def route(self, xml):
        """Route a stanza as the server (or s2s, or the presence extension) would."""
        self.server.router.route(parse_xml(xml))

    def record(self, event, priority=Priority.DEFAULT, take=None):
        """Stanzas that reach ``event`` below the blocking checks (offline storage, archive;
        s2s, which takes them: ``take=True``)."""
        seen = []

        def handler(stanza, to_jid):
            seen.append(stanza)
            return take

        self.addCleanup(self.server.hooks.add(event, handler, priority))
        return seen

    def sql(self, query, *params):
        return result_of(self.server.database.runInteraction(
            "test query", lambda txn: txn.execute(query, params).fetchall()))


class ConfigTests(unittest.TestCase):
    def test_defaults_and_values(self):
        """No table gives the defaults; given values are kept."""
        self.assertEqual(blocking.parse_config({}, "extensions.blocking"), blocking.BlockingConfig())
        config = blocking.parse_config({"max_items": 5, "max_report_text": 0}, "extensions.blocking")
        self.assertEqual((config.max_items, config.max_report_text), (5, 0))

    def test_bad_options_name_their_key(self):
        """Unknown keys, wrong types and out-of-range values are all reported at once."""
        error = self.assertRaises(ConfigError, blocking.parse_config,
                                  {"max_items": 0, "max_report_text": True, "colour": "red"},
                                  "extensions.blocking")
        self.assertEqual(sorted(path for path, _ in error.errors),
                         ["extensions.blocking.colour", "extensions.blocking.max_items",
                          "extensions.blocking.max_report_text"])


class ProtocolTests(BlockingTestCase):
    def test_disco_features(self):
        """The server and accounts announce urn:xmpp:blocking and urn:xmpp:reporting:1."""
        for event, where in ((events.SERVER_DISCO_FEATURES, "localhost"),
                             (events.ACCOUNT_DISCO_FEATURES, parse_jid("alice@localhost"))):
            features = self.server.hooks.collect(event, where)
            self.assertIn("urn:xmpp:blocking", features)
            self.assertIn("urn:xmpp:reporting:1", features)

    def test_empty_blocklist(self):
        """With nothing blocked the result is an empty <blocklist/>."""
        self.assertEqual(self.blocklist(self.login("alice", "desk")), [])

    def test_block_several_items_normalised(self):
        """One block with several items (one repeated, spelt differently) stores each
        once, normalised (RFC 7622), and the blocklist lists them."""
        alice = self.login("alice", "desk")
        self.block(alice, "Bob@LOCALHOST", "bob@localhost", "remote.example/Bot", "Spam.Example")
        self.assertEqual(self.blocklist(alice), ["bob@localhost", "remote.example/Bot", "spam.example"])
        rows = self.sql("SELECT jid FROM blocking_items WHERE username = ? ORDER BY jid", "alice")
        self.assertEqual([r[0] for r in rows], ["bob@localhost", "remote.example/Bot", "spam.example"])

    def test_block_without_items_is_bad_request(self):
        """§3.3: a <block/> without an <item/> is a bad-request (other children don't count)."""
        alice = self.login("alice", "desk")
        for body in ("", "<other xmlns='urn:example'/>"):
            self.assertCondition(self.command(alice, "block", body=body, expect="error"), "bad-request")
        self.assertEqual(self.blocklist(alice), [])

    def test_malformed_items_are_bad_request(self):
        """An item without a 'jid' or with an invalid JID is a bad-request and nothing of
        the request is stored, not even its valid items."""
        alice = self.login("alice", "desk")
        for bad in ("<item/>", "<item jid=''/>", "<item jid='@localhost'/>", "<item jid='bob@localhost/'/>",
                    "<item jid='bob@exa mple.com'/>", "<item jid='a@b@c'/>"):
            for name in ("block", "unblock"):
                reply = self.command(alice, name, body=items_xml("carol@localhost") + bad, expect="error")
                self.assertCondition(reply, "bad-request")
        self.assertEqual(self.blocklist(alice), [])

    def test_unblock_items_and_all(self):
        """<unblock/> with items removes those (unknown ones are fine); empty removes all."""
        alice = self.login("alice", "desk")
        self.block(alice, "bob@localhost", "carol@localhost", "spam.example")
        self.unblock(alice, "bob@localhost", "never@blocked.example")
        self.assertEqual(self.blocklist(alice), ["carol@localhost", "spam.example"])
        self.unblock(alice)
        self.assertEqual(self.blocklist(alice), [])
        self.assertEqual(self.sql("SELECT jid FROM blocking_items"), [])

    def test_pushes_reach_interested_resources_only(self):
        """§3.3-§3.5: pushes go to every resource that asked for the blocklist in its
        session, the acting one included, and to no other."""
        desk = self.login("alice", "desk", wants_pushes=True)
        phone = self.login("alice", "phone", wants_pushes=True)
        tablet = self.login("alice", "tablet")
        desk.send(f"<iq type='set' id='b'><block xmlns='{NS}'>{items_xml('bob@localhost', 'carol@localhost')}"
                  "</block></iq>")
        for client in (desk, phone):
            client.expect(f"<iq type='set' to='{client.jid}'><block xmlns='{NS}'>"
                          f"{items_xml('bob@localhost', 'carol@localhost')}</block></iq>")
        desk.expect("<iq type='result' id='b'/>")
        tablet.expect_nothing()
        self.unblock(tablet, "bob@localhost")
        for client in (desk, phone):
            client.expect(f"<iq type='set'><unblock xmlns='{NS}'>{items_xml('bob@localhost')}</unblock></iq>")
        tablet.expect_nothing()
        self.unblock(tablet)
        for client in (desk, phone):
            last = client.expect(f"<iq type='set'><unblock xmlns='{NS}'/></iq>")
            self.assertEqual(list(next(last.elements()).elements()), [])
        tablet.expect_nothing()

    def test_only_the_owner_manages_the_blocklist(self):
        """Another account asking for or changing alice's blocklist gets forbidden."""
        alice = self.login("alice", "desk")
        self.block(alice, "carol@localhost")
        bob = self.login("bob", "phone")
        for iq in (f"<blocklist xmlns='{NS}'/>", f"<unblock xmlns='{NS}'/>",
                   f"<block xmlns='{NS}'>{items_xml('dave@localhost')}</block>"):
            type = "get" if "blocklist" in iq else "set"
            bob.send(f"<iq type='{type}' id='x' to='alice@localhost'>{iq}</iq>")
            bob.expect("<iq type='error' id='x'><error type='auth'>"
                       "<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        self.assertEqual(self.blocklist(alice), ["carol@localhost"])


class LimitTests(BlockingTestCase):
    options = {"max_items": 2}

    def test_blocklist_size_is_bounded(self):
        """Going over max_items is a policy-violation and changes nothing; re-blocking
        what is there already is fine."""
        alice = self.login("alice", "desk")
        self.block(alice, "bob@localhost", "carol@localhost")
        self.assertCondition(self.command(alice, "block", "dave@localhost", expect="error"), "policy-violation")
        self.block(alice, "bob@localhost")
        self.assertEqual(self.blocklist(alice), ["bob@localhost", "carol@localhost"])


class MatchingTests(BlockingTestCase):
    #: (blocklist item, sender, blocked?) per XEP-0191 §6 / XEP-0016.
    RULES = [
        ("bob@localhost/phone", "bob@localhost/phone", True),
        ("bob@localhost/phone", "bob@localhost/desk", False),
        ("bob@localhost/phone", "bob@localhost", False),
        ("bob@localhost", "bob@localhost/desk", True),
        ("bob@localhost", "bob@localhost", True),
        ("bob@localhost", "carol@localhost/desk", False),
        ("remote.example/bot", "remote.example/bot", True),
        ("remote.example/bot", "anyone@remote.example/bot", True),
        ("remote.example/bot", "anyone@remote.example/other", False),
        ("remote.example/bot", "remote.example", False),
        ("remote.example", "remote.example", True),
        ("remote.example", "remote.example/service", True),
        ("remote.example", "anyone@remote.example", True),
        ("remote.example", "anyone@remote.example/r", True),
        ("remote.example", "anyone@sub.remote.example", False),
        ("remote.example", "anyone@other.example", False),
    ]

    def test_match_keys(self):
        """The candidate entries of a JID, most specific first."""
        self.assertEqual(blocking.match_keys(parse_jid("u@d/r")), ["u@d/r", "u@d", "d/r", "d"])
        self.assertEqual(blocking.match_keys(parse_jid("d/r")), ["d/r", "d"])
        self.assertEqual(blocking.match_keys(parse_jid("u@d")), ["u@d", "d"])

    def test_rules_table(self):
        """One row per rule: a message from the sender reaches alice unless the item
        matches it, and a blocked sender gets service-unavailable."""
        alice = self.login("alice", "desk", available=True)
        to_remote = self.record(events.STANZA_TO_REMOTE, take=True)
        for item, sender, blocked in self.RULES:
            with self.subTest(item=item, sender=sender):
                self.block(alice, item)
                del to_remote[:]
                self.route(f"<message from='{sender}' to='alice@localhost' type='chat' id='m'>"
                           "<body>hello</body></message>")
                if blocked:
                    alice.expect_nothing()
                else:
                    alice.expect(f"<message from='{sender}' id='m'/>")
                if not sender.endswith("localhost") and "localhost/" not in sender:
                    errors = [e.toXml() for e in to_remote]
                    self.assertEqual(len(errors), 1 if blocked else 0, errors)
                self.unblock(alice)

    def test_own_resources_and_the_server_are_never_blocked(self):
        """Blocking one's own JID or domain still lets one's resources and the server
        talk to each other (§5 note); other users of the domain are blocked."""
        desk = self.login("alice", "desk")
        phone = self.login("alice", "phone")
        self.block(desk, "alice@localhost", "localhost")
        desk.send("<message to='alice@localhost/phone' id='own'><body>note to self</body></message>")
        phone.expect("<message from='alice@localhost/desk' id='own'/>")
        desk.send("<message to='localhost' id='srv'><body>hi server</body></message>")
        desk.expect(f"<message type='error' id='srv' from='localhost'>{UNAVAILABLE}</message>")
        desk.send("<message to='bob@localhost' id='b'><body>hi</body></message>")
        desk.expect(f"<message type='error' id='b' from='bob@localhost'>{BLOCKED}</message>")


class InboundTests(BlockingTestCase):
    def setUp(self):
        super().setUp()
        self.alice = self.login("alice", "desk", available=True)
        self.bob = self.login("bob", "phone", available=True)
        self.block(self.alice, "bob@localhost")

    def test_messages_and_requests_get_service_unavailable(self):
        """§3.3: messages (every type but error) and IQ get/set from a blocked JID are
        answered with service-unavailable; alice receives nothing."""
        stanzas = [
            ("message", "type='chat'", "alice@localhost", "<body>hi</body>"),
            ("message", "type='normal'", "alice@localhost/desk", "<body>hi</body>"),
            ("message", "type='headline'", "alice@localhost", "<body>news</body>"),
            ("iq", "type='get'", "alice@localhost/desk", "<ping xmlns='urn:xmpp:ping'/>"),
            ("iq", "type='set'", "alice@localhost", "<query xmlns='jabber:iq:private'/>"),
            ("iq", "type='get'", "alice@localhost", f"<blocklist xmlns='{NS}'/>"),
        ]
        for name, type, to, payload in stanzas:
            self.bob.send(f"<{name} {type} to='{to}' id='s'>{payload}</{name}>")
            self.bob.expect(f"<{name} type='error' id='s' from='{to}'>{UNAVAILABLE}</{name}>")
        self.alice.expect_nothing()

    def test_presence_is_dropped_silently(self):
        """§3.3: presence of every kind from a blocked JID gets no answer and no error."""
        for type in ("", "type='unavailable'", "type='subscribe'", "type='subscribed'",
                     "type='unsubscribe'", "type='unsubscribed'", "type='probe'", "type='error'"):
            for to in ("alice@localhost", "alice@localhost/desk"):
                self.bob.send(f"<presence to='{to}' {type}/>")
        self.bob.expect_nothing()
        self.alice.expect_nothing()

    def test_results_and_errors_are_dropped(self):
        """IQ results and errors, and error messages, from a blocked JID vanish."""
        self.bob.send("<iq type='result' id='r' to='alice@localhost/desk'/>")
        self.bob.send(f"<iq type='error' id='e' to='alice@localhost/desk'>{UNAVAILABLE}</iq>")
        self.bob.send(f"<message type='error' id='me' to='alice@localhost'>{UNAVAILABLE}</message>")
        self.bob.expect_nothing()
        self.alice.expect_nothing()

    def test_offline_user_stores_nothing(self):
        """With alice offline, bob still gets service-unavailable and nothing reaches
        offline storage or the archive (the hooks after SECURITY)."""
        self.alice.lose_connection()
        stored = self.record(events.MESSAGE_TO_ACCOUNT, Priority.ARCHIVE)
        presence = self.record(events.PRESENCE_TO_ACCOUNT, Priority.ARCHIVE)
        self.bob.send("<message to='alice@localhost' type='chat' id='off'><body>hi</body></message>")
        self.bob.send("<presence to='alice@localhost' type='subscribe'/>")
        self.bob.expect(f"<message type='error' id='off'>{UNAVAILABLE}</message>")
        self.bob.expect_nothing()
        self.assertEqual([s["to"] for s in stored + presence], ["bob@localhost/phone"])  # the error

    def test_unblock_lets_messages_through(self):
        """After unblock, bob's messages arrive again."""
        self.unblock(self.alice, "bob@localhost")
        self.bob.send("<message to='alice@localhost' type='chat' id='after'><body>hi again</body></message>")
        self.alice.expect("<message from='bob@localhost/phone' id='after'><body>hi again</body></message>")
        self.bob.expect_nothing()

    def test_blocklists_survive_a_restart(self):
        """Blocklists are loaded at start, so the check works for an offline user right
        away (reloading the extension reads them back from the database)."""
        self.alice.lose_connection()
        manager = self.server.extensions
        result_of(manager.unload("blocking"))
        factory = manager.available["blocking"]
        result_of(manager.load("blocking", factory.parse_config({}, "extensions.blocking")))
        self.bob.send("<message to='alice@localhost' type='chat' id='r'><body>hi</body></message>")
        self.bob.expect(f"<message type='error' id='r'>{UNAVAILABLE}</message>")


class OutboundTests(BlockingTestCase):
    def setUp(self):
        super().setUp()
        self.alice = self.login("alice", "desk", available=True)
        self.bob = self.login("bob", "phone", available=True)

    def test_refused_with_not_acceptable_blocked(self):
        """§3.3: what alice sends to a JID she blocked is not routed; she gets
        not-acceptable with <blocked xmlns='urn:xmpp:blocking:errors'/>."""
        self.block(self.alice, "bob@localhost")
        for name, attrs, payload in (("message", "type='chat'", "<body>hi</body>"),
                                     ("iq", "type='get'", "<ping xmlns='urn:xmpp:ping'/>"),
                                     ("presence", "", ""),
                                     ("presence", "type='subscribe'", "")):
            for to in ("bob@localhost", "bob@localhost/phone"):
                self.alice.send(f"<{name} {attrs} to='{to}' id='o'>{payload}</{name}>")
                self.alice.expect(f"<{name} type='error' id='o' from='{to}'>{BLOCKED}</{name}>")
        self.alice.send("<iq type='result' id='r' to='bob@localhost/phone'/>")
        self.alice.send(f"<message type='error' id='e' to='bob@localhost'>{UNAVAILABLE}</message>")
        self.alice.expect_nothing()
        self.bob.expect_nothing()

    def test_remote_domain_refused(self):
        """A blocked remote domain: nothing leaves for it (not even to s2s)."""
        to_remote = self.record(events.STANZA_TO_REMOTE, take=True)
        self.block(self.alice, "remote.example")
        self.alice.send("<message to='someone@remote.example' type='chat' id='x'><body>hi</body></message>")
        self.alice.expect(f"<message type='error' id='x' from='someone@remote.example'>{BLOCKED}</message>")
        self.assertEqual(to_remote, [])

    def test_presence_on_the_users_behalf_goes_nowhere(self):
        """Presence the server routes for alice (the presence extension's broadcast) is
        dropped in both directions: to a contact alice blocked, and to alice from a
        contact she blocked; to a remote one as well. An unblocked contact still gets it."""
        carol = self.login("carol", "laptop", available=True)
        to_remote = self.record(events.STANZA_TO_REMOTE, take=True)
        self.block(self.alice, "bob@localhost", "remote.example")
        self.route("<presence from='alice@localhost/desk' to='bob@localhost/phone'/>")
        self.route("<presence from='alice@localhost/desk' to='bob@localhost'/>")
        self.route("<presence from='bob@localhost/phone' to='alice@localhost/desk'/>")
        self.route("<presence from='alice@localhost/desk' to='x@remote.example'/>")
        self.bob.expect_nothing()
        self.alice.expect_nothing()
        self.assertEqual(to_remote, [])
        self.route("<presence from='alice@localhost/desk' to='carol@localhost/laptop'/>")
        carol.expect("<presence from='alice@localhost/desk'/>")
        self.route("<presence from='alice@localhost/desk' to='y@other.example'/>")
        self.assertEqual(len(to_remote), 1)

    def test_recipient_blocked_sender(self):
        """bob blocked alice: alice's messages get service-unavailable, her presence
        (hers or broadcast on her behalf) vanishes."""
        self.block(self.bob, "alice@localhost")
        self.alice.send("<message to='bob@localhost' type='chat' id='x'><body>hi</body></message>")
        self.alice.expect(f"<message type='error' id='x' from='bob@localhost'>{UNAVAILABLE}</message>")
        self.alice.send("<presence to='bob@localhost/phone'/>")
        self.route("<presence from='alice@localhost/desk' to='bob@localhost/phone'/>")
        self.alice.expect_nothing()
        self.bob.expect_nothing()


class PresenceOnBlockTests(BlockingTestCase):
    def test_block_retracts_presence_then_nothing_more(self):
        """§3.3: blocking sends unavailable presence from each resource whose presence the
        contact has; a contact who never had presence gets nothing; afterwards the blocked
        contact gets nothing at all, not even presence."""
        bob = self.login("bob", "phone", available=True)
        carol = self.login("carol", "laptop", available=True)
        desk = self.login("alice", "desk", available=True)
        phone = self.login("alice", "phone", available=True)
        desk.send("<presence to='bob@localhost/phone'/>")
        phone.send("<presence to='bob@localhost'/>")
        bob.expect("<presence from='alice@localhost/desk'/>")
        bob.expect("<presence from='alice@localhost/phone'/>")
        self.block(desk, "bob@localhost", "carol@localhost")
        bob.expect("<presence from='alice@localhost/desk' to='bob@localhost/phone' type='unavailable'/>")
        bob.expect("<presence from='alice@localhost/phone' to='bob@localhost' type='unavailable'/>")
        bob.expect_nothing()
        carol.expect_nothing()
        desk.send("<presence/>")
        self.route("<presence from='alice@localhost/phone' to='bob@localhost/phone'>"
                   "<status>back</status></presence>")
        desk.send("<message to='bob@localhost' id='m'><body>hi</body></message>")
        desk.expect(f"<message type='error' id='m'>{BLOCKED}</message>")
        bob.expect_nothing()

    def test_retracted_presence_is_not_retracted_again(self):
        """Presence already made unavailable (to the full or the bare JID) is not tracked
        any more: blocking then sends nothing."""
        bob = self.login("bob", "phone", available=True)
        alice = self.login("alice", "desk", available=True)
        for to in ("bob@localhost/phone", "bob@localhost"):
            alice.send(f"<presence to='{to}'/>")
            alice.send(f"<presence to='{to}' type='unavailable'/>")
        for _ in range(4):
            bob.next()
        self.block(alice, "bob@localhost")
        bob.expect_nothing()

    def test_blocklist_changed_is_notified(self):
        """BLOCKLIST_CHANGED tells other extensions (presence: re-send on unblock) what
        was added or removed; nothing when nothing changed."""
        changes = []
        self.addCleanup(self.server.hooks.add(events.BLOCKLIST_CHANGED,
                                              lambda *args: changes.append(args)))
        alice = self.login("alice", "desk")
        self.block(alice, "bob@localhost", "carol@localhost")
        self.block(alice, "bob@localhost")
        self.unblock(alice, "bob@localhost")
        self.unblock(alice)
        self.unblock(alice)
        alice_jid = parse_jid("alice@localhost")
        self.assertEqual(changes, [(alice_jid, ("bob@localhost", "carol@localhost"), ()),
                                   (alice_jid, (), ("bob@localhost",)),
                                   (alice_jid, (), ("carol@localhost",))])


class ReportTests(BlockingTestCase):
    options = {"max_report_text": 12}

    def reports(self, user="alice"):
        return result_of(self.server.database.runInteraction(
            "test reports", blocking_store.reports, "localhost", user))

    def block_with(self, client, jid, report):
        return self.command(client, "block", body=f"<item jid='{jid}'>{report}</item>")

    def test_report_recorded_and_logged_once(self):
        """XEP-0377: a report inside a block item is stored (reporter, reported JID,
        reason, text, stanza-ids, time) and logged once at info without its text."""
        self.server.clock.advance(86400)
        alice = self.login("alice", "desk")
        with capturedLogs() as logged:
            self.block_with(alice, "spammer@remote.example", SPAM_REPORT)
        self.assertEqual(self.reports(), [{
            "reported_jid": "spammer@remote.example", "reason": "urn:xmpp:reporting:spam",
            "text": "Never came t", "count": 1, "reported_at": "1970-01-02T00:00:00Z",
            "stanza_ids": [{"id": "sid-1", "by": "alice@localhost"}, {"id": "sid-2", "by": "alice@localhost"}]}])
        info = [e for e in logged if e.get("log_namespace") == "summitd.ext.blocking"
                and e.get("log_level") == LogLevel.info]
        self.assertEqual(len(info), 1)
        self.assertEqual((info[0]["reporter"], info[0]["reported"]), ("alice@localhost", "spammer@remote.example"))
        self.assertNotIn("trouble", repr(info[0]))
        self.assertEqual(self.blocklist(alice), ["spammer@remote.example"])

    def test_report_without_reason_still_blocks(self):
        """A report without its required reason is not recorded, but the block is done
        just as without a report (XEP-0377 §6)."""
        alice = self.login("alice", "desk")
        self.block_with(alice, "bob@localhost", "<report xmlns='urn:xmpp:reporting:1'/>")
        self.assertEqual(self.reports(), [])
        self.assertEqual(self.blocklist(alice), ["bob@localhost"])

    def test_repeated_report_replaces_and_counts(self):
        """Reporting the same JID again keeps one row, with the latest reason, bounded
        stanza-ids, and a count."""
        alice = self.login("alice", "desk")
        self.block_with(alice, "bob@localhost", SPAM_REPORT)
        many = "".join(f"<stanza-id xmlns='urn:xmpp:sid:0' id='{i}'/>" for i in range(50))
        self.block_with(alice, "bob@localhost",
                        f"<report xmlns='urn:xmpp:reporting:1' reason='urn:xmpp:reporting:abuse'>{many}</report>")
        [report] = self.reports()
        self.assertEqual((report["reason"], report["count"], report["text"]), ("urn:xmpp:reporting:abuse", 2, None))
        self.assertEqual(len(report["stanza_ids"]), blocking.MAX_REPORT_STANZA_IDS)
        self.assertEqual(report["stanza_ids"][0], {"id": "0", "by": None})

    def test_report_applies_to_its_item_only(self):
        """In a block of several JIDs, a report belongs to the item that holds it."""
        alice = self.login("alice", "desk")
        self.command(alice, "block", body=f"<item jid='carol@localhost'/><item jid='bob@localhost'>{SPAM_REPORT}</item>")
        self.assertEqual([r["reported_jid"] for r in self.reports()], ["bob@localhost"])


class AccountDeletionTests(BlockingTestCase):
    def test_deleting_an_account_removes_its_blocklist_and_reports(self):
        """ACCOUNT_DELETING removes the user's items and the reports they made (others'
        reports about them stay), and the in-memory list goes too."""
        alice = self.login("alice", "desk")
        bob = self.login("bob", "phone")
        self.command(alice, "block", body=f"<item jid='bob@localhost'>{SPAM_REPORT}</item>")
        self.command(bob, "block", body=f"<item jid='alice@localhost'>{SPAM_REPORT}</item>")
        self.unblock(bob, "alice@localhost")
        self.block(bob, "carol@localhost")
        alice.lose_connection()
        self.assertTrue(result_of(self.server.account_manager.delete("alice@localhost")))
        self.assertEqual(self.sql("SELECT username, jid FROM blocking_items"), [("bob", "carol@localhost")])
        self.assertEqual(self.sql("SELECT username, reported_jid FROM blocking_reports"),
                         [("bob", "alice@localhost")])
        add_user(self.server, "alice@localhost", PASSWORD)
        alice = self.login("alice", "desk", available=True)
        self.assertEqual(self.blocklist(alice), [])
        bob.send("<message to='alice@localhost' type='chat' id='x'><body>welcome back</body></message>")
        alice.expect("<message from='bob@localhost/phone' id='x'/>")


class StanzaHelpersTests(unittest.TestCase):
    def test_blocked_error_element(self):
        """The blocked error is not-acceptable of type cancel with the app condition (§3.3)."""
        stanza = domish.Element((None, "message"))
        stanza["from"], stanza["to"] = "alice@localhost/desk", "bob@localhost"
        reply = blocking._blocked_error().reply_to(stanza)
        error = reply.firstChildElement()
        self.assertEqual(error["type"], "cancel")
        self.assertEqual([(c.uri, c.name) for c in error.elements()],
                         [("urn:ietf:params:xml:ns:xmpp-stanzas", "not-acceptable"),
                          ("urn:xmpp:blocking:errors", "blocked")])
