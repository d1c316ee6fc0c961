"""The SQL channel store: ``IChannelStore`` on the server's database.

Three tables, written in ``?``-style SQL that SQLite and PostgreSQL share: ``channels``
(configuration as JSON, so a new option needs no migration, and the subject),
``channel_members`` (one row per channel and bare JID, indexed by JID for account
deletion) and ``channel_retractions`` (tombstones of retracted messages).
"""

import json

from zope.interface import implementer

from summitd.plugins.channels.model import ChannelConfig, Member, Subject
from summitd.plugins.channels.store import ChannelExists, ChannelRecord, IChannelStore, Retraction
from summitd.storage.database import IntegrityError
from summitd.storage.schema import Migration, apply_migrations

COMPONENT = "channels"

MIGRATIONS = (
    Migration(1, (
        "CREATE TABLE channels ("
        " host TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " config TEXT NOT NULL,"              # JSON of ChannelConfig
        " subject TEXT,"                      # NULL: never set
        " subject_nick TEXT NOT NULL,"
        " subject_by TEXT NOT NULL,"
        " subject_ts BIGINT NOT NULL,"
        " created BIGINT NOT NULL,"
        " PRIMARY KEY (host, name)"
        ")",
        "CREATE TABLE channel_members ("
        " host TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " jid TEXT NOT NULL,"                 # bare JID
        " affiliation TEXT NOT NULL,"
        " nick TEXT,"
        " participant SMALLINT NOT NULL,"
        " PRIMARY KEY (host, name, jid)"
        ")",
        "CREATE INDEX channel_members_jid ON channel_members (jid)",
        "CREATE TABLE channel_retractions ("
        " host TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " archive_id TEXT NOT NULL,"
        " by_nick TEXT NOT NULL,"
        " by_jid TEXT NOT NULL,"
        " reason TEXT NOT NULL,"
        " ts BIGINT NOT NULL,"
        " moderated SMALLINT NOT NULL,"
        " PRIMARY KEY (host, name, archive_id)"
        ")",
    )),
)

#: Ids per SELECT ... IN (...) of ``retractions`` (a MAM page is at most a few hundred).
IDS_PER_QUERY = 200


def _subject_columns(subject):
    if subject is None:
        return (None, "", "", 0)
    return (subject.text, subject.nick, subject.by, subject.ts)


def _load_all(txn):
    members = {}
    for host, name, jid, affiliation, nick, participant in txn.execute(
            "SELECT host, name, jid, affiliation, nick, participant FROM channel_members").fetchall():
        members.setdefault((host, name), []).append(Member(jid, affiliation, nick, bool(participant)))
    found = []
    for host, name, config, text, nick, by, ts, created in txn.execute(
            "SELECT host, name, config, subject, subject_nick, subject_by, subject_ts, created"
            " FROM channels ORDER BY host, name").fetchall():
        subject = None if text is None else Subject(text, nick, by, ts)
        record = ChannelRecord(host, name, ChannelConfig.from_dict(json.loads(config)), subject, created)
        found.append((record, members.get((host, name), [])))
    return found


def _create(txn, record):
    exists = txn.execute("SELECT 1 FROM channels WHERE host = ? AND name = ?",
                         (record.host, record.name)).fetchone()
    if exists:
        raise ChannelExists((record.host, record.name))
    txn.execute(
        "INSERT INTO channels (host, name, config, subject, subject_nick, subject_by, subject_ts,"
        " created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (record.host, record.name, json.dumps(record.config.to_dict(), sort_keys=True))
        + _subject_columns(record.subject) + (record.created,))


def _update(txn, record):
    txn.execute(
        "UPDATE channels SET config = ?, subject = ?, subject_nick = ?, subject_by = ?,"
        " subject_ts = ? WHERE host = ? AND name = ?",
        (json.dumps(record.config.to_dict(), sort_keys=True),) + _subject_columns(record.subject)
        + (record.host, record.name))


def _delete(txn, host, name):
    for table in ("channel_retractions", "channel_members", "channels"):
        txn.execute(f"DELETE FROM {table} WHERE host = ? AND name = ?", (host, name))


def _set_member(txn, host, name, member):
    if not member.worth_keeping:
        txn.execute("DELETE FROM channel_members WHERE host = ? AND name = ? AND jid = ?",
                    (host, name, member.jid))
        return
    if not txn.execute("SELECT 1 FROM channels WHERE host = ? AND name = ?", (host, name)).fetchone():
        return
    txn.execute(
        "INSERT INTO channel_members (host, name, jid, affiliation, nick, participant)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (host, name, jid) DO UPDATE SET"
        " affiliation = excluded.affiliation, nick = excluded.nick,"
        " participant = excluded.participant",
        (host, name, member.jid, member.affiliation, member.nick, int(member.participant)))


def _retract(txn, host, name, r):
    if not txn.execute("SELECT 1 FROM channels WHERE host = ? AND name = ?", (host, name)).fetchone():
        return
    txn.execute(
        "INSERT INTO channel_retractions (host, name, archive_id, by_nick, by_jid, reason, ts,"
        " moderated) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, name, archive_id)"
        " DO UPDATE SET by_nick = excluded.by_nick, by_jid = excluded.by_jid,"
        " reason = excluded.reason, ts = excluded.ts, moderated = excluded.moderated",
        (host, name, r.archive_id, r.by_nick, r.by_jid, r.reason, r.ts, int(r.moderated)))


def _retractions(txn, host, name, ids):
    found = {}
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start:start + IDS_PER_QUERY]
        rows = txn.execute(
            "SELECT archive_id, by_nick, by_jid, reason, ts, moderated FROM channel_retractions"
            " WHERE host = ? AND name = ? AND archive_id IN (" + ", ".join("?" * len(chunk)) + ")",
            [host, name] + chunk).fetchall()
        for archive_id, nick, by, reason, ts, moderated in rows:
            found[archive_id] = Retraction(archive_id, nick, by, reason, ts, bool(moderated))
    return found


@implementer(IChannelStore)
class SQLChannelStore:
    def __init__(self, database):
        self._db = database

    def setup(self):
        return apply_migrations(self._db, COMPONENT, MIGRATIONS)

    def load_all(self):
        return self._db.runInteraction("channels: load", _load_all)

    def create(self, record):
        d = self._db.runInteraction("channels: create", _create, record)

        def taken(failure):
            failure.trap(IntegrityError)    # a concurrent create of the same name
            raise ChannelExists((record.host, record.name))
        return d.addErrback(taken)

    def update(self, record):
        return self._db.runInteraction("channels: update", _update, record)

    def delete(self, host, name):
        return self._db.runInteraction("channels: delete", _delete, host, name)

    def set_member(self, host, name, member):
        return self._db.runInteraction("channels: member", _set_member, host, name, member)

    def retract(self, host, name, retraction):
        return self._db.runInteraction("channels: retract", _retract, host, name, retraction)

    def retractions(self, host, name, ids):
        return self._db.runInteraction("channels: retractions", _retractions, host, name, list(ids))

    def delete_account(self, txn, jid):
        txn.execute("DELETE FROM channel_members WHERE jid = ?", (jid,))
