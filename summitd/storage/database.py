"""Running SQL transactions without blocking the reactor.

Every piece of database work is a plain function ``fn(txn, ...)`` handed to
``Database.runInteraction``. The function runs inside one transaction
(committed if it returns, rolled back if it raises) on the database's single
dedicated thread -- SQLite has one writer, and one thread keeps transactions
strictly ordered -- and its result comes back to the reactor thread as a
Deferred.

With ``synchronous=True`` the function runs inline instead and the Deferred
has already fired when ``runInteraction`` returns. Tests that drive a whole
server with a fake clock use this: no threads, so every run is the same.

Connections are opened lazily, on the thread that will use them; SQL is
written in ``?`` style and passed through the engine, which owns every
difference between database products.
"""

import contextlib
import time

from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool


class DatabaseError(Exception):
    """Base of the errors this module raises itself."""


class IntegrityError(DatabaseError):
    """A constraint (primary key, unique, foreign key, check) was violated.

    Raised in place of the driver's own exception so that stores do not
    depend on the driver. Prefer C{INSERT ... ON CONFLICT} to catching this
    inside a transaction: on PostgreSQL the failed statement aborts the
    whole transaction.
    """


class DatabaseClosed(DatabaseError):
    """Work was submitted after C{Database.close()}."""


@contextlib.contextmanager
def _translated_errors(module):
    try:
        yield
    except module.IntegrityError as e:
        raise IntegrityError(str(e)) from e


class Transaction:
    """The handle a transaction function gets: a thin wrapper of a cursor.

    SQL is written in C{?} style; the engine converts it if its driver
    wants something else.
    """

    def __init__(self, cursor, engine):
        self._cursor = cursor
        self._engine = engine

    def execute(self, sql: str, params=()):
        """Run one statement. Returns this transaction, so that
        C{txn.execute(...).fetchall()} reads naturally."""
        with _translated_errors(self._engine.module):
            self._cursor.execute(self._engine.convert_sql(sql), tuple(params))
        return self

    def executemany(self, sql: str, seq_of_params):
        """Run one statement once per parameter tuple."""
        with _translated_errors(self._engine.module):
            self._cursor.executemany(
                self._engine.convert_sql(sql), [tuple(p) for p in seq_of_params]
            )
        return self

    def fetchone(self):
        return self._cursor.fetchone()

    def fetchall(self) -> list:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self):
        return self._cursor.lastrowid


