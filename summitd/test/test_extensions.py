"""Tests for the extension machinery (summitd.extensions): discovery through Twisted's plugin
system, load order, per-extension config, and registrations that are undone on unload or on a
failed start."""

from twisted.internet import defer
from twisted.trial import unittest
from twisted.words.xish import domish
from zope.interface import Interface, implementer
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

from summitd.config import ConfigError, parse_config
from summitd.core import events
from summitd.core.hooks import Event, Priority
from summitd.core.iq import ACCOUNT, SERVER, DuplicateHandler
from summitd.extensions.base import Extension
from summitd.extensions.context import ExtensionContext, MissingProvider
from summitd.extensions.dropin import ExtensionFactory
from summitd.extensions.interfaces import IExtension, IExtensionFactory
from summitd.extensions.loader import discover, load_order, parse_extension_configs
from summitd.testing import FakeClient, add_user, make_server, result_of

NS_TEST = "urn:example:test-extension"
TEST_EVENT = Event("test-extension-event")


class IGreeter(Interface):
    """What the 'provider' test extension offers to others."""


class StartFailed(Exception):
    """Raised by test extensions whose start() fails."""


@implementer(IExtensionFactory)
class Factory:
    """A test factory: ``build(context, config)`` is given; ``parse`` validates options."""

    def __init__(self, name, build=None, requires=(), parse=None):
        self.name = name
        self.description = f"{name} (tests)"
        self.requires = tuple(requires)
        self._build = build or (lambda context, config: Extension(context))
        self._parse = parse

    def parse_config(self, raw, path):
        if self._parse is not None:
            return self._parse(raw, path)
        if raw:
            raise ConfigError([(f"{path}.{key}", "unknown option") for key in raw])
        return None

    def build(self, context, config):
        return self._build(context, config)


def factories(*items):
    return {factory.name: factory for factory in items}


class Everything(Extension):
    """Registers one of each kind of thing through its context and counts what fires."""

    def __init__(self, context, config=None):
        super().__init__(context)
        self.seen = []
        self.stopped = False
        context.hook(TEST_EVENT, lambda: self.seen.append("hook") or "everything", Priority.SECURITY)
        context.iq("get", SERVER, NS_TEST, "query", self._query)
        context.iq("set", ACCOUNT, NS_TEST, "query", self._query)
        context.add_feature(NS_TEST)
        context.add_feature(NS_TEST + "#account", ACCOUNT)
        context.add_identity("component", "test", "Everything")
        context.provide(IGreeter, self)
        context.call_later(10, self.seen.append, "later")
        context.looping_call(4, self.seen.append, "loop")

    def _query(self, iq, to_jid):
        return domish.Element((NS_TEST, "query"))

    def stop(self):
        self.stopped = True


class FailsToStart(Everything):
    """Registers everything, then fails in start()."""

    def start(self):
        raise StartFailed("cannot start")


class FailsLater(Everything):
    """Registers everything, then fails asynchronously in start()."""

    def start(self):
        return defer.fail(StartFailed("cannot start later"))


def broken_build(context, config):
    """Registers some things, then raises in build()."""
    Everything(context)
    raise StartFailed("build failed")


def not_an_extension(context, config):
    """Registers a hook but returns something that is no IExtension."""
    context.hook(TEST_EVENT, lambda: "x")
    return object()


def registrations(server):
    """Everything an extension can leave behind: hooks, IQ handlers, providers, timers.
    (It reads the tables themselves: nothing less shows that nothing is left.)"""
    return (
        {event: tuple(handlers) for event, handlers in server.hooks._handlers.items()},
        dict(server.router.iq._handlers),
        dict(server.providers),
        list(server.clock.getDelayedCalls()),
    )


def server_with(*items, enabled=()):
    """A server that can load the bundled extensions and ``items``."""
    available = dict(discover())
    available.update(factories(*items))
    return make_server(extensions=enabled, available=available)


