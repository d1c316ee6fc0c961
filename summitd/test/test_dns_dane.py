"""DANE (RFC 6698, RFC 7671, RFC 7673): TLSA matching rules, and TLSA lookups at SRV targets
through the loopback DNS server."""

import functools
import hashlib

import dns.rdata
from twisted.internet import defer
from twisted.trial import unittest

from summitd.dns.dane import (
    DANE_EE, DANE_TA, PKIX_EE, PKIX_TA, dane_applies, dane_verdict, lookup_target_tlsa, lookup_tlsa,
    match_tlsa,
)
from summitd.dns.resolver import SECURE
from summitd.dns.srv import Addresses, Target
from summitd.test.dns_fixtures import DNSTestCase
from summitd.test.dns_fixtures.zones import der, make_certificate, spki_der, world


def tlsa(usage, selector, mtype, cert):
    data = der(cert) if selector == 0 else spki_der(cert)
    data = {0: data, 1: hashlib.sha256(data).digest(), 2: hashlib.sha512(data).digest()}[mtype]
    return dns.rdata.from_text("IN", "TLSA", f"{usage} {selector} {mtype} {data.hex()}")


@functools.lru_cache(maxsize=1)
def certificates():
    """A CA, a certificate it issued, another CA, and a self-signed certificate."""
    ca = make_certificate("Test CA", ca=True)
    issued, _ = make_certificate("xmpp.example.test", issuer=ca)
    other_ca = make_certificate("Other CA", ca=True)
    self_signed, _ = make_certificate("xmpp.example.test")
    return ca, issued, other_ca, self_signed


class MatchingTests(unittest.TestCase):

    def setUp(self):
        self.ca, self.issued, self.other_ca, self.self_signed = certificates()

    def test_dane_ee_every_selector_and_matching_type(self):
        """DANE-EE matches the end-entity by certificate or SPKI, exactly or by SHA-256/512."""
        chain = [der(self.self_signed)]
        for selector in (0, 1):
            for mtype in (0, 1, 2):
                verdict = dane_verdict([tlsa(DANE_EE, selector, mtype, self.self_signed)], chain)
                self.assertEqual((verdict.matched, verdict.usage, verdict.name_check_required,
                                  verdict.pkix_required), (True, DANE_EE, False, False), (selector, mtype))

    def test_mismatch(self):
        """A record for another certificate does not match."""
        self.assertFalse(match_tlsa([tlsa(DANE_EE, 1, 1, self.issued)], [der(self.self_signed)]))

    def test_dane_ta_matches_issuer_in_chain(self):
        """DANE-TA matches a CA certificate sent in the chain that really issued the
        end-entity; the name must still be checked."""
        chain = [der(self.issued), der(self.ca[0])]
        verdict = dane_verdict([tlsa(DANE_TA, 0, 1, self.ca[0])], chain)
        self.assertEqual((verdict.matched, verdict.usage, verdict.name_check_required), (True, DANE_TA, True))

    def test_dane_ta_needs_a_real_issuance_path(self):
        """A matching CA certificate appended to a chain it did not sign does not count."""
        chain = [der(self.issued), der(self.other_ca[0])]
        self.assertFalse(match_tlsa([tlsa(DANE_TA, 1, 1, self.other_ca[0])], chain))

    def test_dane_ta_does_not_match_the_end_entity(self):
        """DANE-TA names a trust anchor, not the server's own certificate."""
        self.assertFalse(match_tlsa([tlsa(DANE_TA, 1, 1, self.self_signed)], [der(self.self_signed)]))

    def test_pkix_usages_require_pkix_validation(self):
        """PKIX-EE and PKIX-TA matches say that normal PKIX validation is still required."""
        chain = [der(self.issued), der(self.ca[0])]
        ee = dane_verdict([tlsa(PKIX_EE, 1, 1, self.issued)], chain)
        ta = dane_verdict([tlsa(PKIX_TA, 1, 1, self.ca[0])], chain)
        self.assertEqual([(v.matched, v.usage, v.pkix_required) for v in (ee, ta)],
                         [(True, PKIX_EE, True), (True, PKIX_TA, True)])

    def test_strongest_match_wins(self):
        """With several matching records, DANE-EE (asking nothing more) is reported."""
        chain = [der(self.issued), der(self.ca[0])]
        records = [tlsa(PKIX_EE, 1, 1, self.issued), tlsa(DANE_EE, 0, 2, self.issued)]
        self.assertEqual(dane_verdict(records, chain).usage, DANE_EE)

    def test_unusable_records_are_ignored(self):
        """Unknown usages, selectors or matching types make no usable record set."""
        records = [dns.rdata.from_text("IN", "TLSA", text) for text in ("4 1 1 " + "00" * 32, "3 2 1 " + "00" * 32, "3 1 3 00")]
        verdict = dane_verdict(records, [der(self.self_signed)])
        self.assertEqual((verdict.usable, verdict.matched), (False, False))

    def test_garbage_chain_does_not_match(self):
        """Undecodable certificates and empty chains never match."""
        record = [tlsa(DANE_EE, 0, 0, self.self_signed)]
        self.assertEqual((match_tlsa(record, [b"not a certificate"]), match_tlsa(record, [])), (False, False))


class LookupTests(DNSTestCase):

    @defer.inlineCallbacks
    def test_secure_tlsa_matches_certificate(self):
        """Secure SRV target, secure addresses, secure TLSA matching the test certificate."""
        _, resolver = self.world_resolver()
        target = Target("xmpp.example.test", 5269, False, True)
        answer = yield lookup_target_tlsa(resolver, target, Addresses(target.host, ("127.0.0.1",), SECURE))
        self.assertTrue(dane_applies(answer))
        self.assertTrue(match_tlsa(answer.records, [der(world().cert_good)]))
        self.assertFalse(match_tlsa(answer.records, [der(world().cert_other)]))

    @defer.inlineCallbacks
    def test_tlsa_mismatch(self):
        """backup.example.test publishes a TLSA record for another key: no match."""
        _, resolver = self.world_resolver()
        answer = yield lookup_tlsa(resolver, "backup.example.test", 5269)
        self.assertEqual(answer.security, SECURE)
        self.assertFalse(match_tlsa(answer.records, [der(world().cert_good)]))

    @defer.inlineCallbacks
    def test_no_tlsa_query_for_insecure_target(self):
        """RFC 7673: an insecure SRV target gets no TLSA query at all."""
        server, resolver = self.world_resolver()
        target = Target("xmpp.unsigned.example.test", 5269, False, False)
        answer = yield lookup_target_tlsa(resolver, target, Addresses(target.host, ("127.0.0.8",), SECURE))
        self.assertIsNone(answer)
        self.assertEqual(server.queries, [])

    @defer.inlineCallbacks
    def test_insecure_tlsa_does_not_apply(self):
        """TLSA records from an unsigned zone are insecure and do not bind the connection."""
        _, resolver = self.world_resolver()
        answer = yield lookup_tlsa(resolver, "xmpp.unsigned.example.test", 5269)
        self.assertEqual((len(answer.records), dane_applies(answer)), (1, False))
