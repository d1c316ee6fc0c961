"""Remote-domain policy: parsing ``[s2s.policy]`` with key-path errors, and the allow/refuse
decision from DNS security facts and the certificate verdict."""

import dns.rdata
from twisted.trial import unittest

from summitd.dns.dane import DANE_EE, DANE_TA, PKIX_EE, DaneVerdict
from summitd.dns.policy import PolicyConfig, RemotePolicy, SecurityFacts, decide, parse_policy_config
from summitd.dns.resolver import INDETERMINATE, INSECURE, SECURE, Answer
from summitd.test.dns_fixtures import assert_config_errors

TLSA_RECORD = dns.rdata.from_text("IN", "TLSA", "3 1 1 " + "ab" * 32)
SECURE_TLSA = Answer((TLSA_RECORD,), SECURE)


class ParseTests(unittest.TestCase):

    def assertErrors(self, raw, expected):
        assert_config_errors(self, parse_policy_config, raw, expected)

    def test_defaults(self):
        """An empty table gives the permissive defaults: dialback allowed, nothing required."""
        policy = parse_policy_config({})
        self.assertEqual((policy.default, policy.domains, policy.blocked), (RemotePolicy(), {}, frozenset()))

    def test_domain_overrides_inherit_defaults(self):
        """A per-domain table overrides only the keys it sets, on top of the [s2s.policy] values."""
        policy = parse_policy_config({"allow_dialback": False,
                                      "domains": {"Example.ORG": {"require_dane": True}}})
        self.assertEqual(policy.for_domain("example.org"),
                         RemotePolicy(allow_dialback=False, require_dane=True))
        self.assertEqual(policy.for_domain("other.example"), RemotePolicy(allow_dialback=False))

    def test_blocked_domains_include_subdomains(self):
        """A blocked domain blocks its subdomains too, and nothing else."""
        policy = parse_policy_config({"blocked_domains": ["spam.example"]})
        self.assertEqual([policy.is_blocked(d) for d in ("spam.example", "muc.spam.example", "nospam.example")],
                         [True, True, False])

    def test_errors_by_key_path(self):
        """Every bad key is reported with its full key path."""
        self.assertErrors({"require_dane": "yes", "bogus": 1, "blocked_domains": ["not a domain!"],
                           "domains": {"example.org": {"allow_dialback": 1, "typo": True},
                                       "bad domain!": {}, "x.example": 3}},
                          ["s2s.policy.require_dane", "s2s.policy.bogus", "s2s.policy.blocked_domains",
                           's2s.policy.domains."example.org".allow_dialback',
                           's2s.policy.domains."example.org".typo', 's2s.policy.domains."bad domain!"',
                           's2s.policy.domains."x.example"'])

    def test_not_a_table(self):
        """[s2s.policy] must be a table."""
        self.assertErrors("strict", ["s2s.policy"])


def verdict(usage):
    return DaneVerdict(usable=True, matched=usage is not None, usage=usage,
                       pkix_required=usage == PKIX_EE, name_check_required=usage != DANE_EE)


OUTGOING = dict(srv_security=SECURE, address_security=SECURE)