class DiscoveryTests(unittest.TestCase):
    """discover() finds the plugin declarations in twisted/plugins/."""

    def test_bundled_found(self):
        """The bundled 'ping' and 'version' factories are discovered."""
        found = discover()
        self.assertIn("ping", found)
        self.assertIn("version", found)
        self.assertEqual(found["ping"].module, "summitd.plugins.ping")

    def test_factories_provide_the_interface(self):
        """Every discovered factory provides IExtensionFactory, with a name matching its key."""
        for name, factory in discover().items():
            self.assertTrue(verifyObject(IExtensionFactory, factory))
            self.assertEqual(factory.name, name)
            self.assertIsInstance(factory.requires, tuple)

    def test_built_extensions_provide_the_interface(self):
        """Every discovered extension, loaded with what it requires on a fresh server,
        provides IExtension; unloading them all undoes what they registered."""
        for name in sorted(discover()):
            server = make_server()
            before = registrations(server)
            result_of(server.extensions.load_all([name], {}))
            for extension, _ in server.extensions.loaded.values():
                self.assertTrue(verifyObject(IExtension, extension), name)
            result_of(server.extensions.unload_all())
            self.assertEqual(registrations(server), before, name)

    def test_bundled_version_answers(self):
        """The bundled 'version' extension, enabled by name, answers jabber:iq:version."""
        server = make_server(extensions=["version"])
        add_user(server, "alice@localhost", "pw")
        client = FakeClient(server)
        client.login("alice", "pw", "desk")
        client.send("<iq type='get' id='v' to='localhost'><query xmlns='jabber:iq:version'/></iq>")
        client.expect("<iq type='result' id='v'><query xmlns='jabber:iq:version'><name>summitd</name>"
                      "</query></iq>")


class LoadOrderTests(unittest.TestCase):
    """load_order: dependencies first, each once; ConfigError naming the key path."""

    def assertConfigErrors(self, enabled, available, expected):
        """load_order fails with exactly the ``expected`` (path, message fragment) pairs."""
        error = self.assertRaises(ConfigError, load_order, enabled, available)
        self.assertEqual([path for path, _ in error.errors], [path for path, _ in expected])
        for (_, message), (_, fragment) in zip(error.errors, expected):
            self.assertIn(fragment, message)
        return error

    def test_no_requirements(self):
        """Independent extensions load in the order they are enabled."""
        available = factories(Factory("b"), Factory("a"), Factory("c"))
        self.assertEqual(load_order(["c", "a", "b"], available), ["c", "a", "b"])

    def test_requirements_first(self):
        """A required extension loads first even when not enabled itself."""
        available = factories(Factory("a"), Factory("b", requires=["a"]), Factory("c", requires=["b"]))
        self.assertEqual(load_order(["c"], available), ["a", "b", "c"])

    def test_diamond(self):
        """A shared requirement loads once, before everything that needs it."""
        available = factories(Factory("base"), Factory("left", requires=["base"]),
                              Factory("right", requires=["base"]),
                              Factory("top", requires=["left", "right"]))
        self.assertEqual(load_order(["top", "base"], available), ["base", "left", "right", "top"])

    def test_enabled_twice(self):
        """An extension named twice loads once."""
        self.assertEqual(load_order(["a", "a"], factories(Factory("a"))), ["a"])

    def test_unknown(self):
        """An unknown name is an error at extensions.enabled."""
        self.assertConfigErrors(["nope"], {}, [("extensions.enabled", "'nope'")])

    def test_unknown_requirement(self):
        """An unknown requirement names the extension that requires it."""
        self.assertConfigErrors(["c"], factories(Factory("c", requires=["gone"])),
                                [("extensions.enabled (required by c)", "'gone'")])

    def test_cycle(self):
        """A dependency cycle is an error naming the path through it."""
        available = factories(Factory("a", requires=["b"]), Factory("b", requires=["a"]))
        self.assertConfigErrors(["a"], available,
                                [("extensions.enabled (required by a) (required by b)", "cycle")])

    def test_self_cycle(self):
        """An extension that requires itself is a cycle."""
        self.assertConfigErrors(["a"], factories(Factory("a", requires=["a"])),
                                [("extensions.enabled (required by a)", "cycle")])

    def test_all_errors_at_once(self):
        """Every problem is reported, not only the first."""
        available = factories(Factory("a", requires=["a"]))
        self.assertConfigErrors(["x", "a", "y"], available,
                                [("extensions.enabled", "'x'"),
                                 ("extensions.enabled (required by a)", "cycle"),
                                 ("extensions.enabled", "'y'")])

    def test_server_refuses_bad_order(self):
        """A server whose enabled extensions cannot be ordered does not start."""
        self.assertRaises(ConfigError, server_with, Factory("a", requires=["missing"]), enabled=["a"])


