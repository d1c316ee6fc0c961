"""The SQL archive store: ``IArchiveStore`` on the server's database.

Archiving is the most frequent write the server makes (one or two archive entries
per message), so the layout is shaped by what one entry costs the database thread:

* ``mam_texts``: a message's text (the stanza and its body) once, however many
  archives hold it. A message between two local users is one text row with two
  entries; ``people`` lists the archives that took it (the full-text index narrows
  searches with it) and ``refs`` counts the entries still pointing at it.
* ``mam_entries``: one small row per archive entry, clustered on (archive, ts)
  (``WITHOUT ROWID``: the table is its own index), with integers instead of names:
  the archive, the conversation (the archive's contact), the id's MAC (an id is its
  ``ts`` in hex plus a MAC, ``stanza_id``; the store keeps the MAC as an integer and
  rebuilds the id), the text, and whether it is a groupchat message. The second index is (conversation, ts), for
  queries ``with`` a contact.
* ``mam_archives`` and ``mam_conversations`` give archives and (archive, contact)
  pairs their integer ids, cached on the database thread.
* ``mam_search`` (SQLite): a contentless FTS5 index of each text's body and people,
  ``unicode61 remove_diacritics 2``, written by the store itself (a trigger cost
  more than the row it indexed).

Entries written together that have the same ts and stanza share one text row (the
archiver gives both archives of a message the same ts); otherwise each entry gets its
own. Rows go in with multi-row INSERTs: executemany would hand the GIL back and forth
with the reactor thread once per row.

Product-specific parts live in a dialect object (``SQLiteDialect``: the full-text
index and ``WITHOUT ROWID``); a PostgreSQL dialect would use ``BIGSERIAL``, a
``tsvector`` column with a GIN index and ``@@`` matching, with no caller changes.
"""

import json
import time
from itertools import chain

from twisted.internet import defer
from zope.interface import implementer

from summitd.plugins.mam import fulltext
from summitd.plugins.mam.prefs import Prefs
from summitd.plugins.mam.stanza_id import id_from, mac_of, signed_mac, timestamp_of
from summitd.plugins.mam.store import IArchiveStore, Item, PageReader, read_page
from summitd.storage.schema import Migration, apply_migrations

COMPONENT = "mam"

# Versions 1 and 2 are the first layout (one row per entry, text and all), kept so an
# old database upgrades step by step; version 3 converts it.
_V1_TABLES = Migration(1, (
    "CREATE TABLE mam_messages ("
    " seq INTEGER PRIMARY KEY,"
    " host TEXT NOT NULL,"
    " username TEXT NOT NULL,"
    " id TEXT NOT NULL,"
    " ts BIGINT NOT NULL,"
    " with_bare TEXT NOT NULL,"
    " with_resource TEXT NOT NULL,"
    " stanza TEXT NOT NULL,"
    " body TEXT NOT NULL"
    ")",
    "CREATE INDEX mam_messages_owner_ts ON mam_messages (host, username, ts)",
    "CREATE INDEX mam_messages_with_ts ON mam_messages (host, username, with_bare, ts)",
    "CREATE TABLE mam_prefs ("
    " host TEXT NOT NULL,"
    " username TEXT NOT NULL,"
    " default_mode TEXT NOT NULL,"
    " always_jids TEXT NOT NULL,"
    " never_jids TEXT NOT NULL,"
    " PRIMARY KEY (host, username)"
    ")",
))

_V2_SQLITE_FTS = Migration(2, (
    "CREATE VIRTUAL TABLE mam_fts USING fts5(username, body, content='mam_messages',"
    " content_rowid='seq', columnsize=0, tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER mam_fts_insert AFTER INSERT ON mam_messages BEGIN"
    " INSERT INTO mam_fts (rowid, username, body) VALUES (new.seq, new.username, new.body); END",
    "CREATE TRIGGER mam_fts_delete AFTER DELETE ON mam_messages BEGIN"
    " INSERT INTO mam_fts (mam_fts, rowid, username, body)"
    " VALUES ('delete', old.seq, old.username, old.body); END",
    "INSERT INTO mam_fts (mam_fts) VALUES ('rebuild')",
))

