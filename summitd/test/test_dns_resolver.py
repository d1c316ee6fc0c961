"""SecureResolver against a real DNS server on loopback serving zones signed with dnspython.

Covers the chain of trust (anchor DS or DNSKEY, signed children, NSEC and NSEC3),
bogus answers (tampered or stripped signatures, a wrong anchor), insecure delegations
proven by NSEC and by NSEC3 opt-out, names outside every anchor, authenticated denial,
TCP fallback, timeouts, and the resolver-ad mode.
"""

from twisted.internet import defer, reactor

from summitd.dns.resolver import (
    INDETERMINATE, INSECURE, SECURE, DNSLookupError, DNSSECBogus, DNSTimeout, ad_trusted,
)
from summitd.test.dns_fixtures import DNSTestCase
from summitd.test.dns_fixtures.zones import n3_missing_name, world


class ValidationTests(DNSTestCase):

    @defer.inlineCallbacks
    def assertSecurity(self, name, rdtype, security, records=None, **options):
        """Query ``name``/``rdtype`` on a fresh server; check the security and record texts."""
        _, resolver = self.world_resolver(**options)
        answer = yield resolver.query(name, rdtype)
        self.assertEqual(answer.security, security, f"{name} {rdtype}")
        if records is not None:
            self.assertEqual(sorted(r.to_text() for r in answer.records), sorted(records))
        return answer

    def test_secure_srv(self):
        """SRV records of the anchored zone validate: secure, with their data."""
        return self.assertSecurity("_xmpp-server._tcp.example.test", "SRV", SECURE,
                                   ["10 0 5269 xmpp.example.test.", "20 0 5269 backup.example.test."])

    @defer.inlineCallbacks
    def test_cname_chain_secure(self):
        """A signed CNAME to a signed A record: secure, named after the CNAME's target."""
        answer = yield self.assertSecurity("alias.example.test", "A", SECURE, ["127.0.0.1"])
        self.assertEqual(answer.name, "xmpp.example.test.")

    @defer.inlineCallbacks
    def test_wildcard_answer_with_proof(self):
        """An answer expanded from a signed wildcard, with the NSEC proving that the name
        itself does not exist: secure."""
        answer = yield self.assertSecurity("anything.wild.example.test", "A", SECURE, ["127.0.0.20"])
        self.assertEqual(answer.name, "anything.wild.example.test.")

    def test_wildcard_answer_without_proof(self):
        """The same wildcard answer without its NSEC proof is not secure."""
        return self.assertSecurity("anything.wild.example.test", "A", INDETERMINATE, ["127.0.0.20"],
                                   strip_denial=True)

    def test_dname_with_synthesized_cname(self):
        """A signed DNAME vouches for the unsigned CNAME a resolver synthesizes from it."""
        return self.assertSecurity("_xmpp-server._tcp.dname.example.test", "SRV", SECURE,
                                   ["0 0 5269 xmpp.signed.example.test."])

    @defer.inlineCallbacks
    def test_nxdomain_proven_by_nsec(self):
        """A missing name with NSEC proofs (name and wildcard covered): a secure NXDOMAIN."""
        answer = yield self.assertSecurity("nope.example.test", "A", SECURE, [])
        self.assertTrue(answer.nxdomain)

    def test_nodata_proven_by_nsec(self):
        """A missing type at an existing name, proven by the name's NSEC bitmap: secure."""
        return self.assertSecurity("xmpp.example.test", "TXT", SECURE, [])

    def test_missing_denial_is_indeterminate(self):
        """An NXDOMAIN from a signed zone without its NSEC proofs is not secure."""
        return self.assertSecurity("nope.example.test", "A", INDETERMINATE, [], strip_denial=True)

    def test_tampered_signature_is_bogus(self):
        """A signature that does not verify raises DNSSECBogus instead of returning data."""
        _, resolver = self.world_resolver()
        return self.assertFailure(resolver.query("tampered.example.test", "A"), DNSSECBogus)

    @defer.inlineCallbacks
    def test_stripped_signature_is_bogus(self):
        """An unsigned answer inside a signed zone (signatures stripped) is bogus, not insecure."""
        _, resolver = self.world_resolver()
        error = yield self.assertFailure(resolver.query("stripped.example.test", "A"), DNSSECBogus)
        self.assertIn("unsigned", str(error))

    @defer.inlineCallbacks
    def test_expired_signatures_are_bogus(self):
        """Signatures past their expiration do not validate: bogus."""
        _, resolver = self.world_resolver()
        error = yield self.assertFailure(resolver.query("xmpp.expired.test", "A"), DNSSECBogus)
        self.assertIn("expired.test", str(error))

    def test_signed_child_zone(self):
        """The chain of trust follows the DS in the parent to a signed child zone."""
        return self.assertSecurity("_xmpp-server._tcp.signed.example.test", "SRV", SECURE,
                                   ["0 0 5269 xmpp.signed.example.test."])

    def test_unsigned_delegation_is_insecure(self):
        """The parent's signed NSEC shows NS without DS: the child's answers are insecure."""
        return self.assertSecurity("_xmpp-server._tcp.unsigned.example.test", "SRV", INSECURE,
                                   ["0 0 5269 xmpp.unsigned.example.test."])

    def test_negative_answer_in_unsigned_zone_is_insecure(self):
        """A negative answer from the unsigned child is insecure, not secure."""
        return self.assertSecurity("nope.unsigned.example.test", "A", INSECURE, [])

    def test_nsec3_child_zone(self):
        """A child zone signed with NSEC3 validates like any other."""
        return self.assertSecurity("xmpp.n3.example.test", "A", SECURE, ["127.0.0.9"])

    def test_nsec3_nodata(self):
        """NODATA proven by the NSEC3 record matching the name's hash: secure."""
        return self.assertSecurity("xmpp.n3.example.test", "TXT", SECURE, [])

    def test_nsec3_nxdomain(self):
        """NXDOMAIN proven by the NSEC3 closest-encloser proof, outside opt-out spans: secure."""
        return self.assertSecurity(n3_missing_name(opt_out=False), "A", SECURE, [])

    def test_nsec3_nxdomain_in_opt_out_span(self):
        """NXDOMAIN whose next closer name falls in an opt-out span is only insecure."""
        return self.assertSecurity(n3_missing_name(opt_out=True), "A", INSECURE, [])

    def test_nsec3_opt_out_delegation_is_insecure(self):
        """A delegation without DS, covered by an NSEC3 opt-out span, is insecure."""
        return self.assertSecurity("xmpp.plain.n3.example.test", "A", INSECURE, ["127.0.0.10"])

    def test_outside_trust_anchor_is_indeterminate(self):
        """No anchor covers other.test: its answers are indeterminate (RFC 4035 §4.3)."""
        return self.assertSecurity("xmpp.other.test", "A", INDETERMINATE, ["127.0.0.11"])

    @defer.inlineCallbacks
    def test_dnskey_trust_anchor(self):
        """A trust anchor given as the zone's KSK DNSKEY works like its DS."""
        server = self.start_server()
        resolver = self.make_resolver(server, anchor=world().anchor_text("DNSKEY"))
        answer = yield resolver.query("xmpp.example.test", "AAAA")
        self.assertEqual((answer.security, [r.address for r in answer.records]), (SECURE, ["::1"]))

    @defer.inlineCallbacks
    def test_wrong_trust_anchor_is_bogus(self):
        """DNSKEYs matching no configured anchor make every answer below it bogus."""
        server = self.start_server()
        wrong = world().keys["signed.example.test."].ds()
        resolver = self.make_resolver(server, anchor=f"example.test. IN DS {wrong}\n")
        error = yield self.assertFailure(resolver.query("xmpp.example.test", "A"), DNSSECBogus)
        self.assertIn("no key matches", str(error))


