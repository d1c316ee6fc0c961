"""A channel's archive (XEP-0313, XEP-0359): one message history for both faces.

Every message posted to a channel, whichever face it came through, gets one archive id
(its XEP-0359 stanza-id on both faces) and is written once, in a canonical form: the
groupchat message without addresses, with the sender in a MIX ``<mix>`` element (nick
and real bare JID). Each face renders that form for its audience when it sends the
message live, replays MUC history (XEP-0045 §7.2.15) or answers a MAM query, and hides
the real JID from whoever may not see it.

The archive lives in the store of the "mam" extension (``IMessageArchive``), written by
a writer of our own (``ArchiveWriter``: batched, tracked for stream management), under
the owner ``(channel name, DOMAIN#channels)``: a key no account can have, the same for
both faces, and independent of the services' host names. Ids come from our own
``IdMaker`` and ``ArchiveClock`` (only this module writes channel archives, so per-archive
order holds).

The newest messages of each channel are kept in memory (``History``) for MUC joins,
loaded from the archive the first time they are needed. Retracted messages (XEP-0425,
XEP-0407) keep their archive entry; their tombstone is kept in the channel store and
replaces the payload whenever the message is rendered.
"""

from collections import deque

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.words.xish import domish

from summitd.core.xmlstream import parse_element
from summitd.plugins.mam.archiving import stored_xml
from summitd.plugins.mam.store import ArchiveEntry, ArchiveFilter, PageRequest
from summitd.plugins.mam.writer import ArchiveWriter
from summitd.plugins.channels.stanzas import NS_CLIENT, child

NS_MIX = "urn:xmpp:mix:core:1"
ARCHIVE_SUFFIX = "#channels"

#: Children a sender may not put on a channel message (the channel adds its own).
STRIPPED = frozenset({
    ("http://jabber.org/protocol/muc#user", "x"),
    ("urn:xmpp:sid:0", "stanza-id"),
    ("urn:xmpp:occupant-id:0", "occupant-id"),
    (NS_MIX, "mix"),
    ("urn:xmpp:delay", "delay"),
    ("jabber:x:delay", "x"),
})


class Posted:
    """A message as the channel keeps it."""

    __slots__ = ("id", "ts", "bare", "nick", "payload", "client_id", "retraction")

    def __init__(self, bare, nick, payload, client_id=None, id=None, ts=0, retraction=None):
        self.bare = bare              # the sender's real bare JID
        self.nick = nick
        self.payload = payload        # child elements, shared by every rendering
        self.client_id = client_id    # the sender's own message id
        self.id = id                  # the archive id (also the stanza-id)
        self.ts = ts                  # microseconds since the epoch
        self.retraction = retraction  # store.Retraction once retracted

    def body_text(self):
        return "\n".join(str(c) for c in self.payload if c.name == "body" and c.uri == NS_CLIENT)

    def size(self):
        """Characters of the payload, for XEP-0045 maxchars."""
        return sum(len(c.toXml()) for c in self.payload)


def reflected_payload(message):
    """The children of a sender's message that the channel reflects."""
    return [c for c in message.elements() if (c.uri, c.name) not in STRIPPED]


def canonical(posted):
    """The archived form of a message (see the module docstring)."""
    message = domish.Element((NS_CLIENT, "message"))
    message["type"] = "groupchat"
    if posted.client_id:
        message["id"] = posted.client_id
    message.children = list(posted.payload)
    mix = message.addElement((NS_MIX, "mix"))
    mix.addElement("nick", content=posted.nick)
    mix.addElement("jid", content=posted.bare)
    return stored_xml(message)


def from_canonical(item):
    """The Posted of an archive Item."""
    message = parse_element(item.stanza)
    mix = child(message, NS_MIX, "mix")
    nick = bare = ""
    if mix is not None:
        nick = str(child(mix, NS_MIX, "nick") or "")
        bare = str(child(mix, NS_MIX, "jid") or "")
    payload = [c for c in message.elements() if c is not mix]
    return Posted(bare, nick, payload, message.getAttribute("id"), item.id, item.ts)


