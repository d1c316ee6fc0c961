"""In-band account removal (XEP-0077 §3.2) and password change (§3.3)."""

from twisted.internet import defer
from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.core.jid import parse_jid
from summitd.plugins import register_account
from summitd.test.service_helpers import PASSWORD, ServiceTestCase
from summitd.testing import FakeClient, result_of

NS_REGISTER = "jabber:iq:register"
REMOVE = f"<query xmlns='{NS_REGISTER}'><remove/></query>"
VCARD = "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>"


def change(username, password):
    return (f"<query xmlns='{NS_REGISTER}'><username>{username}</username>"
            f"<password>{password}</password></query>")


class RegisterTestCase(ServiceTestCase):
    extensions = ("register", "vcard", "private")

    def setUp(self):
        super().setUp()
        self.alice = self.login("alice", "desk")

    def exists(self, user):
        return result_of(self.server.account_manager.store.exists("localhost", user))

    def can_login(self, user, password):
        client = FakeClient(self.server)
        client.open_stream()
        return client.authenticate(user, password) is True


class RemovalTests(RegisterTestCase):
    def test_remove(self):
        """The account and its data go; the IQ result comes first, then every session of the
        account gets the not-authorized stream error (§3.2); other accounts stay."""
        phone = self.login("alice", "phone")
        bob = self.login("bob")
        self.ask(self.alice, VCARD, type="set", iq_id="v")
        self.assertResult(self.ask(self.alice, REMOVE, type="set"))
        self.clock.advance(0)       # the streams close right after the result went out
        self.alice.expect_stream_error("not-authorized")
        phone.expect_stream_error("not-authorized")
        self.assertFalse(self.exists("alice"))
        self.assertEqual(result_of(self.server.database.runQuery(
            "SELECT * FROM keyval WHERE username = 'alice'")), [])
        self.assertFalse(self.can_login("alice", PASSWORD))
        self.assertTrue(self.exists("bob"))
        self.assertFalse(bob.disconnected)
        self.assertEqual(self.server.router.sessions(parse_jid("alice@localhost")), [])

    def test_remove_addressed_to_the_domain_or_the_bare_jid(self):
        """The request may carry the domain or the user's bare JID as 'to'."""
        bob = self.login("bob")
        for client, user, to in ((self.alice, "alice", "localhost"), (bob, "bob", "bob@localhost")):
            self.assertResult(self.ask(client, REMOVE, to=to, type="set"))
            self.clock.advance(0)
            client.expect_stream_error("not-authorized")
            self.assertFalse(self.exists(user))

    def test_remove_someone_else(self):
        """A removal addressed to another account is forbidden and removes nothing."""
        self.assertStanzaError(self.ask(self.alice, REMOVE, to="bob@localhost", type="set"), "forbidden")
        self.assertTrue(self.exists("bob"))

    def test_remove_with_other_children(self):
        """<remove/> with siblings is bad-request (§3.2) and removes nothing."""
        query = f"<query xmlns='{NS_REGISTER}'><remove/><username>alice</username></query>"
        self.assertStanzaError(self.ask(self.alice, query, type="set"), "bad-request")
        self.assertTrue(self.exists("alice"))

    def test_stanzas_during_removal_are_refused(self):
        """While the deletion runs, the account's stanzas are answered not-authorized (so
        nothing is stored for it again), then the result and the stream error come."""
        pending = defer.Deferred()
        manager = self.server.account_manager
        real_delete = manager.delete
        manager.delete = lambda jid_text: pending
        self.alice.send(f"<iq type='set' id='q'>{REMOVE}</iq>")
        self.assertStanzaError(self.ask(self.alice, VCARD, type="set", iq_id="v"), "not-authorized", "v")
        self.alice.send("<message to='bob@localhost'><body>hi</body></message>")
        self.alice.expect("<message type='error'><error><not-authorized "
                          "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        real_delete("alice@localhost").chainDeferred(pending)
        self.assertResult(self.alice.next())
        self.clock.advance(0)
        self.alice.expect_stream_error("not-authorized")
        self.assertEqual(result_of(self.server.database.runQuery(
            "SELECT * FROM keyval WHERE username = 'alice'")), [])

    def test_removal_disabled(self):
        """With allow_remove = false the answer is not-allowed."""
        self.extension("register").options = {"allow_remove": False, "allow_password_change": True}
        self.assertStanzaError(self.ask(self.alice, REMOVE, type="set"), "not-allowed")
        self.assertTrue(self.exists("alice"))


class PasswordChangeTests(RegisterTestCase):
    def setUp(self):
        super().setUp()
        self.alice.stream.secure = True     # as if on TLS: §3.3 changes go over encrypted streams

    def test_change(self):
        """A user changes its own password (the localpart or the bare JID as username);
        the new one works and the old one no longer does."""
        for username, password in (("alice", "n3w-pass word"), ("alice@localhost", "newer")):
            self.assertIsNone(self.assertResult(self.ask(self.alice, change(username, password), type="set")))
            self.assertTrue(self.can_login("alice", password))
        self.assertFalse(self.can_login("alice", PASSWORD))

    def test_another_username(self):
        """Another account's username gets not-authorized; nothing changes."""
        reply = self.ask(self.alice, change("bob", "stolen"), type="set")
        self.assertStanzaError(reply, "not-authorized")
        self.assertNotIn("stolen", reply.toXml())       # §3.3: errors do not echo the request
        self.assertTrue(self.can_login("bob", PASSWORD))

    def test_incomplete_or_empty(self):
        """No username, no password or an empty password: bad-request; the old password
        stays (§3.3)."""
        for query in (f"<query xmlns='{NS_REGISTER}'><password>x</password></query>",
                      f"<query xmlns='{NS_REGISTER}'><username>alice</username></query>",
                      change("alice", ""), f"<query xmlns='{NS_REGISTER}'/>"):
            self.assertStanzaError(self.ask(self.alice, query, type="set"), "bad-request")
        self.assertTrue(self.can_login("alice", PASSWORD))

    def test_unacceptable_password(self):
        """A password PRECIS refuses (an unassigned code point) gets not-acceptable."""
        reply = self.ask(self.alice, change("alice", "unassigned \u0378"), type="set")
        self.assertStanzaError(reply, "not-acceptable")
        self.assertTrue(self.can_login("alice", PASSWORD))

    def test_unencrypted_stream(self):
        """Over a stream without TLS the change is refused with not-authorized."""
        self.alice.stream.secure = False
        self.assertStanzaError(self.ask(self.alice, change("alice", "sniffed"), type="set"), "not-authorized")
        self.assertTrue(self.can_login("alice", PASSWORD))

    def test_change_disabled(self):
        """With allow_password_change = false the answer is not-allowed."""
        self.extension("register").options = {"allow_remove": True, "allow_password_change": False}
        self.assertStanzaError(self.ask(self.alice, change("alice", "new"), type="set"), "not-allowed")

    def test_registration_info(self):
        """A get tells the user it is registered, with its username (§3.1)."""
        query = self.assertResult(self.ask(self.alice, f"<query xmlns='{NS_REGISTER}'/>"))
        self.assertEqual([(c.name, str(c)) for c in query.elements()],
                         [("registered", ""), ("username", "alice"), ("password", "")])


class RegisterConfigTests(unittest.TestCase):
    def test_options(self):
        """Both switches default to true; non-booleans and unknown keys are errors."""
        self.assertEqual(register_account.parse_config({}, "extensions.register"),
                         {"allow_remove": True, "allow_password_change": True})
        error = self.assertRaises(ConfigError, register_account.parse_config,
                                  {"allow_remove": "no", "registration": True}, "extensions.register")
        self.assertEqual(sorted(path for path, _ in error.errors),
                         ["extensions.register.allow_remove", "extensions.register.registration"])
