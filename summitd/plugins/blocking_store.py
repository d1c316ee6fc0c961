"""The blocking extension's tables: blocklists (XEP-0191) and spam reports (XEP-0377).

Blocked JIDs are stored normalised (RFC 7622), one row each, so the whole set
can be read at start and matched with plain string lookups. A report is kept
per (reporter, reported JID): a repeated report replaces the previous one and
counts up, so a user cannot grow the table by re-reporting the same JID.

The functions take a transaction (``Database.runInteraction``); SQL is '?' style
and runs on SQLite and PostgreSQL alike.
"""

import json
from dataclasses import dataclass

from summitd.storage.schema import Migration

COMPONENT = "blocking"

MIGRATIONS = (
    Migration(1, (
        "CREATE TABLE blocking_items ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " jid TEXT NOT NULL,"
        " PRIMARY KEY (host, username, jid)"
        ")",
        "CREATE TABLE blocking_reports ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " reported_jid TEXT NOT NULL,"
        " reason TEXT NOT NULL,"
        " report_text TEXT,"
        " stanza_ids TEXT NOT NULL,"
        " reported_at TEXT NOT NULL,"
        " report_count INTEGER NOT NULL,"
        " PRIMARY KEY (host, username, reported_jid)"
        ")",
    )),
)


@dataclass(frozen=True)
class Report:
    """One XEP-0377 report: ``stanza_ids`` is a tuple of (id, by-or-None) pairs."""

    reported_jid: str
    reason: str
    text: str = None
    stanza_ids: tuple = ()


def load_all(txn):
    """Every blocklist: {(username, host): frozenset of JID texts}."""
    lists = {}
    for host, username, jid in txn.execute("SELECT host, username, jid FROM blocking_items").fetchall():
        lists.setdefault((username, host), set()).add(jid)
    return {key: frozenset(jids) for key, jids in lists.items()}


def block(txn, host, username, jids, reports, reported_at):
    """Add ``jids`` (already blocked ones are kept) and record ``reports``."""
    txn.executemany(
        "INSERT INTO blocking_items (host, username, jid) VALUES (?, ?, ?)"
        " ON CONFLICT (host, username, jid) DO NOTHING",
        [(host, username, jid) for jid in jids])
    txn.executemany(
        "INSERT INTO blocking_reports (host, username, reported_jid, reason, report_text,"
        " stanza_ids, reported_at, report_count) VALUES (?, ?, ?, ?, ?, ?, ?, 1)"
        " ON CONFLICT (host, username, reported_jid) DO UPDATE SET"
        " reason = excluded.reason, report_text = excluded.report_text,"
        " stanza_ids = excluded.stanza_ids, reported_at = excluded.reported_at,"
        " report_count = blocking_reports.report_count + 1",
        [(host, username, r.reported_jid, r.reason, r.text,
          json.dumps([{"id": i, "by": by} for i, by in r.stanza_ids]), reported_at)
         for r in reports])


def unblock(txn, host, username, jids=None):
    """Remove ``jids``, or every item when ``jids`` is None."""
    if jids is None:
        txn.execute("DELETE FROM blocking_items WHERE host = ? AND username = ?", (host, username))
        return
    txn.executemany("DELETE FROM blocking_items WHERE host = ? AND username = ? AND jid = ?",
                    [(host, username, jid) for jid in jids])


def reports(txn, host, username):
    """The reports a user made, oldest first (for moderation tools and tests)."""
    rows = txn.execute(
        "SELECT reported_jid, reason, report_text, stanza_ids, reported_at, report_count"
        " FROM blocking_reports WHERE host = ? AND username = ? ORDER BY reported_at, reported_jid",
        (host, username)).fetchall()
    return [{"reported_jid": jid, "reason": reason, "text": text, "stanza_ids": json.loads(ids),
             "reported_at": at, "count": count} for jid, reason, text, ids, at, count in rows]


def delete_user(txn, host, username):
    """Account deletion: the user's blocklist and the reports they made."""
    txn.execute("DELETE FROM blocking_items WHERE host = ? AND username = ?", (host, username))
    txn.execute("DELETE FROM blocking_reports WHERE host = ? AND username = ?", (host, username))
