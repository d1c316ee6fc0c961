"""Invitations (XEP-0401): creating them, and the two ad-hoc commands (XEP-0050) that do.

An invitation is a random alphanumeric token (XEP-0401 §5.1) that lets its holder
register on one domain through the invitation flow (XEP-0389 here, or XEP-0445's
``<preauth/>`` before XEP-0077). It may name the username it is for (that name stays
reserved while the invitation is usable, XEP-0401 §6.2), an inviter (the new account
and the inviter get a mutual subscription), a number of uses (single- or multi-use)
and an expiry. ``summitctl invite create`` makes them too (ctl_registration.py).

Ad-hoc commands on the domain:

* ``urn:xmpp:invite#create-account`` (XEP-0401 §5.4): administrators (the ``admins``
  option) only; a form asks for an optional username, roster-subscription, and, as
  our additions, max-uses and lifetime (seconds). The result form
  (FORM_TYPE urn:xmpp:invite#invitation) has the ``uri`` and the ``expire`` time.
* ``urn:xmpp:invite#invite`` (§5.1): administrators, and every user of the domain when
  ``user_invites`` is true; completes at once with a single-use invitation whose uri
  is ``xmpp:inviter?roster;preauth=TOKEN;ibr=y``.

Both are refused with ``not-allowed`` on a closed domain (the token would open
nothing). No other command framework exists yet, so this extension owns the
``http://jabber.org/protocol/commands`` IQs; the XEP-0379 subscription pre-approval
by token for existing accounts is not implemented.
"""

import itertools
import secrets
import string
import time
from urllib.parse import quote

from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.iq import SERVER
from summitd.core.jid import InvalidJID, parse_jid
from summitd.plugins.registration import forms, store
from summitd.plugins.registration.policy import CLOSED

NS_COMMANDS = "http://jabber.org/protocol/commands"
NODE_INVITE = "urn:xmpp:invite#invite"
NODE_CREATE = "urn:xmpp:invite#create-account"
FORM_INVITATION = "urn:xmpp:invite#invitation"
TOKEN_ALPHABET = string.ascii_letters + string.digits
MAX_SESSIONS = 100
SESSION_SECONDS = 600


