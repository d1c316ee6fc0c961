"""Message delivery to local accounts by the rules of RFC 6121 §8.5 (and RFC 6120 §10.5).

The core's own delivery (the DELIVER band of the router) is a plain baseline;
this extension replaces it for messages with the complete rules, one table per
situation, and answers IQs to accounts that do not exist (§8.5.1). Presence to a
missing account needs nothing here: the core delivers presence only to sessions,
and subscription presence is the presence extension's (it looks the account up).

Where the RFC offers a choice (Table 1 of §8.5.4), summitd picks:

* normal and chat to a bare JID with several non-negative resources: the "most
  available" ones (M), i.e. every resource sharing the highest priority, as
  Prosody and ejabberd do. Chat never goes to all resources (A): there is no
  opt-in for it, and Message Carbons (XEP-0280) is how clients get copies.
* headline to a bare JID: every non-negative resource (A, the only option).
* no non-negative available resource (none, only negative priorities, or
  connected resources that sent no presence): normal and chat to the bare JID,
  and chat to a full JID, are offered to offline storage (O) when an
  ``IOfflineStorage`` provider (the "offline" extension, XEP-0160) accepts them;
  otherwise, and for an account that does not exist, service-unavailable (E).
  A headline is offered too (storage takes it only on a XEP-0334 store hint),
  otherwise it is silently dropped (S), as §8.5.2.2.1 requires.
* a full JID that matches no resource: chat is handled as if sent to the bare JID
  (§8.5.3.2.1); normal and groupchat get service-unavailable (E rather than S: a
  silently lost message is worse than revealing that a resource is offline to
  someone who already knows its full JID); headline is dropped (S: it is
  time-sensitive, and an error storm back to a pubsub service helps nobody).
* a missing account: service-unavailable for normal, chat and groupchat, silence
  for headline and error (§8.5.1). Whether the account exists is looked up only
  when the answer matters, i.e. when storage has accepted the message: otherwise
  a message for an account with no resource gets the same answer either way.
  The lookup and the store count as one durable write (``track_write``), so
  stream management acknowledges the message only once it is on disk.
* error messages reach a full JID that matches; everything else drops them.

Nothing here rewrites 'to' (§8.5.2.1.1).
"""

from zope.interface import Interface

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.extensions.base import Extension
from summitd.extensions.context import MissingProvider


class IOfflineStorage(Interface):
    """Keeps messages for accounts that cannot take them now (provided by "offline")."""

    def accepts(stanza):
        """Whether this message is worth keeping (type, hints, payload); synchronous and cheap."""

    def store(stanza, to_jid):
        """Keep the message for the account of ``to_jid``, which exists. A Deferred that
        fails with StanzaError when the message cannot be kept (a full mailbox)."""


# What to do with a message; the tables below map each RFC situation to one.
MOST = "deliver to the most available resources"
ALL = "deliver to every non-negative resource"
STORE = "offer to offline storage"
BOUNCE = "bounce with service-unavailable"
DROP = "drop silently"

#: At least one available resource with a non-negative priority (§8.5.2.1.1, §8.5.3.2.1):
#: type -> (action for the bare JID, action for a full JID that matches no resource).
WITH_RESOURCES = {
    "normal": (MOST, BOUNCE),
    "chat": (MOST, MOST),
    "groupchat": (BOUNCE, BOUNCE),
    "headline": (ALL, DROP),
    "error": (DROP, DROP),
}

#: No such resource (§8.5.2.2.1, the negative-priority paragraph of §8.5.2.1.1, §8.5.3.2.1).
WITHOUT_RESOURCES = {
    "normal": (STORE, BOUNCE),
    "chat": (STORE, STORE),
    "groupchat": (BOUNCE, BOUNCE),
    "headline": (STORE, DROP),
    "error": (DROP, DROP),
}

#: When storage declines a message, or the account does not exist (§8.5.2.2.1, §8.5.1).
NOT_STORED = {"normal": BOUNCE, "chat": BOUNCE, "headline": DROP}

def bounce(context, stanza, error):
    """Answer ``stanza`` with ``error`` (a StanzaError), unless it is an error itself or has
    no sender to answer."""
    if stanza.getAttribute("type") == "error" or stanza.getAttribute("from") is None:
        return
    context.route(error.reply_to(stanza))


def available_targets(sessions):
    """The sessions that may get messages to the bare JID: available, priority >= 0."""
    return [s for s in sessions if s.available and s.priority >= 0]