class ConfigTests(unittest.TestCase):
    """Each extension validates its own [extensions.<name>] table, errors by key path."""

    def test_dropin_without_options(self):
        """A bundled extension without parse_config refuses any option, naming each key."""
        error = self.assertRaises(ConfigError, discover()["version"].parse_config,
                                  {"interval": 5, "color": "red"}, "extensions.version")
        self.assertEqual(sorted(error.errors), [("extensions.version.color", "unknown option"),
                                                ("extensions.version.interval", "unknown option")])
        self.assertIsNone(discover()["version"].parse_config({}, "extensions.version"))

    def test_errors_of_every_extension(self):
        """parse_extension_configs reports the problems of all extensions together."""
        def strict(raw, path):
            if not isinstance(raw.get("size"), int):
                raise ConfigError([(f"{path}.size", "must be an integer")])
            return raw["size"]

        available = factories(Factory("a", parse=strict), Factory("b"))
        error = self.assertRaises(ConfigError, parse_extension_configs, ["a", "b"], available,
                                  {"a": {"size": "big"}, "b": {"x": 1}})
        self.assertEqual(error.errors, [("extensions.a.size", "must be an integer"),
                                        ("extensions.b.x", "unknown option")])
        self.assertIn("extensions.a.size: must be an integer", str(error))

    def test_parsed_config_reaches_the_extension(self):
        """The factory gets the raw table and its path; build and the context get the result."""
        seen = {}

        def parse(raw, path):
            seen["parse"] = (raw, path)
            return ("parsed", raw["size"])

        def build(context, config):
            seen["build"] = (config, context.config, context.name)
            return Extension(context)

        make_server(extensions=["sized"], available=factories(Factory("sized", build, parse=parse)),
                    extension_options={"sized": {"size": 3}})
        self.assertEqual(seen["parse"], ({"size": 3}, "extensions.sized"))
        self.assertEqual(seen["build"], (("parsed", 3), ("parsed", 3), "sized"))

    def test_server_refuses_bad_options(self):
        """A server with invalid extension options does not start."""
        error = self.assertRaises(ConfigError, make_server, extensions=["ping"],
                                  extension_options={"ping": {"bogus": True}})
        self.assertEqual(error.errors, [("extensions.ping.bogus", "unknown option")])

    def test_options_for_disabled_extension(self):
        """Options for an extension that is not enabled are an error at their own key."""
        error = self.assertRaises(ConfigError, parse_config,
                                  {"extensions": {"enabled": ["ping"], "version": {"x": 1}}}, ".")
        self.assertEqual([path for path, _ in error.errors], ["extensions.version"])

    def test_options_must_be_a_table(self):
        """A non-table value under [extensions] is an error at its key."""
        error = self.assertRaises(ConfigError, parse_config,
                                  {"extensions": {"enabled": ["ping"], "ping": 3}}, ".")
        self.assertEqual([path for path, _ in error.errors], ["extensions.ping"])


