"""Events with prioritised handlers: the one way the core hands work to extensions.

Two shapes, as in ejabberd: ``run`` calls handlers until one returns something
other than ``None`` (it has taken the event), ``collect`` gathers what every
handler returns (stream features, disco features). ``notify`` tells everyone.

Handler lists are kept sorted when a handler is added or removed, never per
event; event keys are ``Event`` objects defined once in a module (a typo is a
NameError, not a hook that silently never fires). A failing handler is logged and
skipped: one broken extension must not take a stanza, or the server, down with it.
"""

from enum import IntEnum

from twisted.logger import Logger

log = Logger()


class Priority(IntEnum):
    """Named bands, highest first. Use ``Priority.DEFAULT + 5`` to order within a band."""

    SECURITY = 5000   # blocking, spam defence, rate limits: before anything sees the stanza
    STAMP = 4000      # stanza-id, stripping forged elements: before anything stores it
    DEFAULT = 3000
    ARCHIVE = 2000    # MAM: after stamping, so the archive has the stable id
    COPY = 1000       # carbons: after archiving, so copies carry the stanza-id
    DELIVER = 0       # delivery and offline storage: last


class Event:
    """A named event key; compare by identity."""

    __slots__ = ("name", "doc")

    def __init__(self, name, doc=""):
        self.name = name
        self.doc = doc

    def __repr__(self):
        return f"<Event {self.name}>"


class Hooks:
    """The handler table of one server."""

    def __init__(self):
        self._handlers = {}   # event -> tuple of (priority, seq, handler), sorted highest first
        self._seq = 0

    def add(self, event, handler, priority=Priority.DEFAULT):
        """Register ``handler``; returns a function that removes it again."""
        if not isinstance(event, Event):
            raise TypeError(f"hook keys are Event objects, not {event!r}")
        self._seq += 1
        entry = (int(priority), -self._seq, handler)
        entries = list(self._handlers.get(event, ()))
        entries.append(entry)
        # Higher priority first; within a priority, first registered first.
        entries.sort(key=lambda e: (e[0], e[1]), reverse=True)
        self._handlers[event] = tuple(entries)

        def remove():
            remaining = tuple(e for e in self._handlers.get(event, ()) if e is not entry)
            if remaining:
                self._handlers[event] = remaining
            else:
                self._handlers.pop(event, None)

        return remove

    def has_handlers(self, event):
        return event in self._handlers

    def run(self, event, *args):
        """Call handlers in order until one returns non-None; return that (else None)."""
        for _, _, handler in self._handlers.get(event, ()):
            try:
                result = handler(*args)
            except Exception:
                log.failure("hook {event} handler {handler!r} failed", event=event.name, handler=handler)
                continue
            if result is not None:
                return result
        return None

    def notify(self, event, *args):
        """Call every handler; return values are ignored."""
        for _, _, handler in self._handlers.get(event, ()):
            try:
                handler(*args)
            except Exception:
                log.failure("hook {event} handler {handler!r} failed", event=event.name, handler=handler)

    def collect(self, event, *args):
        """Call every handler and concatenate the iterables they return (None adds nothing)."""
        collected = []
        for _, _, handler in self._handlers.get(event, ()):
            try:
                items = handler(*args)
            except Exception:
                log.failure("collector {event} handler {handler!r} failed", event=event.name, handler=handler)
                continue
            if items is not None:
                collected.extend(items)
        return collected
