"""Tests for summitd.storage: engines, Database, schema migrations and stores."""

import os
import threading

from twisted.internet import defer, task
from twisted.logger import Logger, formatEvent
from twisted.trial import unittest

from summitd.sasl.credentials import ScramCredentials
from summitd.storage.accounts import AccountExists, AccountStore, NoSuchAccount
from summitd.storage.database import Database, DatabaseClosed, IntegrityError
from summitd.storage.engines import SQLiteEngine, UnsupportedDatabaseError, engine_from_url
from summitd.storage.keyval import KeyValueStore
from summitd.storage.schema import (
    Migration,
    SchemaError,
    SchemaTooNewError,
    apply_migrations,
)


def memory_db(testcase, **kwargs):
    """A synchronous in-memory Database, closed when the test ends."""
    db = Database(SQLiteEngine(":memory:"), synchronous=True, **kwargs)
    testcase.addCleanup(db.close)
    return db


def create_items(txn):
    txn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)")


def add_item(txn, name):
    txn.execute("INSERT INTO items (name) VALUES (?)", (name,))
    return txn.lastrowid


def item_names(txn):
    return [row[0] for row in txn.execute("SELECT name FROM items ORDER BY id").fetchall()]


class Boom(Exception):
    """Raised by transaction functions that must roll back."""


def add_then_fail(txn, name):
    add_item(txn, name)
    raise Boom()


def scram(hash_name, seed=b"x"):
    return ScramCredentials(
        hash_name=hash_name,
        salt=b"salt\x00\xff" + seed,
        iterations=4096,
        stored_key=b"stored\x00" + seed,
        server_key=b"server\xff" + seed,
    )


class EngineFromURLTests(unittest.TestCase):
    """engine_from_url turns configuration URLs into engines."""

    def test_relative_path(self):
        """sqlite:///relative/path is relative to the base directory."""
        engine = engine_from_url("sqlite:///data/summitd.db", "/var/lib/summitd")
        self.assertIsInstance(engine, SQLiteEngine)
        self.assertEqual(engine.path, "/var/lib/summitd/data/summitd.db")

    def test_absolute_path(self):
        """sqlite:////abs/path names an absolute path; base_dir is ignored."""
        engine = engine_from_url("sqlite:////srv/summitd.db", "/var/lib/summitd")
        self.assertEqual(engine.path, "/srv/summitd.db")

    def test_memory(self):
        """sqlite:///:memory: is an in-memory database."""
        engine = engine_from_url("sqlite:///:memory:", "/var/lib/summitd")
        self.assertEqual(engine.path, ":memory:")
        self.assertTrue(engine.in_memory)

    def test_percent_decoding(self):
        """Percent-escapes in the path are decoded."""
        engine = engine_from_url("sqlite:///my%20data.db", "/base")
        self.assertEqual(engine.path, "/base/my data.db")

    def test_postgresql_not_yet_supported(self):
        """postgresql:// (and postgres://) URLs fail with a clear message."""
        for url in ("postgresql://user:secret@db/summitd", "postgres://db/summitd"):
            e = self.assertRaises(UnsupportedDatabaseError, engine_from_url, url, "/base")
            self.assertIn("not yet supported", str(e))
            self.assertNotIn("secret", str(e))

    def test_unusable_urls(self):
        """Unknown schemes, missing schemes, hosts and empty paths are refused."""
        for url in ("mysql://db/x", "summitd.db", "sqlite://host/x.db", "sqlite:///", "sqlite://"):
            self.assertRaises(UnsupportedDatabaseError, engine_from_url, url, "/base")

    def test_unsupported_is_value_error(self):
        """Configuration code can treat a bad URL as any bad value."""
        self.assertTrue(issubclass(UnsupportedDatabaseError, ValueError))


class SQLiteEngineTests(unittest.TestCase):
    """SQLiteEngine configures its connections for safety."""

    def test_connection_settings(self):
        """Connections enforce foreign keys, are durable, and wait on locks."""
        engine = SQLiteEngine(":memory:", busy_timeout=2.5)
        conn = engine.connect()
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("PRAGMA foreign_keys").fetchone()[0], 1)
        self.assertEqual(conn.execute("PRAGMA synchronous").fetchone()[0], 2)
        self.assertEqual(conn.execute("PRAGMA busy_timeout").fetchone()[0], 2500)

    def test_placeholder_and_sql(self):
        """SQLite takes ?-style SQL as written."""
        engine = SQLiteEngine(":memory:")
        self.assertEqual(engine.placeholder, "?")
        self.assertEqual(engine.convert_sql("SELECT ?"), "SELECT ?")

    def test_supports_fts(self):
        """supports_fts reports whether FTS5 is compiled in, as a bool."""
        engine = SQLiteEngine(":memory:")
        self.assertIsInstance(engine.supports_fts, bool)


