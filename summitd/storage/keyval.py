"""Per-user key/value storage for extensions too small to own tables.

An extension that keeps a few settings per user (a privacy list, a vCard,
a preference) asks for ``KeyValueStore(db, "its-name")`` and writes no SQL.
Every store shares one table, keyed by (store, host, username, key), so
deleting an account can wipe a user's data from all stores at once. Values
are JSON: anything ``json.dumps`` accepts goes in, and comes back out as the
equivalent plain JSON value (tuples come back as lists).

Host-wide values (not tied to a user) use the empty string as username.
"""

import json
import secrets

from twisted.internet import defer

from summitd.storage.schema import Migration, apply_migrations

COMPONENT = "keyval"

MIGRATIONS = (
    Migration(
        1,
        (
            "CREATE TABLE keyval ("
            " store TEXT NOT NULL,"
            " host TEXT NOT NULL,"
            " username TEXT NOT NULL,"
            " key_name TEXT NOT NULL,"
            " value_json TEXT NOT NULL,"
            " PRIMARY KEY (store, host, username, key_name)"
            ")",
            # delete_user() crosses stores.
            "CREATE INDEX keyval_user ON keyval (host, username)",
        ),
    ),
)


def _encode(value) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class KeyValueStore:
    """One named store's values, per host and user."""

    def __init__(self, db, store: str):
        self._db = db
        self.store = store

    def setup(self):
        """Create or upgrade the shared table. Idempotent; call it before
        first use (every store may call it)."""
        return apply_migrations(self._db, COMPONENT, MIGRATIONS)

    def get(self, host: str, user: str, key: str):
        """Fire with the value stored under C{key}, or C{None}."""

        def get(txn):
            row = txn.execute(
                "SELECT value_json FROM keyval"
                " WHERE store = ? AND host = ? AND username = ? AND key_name = ?",
                (self.store, host, user, key),
            ).fetchone()
            return None if row is None else json.loads(row[0])

        return self._db.runInteraction(f"keyval {self.store}: get", get)

    def set(self, host: str, user: str, key: str, value):
        """Store C{value} (JSON-serialisable) under C{key}, replacing any
        previous value."""
        # Encode here, not on the database thread: a value that cannot be
        # serialised is the caller's error and should fail fast.
        try:
            encoded = _encode(value)
        except (TypeError, ValueError) as e:
            return defer.fail(e)

        def set_(txn):
            txn.execute(
                "INSERT INTO keyval (store, host, username, key_name, value_json)"
                " VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (store, host, username, key_name)"
                " DO UPDATE SET value_json = excluded.value_json",
                (self.store, host, user, key, encoded),
            )

        return self._db.runInteraction(f"keyval {self.store}: set", set_)

    def delete(self, host: str, user: str, key: str):
        """Remove C{key}; fire with whether it existed."""

        def delete(txn):
            txn.execute(
                "DELETE FROM keyval"
                " WHERE store = ? AND host = ? AND username = ? AND key_name = ?",
                (self.store, host, user, key),
            )
            return txn.rowcount > 0

        return self._db.runInteraction(f"keyval {self.store}: delete", delete)

    def items(self, host: str, user: str):
        """Fire with this store's values for one user as a C{dict}."""

        def items(txn):
            rows = txn.execute(
                "SELECT key_name, value_json FROM keyval"
                " WHERE store = ? AND host = ? AND username = ?",
                (self.store, host, user),
            ).fetchall()
            return {key: json.loads(value) for key, value in rows}

        return self._db.runInteraction(f"keyval {self.store}: items", items)

    def delete_user(self, host: str, user: str):
        """Remove everything stored for one user, in I{every} store; fire
        with the number of values removed."""

        return self._db.runInteraction("keyval: delete user", delete_user_rows, host, user)


def delete_user_rows(txn, host: str, user: str) -> int:
    """Inside a transaction: remove one user's values in every store (account deletion)."""
    txn.execute("DELETE FROM keyval WHERE host = ? AND username = ?", (host, user))
    return txn.rowcount


@defer.inlineCallbacks
def stored_secret(store, name):
    """A random 32-byte secret kept under ``name`` in ``store``, made the first time it is asked
    for (keys for ids that must verify across restarts)."""
    key = yield store.get("", "", name)
    if key is None:
        key = secrets.token_hex(32)
        yield store.set("", "", name, key)
    return bytes.fromhex(key)
