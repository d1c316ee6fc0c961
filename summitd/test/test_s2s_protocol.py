"""Bad input from peer servers, one stream driven by hand (summitd.transports.s2s).

A ``RawPeer`` speaks raw XML to b.test's IncomingStream (or answers b.test's
OutgoingStream). Each protocol violation must get its stream or dialback error and a
log line; a failure of one pair must not cost other pairs (XEP-0220 §2.4).
"""

import base64
import os

from twisted.internet import defer
from twisted.logger import capturedLogs, formatEvent
from twisted.trial import unittest

from summitd.test.s2s_helpers import PEER_HEADER, RawPeer, TestCA, federation, s2s_server, self_signed
from summitd.testing import FakeClient, add_user
from summitd.transports.s2s import dialback
from summitd.transports.s2s.incoming import IncomingStream

NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
RESULT = "<db:result from='{sender}' to='{target}'>{key}</db:result>"


class PeerCase(unittest.TestCase):
    """b.test with the "s2s" extension, trusting a test CA; ``peer()`` connects a raw peer."""

    options = {}

    def setUp(self):
        self.ca = TestCA()
        base = self.mktemp()
        os.makedirs(base)
        self.server = s2s_server("b.test", None, options=self.options,
                                 ca_path=self.ca.write_ca(os.path.join(base, "ca.pem")))
        self.manager = federation(self.server).manager
        add_user(self.server, "bob@b.test", "bob-pw")
        self.bob = FakeClient(self.server)
        self.bob.login("bob", "bob-pw", "desk", to="b.test")

    def peer(self, domain="peer.test", chain=None, tls=True):
        """A raw peer on a (direct) TLS stream showing ``chain`` (default: valid for ``domain``)."""
        if chain is None:
            chain = [self.ca.issue(dns=[domain])[0]]
        peer = RawPeer(IncomingStream(self.manager, direct_tls=tls), chain=chain, tls=tls)
        peer.open(domain, "b.test")
        return peer

    def authenticated_peer(self, domain="peer.test"):
        """A peer whose dialback request b.test accepted on its valid certificate."""
        peer = self.peer(domain)
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        peer.send(RESULT.format(sender=domain, target="b.test", key="k"))
        peer.expect(f"<result xmlns='{dialback.NS_DIALBACK}' from='b.test' to='{domain}' type='valid'/>")
        return peer

    def assert_logged(self, events, text):
        self.assertIn(text, "\n".join(formatEvent(e) for e in events))


