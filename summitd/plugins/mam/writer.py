"""Writing archive entries behind the message path, with group commit.

Routing a message must not wait for the database, and one transaction per message
would make the single database thread the bottleneck: a transaction's fixed cost
(thread hand-offs, WAL commit, fsync) is larger than a row's, and a small batch
dirties nearly one B-tree page per entry. So entries are queued and written
together, at most one batch every ``delay`` seconds: an idle writer waits ``delay``
for company before it writes, and entries arriving while a batch is written wait
until ``delay`` has passed since that batch started (or until ``max_batch`` are
queued). Batches grow with the load instead of the commit rate: writing back to
back as soon as the previous batch is done settles on small batches that keep the
database thread busy at several times the cost per message. Nobody waits for the
delay in practice: delivery does not, and a query flushes the queue first; only
stream management's acknowledgements wait for the write.

The queue is bounded. Archiving an entry costs more than routing the message, so a
server can route faster than its database archives; when a tenth of ``max_queued``
entries wait (5,000 by default: well under a second of writing), the writer holds the
client intake (``summitd.core.intake``: client connections stop reading, TCP slows
the senders) until a fiftieth are left, so the archive keeps up with what the server
accepts instead of losing entries, and a burst leaves no long backlog behind. While
batches wait for a retry (the database is failing) the intake is not held: past
``max_queued``, messages are then delivered but not archived, and a warning says how
many (at most one per minute).

A failed batch is retried with growing delays, then given up and logged; while
entries wait for a retry, query results may still change (``stable`` is False,
XEP-0313 §4.3.2). Each entry's batch is registered with ``track_write`` so stream
management acknowledges a client's message only once it is archived. A query calls
``flush()`` first, so it sees every message archived before it arrived: the
database thread runs transactions in the order they were submitted.
"""

from twisted.internet import defer

RETRY_DELAYS = (1.0, 5.0, 30.0)
DROP_WARNING_INTERVAL = 60.0


class ArchiveWriter:
    def __init__(self, store, context, delay=0.02, max_batch=2000, max_queued=50_000):
        self._store = store
        self._context = context
        self._delay = delay
        self._timer = None
        self._last_submit = None     # when the newest batch was submitted (clock seconds)
        self._max_batch = max_batch
        self._max_queued = max_queued
        self._deleted = set()        # accounts deleted while their entries were queued
        self._dropped = 0
        self._warned_at = None
        self._high_water = max(1, max_queued // 10)
        self._low_water = max_queued // 50
        self._holding = False        # the client intake, while too much is queued
        self._held_warned_at = None
        self._queue = []
        self._queued_done = None     # fires when the batch holding the queue is settled
        self._submitted = 0          # batches the store is writing now
        self._waiting = 0            # batches waiting for a retry
        self._idle_waiters = []

    @property
    def stable(self):
        """False while entries wait for a retry after a failed write."""
        return self._waiting == 0

    def add(self, entry):
        """Queue an entry; returns a Deferred that fires (with None, never failing) once its
        batch is written or given up (or at once when the queue is full)."""
        if len(self._queue) >= self._max_queued:
            self._drop()
            return defer.succeed(None)
        # Queued as a plain tuple of strings and numbers, which the cycle collector stops
        # tracking at its first pass: entries wait up to ``delay``, long enough to be promoted
        # to the oldest generation, whose growth triggers full collections (tens of ms with
        # thousands of sessions). A named tuple stays tracked.
        self._queue.append(tuple(entry))
        if len(self._queue) >= self._high_water and not self._holding and not self._waiting:
            self._hold()
        if self._queued_done is None:
            self._queued_done = self._context.track_write(defer.Deferred())
        done = self._queued_done
        if self._submitted == 0 and self._timer is None:
            if self._delay:
                self._timer = self._context.call_later(self._delay, self._timer_fired)
            else:
                self._submit()
        elif len(self._queue) >= self._max_batch and self._submitted == 0:
            self._submit()
        return done

    def _timer_fired(self):
        self._timer = None
        if self._submitted == 0 and self._queue:
            self._submit()

    def forget(self, host, user):
        """The account is being deleted (called on the database thread): entries still
        queued for it are not written. ``remember`` undoes it when the name is reused."""
        self._deleted.add((host, user))

    def remember(self, host, user):
        self._deleted.discard((host, user))

    def _hold(self):
        self._holding = True
        self._context.hold_client_intake("archive")
        now = self._context.clock.seconds()
        if self._held_warned_at is None or now - self._held_warned_at >= DROP_WARNING_INTERVAL:
            self._context.log.info(
                "the archive is behind: client input paused while {queued} messages wait for "
                "the database (logged at most once a minute)", queued=len(self._queue))
            self._held_warned_at = now

    def _release(self):
        self._holding = False
        self._context.release_client_intake("archive")

    def _drop(self):
        self._dropped += 1
        now = self._context.clock.seconds()
        if self._warned_at is None or now - self._warned_at >= DROP_WARNING_INTERVAL:
            self._context.log.warn(
                "the archive is falling behind: {count} messages delivered but not archived "
                "({queued} waiting for the database)", count=self._dropped, queued=len(self._queue))
            self._warned_at, self._dropped = now, 0

    def _submit(self):
        """Write the oldest max_batch queued entries."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._last_submit = self._context.clock.seconds()
        batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
        if self._deleted:
            batch = [e for e in batch if (e[0], e[1]) not in self._deleted]   # host, user
        if self._queue:
            # Callers wait on the queue's Deferred, which the rest (written after this
            # batch, on the same ordered database thread) keeps.
            done = defer.Deferred()
        else:
            done, self._queued_done = self._queued_done, None
        self._write(batch, done, 0)

    def flush(self):
        """Submit everything queued now, even while another batch is being written."""
        while self._queue:
            self._submit()

    def _write(self, batch, done, attempt):
        self._submitted += 1
        d = self._store.append(batch)
        d.addCallbacks(self._written, self._failed, callbackArgs=(done,),
                       errbackArgs=(batch, done, attempt))

    def _retry(self, batch, done, attempt):
        self._waiting -= 1
        self._write(batch, done, attempt)

    def _written(self, _, done):
        self._finished()
        done.callback(None)

    def _failed(self, failure, batch, done, attempt):
        self._finished()
        if attempt < len(RETRY_DELAYS):
            self._context.log.failure(
                "archiving {count} messages failed; retrying in {delay} s", failure,
                count=len(batch), delay=RETRY_DELAYS[attempt])
            self._waiting += 1
            if self._holding:
                self._release()     # no progress to wait for: better unarchived than stuck
            self._context.call_later(RETRY_DELAYS[attempt], self._retry, batch, done, attempt + 1)
            return
        self._context.log.failure("archiving {count} messages failed for good; they are not "
                                  "archived", failure, count=len(batch))
        done.callback(None)

    def _finished(self):
        self._submitted -= 1
        if self._holding and len(self._queue) <= self._low_water:
            self._release()
        if self._submitted:
            return
        if self._queue:
            wait = self._last_submit + self._delay - self._context.clock.seconds()
            if (wait <= 0 or len(self._queue) >= self._max_batch or self._holding
                    or self._idle_waiters):
                self._submit()
            elif self._timer is None:
                self._timer = self._context.call_later(wait, self._timer_fired)
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def drain(self):
        """Flush, and fire when the store is writing nothing (extension stop; batches waiting
        for a retry are abandoned with the extension's timers)."""
        self.flush()
        if self._holding:
            self._release()
        if self._submitted == 0:
            return defer.succeed(None)
        waiter = defer.Deferred()
        self._idle_waiters.append(waiter)
        return waiter
