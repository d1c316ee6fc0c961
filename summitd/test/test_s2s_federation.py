"""Two whole servers federating in memory (summitd.transports.s2s, summitd.plugins.s2s).

Each test builds a.test and b.test with ``make_server`` and the "s2s" extension; their
outgoing connections land on the other's IncomingStream through in-memory wires that
pretend STARTTLS and show each side the other's certificate (``s2s_helpers``), so the
real certificate checks (a test CA), SASL EXTERNAL, dialback (both roles: the key
goes out on one connection and is verified over another), XEP-0288 and the queueing
and bouncing of the routes run exactly as over TCP, on fake clocks.
"""

import hashlib
import os

import dns.rdata
from cryptography.hazmat.primitives import serialization
from twisted.internet import defer
from twisted.logger import capturedLogs, formatEvent
from twisted.trial import unittest

from summitd.dns.policy import SecurityFacts
from summitd.dns.resolver import SECURE, Answer
from summitd.test.s2s_helpers import Network, TestCA, federate, federation, s2s_server, self_signed
from summitd.testing import FakeClient, add_user
from summitd.transports.s2s.connect import Candidate, Target

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
A_ADDRESS, B_ADDRESS = "127.0.0.2", "127.0.0.3"


def logged_text(events):
    return "\n".join(formatEvent(e) for e in events)


class FederationCase(unittest.TestCase):
    """Builds a.test and b.test; ``connect()`` logs alice and bob in."""

    def setUp(self):
        self.network = Network()
        self.ca = TestCA()
        base = self.mktemp()
        os.makedirs(base)
        self.ca_path = self.ca.write_ca(os.path.join(base, "ca.pem"))

    def chain(self, domain, **names):
        return [self.ca.issue(**(names or {"dns": [domain]}))[0]]

    def servers(self, a_options=None, b_options=None, a_chain=None, b_chain=None, tls=True, extensions=()):
        a_opts = {"static_routes": {"b.test": f"{B_ADDRESS}:5269"}, **(a_options or {})}
        b_opts = {"static_routes": {"a.test": f"{A_ADDRESS}:5269"}, **(b_options or {})}
        if not tls:
            a_opts.setdefault("require_encryption", False)
            b_opts.setdefault("require_encryption", False)
        self.a = s2s_server("a.test", self.network, options=a_opts, chain=a_chain, ca_path=self.ca_path,
                            tls=tls, extensions=extensions)
        self.b = s2s_server("b.test", self.network, options=b_opts, chain=b_chain, ca_path=self.ca_path,
                            tls=tls, extensions=extensions)
        federate({A_ADDRESS: self.a, B_ADDRESS: self.b}, self.network)
        add_user(self.a, "alice@a.test", "alice-pw")
        add_user(self.b, "bob@b.test", "bob-pw")
        self.alice = FakeClient(self.a)
        self.alice.login("alice", "alice-pw", "phone", to="a.test")
        self.bob = FakeClient(self.b)
        self.bob.login("bob", "bob-pw", "desk", to="b.test")

    def alice_to_bob(self, body="hello bob"):
        self.alice.send(f"<message to='bob@b.test/desk' type='chat' id='m1'><body>{body}</body></message>")
        self.network.pump()

    def assert_bob_got(self, body="hello bob"):
        self.bob.expect(f"<message from='alice@a.test/phone' to='bob@b.test/desk' type='chat'>"
                        f"<body>{body}</body></message>")

    def assert_round_trip(self):
        self.alice_to_bob()
        self.assert_bob_got()
        self.bob.send("<message to='alice@a.test/phone' type='chat' id='m2'><body>hello alice</body></message>")
        self.network.pump()
        self.alice.expect("<message from='bob@b.test/desk' to='alice@a.test/phone'>"
                          "<body>hello alice</body></message>")

    def manager(self, server):
        return federation(server).manager

    def incoming(self, server):
        return list(self.manager(server).incoming)

    def assert_bounced(self, condition, client=None, text=None):
        error = (client or self.alice).expect(
            f"<message type='error' from='bob@b.test/desk' id='m1'><error><{condition} xmlns='{NS_STANZAS}'/>"
            "</error></message>")
        if text is not None:
            self.assertIn(text, error.toXml())
        return error


