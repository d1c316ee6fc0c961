"""Presence broadcast, probes and directed presence (RFC 6121 §4).

* Broadcast presence (§4.2, §4.4, §4.5): to every contact with subscription from/both
  and to every available resource of the account (the sender included). Initial
  presence also gathers the contacts' presence (§4.3.1): a local contact is answered from
  its sessions' last presence, after checking its own roster lets the user see it; a
  remote one gets a probe. The account's own other resources' presence and the stored
  subscription requests (§3.1.3 rule 4) go to the newly available resource.
* Unblocking (XEP-0191 §3.4): unblocked contacts allowed to see the user get its
  current presence, and the user's resources gather theirs again.
* Directed presence (§4.6): the addressees of each session are remembered, and get
  unavailable presence when the session goes unavailable, cleanly or not (§4.5.2),
  unless the broadcast reaches them anyway.
* Inbound probes (§4.3.2): contacts with subscription from/both get the last presence of
  each available resource (only the probed one for a full JID, as bare availability),
  or unavailable from the bare JID when none is; an entity that got directed presence
  from a session gets that session's bare availability (§4.6.6); anybody else gets
  "unsubscribed".

Everything the server sends on a user's behalf to other accounts is routed (so blocking
and the other routing hooks see it); copies for the user's own resources are sent directly.
"""

from twisted.words.xish import domish

from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid
from summitd.core.xmlstream import parse_element
from summitd.plugins.roster import presence_stanza

SESSION_KEY = "presence"


class SessionPresence:
    """What the presence extension keeps per session (``session.data['presence']``)."""

    __slots__ = ("directed", "announced", "limited")

    def __init__(self):
        self.directed = set()   # JIDs this session sent available directed presence to
        self.announced = False  # its available presence went to the subscribers
        self.limited = False    # over the rate limit (logged once per episode)


def session_state(session):
    state = session.data.get(SESSION_KEY)
    if state is None:
        state = session.data[SESSION_KEY] = SessionPresence()
    return state


def _take_directed(state):
    """The directed-presence addressees, forgotten (they are about to hear unavailable)."""
    directed, state.directed = state.directed, set()
    return directed


def refuse(session, stanza, error):
    """Answer the sending session with an error (never an error stanza: RFC 6120 §8.3.1);
    True, for hooks that take the stanza."""
    if stanza.getAttribute("type") != "error":
        reply = error.reply_to(stanza)
        reply["to"] = session.jid.full()
        session.send(reply)
    return True


def addressed(stanza, to, sender=None):
    """A copy of ``stanza`` for one addressee (children are shared, never modified)."""
    copy = domish.Element((stanza.uri, stanza.name), stanza.defaultUri, dict(stanza.attributes))
    copy.children = list(stanza.children)
    copy["to"] = to
    if sender is not None:
        copy["from"] = sender
    return copy


