"""External components (XEP-0114, summitd.transports.component) on an in-memory connection."""

from twisted.logger import capturedLogs, formatEvent
from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.core import events
from summitd.test.s2s_helpers import RawPeer
from summitd.testing import FakeClient, add_user, make_server
from summitd.transports.component import ComponentStream, handshake_digest, parse_config

SECRET = "gateway shared secret"
HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='{to}'>")
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


class ComponentTests(unittest.TestCase):
    def setUp(self):
        self.server = make_server(extensions=["component"], domains=("a.test",), extension_options={
            "component": {"components": {"gw.a.test": SECRET}}})
        self.service = self.server.extensions.loaded["component"][0]
        add_user(self.server, "alice@a.test", "alice-pw")
        self.alice = FakeClient(self.server)
        self.alice.login("alice", "alice-pw", "phone", to="a.test")

    def component(self, address="127.0.0.1", to="gw.a.test"):
        peer = RawPeer(ComponentStream(self.service), address=address)
        peer.send(HEADER.format(to=to))
        return peer

    def connected(self):
        peer = self.component()
        peer.send(f"<handshake>{handshake_digest(peer.header['id'], SECRET)}</handshake>")
        peer.expect("<handshake xmlns='jabber:component:accept'/>")
        return peer

    def test_handshake_and_routing_both_ways(self):
        """The right handshake (SHA-1 of stream id + secret) connects; stanzas flow both ways."""
        peer = self.connected()
        self.assertEqual(peer.header["from"], "gw.a.test")
        self.alice.send("<message to='bridge@gw.a.test' id='1'><body>to the gateway</body></message>")
        peer.expect("<message from='alice@a.test/phone' to='bridge@gw.a.test'>"
                    "<body>to the gateway</body></message>")
        peer.send("<message from='bridge@gw.a.test' to='alice@a.test/phone'>"
                  "<body>from the gateway</body></message>")
        self.alice.expect("<message from='bridge@gw.a.test'><body>from the gateway</body></message>")

    def test_wrong_handshake(self):
        """A wrong digest: not-authorized, logged."""
        peer = self.component()
        with capturedLogs() as logged:
            peer.send("<handshake>0000</handshake>")
        peer.expect_stream_error("not-authorized")
        self.assertIn("wrong handshake", "\n".join(formatEvent(e) for e in logged))

    def test_unknown_component_name(self):
        """A name that is not configured: host-unknown."""
        self.component(to="other.a.test").expect_stream_error("host-unknown")

    def test_not_loopback_refused(self):
        """Connections from beyond loopback are refused before anything else."""
        peer = RawPeer(ComponentStream(self.service), address="192.0.2.7")
        peer.expect_stream_error("policy-violation")

    def test_second_connection_conflicts(self):
        """A second connection for a connected component: conflict."""
        self.connected()
        peer = self.component()
        peer.send(f"<handshake>{handshake_digest(peer.header['id'], SECRET)}</handshake>")
        peer.expect_stream_error("conflict")

    def test_stanza_before_handshake(self):
        """Stanzas before the handshake: not-authorized."""
        peer = self.component()
        peer.send("<message from='bridge@gw.a.test' to='alice@a.test'><body>x</body></message>")
        peer.expect_stream_error("not-authorized")

    def test_foreign_from_refused(self):
        """A component may not send from another domain: invalid-from."""
        peer = self.connected()
        peer.send("<message from='alice@a.test' to='alice@a.test/phone'><body>spoof</body></message>")
        peer.expect_stream_error("invalid-from")
        self.alice.expect_nothing()

    def test_missing_addresses(self):
        """Stanzas from a component need 'to' and 'from': improper-addressing."""
        peer = self.connected()
        peer.send("<message to='alice@a.test'><body>x</body></message>")
        peer.expect_stream_error("improper-addressing")

    def test_disconnected_component_bounces(self):
        """While the component is not connected, stanzas to it bounce service-unavailable."""
        self.alice.send("<message to='bridge@gw.a.test' id='7'><body>x</body></message>")
        self.alice.expect(f"<message type='error' id='7' from='bridge@gw.a.test'><error>"
                          f"<service-unavailable xmlns='{NS_STANZAS}'/></error></message>")

    def test_component_domain_is_a_local_service(self):
        """Federation treats the component's domain as served here (events.LOCAL_SERVICE)."""
        self.assertTrue(self.server.hooks.run(events.LOCAL_SERVICE, "gw.a.test"))
        self.assertIsNone(self.server.hooks.run(events.LOCAL_SERVICE, "elsewhere.test"))


class ComponentConfigTests(unittest.TestCase):
    def test_short_secret_and_bad_domain(self):
        """Secrets shorter than 8 characters and invalid domains are config errors."""
        with self.assertRaises(ConfigError) as caught:
            parse_config({"components": {"gw.example": "short", "bad domain!": "long enough secret"}},
                         "extensions.component")
        paths = [path for path, _ in caught.exception.errors]
        self.assertEqual(sorted(paths), ['extensions.component.components."bad domain!"',
                                         'extensions.component.components."gw.example"'])

    def test_defaults(self):
        """Without options: loopback port 5347, no components."""
        config = parse_config({}, "extensions.component")
        self.assertEqual(config.endpoints, ("tcp:5347:interface=127.0.0.1",))
        self.assertEqual(config.components, {})
