"""Tests for the hook table (summitd.core.hooks): ordering, removal, isolation of failures."""

from twisted.trial import unittest

from summitd.core.hooks import Event, Hooks, Priority

EVENT = Event("test-event", "for tests")
OTHER = Event("other-event")


class Boom(Exception):
    """What a broken handler raises."""


def recorder(calls, label, result=None):
    """A handler that appends ``label`` (and its arguments) to ``calls`` and returns ``result``."""
    def handler(*args):
        calls.append((label, args))
        return result
    return handler


def broken(*args):
    raise Boom("handler failed")


def labels(calls):
    return [label for label, _ in calls]


class OrderTests(unittest.TestCase):
    """Handlers run by priority band, highest first; registration order breaks ties."""

    def setUp(self):
        self.hooks = Hooks()
        self.calls = []

    def add(self, label, priority=Priority.DEFAULT, result=None, event=EVENT):
        return self.hooks.add(event, recorder(self.calls, label, result), priority)

    def test_bands(self):
        """SECURITY, STAMP, DEFAULT, ARCHIVE, COPY, DELIVER, whatever order they were added in."""
        for band in (Priority.DELIVER, Priority.ARCHIVE, Priority.SECURITY, Priority.COPY,
                     Priority.DEFAULT, Priority.STAMP):
            self.add(band.name, band)
        self.hooks.notify(EVENT)
        self.assertEqual(labels(self.calls), ["SECURITY", "STAMP", "DEFAULT", "ARCHIVE", "COPY", "DELIVER"])

    def test_offsets_within_a_band(self):
        """DEFAULT + 5 runs before DEFAULT, which runs before DEFAULT - 5 (and all before ARCHIVE)."""
        self.add("archive", Priority.ARCHIVE)
        self.add("minus", Priority.DEFAULT - 5)
        self.add("plain", Priority.DEFAULT)
        self.add("plus", Priority.DEFAULT + 5)
        self.hooks.notify(EVENT)
        self.assertEqual(labels(self.calls), ["plus", "plain", "minus", "archive"])

    def test_ties_in_registration_order(self):
        """Handlers of equal priority run in the order they were added."""
        for label in "abcde":
            self.add(label)
        self.hooks.notify(EVENT)
        self.assertEqual(labels(self.calls), list("abcde"))

    def test_arguments_passed(self):
        """Every handler gets the event's arguments."""
        self.add("a")
        self.add("b", Priority.DELIVER)
        self.hooks.notify(EVENT, 1, "two")
        self.assertEqual(self.calls, [("a", (1, "two")), ("b", (1, "two"))])

    def test_events_are_separate(self):
        """A handler of one event is not called for another."""
        self.add("other", event=OTHER)
        self.hooks.notify(EVENT)
        self.assertEqual(self.calls, [])
        self.assertTrue(self.hooks.has_handlers(OTHER))
        self.assertFalse(self.hooks.has_handlers(EVENT))

    def test_event_keys_only(self):
        """A string is not an event key: a typo fails at registration, not silently later."""
        self.assertRaises(TypeError, self.hooks.add, "test-event", lambda: None)

    def test_event_repr(self):
        """An Event shows its name."""
        self.assertEqual(repr(EVENT), "<Event test-event>")


class RunTests(unittest.TestCase):
    """run: the first handler that returns non-None takes the event."""

    def setUp(self):
        self.hooks = Hooks()
        self.calls = []

    def add(self, label, result, priority=Priority.DEFAULT):
        self.hooks.add(EVENT, recorder(self.calls, label, result), priority)

    def test_first_non_none_wins(self):
        """run returns the first non-None result; lower handlers are not called."""
        self.add("low", "low-result", Priority.DELIVER)
        self.add("pass", None, Priority.SECURITY)
        self.add("take", "taken", Priority.DEFAULT)
        self.assertEqual(self.hooks.run(EVENT), "taken")
        self.assertEqual(labels(self.calls), ["pass", "take"])

    def test_falsy_results_take_the_event(self):
        """False, 0 and '' are results too: only None passes the event on."""
        for value in (False, 0, ""):
            hooks = Hooks()
            calls = []
            hooks.add(EVENT, recorder(calls, "first", value))
            hooks.add(EVENT, recorder(calls, "second", "later"))
            self.assertEqual(hooks.run(EVENT), value)
            self.assertEqual(labels(calls), ["first"])

    def test_nobody_takes_it(self):
        """When every handler returns None (or there are none), run returns None."""
        self.assertIsNone(self.hooks.run(EVENT))
        self.add("a", None)
        self.add("b", None)
        self.assertIsNone(self.hooks.run(EVENT, "x"))
        self.assertEqual(labels(self.calls), ["a", "b"])


