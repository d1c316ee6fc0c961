"""The in-memory channel store: the reference backend of ``IChannelStore``.

The plainest reading of the interface (dicts), and what the SQL store's contract tests
compare against. It forgets everything at restart. A lock guards the data because
account deletion calls ``delete_account`` on the database thread.
"""

import threading
from dataclasses import replace

from twisted.internet import defer
from zope.interface import implementer

from summitd.plugins.channels.store import ChannelExists, IChannelStore


@implementer(IChannelStore)
class MemoryChannelStore:
    def __init__(self):
        self._lock = threading.Lock()
        self._channels = {}       # (host, name) -> ChannelRecord
        self._members = {}        # (host, name) -> {jid: Member}
        self._retractions = {}    # (host, name) -> {archive id: Retraction}

    def setup(self):
        return defer.succeed(None)

    def load_all(self):
        with self._lock:
            found = [(record, list(self._members.get(key, {}).values()))
                     for key, record in sorted(self._channels.items())]
        return defer.succeed(found)

    def create(self, record):
        key = (record.host, record.name)
        with self._lock:
            if key in self._channels:
                return defer.fail(ChannelExists(key))
            self._channels[key] = record
            self._members[key] = {}
        return defer.succeed(None)

    def update(self, record):
        """Configuration and subject change; the creation time stays."""
        key = (record.host, record.name)
        with self._lock:
            old = self._channels.get(key)
            if old is not None:
                self._channels[key] = replace(record, created=old.created)
        return defer.succeed(None)

    def delete(self, host, name):
        key = (host, name)
        with self._lock:
            for table in (self._channels, self._members, self._retractions):
                table.pop(key, None)
        return defer.succeed(None)

    def set_member(self, host, name, member):
        key = (host, name)
        with self._lock:
            members = self._members.get(key)
            if members is not None:
                if member.worth_keeping:
                    members[member.jid] = member
                else:
                    members.pop(member.jid, None)
        return defer.succeed(None)

    def retract(self, host, name, retraction):
        with self._lock:
            if (host, name) in self._channels:
                self._retractions.setdefault((host, name), {})[retraction.archive_id] = retraction
        return defer.succeed(None)

    def retractions(self, host, name, ids):
        with self._lock:
            known = self._retractions.get((host, name), {})
            found = {archive_id: known[archive_id] for archive_id in ids if archive_id in known}
        return defer.succeed(found)

    def delete_account(self, txn, jid):
        with self._lock:
            for members in self._members.values():
                members.pop(jid, None)