class LifecycleTests(unittest.TestCase):
    """Loading registers through the context; unloading (or a failed start) undoes it all."""

    def setUp(self):
        self.built = []
        self.server = server_with(Factory("everything", self.build(Everything)),
                                  Factory("fails", self.build(FailsToStart)),
                                  Factory("fails-later", self.build(FailsLater)),
                                  Factory("broken-build", broken_build),
                                  Factory("not-extension", not_an_extension))
        self.before = registrations(self.server)

    def build(self, cls):
        def build(context, config):
            extension = cls(context, config)
            self.built.append(extension)
            return extension
        return build

    def load(self, name):
        return result_of(self.server.extensions.load(name, None))

    def assertNothingRegistered(self):
        self.assertEqual(registrations(self.server), self.before)

    def assertLoadFails(self, name, exception):
        """Loading ``name`` fails with ``exception`` and leaves the server as it was."""
        failure = self.failureResultOf(self.server.extensions.load(name, None), exception)
        self.assertNotIn(name, self.server.extensions.loaded)
        self.assertNothingRegistered()
        return failure

    def run_clock(self, seconds):
        """Advance the fake clock one second at a time, as time really passes."""
        self.server.clock.pump([1] * seconds)

    def features(self, event=events.SERVER_DISCO_FEATURES, where="localhost"):
        return self.server.hooks.collect(event, where)

    def test_registrations_work(self):
        """A loaded extension's hook, IQ handlers, features, identity, provider and timers
        are all live."""
        extension = self.load("everything")
        self.assertEqual(self.server.hooks.run(TEST_EVENT), "everything")
        self.assertTrue(self.server.router.iq.handles(SERVER, NS_TEST))
        self.assertTrue(self.server.router.iq.handles(ACCOUNT, NS_TEST))
        self.assertIn(NS_TEST, self.features())
        self.assertIn(NS_TEST + "#account", self.features(events.ACCOUNT_DISCO_FEATURES))
        self.assertIn(("component", "test", "Everything"),
                      self.server.hooks.collect(events.SERVER_DISCO_IDENTITIES, "localhost"))
        self.assertIs(self.server.providers[IGreeter], extension)
        self.run_clock(10)
        self.assertEqual(sorted(extension.seen), ["hook", "later", "loop", "loop"])

    def test_unload_undoes_everything(self):
        """After unload: no hook, IQ handler, feature, provider or timer is left, and the
        timers no longer fire; stop() was called."""
        extension = self.load("everything")
        result_of(self.server.extensions.unload("everything"))
        self.assertTrue(extension.stopped)
        self.assertNothingRegistered()
        self.assertNotIn(NS_TEST, self.features())
        self.assertFalse(self.server.router.iq.handles(SERVER, NS_TEST))
        self.run_clock(100)
        self.assertEqual(extension.seen, [])
        self.assertNotIn("everything", self.server.extensions.loaded)

    def test_unload_after_timers_fired(self):
        """Timers that already fired or are mid-loop are cleaned up too."""
        extension = self.load("everything")
        self.run_clock(12)
        result_of(self.server.extensions.unload("everything"))
        self.assertNothingRegistered()
        self.run_clock(100)
        self.assertEqual(sorted(extension.seen), ["later", "loop", "loop", "loop"])

    def test_call_later_forgets_fired_calls(self):
        """An extension that keeps rescheduling itself does not make its context grow: only
        pending calls are remembered (and cancelled on unload)."""
        context = ExtensionContext(self.server, "ticker", None)
        fired = []

        def tick():
            fired.append(self.server.clock.seconds())
            context.call_later(1, tick)

        context.call_later(1, tick)
        self.run_clock(1000)
        self.assertEqual(len(fired), 1000)
        self.assertLessEqual(len(context._calls), 65)
        context.close()
        self.assertNothingRegistered()

    def test_reload(self):
        """An unloaded extension can be loaded again (nothing stale is in the way)."""
        self.load("everything")
        result_of(self.server.extensions.unload("everything"))
        self.load("everything")
        self.assertEqual(self.server.hooks.run(TEST_EVENT), "everything")

    def test_stop_failure_still_undoes(self):
        """A stop() that raises is logged; the registrations are undone anyway."""
        extension = self.load("everything")

        def stop():
            raise StartFailed("cannot stop")

        extension.stop = stop
        result_of(self.server.extensions.unload("everything"))
        self.assertNothingRegistered()
        self.assertEqual(len(self.flushLoggedErrors(StartFailed)), 1)

    def test_start_fails(self):
        """An extension whose start() raises leaves nothing registered."""
        self.assertLoadFails("fails", StartFailed)
        self.run_clock(100)
        self.assertEqual(self.built[0].seen, [])

    def test_start_fails_asynchronously(self):
        """An extension whose start() Deferred fails leaves nothing registered."""
        self.assertLoadFails("fails-later", StartFailed)

    def test_build_fails(self):
        """A build() that raises after registering leaves nothing registered."""
        self.assertLoadFails("broken-build", StartFailed)

    def test_build_returns_no_extension(self):
        """A build() whose result is not an IExtension fails the load and leaves nothing."""
        self.assertLoadFails("not-extension", Invalid)

    def test_failed_load_keeps_others(self):
        """A failing extension does not disturb one that is already loaded."""
        self.load("everything")
        loaded = registrations(self.server)
        self.failureResultOf(self.server.extensions.load("not-extension", None), Invalid)
        self.assertEqual(registrations(self.server), loaded)
        self.assertEqual(self.server.hooks.run(TEST_EVENT), "everything")

    def test_duplicate_iq_handler(self):
        """Two extensions claiming the same IQ: the second fails to load, cleanly, and the
        first keeps everything it registered."""
        self.load("everything")
        loaded = registrations(self.server)
        self.server.extensions.available["twin"] = Factory("twin", Everything)
        self.failureResultOf(self.server.extensions.load("twin", None), DuplicateHandler)
        self.assertEqual(registrations(self.server), loaded)
        self.assertNotIn("twin", self.server.extensions.loaded)

    def test_unload_all_in_reverse(self):
        """unload_all stops extensions in the reverse of their load order."""
        stopped = []

        def recording(name):
            def build(context, config):
                extension = Extension(context)
                extension.stop = lambda: stopped.append(name)
                return extension
            return Factory(name, build)

        server = server_with(recording("a"), recording("b"), recording("c"), enabled=["b", "a", "c"])
        result_of(server.extensions.unload_all())
        self.assertEqual(stopped, ["c", "a", "b"])
        self.assertEqual(server.extensions.loaded, {})


