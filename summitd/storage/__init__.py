"""Persistent storage: a Database running SQL on one thread, the engines that
hold what differs between database products, versioned schemas, and the
stores built on them."""

from summitd.storage.accounts import AccountExists, AccountStore, NoSuchAccount
from summitd.storage.database import Database, DatabaseClosed, IntegrityError
from summitd.storage.engines import Engine, SQLiteEngine, UnsupportedDatabaseError, engine_from_url
from summitd.storage.keyval import KeyValueStore
from summitd.storage.schema import Migration, SchemaTooNewError, apply_migrations

__all__ = [
    "AccountExists",
    "AccountStore",
    "Database",
    "DatabaseClosed",
    "Engine",
    "IntegrityError",
    "KeyValueStore",
    "Migration",
    "NoSuchAccount",
    "SQLiteEngine",
    "SchemaTooNewError",
    "UnsupportedDatabaseError",
    "apply_migrations",
    "engine_from_url",
]