class DialbackTests(FederationCase):
    def test_dialback_both_directions_without_tls(self):
        """Without certificates or TLS (allowed by config), each server authenticates to the
        other by dialback: the key sent on one connection is verified with the sender's
        Authoritative Server over the other; messages flow both ways."""
        self.servers(tls=False)
        with capturedLogs() as events:
            self.assert_round_trip()
        text = logged_text(events)
        self.assertIn("authenticated a.test -> b.test by dialback", text)
        self.assertIn("authenticated b.test -> a.test by dialback", text)
        self.assertEqual(len(self.network.pipes), 2)

    def test_dialback_over_tls_with_untrusted_certificates(self):
        """Self-signed certificates do not authenticate, but policy allows dialback over TLS:
        the streams are encrypted and authenticated by dialback, SASL EXTERNAL is not used."""
        self.servers(a_chain=[self_signed("a.test")], b_chain=[self_signed("b.test")])
        with capturedLogs() as events:
            self.assert_round_trip()
        text = logged_text(events)
        self.assertIn("verifying by dialback", text)
        self.assertIn("authenticated a.test -> b.test by dialback", text)
        self.assertNotIn("SASL EXTERNAL", text)
        for pipe in self.network.pipes:
            self.assertEqual(pipe.server_wire.tls_contexts, ["server-options"])

    def test_wrong_secret_makes_the_key_invalid(self):
        """If the Authoritative Server does not recognise the key (here: a.test's secret
        changed after it sent the key), b.test answers 'invalid', closes the stream and a.test
        bounces the queued message instead of sending it."""
        self.servers(tls=False)
        real_verify = self.manager(self.b).verify_dialback

        def verify(local, remote, stream_id, key):
            self.manager(self.a).secret = b"another secret"
            return real_verify(local, remote, stream_id, key)

        self.manager(self.b).verify_dialback = verify
        with capturedLogs() as events:
            self.alice_to_bob()
        self.assert_bounced("internal-server-error")
        self.bob.expect_nothing()
        self.assertIn("dialback key for a.test -> b.test is invalid", logged_text(events))


class CertificateTests(FederationCase):
    def test_sasl_external_with_ca_certificates(self):
        """Certificates from a trusted CA (a DNS-ID for a.test, an XmppAddr for b.test): one
        connection, STARTTLS, SASL EXTERNAL, XEP-0288 carries the answer back."""
        self.servers(a_chain=self.chain("a.test"), b_chain=self.chain("b.test", xmpp=["b.test"]))
        with capturedLogs() as events:
            self.assert_round_trip()
        text = logged_text(events)
        self.assertIn("authenticated a.test -> b.test by certificate (SASL EXTERNAL)", text)
        self.assertIn("authenticated by SASL EXTERNAL (bidirectional)", text)
        self.assertEqual(len(self.network.pipes), 1)

    def test_without_bidi_each_direction_has_its_connection(self):
        """With bidi off, the answer needs a connection of its own, also by SASL EXTERNAL."""
        self.servers(a_options={"bidi": False}, b_options={"bidi": False},
                     a_chain=self.chain("a.test"), b_chain=self.chain("b.test"))
        self.assert_round_trip()
        self.assertEqual(len(self.network.pipes), 2)
        self.assertTrue(all(not s.bidi for s in self.incoming(self.a) + self.incoming(self.b)))

    def test_srv_id_certificate(self):
        """An SRV-ID (_xmpp-server.a.test) alone authenticates a.test (RFC 6125, RFC 4985)."""
        self.servers(a_chain=self.chain("a.test", srv=["_xmpp-server.a.test"]), b_chain=self.chain("b.test"))
        with capturedLogs() as events:
            self.alice_to_bob()
        self.assert_bob_got()
        self.assertIn("a.test -> b.test by certificate (SASL EXTERNAL)", logged_text(events))

    def test_invalid_certificate_refused_when_policy_requires_a_valid_one(self):
        """a.test requires valid certificates of b.test; b.test shows a certificate for another
        name: a.test refuses it with a log line and bounces the message (remote-server-not-found)."""
        self.servers(a_options={"policy": {"require_valid_certificate": True}},
                     a_chain=self.chain("a.test"), b_chain=self.chain("other.test"))
        with capturedLogs() as events:
            self.alice_to_bob()
        self.assert_bounced("remote-server-not-found", text="policy requires a valid one")
        self.bob.expect_nothing()
        self.assertIn("refusing b.test: certificate is not valid for the domain", logged_text(events))

    def test_incoming_peer_refused_when_policy_requires_a_valid_certificate(self):
        """b.test requires a valid certificate of a.test: a.test's self-signed one gets no
        SASL EXTERNAL and its dialback request a not-authorized dialback error, so a.test
        bounces (remote-server-timeout: a dialback error, XEP-0220 §2.1.1)."""
        self.servers(b_options={"policy": {"require_valid_certificate": True}},
                     a_chain=[self_signed("a.test")], b_chain=self.chain("b.test"))
        with capturedLogs() as events:
            self.alice_to_bob()
        self.assert_bounced("remote-server-timeout")
        self.assertIn("dialback a.test -> b.test refused", logged_text(events))

    def test_expired_certificate_falls_back_to_dialback(self):
        """An expired certificate does not authenticate; dialback (allowed) still works."""
        self.servers(a_chain=[self.ca.issue(dns=["a.test"], expired=True)[0]], b_chain=self.chain("b.test"))
        with capturedLogs() as events:
            self.alice_to_bob()
        self.assert_bob_got()
        text = logged_text(events)
        self.assertIn("certificate has expired", text)
        self.assertIn("authenticated a.test -> b.test by dialback", text)


