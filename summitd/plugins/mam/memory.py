"""The in-memory archive store: the reference backend of ``IArchiveStore``.

It says what the interface means in the plainest code (lists kept in ``ts``
order, filters applied one entry at a time) and backs the contract tests the SQL
store must also pass. It forgets everything at restart, so production uses
``sql.SQLArchiveStore``. A lock guards the data because account deletion calls
``delete_archive`` on the database thread.
"""

import bisect
import threading

from twisted.internet import defer
from zope.interface import implementer

from summitd.plugins.mam import fulltext
from summitd.plugins.mam.store import (
    ArchiveEntry, IArchiveStore, Item, PageReader, UnknownArchiveId, read_page)


class _Archive:
    """One owner's entries in ts order, with their search tokens and an id index."""

    def __init__(self):
        self.entries = []
        self.keys = []        # the entries' ts, for bisect
        self.by_id = {}
        self.tokens = {}      # id -> body tokens, computed when first searched

    def add(self, entry):
        position = bisect.bisect_right(self.keys, entry.ts)
        self.keys.insert(position, entry.ts)
        self.entries.insert(position, entry)
        self.by_id[entry.id] = entry

    def drop_oldest(self, n):
        for entry in self.entries[:n]:
            del self.by_id[entry.id]
            self.tokens.pop(entry.id, None)
        del self.entries[:n], self.keys[:n]


@implementer(PageReader)
class _Reader:
    def __init__(self, archive):
        self._archive = archive

    def resolve(self, archive_id):
        entry = self._archive.by_id.get(archive_id)
        return None if entry is None else entry.ts

    def _matching(self, archive_filter, lo, hi):
        archive = self._archive
        first = 0 if lo is None else bisect.bisect_left(archive.keys, lo)
        end = len(archive.keys) if hi is None else bisect.bisect_right(archive.keys, hi)
        ids = set(archive_filter.ids)
        for entry in archive.entries[first:end]:
            if archive_filter.with_bare is not None and (
                    entry.with_bare != archive_filter.with_bare
                    or (archive_filter.with_resource is not None
                        and entry.with_resource != archive_filter.with_resource)):
                continue
            if ids and entry.id not in ids:
                continue
            if entry.groupchat and not archive_filter.include_groupchat:
                continue
            if archive_filter.fulltext is not None and not fulltext.matches(
                    archive_filter.fulltext, self._tokens(entry)):
                continue
            yield entry

    def _tokens(self, entry):
        found = self._archive.tokens.get(entry.id)
        if found is None:
            found = self._archive.tokens[entry.id] = fulltext.tokens(entry.body)
        return found

    def rows(self, archive_filter, lo, hi, descending, limit, offset):
        entries = list(self._matching(archive_filter, lo, hi))
        if descending:
            entries.reverse()
        return [Item(e.id, e.ts, e.stanza) for e in entries[offset:offset + limit]]

    def count(self, archive_filter, lo, hi):
        return sum(1 for _ in self._matching(archive_filter, lo, hi))


@implementer(IArchiveStore)
class MemoryArchiveStore:
    supports_fulltext = True

    def __init__(self):
        self._archives = {}     # (host, user) -> _Archive
        self._prefs = {}
        self._lock = threading.Lock()

    def setup(self):
        return defer.succeed(None)

    def append(self, entries):
        with self._lock:
            for entry in map(ArchiveEntry._make, entries):
                self._archives.setdefault((entry.host, entry.user), _Archive()).add(entry)
        return defer.succeed(None)

    def query(self, host, user, archive_filter, page_request):
        with self._lock:
            archive = self._archives.get((host, user), _Archive())
            try:
                return defer.succeed(read_page(_Reader(archive), archive_filter, page_request))
            except UnknownArchiveId:
                return defer.fail()

    def metadata(self, host, user):
        with self._lock:
            archive = self._archives.get((host, user))
            if archive is None or not archive.entries:
                return defer.succeed((None, None))
            first, last = archive.entries[0], archive.entries[-1]
            return defer.succeed((Item(first.id, first.ts, first.stanza),
                                  Item(last.id, last.ts, last.stanza)))

    def last_timestamp(self):
        with self._lock:
            newest = [a.keys[-1] for a in self._archives.values() if a.keys]
        return defer.succeed(max(newest) if newest else None)

    def delete_archive(self, txn, host, user):
        with self._lock:
            self._archives.pop((host, user), None)
            self._prefs.pop((host, user), None)

    def account_created(self, host, user):
        return defer.succeed(None)      # nothing cached: the archives are the data

    def expire(self, older_than, keep_per_user, batch):
        deleted = 0
        with self._lock:
            for archive in self._archives.values():
                excess = 0
                if older_than is not None:
                    excess = bisect.bisect_left(archive.keys, older_than)
                if keep_per_user is not None:
                    excess = max(excess, len(archive.entries) - keep_per_user)
                archive.drop_oldest(excess)
                deleted += excess
        return defer.succeed(deleted)

    def load_prefs(self):
        with self._lock:
            return defer.succeed(dict(self._prefs))

    def save_prefs(self, host, user, prefs):
        with self._lock:
            self._prefs[(host, user)] = prefs
        return defer.succeed(None)