_V3_TABLES = (
    "CREATE TABLE mam_archives ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " host TEXT NOT NULL,"
    " username TEXT NOT NULL,"
    " UNIQUE (host, username)"
    ")",
    "CREATE TABLE mam_conversations ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " archive INTEGER NOT NULL,"
    " with_bare TEXT NOT NULL,"
    " UNIQUE (archive, with_bare)"
    ")",
    "CREATE TABLE mam_texts ("
    " seq INTEGER PRIMARY KEY,"
    " ts BIGINT NOT NULL,"
    " people TEXT NOT NULL,"
    " refs INTEGER NOT NULL,"
    " stanza TEXT NOT NULL,"
    " body TEXT NOT NULL"
    ")",
    "CREATE TABLE mam_entries ("
    " archive INTEGER NOT NULL,"
    " ts BIGINT NOT NULL,"
    " mac BIGINT NOT NULL,"
    " conversation INTEGER NOT NULL,"
    " with_resource TEXT NOT NULL,"
    " text INTEGER NOT NULL,"
    " groupchat INTEGER NOT NULL,"
    " PRIMARY KEY (archive, ts)"
    ") WITHOUT ROWID",
    "CREATE INDEX mam_entries_conversation ON mam_entries (conversation, ts)",
)

_V3_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE mam_search USING fts5(people, body, content='', columnsize=0,"
    " tokenize='unicode61 remove_diacritics 2')",
)

_V3_DROP_OLD = (
    "DROP TABLE mam_messages",
)
_V3_DROP_OLD_FTS = (
    "DROP TRIGGER mam_fts_insert",
    "DROP TRIGGER mam_fts_delete",
    "DROP TABLE mam_fts",
)


def _convert_v2_rows(fulltext_index, chunk=10_000):
    """A migration step: every row of the first layout becomes a text and an entry (read
    ``chunk`` rows at a time, so a large archive is not held in memory at once)."""
    def convert(txn):
        ids, fresh_archives, fresh_conversations = _Ids(), {}, {}
        last = 0
        while True:
            rows = txn.execute(
                "SELECT seq, host, username, id, ts, with_bare, with_resource, stanza, body"
                " FROM mam_messages WHERE seq > ? ORDER BY seq LIMIT ?", (last, chunk)).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            texts, entries, index = [], [], []
            for seq, host, user, archive_id, ts, with_bare, with_resource, stanza, body in rows:
                mac = mac_of(archive_id)
                if mac is None:
                    continue    # not an id this server made: nobody can ask for it
                archive = ids.archive(txn, host, user, fresh_archives)
                conversation = ids.conversation(txn, archive, with_bare, fresh_conversations)
                texts.append((seq, ts, str(archive), 1, stanza, body))
                entries.append((archive, ts, mac, conversation, with_resource, seq,
                                int(_is_groupchat(stanza))))
                index.append((seq, str(archive), body))
            _insert_rows(txn, "INSERT INTO mam_texts (seq, ts, people, refs, stanza, body)"
                         " VALUES ", 6, texts)
            # The old layout did not forbid two rows with one (archive, ts): the last wins.
            _insert_rows(txn, "INSERT OR REPLACE INTO mam_entries (archive, ts, mac,"
                         " conversation, with_resource, text, groupchat) VALUES ", 7, entries)
            if fulltext_index:
                _insert_rows(txn, "INSERT INTO mam_search (rowid, people, body) VALUES ", 3,
                             index)
    return convert


def _is_groupchat(stanza):
    """Whether stored XML (serialised by summitd.core.xmlwriter) is a groupchat message."""
    start = stanza[:stanza.find(">")]
    return " type='groupchat'" in start or ' type="groupchat"' in start


