"""The composition root: one object that wires config, clock, storage, router and extensions.

Nothing here touches the global reactor: ``tap.py`` passes it in, tests pass a
``task.Clock`` and a synchronous in-memory database. Transports (listening
sockets) are set up by the service in ``service.py``; the server itself can run
without any, which is how ``summitctl`` and the unit tests use it.
"""

import os
import secrets

from twisted.internet import defer
from twisted.logger import Logger

from summitd.accounts import AccountManager
from summitd.core import events
from summitd.core.durability import WriteTracker
from summitd.core.intake import ClientIntake
from summitd.core.hooks import Hooks
from summitd.core.ratelimit import RateLimiter
from summitd.core.router import Router
from summitd.extensions.loader import ExtensionManager
from summitd.storage.accounts import AccountStore
from summitd.storage.database import Database
from summitd.storage.engines import engine_from_url
from summitd.storage.keyval import KeyValueStore


class SummitServer:
    log = Logger()

    def __init__(self, config, reactor, *, clock=None, database=None, extensions=None, secret=None):
        self.config = config
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.hooks = Hooks()
        self.router = Router(config.server.domains, self.hooks, self.clock)
        if database is None:
            base_dir = config.path.parent if config.path is not None else config.server.data_dir.parent
            database = Database(engine_from_url(config.storage.database, base_dir), reactor)
        self.database = database
        self.accounts = AccountStore(database, self.clock)
        self.account_manager = AccountManager(
            self.accounts, self.hooks, self.router.hosts, config.auth.scram_iterations)
        self.providers = {}
        self.writes = WriteTracker()
        self.intake = ClientIntake()
        self.extensions = ExtensionManager(self, extensions)
        self.tls_context = None
        self._secret = secret
        refill = 1.0 / config.auth.failure_refill_seconds
        self._account_failures = RateLimiter(refill, config.auth.failures_per_account, self.clock)
        self._address_failures = RateLimiter(refill, config.auth.failures_per_address, self.clock)

    @property
    def secret(self):
        """A per-server secret (fake SCRAM salts, later dialback keys), kept in data_dir."""
        if self._secret is None:
            self._secret = _load_or_create_secret(self.config.server.data_dir / "server.secret")
        return self._secret

    @defer.inlineCallbacks
    def start(self):
        """Prepare storage and load the enabled extensions (no network)."""
        yield self.accounts.setup()
        yield KeyValueStore(self.database, "core").setup()
        yield self.extensions.load_all(self.config.extensions.enabled, self.config.extensions.options)
        self.hooks.notify(events.SERVER_STARTED)

    @defer.inlineCallbacks
    def stop(self):
        yield self.extensions.unload_all()
        self.router.iq.cancel_all()
        yield self.database.close()

    # -- failed-login rate limits ------------------------------------------------------

    def address_login_limited(self, address):
        return self._address_failures.retry_after(address) > 0

    def account_login_limited(self, host, username):
        return self._account_failures.retry_after((host, username)) > 0

    def record_login_failure(self, address, host, username):
        self._address_failures.allow(address)
        if username is not None:
            self._account_failures.allow((host, username))


def _load_or_create_secret(path):
    try:
        with open(path, "rb") as f:
            secret = f.read()
        if len(secret) >= 32:
            return secret
    except FileNotFoundError:
        pass
    os.makedirs(path.parent, exist_ok=True)
    secret = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret
