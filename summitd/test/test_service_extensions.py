"""Software version (XEP-0092) and software information (XEP-0232); XMPP Ping (XEP-0199)
in both directions, on the fake clock."""

from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.core.jid import parse_jid
from summitd.plugins import ping
from summitd.plugins.disco import NS_DISCO_INFO, NS_X_DATA, form_type
from summitd.plugins.version import NS_SOFTWARE_INFO, RELEASE_DATE_FIELD
from summitd.test.service_helpers import ServiceTestCase
from summitd.version import NAME, RELEASE_DATE, VERSION

NS_PING = "urn:xmpp:ping"
PING = f"<ping xmlns='{NS_PING}'/>"


class VersionTests(ServiceTestCase):
    extensions = ("disco", "version")

    def test_software_version(self):
        """XEP-0092: name and version, and no <os/> (not disclosed)."""
        query = self.assertResult(self.ask(self.login(), "<query xmlns='jabber:iq:version'/>", to="localhost"))
        self.assertEqual({c.name: str(c) for c in query.elements()}, {"name": NAME, "version": VERSION})

    def test_software_information_form(self):
        """XEP-0232: disco#info carries the softwareinfo form with name, version and the
        release date, and no operating system fields."""
        query = self.assertResult(self.ask(self.login(), f"<query xmlns='{NS_DISCO_INFO}'/>", to="localhost"))
        forms = [x for x in query.elements(NS_X_DATA, "x") if form_type(x) == NS_SOFTWARE_INFO]
        self.assertEqual(len(forms), 1)
        self.assertEqual(forms[0]["type"], "result")
        fields = {f["var"]: [str(v) for v in f.elements(NS_X_DATA, "value")]
                  for f in forms[0].elements(NS_X_DATA, "field")}
        self.assertEqual(fields, {"FORM_TYPE": [NS_SOFTWARE_INFO], "software": [NAME],
                                  "software_version": [VERSION], RELEASE_DATE_FIELD: [RELEASE_DATE]})
        self.assertRegex(RELEASE_DATE, r"^\d{4}-\d{2}-\d{2}$")


class PingConfigTests(unittest.TestCase):
    """[extensions.ping] options."""

    def test_defaults(self):
        """No options: ping after 300 s of silence, wait 60 s for the answer."""
        self.assertEqual(ping.parse_config({}, "extensions.ping"), ping.PingConfig(300.0, 60.0))

    def test_bad_options(self):
        """Every problem is reported at its key."""
        error = self.assertRaises(ConfigError, ping.parse_config,
                                  {"ping_interval": -1, "ping_timeout": "soon", "color": 1}, "extensions.ping")
        self.assertEqual(sorted(path for path, _ in error.errors),
                         [f"extensions.ping.{key}" for key in ("color", "ping_interval", "ping_timeout")])


class PingTestCase(ServiceTestCase):
    extensions = ("ping",)
    options = {"ping": {"ping_interval": 100, "ping_timeout": 30}}

    def setUp(self):
        super().setUp()
        self.alice = self.login("alice", "phone")

    def quiet_for(self, seconds):
        """Let the fake clock run in small steps (the keepalive and check timers fire)."""
        for _ in range(int(seconds)):
            self.clock.advance(1)

    def expect_ping(self, client):
        """The server's ping to ``client``; returns it."""
        return client.expect(f"<iq type='get' from='localhost' to='{client.jid}' id='*'>{PING}</iq>")

    def wait_for_ping(self, client, limit=200):
        """Run the clock until ``client`` has been sent something (at most ``limit`` s);
        returns (the ping, seconds waited)."""
        for waited in range(1, limit + 1):
            self.clock.advance(1)
            if client.transport.value().strip():
                return self.expect_ping(client), waited
        self.fail(f"no ping within {limit} s")

    def answer(self, client, iq, error=None):
        if error is None:
            client.send(f"<iq type='result' id='{iq['id']}' to='localhost'/>")
        else:
            client.send(f"<iq type='error' id='{iq['id']}' to='localhost'><error type='cancel'>"
                        f"<{error} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")


