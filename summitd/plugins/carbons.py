"""Message Carbons (XEP-0280, urn:xmpp:carbons:2 with the rules of urn:xmpp:carbons:rules:0).

A user with a phone and a laptop sees both sides of every conversation on every
client that enabled carbons: a message delivered to one resource is copied to the
others as ``<received/>``, a message one resource sends is copied to the others as
``<sent/>``, each wrapped in ``<forwarded/>`` (XEP-0297).

Which messages are copied (XEP-0280 §6.1; ``copy_rule``): never one with
``<private/>`` or the ``<no-copy/>`` hint (XEP-0334), never groupchat or headline,
never a carbon itself; an invitation (XEP-0249 or mediated, XEP-0045) and a MUC
private message the user sends are copied, a MUC private message the user receives
(``<x xmlns='http://jabber.org/protocol/muc#user'/>`` from an occupant's full JID)
is not, because the room already sends it to every joined client; otherwise chat,
normal with a body, or anything carrying receipts (XEP-0184), chat states
(XEP-0085) or chat markers (XEP-0333). An error is copied when it answers a message
that was copied: the server remembers the (peer, id) of the last copied messages
per account (``_Answerable``), because an error need not carry the original.

Which resources get a received copy: every other carbons-enabled session of the
account that does not get the original under RFC 6121 §8.5 (``original_recipients``
asks the tables of the "delivery" extension, which carbons therefore requires). Resources with a
negative priority never get bare-JID messages, so they get a copy when they enabled
carbons. Messages between two resources of the same account are copied once, as
``<received/>`` to the resources that are neither the sender nor the addressee.

Forged carbons: a carbon is genuine only when it comes from the user's own bare JID
(§11; clients send from their full JID, which c2s stamps, and remote servers cannot
use our domain), so ``<received/>``/``<sent/>`` in a message routed to an account
from anyone else are stripped before archiving and delivery: a client that forgets
the check of §11 is not fooled. ``<private/>`` is stripped before local delivery
(option ``strip_private``, on by default; XEP-0280 1.0 no longer requires it).
A carbon routed again (stream management re-routes what a client never acknowledged)
comes from the bare JID and so is kept, and never copied again.
"""

from collections import OrderedDict

from twisted.words.xish import domish

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hints import may_copy
from summitd.core.hooks import Priority
from summitd.core.iq import ACCOUNT
from summitd.core.jid import InvalidJID, parse_jid
from summitd.core.xmlwriter import STANZA_NAMESPACES
from summitd.extensions.base import Extension
from summitd.plugins.delivery import (ALL, BOUNCE, MOST, WITH_RESOURCES, WITHOUT_RESOURCES,
                                      available_targets, most_available)

NS_CARBONS = "urn:xmpp:carbons:2"
NS_CARBONS_RULES = "urn:xmpp:carbons:rules:0"
NS_FORWARD = "urn:xmpp:forward:0"
NS_CLIENT = "jabber:client"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_CONFERENCE = "jabber:x:conference"
#: Payloads "typically used in IM" (§6.1): receipts, chat states, chat markers.
IM_PAYLOADS = frozenset({"urn:xmpp:receipts", "http://jabber.org/protocol/chatstates",
                         "urn:xmpp:chat-markers:0"})

#: session.data key: present (True) while the session has carbons enabled.
STATE = "carbons"
#: How many copied messages per account an error can still be matched against.
ANSWERABLE_PER_ACCOUNT = 64

COPY, SKIP, IF_ANSWER = "copy", "skip", "copy if it answers a copied message"


def parse_config(raw, path):
    """Options: strip_private (bool, default true): remove <private/> before local delivery."""
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key != "strip_private"]
    strip_private = raw.get("strip_private", True)
    if not isinstance(strip_private, bool):
        errors.append((f"{path}.strip_private", "must be true or false"))
    if errors:
        raise ConfigError(errors)
    return {"strip_private": strip_private}


def enable_carbons(session):
    """Turn carbons on for a session without an IQ (Bind 2 enables them inline, XEP-0386)."""
    session.data[STATE] = True


# -- the rules ------------------------------------------------------------------------------

def message_type(stanza):
    """The message's type, an unknown one counting as normal (RFC 6121 §5.2.2)."""
    type = stanza.getAttribute("type", "normal")
    return type if type in WITH_RESOURCES else "normal"