class SynchronousDatabaseTests(unittest.TestCase):
    """A synchronous Database runs transactions inline."""

    def setUp(self):
        self.db = memory_db(self)
        self.successResultOf(self.db.runInteraction("create", create_items))

    def test_already_fired(self):
        """The Deferred has fired when runInteraction returns."""
        self.assertEqual(self.successResultOf(self.db.runInteraction("add", add_item, "a")), 1)

    def test_runs_in_calling_thread(self):
        """The transaction function runs in the caller's thread."""
        ident = self.successResultOf(
            self.db.runInteraction("ident", lambda txn: threading.get_ident())
        )
        self.assertEqual(ident, threading.get_ident())

    def test_args_and_kwargs(self):
        """Extra positional and keyword arguments reach the function."""

        def fn(txn, a, b=None):
            return (a, b)

        d = self.db.runInteraction("args", fn, 1, b=2)
        self.assertEqual(self.successResultOf(d), (1, 2))

    def test_commit(self):
        """What a returning function wrote is visible to later transactions."""
        self.db.runInteraction("add", add_item, "a")
        self.db.runInteraction("add", add_item, "b")
        self.assertEqual(self.successResultOf(self.db.runInteraction("names", item_names)), ["a", "b"])

    def test_rollback(self):
        """An exception rolls the transaction back and fails the Deferred with it."""
        failure = self.failureResultOf(self.db.runInteraction("fail", add_then_fail, "a"), Boom)
        self.assertIsInstance(failure.value, Boom)
        self.assertEqual(self.successResultOf(self.db.runInteraction("names", item_names)), [])

    def test_ddl_rolled_back(self):
        """Schema changes are transactional too."""

        def create_then_fail(txn):
            txn.execute("CREATE TABLE other (x INTEGER)")
            raise Boom()

        self.failureResultOf(self.db.runInteraction("fail", create_then_fail), Boom)
        rows = self.successResultOf(
            self.db.runQuery("SELECT name FROM sqlite_master WHERE name = ?", ("other",))
        )
        self.assertEqual(rows, [])

    def test_integrity_error(self):
        """Constraint violations surface as summitd's IntegrityError."""
        self.db.runInteraction("add", add_item, "a")
        self.failureResultOf(self.db.runInteraction("add", add_item, "a"), IntegrityError)

    def test_returning_deferred_refused(self):
        """A function returning a Deferred is an error, and is rolled back."""

        def fn(txn):
            add_item(txn, "a")
            return defer.succeed(None)

        self.failureResultOf(self.db.runInteraction("bad", fn), TypeError)
        self.assertEqual(self.successResultOf(self.db.runInteraction("names", item_names)), [])

    def test_run_query(self):
        """runQuery fires with all rows as tuples."""
        self.db.runInteraction("add", add_item, "a")
        self.db.runInteraction("add", add_item, "b")
        rows = self.successResultOf(self.db.runQuery("SELECT id, name FROM items WHERE id > ?", (1,)))
        self.assertEqual(rows, [(2, "b")])

    def test_transaction_cursor_api(self):
        """The transaction offers executemany, fetchone, rowcount and lastrowid."""

        def fn(txn):
            txn.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",), ("c",)])
            inserted = txn.rowcount
            txn.execute("INSERT INTO items (name) VALUES (?)", ("d",))
            last = txn.lastrowid
            txn.execute("SELECT count(*) FROM items")
            return inserted, last, txn.fetchone()

        self.assertEqual(self.successResultOf(self.db.runInteraction("api", fn)), (3, 4, (4,)))

    def test_closed(self):
        """After close(), work fails with DatabaseClosed; closing twice is fine."""
        self.successResultOf(self.db.close())
        self.successResultOf(self.db.close())
        self.failureResultOf(self.db.runInteraction("names", item_names), DatabaseClosed)


