"""What goes into the archives, and when (XEP-0313 §6.1.1, XEP-0359, XEP-0334, XEP-0441).

Archived: one-to-one messages of type chat or normal that carry a body, or a
payload that is a message in its own right (encrypted OMEMO/OpenPGP content,
reactions, retractions), or the XEP-0334 ``store`` hint. Not archived: groupchat
(a MUC keeps its own archive), headline and error messages, messages with the
``no-permanent-store`` or ``no-store`` hint, and messages that are only state
(chat states, receipts, markers, carbons, archive results: none has a body of its
own).

Each message goes into up to two archives, each with its own id:

* the recipient's, when the recipient is a local account (``MESSAGE_TO_ACCOUNT``).
  The id is chosen in the STAMP band and put on the message as
  ``<stanza-id by='recipient@domain'/>`` so carbons (COPY band) and delivery carry it;
  the entry is written in the ARCHIVE band, i.e. only if nothing in between took the
  message (a rejected message is not archived, §6.1);
* the sender's, when a local client sends it (``STANZA_FROM_CLIENT``). That id is
  NOT put on the outgoing message: the recipient has no access to the sender's
  archive (XEP-0313 §3.4). ``sent_archive_id(stanza)`` tells it to carbons, which may
  add it to the sent copies it makes for the sender's other resources.

A message a user sends to their own account is archived once, on the incoming side.
Both archives of a message get the same ``ts`` (it is unique per message, and ids
differ by archive), so the SQL store keeps the message's text once for both.
Preferences decide per contact (``prefs``); a 'roster' decision is asynchronous, so
the id is stamped before the answer is known and the entry written only if the
contact is in the roster. The stored stanza is the message as it was when its first
archive took it, without the stanza-id we stamped (the result's id carries it).
Writes are asynchronous and batched (``writer``); an account that has no session
is looked up first, so messages to accounts that do not exist are never archived.
"""

from collections import OrderedDict

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core import events, hints
from summitd.core.hooks import Priority
from summitd.core.jid import InvalidJID, parse_jid, jid_or_none
from summitd.core.xmlwriter import STANZA_NAMESPACES, serialize
from summitd.extensions.context import MissingProvider
from summitd.plugins.mam.stanza_id import sort_stanza_ids, stamp
from summitd.plugins.mam.store import ArchiveEntry

#: Payloads that make a message worth archiving without a body.
STORABLE_PAYLOADS = frozenset({
    ("eu.siacs.conversations.axolotl", "encrypted"),   # OMEMO (XEP-0384 0.3)
    ("urn:xmpp:omemo:2", "encrypted"),                 # OMEMO 2
    ("urn:xmpp:openpgp:0", "openpgp"),                 # XEP-0373
    ("jabber:x:encrypted", "x"),                       # XEP-0027
    ("urn:xmpp:reactions:0", "reactions"),             # XEP-0444
    ("urn:xmpp:message-retract:1", "retract"),         # XEP-0424
})

#: Accounts seen to exist, remembered so offline recipients cost one lookup, not one each.
KNOWN_ACCOUNTS = 10_000

#: The attribute of a message stanza that carries its _State while it is routed: an
#: attribute costs a fraction of a WeakKeyDictionary entry, and dies with the stanza.
_STATE = "_summitd_archive"


class _State:
    """What the archives decided about one message: the sender's and the recipient's plans,
    and the text stored (made once for both)."""

    __slots__ = ("sent", "incoming", "stored")

    def __init__(self):
        self.sent = self.incoming = self.stored = None


def _state(stanza):
    state = stanza.__dict__.get(_STATE)
    if state is None:
        state = _State()
        setattr(stanza, _STATE, state)
    return state


def _plan_of(stanza, side):
    state = stanza.__dict__.get(_STATE)
    return None if state is None else getattr(state, side)


def sent_archive_id(stanza):
    """The id under which the sender's archive keeps a message a local client sent, or None."""
    plan = _plan_of(stanza, "sent")
    return None if plan is None else plan.id


