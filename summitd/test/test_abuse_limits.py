"""Conversation tests for the "abuse_limits" extension: the per-account message rate limit,
per-remote-domain limits, and remote domains blocked by configuration — each refusal a
stanza error naming its reason."""

from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.xmlstream import parse_element
from summitd.plugins import abuse_limits
from summitd.test.test_registration import error_reason
from summitd.testing import FakeClient, add_user, make_server

PASSWORD = "secret-password"


reason = error_reason

class AbuseTestCase(unittest.TestCase):
    options = {"account_rate": 1, "account_burst": 3, "remote_rate": 1, "remote_burst": 2,
               "blocked_domains": ["spam.example"], "domains": {"slow.example": {"rate": 1, "burst": 1}}}

    def setUp(self):
        self.server = make_server(extensions=["abuse_limits"], extension_options={"abuse_limits": self.options})
        for user in ("alice", "bob"):
            add_user(self.server, f"{user}@localhost", PASSWORD)
        self.alice, self.bob = FakeClient(self.server), FakeClient(self.server)
        self.alice.login("alice", PASSWORD, "a")
        self.bob.login("bob", PASSWORD, "b")
        self.bob.send("<presence/>")
        self.remote = []    # what the server sends to other domains
        self.server.hooks.add(events.STANZA_TO_REMOTE, lambda stanza, to: self.remote.append(stanza) or True)

    def from_remote(self, sender, id):
        self.server.router.route(parse_element(
            f"<message from='{sender}' to='bob@localhost' id='{id}' type='chat'><body>x</body></message>",
            "jabber:client"))


class AccountLimitTests(AbuseTestCase):
    def test_account_rate_limit(self):
        """Three messages pass (the burst), the fourth is refused with policy-violation
        (type wait) naming the limit; a second later one more passes."""
        for n in range(4):
            self.alice.send(f"<message to='bob@localhost' id='m{n}' type='chat'><body>{n}</body></message>")
        for n in range(3):
            self.bob.expect(f"<message id='m{n}'/>")
        type, condition, text = reason(self.alice.expect("<message type='error' id='m3'/>"))
        self.assertEqual((type, condition), ("wait", "policy-violation"))
        self.assertIn("message rate limit exceeded", text)

    def test_refill(self):
        """The bucket refills with time."""
        for n in range(4):
            self.alice.send(f"<message to='bob@localhost' id='m{n}'><body>{n}</body></message>")
        self.server.clock.advance(1)
        self.alice.send("<message to='bob@localhost' id='later'><body>later</body></message>")
        for n in range(3):
            self.bob.expect(f"<message id='m{n}'/>")
        self.bob.expect("<message id='later'/>")

    def test_other_stanzas_not_counted(self):
        """IQs and presence do not use the message budget."""
        for n in range(5):
            self.alice.send(f"<iq type='get' id='p{n}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.alice.send("<message to='bob@localhost' id='m'><body>x</body></message>")
        self.bob.expect("<message id='m'/>")


class RemoteDomainTests(AbuseTestCase):
    def test_blocked_domain_inbound(self):
        """A blocked domain (and its subdomains) is refused with policy-violation naming it."""
        self.from_remote("bot@spam.example/x", "s1")
        self.from_remote("bot@eu.spam.example/x", "s2")
        self.bob.expect_nothing()
        texts = [reason(stanza) for stanza in self.remote]
        self.assertEqual([t[1] for t in texts], ["policy-violation", "policy-violation"])
        self.assertIn("spam.example is blocked", texts[0][2])

    def test_blocked_domain_outbound(self):
        """Sending to a blocked domain is refused with not-allowed."""
        self.alice.send("<message to='someone@spam.example' id='o'><body>hi</body></message>")
        self.assertEqual(reason(self.alice.expect("<message type='error' id='o'/>"))[1], "not-allowed")
        self.assertEqual(self.remote, [])

    def test_remote_rate_limit(self):
        """A remote domain gets its burst, then policy-violation (wait); a domain with its
        own limit gets that one."""
        for n in range(3):
            self.from_remote("a@peer.example/x", f"r{n}")
        self.from_remote("b@slow.example/x", "slow1")
        self.from_remote("b@slow.example/x", "slow2")
        received = [self.bob.next()["id"] for _ in range(3)]
        self.assertEqual(received, ["r0", "r1", "slow1"])
        refused = [(s["id"], reason(s)[:2]) for s in self.remote]
        self.assertEqual(refused, [("r2", ("wait", "policy-violation")), ("slow2", ("wait", "policy-violation"))])

    def test_local_senders_not_limited_as_remote(self):
        """Local users are not a remote domain."""
        self.assertFalse(self.server.extensions.loaded["abuse_limits"][0].blocked("localhost"))

    def test_config_errors(self):
        """Invalid options are reported with their key paths."""
        with self.assertRaises(ConfigError) as caught:
            abuse_limits.parse_config({"account_rate": 0, "domains": {"x": {"rate": 1}}, "what": 1}, "p")
        self.assertEqual({p for p, _ in caught.exception.errors}, {"p.account_rate", "p.domains", "p.what"})
