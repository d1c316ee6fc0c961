"""The archive store: what Message Archive Management (XEP-0313) needs from storage.

``IArchiveStore`` is the interface; ``memory.MemoryArchiveStore`` is the reference
backend (tests, tiny deployments) and ``sql.SQLArchiveStore`` the real one. One
contract test suite (``summitd.test.test_mam_store``) runs on both, so a future
PostgreSQL backend only has to pass it.

Archives are keyed by the owner's (host, username). Every entry has a
server-assigned id (also its XEP-0359 stanza-id) and a timestamp ``ts`` in
microseconds since the epoch; the extension's clock makes ``ts`` strictly
increasing, so ``ts`` alone orders an archive (XEP-0313 §3.1, "chronological
order") and an exclusive bound on an id becomes an inclusive bound on ``ts ± 1``.

The paging algorithm (RSM, XEP-0059, over a filtered archive) is written once, in
``read_page``, against three primitives each backend provides (``PageReader``).
"""

from dataclasses import dataclass
from typing import NamedTuple

from zope.interface import Attribute, Interface


class UnknownArchiveId(Exception):
    """A query named an id (after/before/ids) that is not in the archive: item-not-found
    (XEP-0313 §4.1.3 and §4.3.2)."""

    def __init__(self, archive_id):
        super().__init__(archive_id)
        self.archive_id = archive_id


class ArchiveEntry(NamedTuple):
    """One archived message as written (a named tuple: two are made per message routed)."""

    host: str
    user: str
    id: str              # made by stanza_id.IdMaker for this archive and ts (it carries ts)
    ts: int              # microseconds since the epoch (UTC), strictly increasing per archive
    with_bare: str       # the other party: 'to' of an outgoing, 'from' of an incoming message
    with_resource: str   # its resource, '' when none
    stanza: str          # the message as XML text, with xmlns='jabber:client'
    body: str            # the text full-text search indexes ('' for none)
    groupchat: bool = False  # a groupchat message (MIX-PAM), for 'include-groupchat'


@dataclass(frozen=True, slots=True)
class Item:
    """One archived message as a query returns it."""

    id: str
    ts: int
    stanza: str


@dataclass(frozen=True)
class ArchiveFilter:
    """What selects the result set (the XEP-0313 query form). Bounds are inclusive
    microseconds; ``ids`` empty means any id; ``fulltext`` is a tuple of
    ``fulltext.Term`` (all must match) or None."""

    with_bare: str | None = None
    with_resource: str | None = None
    start: int | None = None
    end: int | None = None
    after_id: str | None = None
    before_id: str | None = None
    ids: tuple = ()
    fulltext: tuple | None = None
    include_groupchat: bool = True      # False: leave out entries written with groupchat=True


@dataclass(frozen=True)
class PageRequest:
    """Which page of the result set (RSM). ``before`` is '' for the last page;
    ``newest_first`` makes the default page (no after/before/index) the last one,
    which is how full-text results are ranked."""

    max: int
    after: str | None = None
    before: str | None = None
    index: int | None = None
    newest_first: bool = False


@dataclass(frozen=True)
class Page:
    """A page of results in chronological order, the size of the whole result set, the
    index of the page's first item in it, and whether paging in the requested
    direction is finished (XEP-0313 §4.3.2 'complete')."""

    items: list
    count: int
    first_index: int | None
    complete: bool


