"""Presence subscriptions (RFC 6121 §3): outbound and inbound subscription stanzas.

Outbound (a client sent subscribe, subscribed, unsubscribe or unsubscribed): both
addresses are stamped as bare JIDs (§3, §3.1.2 rule 1), the roster row moves by Appendix
A.2 in one transaction, and then: the roster push, unavailable from each resource when a
subscription is cancelled (§3.2.2), the stanza routed (if the table says so), and current
presence after an approval (§3.1.5). §3.1.2 puts the push after the routing; it comes
first here because routing to a local contact can change this roster again at once, and
pushes must leave in version order (§2.6.3). The user's client sees no difference.

Inbound (for a local account): the row moves by A.3; the stanza is delivered (if the
table says so) before the roster push (§3.1.6, §3.2.3, §3.3.3); an inbound unsubscribe
that ends the contact's subscription is followed by unavailable from each resource; the
auto-replies of A.3.1 note 2 and A.3.2 note 1 and of pre-approvals (§3.4) are sent on the
user's behalf. A "subscribe" is stored as a whole while pending and delivered to the
available resources now and again at every login (§3.1.3 rule 4). One for an account that
does not exist is answered "unsubscribed", as for a probe (§4.3.2 rule 1), which also
clears the requester's pending state; the other types are ignored then (§8.5.1).
"""

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid
from summitd.core.xmlwriter import serialize
from summitd.plugins import presence_states as states
from summitd.plugins.presence_broadcast import refuse
from summitd.plugins.roster import presence_stanza, subscription_audience
from summitd.plugins.roster_store import RosterFull, TooManyRequests

#: Characters of a stored subscription request; a bigger one is kept without its payload
#: (§3.1.3's warning: stored requests are a way to exhaust the server).
MAX_STORED_REQUEST = 16384


def stored_request(stanza):
    """The XML kept for a pending request: the whole stanza (§3.1.3 rule 4) unless huge."""
    text = serialize(stanza)
    if len(text) <= MAX_STORED_REQUEST:
        return text
    return serialize(domish.Element((stanza.uri, stanza.name), stanza.defaultUri, dict(stanza.attributes)))


class Subscriptions:
    roster = None       # the IRoster provider, set when the extension starts

    def __init__(self, context, broadcaster):
        self.context = context
        self.broadcaster = broadcaster

    # -- outbound (STANZA_FROM_CLIENT) ----------------------------------------------------

    def outbound(self, session, stanza, type):
        try:
            contact = parse_jid(stanza.getAttribute("to")).bare
        except InvalidJID:
            return refuse(session, stanza, StanzaError("jid-malformed", "'to' is not a JID"))
        user = session.jid.bare
        if contact == user:
            return refuse(session, stanza, StanzaError(
                "not-allowed", "an account is always subscribed to its own presence"))
        stanza["from"] = user.full()
        stanza["to"] = contact.full()
        text = contact.full()
        d = self.roster.update(user, contact, lambda before: states.outbound(type, before, text).after)
        d.addCallback(self._outbound_done, stanza, type)
        d.addErrback(self._outbound_failed, session, stanza)
        self.context.track_write(d)     # acknowledged (XEP-0198) once stored
        return True

    def _outbound_done(self, change, stanza, type):
        outcome = states.outbound(type, change.before, change.contact)
        user, contact = change.user, change.contact
        # The push goes first: what routing sets off may change this roster again, and
        # pushes must leave in the order of the versions (§2.6.3).
        self.roster.push(change)
        if outcome.forward:
            if type == "unsubscribed" and change.before.has_from:
                self.broadcaster.unavailable_to(user, contact)
            self.context.route(stanza)
        if outcome.forward and type == "subscribed":
            self.broadcaster.current_presence_to(user, contact)

    def _outbound_failed(self, failure, session, stanza):
        if failure.check(RosterFull):
            error = StanzaError("policy-violation",
                                f"a roster holds at most {self.roster.config.max_items} items")
        else:
            self.context.log.failure("presence: subscription stanza from {jid} failed", failure,
                                     jid=session.jid.full())
            error = StanzaError("internal-server-error")
        refuse(session, stanza, error)

    # -- inbound (PRESENCE_TO_ACCOUNT) ------------------------------------------------------

    def inbound(self, stanza, to_jid, type):
        try:
            contact = parse_jid(stanza.getAttribute("from", "")).bare
        except InvalidJID:
            return True
        user = to_jid.bare
        if contact == user:
            return True
        # §3.1.3: subscriptions are between bare JIDs, whatever the addresses said.
        stanza["from"] = contact.full()
        stanza["to"] = user.full()
        if type == "subscribe":
            d = self._exists(user)
            d.addCallback(self._subscribe, stanza, user, contact)
        else:
            d = self._apply(stanza, user, contact, type)
        d.addErrback(self._inbound_failed, stanza, user)
        return True

    def _exists(self, user):
        if self.context.sessions(user):
            return defer.succeed(True)
        return self.context.accounts.exists(user)

    def _subscribe(self, exists, stanza, user, contact):
        if not exists:
            self.context.route(presence_stanza("unsubscribed", user, contact, stanza.getAttribute("id")))
            return None
        return self._apply(stanza, user, contact, "subscribe", stored_request(stanza))

    def _apply(self, stanza, user, contact, type, request=None):
        text = contact.full()
        d = self.roster.update(user, contact, lambda before: states.inbound(type, before, text, request).after)
        return d.addCallback(self._inbound_done, stanza, type, request)

    def _inbound_done(self, change, stanza, type, request):
        outcome = states.inbound(type, change.before, change.contact, request)
        user, contact = change.user, change.contact
        if outcome.forward:
            sessions = self.context.sessions(user)
            if type == "subscribe":
                sessions = [s for s in sessions if s.available]     # §3.1.3 rule 3
            else:
                sessions = subscription_audience(sessions)
            for session in sessions:
                session.send(stanza)
        self.roster.push(change)
        if outcome.forward and type == "unsubscribe" and change.before.has_from:
            self.broadcaster.unavailable_to(user, contact)
        if outcome.reply is not None:
            self.context.route(presence_stanza(outcome.reply, user, contact))
            if outcome.reply == "subscribed":
                self.broadcaster.current_presence_to(user, contact)

    def _inbound_failed(self, failure, stanza, user):
        if failure.check(TooManyRequests):
            self.context.log.info("presence: {user} has too many pending subscription requests",
                                  user=user.full())
            self.context.route(StanzaError(
                "resource-constraint", "the contact has too many pending subscription requests").reply_to(stanza))
            return
        self.context.log.failure("presence: inbound {type} for {user} failed", failure,
                                 type=stanza.getAttribute("type"), user=user.full())
