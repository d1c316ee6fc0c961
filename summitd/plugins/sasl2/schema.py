"""The tables of the sasl2 extension, one versioned schema (component "sasl2").

App passwords (their names, and per hash their SCRAM keys), FAST tokens (two slots per
client, XEP-0484 §impl-tokens), TOTP secrets (encrypted, XEP-0400 §security) and the
unread tracker's rows. Binary columns are BYTEA, which SQLite keeps as BLOBs; times are
seconds (or milliseconds where named so) since the epoch on the server's clock.
"""

from summitd.storage.schema import Migration

COMPONENT = "sasl2"

MIGRATIONS = (
    Migration(1, (
        "CREATE TABLE sasl2_app_passwords ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " id TEXT NOT NULL,"                # random: sessions and tokens name their origin by it
        " name TEXT NOT NULL,"
        " created BIGINT NOT NULL,"
        " last_used BIGINT,"
        " PRIMARY KEY (host, username, id)"
        ")",
        "CREATE UNIQUE INDEX sasl2_app_password_names ON sasl2_app_passwords (host, username, name)",
        "CREATE TABLE sasl2_app_keys ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " id TEXT NOT NULL,"
        " hash_name TEXT NOT NULL,"
        " salt BYTEA NOT NULL,"
        " iterations INTEGER NOT NULL,"
        " stored_key BYTEA NOT NULL,"
        " server_key BYTEA NOT NULL,"
        " PRIMARY KEY (host, username, id, hash_name)"
        ")",
        "CREATE TABLE sasl2_fast_tokens ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " agent TEXT NOT NULL,"             # the XEP-0388 user-agent id
        " slot TEXT NOT NULL,"              # 'new' or 'current'
        " mechanism TEXT NOT NULL,"
        " seed TEXT NOT NULL,"              # the token is HMAC(server secret, seed)
        " expiry BIGINT NOT NULL,"
        " counter BIGINT NOT NULL,"         # the highest 'count' accepted (-1: none yet)
        " origin TEXT NOT NULL,"            # the credential the token descends from
        " PRIMARY KEY (host, username, agent, slot)"
        ")",
        "CREATE TABLE sasl2_totp ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " secret BYTEA NOT NULL,"           # AES-GCM: nonce || ciphertext, bound to the account
        " last_step BIGINT NOT NULL,"       # the newest time step accepted (no code twice)
        " created BIGINT NOT NULL,"
        " PRIMARY KEY (host, username)"
        ")",
        "CREATE TABLE sasl2_unread ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " peer TEXT NOT NULL,"              # the conversation: the other party's bare JID
        " seq BIGINT NOT NULL,"             # order within the conversation
        " received_ms BIGINT NOT NULL,"
        " message_id TEXT,"
        " stanza_id TEXT,"
        " PRIMARY KEY (host, username, peer, seq)"
        ")",
    )),
)

TABLES = ("sasl2_app_passwords", "sasl2_app_keys", "sasl2_fast_tokens", "sasl2_totp", "sasl2_unread")


def delete_account(txn, host, username):
    """ACCOUNT_DELETING: every row of the account, in the deleting transaction."""
    for table in TABLES:
        txn.execute(f"DELETE FROM {table} WHERE host = ? AND username = ?", (host, username))
    # Others' unread counts for conversations with the deleted account: that peer is gone.
    txn.execute("DELETE FROM sasl2_unread WHERE peer = ?", (f"{username}@{host}",))
