"""XMPP Ping (XEP-0199) both ways.

The server answers pings addressed to it or to an account (§4.2). And it pings clients
that have gone quiet (§4.1): a session that has sent nothing for ``ping_interval`` seconds
gets a ping, and without an answer within ``ping_timeout`` seconds its stream is closed
with ``connection-timeout``. A connection that died without a TCP reset (a phone leaving
coverage) would otherwise keep its resource bound and swallow the stanzas routed to it.

Any answer proves the client alive, including the ``service-unavailable`` that §4.1 asks
of clients without ping support and the ``feature-not-implemented`` some send instead;
other errors (the ping went nowhere) count as no answer.

Options: ``ping_interval`` (seconds of silence before a ping, default 300; 0 turns the
pings off) and ``ping_timeout`` (seconds to wait for the answer, default 60).
"""

from dataclasses import dataclass

from twisted.words.xish import domish

from summitd.config import ConfigError
from summitd.core.errors import StanzaError, StreamError
from summitd.core.iq import ACCOUNT, SERVER
from summitd.extensions.base import Extension

NS_PING = "urn:xmpp:ping"
ALIVE_ERRORS = frozenset({"service-unavailable", "feature-not-implemented"})
CHECKS_PER_INTERVAL = 5     # how often, per ping_interval, sessions are looked at


@dataclass(frozen=True)
class PingConfig:
    ping_interval: float = 300.0
    ping_timeout: float = 60.0


def parse_config(raw, path):
    """Validate [extensions.ping] (see the module doc)."""
    known = PingConfig.__dataclass_fields__
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key not in known]
    values = {}
    for key, least, message in (("ping_interval", 0, "must be a number >= 0"),
                                ("ping_timeout", 1, "must be a number >= 1")):
        value = raw.get(key, getattr(PingConfig, key))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < least:
            errors.append((f"{path}.{key}", message))
        else:
            values[key] = float(value)
    if errors:
        raise ConfigError(errors)
    return PingConfig(**values)


def _connected(session):
    """False for a session whose connection is gone but that stays routed (stream
    management keeps it for resumption): its liveness is not ours to judge."""
    return getattr(session.stream, "state", None) != "closed"


def _pong(iq, to_jid):
    return None     # an empty result is the pong


class Ping(Extension):
    """Answers pings; pings quiet sessions and closes those that do not answer."""

    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self._running = False
        context.iq("get", SERVER, NS_PING, "ping", _pong)
        context.iq("get", ACCOUNT, NS_PING, "ping", _pong)
        context.add_feature(NS_PING, SERVER)
        context.add_feature(NS_PING, ACCOUNT)

    def start(self):
        self._running = True
        if self.config.ping_interval > 0:
            self.context.looping_call(max(self.config.ping_interval / CHECKS_PER_INTERVAL, 1.0),
                                      self.check_sessions)

    def stop(self):
        self._running = False   # answers still due are ignored; the server is not idle, it is leaving

    def check_sessions(self):
        """Ping every connected session silent for ping_interval that has no ping pending."""
        quiet_since = self.context.clock.seconds() - self.config.ping_interval
        for session in self.context.all_sessions():
            last = getattr(session.stream, "last_received", None)
            if (last is not None and last <= quiet_since and _connected(session)
                    and self.context.name not in session.data):
                self._ping(session)

    def _ping(self, session):
        iq = domish.Element(("jabber:client", "iq"))
        iq["type"] = "get"
        iq["from"] = session.jid.host
        iq["to"] = session.jid.full()
        iq.addElement((NS_PING, "ping"))
        session.data[self.context.name] = True     # one ping at a time per session
        d = self.context.request(iq, timeout=self.config.ping_timeout)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(session,), errbackArgs=(session,))

    def _answered(self, reply, session):
        session.data.pop(self.context.name, None)

    def _failed(self, failure, session):
        session.data.pop(self.context.name, None)
        if failure.check(StanzaError) and failure.value.condition in ALIVE_ERRORS:
            return
        if not self._running or self.context.session(session.jid) is not session or not _connected(session):
            return      # gone, replaced by a newer session of the resource, or hibernating (XEP-0198)
        self.context.log.info("{jid} did not answer a ping in {timeout} s: closing its stream",
                              jid=session.jid.full(), timeout=self.config.ping_timeout)
        session.stream.close(StreamError("connection-timeout"))


def build(context, config):
    return Ping(context, config or PingConfig())