class Database:
    """One database, one connection, one thread.

    @ivar engine: the L{summitd.storage.engines.Engine} this database uses.
    """

    log = Logger()

    #: Transactions running longer than this are logged (by description).
    SLOW_TRANSACTION_SECONDS = 0.5

    #: How transaction durations are measured: real elapsed time, not the
    #: reactor's (possibly fake) clock.
    _now = staticmethod(time.monotonic)

    def __init__(self, engine, reactor=None, *, synchronous: bool = False):
        """
        @param engine: how to reach the database.
        @param reactor: delivers results from the database thread; the
            global reactor if C{None}. Unused when C{synchronous}.
        @param synchronous: run every transaction inline in the caller's
            thread (unit tests with a fake clock).
        """
        self.engine = engine
        self._reactor = reactor
        self._synchronous = synchronous
        self._conn = None
        self._pool = None
        self._shutdown_trigger = None
        self._closed = False
        self._closing = None

    # -- public API --------------------------------------------------------

    def runInteraction(self, description: str, fn, *args, **kwargs) -> defer.Deferred:
        """Call C{fn(txn, *args, **kwargs)} inside one transaction.

        @param description: names the work in logs (slow transactions);
            parameters are never logged.
        @return: a Deferred firing with C{fn}'s result once committed, or
            failing with C{fn}'s exception once rolled back.
        """
        if self._closed:
            return defer.fail(DatabaseClosed(f"database closed; cannot run {description!r}"))
        if self._synchronous:
            try:
                result = self._run(description, fn, args, kwargs)
            except BaseException:
                return defer.fail()
            return defer.succeed(result)
        return threads.deferToThreadPool(
            self._get_reactor(), self._get_pool(), self._run, description, fn, args, kwargs
        )

    def runQuery(self, sql: str, params=()) -> defer.Deferred:
        """Run one statement in its own transaction; fire with all rows as
        a list of tuples."""

        def query(txn):
            return txn.execute(sql, params).fetchall()

        return self.runInteraction("runQuery " + " ".join(sql.split())[:60], query)

    def close(self) -> defer.Deferred:
        """Finish queued work, close the connection and stop the thread.

        Further work fails with L{DatabaseClosed}. Safe to call twice. The
        Deferred never fails: a failure to close is logged.
        """
        if self._closing is not None:
            return _chain(self._closing)
        self._closed = True
        if self._shutdown_trigger is not None:
            self._get_reactor().removeSystemEventTrigger(self._shutdown_trigger)
            self._shutdown_trigger = None
        if self._pool is None:
            try:
                self._close_connection()
            except Exception:
                self.log.failure("Closing the database failed")
            self._closing = defer.succeed(None)
        else:
            pool = self._pool
            # The pool runs jobs in order, so this runs after queued work.
            d = threads.deferToThreadPool(self._get_reactor(), pool, self._close_connection)

            def stop_pool(result):
                pool.stop()
                if isinstance(result, Failure):
                    # Nothing a caller could do about it; the thread is
                    # stopped either way.
                    self.log.failure("Closing the database failed", result)
                return None

            self._closing = d.addBoth(stop_pool)
        return _chain(self._closing)

    # -- machinery ---------------------------------------------------------

    def _run(self, description, fn, args, kwargs):
        """Run one transaction; on the database thread, or inline."""
        module = self.engine.module
        conn = self._connection()
        started = self._now()
        cursor = conn.cursor()
        try:
            with _translated_errors(module):
                try:
                    self.engine.begin(conn)
                    result = fn(Transaction(cursor, self.engine), *args, **kwargs)
                    if isinstance(result, defer.Deferred):
                        raise TypeError(
                            f"transaction function for {description!r} returned a "
                            "Deferred; it runs on the database thread and must "
                            "return a plain value"
                        )
                    conn.commit()
                except BaseException:
                    self._rollback(conn, description)
                    raise
        finally:
            cursor.close()
            elapsed = self._now() - started
            if elapsed > self.SLOW_TRANSACTION_SECONDS:
                self.log.warn(
                    "Slow database transaction {description!r} took {elapsed:.3f} s",
                    description=description,
                    elapsed=elapsed,
                )
        return result

    def _rollback(self, conn, description):
        try:
            conn.rollback()
        except Exception:
            # The original exception is what the caller needs; this one
            # only explains why the connection may now be unusable.
            self.log.failure(
                "Rollback of database transaction {description!r} failed",
                description=description,
            )

    def _connection(self):
        if self._conn is None:
            self._conn = self.engine.connect()
        return self._conn

    def _close_connection(self):
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _get_reactor(self):
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    def _get_pool(self):
        if self._pool is None:
            reactor = self._get_reactor()
            self._pool = ThreadPool(
                minthreads=1, maxthreads=1, name=f"summitd-db({self.engine.describe()})"
            )
            self._pool.start()
            # Without this a running transaction could be cut off, and the
            # thread would keep the process alive.
            self._shutdown_trigger = reactor.addSystemEventTrigger(
                "during", "shutdown", self._close_at_shutdown
            )
        return self._pool

    def _close_at_shutdown(self):
        self._shutdown_trigger = None
        return self.close()


def _chain(d):
    """A new Deferred firing with (never-failing) C{d}'s result, leaving
    C{d} intact for later callers."""
    result = defer.Deferred()

    def fire(value):
        result.callback(value)
        return value

    d.addCallback(fire)
    return result