class RouteTests(FederationCase):
    def test_one_connection_per_domain_pair_and_order_kept(self):
        """Three messages sent while connecting share one connection and arrive in order."""
        self.servers(a_chain=self.chain("a.test"), b_chain=self.chain("b.test"))
        for n in range(3):
            self.alice.send(f"<message to='bob@b.test/desk' type='chat'><body>n{n}</body></message>")
        self.network.pump()
        for n in range(3):
            self.bob.expect(f"<message from='alice@a.test/phone'><body>n{n}</body></message>")
        self.assertEqual(len(self.network.pipes), 1)

    def test_connection_refused_bounces(self):
        """Nobody listens at b.test's address: the message bounces remote-server-not-found."""
        self.servers(a_options={"static_routes": {"b.test": "127.0.0.9:5269"}}, tls=False)
        self.alice_to_bob()
        self.assert_bounced("remote-server-not-found")

    def test_queued_stanzas_bounce_after_connect_timeout(self):
        """A connection that never completes: after connect_timeout the queued message
        bounces with remote-server-timeout, and the attempt is abandoned."""
        self.servers(a_options={"connect_timeout": 30}, tls=False)
        cancelled = []
        self.manager(self.a).connector.connect = lambda *args: defer.Deferred(cancelled.append)
        self.alice_to_bob()
        self.alice.expect_nothing()
        self.a.clock.advance(29)
        self.alice.expect_nothing()
        with capturedLogs() as events:
            self.a.clock.advance(2)
        self.assert_bounced("remote-server-timeout")
        self.assertEqual(len(cancelled), 1)
        self.assertIn("bouncing 1 stanza(s) with remote-server-timeout", logged_text(events))

    def test_queue_limit_bounces_the_excess(self):
        """Beyond max_queue waiting stanzas, the next one bounces at once (resource-constraint)."""
        self.servers(a_options={"max_queue": 1}, tls=False)
        self.manager(self.a).connector.connect = lambda *args: defer.Deferred()
        self.alice.send("<message to='bob@b.test' id='q1'><body>1</body></message>")
        self.alice.send("<message to='bob@b.test' id='q2'><body>2</body></message>")
        self.alice.expect(f"<message type='error' id='q2'><error><resource-constraint xmlns='{NS_STANZAS}'/>"
                          "</error></message>")

    def test_idle_streams_close_and_reconnect(self):
        """After idle_timeout without traffic both ends close; the next message reconnects."""
        self.servers(a_options={"idle_timeout": 100}, b_options={"idle_timeout": 100},
                     a_chain=self.chain("a.test"), b_chain=self.chain("b.test"))
        self.alice_to_bob()
        self.assert_bob_got()
        self.a.clock.advance(101)
        self.network.pump()
        self.assertTrue(self.network.pipes[0].closed)
        self.assertEqual(self.manager(self.a).routes, {})
        self.alice_to_bob("again")
        self.assert_bob_got("again")
        self.assertEqual(len(self.network.pipes), 2)

    def test_stream_reset_when_the_peer_certificate_expires(self):
        """RFC 6120 §13.7.2.3: when the peer's certificate expires the stream is closed with
        'reset'; the next message opens a new connection."""
        never_idle = {"idle_timeout": 10 ** 8}
        self.servers(a_options=never_idle, b_options=never_idle, a_chain=self.chain("a.test"),
                     b_chain=[self.ca.issue(dns=["b.test"], days=1)[0]])
        self.alice_to_bob()
        self.assert_bob_got()
        self.a.clock.advance(86400 + 5)
        with capturedLogs() as events:
            self.network.pump()
        self.assertTrue(self.network.pipes[0].closed)
        self.assertIn("the peer sent stream error reset", logged_text(events))

    def test_blocked_domain_bounces_not_allowed(self):
        """A blocked remote domain is not contacted; the sender gets not-allowed."""
        self.servers(a_options={"policy": {"blocked_domains": ["b.test"]}}, tls=False)
        self.alice_to_bob()
        self.assert_bounced("not-allowed")
        self.assertEqual(self.network.pipes, [])

    def test_remote_errors_come_back(self):
        """A message to an unknown account on b.test comes back as an error through s2s."""
        self.servers(a_chain=self.chain("a.test"), b_chain=self.chain("b.test"))
        self.alice.send("<message to='nobody@b.test' type='chat' id='x1'><body>?</body></message>")
        self.network.pump()
        self.alice.expect(f"<message type='error' from='nobody@b.test' id='x1'>"
                          f"<error><service-unavailable xmlns='{NS_STANZAS}'/></error></message>")


