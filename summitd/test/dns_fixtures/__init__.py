"""Fixtures for the DNS tests: signed zones (``zones``), a loopback DNS server (``server``),
and ``DNSTestCase``, which starts servers and builds resolvers for a test.

These tests use the real reactor and loopback sockets (127.0.0.1 only): they exercise
a real DNS exchange. Every wait is bounded by the resolver's timeout.
"""

from twisted.internet import reactor
from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.dns.config import DNSConfig
from summitd.dns.resolver import SecureResolver
from summitd.test.dns_fixtures.server import DNSTestServer
from summitd.test.dns_fixtures.zones import world


class DNSTestCase(unittest.TestCase):
    """Base class: ``start_server(**options)`` and ``make_resolver(server, ...)``."""

    timeout = 30

    def start_server(self, zones=None, **options):
        server = DNSTestServer(reactor, zones if zones is not None else world().zones, **options)
        server.start()
        self.addCleanup(server.stop)
        return server

    def anchor_file(self, text=None):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text if text is not None else world().anchor_text())
        return path

    def make_resolver(self, *servers, mode="validate", anchor=None, timeout=2.0):
        """A resolver asking ``servers`` (DNSTestServer objects or (host, port) pairs)."""
        addresses = tuple(s if isinstance(s, tuple) else ("127.0.0.1", s.port) for s in servers)
        config = DNSConfig(servers=addresses, mode=mode, timeout=timeout,
                           trust_anchor=self.anchor_file(anchor) if mode == "validate" else None)
        return SecureResolver(config, reactor)

    def world_resolver(self, **options):
        """A validating resolver anchored at example.test, on a fresh server for the world."""
        server = self.start_server(**options)
        return server, self.make_resolver(server)


def assert_config_errors(testcase, parse, raw, expected_paths):
    """``parse(raw)`` raises ConfigError naming exactly ``expected_paths``; returns the error."""
    with testcase.assertRaises(ConfigError) as caught:
        parse(raw)
    testcase.assertEqual(sorted(path for path, _ in caught.exception.errors), sorted(expected_paths))
    return caught.exception