class SlowTransactionLogTests(unittest.TestCase):
    """Slow transactions are logged by description, never with parameters."""

    def setUp(self):
        self.events = []
        self.db = memory_db(self)
        self.db.log = Logger(observer=self.events.append)
        # A fake timer: the transaction below "takes" as long as it sets.
        self.elapsed = 0.0
        self.db._now = lambda: self.elapsed

    def run_with_secret(self):
        def fn(txn, secret):
            txn.execute("SELECT ?", (secret,))
            self.elapsed = 0.75

        self.successResultOf(self.db.runInteraction("check password", fn, "hunter2"))

    def test_slow_logged(self):
        """A transaction over the threshold is logged with its description."""
        self.run_with_secret()
        self.assertEqual(len(self.events), 1)
        event = self.events[0]
        self.assertEqual(event["description"], "check password")
        self.assertEqual(event["elapsed"], 0.75)
        self.assertIn("'check password' took 0.750 s", formatEvent(event))
        self.assertNotIn("hunter2", repr(event))

    def test_fast_not_logged(self):
        """A transaction under the threshold is not logged."""
        self.db.SLOW_TRANSACTION_SECONDS = 1.0
        self.run_with_secret()
        self.assertEqual(self.events, [])


class ThreadedDatabaseTests(unittest.TestCase):
    """A threaded Database runs every transaction on one dedicated thread."""

    def setUp(self):
        self.db = Database(SQLiteEngine(":memory:"))
        self.addCleanup(self.db.close)
        return self.db.runInteraction("create", create_items)

    @defer.inlineCallbacks
    def test_one_dedicated_thread(self):
        """All transactions run on the same thread, not the reactor's."""
        idents = yield defer.gatherResults(
            [self.db.runInteraction("ident", lambda txn: threading.get_ident()) for _ in range(5)]
        )
        self.assertEqual(len(set(idents)), 1)
        self.assertNotEqual(idents[0], threading.get_ident())

    @defer.inlineCallbacks
    def test_commit_and_rollback(self):
        """Commit and rollback behave as in synchronous mode."""
        yield self.db.runInteraction("add", add_item, "a")
        yield self.assertFailure(self.db.runInteraction("fail", add_then_fail, "b"), Boom)
        names = yield self.db.runInteraction("names", item_names)
        self.assertEqual(names, ["a"])

    @defer.inlineCallbacks
    def test_in_order(self):
        """Transactions run in submission order."""
        for name in "abcdef":
            self.db.runInteraction("add", add_item, name)
        names = yield self.db.runInteraction("names", item_names)
        self.assertEqual(names, list("abcdef"))

    @defer.inlineCallbacks
    def test_close_finishes_queued_work(self):
        """close() lets queued work finish, then stops the thread."""
        added = self.db.runInteraction("add", add_item, "a")
        yield self.db.close()
        self.assertEqual(self.successResultOf(added), 1)
        self.assertFalse(self.db._pool.started)
        yield self.assertFailure(self.db.runInteraction("names", item_names), DatabaseClosed)


class DurabilityTests(unittest.TestCase):
    """A file-backed SQLite database keeps committed data."""

    def setUp(self):
        self.path = self.mktemp()

    def open(self):
        db = Database(SQLiteEngine(self.path))
        self.addCleanup(db.close)
        return db

    @defer.inlineCallbacks
    def test_reopen(self):
        """Data written, committed and closed is there after reopening."""
        db = self.open()
        yield db.runInteraction("create", create_items)
        yield db.runInteraction("add", add_item, "kept")
        yield db.close()
        self.assertTrue(os.path.exists(self.path))

        db = self.open()
        names = yield db.runInteraction("names", item_names)
        self.assertEqual(names, ["kept"])

    @defer.inlineCallbacks
    def test_durable_settings(self):
        """The file uses the WAL journal and synchronous=FULL."""
        db = self.open()
        [(mode,)] = yield db.runQuery("PRAGMA journal_mode")
        [(sync,)] = yield db.runQuery("PRAGMA synchronous")
        [(fks,)] = yield db.runQuery("PRAGMA foreign_keys")
        self.assertEqual((mode, sync, fks), ("wal", 2, 1))


V1 = Migration(1, ("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",))
V2 = Migration(2, ("ALTER TABLE notes ADD COLUMN author TEXT", "CREATE INDEX notes_author ON notes (author)"))


