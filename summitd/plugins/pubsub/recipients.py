"""Who hears an account's PEP events without subscribing (XEP-0163 §4, XEP-0060 §9.1, §9.2).

* The account's own available resources (the owner is implicitly subscribed, §9.1.1).
* Its contacts' resources, learnt the way XEP-0060 §9.2 describes: when presence from a
  contact's full JID reaches the account and the account's roster gives that contact a
  presence subscription (from or both), the resource is remembered with the capabilities
  (XEP-0115) it announced; its unavailable presence forgets it. (So, as §9.2 notes, this
  needs presence both ways.) This works alike for local and remote contacts.

Interests are the caps' "NODE+notify" features, resolved through the CapsCache. When a
resource appears, or its caps come to include new interests, ``on_interest(owner,
recipient, features, relation)`` is told so that the last published items can be sent
(XEP-0163 §4.3.4: at the subscriber's initial presence, on presence subscription). The
roster is asked again when a notification goes out, so a subscription cancelled since
does not leak.

What is kept is in memory only: presence is, too.
"""

from twisted.internet import defer

from summitd.core.jid import InvalidJID, parse_jid
from summitd.plugins.pubsub.caps_cache import NOTHING, announced
from summitd.plugins.pubsub.engine import NO_RELATION, Relation

SESSION_KEY = "pep"     # session.data: the features of an owner's own resource
NS_MUC_USER = "http://jabber.org/protocol/muc#user"


class _Contact:
    __slots__ = ("caps", "features")

    def __init__(self, caps):
        self.caps = caps
        self.features = NOTHING


class Recipients:
    def __init__(self, context, caps_cache, roster, on_interest):
        self.context = context
        self.caps = caps_cache
        self.roster = roster            # callable: the IRoster provider or None
        self.on_interest = on_interest
        self._contacts = {}             # owner bare text -> {contact full text: _Contact}

    # -- relations ------------------------------------------------------------------------------

    def relation(self, owner, contact):
        """Deferred Relation of ``contact`` (bare JID) in ``owner``'s roster."""
        roster = self.roster()
        if roster is None:
            return defer.succeed(NO_RELATION)
        return roster.item(owner, contact).addCallback(_relation)

    def relations(self, owner):
        """Deferred {contact bare text: Relation} of the whole roster of ``owner``."""
        roster = self.roster()
        if roster is None:
            return defer.succeed({})
        return roster.entries(owner).addCallback(lambda entries: {e.contact: _relation(e) for e in entries})

    def _failed(self, failure, what, jid):
        self.context.log.failure("pep: {what} {jid} failed", failure, what=what, jid=jid)

    # -- the owner's own resources (PRESENCE_BROADCAST) -------------------------------------------

    def own_presence(self, session, stanza, initial):
        """A resource of the owner sent broadcast presence; returns None (a run hook)."""
        if stanza.getAttribute("type") == "unavailable":
            return None
        owner = session.jid.bare
        d = self.caps.resolve(announced(stanza), session.jid.full(), owner.full())
        d.addCallback(self._own_features, session, initial)
        d.addErrback(self._failed, "caps of", session.jid.full())
        return None

    def _own_features(self, features, session, initial):
        before = NOTHING if initial else session.data.get(SESSION_KEY, NOTHING)
        session.data[SESSION_KEY] = features
        if features - before and self.context.session(session.jid) is session:
            self.on_interest(session.jid.bare, session.jid.full(), features - before, None)

    def own_resources(self, owner, feature):
        """Full JIDs (text) of ``owner``'s available resources interested in ``feature``."""
        return [s.jid.full() for s in self.context.sessions(owner)
                if s.available and feature in s.data.get(SESSION_KEY, NOTHING)]

    # -- contacts (PRESENCE_TO_ACCOUNT) ---------------------------------------------------------------

    def contact_presence(self, stanza, to_jid):
        """Presence for a local account: remember or forget the sender; returns None."""
        type = stanza.getAttribute("type")
        if type not in (None, "unavailable"):
            return None
        try:
            sender = parse_jid(stanza.getAttribute("from", ""))
        except InvalidJID:
            return None
        owner = to_jid.bare
        if sender.resource is None or sender.bare == owner or _from_a_room(stanza):
            return None
        owner_text, sender_text = owner.full(), sender.full()
        known = self._contacts.get(owner_text, {})
        if type == "unavailable":
            self._forget(owner_text, sender_text)
            return None
        caps = announced(stanza)
        contact = known.get(sender_text)
        if contact is not None and contact.caps == caps:
            return None     # a status change: nothing new to learn
        fresh = _Contact(caps)
        self._contacts.setdefault(owner_text, {})[sender_text] = fresh
        d = self.relation(owner, sender.bare)
        d.addCallback(self._related, owner, sender, fresh, contact)
        d.addErrback(self._failed, "presence of", sender_text)
        return None

    def _related(self, relation, owner, sender, fresh, previous):
        owner_text, sender_text = owner.full(), sender.full()
        if not relation.subscribed:
            if self._contacts.get(owner_text, {}).get(sender_text) is fresh:
                self._forget(owner_text, sender_text)
            return None
        d = self.caps.resolve(fresh.caps, sender_text, owner_text)
        return d.addCallback(self._contact_features, owner, sender_text, fresh, previous, relation)

    def _contact_features(self, features, owner, sender_text, fresh, previous, relation):
        if self._contacts.get(owner.full(), {}).get(sender_text) is not fresh:
            return      # gone or changed again meanwhile
        fresh.features = features
        new = features - (previous.features if previous is not None else NOTHING)
        if new:
            self.on_interest(owner, sender_text, new, relation)

    def _forget(self, owner_text, contact_text):
        known = self._contacts.get(owner_text)
        if known is not None:
            known.pop(contact_text, None)
            if not known:
                del self._contacts[owner_text]

    def contacts(self, owner, feature):
        """{contact full text: bare text} of the owner's known contact resources interested
        in ``feature`` (their subscription is checked again by the caller)."""
        known = self._contacts.get(owner.full(), {})
        return {jid: jid.partition("/")[0] for jid, c in known.items() if feature in c.features}

    def forget_account(self, jid):
        """An account was deleted: forget what it heard and where it was heard."""
        text = jid.full()
        self._contacts.pop(text, None)
        for owner in list(self._contacts):
            for contact in [c for c in self._contacts[owner] if c.partition("/")[0] == text]:
                self._forget(owner, contact)


def _from_a_room(stanza):
    """Occupant presence from a chat room (XEP-0045): not a contact's, never worth a roster
    lookup (a room of a thousand occupants would cost a thousand)."""
    return any(child.name == "x" and child.uri == NS_MUC_USER for child in stanza.elements())


def _relation(item):
    if item is None:
        return NO_RELATION
    return Relation(item.has_from, tuple(item.groups))
