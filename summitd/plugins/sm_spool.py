"""The durable spool of stream management: messages sent to clients but not yet acknowledged.

If the server dies, the in-memory queues of XEP-0198 die with it; the spool
keeps a copy of every unacknowledged message on disk so the next start can route
them again (to offline storage, since no session survives a restart). Writes are
batched: while one transaction runs, new inserts and deletes collect and go in
the next one, so the cost per message stays small under load.
"""

from twisted.internet import defer
from twisted.python.failure import Failure

from summitd.core.xmlstream import parse_element
from summitd.core.xmlwriter import serialize
from summitd.storage.schema import Migration

MIGRATIONS = [
    Migration(1, (
        "CREATE TABLE sm_spool ("
        " sm_id TEXT NOT NULL, seq INTEGER NOT NULL, host TEXT NOT NULL, username TEXT NOT NULL,"
        " queued_at REAL NOT NULL, stanza TEXT NOT NULL, PRIMARY KEY (sm_id, seq))",
        "CREATE INDEX sm_spool_account ON sm_spool (host, username)",
    )),
]

_INSERT = ("INSERT INTO sm_spool (sm_id, seq, host, username, queued_at, stanza) VALUES (?, ?, ?, ?, ?, ?)"
           " ON CONFLICT (sm_id, seq) DO UPDATE SET stanza = excluded.stanza")
_DELETE = "DELETE FROM sm_spool WHERE sm_id = ? AND seq = ?"
_DISCARD = "DELETE FROM sm_spool WHERE sm_id = ?"


class Spool:
    def __init__(self, context):
        self._context = context
        self._db = context.database
        self._ops = []          # (sql, params) waiting for the next transaction
        self._waiters = []      # Deferreds fired when that transaction commits
        self._running = None    # the Deferred of the transaction in flight

    def setup(self):
        return self._context.migrate("sm_spool", MIGRATIONS)

    # -- writes ------------------------------------------------------------------------

    def add(self, state, seq, stanza):
        """Keep a sent message until it is acknowledged; the write is tracked so that
        acknowledgements to its sender wait for it."""
        if stanza.name != "message":
            return
        jid = state.stream.session.jid
        waiter = defer.Deferred()
        self._queue((_INSERT, (state.id, seq, jid.host, jid.user, self._context.clock.seconds(),
                               serialize(stanza))), waiter)
        self._context.track_write(waiter)

    def remove(self, state, seqs):
        for seq in seqs:
            self._queue((_DELETE, (state.id, seq)))

    def discard(self, state):
        """Forget every row of a finished session (its messages were routed elsewhere)."""
        self._queue((_DISCARD, (state.id,)))

    def _queue(self, op, waiter=None):
        self._ops.append(op)
        if waiter is not None:
            self._waiters.append(waiter)
        if self._running is None:
            self._run()

    def _run(self):
        ops, waiters = self._ops, self._waiters
        self._ops, self._waiters = [], []
        self._running = self._db.runInteraction("sm spool: write", _apply, ops)

        def finished(result):
            self._running = None
            if isinstance(result, Failure):
                self._context.log.failure("the stream management spool could not be written", result)
            for waiter in waiters:
                waiter.callback(None)
            if self._ops:
                self._run()

        self._running.addBoth(finished)

    def flush(self):
        """A Deferred firing when everything queued so far is written."""
        if self._running is None and not self._ops:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self._waiters.append(waiter)
        if self._running is None:
            self._run()
        return waiter

    # -- recovery and cleanup ---------------------------------------------------------------

    @defer.inlineCallbacks
    def recover(self, redeliver):
        """Route again what a previous run left unacknowledged, then forget it."""
        rows = yield self._db.runInteraction("sm spool: recover", _load)
        if not rows:
            return
        stanzas = []
        for sm_id, seq, stanza in rows:
            try:
                stanzas.append(parse_element(stanza))
            except ValueError:
                self._context.log.error("unreadable spooled stanza {sm_id}/{seq} dropped",
                                        sm_id=sm_id, seq=seq)
        self._context.log.info("re-routing {n} unacknowledged message(s) from before the restart",
                               n=len(stanzas))
        redeliver(stanzas)
        yield self._context.write_barrier()
        yield self._db.runInteraction("sm spool: recovered", _forget, [(r[0], r[1]) for r in rows])

    def delete_account(self, jid, txn):
        txn.execute("DELETE FROM sm_spool WHERE host = ? AND username = ?", (jid.host, jid.user))


def _apply(txn, ops):
    for sql, params in ops:
        txn.execute(sql, params)


def _load(txn):
    return txn.execute("SELECT sm_id, seq, stanza FROM sm_spool ORDER BY queued_at, seq").fetchall()


def _forget(txn, keys):
    txn.executemany(_DELETE, keys)