class RemovalTests(unittest.TestCase):
    """add() returns the way to remove exactly that registration."""

    def setUp(self):
        self.hooks = Hooks()
        self.calls = []

    def test_remove(self):
        """A removed handler is no longer called; the others are."""
        remove_a = self.hooks.add(EVENT, recorder(self.calls, "a"))
        self.hooks.add(EVENT, recorder(self.calls, "b"))
        remove_a()
        self.hooks.notify(EVENT)
        self.assertEqual(labels(self.calls), ["b"])

    def test_remove_last(self):
        """Removing the last handler leaves the event without handlers."""
        remove = self.hooks.add(EVENT, recorder(self.calls, "a"))
        remove()
        self.assertFalse(self.hooks.has_handlers(EVENT))
        self.assertIsNone(self.hooks.run(EVENT))

    def test_remove_twice(self):
        """Calling a remover twice is harmless and removes nothing else."""
        remove = self.hooks.add(EVENT, recorder(self.calls, "a"))
        self.hooks.add(EVENT, recorder(self.calls, "b"))
        remove()
        remove()
        self.hooks.notify(EVENT)
        self.assertEqual(labels(self.calls), ["b"])

    def test_same_function_twice(self):
        """The same function added twice is two registrations; removing one keeps the other."""
        handler = recorder(self.calls, "h")
        remove_first = self.hooks.add(EVENT, handler)
        self.hooks.add(EVENT, handler, Priority.DELIVER)
        remove_first()
        self.hooks.notify(EVENT)
        self.assertEqual(labels(self.calls), ["h"])

    def test_remove_while_dispatching(self):
        """A handler may remove another during dispatch: the current dispatch is unaffected,
        the next one no longer calls it."""
        removers = {}

        def remover(*args):
            self.calls.append(("remover", args))
            removers["late"]()

        self.hooks.add(EVENT, remover, Priority.SECURITY)
        removers["late"] = self.hooks.add(EVENT, recorder(self.calls, "late"))
        self.hooks.notify(EVENT)
        self.hooks.notify(EVENT)
        self.assertEqual(labels(self.calls), ["remover", "late", "remover"])

    def test_add_keeps_order_after_removal(self):
        """Adding after removals still sorts by priority."""
        remove = self.hooks.add(EVENT, recorder(self.calls, "gone"), Priority.SECURITY)
        self.hooks.add(EVENT, recorder(self.calls, "deliver"), Priority.DELIVER)
        remove()
        self.hooks.add(EVENT, recorder(self.calls, "stamp"), Priority.STAMP)
        self.hooks.notify(EVENT)
        self.assertEqual(labels(self.calls), ["stamp", "deliver"])


class FailureTests(unittest.TestCase):
    """A raising handler is logged and skipped; the others still run."""

    def setUp(self):
        self.hooks = Hooks()
        self.calls = []
        self.hooks.add(EVENT, broken, Priority.SECURITY)

    def assertLoggedOnce(self):
        self.assertEqual(len(self.flushLoggedErrors(Boom)), 1)

    def test_run_skips_a_broken_handler(self):
        """run goes on to the next handler and returns its result."""
        self.hooks.add(EVENT, recorder(self.calls, "next", "ok"))
        self.assertEqual(self.hooks.run(EVENT, "x"), "ok")
        self.assertEqual(self.calls, [("next", ("x",))])
        self.assertLoggedOnce()

    def test_notify_skips_a_broken_handler(self):
        """notify reaches every other handler."""
        self.hooks.add(EVENT, recorder(self.calls, "a"), Priority.STAMP)
        self.hooks.add(EVENT, recorder(self.calls, "b"), Priority.DELIVER)
        self.hooks.notify(EVENT)
        self.assertEqual(labels(self.calls), ["a", "b"])
        self.assertLoggedOnce()

    def test_collect_skips_a_broken_handler(self):
        """collect gathers what the others return."""
        self.hooks.add(EVENT, lambda: ["x"])
        self.assertEqual(self.hooks.collect(EVENT), ["x"])
        self.assertLoggedOnce()

    def test_only_broken(self):
        """With only a broken handler, run returns None and nothing escapes."""
        self.assertIsNone(self.hooks.run(EVENT))
        self.assertLoggedOnce()

    def test_base_exceptions_escape(self):
        """KeyboardInterrupt and SystemExit are not swallowed."""
        hooks = Hooks()

        def interrupt():
            raise KeyboardInterrupt()

        hooks.add(EVENT, interrupt)
        self.assertRaises(KeyboardInterrupt, hooks.notify, EVENT)


class CollectTests(unittest.TestCase):
    """collect: every handler's iterable, concatenated in priority order."""

    def test_concatenates_in_order(self):
        """Lists, tuples and generators are concatenated; None adds nothing."""
        hooks = Hooks()
        hooks.add(EVENT, lambda host: [host + "-copy"], Priority.COPY)
        hooks.add(EVENT, lambda host: None)
        hooks.add(EVENT, lambda host: (f for f in ("a", "b")), Priority.SECURITY)
        hooks.add(EVENT, lambda host: ("c",), Priority.DEFAULT)
        self.assertEqual(hooks.collect(EVENT, "h"), ["a", "b", "c", "h-copy"])

    def test_empty(self):
        """collect on an event without handlers is an empty list."""
        self.assertEqual(Hooks().collect(EVENT), [])

    def test_notify_ignores_results(self):
        """notify calls everyone, whatever they return."""
        hooks = Hooks()
        calls = []
        hooks.add(EVENT, recorder(calls, "a", "taken"))
        hooks.add(EVENT, recorder(calls, "b", "also"))
        self.assertIsNone(hooks.notify(EVENT))
        self.assertEqual(labels(calls), ["a", "b"])
