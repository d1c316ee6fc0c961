"""Public test helpers for summitd and for third-party extension authors.

``make_server()`` builds a whole server on a fake clock with a synchronous
in-memory database; ``FakeClient`` talks to it without sockets::

    from summitd.testing import FakeClient, add_user, make_server

    class MyTests(unittest.TestCase):
        def test_hello(self):
            server = make_server(extensions=["myext"])
            add_user(server, "alice@localhost", "secret")
            alice = FakeClient(server)
            alice.login("alice", "secret", "phone")
            alice.send("<iq type='get' id='1' to='localhost'><q xmlns='urn:example'/></iq>")
            alice.expect("<iq type='result' id='1'/>")
"""

from twisted.internet import task

from summitd.config import parse_config
from summitd.server import SummitServer
from summitd.storage.database import Database
from summitd.storage.engines import SQLiteEngine
from summitd.synchronous import result_of
from summitd.testing.client import FakeClient, ProtocolMismatch
from summitd.testing.matching import matches, mismatch, parse_xml
from summitd.testing.scram_client import ScramClient

__all__ = ["make_server", "add_user", "FakeClient", "ProtocolMismatch", "ScramClient",
           "matches", "mismatch", "parse_xml", "result_of"]


def make_server(extensions=(), domains=("localhost",), available=None, base_dir=".",
                extension_options=None, **sections):
    """A started server on a fake clock (``server.clock``), plain-text c2s allowed.

    ``extension_options`` maps an extension's name to its [extensions.<name>] table;
    ``sections`` are other config tables as in summitd.toml (e.g. ``c2s={"idle_timeout": 30}``);
    ``available`` maps extension names to factories (default: the installed plugins).
    """
    raw = {
        "server": {"domains": list(domains)},
        "extensions": {"enabled": list(extensions), **(extension_options or {})},
    }
    for name, table in sections.items():
        raw[name] = {**raw.get(name, {}), **table}
    raw.setdefault("c2s", {}).setdefault("require_encryption", False)
    config = parse_config(raw, base_dir)
    clock = task.Clock()
    database = Database(SQLiteEngine(":memory:"), clock, synchronous=True)
    server = SummitServer(config, clock, clock=clock, database=database,
                          extensions=available, secret=b"summitd-testing-secret-0123456789")
    result_of(server.start())
    return server


def add_user(server, jid, password):
    """Create an account synchronously (the test database is synchronous)."""
    return result_of(server.account_manager.create(jid, password))