class StanzaCheckTests(PeerCase):
    def test_stanza_before_authentication(self):
        """A stanza before any authentication: not-authorized, logged, stream closed."""
        peer = self.peer()
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        with capturedLogs() as events:
            peer.send("<message from='eve@peer.test' to='bob@b.test'><body>hi</body></message>")
        peer.expect_stream_error("not-authorized")
        self.bob.expect_nothing()
        self.assert_logged(events, "stream error not-authorized")

    def test_authenticated_stanza_is_delivered(self):
        """After authentication a stanza from the peer's domain reaches the local user."""
        peer = self.authenticated_peer()
        peer.send("<message from='carol@peer.test/x' to='bob@b.test/desk' type='chat'><body>hi</body></message>")
        self.bob.expect("<message from='carol@peer.test/x' to='bob@b.test/desk'><body>hi</body></message>")

    def test_spoofed_from_domain(self):
        """A stanza from a domain the peer did not authenticate: invalid-from."""
        peer = self.authenticated_peer()
        with capturedLogs() as events:
            peer.send("<message from='ceo@bank.test' to='bob@b.test'><body>send money</body></message>")
        peer.expect_stream_error("invalid-from")
        self.bob.expect_nothing()
        self.assert_logged(events, "bank.test is not authenticated for b.test")

    def test_missing_or_malformed_addresses(self):
        """No 'to', or a 'from' that is not a JID: improper-addressing (RFC 6120 §4.9.3.7)."""
        for stanza in ("<message from='carol@peer.test'><body>x</body></message>",
                       "<message from='@@peer.test' to='bob@b.test'><body>x</body></message>"):
            peer = self.authenticated_peer()
            peer.send(stanza)
            peer.expect_stream_error("improper-addressing")
        self.bob.expect_nothing()

    def test_stanza_for_a_domain_not_served(self):
        """A stanza to a domain b.test does not host: host-unknown."""
        peer = self.authenticated_peer()
        peer.send("<message from='carol@peer.test' to='someone@elsewhere.test'><body>x</body></message>")
        peer.expect_stream_error("host-unknown")

    def test_oversized_stanza(self):
        """A stanza bigger than max_stanza_size: policy-violation."""
        peer = self.authenticated_peer()
        with capturedLogs() as events:
            peer.send("<message from='carol@peer.test' to='bob@b.test'><body>" + "x" * 300000
                      + "</body></message>")
        peer.expect_stream_error("policy-violation")
        self.bob.expect_nothing()
        self.assert_logged(events, "stanza too large")

    def test_iq_without_id_bounces(self):
        """An IQ without id is not routed; the peer gets bad-request back (through s2s)."""
        peer = self.authenticated_peer()
        bounced = []
        self.manager.bounce = lambda stanza, error: bounced.append(error.condition)
        peer.send("<iq from='carol@peer.test/x' to='bob@b.test/desk' type='get'>"
                  "<ping xmlns='urn:xmpp:ping'/></iq>")
        self.assertEqual(bounced, ["bad-request"])
        self.bob.expect_nothing()


