"""What NSEC/NSEC3 records prove (summitd.dns.denial), on the records of the signed test
zones themselves (no sockets): existence, type absence, zone cuts, opt-out, and the
records that must not be believed (a parent's NSEC at a delegation point)."""

import dns.name
import dns.rdatatype
import dns.rrset
from twisted.trial import unittest

from summitd.dns.denial import Denial
from summitd.test.dns_fixtures.zones import n3_missing_name, world


def denial_of(origin):
    """A Denial holding every NSEC/NSEC3 record of the test zone ``origin``."""
    zone = world().zone(origin)
    rrsets = [dns.rrset.from_rdata_list(name, rds.ttl, list(rds)) for name, node in zone.nodes.items()
              for rds in node.rdatasets if rds.rdtype in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)]
    return Denial(zone.origin, rrsets)


def name(text):
    return dns.name.from_text(text)


class NSECTests(unittest.TestCase):

    def setUp(self):
        self.denial = denial_of("example.test.")

    def test_nxdomain(self):
        """A name between two NSEC owners, with no wildcard, does not exist."""
        self.assertTrue(self.denial.proves_nxdomain(name("nope.example.test.")))
        self.assertFalse(self.denial.proves_nxdomain(name("xmpp.example.test.")))

    def test_nodata(self):
        """The type bitmap at a name proves which types it lacks."""
        self.assertTrue(self.denial.proves_nodata(name("xmpp.example.test."), dns.rdatatype.TXT))
        self.assertFalse(self.denial.proves_nodata(name("xmpp.example.test."), dns.rdatatype.A))
        self.assertFalse(self.denial.proves_nodata(name("alias.example.test."), dns.rdatatype.A))

    def test_empty_non_terminal(self):
        """_tcp.example.test. exists only as a parent of SRV names: it has no data and no cut."""
        ent = name("_tcp.example.test.")
        self.assertEqual((self.denial.proves_nodata(ent, dns.rdatatype.A), self.denial.proves_nxdomain(ent),
                          self.denial.ds_status(ent)), (True, False, "not-delegation"))

    def test_zone_cuts(self):
        """NS without DS is an unsigned delegation; a name without NS is no cut; with DS, no denial."""
        self.assertEqual([self.denial.ds_status(name(n)) for n in
                          ("unsigned.example.test.", "xmpp.example.test.", "nope.example.test.",
                           "signed.example.test.")],
                         ["insecure", "not-delegation", "not-delegation", None])

    def test_delegation_nsec_says_nothing_below_the_cut(self):
        """The parent's NSEC at unsigned.example.test. cannot deny names inside the child."""
        below = name("xmpp.unsigned.example.test.")
        self.assertFalse(self.denial.proves_nxdomain(below))
        self.assertFalse(self.denial.proves_nodata(name("unsigned.example.test."), dns.rdatatype.A))

    def test_names_outside_the_zone(self):
        """Records of one zone prove nothing about another."""
        self.assertFalse(self.denial.proves_nxdomain(name("nope.other.test.")))


class NSEC3Tests(unittest.TestCase):

    def setUp(self):
        self.denial = denial_of("n3.example.test.")

    def test_nodata_by_hash_match(self):
        """The NSEC3 record matching a name's hash lists its types."""
        self.assertTrue(self.denial.proves_nodata(name("xmpp.n3.example.test."), dns.rdatatype.TXT))
        self.assertFalse(self.denial.proves_nodata(name("xmpp.n3.example.test."), dns.rdatatype.A))

    def test_nxdomain_closest_encloser_proof(self):
        """Closest encloser matched, next closer and wildcard covered, no opt-out: NXDOMAIN."""
        self.assertTrue(self.denial.proves_nxdomain(name(n3_missing_name(opt_out=False))))

    def test_opt_out_span(self):
        """A name in an opt-out span is not proven absent; it could be an unsigned delegation."""
        missing = name(n3_missing_name(opt_out=True))
        self.assertEqual((self.denial.proves_nxdomain(missing), self.denial.opt_out_covers(missing)),
                         (False, True))

    def test_opt_out_delegation(self):
        """plain.n3.example.test. has no NSEC3 of its own: the opt-out span makes it insecure."""
        self.assertEqual(self.denial.ds_status(name("plain.n3.example.test.")), "insecure")

    def test_existing_name_is_no_cut(self):
        """An existing name without NS is not a zone cut."""
        self.assertEqual(self.denial.ds_status(name("xmpp.n3.example.test.")), "not-delegation")
