"""What the tests of the everyday service extensions share (disco, caps, version, ping,
private, vcard, register): a server with some extensions and accounts, logged-in clients,
IQ round trips and stanza-error checks."""

from twisted.trial import unittest
from zope.interface import implementer

from summitd.core.errors import NS_STANZA_ERRORS
from summitd.extensions.base import Extension
from summitd.extensions.interfaces import IExtensionFactory
from summitd.extensions.loader import discover
from summitd.testing import FakeClient, add_user, make_server

PASSWORD = "correct horse battery"


@implementer(IExtensionFactory)
class TestFactory:
    """A test-only extension whose build(context, config) is given."""

    def __init__(self, name, build, requires=()):
        self.name = name
        self.description = f"{name} (tests)"
        self.requires = tuple(requires)
        self._build = build

    def parse_config(self, raw, path):
        return raw

    def build(self, context, config):
        return self._build(context, config)


def registering(name, register, requires=()):
    """A TestFactory whose extension only calls ``register(context)``."""
    def build(context, config):
        register(context)
        return Extension(context)
    return TestFactory(name, build, requires)


class ServiceTestCase(unittest.TestCase):
    """A server with ``extensions`` (options from ``options``, extra test factories from
    ``extra_factories()``) and the accounts ``users``, all with PASSWORD."""

    extensions = ()
    options = {}
    users = ("alice", "bob")

    def setUp(self):
        available = dict(discover())
        for factory in self.extra_factories():
            available[factory.name] = factory
        self.server = make_server(extensions=list(self.extensions), extension_options=self.options,
                                  available=available)
        self.clock = self.server.clock
        for user in self.users:
            add_user(self.server, f"{user}@localhost", PASSWORD)

    def extra_factories(self):
        return ()

    def extension(self, name):
        """The running extension object called ``name``."""
        return self.server.extensions.loaded[name][0]

    def login(self, user="alice", resource="desk", password=PASSWORD):
        client = FakeClient(self.server)
        client.login(user, password, resource)
        return client

    def ask(self, client, payload, to=None, type="get", iq_id="q"):
        """Send an IQ with ``payload`` and return the next element the server sends."""
        address = f" to='{to}'" if to is not None else ""
        client.send(f"<iq type='{type}' id='{iq_id}'{address}>{payload}</iq>")
        return client.next()

    def assertResult(self, reply, iq_id="q"):
        self.assertEqual((reply.name, reply.getAttribute("type"), reply.getAttribute("id")),
                         ("iq", "result", iq_id), reply.toXml())
        return reply.firstChildElement()

    def assertStanzaError(self, reply, condition, iq_id="q"):
        """``reply`` is an IQ error with ``condition``; returns its <text/> (or None)."""
        self.assertEqual((reply.getAttribute("type"), reply.getAttribute("id")), ("error", iq_id),
                         reply.toXml())
        error = next(child for child in reply.elements() if child.name == "error")
        defined = [child for child in error.elements() if child.uri == NS_STANZA_ERRORS]
        self.assertEqual([c.name for c in defined if c.name != "text"], [condition], reply.toXml())
        texts = [str(c) for c in defined if c.name == "text"]
        return texts[0] if texts else None
