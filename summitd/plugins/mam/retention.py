"""Archive retention: a background task deletes what is older than ``max_age_days`` and, per
archive, what exceeds ``max_messages_per_user`` (XEP-0313 §3.2).

Deleting always starts with the oldest messages, so an archive never has holes, and
ids are never reused (they carry their timestamp). The work runs on the extension's
clock (``looping_call``) every ``interval`` seconds, in batches of ``batch`` rows per
transaction so the database thread is never held long; a run that is still busy
when the next is due is not doubled, and a failed run is logged and tried again at
the next interval.
"""

DAY = 86400


class Retention:
    def __init__(self, context, store, max_age_days, max_messages, interval, batch=1000):
        self._context = context
        self._store = store
        self._max_age = max_age_days * DAY if max_age_days else None
        self._max_messages = max_messages or None
        self._interval = interval
        self._batch = batch
        self._running = False

    @property
    def enabled(self):
        return self._max_age is not None or self._max_messages is not None

    def start(self):
        if self.enabled:
            self._context.looping_call(self._interval, self.run)

    def run(self):
        """One pass; fires with the number of messages deleted (None when skipped)."""
        if self._running:
            return None
        self._running = True
        cutoff = None
        if self._max_age is not None:
            cutoff = int((self._context.clock.seconds() - self._max_age) * 1_000_000)
        d = self._store.expire(cutoff, self._max_messages, self._batch)
        d.addCallbacks(self._done, self._failed)
        return d

    def _done(self, deleted):
        self._running = False
        if deleted:
            self._context.log.info("archive retention deleted {count} messages", count=deleted)
        return deleted

    def _failed(self, failure):
        self._running = False
        self._context.log.failure("archive retention failed; trying again later", failure)
        return None
