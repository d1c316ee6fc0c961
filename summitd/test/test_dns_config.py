"""The ``[dns]`` table, trust anchor files, and the system resolvers from resolv.conf (read
from a fixture file: the machine's own resolvers are never used by tests)."""

import os
from pathlib import Path

from twisted.trial import unittest

from summitd.dns.anchors import load_trust_anchors, parse_trust_anchors
from summitd.dns.config import DNSConfig, parse_dns_config, system_servers
from summitd.test.dns_fixtures import assert_config_errors
from summitd.test.dns_fixtures.zones import world


class DNSConfigTests(unittest.TestCase):

    def assertErrors(self, raw, expected, base_dir="."):
        return assert_config_errors(self, lambda r: parse_dns_config(r, "dns", base_dir), raw, expected)

    def test_defaults(self):
        """No options: system resolvers, in-process validation from the root anchors, 5 s."""
        self.assertEqual(parse_dns_config({}, "dns", "."), DNSConfig())

    def test_resolvers(self):
        """host:port, [IPv6]:port and bare addresses (port 53) are accepted."""
        config = parse_dns_config({"resolvers": ["127.0.0.1:5353", "[::1]:53", "127.0.0.53"],
                                   "mode": "resolver-ad", "timeout": 2}, "dns", ".")
        self.assertEqual((config.servers, config.mode, config.timeout),
                         ((("127.0.0.1", 5353), ("::1", 53), ("127.0.0.53", 53)), "resolver-ad", 2.0))

    def test_bad_values(self):
        """Host names, bad ports, unknown modes, bad timeouts and unknown keys are errors."""
        self.assertErrors({"resolvers": ["dns.example:53", "127.0.0.1:0", "127.0.0.1:x", "[::1"],
                           "mode": "trust-me", "timeout": 0, "extra": True},
                          ["dns.resolvers[0]", "dns.resolvers[1]", "dns.resolvers[2]", "dns.resolvers[3]",
                           "dns.mode", "dns.timeout", "dns.extra"])

    def test_trust_anchor_relative_to_config(self):
        """A relative trust_anchor path is resolved against the config's folder and checked."""
        base = Path(self.mktemp())
        base.mkdir()
        (base / "anchor.txt").write_text(world().anchor_text())
        config = parse_dns_config({"trust_anchor": "anchor.txt"}, "dns", base)
        self.assertEqual(config.trust_anchor, base / "anchor.txt")

    def test_trust_anchor_errors(self):
        """A missing or malformed anchor file is reported at dns.trust_anchor."""
        base = Path(self.mktemp())
        base.mkdir()
        (base / "bad.txt").write_text("example.test. IN A 127.0.0.1\n")
        error = self.assertErrors({"trust_anchor": "bad.txt"}, ["dns.trust_anchor"], base)
        self.assertIn("must be DS or DNSKEY", str(error))
        self.assertErrors({"trust_anchor": "missing.txt"}, ["dns.trust_anchor"], base)


class AnchorTests(unittest.TestCase):

    def test_root_anchors(self):
        """The built-in anchors are the root's KSK-2017 and KSK-2024 DS records."""
        anchors = load_trust_anchors()
        self.assertEqual([(ds.key_tag, ds.algorithm, ds.digest_type) for ds in anchors[next(iter(anchors))]],
                         [(20326, 8, 2), (38696, 8, 2)])
        self.assertEqual([name.to_text() for name in anchors], ["."])

    def test_several_zones(self):
        """An anchor file may hold DS and DNSKEY records for several zones."""
        anchors = parse_trust_anchors(world().anchor_text("DNSKEY"))
        self.assertEqual(sorted(name.to_text() for name in anchors), ["example.test.", "expired.test."])

    def test_garbage(self):
        """Text that is not zone-file records is refused."""
        with self.assertRaises(ValueError):
            parse_trust_anchors("this is not a zone file")


class SystemServersTests(unittest.TestCase):

    def test_nameserver_lines(self):
        """nameserver lines become (address, 53); other lines and bad addresses are skipped."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("# comment\nsearch example.test\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\n"
                    "nameserver not-an-address\noptions edns0\n")
        self.assertEqual(system_servers(path), (("127.0.0.53", 53), ("fe80::1%eth0", 53)))

    def test_default_when_missing(self):
        """Without resolv.conf (or nameserver lines) the resolver is 127.0.0.1 (resolv.conf(5))."""
        self.assertEqual(system_servers(os.path.join(self.mktemp(), "absent")), (("127.0.0.1", 53),))
