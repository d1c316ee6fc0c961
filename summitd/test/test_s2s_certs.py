"""RFC 6125 checks, the trust store and dialback keys (summitd.transports.s2s.certs, .dialback)."""

import os

from twisted.trial import unittest

from summitd.test.s2s_helpers import TestCA, self_signed
from summitd.transports.s2s import dialback
from summitd.transports.s2s.certs import (
    TrustStore, check_chain, decode_utf8_string, encode_utf8_string, names_domain, xmpp_addrs,
)


class NameTests(unittest.TestCase):
    """Which reference identifiers a server certificate satisfies (RFC 6125, RFC 6120 §13.7)."""

    def setUp(self):
        self.ca = TestCA()

    def cert(self, **names):
        return self.ca.issue(**names)[0]

    def test_dns_id(self):
        """A dNSName equal to the domain (case-insensitively) names it; other names do not."""
        cert = self.cert(dns=["Example.TEST"])
        self.assertTrue(names_domain(cert, "example.test"))
        self.assertFalse(names_domain(cert, "other.test"))

    def test_wildcard_covers_one_label(self):
        """*.example.test names chat.example.test but neither example.test nor a.b.example.test."""
        cert = self.cert(dns=["*.example.test"])
        self.assertTrue(names_domain(cert, "chat.example.test"))
        self.assertFalse(names_domain(cert, "example.test"))
        self.assertFalse(names_domain(cert, "a.b.example.test"))

    def test_srv_id(self):
        """An SRV-ID for _xmpp-server names the domain; one for _xmpp-client does not."""
        self.assertTrue(names_domain(self.cert(srv=["_xmpp-server.example.test"]), "example.test"))
        self.assertFalse(names_domain(self.cert(srv=["_xmpp-client.example.test"]), "example.test"))

    def test_srv_id_not_used_for_target_hosts(self):
        """Extra names (an SRV target host) are matched as DNS-IDs only."""
        cert = self.cert(srv=["_xmpp-server.xmpp.example.test"])
        self.assertFalse(names_domain(cert, "xmpp.example.test", srv=False))

    def test_xmpp_addr(self):
        """An id-on-xmppAddr otherName names the domain (RFC 6120 §13.7.1.4), IDNs included."""
        cert = self.cert(xmpp=["example.test", "bücher.test"])
        self.assertEqual(xmpp_addrs(cert), ["example.test", "bücher.test"])
        self.assertTrue(names_domain(cert, "example.test"))
        self.assertTrue(names_domain(cert, "bücher.test"))
        self.assertFalse(names_domain(cert, "other.test"))

    def test_utf8_string_round_trip(self):
        """DER UTF8String encoding and decoding, short and long form; junk is refused."""
        for text in ("a.test", "x" * 300):
            self.assertEqual(decode_utf8_string(encode_utf8_string(text)), text)
        self.assertIsNone(decode_utf8_string(b"\x16\x03abc"))
        self.assertIsNone(decode_utf8_string(b"\x0c\x05abc"))


class TrustTests(unittest.TestCase):
    def setUp(self):
        self.ca = TestCA()
        base = self.mktemp()
        os.makedirs(base)
        self.trust = TrustStore(self.ca.write_ca(os.path.join(base, "ca.pem")))

    def test_valid_chain_and_name(self):
        """A leaf issued by the configured CA for the domain is valid."""
        result = check_chain([self.ca.issue(dns=["a.test"])[0]], "a.test", self.trust)
        self.assertTrue(result.valid)
        self.assertEqual(len(result.chain_der), 1)

    def test_trusted_but_wrong_name(self):
        """A trusted certificate for another name is not valid, and says why."""
        result = check_chain([self.ca.issue(dns=["b.test"])[0]], "a.test", self.trust)
        self.assertFalse(result.valid)
        self.assertIsNone(result.chain_error)
        self.assertEqual(result.problem("a.test"), "the certificate does not name a.test")

    def test_untrusted_and_expired(self):
        """Self-signed and expired certificates are not trusted, whatever they name."""
        for cert, reason in ((self_signed("a.test"), "self-signed"),
                             (self.ca.issue(dns=["a.test"], expired=True)[0], "expired")):
            result = check_chain([cert], "a.test", self.trust)
            self.assertFalse(result.valid)
            self.assertTrue(result.name_ok)
            self.assertIn(reason, result.chain_error)

    def test_no_certificate(self):
        """Nothing presented: not valid, not presented."""
        result = check_chain([], "a.test", self.trust)
        self.assertFalse(result.presented)
        self.assertFalse(result.valid)

    def test_system_store_does_not_trust_the_test_ca(self):
        """The default trust store is the system's: the test CA is not in it."""
        result = check_chain([self.ca.issue(dns=["a.test"])[0]], "a.test", TrustStore())
        self.assertFalse(result.valid)
        self.assertIn("the system trust store", result.chain_error)


class DialbackKeyTests(unittest.TestCase):
    def test_xep_0220_example(self):
        """The key of XEP-0220 §2.1.1 (XEP-0185 generation) from its secret and stream id."""
        key = dialback.generate_key(b"s3cr3tf0rd14lb4ck", "montague.example", "capulet.example", "D60000229F")
        self.assertEqual(key, "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3")

    def test_authoritative_example(self):
        """The verification of XEP-0220 §2.2.2: valid for its inputs, invalid for any change."""
        secret = b"d14lb4ck43v3r"
        key = "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"
        self.assertTrue(dialback.key_is_valid(secret, "capulet.example", "montague.example", "417GAF25", key))
        self.assertFalse(dialback.key_is_valid(secret, "capulet.example", "montague.example", "417GAF26", key))
        self.assertFalse(dialback.key_is_valid(b"other", "capulet.example", "montague.example", "417GAF25", key))

    def test_error_element(self):
        """A dialback error carries the stanza error condition and its type."""
        text = dialback.dialback_xml("result", "b.test", "a.test", "error", error="item-not-found")
        self.assertEqual(text, "<db:result from='b.test' to='a.test' type='error'><error type='cancel'>"
                               "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></db:result>")
