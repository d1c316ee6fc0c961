"""The table behind offline messages (XEP-0160): one row per stored message.

Rows are ordered by a per-user sequence number that the insert computes in its
own transaction (``MAX(seq) + 1``), which needs no auto-increment syntax and so
runs unchanged on SQLite and PostgreSQL; the primary key (host, username, seq)
is also the index every query uses. The quota is checked in the same
transaction as the insert, so it cannot be overrun by messages arriving together.

Delivery takes messages in batches: each call deletes what the previous batch
handed to the session and reads the next one, so a message is deleted only
after it was sent, and memory stays bounded however full the mailbox is.
"""

from summitd.storage.schema import Migration, apply_migrations

COMPONENT = "offline"

MIGRATIONS = (
    Migration(
        1,
        (
            "CREATE TABLE offline_messages ("
            " host TEXT NOT NULL,"
            " username TEXT NOT NULL,"
            " seq BIGINT NOT NULL,"
            " stored_ms BIGINT NOT NULL,"       # when it was stored (ms since the epoch)
            " stanza TEXT NOT NULL,"            # the message as XML
            " PRIMARY KEY (host, username, seq)"
            ")",
        ),
    ),
)


class MailboxFull(Exception):
    """The user already has the maximum number of offline messages."""


class OfflineStore:
    def __init__(self, db):
        self._db = db

    def setup(self):
        return apply_migrations(self._db, COMPONENT, MIGRATIONS)

    def add(self, host, user, stanza_xml, stored_ms, limit):
        """Store one message; fires with its sequence number, fails with MailboxFull when
        the user has ``limit`` messages already."""

        def add(txn):
            count, last = txn.execute(
                "SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM offline_messages"
                " WHERE host = ? AND username = ?", (host, user)).fetchone()
            if count >= limit:
                raise MailboxFull(f"{user}@{host} has {count} offline messages")
            seq = last + 1
            txn.execute(
                "INSERT INTO offline_messages (host, username, seq, stored_ms, stanza)"
                " VALUES (?, ?, ?, ?, ?)", (host, user, seq, stored_ms, stanza_xml))
            return seq

        return self._db.runInteraction("offline: store", add)

    def take(self, host, user, delivered_through, size):
        """Delete the messages up to sequence ``delivered_through`` (already handed over) and
        fire with the next ``size`` as (seq, stored_ms, stanza_xml) rows, oldest first."""

        def take(txn):
            txn.execute(
                "DELETE FROM offline_messages WHERE host = ? AND username = ? AND seq <= ?",
                (host, user, delivered_through))
            return txn.execute(
                "SELECT seq, stored_ms, stanza FROM offline_messages"
                " WHERE host = ? AND username = ? ORDER BY seq LIMIT ?",
                (host, user, size)).fetchall()

        return self._db.runInteraction("offline: take", take)

    def count(self, host, user):
        """Fire with the number of messages stored for one user."""

        def count(txn):
            return txn.execute(
                "SELECT COUNT(*) FROM offline_messages WHERE host = ? AND username = ?",
                (host, user)).fetchone()[0]

        return self._db.runInteraction("offline: count", count)

    def delete_user(self, host, user):
        return self._db.runInteraction("offline: delete user", delete_user_rows, host, user)


def delete_user_rows(txn, host, user):
    """Inside a transaction: remove every offline message of one user (account deletion)."""
    txn.execute("DELETE FROM offline_messages WHERE host = ? AND username = ?", (host, user))
    return txn.rowcount
