"""A token-bucket rate limiter with bounded memory.

Why: RFC 6120 §13.12 asks servers to let administrators limit connection
attempts per IP address in a given period (item 2), stanzas a client sends to
distinct recipients (item 5) and bandwidth per client or peer server (item 6),
answering excess with <policy-violation/> (RFC 6120 §8.3.3.12); XEP-0205 gives
the details.  All of these are "so much per unit of time, with some slack for
bursts", which is what a token bucket measures: each key (an IP address, a
JID, a stream) has a bucket holding up to ``burst`` tokens that refills at
``rate`` tokens per second; an action costing ``cost`` tokens is allowed only
if that many are in the bucket.

Time comes from a Twisted ``IReactorTime`` (``clock.seconds()``), so tests
drive it with ``twisted.internet.task.Clock`` and nothing here sleeps or
schedules calls: buckets are refilled lazily, by arithmetic, when they are
next looked at.

Memory stays bounded however many keys an attacker invents: at most
``max_keys`` buckets are kept, in least-recently-used order.  A bucket that
has refilled to ``burst`` carries no information (a fresh bucket is the same),
so idle full buckets are dropped as they are noticed, and when the table is
at capacity the least recently used bucket (the one that has had the longest
to refill) makes room for the new key.
"""

import math
from collections import OrderedDict

__all__ = ["RateLimiter"]

# Tolerance in tokens for float rounding, so that e.g. ten costs of 0.1 fit in
# a burst of 1.0.  Far below any meaningful cost.
_EPSILON = 1e-9

# How many idle buckets one call may drop from the old end of the table:
# a constant amount of work per call that keeps pace with new keys arriving.
_PRUNE_PER_CALL = 2


class _Bucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self, tokens, stamp):
        self.tokens = tokens  # tokens held at time ``stamp``
        self.stamp = stamp


class RateLimiter:
    """Token buckets per key: ``burst`` tokens at most, refilled at ``rate`` per second.

    ``clock`` is an ``IReactorTime`` (the reactor, or ``task.Clock`` in
    tests).  At most ``max_keys`` buckets are kept; see the module docstring.
    """

    def __init__(self, rate, burst, clock, max_keys=100_000):
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError("rate must be a positive number of tokens per second")
        if not (math.isfinite(burst) and burst > 0):
            raise ValueError("burst must be a positive number of tokens")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets = OrderedDict()  # key -> _Bucket, least recently used first

    def __len__(self):
        """How many buckets are held (keys not held have a full bucket)."""
        return len(self._buckets)

    def _tokens_now(self, bucket, now):
        # A clock that stepped backwards refills nothing rather than going negative.
        elapsed = max(0.0, now - bucket.stamp)
        return min(self.burst, bucket.tokens + elapsed * self.rate)

    def allow(self, key, cost=1.0):
        """Take ``cost`` tokens from ``key``'s bucket if it has them; True if taken.

        A refused call takes nothing.  A cost above ``burst`` is never allowed.
        """
        if not cost >= 0:
            raise ValueError("cost must not be negative")
        now = self._clock.seconds()
        bucket = self._buckets.get(key)
        tokens = self.burst if bucket is None else self._tokens_now(bucket, now)
        allowed = tokens + _EPSILON >= cost
        if allowed:
            tokens = max(0.0, tokens - cost)
        if bucket is not None:
            bucket.tokens, bucket.stamp = tokens, now
            self._buckets.move_to_end(key)
        elif tokens < self.burst:
            # Only a bucket that differs from a fresh one is worth keeping.
            if len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            self._buckets[key] = _Bucket(tokens, now)
        self._prune(now)
        return allowed

    def retry_after(self, key, cost=1.0):
        """Seconds until ``key``'s bucket holds ``cost`` tokens (default one).

        0.0 if it already does; ``math.inf`` if ``cost`` exceeds ``burst``.
        Looking does not count as use.
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            tokens = self.burst
        else:
            tokens = self._tokens_now(bucket, self._clock.seconds())
        if tokens + _EPSILON >= cost:
            return 0.0
        if cost > self.burst + _EPSILON:
            return math.inf
        return (cost - tokens) / self.rate

    def available(self, key):
        """Tokens in ``key``'s bucket now."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return self.burst
        return self._tokens_now(bucket, self._clock.seconds())

    def _prune(self, now):
        """Drop a few least recently used buckets that have refilled to full."""
        for _ in range(_PRUNE_PER_CALL):
            if not self._buckets:
                return
            key, bucket = next(iter(self._buckets.items()))
            if self._tokens_now(bucket, now) + _EPSILON < self.burst:
                return
            del self._buckets[key]