def archivable(stanza):
    """Whether a message is one the archives keep (type, content, hints): one pass over
    the children, as every message routed between users asks."""
    if stanza.getAttribute("type", "normal") not in ("chat", "normal"):
        return False
    worth = False
    for child in stanza.children:
        if child.__class__ is not domish.Element:
            continue
        uri, name = child.uri, child.name
        if uri == hints.NS_HINTS:
            if name == hints.NO_PERMANENT_STORE or name == hints.NO_STORE:
                return False
            if name == hints.STORE:
                worth = True
        elif not worth and ((name == "body" and uri in STANZA_NAMESPACES)
                            or (uri, name) in STORABLE_PAYLOADS):
            worth = True
    return worth


def body_text(stanza):
    """The text full-text search indexes: every <body/>, one per line."""
    return "\n".join(str(child) for child in stanza.children
                     if child.__class__ is domish.Element and child.name == "body"
                     and child.uri in STANZA_NAMESPACES)


def stored_xml(stanza, hidden=None):
    """The message as archived: XML in the jabber:client namespace, whatever stream it came
    on, without the child ``hidden`` (our own stanza-id: the result's id says it)."""
    children = stanza.children
    position = None
    if hidden is not None and hidden in children:
        position = children.index(hidden)
        del children[position]
    try:
        text = serialize(stanza, stanza.uri)
    finally:
        if position is not None:
            children.insert(position, hidden)
    return "<message xmlns='jabber:client'" + text[len("<message"):]


class _Plan:
    """One archive's decision about one message, from the STAMP band to the ARCHIVE band."""

    __slots__ = ("owner", "contact", "id", "ts", "decision", "done", "stamp")

    def __init__(self, owner, contact, archive_id, ts, decision):
        self.owner = owner
        self.contact = contact
        self.id = archive_id
        self.ts = ts
        self.decision = decision
        self.done = False
        self.stamp = None       # the <stanza-id/> put on the message, if any