class SQLiteDialect:
    """SQLite's part: the schema with its FTS5 index, and the MATCH clause."""

    def __init__(self, engine):
        self.fulltext = engine.supports_fts

    def migrations(self):
        if self.fulltext:
            return (_V1_TABLES, _V2_SQLITE_FTS, Migration(3, (
                *_V3_TABLES, *_V3_SQLITE_FTS, _convert_v2_rows(True),
                *_V3_DROP_OLD_FTS, *_V3_DROP_OLD)))
        return (_V1_TABLES, Migration(3, (*_V3_TABLES, _convert_v2_rows(False), *_V3_DROP_OLD)))

    def match(self, terms, archive):
        """A WHERE fragment (and its parameters) selecting entries whose text's body
        matches, narrowed to texts the archive took (the caller checks the archive)."""
        expression = f'people : "{archive}" AND body : (' + fulltext.fts5_expression(terms) + ")"
        return "e.text IN (SELECT rowid FROM mam_search WHERE mam_search MATCH ?)", [expression]

    def add_texts(self, txn, rows):
        """Index new texts: rows of (seq, people, body)."""
        if self.fulltext:
            _insert_rows(txn, "INSERT INTO mam_search (rowid, people, body) VALUES ", 3, rows)

    def remove_texts(self, txn, where, params):
        """Take the texts ``where`` selects (a condition on mam_texts) out of the index."""
        if self.fulltext:
            txn.execute("INSERT INTO mam_search (mam_search, rowid, people, body)"
                        f" SELECT 'delete', seq, people, body FROM mam_texts WHERE {where}",
                        params)


def dialect_for(engine):
    if engine.name == "sqlite":
        return SQLiteDialect(engine)
    raise NotImplementedError(f"the archive has no SQL dialect for {engine.name}")


#: How many of the latest texts ``last_timestamp`` looks at.
RECENT_TEXTS = 100_000

#: Entries prepared between two moments the GIL is offered to the reactor thread.
YIELD_EVERY = 100

#: Rows per INSERT statement (at most 7 parameters each, well under SQLite's 32766).
ROWS_PER_INSERT = 100


def _insert_rows(txn, insert, width, rows):
    """``insert`` ("INSERT INTO t (...) VALUES ") for every row, several rows a statement."""
    placeholder = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start:start + ROWS_PER_INSERT]
        txn.execute(insert + ", ".join([placeholder] * len(chunk)),
                    list(chain.from_iterable(chunk)))


_SELECT_ARCHIVE = "SELECT id FROM mam_archives WHERE host = ? AND username = ?"
_INSERT_ARCHIVE = "INSERT INTO mam_archives (host, username) VALUES (?, ?)"
_SELECT_CONVERSATION = "SELECT id FROM mam_conversations WHERE archive = ? AND with_bare = ?"
_INSERT_CONVERSATION = "INSERT INTO mam_conversations (archive, with_bare) VALUES (?, ?)"


class _Ids:
    """The integer ids of archives and conversations, cached.

    Only ids read back from the database go into the cache (an id inserted by a
    transaction that is later rolled back must not outlive it): the transaction that
    makes an id keeps it in its own ``fresh`` dict, the next one reads it once.
    Used on the database thread only."""

    MAX_CACHED = 200_000

    def __init__(self):
        self.archives = {}
        self.conversations = {}

    def _cache(self, cache, key, value):
        if len(cache) >= self.MAX_CACHED:
            cache.clear()
        cache[key] = value

    def _find(self, txn, cache, key, select):
        found = cache.get(key)
        if found is None:
            row = txn.execute(select, key).fetchone()
            if row is None:
                return None
            found = row[0]
            self._cache(cache, key, found)
        return found

    def _find_or_make(self, txn, cache, key, fresh, select, insert):
        found = fresh.get(key) or self._find(txn, cache, key, select)
        if found is None:
            found = fresh[key] = txn.execute(insert, key).lastrowid
        return found

    def find_archive(self, txn, host, user):
        """The archive's id, or None when it has none yet."""
        return self._find(txn, self.archives, (host, user), _SELECT_ARCHIVE)

    def archive(self, txn, host, user, fresh):
        """The archive's id, made (and kept in ``fresh``, this transaction's) when it has none."""
        return self._find_or_make(txn, self.archives, (host, user), fresh, _SELECT_ARCHIVE,
                                  _INSERT_ARCHIVE)

    def find_conversation(self, txn, archive, with_bare):
        return self._find(txn, self.conversations, (archive, with_bare), _SELECT_CONVERSATION)

    def conversation(self, txn, archive, with_bare, fresh):
        return self._find_or_make(txn, self.conversations, (archive, with_bare), fresh,
                                  _SELECT_CONVERSATION, _INSERT_CONVERSATION)

    def forget_archive(self, host, user, archive):
        self.archives.pop((host, user), None)
        for key in [k for k in self.conversations if k[0] == archive]:
            del self.conversations[key]


