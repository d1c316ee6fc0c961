"""In-band account management for registered users (XEP-0077): removing one's account
(§3.2) and changing one's password (§3.3). Creating accounts in-band is not offered.

Both arrive as ``jabber:iq:register`` sets without 'to' (or to the user's bare JID or its
domain); the account is always the sender's own.

Removal: ``<remove/>`` must be the query's only child (else ``bad-request``). The account and
everything stored for it go in one transaction (``context.accounts.delete`` runs every
extension's ACCOUNT_DELETING handler); the user gets the IQ result, then every session of
the account is closed with the ``not-authorized`` stream error §3.2 asks for. While the
deletion runs, what the account's sessions send is refused, so nothing is stored for it
again behind the deletion's back.

Password change: ``<username/>`` (the localpart, or the bare JID) and ``<password/>``.
Another account's username gets ``not-authorized``; a missing element ``bad-request``; an
empty password ``bad-request`` too (§3.3: it must never replace the old one); a password
PRECIS refuses ``not-acceptable``. §3.3 lets a server refuse password changes over
unencrypted streams, and this one does (``not-authorized``). Error replies never echo the
request (§3.3).

A get answers ``<registered/>`` with the username (§3.1, an entity already registered).

Options: ``allow_remove`` and ``allow_password_change`` (both true by default); when off,
the request gets ``not-allowed``.
"""

from twisted.words.xish import domish

from summitd.accounts import AccountError
from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError, StreamError
from summitd.core.hooks import Priority
from summitd.core.iq import ACCOUNT, SERVER
from summitd.core.jid import InvalidJID, parse_jid, prepare_localpart
from summitd.extensions.base import Extension

NS_REGISTER = "jabber:iq:register"
OPTIONS = ("allow_remove", "allow_password_change")


def parse_config(raw, path):
    """[extensions.register]: ``allow_remove`` and ``allow_password_change`` (booleans)."""
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key not in OPTIONS]
    errors += [(f"{path}.{key}", "must be true or false") for key in OPTIONS
               if not isinstance(raw.get(key, True), bool)]
    if errors:
        raise ConfigError(errors)
    return {key: raw.get(key, True) for key in OPTIONS}


def _sender_account(iq, to_jid):
    """The bare JID of the local account asking about itself, else forbidden."""
    refusal = StanzaError("forbidden", "only a user of this server can manage its account")
    try:
        sender = parse_jid(iq["from"])
    except (KeyError, InvalidJID):
        raise refusal from None
    if sender.user is None or sender.host != to_jid.host:
        raise refusal
    account = sender.userhostJID()
    if to_jid.user is not None and to_jid != account:
        raise StanzaError("forbidden", "an account is managed by its owner alone")
    return sender, account


def _names_account(username, account):
    """Whether the <username/> of a password change names ``account``."""
    try:
        if "@" in username:
            return parse_jid(username) == account
        return prepare_localpart(username) == account.user
    except InvalidJID:
        return False


class AccountManagement(Extension):
    def __init__(self, context, options):
        super().__init__(context)
        self.options = options
        self._leaving = set()   # bare JIDs whose deletion is running
        for target in (SERVER, ACCOUNT):
            context.iq("get", target, NS_REGISTER, "query", self._get)
            context.iq("set", target, NS_REGISTER, "query", self._set)
        context.add_feature(NS_REGISTER)
        context.hook(events.STANZA_FROM_CLIENT, self._refuse_while_leaving, Priority.SECURITY)

    def _get(self, iq, to_jid):
        _, account = _sender_account(iq, to_jid)
        query = domish.Element((NS_REGISTER, "query"))
        query.addElement("registered")
        query.addElement("username", content=account.user)
        query.addElement("password")
        return query

    def _set(self, iq, to_jid):
        sender, account = _sender_account(iq, to_jid)
        elements = list(iq.firstChildElement().elements())
        children = {child.name: child for child in elements if child.uri == NS_REGISTER}
        if "remove" in children:
            if len(elements) != 1:
                raise StanzaError("bad-request", "<remove/> must be alone in the query")
            return self._remove(account)
        if "username" in children or "password" in children:
            return self._change_password(sender, account, children)
        raise StanzaError("bad-request", "expected <remove/>, or <username/> and <password/>")

    # -- removal (§3.2) ---------------------------------------------------------------

    def _remove(self, account):
        if not self.options["allow_remove"]:
            raise StanzaError("not-allowed", "accounts cannot be removed in-band here")
        self._leaving.add(account)

        def deleted(existed):
            if not existed:
                self._leaving.discard(account)
                raise StanzaError("registration-required")
            self.context.log.info("account {jid} removed in-band", jid=account.userhost())
            # The IQ table sends the result when this returns; the streams close after it.
            self.context.call_later(0, self._close_sessions, account)

        def failed(failure):
            self._leaving.discard(account)
            return failure

        return self.context.accounts.delete(account.userhost()).addCallbacks(deleted, failed)

    def _close_sessions(self, account):
        self._leaving.discard(account)
        for session in self.context.sessions(account):
            session.stream.close(StreamError("not-authorized", "the account was removed"))

    def _refuse_while_leaving(self, session, stanza):
        if not self._leaving or session.jid.userhostJID() not in self._leaving:
            return None
        if stanza.getAttribute("type") not in ("error", "result"):
            session.send(StanzaError("not-authorized", "this account is being removed").reply_to(stanza))
        return True

    # -- password change (§3.3) ---------------------------------------------------------

    def _change_password(self, sender, account, children):
        if not self.options["allow_password_change"]:
            raise StanzaError("not-allowed", "passwords cannot be changed in-band here")
        if "username" not in children or "password" not in children:
            raise StanzaError("bad-request", "a password change needs <username/> and <password/>")
        if not _names_account(str(children["username"]).strip(), account):
            raise StanzaError("not-authorized", "a user can change its own password only")
        password = str(children["password"])
        if not password:
            raise StanzaError("bad-request", "an empty password never replaces the current one")
        session = self.context.session(sender)
        if session is None or not getattr(session.stream, "secure", False):
            raise StanzaError("not-authorized", "passwords are changed over encrypted streams only")
        try:
            d = self.context.accounts.set_password(account.userhost(), password)
        except AccountError as e:
            raise StanzaError("not-acceptable", str(e)) from None
        self.context.log.info("{jid} changed its password in-band", jid=account.userhost())
        return d.addCallback(lambda _: None)


def build(context, config):
    return AccountManagement(context, config or dict.fromkeys(OPTIONS, True))