class Archiver:
    """The message hooks: stamping, forged-id stripping, and archiving."""

    def __init__(self, context, writer, prefs, clock, ids):
        self._context = context
        self._domains = context.domains
        self._writer = writer
        self._prefs = prefs
        self._clock = clock
        self._ids = ids
        self._known = OrderedDict()                     # (host, user) of existing accounts
        context.hook(events.STANZA_FROM_CLIENT, self._client_stamp, Priority.STAMP)
        context.hook(events.STANZA_FROM_CLIENT, self._client_archive, Priority.ARCHIVE)
        context.hook(events.MESSAGE_TO_ACCOUNT, self._incoming_stamp, Priority.STAMP)
        context.hook(events.MESSAGE_TO_ACCOUNT, self._incoming_archive, Priority.ARCHIVE)

    # -- the sender's archive ------------------------------------------------------------

    def _client_stamp(self, session, stanza):
        if stanza.name != "message":
            return None
        sort_stanza_ids(stanza, self._domains, self._ids)
        to = stanza.getAttribute("to")
        if to is None or not archivable(stanza):
            return None
        try:
            to_jid = parse_jid(to)
        except InvalidJID:
            return None     # the router bounces it
        owner = session.jid
        if to_jid.user == owner.user and to_jid.host == owner.host:
            return None     # to the own account: archived once, as it arrives
        self._plan("sent", stanza, owner.userhostJID(), to_jid)
        return None

    def _client_archive(self, session, stanza):
        if stanza.name == "message":
            self._archive(_plan_of(stanza, "sent"), stanza)
        return None

    # -- the recipient's archive ---------------------------------------------------------

    def _incoming_stamp(self, stanza, to_jid):
        if _plan_of(stanza, "incoming") is not None:
            return None     # routed again in this run: stamped and archived already
        sender = _sender(stanza)
        owner = to_jid.userhostJID()
        archive = owner.userhost()
        sender_bare = None if sender is None else sender.userhost()
        if sort_stanza_ids(stanza, self._domains, self._ids, sender_bare, archive) is not None:
            return None     # routed again after a restart: archived already
        if sender is None or (_plan_of(stanza, "sent") is None and not archivable(stanza)):
            return None
        plan = self._plan("incoming", stanza, owner, sender)
        if plan is not None:
            plan.stamp = stamp(stanza, plan.id, archive)
        return None

    def _incoming_archive(self, stanza, to_jid):
        self._archive(_plan_of(stanza, "incoming"), stanza)
        return None

    def archive_received(self, stanza, to_jid):
        """IMessageArchive.archive_received: an incoming message that archivable() leaves
        out (a MIX channel's groupchat message, for MIX-PAM), planned, stamped and written
        like any incoming one. Returns the id, or None."""
        plan = _plan_of(stanza, "incoming")
        if plan is not None:
            return plan.id
        sender = _sender(stanza)
        if sender is None:
            return None
        owner = to_jid.userhostJID()
        plan = self._plan("incoming", stanza, owner, sender)
        if plan is None:
            return None
        plan.stamp = stamp(stanza, plan.id, owner.userhost())
        self._archive(plan, stanza)
        return plan.id

    # -- both ------------------------------------------------------------------------------

    def _plan(self, side, stanza, owner, contact):
        """Decide for one archive ("sent" or "incoming") of a message; returns the _Plan,
        or None when the preferences say never."""
        decision = self._prefs.decide(owner, contact, self._in_roster)
        if decision is False:
            return None
        state = _state(stanza)
        other = state.incoming if side == "sent" else state.sent
        ts = self._clock.next() if other is None else other.ts     # one message, one ts
        plan = _Plan(owner, contact, self._ids.make(owner.userhost(), ts), ts, decision)
        setattr(state, side, plan)
        return plan

    def _archive(self, plan, stanza):
        if plan is None or plan.done:
            return
        plan.done = True
        state = _state(stanza)
        stored = state.stored
        if stored is None:
            stored = state.stored = (stored_xml(stanza, plan.stamp), body_text(stanza))
        owner, contact = plan.owner, plan.contact
        entry = ArchiveEntry(owner.host, owner.user, plan.id, plan.ts, contact.userhost(),
                             contact.resource or "", *stored,
                             stanza.getAttribute("type") == "groupchat")
        if plan.decision is True and self._exists_now(owner):
            self._writer.add(entry)
            return
        d = defer.maybeDeferred(lambda: plan.decision)
        d.addCallback(self._decided, entry, owner)
        d.addErrback(self._failed, owner)
        self._context.track_write(d)

    def _decided(self, archive, entry, owner):
        if not archive:
            return None
        if self._exists_now(owner):
            return self._writer.add(entry)
        d = self._context.accounts.exists(owner)
        d.addCallback(self._checked, entry, owner)
        return d

    def _checked(self, exists, entry, owner):
        if not exists:
            return None
        self._remember(owner)
        return self._writer.add(entry)

    def _failed(self, failure, owner):
        self._context.log.failure("archiving a message for {owner} failed", failure,
                                  owner=owner.userhost())

    def _exists_now(self, owner):
        key = (owner.host, owner.user)
        if key in self._known:
            return True
        if self._context.sessions(owner):
            self._remember(owner)
            return True
        return False

    def _remember(self, owner):
        known = self._known
        known[(owner.host, owner.user)] = True
        if len(known) > KNOWN_ACCOUNTS:
            known.popitem(last=False)

    def forget(self, owner):
        """The account is being deleted."""
        self._known.pop((owner.host, owner.user), None)

    def _in_roster(self, owner, contact):
        try:
            from summitd.plugins.roster_store import IRoster
            roster = self._context.need(IRoster)
        except (ImportError, MissingProvider):
            return False
        d = roster.item(owner, contact)
        d.addCallback(lambda item: item is not None and item.listed)
        return d


def _sender(stanza):
    return jid_or_none(stanza.getAttribute("from"))
