"""Federation through DNSSEC-validated SRV lookups and DANE, end to end.

A signed zone ``dane.test.`` (its DS is the configured trust anchor) is served on
127.0.0.1 by the DNS tests' server (``dns_fixtures``); summitd.test (a real summitd
on 127.0.0.2, ``[dns] mode = "validate"``) federates with a second summitd on
127.0.0.3 that hosts five domains, found only through SRV records:

- ``good.dane.test``: secure SRV, secure address, TLSA 3 1 1 matching -> connects;
- ``mismatch.dane.test``: the same, but the TLSA record matches another key -> refused
  (with a log line naming DANE) although the certificate is valid by the CA;
- ``tampered.dane.test``: the SRV signature is broken (bogus) -> refused;
- ``open.plain.dane.test``: in an unsigned child zone (insecure) -> connects on the CA;
- ``strict.plain.dane.test``: the same, but policy requires DNSSEC for it -> refused.

alice writes to nobody@ each domain: a reached peer answers service-unavailable itself,
a refused one is answered remote-server-not-found by summitd.test (bounced, not dropped).
"""

import hashlib
import os

from cryptography.hazmat.primitives import serialization
from twisted.internet import defer, reactor
from twisted.trial import unittest

from summitd.test.dns_fixtures.server import DNSTestServer
from summitd.test.dns_fixtures.zones import SOA, ZoneKeys, parse_zone, sign_nsec, tamper
from summitd.test.s2s_helpers import TestCA
from summitd.test.s2s_process import SummitdNode, run_probe_scenario, make_pki

PASSWORD = "alice resolves securely"
PEER_DOMAINS = ["good.dane.test", "mismatch.dane.test", "tampered.dane.test", "open.plain.dane.test",
                "strict.plain.dane.test"]


def spki_sha256(cert):
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def zones(port, peer_cert):
    """dane.test. (signed) and plain.dane.test. (unsigned child); the peer listens on ``port``."""
    keys = ZoneKeys("dane.test.")
    good = spki_sha256(peer_cert)
    parent = parse_zone("dane.test.", SOA + f"""
ns 3600 IN A 127.0.0.1
xmpp 300 IN A 127.0.0.3
other 300 IN A 127.0.0.3
_{port}._tcp.xmpp 300 IN TLSA 3 1 1 {good}
_{port}._tcp.other 300 IN TLSA 3 1 1 {"00" * 32}
_xmpp-server._tcp.good 300 IN SRV 0 0 {port} xmpp.dane.test.
_xmpp-server._tcp.mismatch 300 IN SRV 0 0 {port} other.dane.test.
_xmpp-server._tcp.tampered 300 IN SRV 0 0 {port} xmpp.dane.test.
plain 3600 IN NS ns.dane.test.
""")
    sign_nsec(parent, keys)
    tamper(parent, "_xmpp-server._tcp.tampered.dane.test.", "SRV")
    plain = parse_zone("plain.dane.test.", SOA + f"""
xmpp 300 IN A 127.0.0.3
_xmpp-server._tcp.open 300 IN SRV 0 0 {port} xmpp.plain.dane.test.
_xmpp-server._tcp.strict 300 IN SRV 0 0 {port} xmpp.plain.dane.test.
""")
    return [parent, plain], keys


class DNSFederationTests(unittest.TestCase):
    timeout = 120

    @defer.inlineCallbacks
    def test_dnssec_and_dane_decide_who_is_reached(self):
        """Secure + matching TLSA connects; TLSA mismatch and bogus SRV are refused with log
        lines and bounced; an insecure zone connects unless policy requires DNSSEC."""
        base, ca_path, certs = make_pki(self, ["summitd.test"])
        ca = TestCA()
        peer_cert, peer_key = ca.issue(dns=PEER_DOMAINS)
        peer_paths = os.path.join(base, "peer.crt"), os.path.join(base, "peer.key")
        TestCA.write_pair(peer_cert, peer_key, *peer_paths)
        ca_path = ca.write_ca(os.path.join(base, "peer-ca.pem"))

        peer = SummitdNode(base, PEER_DOMAINS[0], "127.0.0.3", peer_paths, ca_path,
                           extra_domains=PEER_DOMAINS[1:])
        served, keys = zones(peer.s2s_port, peer_cert)
        dns_server = DNSTestServer(reactor, served)
        dns_port = dns_server.start()
        self.addCleanup(dns_server.stop)
        anchor = os.path.join(base, "anchor")
        with open(anchor, "w") as f:
            f.write(keys.ds_text() + "\n")
        ours = SummitdNode(base, "summitd.test", "127.0.0.2", certs["summitd.test"], ca_path, f"""
[extensions.s2s.policy.domains."strict.plain.dane.test"]
require_dnssec = true

[dns]
resolvers = ["127.0.0.1:{dns_port}"]
mode = "validate"
trust_anchor = "{anchor}"
timeout = 3
""")
        ours.configure([])
        peer.configure([ours])
        yield ours.add_user(self, "alice", PASSWORD)
        yield ours.start(self)
        yield peer.start(self)
        result = yield run_probe_scenario(self, ours, PASSWORD, [f"nobody@{d}" for d in PEER_DOMAINS])
        yield ours.stop()
        yield peer.stop()
        log = ours.read_log()
        self.assertEqual(result["probes"], {
            "nobody@good.dane.test": "service-unavailable",
            "nobody@mismatch.dane.test": "remote-server-not-found",
            "nobody@tampered.dane.test": "remote-server-not-found",
            "nobody@open.plain.dane.test": "service-unavailable",
            "nobody@strict.plain.dane.test": "remote-server-not-found",
        }, log[-8000:])
        self.assertIn("refusing mismatch.dane.test: certificate does not match the DNSSEC-secure TLSA records",
                      log)
        self.assertIn("SRV lookup for tampered.dane.test: DNSSEC validation failed (bogus answer)", log)
        self.assertIn("policy requires DNSSEC", log)
        self.assertNotIn("Traceback", log)
