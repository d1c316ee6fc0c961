"""The running server as a Twisted service: listening sockets, TLS, orderly shutdown."""

import os

from twisted.application import service
from twisted.internet import defer, endpoints, task
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory

from summitd.core import events
from summitd.core.errors import StreamError
from summitd.server import SummitServer
from summitd.tls import ensure_certificate, server_context_factory
from summitd.transports.c2s import ClientStreamFactory

ALPN_CLIENT = [b"xmpp-client"]
LISTEN_BACKLOG = 1024


class SummitService(service.Service):
    log = Logger()

    def __init__(self, config, reactor):
        self.config = config
        self.reactor = reactor
        self.server = SummitServer(config, reactor)
        self._ports = []

    @defer.inlineCallbacks
    def startService(self):
        service.Service.startService(self)
        try:
            yield self._start()
        except Exception:
            self.log.failure("summitd failed to start")
            # twistd would exit 0 after reactor.stop(); make the failure visible to callers.
            self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
            self.reactor.stop()

    @defer.inlineCallbacks
    def _start(self):
        config = self.config
        config.server.data_dir.mkdir(parents=True, exist_ok=True)
        cert, key = ensure_certificate(config)
        self.server.tls_context = server_context_factory(cert, key)
        yield self.server.start()
        starttls = ClientStreamFactory(self.server)
        for description in config.c2s.endpoints:
            yield self._listen(description, starttls, "c2s (STARTTLS)")
        direct = TLSMemoryBIOFactory(server_context_factory(cert, key, ALPN_CLIENT), False,
                                     ClientStreamFactory(self.server, direct_tls=True))
        for description in config.c2s.direct_tls_endpoints:
            yield self._listen(description, direct, "c2s (direct TLS)")
        self.log.info("summitd serving {domains}", domains=", ".join(config.server.domains))

    @defer.inlineCallbacks
    def _listen(self, description, factory, what):
        if description.startswith(("tcp:", "tcp6:")) and "backlog=" not in description:
            # Twisted's default backlog (50) drops connection bursts into 1 s SYN retries.
            description += f":backlog={LISTEN_BACKLOG}"
        endpoint = endpoints.serverFromString(self.reactor, description)
        port = yield endpoint.listen(factory)
        self._ports.append(port)
        self.log.info("{what} listening on {address}", what=what, address=port.getHost())

    @defer.inlineCallbacks
    def stopService(self):
        """Stop accepting, let extensions flush acknowledgements, tell clients
        (system-shutdown), wait for what is being stored, close the database; all
        within shutdown_grace seconds."""
        service.Service.stopService(self)
        grace = self.config.server.shutdown_grace
        for port in self._ports:
            yield port.stopListening()
        self._ports = []
        server = self.server
        server.hooks.notify(events.SERVER_STOPPING)
        yield self._bounded(server.writes.barrier(), grace / 2)
        sessions = self._all_sessions()
        for session in sessions:
            session.stream.close(StreamError("system-shutdown"))
        yield self._bounded(server.writes.barrier(), grace / 2)
        if sessions and grace:
            # Let the stream errors reach the clients before the process ends.
            yield task.deferLater(self.reactor, min(grace, 0.5), lambda: None)
        yield server.stop()

    def _bounded(self, d, seconds):
        """Wait for ``d``, but no longer than ``seconds``."""
        timeout = defer.Deferred()
        call = self.reactor.callLater(seconds, timeout.callback, None)
        first = defer.DeferredList([d, timeout], fireOnOneCallback=True, consumeErrors=True)

        def done(result):
            if call.active():
                call.cancel()
            return result

        return first.addBoth(done)

    def _all_sessions(self):
        return self.server.router.all_sessions()