class ProviderTests(unittest.TestCase):
    """provide/need between extensions."""

    def test_need_after_requires(self):
        """An extension can need() what an extension it requires provides."""
        got = []

        def consumer(context, config):
            got.append(context.need(IGreeter))
            return Extension(context)

        server = server_with(Factory("everything", Everything),
                             Factory("consumer", consumer, requires=["everything"]),
                             enabled=["consumer"])
        self.assertEqual(list(server.extensions.loaded), ["everything", "consumer"])
        self.assertIs(got[0], server.extensions.loaded["everything"][0])

    def test_missing_provider(self):
        """need() without a provider is MissingProvider, naming the interface."""
        server = make_server()
        context = ExtensionContext(server, "lonely", None)
        error = self.assertRaises(MissingProvider, context.need, IGreeter)
        self.assertIn("IGreeter", str(error))

    def test_provide_twice(self):
        """Two providers of one interface is an error."""
        server = make_server()
        ExtensionContext(server, "first", None).provide(IGreeter, object())
        self.assertRaises(ValueError, ExtensionContext(server, "second", None).provide, IGreeter, object())

    def test_dropin_factory_repr(self):
        """A plugin declaration names its module and imports it only to build."""
        factory = ExtensionFactory("x", "X.", "summitd.plugins.nonexistent")
        self.assertIn("summitd.plugins.nonexistent", repr(factory))
        self.assertRaises(ImportError, factory.build, None, None)
