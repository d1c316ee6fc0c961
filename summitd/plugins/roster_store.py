"""Roster storage: items, subscription states, stored requests and versions (RFC 6121 §2, §2.6,
§3 and Appendix A).

One row per (account, contact) holds everything RFC 6121 keeps about the pair: the item
the user sees (handle, groups, subscription, 'ask', 'approved') and what the user does
not see, the pending inbound request with the complete stanza that carried it (§3.1.3
rule 4). A request from someone not on the roster is such a row with ``listed`` false:
Appendix A.1 state 3 without a roster item, which §3.1.3 forbids adding to the roster.

Every change is one read-modify-write transaction (``update``), so state transitions
never act on a stale copy; the change function is pure and runs on the database thread.

Versions (§2.6, XEP-0237): each account has a counter bumped by every change a client
would see, and each row remembers the counter of its last visible change. Removed items
leave a tombstone so a client's cached version can be brought up to date with interim
pushes; only the newest tombstones are kept, and a client older than the oldest kept one
(the "horizon") gets the whole roster. A random epoch per roster keeps versions of a
deleted and re-created account from matching old caches.

Other extensions ask through ``IRoster`` (provided by the roster extension), e.g.
"does this account share its presence with that JID" for disco or the archive.
"""

import json
import secrets
from dataclasses import dataclass, replace

from zope.interface import Attribute, Interface

from summitd.core.jid import JID, parse_jid
from summitd.storage.schema import Migration

COMPONENT = "roster"
MAX_TOMBSTONES = 200    # removed items remembered per account for interim pushes

MIGRATIONS = (
    Migration(1, (
        "CREATE TABLE roster_items ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " contact TEXT NOT NULL,"            # bare JID
        " name TEXT NOT NULL,"
        " groups_json TEXT NOT NULL,"        # JSON list of group names
        " subscription TEXT NOT NULL,"       # none | to | from | both
        " ask SMALLINT NOT NULL,"            # pending out
        " approved SMALLINT NOT NULL,"       # pre-approval (§3.4)
        " pending_in SMALLINT NOT NULL,"
        " listed SMALLINT NOT NULL,"         # 0: only an inbound request is recorded
        " request TEXT,"                     # the stored subscribe stanza while pending_in
        " version BIGINT NOT NULL,"          # counter of the last visible change
        " PRIMARY KEY (host, username, contact)"
        ")",
        "CREATE INDEX roster_items_contact ON roster_items (contact)",
        "CREATE TABLE roster_removed ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " contact TEXT NOT NULL,"
        " version BIGINT NOT NULL,"
        " PRIMARY KEY (host, username, contact)"
        ")",
        "CREATE TABLE roster_versions ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " epoch TEXT NOT NULL,"
        " version BIGINT NOT NULL,"
        " horizon BIGINT NOT NULL,"          # oldest version interim pushes can start from
        " PRIMARY KEY (host, username)"
        ")",
    )),
)

UNVERSIONED = "0"   # the version of a roster that was never changed


class RosterFull(Exception):
    """The account has max_items roster items already."""


class TooManyRequests(Exception):
    """The account has max_pending stored subscription requests already."""


@dataclass(frozen=True)
class RosterItem:
    """What is kept about one contact of one account."""

    contact: str                # bare JID text
    name: str = ""
    groups: tuple = ()
    subscription: str = "none"  # none | to | from | both
    ask: bool = False           # the user asked for the contact's presence: pending out
    approved: bool = False      # the user pre-approved the contact's request
    pending_in: bool = False    # the contact asked for the user's presence
    listed: bool = True         # on the user's roster (False: only a stored request)
    request: str = None         # the stored subscribe stanza (XML) while pending_in

    @property
    def has_to(self):
        """The user receives the contact's presence."""
        return self.subscription in ("to", "both")

    @property
    def has_from(self):
        """The contact receives the user's presence."""
        return self.subscription in ("from", "both")

    @property
    def jid(self):
        return parse_jid(self.contact)

    def visible(self):
        """What a client sees of this row (None when it is not on the roster)."""
        if not self.listed:
            return None
        return (self.name, self.groups, self.subscription, self.ask, self.approved)


