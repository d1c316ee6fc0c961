"""The channel directory: the "channels" extension that the MUC and MIX faces share.

It owns what is the channel's whatever the face: the store (``IChannelStore``), the
in-memory directory of channels (loaded whole at start, written through on each change),
the archive (``archive``), the stable ids and the ``coexistence.Hub`` that tells every face
what happened. The faces ("muc" and "mix") require it; each renders the same channels.

Changes are applied in memory at once (so the next stanza sees them) and written through;
each write is tracked for stream management, and a failed write is logged.

Stable ids: a channel member's MIX Stable Participant ID (XEP-0369 §5.4) and its MUC
occupant id (XEP-0421) are one value, a keyed hash of the channel and the bare JID. It
never changes, is never reused, needs no storage and reveals nothing about the JID.

Options, under ``[extensions.channels]``::

    storage = "sql"          # "sql" (the server's database) or "memory" (tests)
    history_length = 20      # messages a MUC join may replay (kept in memory per channel)
    max_users = 200          # occupants of a room whose configuration sets no limit
    creators = "local"       # who may create channels: "local" accounts, "anyone", "admins"
    admins = []              # bare JIDs that administer every channel (and may create)
"""

import hashlib
import hmac
from dataclasses import dataclass, fields

from twisted.internet import defer
from twisted.internet.interfaces import IReactorFromThreads
from zope.interface import Interface

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid, prepare_localpart
from summitd.storage.keyval import stored_secret
from summitd.extensions.base import Extension
from summitd.plugins.channels.archive import ChannelArchive
from summitd.plugins.channels.coexistence import Hub
from summitd.plugins.channels.model import Channel, Member
from summitd.plugins.channels.store import ChannelExists, ChannelRecord
from summitd.plugins.mam.stanza_id import ArchiveClock, IdMaker
from summitd.plugins.mam.store import IMessageArchive

KEY_STORE, KEY_NAME = "channels", "id-key"
CREATORS = ("local", "anyone", "admins")
ID_HEX = 16


class IChannelDirectory(Interface):
    """What the "channels" extension offers the faces (see ChannelDirectory)."""


@dataclass(frozen=True)
class ChannelsConfig:
    storage: str = "sql"
    history_length: int = 20
    max_users: int = 200
    creators: str = "local"
    admins: tuple = ()


def parse_config(raw, path):
    known = {f.name for f in fields(ChannelsConfig)}
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key not in known]
    values = {}
    for key, value in raw.items():
        if key == "storage" and value not in ("sql", "memory"):
            errors.append((f"{path}.storage", 'must be "sql" or "memory"'))
        elif key in ("history_length", "max_users") and (
                isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100_000):
            errors.append((f"{path}.{key}", "must be an integer from 0 to 100000"))
        elif key == "creators" and value not in CREATORS:
            errors.append((f"{path}.creators", 'must be "local", "anyone" or "admins"'))
        elif key == "admins":
            try:
                value = tuple(parse_jid(v).userhost() for v in value)
            except (InvalidJID, TypeError, AttributeError):
                errors.append((f"{path}.admins", "must be a list of bare JIDs"))
        values[key] = value
    if errors:
        raise ConfigError(errors)
    return ChannelsConfig(**{k: v for k, v in values.items() if k in known})


def check_name(name):
    """A channel name as a prepared localpart; StanzaError for one that cannot be."""
    if not name or "#" in name:
        raise StanzaError("jid-malformed", "a channel name is a JID localpart without '#'")
    try:
        return prepare_localpart(name)
    except InvalidJID:
        raise StanzaError("jid-malformed", "a channel name is a JID localpart") from None


def _make_store(context, storage):
    if storage == "memory":
        from summitd.plugins.channels.memory import MemoryChannelStore
        return MemoryChannelStore()
    from summitd.plugins.channels.sql import SQLChannelStore
    return SQLChannelStore(context.database)


def _secret(context):
    return stored_secret(context.keyval(KEY_STORE), KEY_NAME)


