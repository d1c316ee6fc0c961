"""Write barriers: acknowledge a client's stanzas only once what they caused is on disk.

Extensions that persist something because of a stanza (offline storage, the
archive, stream management's spool) ``track()`` the write's Deferred. Stream
management answers a client's ``<r/>`` after ``barrier()`` fires, so an ``<a/>``
never covers a message that a crash could still lose (XEP-0198 §... "nothing
lost"; SQLite commits are durable: WAL with synchronous=FULL).
"""

from twisted.internet import defer


class WriteTracker:
    """The set of durable writes in flight."""

    def __init__(self):
        self._pending = set()

    def track(self, d):
        """Remember ``d`` until it fires; returns ``d`` unchanged for chaining."""
        self._pending.add(d)

        def done(result):
            self._pending.discard(d)
            return result

        d.addBoth(done)
        return d

    def barrier(self):
        """A Deferred that fires (with None) when every write in flight now has finished,
        successfully or not."""
        if not self._pending:
            return defer.succeed(None)
        waits = [_settled(d) for d in self._pending]
        return defer.DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    def __len__(self):
        return len(self._pending)


def _settled(d):
    """A Deferred that fires when ``d`` does, without touching ``d``'s own result."""
    waiter = defer.Deferred()

    def fire(result):
        waiter.callback(None)
        return result

    d.addBoth(fire)
    return waiter