@dataclass(frozen=True)
class Change:
    """The outcome of ``update``: the row before and after, and the roster version when a
    client would see the change (then it deserves a roster push)."""

    user: JID                   # the account (bare)
    contact: str
    before: RosterItem = None
    after: RosterItem = None
    version: str = None

    @property
    def removed(self):
        """The item left the roster."""
        return self.before is not None and self.before.listed and (self.after is None or not self.after.listed)


@dataclass(frozen=True)
class RosterView:
    """A roster as a roster get returns it: every item, or (for a client whose cached version
    can be brought up to date) the changes since, in order, as (version, item, removed)."""

    version: str
    items: list = None
    changes: list = None


class IRoster(Interface):
    """The roster extension's service for other extensions (all answers are Deferreds)."""

    config = Attribute("The roster options (RosterConfig).")

    def roster(user, since=None):
        """The account's RosterView; ``since`` is the version a client cached, if any."""

    def entries(user):
        """Every row of the account (RosterItems, stored requests included)."""

    def item(user, contact):
        """The account's RosterItem for ``contact`` (a JID), or None."""

    def is_subscribed_from(user, contact):
        """True when ``contact`` receives the account's presence (subscription from/both)."""

    def is_subscribed_to(user, contact):
        """True when the account receives ``contact``'s presence (subscription to/both)."""

    def sharing_with(user):
        """The bare JIDs (text) of the local accounts whose rosters give ``user`` their
        presence (subscription from/both): who answers ``user``'s probes here."""

    def update(user, contact, change):
        """Apply ``change(before) -> after`` (pure; RosterItem or None) to the row in one
        transaction; fires with a Change. Fails with RosterFull or TooManyRequests."""

    def push(change):
        """Send a roster push for a Change to the account's interested resources."""


def contact_key(jid):
    """The text a contact is stored under: its bare JID."""
    return jid.userhost() if jid.resource is not None else jid.full()


def _flag(value):
    return 1 if value else 0


_COLUMNS = "contact, name, groups_json, subscription, ask, approved, pending_in, listed, request"


def _item(row):
    contact, name, groups, subscription, ask, approved, pending_in, listed, request = row
    return RosterItem(contact=contact, name=name, groups=tuple(json.loads(groups)),
                      subscription=subscription, ask=bool(ask), approved=bool(approved),
                      pending_in=bool(pending_in), listed=bool(listed), request=request)


def _read_row(txn, host, username, contact):
    """(RosterItem, its visible version) or (None, 0)."""
    row = txn.execute(f"SELECT {_COLUMNS}, version FROM roster_items WHERE host = ? AND username = ? AND contact = ?",
                      (host, username, contact)).fetchone()
    return (None, 0) if row is None else (_item(row[:-1]), row[-1])


def _read_item(txn, host, username, contact):
    return _read_row(txn, host, username, contact)[0]


def _read_version(txn, host, username):
    """(epoch, counter, horizon) or None for a roster never changed."""
    return txn.execute("SELECT epoch, version, horizon FROM roster_versions WHERE host = ? AND username = ?",
                       (host, username)).fetchone()


def _bump(txn, host, username):
    """Advance the account's counter; returns (epoch, counter)."""
    row = _read_version(txn, host, username)
    if row is None:
        epoch = secrets.token_hex(4)
        txn.execute("INSERT INTO roster_versions (host, username, epoch, version, horizon) VALUES (?, ?, ?, 1, 0)",
                    (host, username, epoch))
        return epoch, 1
    txn.execute("UPDATE roster_versions SET version = version + 1 WHERE host = ? AND username = ?",
                (host, username))
    return row[0], row[1] + 1