class SchemaTests(unittest.TestCase):
    """apply_migrations brings a component's schema up to date."""

    def setUp(self):
        self.db = memory_db(self)

    def version(self, component="notes"):
        rows = self.successResultOf(
            self.db.runQuery("SELECT version FROM schema_versions WHERE component = ?", (component,))
        )
        return rows[0][0] if rows else None

    def test_fresh(self):
        """On an empty database every migration runs and the version is recorded."""
        self.assertEqual(self.successResultOf(apply_migrations(self.db, "notes", [V1, V2])), 2)
        self.assertEqual(self.version(), 2)
        self.successResultOf(self.db.runQuery("INSERT INTO notes (body, author) VALUES (?, ?)", ("hi", "me")))

    def test_incremental(self):
        """Only migrations newer than the recorded version run."""
        self.assertEqual(self.successResultOf(apply_migrations(self.db, "notes", [V1])), 1)
        # Running V1 again would fail: the table exists.
        self.assertEqual(self.successResultOf(apply_migrations(self.db, "notes", [V1, V2])), 2)
        self.assertEqual(self.version(), 2)

    def test_up_to_date(self):
        """Applying again is a no-op returning the current version."""
        self.successResultOf(apply_migrations(self.db, "notes", [V1, V2]))
        self.assertEqual(self.successResultOf(apply_migrations(self.db, "notes", [V1, V2])), 2)

    def test_newer_refused(self):
        """A database newer than the code is refused with a clear error."""
        self.successResultOf(apply_migrations(self.db, "notes", [V1, V2]))
        failure = self.failureResultOf(apply_migrations(self.db, "notes", [V1]), SchemaTooNewError)
        self.assertIn("version 2", str(failure.value))
        self.assertIn("only knows up to version 1", str(failure.value))
        self.assertEqual(self.version(), 2)

    def test_failed_migration_rolled_back(self):
        """A failing step leaves the schema at the previous version, unchanged."""
        bad = Migration(2, ("ALTER TABLE notes ADD COLUMN author TEXT", "THIS IS NOT SQL"))
        self.successResultOf(apply_migrations(self.db, "notes", [V1]))
        self.failureResultOf(apply_migrations(self.db, "notes", [V1, bad]))
        self.assertEqual(self.version(), 1)
        # The first statement of the failed step was undone.
        self.assertEqual(self.successResultOf(apply_migrations(self.db, "notes", [V1, V2])), 2)

    def test_components_independent(self):
        """Each component has its own version."""
        other = Migration(1, ("CREATE TABLE other (x INTEGER)",))
        self.successResultOf(apply_migrations(self.db, "notes", [V1, V2]))
        self.assertEqual(self.successResultOf(apply_migrations(self.db, "other", [other])), 1)
        self.assertEqual((self.version("notes"), self.version("other")), (2, 1))

    def test_bad_declarations(self):
        """Unordered, duplicate, non-positive or empty migration lists are refused."""
        for migrations in ([V2, V1], [V1, V1], [Migration(0, ())], []):
            self.failureResultOf(apply_migrations(self.db, "notes", migrations), SchemaError)

    def test_string_statements_refused(self):
        """A bare string instead of a tuple of statements is caught early."""
        self.assertRaises(SchemaError, Migration, 1, "CREATE TABLE x (y INTEGER)")


