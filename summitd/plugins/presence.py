"""Presence (RFC 6121 §3, §4 and Appendix A): subscriptions, broadcast, probes, directed
presence, and a per-session rate limit.

This module wires the parts to the server's events:

* ``STANZA_FROM_CLIENT``: the rate limit (SECURITY band; RFC 6120 §13.12 and XEP-0205:
  over it, ``policy-violation`` with a text saying why), presence types RFC 6121 §4.7.1
  does not define (``bad-request``), outbound subscription stanzas
  (presence_subscriptions) and directed presence (presence_broadcast).
* ``PRESENCE_BROADCAST`` and ``SESSION_CLOSED``: broadcast and unavailable on disconnect.
* ``PRESENCE_TO_ACCOUNT``: inbound subscription stanzas and probes; available and
  unavailable presence to a bare JID goes to every available resource, negative
  priority included (§8.5.2.1.2 speaks of "all available resources"; only messages
  skip negative priorities).
* ``STREAM_FEATURES``: subscription pre-approval (§3.4).
* ``BLOCKLIST_CHANGED``: presence again for unblocked contacts (XEP-0191 §3.4).

The roster extension (required) keeps the subscription states.
"""

from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.core.ratelimit import RateLimiter
from summitd.extensions.base import Extension
from summitd.plugins.presence_broadcast import Broadcaster, refuse, session_state
from summitd.plugins.presence_config import parse_presence_config
from summitd.plugins.presence_states import SUBSCRIPTION_TYPES
from summitd.plugins.presence_subscriptions import Subscriptions
from summitd.plugins.roster_store import IRoster

NS_PRE_APPROVAL = "urn:xmpp:features:pre-approval"
PRESENCE_TYPES = frozenset({None, "unavailable", "probe", "error"} | set(SUBSCRIPTION_TYPES))

parse_config = parse_presence_config


class Presence(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self.broadcaster = Broadcaster(context, config.max_directed)
        self.subscriptions = Subscriptions(context, self.broadcaster)
        self.limiter = RateLimiter(config.rate, config.burst, context.clock)
        context.hook(events.STANZA_FROM_CLIENT, self._rate_limit, Priority.SECURITY)
        context.hook(events.STANZA_FROM_CLIENT, self._from_client)
        context.hook(events.PRESENCE_BROADCAST, self.broadcaster.broadcast)
        context.hook(events.SESSION_CLOSED, self.broadcaster.session_closed)
        context.hook(events.PRESENCE_TO_ACCOUNT, self._to_account)
        context.hook(events.PRESENCE_TO_ACCOUNT, self._deliver, Priority.DELIVER + 10)
        context.hook(events.STREAM_FEATURES, self._features)
        context.hook(events.BLOCKLIST_CHANGED, self.broadcaster.blocklist_changed)

    def start(self):
        """The roster extension (required, so started first) keeps the subscription states."""
        self.broadcaster.roster = self.subscriptions.roster = self.context.need(IRoster)

    def _rate_limit(self, session, stanza):
        if stanza.name != "presence":
            return None
        if stanza.getAttribute("type") == "unavailable" and stanza.getAttribute("to") is None:
            return None     # going offline is always allowed (and costs one more broadcast at most)
        state = session_state(session)
        if self.limiter.allow(session.jid.full()):
            state.limited = False
            return None
        if not state.limited:
            state.limited = True
            self.context.log.info("presence: {jid} is over the presence rate limit", jid=session.jid.full())
        return refuse(session, stanza, StanzaError(
            "policy-violation", f"too much presence: at most {self.config.burst:g} at once and "
                                f"{self.config.rate:g} per second"))

    def _from_client(self, session, stanza):
        if stanza.name != "presence":
            return None
        type = stanza.getAttribute("type")
        if type not in PRESENCE_TYPES:
            return refuse(session, stanza, StanzaError("bad-request", f"no presence type {type!r}"))
        if stanza.getAttribute("to") is None:
            return None     # broadcast presence: the core records it and runs PRESENCE_BROADCAST
        if type in SUBSCRIPTION_TYPES:
            return self.subscriptions.outbound(session, stanza, type)
        if type is None or type == "unavailable":
            return self.broadcaster.directed(session, stanza, type)
        return None         # probes and errors are routed as they are

    def _to_account(self, stanza, to_jid):
        type = stanza.getAttribute("type")
        if type in SUBSCRIPTION_TYPES:
            return self.subscriptions.inbound(stanza, to_jid, type)
        if type == "probe":
            return self.broadcaster.probe(stanza, to_jid)
        if type not in PRESENCE_TYPES:
            if stanza.getAttribute("from") is not None:
                self.context.route(StanzaError("bad-request", f"no presence type {type!r}").reply_to(stanza))
            return True
        return None

    def _deliver(self, stanza, to_jid):
        if to_jid.resource is not None or stanza.getAttribute("type") not in (None, "unavailable"):
            return None
        for session in self.context.sessions(to_jid):
            if session.available:
                session.send(stanza)
        return True

    def _features(self, stream):
        if stream.state != "authenticated":
            return None
        return [domish.Element((NS_PRE_APPROVAL, "sub"))]


def build(context, config):
    return Presence(context, config)
