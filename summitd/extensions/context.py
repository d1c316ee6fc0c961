"""The per-extension context: the extension's only handle on the server.

Every registration records how to undo itself, so ``close()`` leaves the server
exactly as it was before the extension loaded (Prosody's module object idea).
"""

from twisted.internet import task
from twisted.logger import Logger
from zope.interface import implementer

from summitd.core import events
from summitd.core.hooks import Priority
from summitd.core.iq import ACCOUNT, SERVER
from summitd.extensions.interfaces import IExtensionContext
from summitd.storage.keyval import KeyValueStore
from summitd.storage.schema import apply_migrations


class MissingProvider(Exception):
    """need() asked for an interface nobody provides."""


@implementer(IExtensionContext)
class ExtensionContext:
    def __init__(self, server, name, config):
        self._server = server
        self.name = name
        self.config = config
        self.domains = server.router.hosts
        self.clock = server.clock
        self.log = Logger(namespace=f"summitd.ext.{name}")
        self.database = server.database
        self.accounts = server.account_manager
        self._undo = []
        self._holds = set()     # hold_client_intake reasons (released when the extension stops)
        self._calls = []        # call_later's calls; those that fired or were cancelled are pruned
        self._calls_limit = 64

    def _remember(self, undo):
        self._undo.append(undo)

    def hook(self, event, handler, priority=Priority.DEFAULT):
        self._remember(self._server.hooks.add(event, handler, priority))

    def iq(self, type, target, namespace, name, handler):
        self._remember(self._server.router.iq.register(type, target, namespace, name, handler))

    def add_feature(self, namespace, target=SERVER):
        event = events.SERVER_DISCO_FEATURES if target == SERVER else events.ACCOUNT_DISCO_FEATURES
        features = (namespace,)
        self.hook(event, lambda _where: features)

    def add_identity(self, category, type, name=None):
        identity = ((category, type, name),)
        self.hook(events.SERVER_DISCO_IDENTITIES, lambda _host: identity)

    def provide(self, interface, obj):
        providers = self._server.providers
        if interface in providers:
            raise ValueError(f"{interface.__name__} is provided already")
        providers[interface] = obj
        self._remember(lambda: providers.pop(interface, None))

    def need(self, interface):
        try:
            return self._server.providers[interface]
        except KeyError:
            raise MissingProvider(f"{self.name} needs a provider of {interface.__name__}") from None

    def migrate(self, component, migrations):
        return apply_migrations(self.database, component, migrations)

    def keyval(self, store):
        return KeyValueStore(self.database, store)

    def route(self, stanza):
        self._server.router.route(stanza)

    def request(self, iq, timeout=60):
        return self._server.router.iq.request(iq, timeout)

    def sessions(self, jid):
        return self._server.router.sessions(jid)

    def session(self, jid):
        return self._server.router.session(jid)

    def track_write(self, d):
        """Mark ``d`` as a durable write caused by a client's stanza; stream management
        acknowledges stanzas only after such writes finish. Returns ``d``."""
        return self._server.writes.track(d)

    def write_barrier(self):
        """A Deferred firing when every tracked write in flight now has finished."""
        return self._server.writes.barrier()

    def hold_client_intake(self, reason):
        key = (self.name, reason)
        self._holds.add(key)
        self._server.intake.hold(key)

    def release_client_intake(self, reason):
        key = (self.name, reason)
        self._holds.discard(key)
        self._server.intake.release(key)

    def all_sessions(self):
        return self._server.router.all_sessions()

    def notify(self, event, *args):
        """Fire a ``notify`` event: every handler hears it (BLOCKLIST_CHANGED)."""
        self._server.hooks.notify(event, *args)

    def run(self, event, *args):
        """Fire a ``run`` event: the first non-None answer of its handlers, or None (for
        extensions that answer on behalf of others, such as disco asking for a node)."""
        return self._server.hooks.run(event, *args)

    def collect(self, event, *args):
        """Fire a ``collect`` event: the concatenated lists of its handlers (disco features)."""
        return self._server.hooks.collect(event, *args)

    def loaded_extensions(self):
        """The running extensions as (name, extension) pairs in load order. The tuple differs
        after any load or unload, so caches of what the server offers (caps) key on it."""
        return tuple((name, loaded[0]) for name, loaded in self._server.extensions.loaded.items())

    def host_component(self, domain, handler):
        """Serve ``domain``, a domain the server does not host (e.g. pubsub.example.org), inside
        the server: ``handler(stanza, to_jid)`` gets every stanza routed to it or its JIDs
        (the router's component table), and the domain answers LOCAL_SERVICE (federation
        accepts peers' stanzas for it)."""
        self._remember(self._server.router.add_component(domain, handler))
        self.hook(events.LOCAL_SERVICE, lambda asked: True if asked == domain else None)

    def server_config(self):
        """The server's whole Config (frozen). Extensions that are transports (s2s) read
        their own top-level table, [tls] and data_dir from it."""
        return self._server.config

    def server_secret(self):
        """The per-server secret (bytes, kept in data_dir): dialback keys (XEP-0185)."""
        return self._server.secret

    def reactor(self):
        """The reactor for network I/O (listening, connecting); timers use ``clock``."""
        return self._server.reactor

    def call_later(self, delay, fn, *args):
        call = self.clock.callLater(delay, fn, *args)
        self._calls.append(call)
        if len(self._calls) > self._calls_limit:
            # An extension may schedule calls forever: keep only the pending ones.
            self._calls = [c for c in self._calls if c.active()]
            self._calls_limit = max(64, 2 * len(self._calls))
        return call

    def looping_call(self, interval, fn, *args):
        loop = task.LoopingCall(fn, *args)
        loop.clock = self.clock
        loop.start(interval, now=False)
        self._remember(lambda: loop.stop() if loop.running else None)
        return loop

    def close(self):
        """Undo every registration, newest first."""
        holds, self._holds = self._holds, set()
        for key in holds:
            self._server.intake.release(key)
        calls, self._calls = self._calls, []
        for call in calls:
            if call.active():
                call.cancel()
        while self._undo:
            self._undo.pop()()


__all__ = ["ExtensionContext", "MissingProvider", "SERVER", "ACCOUNT"]
