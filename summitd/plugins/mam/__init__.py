"""Message Archive Management (XEP-0313, urn:xmpp:mam:2 with #extended), with stable stanza
ids (XEP-0359), archiving preferences (XEP-0441), full-text search (XEP-0431) and retention.

The package, one concept per module: ``store`` (the IArchiveStore interface, the
paging algorithm, and IMessageArchive for other extensions), ``memory`` and ``sql``
(its backends), ``fulltext`` (what a search
means), ``stanza_id`` (ids, stamping, forged ones), ``archiving`` (which messages go
into which archive), ``writer`` (batched writes), ``prefs``, ``query`` (the query
protocol), ``handlers`` (the IQs) and ``retention``.

Options, under ``[extensions.mam]``::

    backend = "sql"                 # "sql" (the server's database) or "memory" (tests)
    default_preference = "always"   # for users who set none: always | never | roster
    default_page_size = 50          # results per query when the client gives no <max/>
    max_page_size = 250             # the cap on <max/> (larger requests are clamped)
    fulltext = true                 # offer {urn:xmpp:fulltext:0}fulltext (needs FTS5)
    max_age_days = 0                # delete messages older than this (0: keep forever)
    max_messages_per_user = 0       # keep at most this many per archive (0: no limit)
    retention_interval = 3600       # seconds between retention runs
    max_prefs_jids = 1000           # JIDs allowed in one user's always/never lists
    write_delay = 0.1               # seconds between archive batches (batches grow with load)
    max_queued_writes = 50000       # entries waiting for the database: at a tenth, client
                                    # input pauses until a fiftieth are left; past it (only
                                    # while the database fails) messages go unarchived
"""

from dataclasses import dataclass, fields, replace

from twisted.internet import defer
from zope.interface import Interface

from summitd.config import ConfigError
from summitd.core import events
from summitd.storage.keyval import stored_secret
from summitd.extensions.base import Extension
from summitd.plugins.mam.archiving import Archiver
from summitd.plugins.mam.handlers import ArchiveService, metadata_element
from summitd.plugins.mam.prefs import MODES, Preferences
from summitd.plugins.mam.retention import Retention
from summitd.plugins.mam.stanza_id import ArchiveClock, IdMaker
from summitd.plugins.mam.store import IMessageArchive
from summitd.plugins.mam.writer import ArchiveWriter

KEY_STORE, KEY_NAME = "mam", "stanza-id-key"


@dataclass(frozen=True)
class MamConfig:
    backend: str = "sql"
    default_preference: str = "always"
    default_page_size: int = 50
    max_page_size: int = 250
    fulltext: bool = True
    max_age_days: float = 0
    max_messages_per_user: int = 0
    retention_interval: float = 3600
    max_prefs_jids: int = 1000
    write_delay: float = 0.1
    max_queued_writes: int = 50_000


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


#: option -> (check, message)
_CHECKS = {
    "backend": (lambda v: v in ("sql", "memory"), "must be \"sql\" or \"memory\""),
    "default_preference": (lambda v: v in MODES, "must be \"always\", \"never\" or \"roster\""),
    "default_page_size": (lambda v: _is_count(v) and v >= 1, "must be a positive integer"),
    "max_page_size": (lambda v: _is_count(v) and 1 <= v <= 10_000,
                      "must be an integer from 1 to 10000"),
    "fulltext": (lambda v: isinstance(v, bool), "must be true or false"),
    "max_age_days": (lambda v: _is_number(v) and v >= 0, "must be a number >= 0 (0: no limit)"),
    "max_messages_per_user": (_is_count, "must be an integer >= 0 (0: no limit)"),
    "retention_interval": (lambda v: _is_number(v) and v > 0, "must be a positive number of seconds"),
    "max_prefs_jids": (_is_count, "must be an integer >= 0"),
    "write_delay": (lambda v: _is_number(v) and 0 <= v <= 10, "must be 0 to 10 seconds"),
    "max_queued_writes": (lambda v: _is_count(v) and v >= 1, "must be a positive integer"),
}


def parse_config(raw, path):
    errors = []
    known = {f.name for f in fields(MamConfig)}
    values = {}
    for key, value in raw.items():
        if key not in known:
            errors.append((f"{path}.{key}", "unknown option"))
            continue
        check, message = _CHECKS[key]
        if not check(value):
            errors.append((f"{path}.{key}", f"{message} (got {value!r})"))
            continue
        values[key] = value
    config = MamConfig(**values)
    if config.default_page_size > config.max_page_size:
        errors.append((f"{path}.default_page_size", "must not exceed max_page_size"))
    if errors:
        raise ConfigError(errors)
    return config


def _make_store(context, config):
    if config.backend == "memory":
        from summitd.plugins.mam.memory import MemoryArchiveStore
        return MemoryArchiveStore()
    from summitd.plugins.mam.sql import SQLArchiveStore
    return SQLArchiveStore(context.database, fulltext=config.fulltext)


def _id_key(context):
    """The server's secret for archive ids, made at the first start and kept."""
    return stored_secret(context.keyval(KEY_STORE), KEY_NAME)


class IArchiveMetadata(Interface):
    """What Bind 2 (XEP-0386) puts in <bound/>: the state of an archive at binding."""

    def metadata_element(host, user):
        """A Deferred firing with the XEP-0313 §5 <metadata/> element of the archive."""


class MamExtension(Extension):
    """Wires the archive's parts together once the store is ready."""

    def __init__(self, context, config, store):
        super().__init__(context)
        self.store = store
        self.limits = replace(config, fulltext=config.fulltext and store.supports_fulltext)
        self.writer = ArchiveWriter(store, context, delay=config.write_delay,
                                    max_queued=config.max_queued_writes)
        self.preferences = Preferences(store, config.default_preference)
        self.retention = Retention(context, store, config.max_age_days,
                                   config.max_messages_per_user, config.retention_interval)
        self.archiver = None
        context.provide(IArchiveMetadata, self)

    def metadata_element(self, host, user):
        """IArchiveMetadata: what was archived before this moment is in the answer."""
        return metadata_element(self.store, self.writer, host, user)

    @defer.inlineCallbacks
    def start(self):
        context = self.context
        yield self.store.setup()
        key = yield _id_key(context)
        yield self.preferences.load()
        clock = ArchiveClock(context.clock)
        clock.seed((yield self.store.last_timestamp()))
        self.archiver = Archiver(context, self.writer, self.preferences, clock, IdMaker(key))
        ArchiveService(context, self.store, self.writer, self.preferences, self.limits)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)
        context.hook(events.ACCOUNT_CREATED, self._account_created)
        context.hook(events.SERVER_STOPPING, self.writer.flush)
        self.retention.start()
        context.provide(IMessageArchive, self)

    def stop(self):
        return self.writer.drain()

    def archive_received(self, stanza, to_jid):
        """IMessageArchive: archive a message the one-to-one rules leave out (MIX-PAM)."""
        return self.archiver.archive_received(stanza, to_jid)

    def _account_created(self, jid):
        self.writer.remember(jid.host, jid.user)
        self.context.track_write(self.store.account_created(jid.host, jid.user))

    def _account_deleting(self, jid, txn):
        self.writer.forget(jid.host, jid.user)
        self.store.delete_archive(txn, jid.host, jid.user)
        self.preferences.forget(jid.host, jid.user)
        self.archiver.forget(jid)


def build(context, config):
    if config is None:
        config = MamConfig()
    return MamExtension(context, config, _make_store(context, config))