class TransportTests(DNSTestCase):

    @defer.inlineCallbacks
    def test_tcp_fallback_on_truncation(self):
        """A truncated UDP answer is asked again over TCP and still validates."""
        server, resolver = self.world_resolver(truncate_udp=True)
        answer = yield resolver.query("_xmpp-server._tcp.example.test", "SRV")
        self.assertEqual(answer.security, SECURE)
        self.assertIn(("tcp", "_xmpp-server._tcp.example.test.", "SRV"), server.queries)

    @defer.inlineCallbacks
    def test_timeout(self):
        """A server that never answers fails the lookup with DNSTimeout after the timeout."""
        server = self.start_server(silent=True)
        resolver = self.make_resolver(server, timeout=0.2)
        yield self.assertFailure(resolver.query("xmpp.example.test", "A"), DNSTimeout)
        self.assertEqual(len(server.queries), 1)

    @defer.inlineCallbacks
    def test_next_server_after_timeout(self):
        """When the first server times out, the next one in the list answers."""
        silent = self.start_server(silent=True)
        good = self.start_server()
        resolver = self.make_resolver(silent, good, timeout=0.2)
        answer = yield resolver.query("xmpp.example.test", "A")
        self.assertEqual([r.address for r in answer.records], ["127.0.0.1"])

    @defer.inlineCallbacks
    def test_overall_timeout_cancels_cleanly(self):
        """Cancelling a lookup (here by addTimeout) closes its socket: the reactor stays clean."""
        server = self.start_server(silent=True)
        resolver = self.make_resolver(server, timeout=5.0)
        yield self.assertFailure(resolver.query("xmpp.example.test", "A").addTimeout(0.1, reactor),
                                 defer.TimeoutError)
        self.assertEqual(len(server.queries), 1)

    def test_invalid_name(self):
        """A name DNS cannot carry fails the Deferred with DNSLookupError; nothing is sent."""
        resolver = self.make_resolver(("127.0.0.1", 9))
        return self.assertFailure(resolver.query("a..b", "A"), DNSLookupError)

    @defer.inlineCallbacks
    def test_concurrent_lookups_share_the_chain_of_trust(self):
        """Lookups made at once ask for the anchor zone's DNSKEY set only once."""
        server, resolver = self.world_resolver()
        answers = yield defer.gatherResults([resolver.query("xmpp.example.test", t) for t in ("A", "AAAA")])
        self.assertEqual([a.security for a in answers], [SECURE, SECURE])
        self.assertEqual(server.queries.count(("udp", "example.test.", "DNSKEY")), 1)

    @defer.inlineCallbacks
    def test_chain_of_trust_is_cached(self):
        """A second lookup in the same zone reuses the validated keys: one query, not more."""
        server, resolver = self.world_resolver()
        yield resolver.query("xmpp.example.test", "A")
        before = len(server.queries)
        yield resolver.query("backup.example.test", "A")
        self.assertEqual(server.queries[before:], [("udp", "backup.example.test.", "A")])