def _version_text(epoch, counter):
    return f"{epoch}-{counter}"


def _parse_version(text):
    """(epoch, counter) from a client's cached version, or None."""
    epoch, _, counter = text.partition("-")
    if not (counter.isascii() and counter.isdigit()) or len(counter) > 18:
        return None
    return epoch, int(counter)


def _count(txn, host, username, listed):
    return txn.execute("SELECT COUNT(*) FROM roster_items WHERE host = ? AND username = ? AND listed = ?",
                       (host, username, listed)).fetchone()[0]


def _write(txn, host, username, contact, after, counter):
    """Store ``after`` (None: delete the row); ``counter`` is the row's visible version."""
    if after is None:
        txn.execute("DELETE FROM roster_items WHERE host = ? AND username = ? AND contact = ?",
                    (host, username, contact))
        return
    txn.execute(
        f"INSERT INTO roster_items (host, username, {_COLUMNS}, version)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (host, username, contact) DO UPDATE SET name = excluded.name,"
        " groups_json = excluded.groups_json, subscription = excluded.subscription, ask = excluded.ask,"
        " approved = excluded.approved, pending_in = excluded.pending_in, listed = excluded.listed,"
        " request = excluded.request, version = excluded.version",
        (host, username, contact, after.name, json.dumps(list(after.groups), ensure_ascii=False),
         after.subscription, _flag(after.ask), _flag(after.approved), _flag(after.pending_in),
         _flag(after.listed), after.request, counter))


def _remember_removal(txn, host, username, contact, counter):
    txn.execute("INSERT INTO roster_removed (host, username, contact, version) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (host, username, contact) DO UPDATE SET version = excluded.version",
                (host, username, contact, counter))
    row = txn.execute("SELECT version FROM roster_removed WHERE host = ? AND username = ?"
                      " ORDER BY version DESC LIMIT 1 OFFSET ?", (host, username, MAX_TOMBSTONES)).fetchone()
    if row is not None:
        # Forget the oldest tombstones; versions before the newest forgotten one can no
        # longer be brought up to date by interim pushes.
        txn.execute("DELETE FROM roster_removed WHERE host = ? AND username = ? AND version <= ?",
                    (host, username, row[0]))
        txn.execute("UPDATE roster_versions SET horizon = ? WHERE host = ? AND username = ?",
                    (row[0], host, username))


def _normalised(item):
    """Drop rows that hold nothing: not on the roster and no request pending."""
    if item is not None and not item.listed and not item.pending_in:
        return None
    return item


def _visible(item):
    return None if item is None else item.visible()


