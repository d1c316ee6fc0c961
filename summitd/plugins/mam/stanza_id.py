"""Unique and Stable Stanza IDs (XEP-0359): the archive ids this server stamps, and the forged
ones it strips.

An id is 30 lowercase hex digits: the archive timestamp (14 digits of microseconds,
so ids sort in time order, XEP-0313 §3.1) followed by a 64-bit MAC (keyed BLAKE2b)
of the archive's JID and that timestamp under a key only this server knows. Nobody
can guess another message's id (XEP-0359 §6); the server tells its own ids from
forged ones without asking the database, and finds an entry by the timestamp its
id carries (``timestamp_of``), so the archive needs no index on ids. Timestamps come from
``ArchiveClock``, which never goes backwards and never repeats, even across restarts
(it is seeded from the newest archived timestamp), so ids are unique and ``ts``
orders an archive.

A ``<stanza-id/>`` is only worth something if nobody else can write one in our
name (XEP-0359 §6, XEP-0313 §3.4). ``sort_stanza_ids`` removes every stanza-id
whose 'by' is an entity on a hosted domain, except (a) one the sending entity
stamped for itself (a local MUC room), and (b) one by the recipient's archive
that carries a valid HMAC: a message this server archived and stamped before and
now routes again (stream management re-routes unacknowledged messages, after a
crash from its spool); that message must not be archived twice. Only direct
children are looked at: a forwarded message inside a carbon or an archive result
carries the ids of its own context.
"""

import hashlib
import hmac

from twisted.words.xish import domish

from summitd.core.jid import InvalidJID, parse_jid

NS_SID = "urn:xmpp:sid:0"
_TS_DIGITS = 14
_MAC_BYTES = 8
ID_LENGTH = _TS_DIGITS + 2 * _MAC_BYTES
_HEX = frozenset("0123456789abcdef")
_TWO_63, _TWO_64 = 1 << 63, 1 << 64


class ArchiveClock:
    """Strictly increasing timestamps in microseconds from an IReactorTime."""

    def __init__(self, clock):
        self._clock = clock
        self._last = 0

    def seed(self, newest):
        """Never go below ``newest`` (the newest archived ts, or None)."""
        if newest is not None and newest > self._last:
            self._last = newest

    def next(self):
        now = int(self._clock.seconds() * 1_000_000)
        self._last = now if now > self._last else self._last + 1
        return self._last


def timestamp_of(archive_id):
    """The timestamp an archive id carries, or None when it is not shaped like one."""
    if len(archive_id) != ID_LENGTH or not _HEX.issuperset(archive_id):
        return None
    return int(archive_id[:_TS_DIGITS], 16)


def mac_of(archive_id):
    """The MAC an archive id carries as a signed 64-bit integer (what SQL stores), or None
    when it is not shaped like an id."""
    if timestamp_of(archive_id) is None:
        return None
    return signed_mac(archive_id)


def signed_mac(archive_id):
    """``mac_of`` without the shape check, for ids this server made (the archive's writes)."""
    mac = int(archive_id[_TS_DIGITS:], 16)
    return mac - _TWO_64 if mac >= _TWO_63 else mac


def id_from(ts, mac):
    """The archive id made of a timestamp and a MAC as ``mac_of`` gives it."""
    return f"{ts:0{_TS_DIGITS}x}{mac & 0xFFFF_FFFF_FFFF_FFFF:0{2 * _MAC_BYTES}x}"


class IdMaker:
    """Makes and checks archive ids under one secret key."""

    def __init__(self, key):
        self._keyed = hashlib.blake2b(key=key, digest_size=_MAC_BYTES)   # copied per MAC

    def _mac(self, archive, ts):
        mac = self._keyed.copy()
        mac.update(f"{archive}\0{ts}".encode("utf-8"))
        return mac.hexdigest()

    def make(self, archive, ts):
        """The id of the message at ``ts`` in the archive of ``archive`` (a bare JID text)."""
        return f"{ts:0{_TS_DIGITS}x}" + self._mac(archive, ts)

    def verify(self, archive, archive_id):
        """Whether ``archive_id`` is an id this server made for ``archive``."""
        ts = timestamp_of(archive_id)
        return ts is not None and hmac.compare_digest(archive_id[_TS_DIGITS:], self._mac(archive, ts))


def stamp(stanza, archive_id, by):
    """Add ``<stanza-id id=archive_id by=by/>`` to a message; returns that element."""
    element = stanza.addElement((NS_SID, "stanza-id"))
    element["id"] = archive_id
    element["by"] = by
    return element


def _stanza_ids(stanza):
    return [c for c in stanza.children
            if c.__class__ is domish.Element and c.name == "stanza-id" and c.uri == NS_SID]


def sort_stanza_ids(stanza, domains, ids, sender_bare=None, archive=None):
    """Strip forged stanza-ids (see the module docstring) and return the id of a genuine one
    by ``archive`` (the recipient's bare JID text), or None. ``sender_bare`` is the bare JID
    the stanza comes from when that entity may stamp its own ids; ``ids`` an IdMaker."""
    children = _stanza_ids(stanza)
    if not children:
        return None
    ours = None
    for child in children:
        by = child.getAttribute("by", "")
        try:
            by_jid = parse_jid(by)
        except InvalidJID:
            continue                # names nobody here
        if by_jid.host not in domains:
            continue                # someone else's id: not ours to judge
        by_bare = by_jid.userhost()
        if by_bare == sender_bare:
            continue
        archive_id = child.getAttribute("id", "")
        if by_bare == archive and ours is None and ids.verify(archive, archive_id):
            ours = archive_id
            continue
        stanza.children.remove(child)
    return ours