class HeaderTests(PeerCase):
    options = {"policy": {"blocked_domains": ["spam.test"]}}

    def test_unknown_host(self):
        """A stream to a domain b.test does not serve: host-unknown."""
        peer = RawPeer(IncomingStream(self.manager))
        peer.open("peer.test", "nowhere.test")
        peer.expect_stream_error("host-unknown")

    def test_wrong_namespace(self):
        """A jabber:client stream on the server port: invalid-namespace."""
        peer = RawPeer(IncomingStream(self.manager))
        peer.send(PEER_HEADER.format(sender="peer.test", target="b.test").replace("'jabber:server'",
                                                                                   "'jabber:client'"))
        peer.expect_stream_error("invalid-namespace")

    def test_blocked_domain(self):
        """A blocked domain (or its subdomain) is refused at the stream header."""
        peer = self.peer("chat.spam.test")
        peer.expect_stream_error("policy-violation")

    def test_plaintext_offers_only_starttls(self):
        """Without TLS, b.test offers STARTTLS (required) and refuses dialback and bidi."""
        peer = self.peer(tls=False)
        features = peer.expect("<features xmlns='http://etherx.jabber.org/streams'>"
                               "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                               "</features>")
        self.assertNotIn(dialback.NS_DIALBACK_FEATURE, features.toXml())
        peer.send(RESULT.format(sender="peer.test", target="b.test", key="k"))
        error = peer.expect(f"<result xmlns='{dialback.NS_DIALBACK}' type='error'/>")
        self.assertIn("policy-violation", error.toXml())
        peer.send("<bidi xmlns='urn:xmpp:bidi'/>")
        peer.expect_stream_error("policy-violation")

    def test_starttls_then_features(self):
        """STARTTLS: proceed, the transport switches to TLS, the restarted stream offers
        SASL EXTERNAL (valid certificate), dialback with errors and bidi."""
        chain = [self.ca.issue(dns=["peer.test"])[0]]
        peer = RawPeer(IncomingStream(self.manager), chain=chain)
        peer.open("peer.test", "b.test")
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        peer.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        peer.expect("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.assertEqual(peer.wire.tls_contexts, ["server-options"])
        peer.restart()
        peer.open("peer.test", "b.test")
        peer.expect(f"<features xmlns='http://etherx.jabber.org/streams'><mechanisms xmlns='{NS_SASL}'>"
                    "<mechanism>EXTERNAL</mechanism></mechanisms>"
                    f"<dialback xmlns='{dialback.NS_DIALBACK_FEATURE}'><errors/></dialback>"
                    "<bidi xmlns='urn:xmpp:features:bidi'/></features>")

    def test_unauthenticated_stream_times_out(self):
        """A peer that never authenticates is cut after connect_timeout (connection-timeout)."""
        peer = self.peer()
        self.server.clock.advance(self.manager.config.connect_timeout + 1)
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        peer.expect_stream_error("connection-timeout")


class SaslExternalTests(PeerCase):
    def external(self, peer, authzid):
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        text = base64.b64encode(authzid.encode()).decode() if authzid else "="
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{text}</auth>")

    def test_external_success_and_restart(self):
        """A valid certificate for the header's 'from': success; after the restart the peer
        may send stanzas from its domain."""
        peer = self.peer()
        self.external(peer, "peer.test")
        peer.expect(f"<success xmlns='{NS_SASL}'/>")
        peer.restart()
        peer.open("peer.test", "b.test")
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        peer.send("<message from='carol@peer.test' to='bob@b.test/desk'><body>hi</body></message>")
        self.bob.expect("<message from='carol@peer.test'><body>hi</body></message>")

    def test_external_with_another_authzid(self):
        """An authorization identity other than the stream's 'from': invalid-authzid."""
        peer = self.peer()
        self.external(peer, "other.test")
        peer.expect(f"<failure xmlns='{NS_SASL}'><invalid-authzid/></failure>")

    def test_external_not_offered_for_an_untrusted_certificate(self):
        """A self-signed certificate: no EXTERNAL in the features, and asking anyway fails."""
        peer = self.peer(chain=[self_signed("peer.test")])
        features = peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        self.assertNotIn("EXTERNAL", features.toXml())
        peer.send(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>=</auth>")
        peer.expect(f"<failure xmlns='{NS_SASL}'><invalid-mechanism/></failure>")


class ReceivingServerTests(PeerCase):
    def test_key_for_a_domain_we_do_not_host(self):
        """A dialback key for a target b.test does not host: an item-not-found dialback error,
        not a stream error (XEP-0220 §2.4); the stream stays usable."""
        peer = self.peer()
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        with capturedLogs() as events:
            peer.send(RESULT.format(sender="peer.test", target="not-here.test", key="k"))
        error = peer.expect(f"<result xmlns='{dialback.NS_DIALBACK}' from='not-here.test' to='peer.test' "
                            "type='error'/>")
        self.assertIn("item-not-found", error.toXml())
        self.assertFalse(peer.wire.disconnecting)
        self.assert_logged(events, "not-here.test is not served here")

    def test_unsolicited_dialback_answer_refused(self):
        """A dialback answer (type='valid') nobody asked for: not-authorized stream error."""
        peer = self.peer()
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        with capturedLogs() as events:
            peer.send("<db:result from='peer.test' to='b.test' type='valid'/>")
        peer.expect_stream_error("not-authorized")
        self.assert_logged(events, "unsolicited dialback result answer refused")

    def test_invalid_key_closes_the_stream(self):
        """The Authoritative Server says the key is invalid: 'invalid', stream closed."""
        self.manager.verify_dialback = lambda *args: defer.succeed(False)
        peer = self.peer(chain=[self_signed("peer.test")])
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        peer.send(RESULT.format(sender="peer.test", target="b.test", key="forged"))
        peer.expect(f"<result xmlns='{dialback.NS_DIALBACK}' type='invalid'/>")
        self.assertTrue(peer.wire.disconnecting)

    def test_invalid_key_for_a_second_pair_keeps_the_first(self):
        """With one pair verified, an invalid key for another gets a forbidden dialback
        error and the stream (and the first pair) stays."""
        answers = iter([True, False])
        self.manager.verify_dialback = lambda *args: defer.succeed(next(answers))
        peer = self.peer(chain=[self_signed("peer.test")])
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        peer.send(RESULT.format(sender="peer.test", target="b.test", key="good"))
        peer.expect(f"<result xmlns='{dialback.NS_DIALBACK}' from='b.test' to='peer.test' type='valid'/>")
        peer.send(RESULT.format(sender="rooms.peer.test", target="b.test", key="forged"))
        error = peer.expect(f"<result xmlns='{dialback.NS_DIALBACK}' to='rooms.peer.test' type='error'/>")
        self.assertIn("forbidden", error.toXml())
        peer.send("<message from='carol@peer.test' to='bob@b.test/desk'><body>still</body></message>")
        self.bob.expect("<message from='carol@peer.test'><body>still</body></message>")

    def test_verification_failure_is_a_dialback_error(self):
        """The Authoritative Server cannot be reached: remote-connection-failed dialback error."""
        peer = self.peer(chain=[self_signed("peer.test")])
        self.manager.connector.targets = lambda domain: defer.succeed([])
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        peer.send(RESULT.format(sender="peer.test", target="b.test", key="k"))
        error = peer.expect(f"<result xmlns='{dialback.NS_DIALBACK}' type='error'/>")
        self.assertIn("remote-connection-failed", error.toXml())


class AuthoritativeServerTests(PeerCase):
    def verify(self, peer, sender, target, stream_id, key):
        peer.send(f"<db:verify from='{sender}' to='{target}' id='{stream_id}'>{key}</db:verify>")

    def test_verify_valid_and_invalid_keys(self):
        """Our own key is 'valid'; any other key, or our key for another stream id, 'invalid'."""
        peer = self.peer(chain=[self_signed("peer.test")])
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        key = dialback.generate_key(self.manager.secret, "peer.test", "b.test", "S1")
        self.verify(peer, "peer.test", "b.test", "S1", key)
        peer.expect(f"<verify xmlns='{dialback.NS_DIALBACK}' from='b.test' to='peer.test' id='S1' type='valid'/>")
        self.verify(peer, "peer.test", "b.test", "S2", key)
        peer.expect(f"<verify xmlns='{dialback.NS_DIALBACK}' id='S2' type='invalid'/>")
        self.verify(peer, "peer.test", "b.test", "S1", "0" * 64)
        peer.expect(f"<verify xmlns='{dialback.NS_DIALBACK}' id='S1' type='invalid'/>")

    def test_verify_for_a_domain_we_do_not_host(self):
        """A verification request about a domain that is not ours: item-not-found error."""
        peer = self.peer(chain=[self_signed("peer.test")])
        peer.expect("<features xmlns='http://etherx.jabber.org/streams'/>")
        self.verify(peer, "peer.test", "other.test", "S1", "abc")
        error = peer.expect(f"<verify xmlns='{dialback.NS_DIALBACK}' from='other.test' id='S1' type='error'/>")
        self.assertIn("item-not-found", error.toXml())


class OutgoingStreamTests(unittest.TestCase):
    """a.test's OutgoingStream against a raw Receiving Server."""

    def setUp(self):
        self.make(require_encryption=False)

    def make(self, **options):
        self.server = s2s_server("a.test", None, tls=False, options={
            "static_routes": {"peer.test": "127.0.0.5:5269"}, **options})
        self.manager = federation(self.server).manager
        self.peers = []

        def connect(candidate, domain, stream):
            self.peers.append(RawPeer(stream, address=candidate.address))
            return defer.succeed(stream)

        self.manager.connector.connect = connect
        add_user(self.server, "alice@a.test", "alice-pw")
        self.alice = FakeClient(self.server)
        self.alice.login("alice", "alice-pw", "phone", to="a.test")

    def start(self):
        """alice writes to peer.test; the raw peer answers the header and gets a dialback key."""
        self.alice.send("<message to='carol@peer.test' id='m1'><body>hi</body></message>")
        peer = self.peers[0]
        peer.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
                  "xmlns:stream='http://etherx.jabber.org/streams' from='peer.test' to='a.test' id='ID1' "
                  "version='1.0'><stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/>"
                  "</dialback></stream:features>")
        key = dialback.generate_key(self.manager.secret, "peer.test", "a.test", "ID1")
        peer.expect(f"<result xmlns='{dialback.NS_DIALBACK}' from='a.test' to='peer.test'>{key}</result>")
        return peer

    def test_valid_result_releases_the_queue(self):
        """After type='valid' the queued message goes out."""
        peer = self.start()
        peer.send("<db:result from='peer.test' to='a.test' type='valid'/>")
        peer.expect("<message from='alice@a.test/phone' to='carol@peer.test'><body>hi</body></message>")

    def test_unsolicited_result_for_another_pair(self):
        """A 'valid' result for a pair we never asked about: invalid-from, message bounced."""
        peer = self.start()
        with capturedLogs() as events:
            peer.send("<db:result from='bank.test' to='a.test' type='valid'/>")
        peer.expect_stream_error("invalid-from")
        self.alice.expect(f"<message type='error' id='m1'><error><remote-server-not-found xmlns='{NS_STANZAS}'/>"
                          "</error></message>")
        self.assertIn("unsolicited dialback result for bank.test -> a.test refused",
                      "\n".join(formatEvent(e) for e in events))

    def test_unsolicited_verify_answer_is_dropped(self):
        """A db:verify answer we did not ask for is dropped (logged); the stream goes on."""
        peer = self.start()
        with capturedLogs() as events:
            peer.send("<db:verify from='peer.test' to='a.test' id='nope' type='valid'/>")
        self.assertFalse(peer.wire.disconnecting)
        self.assertIn("unsolicited dialback verify answer", "\n".join(formatEvent(e) for e in events))

    def test_dialback_error_bounces_with_timeout(self):
        """A dialback error answer: queued stanzas bounce with remote-server-timeout (XEP-0220)."""
        peer = self.start()
        peer.send("<db:result from='peer.test' to='a.test' type='error'><error type='cancel'>"
                  f"<remote-connection-failed xmlns='{NS_STANZAS}'/></error></db:result>")
        self.alice.expect(f"<message type='error' id='m1'><error><remote-server-timeout xmlns='{NS_STANZAS}'/>"
                          "</error></message>")

    def test_verification_request_and_answer(self):
        """verify_dialback sends db:verify on our outgoing stream and fires with the answer."""
        peer = self.start()
        results = []
        self.manager.verify_dialback("a.test", "peer.test", "THEIR-ID", "their-key").addCallback(results.append)
        peer.expect(f"<verify xmlns='{dialback.NS_DIALBACK}' from='a.test' to='peer.test' id='THEIR-ID'>"
                    "their-key</verify>")
        peer.send("<db:verify from='peer.test' to='a.test' id='THEIR-ID' type='valid'/>")
        self.assertEqual(results, [True])

    def test_plaintext_peer_refused_when_encryption_required(self):
        """With require_encryption a peer that offers no STARTTLS is refused."""
        self.make(require_encryption=True)
        self.alice.send("<message to='carol@peer.test' id='m1'><body>hi</body></message>")
        peer = self.peers[0]
        peer.send("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
                  "xmlns:stream='http://etherx.jabber.org/streams' from='peer.test' to='a.test' id='ID1' "
                  "version='1.0'><stream:features/>")
        peer.expect_stream_error("policy-violation")
        self.alice.expect(f"<message type='error' id='m1'><error><remote-server-not-found xmlns='{NS_STANZAS}'/>"
                          "</error></message>")