class DecisionTests(unittest.TestCase):

    def decide(self, policy=None, domain="example.org", **facts):
        return decide(policy or PolicyConfig(), domain, SecurityFacts(**facts))

    def assertDecision(self, decision, allowed, authentication=None, reason=""):
        self.assertEqual((decision.allowed, decision.authentication), (allowed, authentication),
                         decision.reason)
        self.assertIn(reason, decision.reason)

    def test_blocked(self):
        """A blocked domain is refused even with a valid certificate."""
        policy = PolicyConfig(blocked=frozenset({"example.org"}))
        self.assertDecision(self.decide(policy, certificate_valid=True), False, reason="blocked")

    def test_valid_certificate(self):
        """Without DANE, a valid certificate authenticates the peer."""
        self.assertDecision(self.decide(certificate_valid=True, **OUTGOING), True, "certificate")

    def test_dialback_fallback(self):
        """An invalid certificate falls back to dialback when policy allows it."""
        self.assertDecision(self.decide(**OUTGOING), True, "dialback")

    def test_require_valid_certificate(self):
        """require_valid_certificate refuses instead of falling back to dialback."""
        policy = PolicyConfig(default=RemotePolicy(require_valid_certificate=True))
        self.assertDecision(self.decide(policy, **OUTGOING), False, reason="requires a valid")

    def test_dialback_not_allowed(self):
        """With dialback disallowed, an invalid certificate is refused."""
        policy = PolicyConfig(domains={"example.org": RemotePolicy(allow_dialback=False)})
        self.assertDecision(self.decide(policy, **OUTGOING), False, reason="dialback is not allowed")

    def test_dane_mismatch_refused_even_with_valid_certificate(self):
        """Secure TLSA records that do not match refuse the connection (RFC 7673 §4.2)."""
        decision = self.decide(tlsa=SECURE_TLSA, dane=verdict(None), certificate_valid=True, **OUTGOING)
        self.assertDecision(decision, False, reason="does not match")

    def test_dane_ee_match_needs_nothing_else(self):
        """A DANE-EE match authenticates even a certificate that fails PKIX and name checks."""
        self.assertDecision(self.decide(tlsa=SECURE_TLSA, dane=verdict(DANE_EE), **OUTGOING), True, "dane")

    def test_dane_ta_match_needs_the_name(self):
        """A DANE-TA match authenticates only when the certificate names the domain."""
        refused = self.decide(tlsa=SECURE_TLSA, dane=verdict(DANE_TA), **OUTGOING)
        allowed = self.decide(tlsa=SECURE_TLSA, dane=verdict(DANE_TA), certificate_name_ok=True, **OUTGOING)
        self.assertDecision(refused, False, reason="not valid")
        self.assertDecision(allowed, True, "dane")

    def test_pkix_ee_match_needs_pkix(self):
        """A PKIX-EE match still needs a valid certificate."""
        refused = self.decide(tlsa=SECURE_TLSA, dane=verdict(PKIX_EE), certificate_name_ok=True, **OUTGOING)
        allowed = self.decide(tlsa=SECURE_TLSA, dane=verdict(PKIX_EE), certificate_valid=True, **OUTGOING)
        self.assertDecision(refused, False)
        self.assertDecision(allowed, True, "dane")

    def test_insecure_tlsa_is_ignored(self):
        """Insecure TLSA records do not bind: the certificate decides."""
        decision = self.decide(tlsa=Answer((TLSA_RECORD,), INSECURE), dane=verdict(None), certificate_valid=True,
                               **OUTGOING)
        self.assertDecision(decision, True, "certificate")

    def test_indeterminate_address_refused(self):
        """An indeterminate address answer means: do not connect (RFC 7673 §3.2)."""
        decision = self.decide(srv_security=SECURE, address_security=INDETERMINATE, certificate_valid=True)
        self.assertDecision(decision, False, reason="indeterminate")

    def test_require_dnssec(self):
        """require_dnssec refuses an insecure SRV answer or insecure addresses."""
        policy = PolicyConfig(default=RemotePolicy(require_dnssec=True))
        srv = self.decide(policy, srv_security=INSECURE, address_security=SECURE, certificate_valid=True)
        address = self.decide(policy, srv_security=SECURE, address_security=INSECURE, certificate_valid=True)
        self.assertDecision(srv, False, reason="SRV lookup was insecure")
        self.assertDecision(address, False, reason="address lookup was insecure")

    def test_require_dane(self):
        """require_dane refuses a target without secure usable TLSA records."""
        policy = PolicyConfig(default=RemotePolicy(require_dane=True))
        self.assertDecision(self.decide(policy, certificate_valid=True, **OUTGOING), False, reason="requires DANE")

    def test_incoming_stream_not_judged_on_dns(self):
        """Facts left at None (an incoming stream) are not held against the peer."""
        policy = PolicyConfig(default=RemotePolicy(require_dnssec=True, require_dane=True))
        self.assertDecision(self.decide(policy, certificate_valid=True), True, "certificate")
