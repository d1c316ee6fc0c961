"""Finding extensions (Twisted's plugin system) and loading them in dependency order."""

from twisted.internet import defer
from twisted.logger import Logger
from twisted.plugin import getPlugins
from zope.interface.verify import verifyObject

from summitd.config import ConfigError
from summitd.extensions.context import ExtensionContext
from summitd.extensions.interfaces import IExtension, IExtensionFactory

log = Logger()


def discover():
    """Every installed extension factory by name (bundled and third-party).

    The same plugin module can be seen twice (an installed copy and a source tree
    on sys.path); the first one found wins.
    """
    import twisted.plugins
    found = {}
    for factory in getPlugins(IExtensionFactory, twisted.plugins):
        found.setdefault(factory.name, factory)
    return found


def load_order(enabled, available):
    """Enabled names plus what they require, dependencies first; ConfigError for unknown
    names and cycles."""
    errors = []
    order = []
    state = {}

    def visit(name, path):
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            errors.append((path, f"extension dependency cycle through {name!r}"))
            return
        factory = available.get(name)
        if factory is None:
            errors.append((path, f"no installed extension is called {name!r}"))
            return
        state[name] = "visiting"
        for required in factory.requires:
            visit(required, f"{path} (required by {name})")
        state[name] = "done"
        order.append(name)

    for name in enabled:
        visit(name, "extensions.enabled")
    if errors:
        raise ConfigError(errors)
    return order


def parse_extension_configs(order, available, options):
    """Each extension's parsed config; ConfigError with every problem at once."""
    errors = []
    configs = {}
    for name in order:
        try:
            configs[name] = available[name].parse_config(options.get(name, {}), f"extensions.{name}")
        except ConfigError as e:
            errors.extend(e.errors)
    if errors:
        raise ConfigError(errors)
    return configs


class ExtensionManager:
    """Loads, starts and stops the extensions of one server."""

    def __init__(self, server, available=None):
        self._server = server
        self.available = available if available is not None else discover()
        self.loaded = {}     # name -> (extension, context), in load order

    @defer.inlineCallbacks
    def load_all(self, enabled, options):
        order = load_order(enabled, self.available)
        configs = parse_extension_configs(order, self.available, options)
        for name in order:
            yield self.load(name, configs[name])

    @defer.inlineCallbacks
    def load(self, name, config):
        factory = self.available[name]
        context = ExtensionContext(self._server, name, config)
        try:
            extension = factory.build(context, config)
            verifyObject(IExtension, extension)
            yield defer.maybeDeferred(extension.start)
        except BaseException:
            context.close()
            raise
        self.loaded[name] = (extension, context)
        log.info("extension {name} loaded", name=name)
        return extension

    @defer.inlineCallbacks
    def unload(self, name):
        extension, context = self.loaded[name]
        try:
            yield defer.maybeDeferred(extension.stop)
        except Exception:
            log.failure("extension {name} failed to stop", name=name)
        context.close()
        # Only now: caches keyed on the loaded set (caps) must not drop features early.
        del self.loaded[name]

    @defer.inlineCallbacks
    def unload_all(self):
        for name in reversed(list(self.loaded)):
            yield self.unload(name)
