"""The router: where every stanza goes (RFC 6120 §8.5, §10).

It keeps the table of bound sessions and decides, per stanza, between a hosted
domain (the IQ table or an extension), a local account (delivery hooks, whose
last band is the core's own minimal delivery) and a remote domain (s2s). The hot
path is a dict lookup or two and one hook run; nothing here parses or serialises.

The core's delivery is deliberately plain (RFC 6121 §8.5 baseline: full JID to
that session, bare JID to the available non-negative resources); the IM
extensions hook in above it to refine delivery, store offline and archive.
"""

from twisted.logger import Logger

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.core.iq import IQTable
from summitd.core.jid import InvalidJID, parse_jid


MESSAGE_TYPES = frozenset({"chat", "error", "groupchat", "headline", "normal"})


class Router:
    log = Logger()

    def __init__(self, hosts, hooks, clock):
        self.hosts = frozenset(hosts)
        self.hooks = hooks
        self.iq = IQTable(clock, self.route)
        self._accounts = {}   # (user, host) -> {resource: Session}
        self.components = {}  # domain served inside the server (pubsub., conference.) -> handler
        hooks.add(events.MESSAGE_TO_ACCOUNT, self._deliver_message, Priority.DELIVER)
        hooks.add(events.PRESENCE_TO_ACCOUNT, self._deliver_presence, Priority.DELIVER)
        hooks.add(events.IQ_TO_FULL_JID, self._deliver_iq, Priority.DELIVER)

    # -- the session table -------------------------------------------------------

    def is_local(self, host):
        return host in self.hosts

    def add_component(self, domain, handler):
        """Serve ``domain`` in-process: ``handler(stanza, to_jid)`` gets every stanza for it.
        Returns a function that removes it again."""
        if domain in self.hosts or domain in self.components:
            raise ValueError(f"{domain} is served already")
        self.components[domain] = handler

        def remove():
            if self.components.get(domain) is handler:
                del self.components[domain]

        return remove

    def bind(self, session):
        """Add a session; returns the session it replaces (same full JID) or None."""
        jid = session.jid
        resources = self._accounts.setdefault((jid.user, jid.host), {})
        previous = resources.get(jid.resource)
        resources[jid.resource] = session
        return previous

    def unbind(self, session):
        """Remove a session, unless another already replaced it."""
        jid = session.jid
        key = (jid.user, jid.host)
        resources = self._accounts.get(key)
        if resources is not None and resources.get(jid.resource) is session:
            del resources[jid.resource]
            if not resources:
                del self._accounts[key]

    def session(self, jid):
        """The session bound to a full JID, or None."""
        resources = self._accounts.get((jid.user, jid.host))
        return resources.get(jid.resource) if resources else None

    def sessions(self, jid):
        """All sessions of the account of ``jid`` (a list; empty when offline)."""
        resources = self._accounts.get((jid.user, jid.host))
        return list(resources.values()) if resources else []

    def available_sessions(self, jid):
        """Sessions of the account that sent available presence with priority >= 0."""
        resources = self._accounts.get((jid.user, jid.host))
        if not resources:
            return []
        return [s for s in resources.values() if s.available and s.priority >= 0]

    def all_sessions(self):
        """Every bound session (a list, safe to iterate while sessions close)."""
        return [s for resources in self._accounts.values() for s in resources.values()]

    def session_count(self):
        return sum(len(r) for r in self._accounts.values())

    # -- routing -------------------------------------------------------------------

    def route(self, stanza):
        """Send a stanza on its way; its 'from' must already be trustworthy."""
        to = stanza.getAttribute("to")
        try:
            if to is None:
                raise InvalidJID("no 'to' address")
            to_jid = parse_jid(to)
        except InvalidJID:
            self.bounce(stanza, StanzaError("jid-malformed"))
            return
        if to_jid.host not in self.hosts:
            component = self.components.get(to_jid.host)
            if component is not None:
                component(stanza, to_jid)
            elif self.hooks.run(events.STANZA_TO_REMOTE, stanza, to_jid) is None:
                self.bounce(stanza, StanzaError("remote-server-not-found"))
            return
        self.route_local(stanza, to_jid)

    def route_local(self, stanza, to_jid):
        name = stanza.name
        if to_jid.user is None:
            if name == "iq":
                self.iq.dispatch(stanza, to_jid)
            elif self.hooks.run(events.STANZA_TO_SERVER, stanza, to_jid) is None and name == "message":
                self.bounce(stanza, StanzaError("service-unavailable"))
            return
        if self.hooks.run(events.STANZA_TO_ACCOUNT, stanza, to_jid) is not None:
            return
        if name == "message":
            if self.hooks.run(events.MESSAGE_TO_ACCOUNT, stanza, to_jid) is None:
                self.bounce(stanza, StanzaError("service-unavailable"))
        elif name == "presence":
            self.hooks.run(events.PRESENCE_TO_ACCOUNT, stanza, to_jid)
        elif name == "iq":
            if to_jid.resource is None:
                self.iq.dispatch(stanza, to_jid)
            elif self.hooks.run(events.IQ_TO_FULL_JID, stanza, to_jid) is None:
                self.bounce(stanza, StanzaError("service-unavailable"))

    def bounce(self, stanza, error):
        """Answer a stanza with an error, unless it is itself an error or an IQ result."""
        type = stanza.getAttribute("type")
        if type == "error" or (stanza.name == "iq" and type == "result"):
            return
        if stanza.getAttribute("from") is None:
            return
        self.route(error.reply_to(stanza))

    # -- the core's own delivery (the DELIVER band) ------------------------------------

    def _deliver_message(self, stanza, to_jid):
        type = stanza.getAttribute("type", "normal")
        if type not in MESSAGE_TYPES:
            type = "normal"     # RFC 6121 §5.2.2: an unknown type is treated as normal
        if to_jid.resource is not None:
            session = self.session(to_jid)
            if session is not None:
                session.send(stanza)
                return True
            if type in ("groupchat", "error"):
                return True if type == "error" else None
        targets = self.available_sessions(to_jid)
        if not targets:
            # Nothing online: an error for what deserves one, silence for the rest.
            return None if type in ("normal", "chat", "groupchat") else True
        if type == "groupchat":
            return None
        if type in ("normal", "chat"):
            top = max(s.priority for s in targets)
            targets = [s for s in targets if s.priority == top]
        for session in targets:
            session.send(stanza)
        return True

    def _deliver_presence(self, stanza, to_jid):
        if to_jid.resource is not None:
            session = self.session(to_jid)
            if session is not None:
                session.send(stanza)
            return True
        # RFC 6121 §8.5.2.1.2: presence goes to every available resource, negative priority too.
        for session in self.sessions(to_jid):
            if session.available:
                session.send(stanza)
        return True

    def _deliver_iq(self, stanza, to_jid):
        session = self.session(to_jid)
        if session is None:
            return None
        session.send(stanza)
        return True
