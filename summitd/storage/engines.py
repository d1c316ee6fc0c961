"""What differs between database products, and nothing else.

Everything above this module (``database``, ``schema``, the stores) writes SQL
once, in ``?`` style, using only syntax SQLite and PostgreSQL share (including
``INSERT ... ON CONFLICT``). Whatever cannot be shared -- how to open a
connection, how to start a transaction, the parameter style, the driver's
exception classes, whether full-text search exists -- is a method or attribute of
an ``Engine``. Adding PostgreSQL later means adding one ``Engine`` subclass here
and one branch in ``engine_from_url``; no ``if dialect`` anywhere else.
"""

import abc
import os
import sqlite3
from urllib.parse import unquote


class UnsupportedDatabaseError(ValueError):
    """The database URL names a product or form this server cannot use."""


class Engine(abc.ABC):
    """The differences between one database product and another.

    ``Database`` owns connections and threads; an engine only knows how to
    talk to its product.
    """

    #: A short product name for logs and error messages.
    name: str

    #: The parameter placeholder the driver expects.
    placeholder: str

    #: The DB-API module of the driver; its exception classes are translated
    #: by ``Database`` so that callers never see driver-specific errors.
    module: object

    @abc.abstractmethod
    def connect(self):
        """Open and configure one new DB-API connection."""

    @abc.abstractmethod
    def begin(self, conn):
        """Start a transaction on C{conn}; C{conn.commit()} or
        C{conn.rollback()} ends it."""

    @property
    @abc.abstractmethod
    def supports_fts(self) -> bool:
        """Whether full-text search is available to the stores."""

    def convert_sql(self, sql: str) -> str:
        """Turn C{?}-style SQL into what the driver accepts."""
        return sql

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the data lives, for logs. Never includes a password."""


class SQLiteEngine(Engine):
    """SQLite through the standard library's ``sqlite3``.

    SQLite allows one writer at a time, which is why ``Database`` runs all its
    work on a single thread. Connections are set up for durability: WAL
    journal and C{synchronous=FULL}, so a transaction that has committed (and
    so a message we have acknowledged) survives a crash or power loss.
    """

    name = "sqlite"
    placeholder = "?"
    module = sqlite3

    MEMORY = ":memory:"

    def __init__(self, path: str, *, busy_timeout: float = 5.0):
        """
        @param path: the database file, or C{":memory:"} for a private
            database that lives as long as its one connection.
        @param busy_timeout: seconds to wait for another process's lock.
        """
        self.path = path
        self.busy_timeout = busy_timeout
        self._supports_fts = None

    @property
    def in_memory(self) -> bool:
        return self.path == self.MEMORY

    def connect(self):
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            # Database hands the connection to its own thread.
            check_same_thread=False,
            # The driver's implicit transactions do not cover DDL, so
            # migrations could half-apply; begin() issues BEGIN explicitly.
            isolation_level=None,
        )
        try:
            # journal_mode is stored in the file; the rest is per connection.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            # The archive's indexes are written all over: a 64 MiB page cache keeps them in
            # memory; statement journals of multi-row INSERTs were temp files without
            # temp_store=MEMORY (bench/README.md, "Archive").
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        except BaseException:
            conn.close()
            raise
        return conn

    def begin(self, conn):
        # IMMEDIATE takes the write lock now: a transaction that reads and
        # then writes cannot fail half-way with SQLITE_BUSY because another
        # process (summitctl, say) wrote in between. Readers are not blocked
        # in WAL mode.
        conn.execute("BEGIN IMMEDIATE")

    @property
    def supports_fts(self) -> bool:
        if self._supports_fts is None:
            probe = sqlite3.connect(self.MEMORY)
            try:
                options = {row[0] for row in probe.execute("PRAGMA compile_options")}
            finally:
                probe.close()
            self._supports_fts = "ENABLE_FTS5" in options
        return self._supports_fts

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    def __repr__(self):
        return f"SQLiteEngine({self.path!r})"


def engine_from_url(url: str, base_dir: str) -> Engine:
    """Build the engine a configuration URL names.

    - C{sqlite:///relative/path}: a file relative to C{base_dir};
    - C{sqlite:////abs/path}: an absolute file;
    - C{sqlite:///:memory:}: a private in-memory database (tests).

    @raise UnsupportedDatabaseError: for PostgreSQL (not yet supported), any
        other scheme, or a malformed SQLite URL.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise UnsupportedDatabaseError(
            f"database URL {url!r} has no scheme; expected sqlite:///path"
        )
    if scheme in ("postgresql", "postgres"):
        raise UnsupportedDatabaseError(
            "PostgreSQL databases (postgresql://) are not yet supported; "
            "use sqlite:///path"
        )
    if scheme != "sqlite":
        raise UnsupportedDatabaseError(
            f"unknown database URL scheme {scheme!r}; expected sqlite:///path"
        )
    # "sqlite://" + "" (no host) + "/" + path: what follows the third slash
    # is the path, so a fourth slash makes it absolute.
    if not rest.startswith("/"):
        raise UnsupportedDatabaseError(
            f"SQLite URL {url!r} names a host; use sqlite:///relative/path "
            "or sqlite:////absolute/path"
        )
    path = unquote(rest[1:])
    if not path:
        raise UnsupportedDatabaseError(f"SQLite URL {url!r} names no file")
    if path == SQLiteEngine.MEMORY:
        return SQLiteEngine(path)
    if not os.path.isabs(path):
        path = os.path.join(base_dir, path)
    return SQLiteEngine(path)