class AnsweringTests(PingTestCase):
    """The server answers pings (XEP-0199 §4.2)."""

    def test_ping_the_server_and_the_account(self):
        """Pings to the domain and to one's bare JID get an empty result."""
        self.assertIsNone(self.assertResult(self.ask(self.alice, PING, to="localhost")))
        self.assertIsNone(self.assertResult(self.ask(self.alice, PING, to="alice@localhost")))


class IdlePingTests(PingTestCase):
    """The server pings quiet clients and closes those that do not answer (XEP-0199 §4.1)."""

    def test_quiet_client_is_pinged_and_stays_when_it_answers(self):
        """After ping_interval of silence (plus at most a check period) a ping comes; the
        answer keeps the session, and the next ping comes a full interval later."""
        ping, waited = self.wait_for_ping(self.alice)
        self.assertTrue(100 <= waited <= 120, waited)
        self.answer(self.alice, ping)
        self.quiet_for(60)
        self.assertFalse(self.alice.disconnected)
        self.assertTrue(40 <= self.wait_for_ping(self.alice)[1] <= 60)     # 100..120 s after the answer

    def test_no_answer_closes_the_stream(self):
        """No answer within ping_timeout: connection-timeout, and the session is unrouted."""
        self.wait_for_ping(self.alice)
        self.quiet_for(29)
        self.assertFalse(self.alice.disconnected)
        self.quiet_for(1)
        self.alice.expect_stream_error("connection-timeout")
        self.assertIsNone(self.server.router.session(parse_jid(self.alice.jid)))

    def test_errors_that_prove_liveness(self):
        """service-unavailable (clients without ping, §4.1) and feature-not-implemented
        answer the ping too: the session stays."""
        for condition in ("service-unavailable", "feature-not-implemented"):
            self.answer(self.alice, self.wait_for_ping(self.alice)[0], condition)
            self.quiet_for(40)
            self.assertFalse(self.alice.disconnected, condition)

    def test_other_errors_close(self):
        """Any other error is no answer: the stream is closed."""
        self.answer(self.alice, self.wait_for_ping(self.alice)[0], "remote-server-not-found")
        self.alice.expect_stream_error("connection-timeout")

    def test_talking_client_is_not_pinged(self):
        """A client that keeps sending anything (here whitespace) is never pinged."""
        for _ in range(10):
            self.quiet_for(50)
            self.alice.send(" ")
        self.alice.expect_nothing()

    def test_one_ping_at_a_time(self):
        """While a ping waits for its answer no second one is sent."""
        long_wait = self.extension("ping")
        long_wait.config = ping.PingConfig(ping_interval=100, ping_timeout=500)
        self.wait_for_ping(self.alice)
        self.quiet_for(200)
        self.alice.expect_nothing()

    def test_gone_before_the_timeout(self):
        """A session that ends while its ping is pending is left alone; others are not hurt."""
        bob = self.login("bob", "laptop")
        self.quiet_for(120)
        self.expect_ping(self.alice)
        self.answer(bob, self.expect_ping(bob))
        self.alice.lose_connection()
        self.quiet_for(40)
        self.assertFalse(bob.disconnected)
        self.assertEqual(self.alice.transport.value(), b"")


class DisabledPingTests(PingTestCase):
    """ping_interval = 0: the server answers pings but sends none."""

    options = {"ping": {"ping_interval": 0}}

    def test_no_pings(self):
        """500 s of silence bring no ping (closing idle streams is c2s's idle_timeout)."""
        self.quiet_for(500)
        self.alice.expect_nothing()
        self.assertIsNone(self.assertResult(self.ask(self.alice, PING, to="localhost")))


class HibernatingSessionTests(PingTestCase):
    """A session stream management keeps for resumption (XEP-0198) is not pinged to death."""

    extensions = ("ping", "stream_management")

    def test_hibernating_session_is_left_alone(self):
        """After its connection breaks, the resumable session stays routed past
        ping_interval + ping_timeout: resumption decides its fate, not pings."""
        self.alice.send("<enable xmlns='urn:xmpp:sm:3' resume='true'/>")
        self.alice.expect("<enabled xmlns='urn:xmpp:sm:3' resume='true'/>")
        session = self.server.router.session(parse_jid(self.alice.jid))
        self.alice.lose_connection()
        self.quiet_for(200)
        self.assertIs(self.server.router.session(parse_jid(self.alice.jid)), session)
