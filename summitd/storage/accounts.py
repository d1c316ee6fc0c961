"""Who has an account, and the SCRAM keys they authenticate with.

An account is a (host, username) pair; usernames arrive already normalised
(nodeprep/PRECIS is the caller's job) and are stored exactly as given. The
password itself is never stored: only, per hash function, the salted SCRAM
keys of L{summitd.sasl.credentials.ScramCredentials}. Deleting an account
deletes its keys by foreign-key cascade.
"""

import time

from twisted.internet import defer

from summitd.sasl.credentials import SCRAM_HASHES, ScramCredentials
from summitd.storage.schema import Migration, apply_migrations

COMPONENT = "accounts"

# Binary columns are declared BYTEA: the type PostgreSQL needs, and one
# under which SQLite keeps bytes unchanged as BLOBs, so one schema serves
# both engines.
MIGRATIONS = (
    Migration(
        1,
        (
            "CREATE TABLE accounts ("
            " host TEXT NOT NULL,"
            " username TEXT NOT NULL,"
            " created BIGINT NOT NULL,"  # seconds since the epoch
            " PRIMARY KEY (host, username)"
            ")",
            "CREATE TABLE credentials ("
            " host TEXT NOT NULL,"
            " username TEXT NOT NULL,"
            " hash_name TEXT NOT NULL,"
            " salt BYTEA NOT NULL,"
            " iterations INTEGER NOT NULL,"
            " stored_key BYTEA NOT NULL,"
            " server_key BYTEA NOT NULL,"
            " PRIMARY KEY (host, username, hash_name),"
            " FOREIGN KEY (host, username) REFERENCES accounts (host, username)"
            " ON DELETE CASCADE"
            ")",
        ),
    ),
)


class AccountExists(Exception):
    """An account with this host and username already exists."""

    def __init__(self, host, username):
        super().__init__(f"account {username!r} on {host!r} already exists")
        self.host = host
        self.username = username


class NoSuchAccount(Exception):
    """No account with this host and username exists."""

    def __init__(self, host, username):
        super().__init__(f"no account {username!r} on {host!r}")
        self.host = host
        self.username = username


def _check_credentials(credentials):
    for hash_name, cred in credentials.items():
        if not isinstance(cred, ScramCredentials):
            raise TypeError(f"credentials[{hash_name!r}] is not ScramCredentials")
        if hash_name != cred.hash_name:
            raise ValueError(
                f"credentials[{hash_name!r}] holds keys for {cred.hash_name!r}"
            )
        if hash_name not in SCRAM_HASHES:
            raise ValueError(f"unsupported SCRAM hash {hash_name!r}")


def _insert_credentials(txn, host, username, credentials):
    txn.executemany(
        "INSERT INTO credentials"
        " (host, username, hash_name, salt, iterations, stored_key, server_key)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (host, username, c.hash_name, c.salt, c.iterations, c.stored_key, c.server_key)
            for c in credentials.values()
        ],
    )


def _account_exists(txn, host, username):
    return (
        txn.execute(
            "SELECT 1 FROM accounts WHERE host = ? AND username = ?", (host, username)
        ).fetchone()
        is not None
    )


class AccountStore:
    """Accounts and their SCRAM credentials."""

    def __init__(self, db, clock=None):
        """
        @param db: a L{summitd.storage.database.Database}.
        @param clock: an C{IReactorTime} stamping account creation; the
            system time if C{None}.
        """
        self._db = db
        self._clock = clock

    def setup(self):
        """Create or upgrade the tables; call once before use."""
        return apply_migrations(self._db, COMPONENT, MIGRATIONS)

    def _now(self) -> int:
        return int(self._clock.seconds() if self._clock is not None else time.time())

    def create(self, host: str, username: str, credentials: dict):
        """Create an account with the given C{{hash_name: ScramCredentials}}.

        Fails with L{AccountExists} if the account is already there.
        """
        try:
            _check_credentials(credentials)
        except (TypeError, ValueError) as e:
            return defer.fail(e)
        created = self._now()

        def create(txn):
            txn.execute(
                "INSERT INTO accounts (host, username, created) VALUES (?, ?, ?)"
                " ON CONFLICT (host, username) DO NOTHING",
                (host, username, created),
            )
            if txn.rowcount == 0:
                raise AccountExists(host, username)
            _insert_credentials(txn, host, username, credentials)

        return self._db.runInteraction("accounts: create", create)

    def delete(self, host: str, username: str, also=None):
        """Delete an account and its credentials; fire with whether it
        existed. C{also(txn)}, when given, runs first in the same transaction
        (other components delete their rows for the account there)."""

        def delete(txn):
            if also is not None:
                also(txn)
            txn.execute(
                "DELETE FROM accounts WHERE host = ? AND username = ?", (host, username)
            )
            return txn.rowcount > 0

        return self._db.runInteraction("accounts: delete", delete)

    def exists(self, host: str, username: str):
        """Fire with whether the account exists."""
        return self._db.runInteraction("accounts: exists", _account_exists, host, username)

    def list_users(self, host=None):
        """Fire with a sorted list of C{(host, username)}, for one host or
        all."""

        def list_users(txn):
            if host is None:
                txn.execute("SELECT host, username FROM accounts")
            else:
                txn.execute("SELECT host, username FROM accounts WHERE host = ?", (host,))
            # Sorted here rather than by ORDER BY: database collations
            # differ, Python's code-point order does not.
            return sorted((h, u) for h, u in txn.fetchall())

        return self._db.runInteraction("accounts: list users", list_users)

    def get_credentials(self, host: str, username: str, hash_name: str):
        """Fire with the account's L{ScramCredentials} for C{hash_name}, or
        C{None} if the account or those keys do not exist."""

        def get_credentials(txn):
            row = txn.execute(
                "SELECT salt, iterations, stored_key, server_key FROM credentials"
                " WHERE host = ? AND username = ? AND hash_name = ?",
                (host, username, hash_name),
            ).fetchone()
            if row is None:
                return None
            salt, iterations, stored_key, server_key = row
            return ScramCredentials(
                hash_name=hash_name,
                salt=bytes(salt),
                iterations=int(iterations),
                stored_key=bytes(stored_key),
                server_key=bytes(server_key),
            )

        return self._db.runInteraction("accounts: get credentials", get_credentials)

    def set_credentials(self, host: str, username: str, credentials: dict):
        """Replace I{all} the account's credentials (a password change).

        Keys for hash functions not in C{credentials} are removed, so the
        old password stops working for every mechanism. Fails with
        L{NoSuchAccount} if the account does not exist.
        """
        try:
            _check_credentials(credentials)
        except (TypeError, ValueError) as e:
            return defer.fail(e)

        def set_credentials(txn):
            if not _account_exists(txn, host, username):
                raise NoSuchAccount(host, username)
            txn.execute(
                "DELETE FROM credentials WHERE host = ? AND username = ?", (host, username)
            )
            _insert_credentials(txn, host, username, credentials)

        return self._db.runInteraction("accounts: set credentials", set_credentials)
