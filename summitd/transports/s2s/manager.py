"""Federation's routing: one route per (local, remote) domain pair, the streams under it.

The router hands every stanza for a domain we do not host to ``STANZA_TO_REMOTE``;
``S2SManager.stanza_to_remote`` puts it on the ``Route`` of its domain pair. A route
sends at once when it has a stream allowed to carry the pair (our own outgoing
stream, or the peer's incoming one made bidirectional with XEP-0288); otherwise it
queues the stanza (at most ``max_queue``) and connects: targets, addresses,
connection, negotiation (``connect``, ``outgoing``), trying the next address when
one fails. When no address works the queued stanzas bounce with the reason's
condition (``remote-server-not-found`` and the like); when ``connect_timeout``
passes first they bounce with ``remote-server-timeout``. Nothing is dropped silently
(RFC 6120 §8.3.3, §10.4.3).

Routes also carry dialback verifications (XEP-0220 §2.1.2): an incoming stream that
received a key for remote -> local asks ``verify_dialback``, which sends
``<db:verify/>`` on our own outgoing stream to that remote (never on the stream the
key came in on, XEP-0288 §2.2) as soon as it has negotiated TLS.

Stanzas from peers, once their stream checked them, go to the router
(``deliver``); errors for stanzas we could not forward go back to their senders
(``bounce``). Idle streams close themselves (``idle_timeout``); routes without
streams, queue or attempt are forgotten.
"""

from twisted.internet import defer, error as net_error
from twisted.logger import Logger

from summitd.core.errors import StanzaError, StreamError
from summitd.core.events import LOCAL_SERVICE
from summitd.core.jid import InvalidJID, parse_jid
from summitd.dns import DNSError, DNSSECBogus
from summitd.dns.policy import decide
from summitd.transports.s2s.connect import optimistic
from summitd.transports.s2s.outgoing import OutgoingStream
from summitd.transports.s2s.stream import FederationError

log = Logger(namespace="summitd.s2s")


def _dns_problem(error):
    if isinstance(error, DNSSECBogus):
        return f"DNSSEC validation failed (bogus answer): {error}"
    return f"DNS lookup failed: {error}"


def _failure_reason(failure):
    if failure.check(FederationError):
        return failure.value
    if failure.check(defer.CancelledError):
        return FederationError("remote-server-timeout", "the connection attempt was abandoned")
    log.failure("s2s: connection attempt failed unexpectedly", failure)
    return FederationError("remote-server-not-found", "internal error while connecting")