class RosterStore:
    """The roster tables, behind Deferreds."""

    def __init__(self, database, config):
        self._db = database
        self.config = config

    # -- reading ---------------------------------------------------------------------

    def roster(self, user, since=None):
        return self._db.runInteraction("roster: get", self._roster, user.host, user.user, since)

    def _roster(self, txn, host, username, since):
        row = _read_version(txn, host, username)
        current = UNVERSIONED if row is None else _version_text(row[0], row[1])
        if since == current:
            return RosterView(current, changes=[])
        items = [_item(r) for r in txn.execute(
            f"SELECT {_COLUMNS} FROM roster_items WHERE host = ? AND username = ? AND listed = 1",
            (host, username)).fetchall()]
        if since is not None:
            changes = self._changes_since(txn, host, username, row, since)
            # Interim pushes only when they cost less than the whole roster (RFC 6121 §2.6.3).
            if changes is not None and len(changes) < len(items):
                return RosterView(current, changes=changes)
        items.sort(key=lambda i: i.contact)
        return RosterView(current, items=items)

    def _changes_since(self, txn, host, username, row, since):
        """[(version, item, removed)] after the client's version, or None when it cannot
        be associated with this roster's history."""
        parsed = _parse_version(since)
        if row is None or parsed is None:
            return None
        epoch, counter = parsed
        if epoch != row[0] or not row[2] <= counter < row[1]:
            return None
        changed = txn.execute(
            f"SELECT {_COLUMNS}, version FROM roster_items"
            " WHERE host = ? AND username = ? AND listed = 1 AND version > ?",
            (host, username, counter)).fetchall()
        removed = txn.execute(
            "SELECT contact, version FROM roster_removed WHERE host = ? AND username = ? AND version > ?",
            (host, username, counter)).fetchall()
        changes = [(r[-1], _item(r[:-1]), False) for r in changed]
        changes.extend((version, RosterItem(contact), True) for contact, version in removed)
        changes.sort(key=lambda c: c[0])
        return [(_version_text(row[0], v), item, gone) for v, item, gone in changes]

    def entries(self, user):
        def entries(txn):
            return [_item(r) for r in txn.execute(
                f"SELECT {_COLUMNS} FROM roster_items WHERE host = ? AND username = ?",
                (user.host, user.user)).fetchall()]

        return self._db.runInteraction("roster: entries", entries)

    def item(self, user, contact):
        return self._db.runInteraction("roster: item", _read_item, user.host, user.user, contact_key(contact))

    def sharing_with(self, user):
        def sharing(txn):
            rows = txn.execute("SELECT host, username FROM roster_items"
                               " WHERE contact = ? AND subscription IN ('from', 'both')",
                               (contact_key(user),)).fetchall()
            return {f"{username}@{host}" for host, username in rows}

        return self._db.runInteraction("roster: sharing with", sharing)

    # -- changing ----------------------------------------------------------------------

    def update(self, user, contact, change):
        return self._db.runInteraction("roster: update", self._update, user, contact_key(contact), change)

    def _update(self, txn, user, contact, change):
        host, username = user.host, user.user
        before, counter = _read_row(txn, host, username, contact)
        after = _normalised(change(before))
        if after == before:
            return Change(user, contact, before, after)
        self._check_limits(txn, host, username, before, after)
        version = None
        if _visible(before) != _visible(after):
            epoch, counter = _bump(txn, host, username)
            version = _version_text(epoch, counter)
            if before is not None and before.listed and (after is None or not after.listed):
                _remember_removal(txn, host, username, contact, counter)
            elif before is None or not before.listed:
                txn.execute("DELETE FROM roster_removed WHERE host = ? AND username = ? AND contact = ?",
                            (host, username, contact))
        _write(txn, host, username, contact, after, counter)
        return Change(user, contact, before, after, version)

    def _check_limits(self, txn, host, username, before, after):
        if after is None:
            return
        if after.listed and not (before is not None and before.listed):
            if _count(txn, host, username, 1) >= self.config.max_items:
                raise RosterFull()
        elif not after.listed and before is None:
            if _count(txn, host, username, 0) >= self.config.max_pending:
                raise TooManyRequests()

    # -- account deletion (inside the deleting transaction) --------------------------------

    def delete_account(self, txn, user):
        """Delete the account's roster and requests, and reset the items other local
        accounts keep for it (subscription none, nothing pending); returns their Changes."""
        host, username = user.host, user.user
        for table in ("roster_items", "roster_removed", "roster_versions"):
            txn.execute(f"DELETE FROM {table} WHERE host = ? AND username = ?", (host, username))
        contact = contact_key(user)
        holders = txn.execute("SELECT host, username FROM roster_items WHERE contact = ?", (contact,)).fetchall()
        changes = []
        for holder_host, holder in holders:
            owner = JID.from_prepared(holder, holder_host)
            changes.append(self._update(txn, owner, contact, _forget_subscription))
        return changes


def _forget_subscription(before):
    """The row of a contact whose account is gone: no subscription, nothing pending."""
    if before is None:
        return None
    return replace(before, subscription="none", ask=False, approved=False, pending_in=False, request=None)