class KeyValueStoreTests(unittest.TestCase):
    """KeyValueStore keeps JSON values per store, host, user and key."""

    def setUp(self):
        self.db = memory_db(self)
        self.prefs = KeyValueStore(self.db, "prefs")
        self.vcard = KeyValueStore(self.db, "vcard")
        self.successResultOf(self.prefs.setup())
        self.successResultOf(self.vcard.setup())

    def get(self, store, *args):
        return self.successResultOf(store.get(*args))

    def test_missing(self):
        """An unknown key reads as None."""
        self.assertIsNone(self.get(self.prefs, "example.org", "alice", "lang"))

    def test_round_trip(self):
        """JSON values come back equal."""
        value = {"lang": "de", "n": [1, 2.5, None, True], "ü": "✓"}
        self.successResultOf(self.prefs.set("example.org", "alice", "k", value))
        self.assertEqual(self.get(self.prefs, "example.org", "alice", "k"), value)

    def test_overwrite(self):
        """set() replaces an earlier value."""
        self.prefs.set("example.org", "alice", "k", 1)
        self.prefs.set("example.org", "alice", "k", 2)
        self.assertEqual(self.get(self.prefs, "example.org", "alice", "k"), 2)

    def test_isolation(self):
        """Stores, hosts and users do not see each other's values."""
        self.prefs.set("example.org", "alice", "k", "prefs")
        self.vcard.set("example.org", "alice", "k", "vcard")
        self.prefs.set("example.org", "bob", "k", "bob")
        self.prefs.set("example.net", "alice", "k", "net")
        self.assertEqual(self.get(self.prefs, "example.org", "alice", "k"), "prefs")
        self.assertEqual(self.get(self.vcard, "example.org", "alice", "k"), "vcard")
        self.assertEqual(self.get(self.prefs, "example.org", "bob", "k"), "bob")
        self.assertEqual(self.get(self.prefs, "example.net", "alice", "k"), "net")

    def test_delete(self):
        """delete() removes one key and reports whether it existed."""
        self.prefs.set("example.org", "alice", "a", 1)
        self.prefs.set("example.org", "alice", "b", 2)
        self.assertTrue(self.successResultOf(self.prefs.delete("example.org", "alice", "a")))
        self.assertFalse(self.successResultOf(self.prefs.delete("example.org", "alice", "a")))
        self.assertEqual(self.successResultOf(self.prefs.items("example.org", "alice")), {"b": 2})

    def test_items(self):
        """items() returns one store's values for one user."""
        self.prefs.set("example.org", "alice", "a", 1)
        self.prefs.set("example.org", "alice", "b", [2])
        self.vcard.set("example.org", "alice", "c", 3)
        self.assertEqual(
            self.successResultOf(self.prefs.items("example.org", "alice")), {"a": 1, "b": [2]}
        )
        self.assertEqual(self.successResultOf(self.prefs.items("example.org", "bob")), {})

    def test_delete_user(self):
        """delete_user() removes one user's values from every store."""
        self.prefs.set("example.org", "alice", "a", 1)
        self.vcard.set("example.org", "alice", "b", 2)
        self.prefs.set("example.org", "bob", "a", 3)
        self.assertEqual(self.successResultOf(self.prefs.delete_user("example.org", "alice")), 2)
        self.assertEqual(self.successResultOf(self.vcard.items("example.org", "alice")), {})
        self.assertEqual(self.get(self.prefs, "example.org", "bob", "a"), 3)

    def test_unserialisable(self):
        """A value JSON cannot encode fails the Deferred; nothing is stored."""
        self.failureResultOf(self.prefs.set("example.org", "alice", "k", object()), TypeError)
        self.assertIsNone(self.get(self.prefs, "example.org", "alice", "k"))


