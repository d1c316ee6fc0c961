"""Account management shared by summitctl, in-band registration and tests.

Usernames are normalised here (RFC 7622 localparts), passwords become SCRAM keys
for every supported hash (RFC 5802), and deleting an account asks every
extension to delete its rows in the same transaction (``ACCOUNT_DELETING``).
"""

from twisted.internet import defer

from summitd.core import events
from summitd.core.jid import InvalidJID, parse_jid
from summitd.sasl.credentials import SCRAM_HASHES
from summitd.sasl.scram import derive_credentials
from summitd.storage.accounts import AccountExists, NoSuchAccount  # noqa: F401  (re-exported)
from summitd.storage.keyval import delete_user_rows


class AccountError(ValueError):
    """A JID or password that cannot name or protect an account here."""


class AccountManager:
    def __init__(self, store, hooks, hosts, iterations):
        self.store = store
        self._hooks = hooks
        self._hosts = hosts
        self._iterations = iterations

    def account_jid(self, text):
        """Parse and check an account JID (bare, hosted here); raises AccountError."""
        try:
            jid = parse_jid(text)
        except InvalidJID as e:
            raise AccountError(f"{text!r} is not a valid JID: {e}") from None
        if jid.user is None or jid.resource is not None:
            raise AccountError(f"{text!r} is not an account JID (user@domain)")
        if jid.host not in self._hosts:
            raise AccountError(f"{jid.host} is not a domain of this server")
        return jid

    def credentials_for(self, password):
        if not password:
            raise AccountError("the password is empty")
        try:
            return {h: derive_credentials(password, h, self._iterations) for h in SCRAM_HASHES}
        except ValueError as e:
            raise AccountError(f"the password is not acceptable: {e}") from None

    @defer.inlineCallbacks
    def create(self, jid_text, password):
        jid = self.account_jid(jid_text)
        yield self.store.create(jid.host, jid.user, self.credentials_for(password))
        self._hooks.notify(events.ACCOUNT_CREATED, jid)
        return jid

    def set_password(self, jid_text, password):
        jid = self.account_jid(jid_text)
        return self.store.set_credentials(jid.host, jid.user, self.credentials_for(password))

    def delete(self, jid_text):
        """Delete the account and everything stored for it; fires with whether it existed."""
        jid = self.account_jid(jid_text)

        def everything_else(txn):
            delete_user_rows(txn, jid.host, jid.user)
            self._hooks.notify(events.ACCOUNT_DELETING, jid, txn)

        def deleted(existed):
            if existed:
                self._hooks.notify(events.ACCOUNT_DELETED, jid)
            return existed

        return self.store.delete(jid.host, jid.user, also=everything_else).addCallback(deleted)

    def exists(self, jid):
        """Whether the account of ``jid`` (a JID) exists; a Deferred."""
        return self.store.exists(jid.host, jid.user)

    def list(self, host=None):
        return self.store.list_users(host)
