"""The plugin API: what an extension provides and what the server gives it.

A third-party extension is a pip package with a module in ``twisted/plugins/``
that holds an ``IExtensionFactory`` provider; Twisted's plugin system finds it and
``[extensions] enabled`` switches it on by name. The factory module must be light
(it is imported at every plugin scan): import the real code inside ``build()``.
"""

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface


class IExtensionFactory(IPlugin):
    """Describes an extension and builds it."""

    name = Attribute("Unique name used in [extensions] enabled, e.g. 'ping'.")
    description = Attribute("One line for humans (summitctl, logs).")
    requires = Attribute("Names of extensions that must be loaded before this one (a tuple).")

    def parse_config(raw, path):
        """Validate ``raw`` (the [extensions.<name>] table, {} when absent) and return the
        extension's config object. Raise ``summitd.config.ConfigError`` with
        (key path, message) pairs under ``path`` for every problem."""

    def build(context, config):
        """Return an ``IExtension`` registered through ``context`` (an IExtensionContext)."""


class IExtension(Interface):
    """A running extension."""

    def start():
        """Begin work (may return a Deferred). Registrations can happen here or in build()."""

    def stop():
        """Finish work (may return a Deferred); registrations are undone by the context."""


class IExtensionContext(Interface):
    """One per loaded extension: everything it registers goes through here and is undone
    when the extension is unloaded."""

    name = Attribute("The extension's name.")
    config = Attribute("The extension's parsed config (what parse_config returned).")
    domains = Attribute("The hosted domains (a frozenset of str).")
    clock = Attribute("IReactorTime: use it for every timer so tests can use a fake clock.")
    log = Attribute("A twisted.logger.Logger namespaced to the extension.")
    database = Attribute("The server's Database (runInteraction) for extensions that own SQL.")
    accounts = Attribute("The AccountManager: exists(jid), create, set_password, delete(jid_text) "
                         "(delete runs every extension's ACCOUNT_DELETING handler).")

    def hook(event, handler, priority):
        """Attach ``handler`` to an event from ``summitd.core.events`` (or an extension's own)."""

    def iq(type, target, namespace, name, handler):
        """Handle IQs of ``type`` ('get'/'set') to ``target`` (summitd.core.iq.SERVER or ACCOUNT)
        whose payload is {namespace}name. handler(iq, to_jid) returns the payload element,
        None, or a Deferred; raises StanzaError for an error reply."""

    def add_feature(namespace, target):
        """Announce a disco#info feature for the server (SERVER) or accounts (ACCOUNT)."""

    def add_identity(category, type, name):
        """Announce a disco#info identity of the server."""

    def provide(interface, obj):
        """Offer ``obj`` as the provider of ``interface`` to other extensions."""

    def need(interface):
        """The provider of ``interface`` (from an extension named in ``requires``)."""

    def migrate(component, migrations):
        """Apply this extension's versioned schema (summitd.storage.schema.Migration list);
        returns a Deferred."""

    def keyval(store):
        """A KeyValueStore named ``store``, for extensions that write no SQL."""

    def route(stanza):
        """Send a stanza from the server (its 'from' must be set)."""

    def request(iq, timeout):
        """Send an IQ get/set from the server; Deferred with the reply."""

    def sessions(jid):
        """The bound sessions of the account of ``jid`` (a list)."""

    def session(jid):
        """The session bound to the full JID ``jid``, or None."""

    def track_write(d):
        """Mark a Deferred as a durable write caused by a client's stanza (offline storage,
        archive): stream management acknowledges stanzas only after it fires. Returns d."""

    def write_barrier():
        """A Deferred firing when every tracked write in flight now has finished."""

    def hold_client_intake(reason):
        """Stop reading from client connections (``summitd.core.intake``) until
        ``release_client_intake(reason)`` or the extension stops: for work queued behind
        routing that falls too far behind."""

    def release_client_intake(reason):
        """Release a hold; reading resumes once no hold remains."""

    def all_sessions():
        """Every bound session of the server (a list)."""

    def notify(event, *args):
        """Tell every handler of a ``notify`` event (e.g. BLOCKLIST_CHANGED) what happened."""

    def run(event, *args):
        """Fire a ``run`` event; the first non-None answer of its handlers, or None."""

    def collect(event, *args):
        """Fire a ``collect`` event; the concatenated lists its handlers return."""

    def loaded_extensions():
        """The running extensions as (name, extension) pairs in load order; a different tuple
        after any load or unload (a cache key for what the server offers)."""

    def host_component(domain, handler):
        """Serve ``domain``, a domain the server does not host, inside the server:
        ``handler(stanza, to_jid)`` gets every stanza routed to it or its JIDs; the domain
        answers LOCAL_SERVICE."""

    def server_config():
        """The server's whole Config (frozen): transports built as extensions (s2s) read their
        own top-level table, [tls] and data_dir from it."""

    def server_secret():
        """The per-server secret (bytes, kept in data_dir), e.g. for dialback keys."""

    def reactor():
        """The reactor for network I/O (listening, connecting); timers use ``clock``."""

    def call_later(delay, fn, *args):
        """clock.callLater, cancelled automatically when the extension stops."""

    def looping_call(interval, fn, *args):
        """A task.LoopingCall on the clock, stopped automatically when the extension stops."""