class History:
    """The newest messages of one channel (Posted, oldest first), in memory."""

    def __init__(self, length):
        self.messages = deque(maxlen=length)


class ChannelArchive:
    """Posts messages into channel archives and reads them back."""

    def __init__(self, context, store, channel_store, ids, clock, history_length):
        self._context = context
        self._store = store
        self._channel_store = channel_store
        self._ids = ids
        self._clock = clock
        self._history_length = history_length
        self.writer = ArchiveWriter(store, context)
        self._loading = {}          # channel key -> Deferreds waiting for its history
        self._pending = {}          # channel key -> messages posted while it loads

    @staticmethod
    def owner(channel):
        return channel.host + ARCHIVE_SUFFIX, channel.name

    def _archive_name(self, channel):
        host, user = self.owner(channel)
        return f"{user}@{host}"

    # -- writing -----------------------------------------------------------------------------

    def post(self, channel, posted):
        """Give ``posted`` its id and time, archive it (when the channel keeps an archive)
        and remember it in the channel's history."""
        posted.ts = self._clock.next()
        posted.id = self._ids.make(self._archive_name(channel), posted.ts)
        if channel.config.archive:
            host, user = self.owner(channel)
            self.writer.add(ArchiveEntry(host, user, posted.id, posted.ts, posted.bare, "",
                                         canonical(posted), posted.body_text()))
        pending = self._pending.get(channel.key)
        if pending is not None:
            pending.append(posted)
        elif channel.history is not None:
            channel.history.messages.append(posted)
        return posted

    def retract(self, channel, retraction):
        """Keep the tombstone; the message stays in the archive under it."""
        if channel.history is not None:
            for posted in channel.history.messages:
                if posted.id == retraction.archive_id:
                    posted.retraction = retraction
        return self._channel_store.retract(channel.host, channel.name, retraction)

    def delete(self, channel):
        """Delete a destroyed channel's archive (a new channel of that name starts empty)."""
        host, user = self.owner(channel)
        self.writer.flush()
        channel.history = None
        return self._context.database.runInteraction(
            "channels: delete archive", self._store.delete_archive, host, user)

    # -- reading ------------------------------------------------------------------------------

    def recent(self, channel):
        """Deferred History of the channel (its newest messages, loaded once)."""
        if channel.history is not None:
            return defer.succeed(channel.history)
        waiter = defer.Deferred()
        waiters = self._loading.get(channel.key)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        self._loading[channel.key] = [waiter]
        self._pending[channel.key] = []
        d = self.find(channel, ArchiveFilter(), PageRequest(max=self._history_length, before=""))
        d.addBoth(self._loaded, channel)
        return waiter

    def _loaded(self, result, channel):
        waiters = self._loading.pop(channel.key)
        pending = self._pending.pop(channel.key)
        history = History(self._history_length)
        if isinstance(result, Failure):
            self._context.log.failure("channels: loading the history of {channel} failed", result,
                                      channel=channel.name)
        else:
            history.messages.extend(result.items)
        known = {p.id for p in history.messages}
        history.messages.extend(p for p in pending if p.id not in known)
        channel.history = history
        for waiter in waiters:
            waiter.callback(history)

    def metadata(self, channel):
        """Deferred (first Item, last Item) of the channel's archive (XEP-0313 §5)."""
        self.writer.flush()
        return self._store.metadata(*self.owner(channel))

    @defer.inlineCallbacks
    def find(self, channel, archive_filter, page_request):
        """A Page of Posted (tombstones applied) of the channel's archive; fails with
        UnknownArchiveId as a MAM query does."""
        self.writer.flush()
        host, user = self.owner(channel)
        page = yield self._store.query(host, user, archive_filter, page_request)
        items = [from_canonical(item) for item in page.items]
        if items:
            tombstones = yield self._channel_store.retractions(channel.host, channel.name,
                                                               [p.id for p in items])
            for posted in items:
                posted.retraction = tombstones.get(posted.id)
        page.items[:] = items
        return page