def new_token():
    """22 alphanumerics: about 131 random bits."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(22))


def create_invite(database, now, host, username=None, inviter=None, uses=1, lifetime=None, note=None):
    """Store a new invitation; fires with (token, store.Invite). ``lifetime`` in seconds
    (None or 0: it never expires)."""
    token = new_token()
    expires = int(now + lifetime) if lifetime else None
    d = database.runInteraction("registration: new invitation", store.add_invite, token, host, username,
                                inviter, uses, int(now), expires, note)
    return d.addCallback(lambda invite: (token, invite))


def invite_uri(invite, token, contact=False):
    """The XMPP URI (XEP-0147) of an invitation: the contact form (XEP-0401 §5.1) or the
    account form (§5.4)."""
    if contact and invite.inviter:
        return f"xmpp:{quote(invite.inviter, safe='@')}?roster;preauth={token};ibr=y"
    target = f"{quote(invite.username, safe='')}@{invite.host}" if invite.username else invite.host
    return f"xmpp:{target}?register;preauth={token}"


def datetime_text(seconds):
    """XEP-0082 DateTime (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _positive(text, name, default):
    if not text:
        return default
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 0 or (number == 0 and name == "max-uses"):
        raise StanzaError("bad-request", f"{name} must be a positive integer")
    return number


class InvitationCommands:
    """The XEP-0050 commands of XEP-0401 (see the module doc)."""

    NODES = {NODE_CREATE: "Create account invitation", NODE_INVITE: "Invite user"}

    def __init__(self, context, registrar):
        self.context = context
        self.registrar = registrar
        self.config = registrar.config
        self._sessions = {}         # session id -> (requester text, node, expiry)
        self._ids = itertools.count(1)
        context.iq("set", SERVER, NS_COMMANDS, "command", self._command)
        context.add_feature(NS_COMMANDS)
        context.hook(events.DISCO_ITEMS_NODE, self._disco_items)
        context.hook(events.DISCO_INFO_NODE, self._disco_info)

    # -- who may do what ---------------------------------------------------------------------

    def _allowed(self, node, requester, host):
        if requester is None or requester.user is None or requester.host not in self.context.domains:
            return False
        if requester.userhost() in self.config.admins:
            return True
        return node == NODE_INVITE and self.config.user_invites and requester.host == host

    def _disco_items(self, to_jid, node, requester):
        if to_jid.user is not None or node != NS_COMMANDS:
            return None
        return [(to_jid.host, n, name) for n, name in self.NODES.items() if self._allowed(n, requester, to_jid.host)]

    def _disco_info(self, to_jid, node, requester):
        if to_jid.user is not None or node not in self.NODES:
            return None
        return ([("automation", "command-node", self.NODES[node])], [NS_COMMANDS, forms.NS_DATA], [])

    # -- the commands ------------------------------------------------------------------------

    def _command(self, iq, to_jid):
        command = next(iq.elements())
        node = command.getAttribute("node")
        if node not in self.NODES:
            raise StanzaError("item-not-found", f"no command {node!r}")
        try:
            requester = parse_jid(iq.getAttribute("from", ""))
        except InvalidJID:
            requester = None
        if not self._allowed(node, requester, to_jid.host):
            raise StanzaError("forbidden", "only administrators may create these invitations")
        if self.registrar.policy.for_host(to_jid.host).mode == CLOSED:
            raise StanzaError("not-allowed", f"registration is closed on {to_jid.host}")
        action = command.getAttribute("action", "execute")
        session_id = command.getAttribute("sessionid")
        if action == "cancel":
            self._sessions.pop(session_id, None)
            return self._reply(node, session_id, "canceled")
        if action not in ("execute", "complete"):
            raise StanzaError("bad-request", f"unsupported action {action!r}")
        if node == NODE_INVITE:
            return self._create(node, None, to_jid.host, username=None, inviter=requester.userhost(), uses=1,
                                lifetime=self.config.invite_ttl)
        x = forms.find_form(command.elements())
        if x is None:
            return self._ask(node, requester)
        if session_id is not None and self._sessions.pop(session_id, (None,))[0] != requester.full():
            raise StanzaError("bad-request", "unknown or expired session",
                              app_condition=domish.Element((NS_COMMANDS, "bad-sessionid")))
        return self._submitted(node, session_id, to_jid.host, requester, forms.read(x))

    def _submitted(self, node, session_id, host, requester, fields):
        username = forms.value(fields, "username").strip() or None
        if username is not None:
            username = self.registrar.policy.username(username)
        subscribe = forms.value(fields, "roster-subscription") in ("1", "true")
        uses = _positive(forms.value(fields, "max-uses"), "max-uses", 1)
        lifetime = _positive(forms.value(fields, "lifetime"), "lifetime", self.config.invite_ttl)
        return self._create(node, session_id, host, username=username,
                            inviter=requester.userhost() if subscribe else None, uses=uses, lifetime=lifetime)

    def _ask(self, node, requester):
        now = self.context.clock.seconds()
        for key in [k for k, (_, _, expiry) in self._sessions.items() if expiry <= now]:
            del self._sessions[key]
        if len(self._sessions) >= MAX_SESSIONS:
            raise StanzaError("resource-constraint", "too many command sessions; try again later")
        session_id = f"invite-{next(self._ids)}-{secrets.token_hex(4)}"
        self._sessions[session_id] = (requester.full(), node, now + SESSION_SECONDS)
        reply = self._reply(node, session_id, "executing")
        actions = reply.addElement("actions")
        actions["execute"] = "complete"
        actions.addElement("complete")
        x = forms.form(None, title="Create an account invitation")
        forms.add_field(x, "username", type="text-single", label="Username (empty: the invitee chooses)")
        forms.add_field(x, "roster-subscription", "false", type="boolean", label="Subscribe the new account to me")
        forms.add_field(x, "max-uses", "1", type="text-single", label="How many accounts it may create")
        forms.add_field(x, "lifetime", str(int(self.config.invite_ttl)), type="text-single",
                        label="Seconds until it expires (0: never)")
        reply.addChild(x)
        return reply

    def _create(self, node, session_id, host, username, inviter, uses, lifetime):
        d = create_invite(self.context.database, self.context.clock.seconds(), host, username=username,
                          inviter=inviter, uses=uses, lifetime=lifetime, note=f"ad-hoc {node}")

        def created(result):
            token, invite = result
            self.context.log.info("registration: invitation {id} created for {host} by ad-hoc command",
                                  id=invite.id, host=host)
            reply = self._reply(node, session_id, "completed")
            x = forms.form(FORM_INVITATION, type="result")
            forms.add_field(x, "uri", invite_uri(invite, token, contact=node == NODE_INVITE), type="text-single")
            if invite.expires is not None:
                forms.add_field(x, "expire", datetime_text(invite.expires), type="text-single")
            reply.addChild(x)
            return reply

        return d.addCallback(created)

    @staticmethod
    def _reply(node, session_id, status):
        reply = domish.Element((NS_COMMANDS, "command"))
        reply["node"] = node
        reply["status"] = status
        reply["sessionid"] = session_id or f"invite-{secrets.token_hex(6)}"
        return reply


__all__ = ["create_invite", "invite_uri", "InvitationCommands"]