class Broadcaster:
    roster = None       # the IRoster provider, set when the extension starts

    def __init__(self, context, max_directed):
        self.context = context
        self.max_directed = max_directed

    def _failed(self, failure, what, jid):
        self.context.log.failure("presence: {what} for {jid} failed", failure, what=what, jid=jid.full())

    # -- outbound broadcast (PRESENCE_BROADCAST) -----------------------------------------

    def broadcast(self, session, stanza, initial):
        """A client's presence without 'to' (the core recorded availability already)."""
        state = session_state(session)
        for other in self.context.sessions(session.jid):
            if other is session or other.available:
                other.send(addressed(stanza, other.jid.full()))
        if stanza.getAttribute("type") == "unavailable":
            announced, state.announced = state.announced, False
            self._withdraw(session, stanza, _take_directed(state), announced)
            return None
        state.announced = True
        if initial:
            self._own_resources_to(session)
        d = self.roster.entries(session.jid.bare)
        d.addCallback(self._to_contacts, stanza, ())
        if initial:
            d.addCallback(self._gather, session)
        d.addErrback(self._failed, "broadcast", session.jid)
        return None     # offline delivery and others want initial presence too

    def _withdraw(self, session, stanza, directed, announced):
        """Unavailable to the directed-presence addressees, and to the subscribers when the
        session had announced itself available (a never-available one has nothing to take back)."""
        if not announced:
            for jid in directed:
                self.context.route(addressed(stanza, jid.full()))
            return
        d = self.roster.entries(session.jid.bare)
        d.addCallback(self._to_contacts, stanza, directed)
        d.addErrback(self._failed, "unavailable broadcast", session.jid)

    def _own_resources_to(self, session):
        """The account's other available resources, for a newly available one (§4.2.2)."""
        for other in self.context.sessions(session.jid):
            if other is not session and other.available and other.presence is not None:
                session.send(addressed(other.presence, session.jid.full(), other.jid.full()))

    def _to_contacts(self, entries, stanza, directed):
        subscribers = {e.contact for e in entries if e.has_from}
        for contact in subscribers:
            self.context.route(addressed(stanza, contact))
        for jid in directed:
            if jid.userhost() not in subscribers:
                self.context.route(addressed(stanza, jid.full()))
        return entries

    def _gather(self, entries, session):
        """Initial presence: deliver stored requests, gather the contacts' presence."""
        for entry in entries:
            if entry.pending_in and entry.request:
                self._deliver_request(session, entry)
        return self._probe(session.jid.bare, [session], entries)

    def _probe(self, user, sessions, entries):
        """The presence of the contacts ``user`` subscribes to, for ``sessions`` (§4.3.1)."""
        wanted = [e.contact for e in entries if e.has_to]
        local = [c for c in wanted if parse_jid(c).host in self.context.domains]
        for contact in wanted:
            if contact not in local:
                self.context.route(presence_stanza("probe", user, contact))
        if not local:
            return None
        d = self.roster.sharing_with(user)
        return d.addCallback(self._local_answers, sessions, local)

    def _deliver_request(self, session, entry):
        try:
            request = parse_element(entry.request)
        except Exception:
            self.context.log.failure("presence: stored request from {contact} unreadable", contact=entry.contact)
            return
        session.send(request)

    def _local_answers(self, sharing, sessions, local):
        """§4.3.2 rule 4 for local contacts, without probe stanzas."""
        for contact in local:
            if contact in sharing:
                for other in self.context.sessions(parse_jid(contact)):
                    if other.available and other.presence is not None:
                        for session in sessions:
                            self.context.route(addressed(other.presence, session.jid.full(), other.jid.full()))

    # -- unblocking (XEP-0191 §3.4) ---------------------------------------------------------

    def blocklist_changed(self, user, blocked, unblocked):
        """Unblocked contacts that may see the user get its current presence, and the user's
        available resources get theirs again (it was dropped while they were blocked)."""
        if not unblocked or not any(s.available for s in self.context.sessions(user)):
            return
        try:
            jids = [parse_jid(text) for text in unblocked]
        except InvalidJID:
            return
        d = self.roster.entries(user)
        d.addCallback(self._unblocked, user, jids)
        d.addErrback(self._failed, "presence after unblocking", user)

    def _unblocked(self, entries, user, jids):
        matched = [e for e in entries if _covers(jids, e.jid)]
        for entry in matched:
            if entry.has_from:
                self.current_presence_to(user, entry.contact)
        available = [s for s in self.context.sessions(user) if s.available]
        return self._probe(user, available, matched)

    # -- presence on the user's behalf -----------------------------------------------------

    def current_presence_to(self, user, contact):
        """Each available resource's last presence to ``contact`` (§3.1.5)."""
        for session in self.context.sessions(user):
            if session.available and session.presence is not None:
                self.context.route(addressed(session.presence, contact, session.jid.full()))

    def unavailable_to(self, user, contact):
        """Unavailable from each available resource to ``contact`` (§3.2.2, §3.3.3)."""
        for session in self.context.sessions(user):
            if session.available:
                self.context.route(presence_stanza("unavailable", session.jid, contact))

    # -- directed presence (§4.6) ------------------------------------------------------------

    def directed(self, session, stanza, type):
        """Remember (or forget) the addressee of directed presence; None lets it be routed."""
        try:
            to = parse_jid(stanza.getAttribute("to"))
        except InvalidJID:
            return None     # the router answers jid-malformed
        if to.bare == session.jid.bare:
            return None     # the account's own resources hear every broadcast anyway
        state = session_state(session)
        if type == "unavailable":
            state.directed.discard(to)
        elif to not in state.directed:
            if len(state.directed) >= self.max_directed:
                return refuse(session, stanza, StanzaError(
                    "policy-violation", f"directed presence to at most {self.max_directed} addresses per session"))
            state.directed.add(to)
        return None

    # -- the session ended (SESSION_CLOSED) -----------------------------------------------

    def session_closed(self, session):
        """§4.5.2: unavailable on the user's behalf when a session ends without it."""
        state = session.data.get(SESSION_KEY)
        if state is None or not (state.announced or state.directed):
            return
        stanza = presence_stanza("unavailable", session.jid)
        if state.announced:
            for other in self.context.sessions(session.jid):
                if other.available:
                    other.send(addressed(stanza, other.jid.full()))
        self._withdraw(session, stanza, _take_directed(state), state.announced)
        state.announced = False

    # -- inbound probes (§4.3.2, §4.6.6) ---------------------------------------------------

    def probe(self, stanza, to_jid):
        try:
            prober = parse_jid(stanza.getAttribute("from", ""))
        except InvalidJID:
            return True
        d = self.roster.item(to_jid.bare, prober.bare)
        d.addCallback(self._answer_probe, stanza, to_jid, prober)
        d.addErrback(self._failed, "probe answer", to_jid)
        return True

    def _answer_probe(self, item, stanza, to_jid, prober):
        if to_jid.resource is not None:
            session = self.context.session(to_jid)
            sessions = [session] if session is not None else []
        else:
            sessions = self.context.sessions(to_jid)
        to = prober.full()
        if item is not None and item.has_from:
            available = [s for s in sessions if s.available and s.presence is not None]
            for session in available:
                if to_jid.resource is None:
                    self.context.route(addressed(session.presence, to, session.jid.full()))
                else:
                    self.context.route(presence_stanza(None, session.jid, to))
            if not available:
                self.context.route(presence_stanza("unavailable", to_jid, to, stanza.getAttribute("id")))
            return
        informed = [s for s in sessions if _sent_directed(s, prober)]
        for session in informed:
            self.context.route(presence_stanza(None if session.available else "unavailable", session.jid, to))
        if not informed:
            self.context.route(presence_stanza("unsubscribed", to_jid.bare, prober.bare, stanza.getAttribute("id")))


def _covers(jids, contact):
    """Whether a blocklist entry among ``jids`` applied to the roster contact (XEP-0191 §6:
    an entry without a localpart covers its whole domain)."""
    return any(j.bare == contact if j.user is not None else j.host == contact.host for j in jids)


def _sent_directed(session, jid):
    state = session.data.get(SESSION_KEY)
    return state is not None and (jid in state.directed or jid.bare in state.directed)