class Route:
    """Stanzas and dialback verifications from one local domain to one remote domain."""

    def __init__(self, manager, local, remote):
        self.manager = manager
        self.local = local
        self.remote = remote
        self.stream = None          # carries our stanzas: OutgoingStream or bidirectional IncomingStream
        self.outgoing = None        # our own negotiated outgoing stream
        self.queue = []
        self._attempt = None
        self._connecting = None     # the OutgoingStream being negotiated
        self._deadline = None
        self._verifies = []         # (stream_id, key, Deferred) until a stream can carry them

    def __repr__(self):
        return f"<Route {self.local} -> {self.remote}>"

    @property
    def busy(self):
        return bool(self.stream or self.outgoing or self.queue or self._attempt or self._verifies)

    # -- stanzas -------------------------------------------------------------------------

    def send(self, stanza):
        stream = self.stream
        if stream is not None and stream.can_send(self.local, self.remote):
            stream.send(stanza)
            return
        if len(self.queue) >= self.manager.config.max_queue:
            self.manager.bounce(stanza, StanzaError("resource-constraint",
                                                    f"too many stanzas waiting for {self.remote}"))
            return
        self.queue.append(stanza)
        self.connect()

    def use(self, stream):
        """Send on ``stream`` from now on (and what waited)."""
        self.stream = stream
        queue, self.queue = self.queue, []
        for stanza in queue:
            stream.send(stanza)

    def detach(self, stream):
        if self.outgoing is stream:
            self.outgoing = None
        if self.stream is stream:
            self.stream = self.outgoing if self.outgoing is not None and self.outgoing.can_send(
                self.local, self.remote) else None
        if self.queue and self.stream is None:
            self.connect()

    # -- dialback verification ----------------------------------------------------------------

    def verify(self, stream_id, key):
        """Deferred[bool]: whether the remote issued ``key`` for its stream ``stream_id``."""
        stream = self._verify_stream()
        if stream is not None:
            return stream.verify(stream_id, key)
        d = defer.Deferred()
        self._verifies.append((stream_id, key, d))
        self.connect()
        return d

    def _verify_stream(self):
        for stream in (self.outgoing, self._connecting):
            if stream is not None and stream.dialback_ready and stream.usable:
                return stream
        return None

    def dialback_ready(self, stream):
        """``stream`` (ours, negotiating) can now carry what waits for verification."""
        if stream is self._connecting:
            self._send_verifies(stream)

    def _send_verifies(self, stream):
        waiting, self._verifies = self._verifies, []
        for stream_id, key, d in waiting:
            stream.verify(stream_id, key).chainDeferred(d)

    # -- connecting ------------------------------------------------------------------------------

    def connect(self):
        if self._attempt is not None:
            return
        self._deadline = self.manager.clock.callLater(self.manager.config.connect_timeout, self._timed_out)
        self._attempt = defer.ensureDeferred(self._run())
        self._attempt.addCallbacks(self._established, self._failed)

    async def _run(self):
        manager = self.manager
        try:
            targets = await manager.connector.targets(self.remote)
        except DNSError as e:
            problem = f"SRV lookup for {self.remote}: {_dns_problem(e)}"
            raise FederationError("remote-server-not-found", problem) from None
        last = FederationError("remote-server-not-found", f"{self.remote} offers no XMPP service")
        for target in targets:
            try:
                candidates = await manager.connector.candidates(target)
            except DNSError as e:
                log.warn("s2s out {local} -> {remote}: skipping {host}: {error}", local=self.local,
                         remote=self.remote, host=target.host, error=_dns_problem(e))
                last = FederationError("remote-server-not-found", f"{target.host}: {_dns_problem(e)}")
                continue
            if not candidates:
                last = FederationError("remote-server-not-found", f"{target.host} has no address")
            for candidate in candidates:
                outcome = await self._try(candidate)
                if isinstance(outcome, OutgoingStream):
                    return outcome
                if outcome is not None:
                    last = outcome
                    if not outcome.retry:
                        raise outcome
        raise last

    async def _try(self, candidate):
        """An authenticated stream via ``candidate``, or the FederationError why not."""
        manager = self.manager
        verdict = decide(manager.policy, self.remote, optimistic(candidate.facts))
        if not verdict.allowed:
            log.warn("s2s out {local} -> {remote}: not connecting to {candidate}: {reason}",
                     local=self.local, remote=self.remote, candidate=str(candidate), reason=verdict.reason)
            return FederationError("remote-server-not-found", verdict.reason, retry=True)
        if candidate.direct_tls and manager.tls is None:
            return FederationError("remote-server-not-found", "direct TLS needs a certificate", retry=True)
        stream = self._connecting = OutgoingStream(manager, self.local, self.remote, candidate)
        try:
            await manager.connector.connect(candidate, self.remote, stream)
        except net_error.ConnectError as e:
            log.info("s2s out {local} -> {remote}: cannot connect to {candidate}: {error}", local=self.local,
                     remote=self.remote, candidate=str(candidate), error=str(e))
            return FederationError("remote-server-not-found", f"cannot connect to {candidate}", retry=True)
        try:
            return await stream.negotiated
        except FederationError as e:
            return e

    def _established(self, stream):
        self._finish_attempt()
        self.outgoing = stream
        if self.stream is None or not self.stream.can_send(self.local, self.remote):
            self.use(stream)
        self._send_verifies(stream)

    def _failed(self, failure):
        self._finish_attempt()
        reason = _failure_reason(failure)
        self.fail_waiting(reason)

    def fail_waiting(self, reason):
        """Bounce what waited for this route and fail its verifications."""
        queue, self.queue = self.queue, []
        if queue:
            log.warn("s2s out {local} -> {remote}: {reason}; bouncing {count} stanza(s) with {condition}",
                     local=self.local, remote=self.remote, reason=reason.reason, count=len(queue),
                     condition=reason.condition)
        else:
            log.info("s2s out {local} -> {remote}: {reason}", local=self.local, remote=self.remote,
                     reason=reason.reason)
        error = reason.stanza_error()
        for stanza in queue:
            self.manager.bounce(stanza, error)
        waiting, self._verifies = self._verifies, []
        for _, _, d in waiting:
            d.errback(FederationError("remote-connection-failed", reason.reason))
        self.manager.forget_if_idle(self)

    def _timed_out(self):
        self._deadline = None
        if self._attempt is None:
            return
        seconds = self.manager.config.connect_timeout
        reason = f"no stream to {self.remote} within {seconds:g} s"
        self.fail_waiting(FederationError("remote-server-timeout", reason))
        self._attempt.cancel()

    def _finish_attempt(self):
        self._attempt = None
        self._connecting = None
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def shutdown(self):
        if self._attempt is not None:
            self._attempt.cancel()
        for stream in {self.stream, self.outgoing}:
            if stream is not None:
                stream.close(StreamError("system-shutdown"))


