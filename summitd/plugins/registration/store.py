"""The registration extension's tables: invitations (XEP-0401/XEP-0445) and username skeletons.

Invitation tokens are never stored: a row keeps the SHA-256 of its token, so a copy of
the database cannot be used to register. The public id that ``summitctl invite list``
shows (and ``revoke`` takes) is the start of that hash. A use is taken in the same
UPDATE that checks there is one left, so two registrations racing for the last use of
a token cannot both win.

Skeletons (see policy.py) of every account are kept here so a new name can be
compared with existing ones with one indexed query. They are added when an account is
created, deleted with the account, and reconciled at start for accounts made while
the extension was not loaded (a read of the core's ``accounts`` table).

Functions take a transaction (``Database.runInteraction``); '?' SQL for SQLite and
PostgreSQL alike.
"""

import hashlib
from dataclasses import dataclass

from summitd.plugins.registration.policy import skeleton
from summitd.storage.schema import Migration

COMPONENT = "registration"

MIGRATIONS = (
    Migration(1, (
        "CREATE TABLE registration_invites ("
        " id TEXT PRIMARY KEY,"
        " token_hash TEXT NOT NULL UNIQUE,"
        " host TEXT NOT NULL,"
        " username TEXT,"                     # pre-assigned username (create-account)
        " inviter TEXT,"                      # bare JID to subscribe the new account to
        " max_uses INTEGER NOT NULL,"
        " uses INTEGER NOT NULL,"
        " created BIGINT NOT NULL,"           # seconds since the epoch
        " expires BIGINT,"                    # NULL: never
        " revoked SMALLINT NOT NULL,"
        " note TEXT"
        ")",
        "CREATE INDEX registration_invites_username ON registration_invites (host, username)",
        "CREATE TABLE registration_skeletons ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " skeleton TEXT NOT NULL,"
        " PRIMARY KEY (host, username)"
        ")",
        "CREATE INDEX registration_skeletons_skeleton ON registration_skeletons (host, skeleton)",
    )),
)

_COLUMNS = "id, host, username, inviter, max_uses, uses, created, expires, revoked, note"


def token_hash(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Invite:
    id: str
    host: str
    username: str = None
    inviter: str = None
    max_uses: int = 1
    uses: int = 0
    created: int = 0
    expires: int = None
    revoked: bool = False
    note: str = None

    def state(self, now):
        """'usable', 'revoked', 'used' or 'expired'."""
        if self.revoked:
            return "revoked"
        if self.uses >= self.max_uses:
            return "used"
        if self.expires is not None and now >= self.expires:
            return "expired"
        return "usable"


def _invite(row):
    id, host, username, inviter, max_uses, uses, created, expires, revoked, note = row
    return Invite(id, host, username, inviter, max_uses, uses, created, expires, bool(revoked), note)


def add_invite(txn, token, host, username, inviter, max_uses, created, expires, note):
    digest = token_hash(token)
    invite = Invite(digest[:16], host, username, inviter, max_uses, 0, created, expires, False, note)
    txn.execute(
        f"INSERT INTO registration_invites ({_COLUMNS}, token_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (invite.id, host, username, inviter, max_uses, 0, created, expires, 0, note, digest))
    return invite


def invite_by_token(txn, token):
    row = txn.execute(f"SELECT {_COLUMNS} FROM registration_invites WHERE token_hash = ?",
                      (token_hash(token),)).fetchone()
    return None if row is None else _invite(row)


def take_use(txn, invite_id):
    """Take one use of a non-revoked invitation (expiry is not checked again: XEP-0445 §4);
    True when one was left."""
    txn.execute("UPDATE registration_invites SET uses = uses + 1"
                " WHERE id = ? AND revoked = 0 AND uses < max_uses", (invite_id,))
    return txn.rowcount == 1


def give_back(txn, invite_id):
    """Undo take_use when the account could not be created after all."""
    txn.execute("UPDATE registration_invites SET uses = uses - 1 WHERE id = ? AND uses > 0", (invite_id,))


def list_invites(txn, host=None):
    where, args = ("WHERE host = ?", (host,)) if host else ("", ())
    rows = txn.execute(f"SELECT {_COLUMNS} FROM registration_invites {where} ORDER BY created, id",
                       args).fetchall()
    return [_invite(row) for row in rows]


def revoke(txn, invite_id):
    txn.execute("UPDATE registration_invites SET revoked = 1 WHERE id = ? AND revoked = 0", (invite_id,))
    return txn.rowcount == 1


def username_promised(txn, host, username, now, except_id=None):
    """Whether a usable invitation reserves ``username`` (XEP-0401 §6.2) for someone else."""
    rows = txn.execute(
        "SELECT id FROM registration_invites WHERE host = ? AND username = ? AND revoked = 0"
        " AND uses < max_uses AND (expires IS NULL OR expires > ?)", (host, username, now)).fetchall()
    return any(row[0] != except_id for row in rows)


def look_alike(txn, host, username):
    """An existing account whose name has the skeleton of ``username`` (not itself), or None."""
    row = txn.execute("SELECT username FROM registration_skeletons WHERE host = ? AND skeleton = ?"
                      " AND username <> ?", (host, skeleton(username), username)).fetchone()
    return None if row is None else row[0]


def add_skeleton(txn, host, username):
    txn.execute("INSERT INTO registration_skeletons (host, username, skeleton) VALUES (?, ?, ?)"
                " ON CONFLICT (host, username) DO NOTHING", (host, username, skeleton(username)))


def delete_skeleton(txn, host, username):
    txn.execute("DELETE FROM registration_skeletons WHERE host = ? AND username = ?", (host, username))


def reconcile_skeletons(txn):
    """Add skeletons of accounts created without the extension, drop those of deleted ones."""
    missing = txn.execute(
        "SELECT a.host, a.username FROM accounts a LEFT JOIN registration_skeletons s"
        " ON s.host = a.host AND s.username = a.username WHERE s.username IS NULL").fetchall()
    for host, username in missing:
        add_skeleton(txn, host, username)
    txn.execute("DELETE FROM registration_skeletons WHERE NOT EXISTS (SELECT 1 FROM accounts a"
                " WHERE a.host = registration_skeletons.host AND a.username = registration_skeletons.username)")
    return len(missing)
