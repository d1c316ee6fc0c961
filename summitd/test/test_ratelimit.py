"""Tests for summitd.core.ratelimit, driven by a fake clock."""

import math

from twisted.internet.task import Clock
from twisted.trial import unittest

from summitd.core.ratelimit import RateLimiter


class RateLimiterTests(unittest.TestCase):
    """Token-bucket behaviour: burst, refill, independence, bounded memory."""

    def setUp(self):
        self.clock = Clock()
        self.limiter = RateLimiter(rate=2.0, burst=5, clock=self.clock)

    def test_burst_then_refusal(self):
        """A fresh key gets `burst` actions at once, then is refused."""
        self.assertEqual([self.limiter.allow("a") for _ in range(5)], [True] * 5)
        self.assertFalse(self.limiter.allow("a"))
        self.assertFalse(self.limiter.allow("a"))

    def test_refill_over_time(self):
        """Tokens come back at `rate` per second."""
        for _ in range(5):
            self.limiter.allow("a")
        self.clock.advance(0.4)  # 0.8 tokens: not yet one
        self.assertFalse(self.limiter.allow("a"))
        self.clock.advance(0.1)  # 1.0 token
        self.assertTrue(self.limiter.allow("a"))
        self.assertFalse(self.limiter.allow("a"))
        self.clock.advance(1.0)  # 2 tokens
        self.assertTrue(self.limiter.allow("a"))
        self.assertTrue(self.limiter.allow("a"))
        self.assertFalse(self.limiter.allow("a"))

    def test_refill_capped_at_burst(self):
        """A long idle period refills no more than `burst`."""
        for _ in range(5):
            self.limiter.allow("a")
        self.clock.advance(3600)
        self.assertEqual(self.limiter.available("a"), 5)
        self.assertEqual([self.limiter.allow("a") for _ in range(6)], [True] * 5 + [False])

    def test_refusal_takes_nothing(self):
        """Refused calls do not drain the bucket further."""
        for _ in range(5):
            self.limiter.allow("a")
        for _ in range(10):
            self.assertFalse(self.limiter.allow("a"))
        self.clock.advance(0.5)
        self.assertTrue(self.limiter.allow("a"))

    def test_keys_independent(self):
        """Exhausting one key leaves the others untouched."""
        for _ in range(5):
            self.limiter.allow("a")
        self.assertFalse(self.limiter.allow("a"))
        self.assertEqual([self.limiter.allow("b") for _ in range(5)], [True] * 5)
        self.assertFalse(self.limiter.allow("b"))

    def test_cost(self):
        """An action may cost several tokens, or a fraction of one."""
        self.assertTrue(self.limiter.allow("a", cost=3))
        self.assertFalse(self.limiter.allow("a", cost=3))
        self.assertTrue(self.limiter.allow("a", cost=2))
        limiter = RateLimiter(rate=1, burst=1, clock=self.clock)
        self.assertEqual([limiter.allow("x", cost=0.1) for _ in range(10)], [True] * 10)
        self.assertFalse(limiter.allow("x", cost=0.1))

    def test_cost_above_burst_never_allowed(self):
        """A cost larger than the bucket can hold is refused, with infinite retry."""
        self.assertFalse(self.limiter.allow("a", cost=6))
        self.assertEqual(self.limiter.retry_after("a", cost=6), math.inf)
        self.assertEqual(len(self.limiter), 0)

    def test_retry_after(self):
        """retry_after gives the wait until one token is back, 0 when there is one."""
        self.assertEqual(self.limiter.retry_after("a"), 0.0)
        for _ in range(5):
            self.limiter.allow("a")
        self.assertAlmostEqual(self.limiter.retry_after("a"), 0.5)
        self.clock.advance(0.2)
        self.assertAlmostEqual(self.limiter.retry_after("a"), 0.3)
        self.clock.advance(self.limiter.retry_after("a"))
        self.assertEqual(self.limiter.retry_after("a"), 0.0)
        self.assertTrue(self.limiter.allow("a"))

    def test_retry_after_does_not_consume(self):
        """Asking how long to wait uses no tokens."""
        for _ in range(10):
            self.limiter.retry_after("a")
        self.assertEqual(self.limiter.available("a"), 5)

    def test_bounded_keys(self):
        """No more than max_keys buckets are ever held, however many keys are used."""
        limiter = RateLimiter(rate=1, burst=2, clock=self.clock, max_keys=10)
        for i in range(1000):
            limiter.allow(f"key{i}")
            self.assertLessEqual(len(limiter), 10)
        self.assertEqual(len(limiter), 10)

    def test_eviction_drops_least_recently_used(self):
        """At capacity, the bucket used longest ago makes room for a new key."""
        limiter = RateLimiter(rate=1, burst=1, clock=self.clock, max_keys=2)
        limiter.allow("old")
        limiter.allow("recent")
        self.assertFalse(limiter.allow("old"))  # touches "old": "recent" is now the oldest
        limiter.allow("new")
        self.assertFalse(limiter.allow("old"))  # "old" kept its empty bucket
        self.assertEqual(limiter.available("recent"), 1)  # evicted: a fresh bucket again

    def test_full_buckets_dropped(self):
        """Buckets that have refilled completely are forgotten; nothing changes for them."""
        for i in range(5):
            self.limiter.allow(f"key{i}")
        self.assertEqual(len(self.limiter), 5)
        self.clock.advance(10)
        for _ in range(3):
            self.limiter.allow("other")
        self.assertLess(len(self.limiter), 5)
        self.assertEqual(self.limiter.available("key0"), 5)
        self.assertTrue(all(self.limiter.allow("key0") for _ in range(5)))

    def test_unused_key_holds_no_memory(self):
        """Looking at a key, or an allowed zero-cost call, keeps no bucket."""
        self.limiter.retry_after("a")
        self.limiter.available("b")
        self.limiter.allow("c", cost=0)
        self.assertEqual(len(self.limiter), 0)

    def test_clock_going_backwards(self):
        """A clock stepping back neither refills nor locks a key out."""
        self.clock.advance(100)
        for _ in range(5):
            self.limiter.allow("a")
        self.clock.rightNow = 50.0  # the wall clock was set back
        self.assertFalse(self.limiter.allow("a"))
        self.clock.advance(0.5)
        self.assertTrue(self.limiter.allow("a"))

    def test_invalid_arguments(self):
        """Non-positive rates, bursts, sizes and negative costs are refused."""
        self.assertRaises(ValueError, RateLimiter, 0, 1, self.clock)
        self.assertRaises(ValueError, RateLimiter, 1, 0, self.clock)
        self.assertRaises(ValueError, RateLimiter, math.inf, 1, self.clock)
        self.assertRaises(ValueError, RateLimiter, 1, 1, self.clock, max_keys=0)
        self.assertRaises(ValueError, self.limiter.allow, "a", -1)
        self.assertRaises(ValueError, self.limiter.allow, "a", math.nan)