class S2SManager:
    """Owns the routes and incoming streams of one server."""

    def __init__(self, context, config, connector, tls, trust, domains):
        self.context = context
        self.config = config
        self.policy = config.policy
        self.clock = context.clock
        self.connector = connector
        self.tls = tls
        self.trust = trust
        self.domains = tuple(domains)
        self.secret = context.server_secret()
        self.routes = {}            # (local, remote) -> Route
        self.incoming = set()

    # -- the router's side -------------------------------------------------------------------

    def stanza_to_remote(self, stanza, to_jid):
        """STANZA_TO_REMOTE: queue or send a stanza for a domain we do not host."""
        remote = to_jid.host
        try:
            local = parse_jid(stanza.getAttribute("from") or "").host
        except InvalidJID:
            return None
        if not self.is_local(local) or self.is_local(remote):
            return None
        if self.policy.is_blocked(remote):
            log.info("s2s: not sending to {remote}: blocked by policy", remote=remote)
            self.bounce(stanza, StanzaError("not-allowed", f"federation with {remote} is not allowed"))
            return True
        self.route(local, remote).send(stanza)
        return True

    def route(self, local, remote):
        route = self.routes.get((local, remote))
        if route is None:
            route = self.routes[(local, remote)] = Route(self, local, remote)
        return route

    def forget_if_idle(self, route):
        if not route.busy and self.routes.get((route.local, route.remote)) is route:
            del self.routes[(route.local, route.remote)]

    def deliver(self, stanza):
        """A stanza a peer sent us, checked by its stream: route it locally."""
        self.context.route(stanza)

    def bounce(self, stanza, error):
        """Answer a stanza we cannot forward with ``error`` (never an error or an IQ result)."""
        type = stanza.getAttribute("type")
        if type == "error" or (stanza.name == "iq" and type == "result") or stanza.getAttribute("from") is None:
            return
        self.context.route(error.reply_to(stanza))

    def is_local(self, domain):
        return domain in self.context.domains or bool(self.context.run(LOCAL_SERVICE, domain))

    def default_domain(self):
        return self.domains[0]

    # -- the streams' side -----------------------------------------------------------------------

    def verify_dialback(self, local, remote, stream_id, key):
        return self.route(local, remote).verify(stream_id, key)

    def dialback_ready(self, stream):
        self.route(stream.local, stream.remote).dialback_ready(stream)

    def inbound_authenticated(self, stream, remote, local):
        """A peer authenticated remote -> local on ``stream``; on a bidirectional stream our
        stanzas local -> remote may now go back on it (XEP-0288 §2.2)."""
        if not stream.bidi:
            return
        stream.outbound.add((local, remote))
        route = self.route(local, remote)
        if route.stream is None or not route.stream.can_send(local, remote):
            route.use(stream)

    def stream_opened(self, stream):
        self.incoming.add(stream)

    def stream_closing(self, stream):
        self._detach(stream)

    def stream_closed(self, stream):
        self.incoming.discard(stream)
        self._detach(stream)

    def _detach(self, stream):
        pairs = set(stream.outbound)
        if isinstance(stream, OutgoingStream):
            pairs.add((stream.local, stream.remote))
        for pair in pairs:
            route = self.routes.get(pair)
            if route is not None:
                route.detach(stream)
                self.forget_if_idle(route)

    # -- shutdown ----------------------------------------------------------------------------------

    def shutdown(self):
        """Close every stream (system-shutdown) and bounce what still waits."""
        for route in list(self.routes.values()):
            route.fail_waiting(FederationError("remote-server-timeout", "the server is shutting down"))
            route.shutdown()
        for stream in list(self.incoming):
            stream.close(StreamError("system-shutdown"))
