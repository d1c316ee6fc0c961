"""The channel store: what the group chat services keep across restarts.

``IChannelStore`` is the interface; ``memory.MemoryChannelStore`` is the reference
backend and ``sql.SQLChannelStore`` the real one. One contract test suite
(``summitd.test.test_channel_store``) runs on both.

Kept: each channel's configuration and subject (``ChannelRecord``), its members
(``model.Member``: affiliation, held nick, MIX participation) and the tombstones of
retracted messages (``Retraction``, XEP-0425 / XEP-0407). Not kept: occupants and MIX
presence (they end with the sessions) and the messages themselves, which live in the
channel's archive (the MAM store, see ``archive``).

Channels are few next to messages, so the services load the whole directory at start
(``load_all``) and write each change through; the store is never read on the message path.
"""

from dataclasses import dataclass

from zope.interface import Interface

from summitd.plugins.channels.model import ChannelConfig, Subject


class ChannelExists(Exception):
    """create() found a channel of that name on that host."""


@dataclass(frozen=True)
class ChannelRecord:
    host: str
    name: str
    config: ChannelConfig = ChannelConfig()
    subject: Subject = None
    created: int = 0           # microseconds since the epoch


@dataclass(frozen=True)
class Retraction:
    """A retracted message's tombstone: who took it back, why and when."""

    archive_id: str
    by_nick: str = ""
    by_jid: str = ""
    reason: str = ""
    ts: int = 0
    moderated: bool = True     # by a moderator (XEP-0425), not by its sender (XEP-0424)


class IChannelStore(Interface):
    """Storage of channels. Every method returns a Deferred, except ``delete_account``,
    which runs inside the account-deletion transaction."""

    def setup():
        """Create or upgrade the storage; call once before anything else."""

    def load_all():
        """Fire with [(ChannelRecord, [Member])] for every stored channel."""

    def create(record):
        """Store a new channel; fail with ChannelExists when (host, name) is taken."""

    def update(record):
        """Replace a stored channel's configuration and subject."""

    def delete(host, name):
        """Delete a channel with its members and tombstones (nothing when it is absent)."""

    def set_member(host, name, member):
        """Store a Member (replacing the JID's previous one); a member not worth keeping
        (no affiliation, nick or participation) is deleted instead."""

    def retract(host, name, retraction):
        """Keep a Retraction (a second one for the same id replaces the first)."""

    def retractions(host, name, ids):
        """Fire with {archive id: Retraction} for those of ``ids`` that were retracted."""

    def delete_account(txn, jid):
        """Delete the memberships of the bare JID text ``jid`` in every channel, inside the
        deleting transaction ``txn`` (backends without SQL ignore ``txn``)."""
