"""Configuration loading: defaults, the example file, and errors named by key path."""

from pathlib import Path

from twisted.trial import unittest

from summitd.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[2]


class ConfigTests(unittest.TestCase):
    def errors_of(self, data):
        with self.assertRaises(ConfigError) as caught:
            parse_config(data, "/srv")
        return dict(caught.exception.errors)

    def test_example_file_is_valid(self):
        """etc/summitd.toml loads; its relative paths resolve against its own folder."""
        config = load_config(REPO / "etc" / "summitd.toml")
        self.assertEqual(config.server.domains, ("localhost",))
        self.assertEqual(config.server.data_dir, REPO / "etc" / "var")
        self.assertEqual(config.c2s.endpoints, ("tcp:5222:interface=127.0.0.1",))
        self.assertEqual(config.c2s.direct_tls_endpoints, ("tcp:5223:interface=127.0.0.1",))
        self.assertTrue(config.c2s.require_encryption)
        self.assertEqual(config.auth.scram_iterations, 4096)

    def test_example_file_shows_every_option(self):
        """Every option of every section appears in the commented example."""
        from summitd import config as module
        text = (REPO / "etc" / "summitd.toml").read_text()
        from summitd.dns.config import DNSConfig
        dns_options = {"resolvers", "mode", "trust_anchor", "timeout"}   # DNSConfig.servers is resolvers
        self.assertEqual(set(DNSConfig.__dataclass_fields__) - {"servers"}, dns_options - {"resolvers"})
        for name in dns_options:
            self.assertIn(f"\n{name} = ", text, f"dns.{name} is not in the example")
        for cls in (module.ServerConfig, module.C2SConfig, module.TLSConfig,
                    module.StorageConfig, module.AuthConfig):
            for name in cls.__dataclass_fields__:
                self.assertIn(f"\n{name} = ", text, f"{cls.__name__}.{name} is not in the example")

    def test_defaults(self):
        """An empty file is a valid config serving localhost."""
        config = parse_config({}, "/srv")
        self.assertEqual(config.server.domains, ("localhost",))
        self.assertEqual(config.server.data_dir, Path("/srv/var"))
        self.assertEqual(config.c2s.max_stanza_size, 262144)

    def test_errors_name_key_paths(self):
        """Each bad value is reported with its key path, all at once."""
        errors = self.errors_of({
            "server": {"domains": "localhost", "colour": "red"},
            "c2s": {"require_encryption": "yes", "max_stanza_size": 10},
            "auth": {"scram_iterations": 1000},
            "storage": {"database": "mysql://x"},
        })
        self.assertIn("server.domains", errors)
        self.assertIn("server.colour", errors)
        self.assertIn("c2s.require_encryption", errors)
        self.assertIn("c2s.max_stanza_size", errors)
        self.assertIn("auth.scram_iterations", errors)
        self.assertIn("storage.database", errors)

    def test_booleans_are_not_numbers(self):
        """true is not accepted where a number is expected."""
        self.assertIn("c2s.idle_timeout", self.errors_of({"c2s": {"idle_timeout": True}}))

    def test_invalid_domain(self):
        """A domain that is not a valid JID domainpart is refused."""
        self.assertIn("server.domains", self.errors_of({"server": {"domains": ["exa mple..com"]}}))

    def test_unknown_section(self):
        """A misspelt section is an error, not silently ignored."""
        self.assertIn("sever", self.errors_of({"sever": {}}))

    def test_tls_pair(self):
        """A certificate without a key is an error."""
        self.assertIn("tls", self.errors_of({"tls": {"certificate": "a.pem"}}))

    def test_extension_options_need_enabling(self):
        """Options for an extension that is not enabled are flagged."""
        errors = self.errors_of({"extensions": {"enabled": [], "echo": {"prefix": "x"}}})
        self.assertIn("extensions.echo", errors)

    def test_syntax_error(self):
        """A TOML syntax error is reported, not raised as a traceback."""
        path = Path(self.mktemp())
        path.write_text("[server\n")
        with self.assertRaises(ConfigError) as caught:
            load_config(path)
        self.assertEqual(caught.exception.errors[0][0], "(syntax)")

    def test_missing_file(self):
        """A missing file is a ConfigError."""
        with self.assertRaises(ConfigError):
            load_config(self.mktemp())