class ResolverADTests(DNSTestCase):

    @defer.inlineCallbacks
    def test_ad_bit_from_loopback_resolver_is_secure(self):
        """resolver-ad mode: a loopback resolver's AD bit makes the answer secure."""
        server = self.start_server(zones=[world().zone("other.test.")], set_ad=True)
        answer = yield self.make_resolver(server, mode="resolver-ad").query("xmpp.other.test", "A")
        self.assertEqual(answer.security, SECURE)

    @defer.inlineCallbacks
    def test_no_ad_bit_is_insecure(self):
        """resolver-ad mode: without the AD bit the answer is insecure."""
        server = self.start_server(zones=[world().zone("other.test.")])
        answer = yield self.make_resolver(server, mode="resolver-ad").query("xmpp.other.test", "A")
        self.assertEqual(answer.security, INSECURE)

    def test_ad_trusted_only_on_loopback(self):
        """The AD bit is believed from 127.0.0.0/8 and ::1 only (nothing is sent here)."""
        self.assertEqual([ad_trusted(h) for h in ("127.0.0.1", "127.0.0.53", "::1")], [True] * 3)
        self.assertEqual([ad_trusted(h) for h in ("192.0.2.53", "10.0.0.1", "2001:db8::1", "bad")],
                         [False] * 4)