class ChannelDirectory(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self.store = _make_store(context, config.storage)
        self.hub = Hub(context.log)
        self.archive = None
        self._channels = {}         # (host, name) -> Channel
        self._key = b""

    @defer.inlineCallbacks
    def start(self):
        context = self.context
        yield self.store.setup()
        self._key = yield _secret(context)
        mam = context.need(IMessageArchive)
        clock = ArchiveClock(context.clock)
        clock.seed((yield mam.store.last_timestamp()))
        self.archive = ChannelArchive(context, mam.store, self.store, IdMaker(self._key), clock,
                                      self.config.history_length)
        for record, members in (yield self.store.load_all()):
            channel = Channel(record.host, record.name, record.config,
                              {m.jid: m for m in members}, record.subject, record.created)
            if not record.config.persistent and not channel.participants():
                yield self.store.delete(record.host, record.name)    # a temporary room, now empty
                continue
            self._channels[channel.key] = channel
            for member in members:
                self.stable_id(channel, member.jid)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)
        context.hook(events.SERVER_STOPPING, self.archive.writer.flush)
        context.provide(IChannelDirectory, self)

    def stop(self):
        return self.archive.writer.drain() if self.archive is not None else None

    # -- looking up -----------------------------------------------------------------------

    def get(self, host, name):
        return self._channels.get((host, name))

    def channels(self, host):
        return [c for (h, _), c in sorted(self._channels.items()) if h == host]

    def stable_id(self, channel, bare):
        """The member's MIX participant id and MUC occupant id (see the module docstring)."""
        found = channel.ids.get(bare)
        if found is None:
            mac = hmac.new(self._key, f"{channel.host}\0{channel.name}\0{bare}".encode(), hashlib.sha256)
            found = channel.ids[bare] = mac.hexdigest()[:ID_HEX]
            channel.by_id[found] = bare
        return found

    def is_admin(self, bare):
        return bare in self.config.admins

    def may_create(self, requester):
        """Whether ``requester`` (a JID) may create channels."""
        creators = self.config.creators
        if creators == "anyone" or self.is_admin(requester.userhost()):
            return True
        return creators == "local" and requester.user is not None and requester.host in self.context.domains

    # -- changing ------------------------------------------------------------------------------

    def _written(self, d, what):
        d.addErrback(lambda f: self.context.log.failure("channels: {what} failed", f, what=what))
        self.context.track_write(d)
        return d

    def _record(self, channel):
        return ChannelRecord(channel.host, channel.name, channel.config, channel.subject, channel.created)

    def create(self, host, name, owner, config):
        """Create a channel owned by ``owner`` (bare JID text): in the directory at once (so a
        second create of the name conflicts), stored behind. StanzaError(conflict) when it
        exists."""
        if (host, name) in self._channels:
            raise StanzaError("conflict", "a channel of that name exists")
        channel = Channel(host, name, config, {owner: Member(owner, "owner")},
                          created=int(self.context.clock.seconds() * 1_000_000))
        self._channels[channel.key] = channel
        self.stable_id(channel, owner)
        d = self.store.create(self._record(channel))
        d.addCallback(lambda _: self.store.set_member(host, name, channel.members[owner]))
        d.addErrback(self._create_failed, channel)
        self._written(d, "creating a channel")
        self.hub.emit("created", channel)
        return channel

    def _create_failed(self, failure, channel):
        failure.trap(ChannelExists)
        self.context.log.warn("channels: {name} existed in the store already", name=channel.name)

    def destroy(self, channel, reason=None, alternate=None):
        if self._channels.get(channel.key) is not channel:
            return defer.succeed(None)
        del self._channels[channel.key]
        self.hub.emit("destroyed", channel, reason, alternate)
        d = self.store.delete(channel.host, channel.name)
        d.addCallback(lambda _: self.archive.delete(channel))
        return self._written(d, "destroying a channel")

    def configure(self, channel, config):
        before, channel.config = channel.config, config
        self._written(self.store.update(self._record(channel)), "configuring a channel")
        if before != config:
            self.hub.emit("config_changed", channel, before)

    def set_subject(self, channel, subject):
        channel.subject = subject
        self._written(self.store.update(self._record(channel)), "setting a subject")
        self.hub.emit("subject_changed", channel)

    def set_member(self, channel, member, actor=None, reason=None):
        """Store ``member`` (Member) and tell the faces; ``actor`` (nick or JID) and ``reason``
        explain the change to those it affects."""
        before = channel.member(member.jid)
        if member.worth_keeping:
            channel.members[member.jid] = member
        else:
            channel.members.pop(member.jid, None)
        self.stable_id(channel, member.jid)
        self._written(self.store.set_member(channel.host, channel.name, member), "changing a member")
        if before != member:
            self.hub.emit("member_changed", channel, before, member, actor, reason)

    def post(self, channel, posted):
        """Archive a message and have every face deliver it."""
        self.archive.post(channel, posted)
        self.hub.emit("message_posted", channel, posted)
        return posted

    def retract(self, channel, retraction, announcement):
        """Tombstone a message; ``announcement`` (a Posted) tells the channel."""
        self._written(self.archive.retract(channel, retraction), "retracting a message")
        self.archive.post(channel, announcement)
        self.hub.emit("retracted", channel, retraction, announcement)

    # -- accounts --------------------------------------------------------------------------------

    def _account_deleting(self, jid, txn):
        bare = jid.userhost()
        self.store.delete_account(txn, bare)
        clock = self.context.clock
        if IReactorFromThreads.providedBy(clock):
            clock.callFromThread(self._forget_account, bare)
        else:
            self._forget_account(bare)

    def _forget_account(self, bare):
        for channel in list(self._channels.values()):
            before = channel.members.pop(bare, None)
            if before is not None:
                self.hub.emit("member_changed", channel, before, Member(bare), None, None)


def build(context, config):
    return ChannelDirectory(context, config or ChannelsConfig())