_SELECT_ITEMS = ("SELECT e.ts, e.mac, t.stanza FROM mam_entries e"
                 " JOIN mam_texts t ON t.seq = e.text")


def _item(row):
    ts, mac, stanza = row
    return Item(id_from(ts, mac), ts, stanza)


@implementer(PageReader)
class _Reader:
    """One archive, inside one transaction."""

    def __init__(self, txn, dialect, ids, archive):
        self._txn = txn
        self._dialect = dialect
        self._ids = ids
        self._archive = archive      # the archive's integer id

    def resolve(self, archive_id):
        mac = mac_of(archive_id)
        if mac is None:
            return None
        ts = timestamp_of(archive_id)
        row = self._txn.execute(
            "SELECT ts FROM mam_entries WHERE archive = ? AND ts = ? AND mac = ?",
            (self._archive, ts, mac)).fetchone()
        return None if row is None else row[0]

    def _where(self, archive_filter, lo, hi):
        """The WHERE clause and parameters, or None when nothing can match."""
        clauses = ["e.archive = ?"]
        params = [self._archive]
        if archive_filter.with_bare is not None:
            conversation = self._ids.find_conversation(self._txn, self._archive,
                                                       archive_filter.with_bare)
            if conversation is None:
                return None
            clauses.append("e.conversation = ?")
            params.append(conversation)
            if archive_filter.with_resource is not None:
                clauses.append("e.with_resource = ?")
                params.append(archive_filter.with_resource)
        if lo is not None:
            clauses.append("e.ts >= ?")
            params.append(lo)
        if hi is not None:
            clauses.append("e.ts <= ?")
            params.append(hi)
        if not archive_filter.include_groupchat:
            clauses.append("e.groupchat = 0")
        if archive_filter.ids:
            wanted = []
            for archive_id in archive_filter.ids:
                wanted.append("(e.ts = ? AND e.mac = ?)")
                params += (timestamp_of(archive_id), mac_of(archive_id))
            clauses.append("(" + " OR ".join(wanted) + ")")
        if archive_filter.fulltext is not None:
            clause, match_params = self._dialect.match(archive_filter.fulltext, self._archive)
            clauses.append(clause)
            params.extend(match_params)
        return " AND ".join(clauses), params

    def rows(self, archive_filter, lo, hi, descending, limit, offset):
        where = self._where(archive_filter, lo, hi)
        if where is None:
            return []
        clause, params = where
        order = "DESC" if descending else "ASC"
        rows = self._txn.execute(f"{_SELECT_ITEMS} WHERE {clause} ORDER BY e.ts {order}"
                                 " LIMIT ? OFFSET ?", params + [limit, offset]).fetchall()
        return [_item(row) for row in rows]

    def count(self, archive_filter, lo, hi):
        where = self._where(archive_filter, lo, hi)
        if where is None:
            return 0
        clause, params = where
        return self._txn.execute(f"SELECT COUNT(*) FROM mam_entries e WHERE {clause}",
                                 params).fetchone()[0]


@implementer(PageReader)
class _EmptyReader:
    """An archive nothing was ever written to."""

    def resolve(self, archive_id):
        return None

    def rows(self, archive_filter, lo, hi, descending, limit, offset):
        return []

    def count(self, archive_filter, lo, hi):
        return 0


def _load_prefs(txn):
    rows = txn.execute(
        "SELECT host, username, default_mode, always_jids, never_jids FROM mam_prefs").fetchall()
    return {(host, user): Prefs(mode, frozenset(json.loads(always)), frozenset(json.loads(never)))
            for host, user, mode, always, never in rows}


def _save_prefs(txn, host, user, prefs):
    txn.execute(
        "INSERT INTO mam_prefs (host, username, default_mode, always_jids, never_jids)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (host, username) DO UPDATE SET"
        " default_mode = excluded.default_mode, always_jids = excluded.always_jids,"
        " never_jids = excluded.never_jids",
        (host, user, prefs.default, json.dumps(sorted(prefs.always)),
         json.dumps(sorted(prefs.never))))


