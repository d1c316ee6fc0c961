"""The [s2s] table (summitd.transports.s2s.config) and the s2s extension's options."""

import os

from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.plugins.s2s import effective_configs, parse_config
from summitd.transports.s2s.config import S2SConfig, StaticRoute, parse_route, parse_s2s_config


class S2SConfigTests(unittest.TestCase):
    def test_defaults(self):
        """An empty table: loopback STARTTLS listener, encryption required, dialback allowed."""
        config = parse_s2s_config({})
        self.assertEqual(config, S2SConfig())
        self.assertTrue(config.require_encryption)
        self.assertTrue(config.policy.default.allow_dialback)

    def test_static_routes(self):
        """Static routes: one address or a list; IPv6 in brackets; tls: for direct TLS."""
        config = parse_s2s_config({"static_routes": {
            "peer.test": "127.0.0.2:5269", "Other.Test": ["tls:[::1]:5270", "127.0.0.3:5269"]}})
        self.assertEqual(config.static_routes["peer.test"], (StaticRoute("127.0.0.2", 5269),))
        self.assertEqual(config.static_routes["other.test"],
                         (StaticRoute("::1", 5270, True), StaticRoute("127.0.0.3", 5269)))
        self.assertEqual(str(config.static_routes["other.test"][0]), "tls:[::1]:5270")

    def test_every_error_named_by_its_path(self):
        """Bad values are reported together, each with its key path."""
        with self.assertRaises(ConfigError) as caught:
            parse_s2s_config({"endpoints": "tcp:5269", "static_routes": {"peer.test": "host.name:5269"},
                              "connect_timeout": 0, "bogus": 1, "policy": {"allow_dialback": "yes"},
                              "ca_bundle": "missing.pem"}, "s2s", self.mktemp())
        paths = sorted(path for path, _ in caught.exception.errors)
        self.assertEqual(paths, ["s2s.bogus", "s2s.ca_bundle", "s2s.connect_timeout", "s2s.endpoints",
                                 "s2s.policy.allow_dialback", 's2s.static_routes."peer.test"'])

    def test_routes_refuse_names_and_bad_ports(self):
        """A route needs a literal IP address and a port from 1 to 65535."""
        for text in ("localhost:5269", "127.0.0.1", "127.0.0.1:0", "tls:127.0.0.1:99999"):
            with self.assertRaises(ValueError):
                parse_route(text)

    def test_relative_ca_bundle(self):
        """A relative ca_bundle is resolved against the config's folder."""
        base = self.mktemp()
        os.makedirs(base)
        with open(os.path.join(base, "ca.pem"), "w") as f:
            f.write("")
        config = parse_s2s_config({"ca_bundle": "ca.pem"}, "s2s", base)
        self.assertEqual(str(config.ca_bundle), os.path.join(base, "ca.pem"))


class ExtensionOptionsTests(unittest.TestCase):
    def test_extension_table_with_dns(self):
        """[extensions.s2s] takes the [s2s] keys and a dns sub-table."""
        options = parse_config({"bidi": False, "dns": {"resolvers": ["127.0.0.1:5353"]}}, "extensions.s2s")
        self.assertFalse(options.s2s.bidi)
        self.assertEqual(options.dns.servers, (("127.0.0.1", 5353),))

    def test_extension_errors_have_paths(self):
        """Errors in either part carry their extension key paths."""
        with self.assertRaises(ConfigError) as caught:
            parse_config({"bidi": "no", "dns": {"mode": "guess"}}, "extensions.s2s")
        self.assertEqual(sorted(p for p, _ in caught.exception.errors),
                         ["extensions.s2s.bidi", "extensions.s2s.dns.mode"])

    def test_server_tables_used_without_extension_options(self):
        """Without [extensions.s2s], the server's own [s2s] and [dns] apply."""
        class ServerConfig:
            s2s = S2SConfig(bidi=False)
            dns = "the dns config"
        s2s, dns = effective_configs(ServerConfig(), parse_config({}, "extensions.s2s"))
        self.assertFalse(s2s.bidi)
        self.assertEqual(dns, "the dns config")