class DaneTests(FederationCase):
    """The DNS facts come from a fake connector: a DNSSEC-secure SRV target with TLSA records."""

    def with_tlsa(self, tlsa_text):
        manager = self.manager(self.a)
        records = (dns.rdata.from_text("IN", "TLSA", tlsa_text),)
        facts = SecurityFacts(srv_security=SECURE, address_security=SECURE,
                              tlsa=Answer(records, SECURE, "_5269._tcp.xmpp.b.test."))
        candidate = Candidate(B_ADDRESS, 5269, False, "xmpp.b.test", True, facts)
        manager.connector.targets = lambda domain: defer.succeed([Target("xmpp.b.test", 5269, False, True)])
        manager.connector.candidates = lambda target: defer.succeed([candidate])

    def spki_sha256(self, cert):
        spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(spki).hexdigest()

    def test_matching_dane_ee_connects_even_with_a_self_signed_certificate(self):
        """DANE-EE (3 1 1) matching b.test's self-signed certificate authenticates it."""
        b_cert = self_signed("b.test")
        self.servers(a_options={"policy": {"require_valid_certificate": True}},
                     a_chain=self.chain("a.test"), b_chain=[b_cert])
        self.with_tlsa(f"3 1 1 {self.spki_sha256(b_cert)}")
        self.alice_to_bob()
        self.assert_bob_got()

    def test_tlsa_mismatch_is_refused_even_with_a_valid_certificate(self):
        """Secure TLSA records that do not match: refused with a clear log line although the
        certificate is valid by the CA, and the message bounces."""
        self.servers(a_chain=self.chain("a.test"), b_chain=self.chain("b.test"))
        self.with_tlsa("3 1 1 " + "00" * 32)
        with capturedLogs() as events:
            self.alice_to_bob()
        self.assert_bounced("remote-server-not-found", text="TLSA")
        self.bob.expect_nothing()
        self.assertIn("refusing b.test: certificate does not match the DNSSEC-secure TLSA records",
                      logged_text(events))

    def test_target_host_name_accepted_with_secure_srv(self):
        """With a DNSSEC-secure SRV answer, a certificate naming the target host (not the
        domain) is valid (RFC 7673 §4.1) — here with DANE-TA pointing at the test CA."""
        self.servers(a_options={"policy": {"require_valid_certificate": True}},
                     a_chain=self.chain("a.test"), b_chain=self.chain("xmpp.b.test") + [self.ca.cert])
        self.with_tlsa(f"2 1 1 {self.spki_sha256(self.ca.cert)}")
        self.alice_to_bob()
        self.assert_bob_got()
