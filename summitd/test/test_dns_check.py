"""``summitctl check dns DOMAIN``'s report: lookups, their security, TLSA records, whether
the certificate presented on loopback matches, and the policy's decision."""

from types import SimpleNamespace

from twisted.internet import defer, reactor

from summitd.dns.check import check_dns_lines
from summitd.dns.config import DNSConfig
from summitd.dns.policy import PolicyConfig
from summitd.test.dns_fixtures import DNSTestCase
from summitd.test.dns_fixtures.peers import TLSPeer
from summitd.test.dns_fixtures.zones import check_zone, world


class CheckDNSTests(DNSTestCase):

    def start_peer(self, cert, key, direct_tls):
        peer = TLSPeer(reactor, cert, key, direct_tls)
        port = peer.start()
        self.addCleanup(peer.stop)
        return port

    def config(self, server, anchor=None):
        return DNSConfig(servers=(("127.0.0.1", server.port),), timeout=2.0,
                         trust_anchor=self.anchor_file(anchor))

    @defer.inlineCallbacks
    def test_report_with_certificates(self):
        """Secure SRV, addresses and TLSA; the direct TLS peer's certificate matches (allowed),
        the STARTTLS peer presents another key (refused whatever its PKIX validity)."""
        w = world()
        direct = self.start_peer(w.cert_good, w.key_good, direct_tls=True)
        starttls = self.start_peer(w.cert_other, w.key_other, direct_tls=False)
        zone, keys = check_zone(direct, starttls)
        server = self.start_server(zones=[zone])
        config = self.config(server, keys.ds_text() + "\n")
        lines = yield check_dns_lines(config, "check.test", reactor)
        self.assertEqual(lines[0], f"DNS for check.test: mode validate, resolvers 127.0.0.1:{server.port}, "
                                   f"trust anchor {config.trust_anchor}")
        expected = [
            f"SRV _xmpps-server._tcp.check.test: secure: 0 0 {direct} tls.check.test.",
            f"SRV _xmpp-server._tcp.check.test: secure: 10 0 {starttls} tls.check.test.",
            f"target 1: tls.check.test port {direct} (direct TLS), SRV secure",
            "  addresses: 127.0.0.1 (secure)",
            "  certificate: matches TLSA (DANE-EE)",
            "  policy: allow: certificate matches TLSA (DANE-EE)",
            f"target 2: tls.check.test port {starttls} (STARTTLS), SRV secure",
            "  certificate: does NOT match the TLSA records",
            "  policy: refuse: certificate does not match the DNSSEC-secure TLSA records (DANE)",
        ]
        for line in expected:
            self.assertIn(line, lines)
        self.assertEqual(sum(line.startswith(f"  TLSA _{direct}._tcp.tls.check.test: secure: 3 1 1 ")
                             for line in lines), 1)

    @defer.inlineCallbacks
    def test_no_service(self):
        """Both SRV services "." : the report says there is no XMPP service."""
        server = self.start_server()
        lines = yield check_dns_lines(self.config(server), "dot.example.test", reactor)
        self.assertEqual(lines[-1], "no XMPP service: the SRV records say it is decidedly not available")

    @defer.inlineCallbacks
    def test_bogus_srv(self):
        """A bogus SRV answer is reported as a failed lookup and a refusal."""
        server = self.start_server()
        lines = yield check_dns_lines(self.config(server), "tampered.example.test", reactor)
        self.assertIn("SRV lookup failed", lines[-2])
        self.assertEqual(lines[-1], "policy: refuse: no connection attempt (RFC 7673 §3.1)")

    @defer.inlineCallbacks
    def test_insecure_target_and_policy_from_server_config(self):
        """An unsigned zone: no TLSA lookup; the server config's policy (require_dnssec for the
        domain, via config.s2s.policy) refuses it, and blocked domains are reported."""
        server = self.start_server()
        policy = PolicyConfig(blocked=frozenset({"unsigned.example.test"}))
        config = SimpleNamespace(dns=self.config(server), s2s=SimpleNamespace(policy=policy))
        lines = yield check_dns_lines(config, "unsigned.example.test", reactor)
        self.assertIn("policy: unsigned.example.test is blocked", lines)
        self.assertIn("  TLSA: not looked up (RFC 7673: needs a secure SRV answer and secure addresses)", lines)
        self.assertIn("  addresses: 127.0.0.8 (insecure)", lines)
        self.assertEqual(lines[-1], "  policy: refuse: unsigned.example.test is blocked by policy")