def most_available(targets):
    """Every target sharing the highest priority (one pass, no sorting)."""
    top = max(s.priority for s in targets)
    return [s for s in targets if s.priority == top]


class Delivery(Extension):
    def __init__(self, context):
        super().__init__(context)
        self._rerouting = None      # the stanza being routed again after its account check
        context.hook(events.MESSAGE_TO_ACCOUNT, self.message, Priority.DELIVER + 10)
        context.hook(events.STANZA_TO_ACCOUNT, self.check_account, Priority.SECURITY + 100)

    # -- messages ------------------------------------------------------------------

    def message(self, stanza, to_jid):
        """Deliver, store, bounce or drop by the tables above; always takes the message."""
        self._deliver(stanza, to_jid, account_exists=False)
        return True

    def _deliver(self, stanza, to_jid, account_exists):
        """Act on the message; a Deferred while it is being stored, else None."""
        type = stanza.getAttribute("type", "normal")
        if type not in WITH_RESOURCES:
            type = "normal"     # RFC 6121 §5.2.2: an unknown type is handled as normal
        column = 0
        if to_jid.resource is not None:
            session = self.context.session(to_jid)
            if session is not None:     # §8.5.3.1: connected or available, any type
                session.send(stanza)
                return None
            column = 1
        targets = available_targets(self.context.sessions(to_jid))
        action = (WITH_RESOURCES if targets else WITHOUT_RESOURCES)[type][column]
        if action is MOST:
            targets = most_available(targets)
        if action is MOST or action is ALL:
            for session in targets:
                session.send(stanza)
        elif action is STORE:
            return self._offer(stanza, to_jid, type, account_exists)
        else:
            self._refuse(stanza, action)
        return None

    def _refuse(self, stanza, action):
        if action is BOUNCE:
            bounce(self.context, stanza, StanzaError("service-unavailable"))

    def _storage(self):
        try:
            return self.context.need(IOfflineStorage)
        except MissingProvider:
            return None

    def _offer(self, stanza, to_jid, type, account_exists):
        storage = self._storage()
        if storage is None or not storage.accepts(stanza):
            self._refuse(stanza, NOT_STORED[type])
            return None
        if account_exists:
            return storage.store(stanza, to_jid)
        # The lookup and the store are one durable write to wait for (stream management
        # acknowledges the message only after it).
        d = self.context.accounts.exists(to_jid)
        d.addCallback(self._account_checked, stanza, to_jid, type)
        d.addErrback(self._failed, stanza, "offline storage")
        return self.context.track_write(d)

    def _account_checked(self, exists, stanza, to_jid, type):
        if exists:
            # A resource may have come online meanwhile: decide again, knowing the account.
            return self._deliver(stanza, to_jid, account_exists=True)
        self._refuse(stanza, NOT_STORED[type])     # §8.5.1
        return None

    def _failed(self, failure, stanza, what):
        if failure.check(StanzaError):
            bounce(self.context, stanza, failure.value)
            return
        self.context.log.failure("delivery: {what} failed", failure, what=what)
        bounce(self.context, stanza, StanzaError("internal-server-error"))

    # -- IQs to accounts that may not exist (§8.5.1, RFC 6120 §10.5.3.1) -----------------

    def check_account(self, stanza, to_jid):
        """Hold an IQ get/set to the bare JID of an account with no session until the
        account is known to exist: the IQ table would otherwise answer for a missing
        account (a ping, say) as if it existed, where §8.5.1 requires service-unavailable."""
        if stanza is self._rerouting or not _iq_for_account(stanza, to_jid):
            return None
        if self.context.sessions(to_jid):
            return None     # someone is logged in: the account exists
        d = self.context.accounts.exists(to_jid)
        d.addCallback(self._checked_account, stanza)
        d.addErrback(self._failed, stanza, "account lookup")
        return True

    def _checked_account(self, exists, stanza):
        if not exists:
            bounce(self.context, stanza, StanzaError("service-unavailable"))
            return
        previous, self._rerouting = self._rerouting, stanza
        try:
            self.context.route(stanza)
        finally:
            self._rerouting = previous


def _iq_for_account(stanza, to_jid):
    return (stanza.name == "iq" and to_jid.resource is None
            and stanza.getAttribute("to") is not None       # none: the sender's own account
            and stanza.getAttribute("type") in ("get", "set"))


def build(context, config):
    return Delivery(context)