def copy_rule(stanza, inbound):
    """The §6.1 verdict for a message: COPY, SKIP or IF_ANSWER (errors).

    ``inbound`` is True for a message routed to the account (received copies), False
    for one its client sends (sent copies).
    """
    type = message_type(stanza)
    if type in ("groupchat", "headline") or not may_copy(stanza):
        return SKIP
    body = im_payload = muc_user = invite = False
    for child in _elements(stanza):
        uri = child.uri
        if uri == NS_CARBONS:
            return SKIP     # <private/>, or a carbon (received/sent) itself
        if uri == NS_MUC_USER and child.name == "x":
            muc_user = True
            invite = invite or any(c.name == "invite" for c in child.elements())
        elif uri == NS_CONFERENCE and child.name == "x":
            invite = True
        elif uri in IM_PAYLOADS:
            im_payload = True
        elif child.name == "body" and uri in STANZA_NAMESPACES:
            body = True
    if type == "error":
        return IF_ANSWER
    if invite:
        return COPY
    if muc_user and inbound and "/" in stanza.getAttribute("from", ""):
        return SKIP         # a MUC private message from an occupant
    if type == "chat" or (type == "normal" and body) or im_payload:
        return COPY
    return SKIP


def original_recipients(sessions, to_jid, stanza):
    """The sessions that get the original message under RFC 6121 §8.5, as the "delivery"
    extension decides (its tables, so the two cannot disagree): a full JID reaches its
    session if bound; otherwise the most available or all non-negative resources, or none
    (stored or dropped). None when delivery refuses the message with an error: the
    sender learns it was not delivered, so no resource gets a copy either."""
    type = message_type(stanza)
    if to_jid.resource is not None:
        for session in sessions:
            if session.jid == to_jid:
                return [session]
    targets = available_targets(sessions)
    table = WITH_RESOURCES if targets else WITHOUT_RESOURCES
    action = table[type][0 if to_jid.resource is None else 1]
    if action is BOUNCE:
        return None
    if action is MOST:
        return most_available(targets)
    return targets if action is ALL else []


def _elements(stanza):
    """The child elements, like ``stanza.elements()`` without its zope interface check per
    child (several times slower than isinstance, and run on every message)."""
    return [c for c in stanza.children if isinstance(c, domish.Element)]


def _strip(stanza, matches):
    """Remove the child elements ``matches(child)`` accepts; True when there were any.
    (The usual message has none, and its children list is left as it is.)"""
    if not any(matches(c) for c in _elements(stanza)):
        return False
    stanza.children = [c for c in stanza.children
                       if not (isinstance(c, domish.Element) and matches(c))]
    return True


def _is_carbon(child):
    return child.uri == NS_CARBONS and child.name in ("received", "sent")


def _is_private(child):
    return child.uri == NS_CARBONS and child.name == "private"


# -- the wrappers -----------------------------------------------------------------------------

def _clone(element):
    """A deep copy for forwarding; stanza namespaces become jabber:client, since the copy
    goes to a client (XEP-0297 §3.2: the forwarded stanza keeps a stanza namespace)."""
    uri = NS_CLIENT if element.uri in STANZA_NAMESPACES else element.uri
    clone = domish.Element((uri, element.name))
    clone.attributes = dict(element.attributes)
    for child in element.children:
        clone.addChild(_clone(child) if isinstance(child, domish.Element) else child)
    return clone


def carbon(kind, forwarded_message, user, to, type):
    """``<message from=user to=to type=type><kind xmlns=carbons><forwarded>...``.

    ``forwarded_message`` is a clone that may be shared by several carbons; it is never
    changed after wrapping (a held or queued carbon is written later).
    """
    wrapper = domish.Element((NS_CLIENT, "message"))
    wrapper["from"] = user
    wrapper["to"] = to
    if type is not None:
        wrapper["type"] = type
    wrapper.addElement((NS_CARBONS, kind)).addElement((NS_FORWARD, "forwarded")).addChild(
        forwarded_message)
    return wrapper


# -- the extension ------------------------------------------------------------------------------

class _Answerable:
    """Per account, the latest (peer bare JID, id) of copied messages, so that an error
    answering one of them (§6.1) is copied too."""

    def __init__(self, size):
        self._size = size
        self._by_account = {}

    def remember(self, account, peer, stanza_id):
        recent = self._by_account.setdefault(account, OrderedDict())
        recent[(peer, stanza_id)] = None
        if len(recent) > self._size:
            recent.popitem(last=False)

    def answers(self, account, peer, stanza_id):
        recent = self._by_account.get(account)
        return recent is not None and (peer, stanza_id) in recent

    def forget(self, account):
        self._by_account.pop(account, None)


def _jid(text):
    """The JID in an address attribute, or None when it is not a JID."""
    try:
        return parse_jid(text)
    except InvalidJID:
        return None


