"""The SQL archive store: ``IArchiveStore`` on the server's database.

Everything callers see is written once in ``?``-style SQL that SQLite and
PostgreSQL share. What is product-specific -- the table's row id, the full-text
index and how a search is matched -- lives in a dialect object: ``SQLiteDialect``
today (an FTS5 external-content index over the owner's username and the body with
the ``unicode61 remove_diacritics 2`` tokenizer, kept up to date by triggers, so
inserts and deletes stay plain SQL). A PostgreSQL dialect would declare ``seq
BIGSERIAL``, a generated ``tsvector`` column with a GIN index, and match with
``body_tsv @@ to_tsquery(...)``; no caller changes. Rows go in with one multi-row
INSERT per 100 rows: executemany would hand the GIL back and forth with the reactor
thread once per row.

Each row costs the database thread far more than routing the message costs the
reactor, so the table has only the two indexes queries need: (owner, ts) for paging
a whole archive, which also finds an id (ids carry their timestamp,
``stanza_id.timestamp_of``), and (owner, with, ts) for one conversation. Retention by
age walks the table in insertion (``seq``) order, which is time order.
"""

import json

from twisted.internet import defer
from zope.interface import implementer

from summitd.plugins.mam import fulltext
from summitd.plugins.mam.prefs import Prefs
from summitd.plugins.mam.stanza_id import timestamp_of
from summitd.plugins.mam.store import IArchiveStore, Item, PageReader, read_page
from summitd.storage.schema import Migration, apply_migrations

COMPONENT = "mam"

