"""Archive retention (background expiry on the fake clock), the [extensions.mam] options, and
the extension's life cycle (memory backend, unload, shutdown flush)."""

from twisted.internet import defer
from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.plugins.mam import MamConfig, parse_config
from summitd.test.test_mam_helpers import MamHarness
from summitd.testing import result_of

DAY = 86400


class RetentionTests(MamHarness, unittest.TestCase):
    def fill(self, n):
        for i in range(n):
            self.chat(self.bob, "alice@localhost", f"m{i}", receiver=self.alice)

    def test_max_age(self):
        """Messages older than max_age_days go at the next run, oldest first; newer stay."""
        self.start(max_age_days=1, retention_interval=3600)
        self.fill(2)
        self.tick(DAY - 10)
        self.fill(1)
        self.assertEqual(self.query(self.alice).rsm("count"), "3")
        self.tick(3600)
        self.assertEqual(self.query(self.alice).bodies, ["m0"])
        self.assertEqual(self.query(self.bob).bodies, ["m0"])

    def test_max_messages_per_user(self):
        """Each archive keeps its newest max_messages_per_user messages."""
        self.start(max_messages_per_user=3, retention_interval=60)
        self.fill(5)
        self.tick(60)
        self.assertEqual(self.query(self.alice).bodies, ["m2", "m3", "m4"])

    def test_off_by_default(self):
        """Without limits nothing is ever deleted."""
        self.start()
        self.fill(3)
        self.tick(400 * DAY)
        self.assertEqual(self.query(self.alice).rsm("count"), "3")

    def test_failure_logged_and_retried(self):
        """A failing run is logged, and the next one runs again."""
        self.start(max_messages_per_user=1, retention_interval=60)
        extension = self.server.extensions.loaded["mam"][0]
        calls = []

        def broken(*args):
            calls.append(args)
            return defer.fail(RuntimeError("database gone"))

        real, extension.store.expire = extension.store.expire, broken
        self.tick(60)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        extension.store.expire = real
        self.fill(2)
        self.tick(60)
        self.assertEqual((len(calls), self.query(self.alice).bodies), (1, ["m1"]))


class LifeCycleTests(MamHarness, unittest.TestCase):
    def test_memory_backend(self):
        """The memory backend serves the same protocol."""
        self.start(backend="memory")
        self.chat(self.bob, "alice@localhost", "kept in memory", receiver=self.alice)
        self.assertEqual(self.search(self.alice, "memory").bodies, ["kept in memory"])

    def test_unload_restores_server(self):
        """Unloading removes the hooks and IQs: messages are no longer stamped, queries fail."""
        self.start()
        result_of(self.server.extensions.unload("mam"))
        received = self.chat(self.bob, "alice@localhost", "plain", receiver=self.alice)
        self.assertNotIn("stanza-id", received.toXml())
        self.assertEqual(self.query(self.alice).error, "service-unavailable")


class ConfigTests(unittest.TestCase):
    def test_defaults(self):
        """An empty table gives the documented defaults."""
        self.assertEqual(parse_config({}, "extensions.mam"), MamConfig())

    def test_values(self):
        """Every option is read."""
        config = parse_config({"backend": "memory", "default_preference": "roster",
                               "default_page_size": 10, "max_page_size": 20, "fulltext": False,
                               "max_age_days": 0.5, "max_messages_per_user": 100,
                               "retention_interval": 30, "max_prefs_jids": 5}, "extensions.mam")
        self.assertEqual((config.backend, config.max_age_days, config.fulltext),
                         ("memory", 0.5, False))

    def test_errors(self):
        """Every bad value and unknown key is reported with its path, all at once."""
        with self.assertRaises(ConfigError) as raised:
            parse_config({"backend": "mongo", "default_preference": "sometimes",
                          "max_page_size": 0, "fulltext": "yes", "max_age_days": -1,
                          "max_messages_per_user": True, "retention_interval": 0,
                          "colour": "red"}, "extensions.mam")
        paths = {path for path, _ in raised.exception.errors}
        self.assertEqual(paths, {f"extensions.mam.{k}" for k in (
            "backend", "default_preference", "max_page_size", "fulltext", "max_age_days",
            "max_messages_per_user", "retention_interval", "colour")})

    def test_default_page_over_cap(self):
        """default_page_size may not exceed max_page_size."""
        with self.assertRaises(ConfigError):
            parse_config({"default_page_size": 100, "max_page_size": 10}, "extensions.mam")