def _bare(text):
    """The bare JID in an address attribute, or None when it is not a JID."""
    jid = _jid(text)
    return None if jid is None else jid.bare


class Carbons(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        self.strip_private = config["strip_private"]
        self.answerable = _Answerable(ANSWERABLE_PER_ACCOUNT)
        context.iq("set", ACCOUNT, NS_CARBONS, "enable", self._enable)
        context.iq("set", ACCOUNT, NS_CARBONS, "disable", self._disable)
        context.add_feature(NS_CARBONS)
        context.add_feature(NS_CARBONS_RULES)
        context.hook(events.MESSAGE_TO_ACCOUNT, self._strip_forged, Priority.STAMP)
        context.hook(events.MESSAGE_TO_ACCOUNT, self._copy_received, Priority.COPY)
        context.hook(events.STANZA_FROM_CLIENT, self._copy_sent, Priority.COPY)
        context.hook(events.SESSION_CLOSED, self._session_closed)

    def stop(self):
        for session in self.context.all_sessions():
            session.data.pop(STATE, None)

    # -- enable / disable (§4, §5; repeating either is no error, §10.1) -----------------------

    def _own_session(self, iq, to_jid):
        sender = _bare(iq.getAttribute("from", ""))
        if sender is None or sender != to_jid:
            raise StanzaError("not-allowed", "only the account's own clients switch their carbons")
        session = self.context.session(parse_jid(iq["from"]))
        if session is None:
            raise StanzaError("not-allowed", "carbons are switched by a bound client")
        return session

    def _enable(self, iq, to_jid):
        self._own_session(iq, to_jid).data[STATE] = True

    def _disable(self, iq, to_jid):
        self._own_session(iq, to_jid).data.pop(STATE, None)

    # -- copies ---------------------------------------------------------------------------------

    def _strip_forged(self, stanza, to_jid):
        if (any(_is_carbon(c) for c in _elements(stanza))
                and _jid(stanza.getAttribute("from", "")) != to_jid.bare):
            _strip(stanza, _is_carbon)
            self.context.log.info("stripped a forged carbon from {sender} to {to}",
                                  sender=stanza.getAttribute("from"), to=to_jid.full())
        return None

    def _copy_received(self, stanza, to_jid):
        copies = self._received_copies(stanza, to_jid)
        if copies:
            peer = _bare(stanza.getAttribute("from", ""))
            if peer is not None and self._eligible(stanza, True, to_jid.bare, peer):
                self._send_copies("received", stanza, to_jid.bare, peer, copies)
        if self.strip_private:
            _strip(stanza, _is_private)
        return None

    def _received_copies(self, stanza, to_jid):
        """The carbons-enabled sessions that get neither the original nor, for a message
        from another resource of the account, wrote it."""
        sessions = self.context.sessions(to_jid)
        enabled = [s for s in sessions if STATE in s.data]
        if not enabled:
            return []
        originals = original_recipients(sessions, to_jid, stanza)
        if originals is None:
            return []
        sender = _jid(stanza.getAttribute("from", ""))
        return [s for s in enabled if s not in originals and s.jid != sender]

    def _copy_sent(self, session, stanza):
        if stanza.name != "message":
            return None
        copies = [s for s in self.context.sessions(session.jid) if s is not session and STATE in s.data]
        if not copies:
            return None
        account = session.jid.bare
        to = stanza.getAttribute("to")
        peer = account if to is None else _bare(to)
        # Messages to the own account are copied once, on the way in (_copy_received).
        if peer is not None and peer != account and self._eligible(stanza, False, account, peer):
            self._send_copies("sent", stanza, account, peer, copies)
        return None

    def _eligible(self, stanza, inbound, account, peer):
        verdict = copy_rule(stanza, inbound)
        if verdict == IF_ANSWER:
            return self.answerable.answers(account, peer, stanza.getAttribute("id"))
        return verdict == COPY

    def _send_copies(self, kind, stanza, account, peer, sessions):
        stanza_id = stanza.getAttribute("id")
        if stanza_id is not None and stanza.getAttribute("type") != "error":
            self.answerable.remember(account, peer, stanza_id)
        forwarded = _clone(stanza)
        user, type = account.full(), stanza.getAttribute("type")
        for session in sessions:
            session.send(carbon(kind, forwarded, user, session.jid.full(), type))

    def _session_closed(self, session):
        if not self.context.sessions(session.jid):
            self.answerable.forget(session.jid.bare)


def build(context, config):
    return Carbons(context, config)