class IArchiveStore(Interface):
    """Storage of user archives. Every method but ``delete_archive`` returns a Deferred."""

    supports_fulltext = Attribute("Whether ArchiveFilter.fulltext can be used.")

    def setup():
        """Create or upgrade the storage; call once before anything else."""

    def append(entries):
        """Write ArchiveEntry objects, or plain tuples in its field order (what the writer
        queues), any owners, any order; fires when committed."""

    def query(host, user, archive_filter, page_request):
        """Fire with a Page; fail with UnknownArchiveId for an unknown id in the
        filter's after_id/before_id/ids or the page's after/before."""

    def metadata(host, user):
        """Fire with (first Item, last Item) of the archive, (None, None) when empty."""

    def last_timestamp():
        """Fire with the newest ts in any archive, or None (seeds the id clock)."""

    def delete_archive(txn, host, user):
        """Delete the archive and preferences of an account, inside the account-deleting
        transaction ``txn`` (synchronous; backends without SQL ignore ``txn``)."""

    def account_created(host, user):
        """An account of this name was just created: forget whatever is cached about an
        earlier one (another process, summitctl, may have deleted it). Fires when done."""

    def expire(older_than, keep_per_user, batch):
        """Delete entries with ts < ``older_than`` (None: no age limit) and, per archive,
        all but the newest ``keep_per_user`` (None: no quota), oldest first, at most
        ``batch`` per transaction; fire with the number deleted. A backend may walk entries
        in the order they were written: one written long after its ts (a retried write)
        may then outlive the cutoff by that delay."""

    def load_prefs():
        """Fire with {(host, user): prefs.Prefs} for every account that set preferences."""

    def save_prefs(host, user, prefs):
        """Store an account's preferences (a prefs.Prefs)."""


class PageReader(Interface):
    """The primitives ``read_page`` needs, bound to one archive (and, for SQL, to one
    transaction, so a page and its counts are consistent)."""

    def resolve(archive_id):
        """The ts of the entry with this id, or None."""

    def rows(archive_filter, lo, hi, descending, limit, offset):
        """Items matching the filter's with/ids/fulltext with lo <= ts <= hi (None: open),
        in ts order (newest first when ``descending``), skipping ``offset``."""

    def count(archive_filter, lo, hi):
        """How many items ``rows`` would return without limit and offset."""


def _resolve(reader, archive_id):
    ts = reader.resolve(archive_id)
    if ts is None:
        raise UnknownArchiveId(archive_id)
    return ts


def _higher(a, b):
    return b if a is None or (b is not None and b > a) else a


def _lower(a, b):
    return b if a is None or (b is not None and b < a) else a


def read_page(reader, archive_filter, page):
    """The Page ``page`` asks for of the result set ``archive_filter`` selects."""
    lo, hi = archive_filter.start, archive_filter.end
    if archive_filter.after_id is not None:
        lo = _higher(lo, _resolve(reader, archive_filter.after_id) + 1)
    if archive_filter.before_id is not None:
        hi = _lower(hi, _resolve(reader, archive_filter.before_id) - 1)
    for archive_id in archive_filter.ids:
        _resolve(reader, archive_id)
    page_lo, page_hi = lo, hi
    if page.after is not None:
        page_lo = _higher(page_lo, _resolve(reader, page.after) + 1)
    if page.before:
        page_hi = _lower(page_hi, _resolve(reader, page.before) - 1)
    empty = lo is not None and hi is not None and lo > hi
    count = 0 if empty else reader.count(archive_filter, lo, hi)
    if page.max == 0 or count == 0:
        return Page([], count, None, complete=count == 0)
    descending = page.before is not None or (
        page.newest_first and page.after is None and page.index is None)
    items = []
    if page_lo is None or page_hi is None or page_lo <= page_hi:
        items = reader.rows(archive_filter, page_lo, page_hi, descending, page.max + 1,
                            page.index or 0)
    more = len(items) > page.max
    del items[page.max:]
    if descending:
        items.reverse()
    first_index = None
    if items:
        if page.index is not None:
            first_index = page.index
        elif descending and page_hi == hi:
            first_index = count - len(items)    # the last page: no second count needed
        else:
            first_index = reader.count(archive_filter, lo, items[0].ts - 1)
    return Page(items, count, first_index, complete=not more)


class IMessageArchive(Interface):
    """What the "mam" extension offers other extensions: its store, for archives of entities
    that are not accounts (a group chat service keeps each channel's archive in it), and
    archiving into an account's archive of a message the rules of ``archiving`` leave out
    (MIX-PAM, XEP-0405: the participant's server archives its MIX channels' messages)."""

    store = Attribute("The IArchiveStore the archives live in.")

    def archive_received(stanza, to_jid):
        """Archive ``stanza``, a message of any type for the local account ``to_jid``, in
        that account's archive as an incoming message (preferences permitting), stamping
        the account's stanza-id on it; returns the id, or None when it is not archived."""