class AccountStoreTests(unittest.TestCase):
    """AccountStore keeps accounts and their SCRAM credentials."""

    def setUp(self):
        self.db = memory_db(self)
        self.clock = task.Clock()
        self.clock.advance(1700000000)
        self.accounts = AccountStore(self.db, clock=self.clock)
        self.successResultOf(self.accounts.setup())
        self.creds = {"sha1": scram("sha1"), "sha256": scram("sha256")}

    def create(self, host, username, creds=None):
        return self.successResultOf(self.accounts.create(host, username, creds or self.creds))

    def count_credentials(self):
        return self.successResultOf(self.db.runQuery("SELECT count(*) FROM credentials"))[0][0]

    def test_create_and_exists(self):
        """A created account exists, with its creation time from the clock."""
        self.assertFalse(self.successResultOf(self.accounts.exists("example.org", "alice")))
        self.create("example.org", "alice")
        self.assertTrue(self.successResultOf(self.accounts.exists("example.org", "alice")))
        self.assertFalse(self.successResultOf(self.accounts.exists("example.net", "alice")))
        rows = self.successResultOf(self.db.runQuery("SELECT created FROM accounts"))
        self.assertEqual(rows, [(1700000000,)])

    def test_duplicate(self):
        """Creating an existing account fails with AccountExists and changes nothing."""
        self.create("example.org", "alice")
        other = {"sha256": scram("sha256", b"other")}
        failure = self.failureResultOf(self.accounts.create("example.org", "alice", other), AccountExists)
        self.assertEqual((failure.value.host, failure.value.username), ("example.org", "alice"))
        got = self.successResultOf(self.accounts.get_credentials("example.org", "alice", "sha256"))
        self.assertEqual(got, self.creds["sha256"])

    def test_no_normalisation(self):
        """Usernames are stored exactly as given."""
        self.create("example.org", "alice")
        self.create("example.org", "Alice")
        self.assertEqual(
            self.successResultOf(self.accounts.list_users()),
            [("example.org", "Alice"), ("example.org", "alice")],
        )

    def test_get_credentials(self):
        """Stored keys come back byte for byte, per hash function."""
        self.create("example.org", "alice")
        for name in ("sha1", "sha256"):
            got = self.successResultOf(self.accounts.get_credentials("example.org", "alice", name))
            self.assertEqual(got, self.creds[name])
            self.assertIsInstance(got.salt, bytes)

    def test_get_credentials_missing(self):
        """Missing keys or a missing account read as None."""
        self.create("example.org", "alice", {"sha256": scram("sha256")})
        self.assertIsNone(self.successResultOf(self.accounts.get_credentials("example.org", "alice", "sha1")))
        self.assertIsNone(self.successResultOf(self.accounts.get_credentials("example.org", "bob", "sha256")))

    def test_delete_cascades(self):
        """Deleting an account deletes its credentials and reports success."""
        self.create("example.org", "alice")
        self.create("example.org", "bob")
        self.assertEqual(self.count_credentials(), 4)
        self.assertTrue(self.successResultOf(self.accounts.delete("example.org", "alice")))
        self.assertEqual(self.count_credentials(), 2)
        self.assertFalse(self.successResultOf(self.accounts.exists("example.org", "alice")))
        self.assertIsNone(self.successResultOf(self.accounts.get_credentials("example.org", "alice", "sha1")))

    def test_delete_missing(self):
        """Deleting an absent account reports False."""
        self.assertFalse(self.successResultOf(self.accounts.delete("example.org", "nobody")))

    def test_list_users(self):
        """list_users is sorted, for all hosts or one."""
        for host, user in [("b.org", "zed"), ("a.org", "bob"), ("b.org", "amy"), ("a.org", "al")]:
            self.create(host, user)
        self.assertEqual(
            self.successResultOf(self.accounts.list_users()),
            [("a.org", "al"), ("a.org", "bob"), ("b.org", "amy"), ("b.org", "zed")],
        )
        self.assertEqual(
            self.successResultOf(self.accounts.list_users("b.org")), [("b.org", "amy"), ("b.org", "zed")]
        )
        self.assertEqual(self.successResultOf(self.accounts.list_users("c.org")), [])

    def test_set_credentials_replaces_all(self):
        """set_credentials replaces every hash's keys, so old ones stop working."""
        self.create("example.org", "alice")
        new = {"sha256": scram("sha256", b"new")}
        self.successResultOf(self.accounts.set_credentials("example.org", "alice", new))
        self.assertEqual(
            self.successResultOf(self.accounts.get_credentials("example.org", "alice", "sha256")), new["sha256"]
        )
        self.assertIsNone(self.successResultOf(self.accounts.get_credentials("example.org", "alice", "sha1")))

    def test_set_credentials_no_account(self):
        """set_credentials on an absent account fails with NoSuchAccount."""
        self.failureResultOf(self.accounts.set_credentials("example.org", "bob", self.creds), NoSuchAccount)
        self.assertEqual(self.count_credentials(), 0)

    def test_mislabelled_credentials(self):
        """Credentials filed under the wrong hash name are refused."""
        bad = {"sha1": scram("sha256")}
        self.failureResultOf(self.accounts.create("example.org", "alice", bad), ValueError)
        self.assertFalse(self.successResultOf(self.accounts.exists("example.org", "alice")))

    @defer.inlineCallbacks
    def test_threaded_file_database(self):
        """The store works on a threaded, file-backed database across reopening."""
        path = self.mktemp()
        for _ in range(2):
            db = Database(SQLiteEngine(path))
            self.addCleanup(db.close)
            accounts = AccountStore(db)
            yield accounts.setup()
            if not (yield accounts.exists("example.org", "alice")):
                yield accounts.create("example.org", "alice", self.creds)
            yield db.close()
        db = Database(SQLiteEngine(path))
        self.addCleanup(db.close)
        got = yield AccountStore(db).get_credentials("example.org", "alice", "sha1")
        self.assertEqual(got, self.creds["sha1"])