@implementer(IArchiveStore)
class SQLArchiveStore:
    def __init__(self, database, fulltext=True):
        self._db = database
        self._dialect = dialect_for(database.engine)
        self._ids = _Ids()
        self.supports_fulltext = fulltext and self._dialect.fulltext

    def setup(self):
        return apply_migrations(self._db, COMPONENT, self._dialect.migrations())

    # -- writing -------------------------------------------------------------------------

    def append(self, entries):
        return self._db.runInteraction("mam: archive messages", self._append, list(entries))

    def _append(self, txn, entries):
        ids = self._ids
        cached_archives, cached_conversations = ids.archives, ids.conversations
        fresh_archives, fresh_conversations = {}, {}
        texts = {}          # (ts, stanza) -> [seq, people, body]
        entry_rows = []
        next_seq = txn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM mam_texts").fetchone()[0]
        for host, user, archive_id, ts, with_bare, with_resource, stanza, body, groupchat \
                in entries:
            archive = (cached_archives.get((host, user))
                       or ids.archive(txn, host, user, fresh_archives))
            conversation = (cached_conversations.get((archive, with_bare))
                            or ids.conversation(txn, archive, with_bare, fresh_conversations))
            text = texts.get((ts, stanza))
            if text is None:
                text = texts[(ts, stanza)] = [next_seq, [], body]
                next_seq += 1
            text[1].append(archive)
            if len(entry_rows) % YIELD_EVERY == 0:
                time.sleep(0)   # let the reactor thread have the GIL: it is routing meanwhile
            entry_rows.append((archive, ts, signed_mac(archive_id), conversation,
                               with_resource, text[0], int(groupchat)))
        text_rows, index_rows = [], []
        for (ts, stanza), (seq, people, body) in texts.items():
            names = " ".join(map(str, people))
            text_rows.append((seq, ts, names, len(people), stanza, body))
            index_rows.append((seq, names, body))
        _insert_rows(txn, "INSERT INTO mam_texts (seq, ts, people, refs, stanza, body) VALUES ",
                     6, text_rows)
        _insert_rows(txn, "INSERT INTO mam_entries (archive, ts, mac, conversation,"
                     " with_resource, text, groupchat) VALUES ", 7, entry_rows)
        self._dialect.add_texts(txn, index_rows)

    def _release_texts(self, txn, selected, params):
        """Entries are about to be deleted: ``selected`` (SQL selecting their text seqs)
        loses one reference each, and texts nobody refers to any more are deleted."""
        txn.execute(f"UPDATE mam_texts SET refs = refs - 1 WHERE seq IN ({selected})", params)
        where = f"refs <= 0 AND seq IN ({selected})"
        self._dialect.remove_texts(txn, where, params)
        txn.execute(f"DELETE FROM mam_texts WHERE {where}", params)

    # -- reading -------------------------------------------------------------------------

    def _reader(self, txn, host, user):
        archive = self._ids.find_archive(txn, host, user)
        if archive is None:
            return _EmptyReader()
        return _Reader(txn, self._dialect, self._ids, archive)

    def query(self, host, user, archive_filter, page_request):
        def query(txn):
            return read_page(self._reader(txn, host, user), archive_filter, page_request)

        return self._db.runInteraction("mam: query", query)

    def metadata(self, host, user):
        def metadata(txn):
            archive = self._ids.find_archive(txn, host, user)
            if archive is None:
                return None, None
            return tuple(self._end_item(txn, archive, order) for order in ("ASC", "DESC"))

        return self._db.runInteraction("mam: metadata", metadata)

    @staticmethod
    def _end_item(txn, archive, order):
        row = txn.execute(f"{_SELECT_ITEMS} WHERE e.archive = ? ORDER BY e.ts {order} LIMIT 1",
                          (archive,)).fetchone()
        return None if row is None else _item(row)

    def last_timestamp(self):
        # Texts are written in ts order but for retried batches (older ts, later seq), so the
        # newest ts is among the latest texts: no scan of the whole table at every start.
        return self._db.runInteraction(
            "mam: newest timestamp",
            lambda txn: txn.execute(
                "SELECT MAX(ts) FROM mam_texts WHERE seq > (SELECT COALESCE(MAX(seq), 0)"
                " FROM mam_texts) - ?", (RECENT_TEXTS,)).fetchone()[0])

    # -- deleting ------------------------------------------------------------------------

    def delete_archive(self, txn, host, user):
        txn.execute("DELETE FROM mam_prefs WHERE host = ? AND username = ?", (host, user))
        archive = self._ids.find_archive(txn, host, user)
        if archive is None:
            return
        self._release_texts(txn, "SELECT text FROM mam_entries WHERE archive = ?", (archive,))
        txn.execute("DELETE FROM mam_entries WHERE archive = ?", (archive,))
        txn.execute("DELETE FROM mam_conversations WHERE archive = ?", (archive,))
        txn.execute("DELETE FROM mam_archives WHERE id = ?", (archive,))
        self._ids.forget_archive(host, user, archive)

    def account_created(self, host, user):
        # On the database thread, like every use of the cache, and before any write for
        # the new account (transactions run in order).
        return self._db.runInteraction(
            "mam: forget cached archive id",
            lambda txn: self._ids.archives.pop((host, user), None) and None)

    def _delete_older(self, txn, older_than, batch):
        """Among the ``batch`` oldest texts (by seq), delete those older than the cutoff
        and their entries (every entry of a text has the text's ts); returns how many
        entries and how many texts went."""
        rows = txn.execute("SELECT seq, ts, people FROM mam_texts ORDER BY seq LIMIT ?",
                           (batch,)).fetchall()
        old = [(int(archive), ts, seq) for seq, ts, people in rows if ts < older_than
               for archive in people.split()]
        if not old:
            return 0, 0
        deleted = 0
        for start in range(0, len(old), ROWS_PER_INSERT):
            chunk = old[start:start + ROWS_PER_INSERT]
            txn.execute("DELETE FROM mam_entries WHERE "
                        + " OR ".join(["(archive = ? AND ts = ? AND text = ?)"] * len(chunk)),
                        [value for row in chunk for value in row])
            deleted += txn.rowcount
        where = "seq <= ? AND ts < ?"
        params = (rows[-1][0], older_than)
        self._dialect.remove_texts(txn, where, params)
        txn.execute(f"DELETE FROM mam_texts WHERE {where}", params)
        return deleted, txn.rowcount

    def _delete_oldest(self, txn, archive, n):
        selected = ("SELECT text FROM mam_entries WHERE archive = ? AND ts <= ("
                    "SELECT ts FROM mam_entries WHERE archive = ? ORDER BY ts LIMIT 1 OFFSET ?)")
        params = (archive, archive, n - 1)
        self._release_texts(txn, selected, params)
        txn.execute("DELETE FROM mam_entries WHERE archive = ? AND ts <= ("
                    "SELECT ts FROM mam_entries WHERE archive = ? ORDER BY ts LIMIT 1 OFFSET ?)",
                    params)
        return txn.rowcount

    @defer.inlineCallbacks
    def expire(self, older_than, keep_per_user, batch):
        deleted = 0
        if older_than is not None:
            while True:
                entries, texts = yield self._db.runInteraction(
                    "mam: expire old messages", self._delete_older, older_than, batch)
                deleted += entries
                if texts == 0:
                    break
        if keep_per_user is not None:
            over = yield self._db.runInteraction(
                "mam: archives over quota",
                lambda txn: txn.execute(
                    "SELECT archive, COUNT(*) FROM mam_entries GROUP BY archive"
                    " HAVING COUNT(*) > ?", (keep_per_user,)).fetchall())
            for archive, count in over:
                excess = count - keep_per_user
                while excess > 0:
                    n = yield self._db.runInteraction("mam: expire over quota",
                                                      self._delete_oldest, archive,
                                                      min(excess, batch))
                    if n == 0:
                        break
                    excess -= n
                    deleted += n
        return deleted

    # -- preferences ---------------------------------------------------------------------

    def load_prefs(self):
        return self._db.runInteraction("mam: load preferences", _load_prefs)

    def save_prefs(self, host, user, prefs):
        return self._db.runInteraction("mam: save preferences", _save_prefs, host, user, prefs)
