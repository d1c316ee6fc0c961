"""XMPP SRV targets (RFC 6120 §3.2, XEP-0368, RFC 2782) and address lookups, against the
loopback DNS server, plus the RFC 2782 ordering with an injected random source."""

from types import SimpleNamespace

from twisted.internet import defer
from twisted.trial import unittest

from summitd.dns.resolver import INSECURE, SECURE, DNSSECBogus
from summitd.dns.srv import (
    Target, lookup_addresses, lookup_client_targets, lookup_server_targets, order_srv,
)
from summitd.test.dns_fixtures import DNSTestCase


class ScriptedRandom:
    """``randint`` returning scripted values, recording the ranges it was asked for."""

    def __init__(self, *values):
        self.values = list(values)
        self.ranges = []

    def randint(self, low, high):
        self.ranges.append((low, high))
        return self.values.pop(0)


def srv(name, priority, weight):
    return SimpleNamespace(name=name, priority=priority, weight=weight)


class OrderingTests(unittest.TestCase):

    def test_priority_first(self):
        """Lower priority values come first whatever the weights."""
        records = [srv("c", 20, 100), srv("a", 10, 0), srv("b", 30, 5)]
        ordered = order_srv(records, ScriptedRandom(0, 0, 0))
        self.assertEqual([r.name for r in ordered], ["a", "c", "b"])

    def test_weighted_selection(self):
        """Within a priority the running sums decide: 0 picks the zero-weight record, then
        a number above the first running sum picks the heavier record (RFC 2782)."""
        records = [srv("light", 1, 10), srv("heavy", 1, 30), srv("zero", 1, 0)]
        rng = ScriptedRandom(0, 25, 0)
        ordered = order_srv(records, rng)
        self.assertEqual([r.name for r in ordered], ["zero", "heavy", "light"])
        self.assertEqual(rng.ranges, [(0, 40), (0, 40), (0, 10)])

    def test_random_number_equal_to_running_sum(self):
        """The first record whose running sum is >= the random number is chosen."""
        records = [srv("a", 0, 10), srv("b", 0, 10)]
        self.assertEqual([r.name for r in order_srv(records, ScriptedRandom(10, 0))], ["a", "b"])
        self.assertEqual([r.name for r in order_srv(records, ScriptedRandom(11, 0))], ["b", "a"])


class TargetTests(DNSTestCase):

    @defer.inlineCallbacks
    def targets(self, domain, lookup=lookup_server_targets, rng=None):
        _, resolver = self.world_resolver()
        targets = yield lookup(resolver, domain, rng=rng or ScriptedRandom(*[0] * 10))
        return targets

    @defer.inlineCallbacks
    def test_direct_tls_and_starttls_merged(self):
        """_xmpps-server and _xmpp-server records form one list ordered by priority."""
        targets = yield self.targets("example.test")
        self.assertEqual(targets, [Target("xmpp.example.test", 5270, True, True),
                                   Target("xmpp.example.test", 5269, False, True),
                                   Target("backup.example.test", 5269, False, True)])

    @defer.inlineCallbacks
    def test_dot_target_means_no_service(self):
        """Both services answering "." mean no XMPP service and no A fallback."""
        self.assertEqual((yield self.targets("dot.example.test")), [])

    @defer.inlineCallbacks
    def test_dot_for_direct_tls_only(self):
        """"." for _xmpps-server alone leaves the STARTTLS targets (XEP-0368 §5)."""
        targets = yield self.targets("half.example.test")
        self.assertEqual(targets, [Target("xmpp.example.test", 5269, False, True)])

    @defer.inlineCallbacks
    def test_fallback_to_domain_on_5269(self):
        """No SRV records at all: the domain itself on 5269 with STARTTLS; the proven
        absence of SRV records is secure."""
        targets = yield self.targets("nosrv.example.test")
        self.assertEqual(targets, [Target("nosrv.example.test", 5269, False, True)])

    @defer.inlineCallbacks
    def test_insecure_srv_target(self):
        """Targets from an unsigned zone are not secure."""
        targets = yield self.targets("unsigned.example.test")
        self.assertEqual(targets, [Target("xmpp.unsigned.example.test", 5269, False, False)])

    @defer.inlineCallbacks
    def test_bogus_srv_aborts(self):
        """A bogus SRV answer fails the lookup instead of falling back (RFC 7673 §3.1)."""
        _, resolver = self.world_resolver()
        yield self.assertFailure(lookup_server_targets(resolver, "tampered.example.test"), DNSSECBogus)

    @defer.inlineCallbacks
    def test_client_targets(self):
        """The client variant asks _xmpps-client/_xmpp-client and keeps their ports."""
        targets = yield self.targets("example.test", lookup=lookup_client_targets)
        self.assertEqual(targets, [Target("xmpp.example.test", 5223, True, True),
                                   Target("xmpp.example.test", 5222, False, True)])


class AddressTests(DNSTestCase):

    @defer.inlineCallbacks
    def test_addresses_with_security(self):
        """AAAA and A are both returned (IPv6 first) with their security."""
        _, resolver = self.world_resolver()
        addresses = yield lookup_addresses(resolver, "xmpp.example.test")
        self.assertEqual((addresses.addresses, addresses.security), (("::1", "127.0.0.1"), SECURE))

    @defer.inlineCallbacks
    def test_insecure_addresses(self):
        """Addresses in an unsigned zone are insecure."""
        _, resolver = self.world_resolver()
        addresses = yield lookup_addresses(resolver, "xmpp.unsigned.example.test")
        self.assertEqual((addresses.addresses, addresses.security), (("127.0.0.8",), INSECURE))

    @defer.inlineCallbacks
    def test_bogus_addresses_raise(self):
        """A bogus A answer raises DNSSECBogus: never connect to such an address."""
        _, resolver = self.world_resolver()
        yield self.assertFailure(lookup_addresses(resolver, "tampered.example.test"), DNSSECBogus)