_TABLES = Migration(1, (
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

_SQLITE_FTS = Migration(2, (
    # External content: the text lives once, in mam_messages. The owner's username is
    # indexed too, so a search for a common word intersects two posting lists inside FTS5
    # instead of fetching every message in the database that has the word. columnsize=0:
    # no bm25 ranking (results are ranked newest first), so no per-row sizes to keep.
    "CREATE VIRTUAL TABLE mam_fts USING fts5(username, body, content='mam_messages',"
    " content_rowid='seq', columnsize=0, tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER mam_fts_insert AFTER INSERT ON mam_messages BEGIN"
    " INSERT INTO mam_fts (rowid, username, body) VALUES (new.seq, new.username, new.body); END",
    "CREATE TRIGGER mam_fts_delete AFTER DELETE ON mam_messages BEGIN"
    " INSERT INTO mam_fts (mam_fts, rowid, username, body)"
    " VALUES ('delete', old.seq, old.username, old.body); END",
    # Rows archived before this version (a build without FTS5) join the index.
    "INSERT INTO mam_fts (mam_fts) VALUES ('rebuild')",
))


class SQLiteDialect:
    """SQLite's part: the schema with its FTS5 index, and the MATCH clause."""

    def __init__(self, engine):
        self.fulltext = engine.supports_fts

    def migrations(self):
        return (_TABLES, _SQLITE_FTS) if self.fulltext else (_TABLES,)

    def match(self, terms, user):
        """A WHERE fragment (and its parameters) selecting rows of ``user`` whose body
        matches (the caller's WHERE checks the owner exactly; FTS5 only narrows)."""
        expression = "body : (" + fulltext.fts5_expression(terms) + ")"
        owner = fulltext.tokens(user)
        if owner:
            expression = 'username : "' + " ".join(owner) + '" AND ' + expression
        return "seq IN (SELECT rowid FROM mam_fts WHERE mam_fts MATCH ?)", [expression]


def dialect_for(engine):
    if engine.name == "sqlite":
        return SQLiteDialect(engine)
    raise NotImplementedError(f"the archive has no SQL dialect for {engine.name}")


@implementer(PageReader)
class _Reader:
    """One archive, inside one transaction."""

    def __init__(self, txn, dialect, host, user):
        self._txn = txn
        self._dialect = dialect
        self._owner = (host, user)

    def resolve(self, archive_id):
        ts = timestamp_of(archive_id)
        if ts is None:
            return None
        row = self._txn.execute(
            "SELECT ts FROM mam_messages WHERE host = ? AND username = ? AND ts = ? AND id = ?",
            self._owner + (ts, archive_id)).fetchone()
        return None if row is None else row[0]

    def _where(self, archive_filter, lo, hi):
        clauses = ["host = ?", "username = ?"]
        params = list(self._owner)
        if archive_filter.with_bare is not None:
            clauses.append("with_bare = ?")
            params.append(archive_filter.with_bare)
            if archive_filter.with_resource is not None:
                clauses.append("with_resource = ?")
                params.append(archive_filter.with_resource)
        if lo is not None:
            clauses.append("ts >= ?")
            params.append(lo)
        if hi is not None:
            clauses.append("ts <= ?")
            params.append(hi)
        if archive_filter.ids:
            clauses.append("id IN (" + ", ".join("?" * len(archive_filter.ids)) + ")")
            params.extend(archive_filter.ids)
        if archive_filter.fulltext is not None:
            clause, match_params = self._dialect.match(archive_filter.fulltext, self._owner[1])
            clauses.append(clause)
            params.extend(match_params)
        return " AND ".join(clauses), params

    def rows(self, archive_filter, lo, hi, descending, limit, offset):
        where, params = self._where(archive_filter, lo, hi)
        order = "DESC" if descending else "ASC"
        rows = self._txn.execute(
            f"SELECT id, ts, stanza FROM mam_messages WHERE {where} ORDER BY ts {order}"
            " LIMIT ? OFFSET ?", params + [limit, offset]).fetchall()
        return [Item(*row) for row in rows]

    def count(self, archive_filter, lo, hi):
        where, params = self._where(archive_filter, lo, hi)
        return self._txn.execute(f"SELECT COUNT(*) FROM mam_messages WHERE {where}",
                                 params).fetchone()[0]


#: Rows per INSERT statement (8 parameters each, well under SQLite's limit of 32766).
ROWS_PER_INSERT = 100
_INSERT = ("INSERT INTO mam_messages (host, username, id, ts, with_bare, with_resource, stanza,"
           " body) VALUES ")
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"


def _insert(txn, entries):
    for start in range(0, len(entries), ROWS_PER_INSERT):
        chunk = entries[start:start + ROWS_PER_INSERT]
        params = []
        for e in chunk:
            params += (e.host, e.user, e.id, e.ts, e.with_bare, e.with_resource, e.stanza, e.body)
        txn.execute(_INSERT + ", ".join([_ROW] * len(chunk)), params)


def _end_item(txn, host, user, order):
    row = txn.execute(
        f"SELECT id, ts, stanza FROM mam_messages WHERE host = ? AND username = ?"
        f" ORDER BY ts {order} LIMIT 1", (host, user)).fetchone()
    return None if row is None else Item(*row)


def _metadata(txn, host, user):
    return _end_item(txn, host, user, "ASC"), _end_item(txn, host, user, "DESC")


def _delete_older(txn, older_than, batch):
    """Among the ``batch`` oldest rows (by seq), delete those older than the cutoff."""
    rows = txn.execute("SELECT seq FROM mam_messages ORDER BY seq LIMIT ?", (batch,)).fetchall()
    if not rows:
        return 0
    txn.execute("DELETE FROM mam_messages WHERE seq <= ? AND ts < ?", (rows[-1][0], older_than))
    return txn.rowcount


def _over_quota(txn, keep):
    return txn.execute(
        "SELECT host, username, COUNT(*) FROM mam_messages GROUP BY host, username"
        " HAVING COUNT(*) > ?", (keep,)).fetchall()


def _delete_oldest(txn, host, user, n):
    txn.execute(
        "DELETE FROM mam_messages WHERE seq IN (SELECT seq FROM mam_messages"
        " WHERE host = ? AND username = ? ORDER BY ts LIMIT ?)", (host, user, n))
    return txn.rowcount


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
        self.supports_fulltext = fulltext and self._dialect.fulltext

    def setup(self):
        return apply_migrations(self._db, COMPONENT, self._dialect.migrations())

    def append(self, entries):
        return self._db.runInteraction("mam: archive messages", _insert, list(entries))

    def query(self, host, user, archive_filter, page_request):
        def query(txn):
            return read_page(_Reader(txn, self._dialect, host, user), archive_filter, page_request)

        return self._db.runInteraction("mam: query", query)

    def metadata(self, host, user):
        return self._db.runInteraction("mam: metadata", _metadata, host, user)

    def last_timestamp(self):
        return self._db.runInteraction(
            "mam: newest timestamp",
            lambda txn: txn.execute("SELECT MAX(ts) FROM mam_messages").fetchone()[0])

    def delete_archive(self, txn, host, user):
        txn.execute("DELETE FROM mam_messages WHERE host = ? AND username = ?", (host, user))
        txn.execute("DELETE FROM mam_prefs WHERE host = ? AND username = ?", (host, user))

    @defer.inlineCallbacks
    def expire(self, older_than, keep_per_user, batch):
        deleted = 0
        if older_than is not None:
            while True:
                n = yield self._db.runInteraction("mam: expire old messages", _delete_older,
                                                  older_than, batch)
                deleted += n
                if n == 0:
                    break
        if keep_per_user is not None:
            over = yield self._db.runInteraction("mam: archives over quota", _over_quota,
                                                 keep_per_user)
            for host, user, count in over:
                excess = count - keep_per_user
                while excess > 0:
                    n = yield self._db.runInteraction("mam: expire over quota", _delete_oldest,
                                                      host, user, min(excess, batch))
                    if n == 0:
                        break
                    excess -= n
                    deleted += n
        return deleted

    def load_prefs(self):
        return self._db.runInteraction("mam: load preferences", _load_prefs)

    def save_prefs(self, host, user, prefs):
        return self._db.runInteraction("mam: save preferences", _save_prefs, host, user, prefs)
