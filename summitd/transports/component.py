"""External components (XEP-0114, ``jabber:component:accept``) on loopback.

A component (a gateway, a MUC or pubsub service in another process) connects to
``[extensions.component] endpoints`` (loopback only: connections from elsewhere are
refused, the handshake is no protection against eavesdroppers), names its domain in
the stream header's 'to', and proves it knows the domain's shared secret:
``<handshake>`` = lower-case hex SHA-1(stream id + secret) (XEP-0114 §3). It may then
send stanzas from any JID at its domain (anything else: ``invalid-from``; a stanza
without 'to' or 'from': ``improper-addressing``) and receives every stanza routed
to its domain. While it is not connected, stanzas for it bounce with
``service-unavailable``. Federation serves component domains too (``host_component``
answers ``events.LOCAL_SERVICE`` for them).

::

    [extensions.component]
    endpoints = ["tcp:5347:interface=127.0.0.1"]
    max_stanza_size = 262144

    [extensions.component.components]
    "gateway.example.org" = "a long shared secret"
"""

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field

from twisted.internet import defer, endpoints, protocol
from twisted.internet.interfaces import IReactorTCP
from twisted.logger import Logger

from summitd.config import Checker, ConfigError, valid_domain
from summitd.core.errors import NS_STREAMS, StanzaError, StreamError
from summitd.core.jid import InvalidJID, parse_jid, prepare_domain
from summitd.core.xmlstream import StreamParser
from summitd.core.xmlwriter import escape_attribute, serialize
from summitd.extensions.base import Extension

NS_ACCEPT = "jabber:component:accept"
STANZA_NAMES = frozenset({"message", "presence", "iq"})
MIN_SECRET_LENGTH = 8
ABORT_AFTER_CLOSE = 10.0


@dataclass(frozen=True)
class ComponentConfig:
    endpoints: tuple = ("tcp:5347:interface=127.0.0.1",)
    components: dict = field(default_factory=dict)     # domain -> shared secret
    max_stanza_size: int = 262144
    handshake_timeout: float = 30.0


def parse_config(raw, path):
    """Validate [extensions.component] (see the module docstring)."""
    c = Checker()
    d = ComponentConfig()
    c.unknown(raw, path, set(ComponentConfig.__dataclass_fields__))
    components = {}
    for domain, secret in c.table(raw, f"{path}.components").items():
        key = f'{path}.components."{domain}"'
        if not valid_domain(domain):
            c.errors.append((key, "is not a valid domain name"))
        elif not isinstance(secret, str) or len(secret) < MIN_SECRET_LENGTH:
            c.errors.append((key, f"must be a shared secret of at least {MIN_SECRET_LENGTH} characters"))
        else:
            components[prepare_domain(domain)] = secret
    config = ComponentConfig(
        endpoints=c.strings(raw, path, "endpoints", d.endpoints, lambda v: ":" in v,
                            "must be a list of Twisted endpoint strings"),
        components=components,
        max_stanza_size=c.get(raw, path, "max_stanza_size", int, d.max_stanza_size, lambda v: v >= 1024,
                              "must be an integer of at least 1024"),
        handshake_timeout=float(c.get(raw, path, "handshake_timeout", (int, float), d.handshake_timeout,
                                      lambda v: v > 0, "must be a positive number of seconds")),
    )
    if c.errors:
        raise ConfigError(c.errors)
    return config


def handshake_digest(stream_id, secret):
    """XEP-0114 §3: lower-case hex SHA-1 of the stream id followed by the secret."""
    return hashlib.sha1((stream_id + secret).encode("utf-8")).hexdigest()


class ComponentStream(protocol.Protocol):
    """One component connection."""

    log = Logger(namespace="summitd.component")

    def __init__(self, service):
        self.service = service
        self.config = service.config
        self.clock = service.context.clock
        self.domain = None
        self.stream_id = None
        self.state = "connected"        # -> authenticated -> closed
        self.peer = "?"
        self._parser = StreamParser(self, self.config.max_stanza_size)
        self._header_sent = False
        self._closing = False
        self._timers = []

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.peer = getattr(peer, "host", str(peer))
        self._timers.append(self.clock.callLater(self.config.handshake_timeout, self._handshake_expired))
        if not _is_loopback(self.peer):
            self.log.warn("component: refusing a connection from {peer}: loopback only", peer=self.peer)
            self.close(StreamError("policy-violation", "components connect over loopback only"))

    def dataReceived(self, data):
        try:
            self._parser.feed(data)
        except StreamError as error:
            self.log.info("component {who}: stream error {condition} ({text})", who=self.domain or self.peer,
                          condition=error.condition, text=error.text or "")
            self.close(error)

    def connectionLost(self, reason=protocol.connectionDone):
        self.state = "closed"
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self.service.disconnected(self)

    # -- parser callbacks ------------------------------------------------------------------

    def stream_started(self, attrs, default_ns):
        self.stream_id = secrets.token_hex(16)
        try:
            domain = prepare_domain(attrs.get("to") or "")
        except InvalidJID:
            domain = None
        self.domain = domain
        self._send_header()
        if default_ns != NS_ACCEPT:
            raise StreamError("invalid-namespace")
        if domain not in self.config.components:
            raise StreamError("host-unknown", "no component of that name is configured")

    def stream_ended(self):
        self.close()

    def element_received(self, element):
        if self.state == "authenticated":
            if element.name in STANZA_NAMES and element.uri == NS_ACCEPT:
                self._stanza(element)
                return
            raise StreamError("unsupported-stanza-type")
        if element.name == "handshake" and element.uri == NS_ACCEPT:
            self._handshake(str(element).strip())
            return
        raise StreamError("not-authorized", "handshake first")

    def _handshake(self, digest):
        expected = handshake_digest(self.stream_id, self.config.components[self.domain])
        if not hmac.compare_digest(expected.encode("ascii"), digest.lower().encode("utf-8", "replace")):
            self.log.warn("component {domain}: wrong handshake from {peer}", domain=self.domain, peer=self.peer)
            raise StreamError("not-authorized", "wrong handshake")
        if not self.service.connected(self):
            raise StreamError("conflict", "this component is connected already")
        self.state = "authenticated"
        self.send_raw("<handshake/>")
        self.log.info("component {domain} connected from {peer}", domain=self.domain, peer=self.peer)

    def _stanza(self, stanza):
        to, sender = stanza.getAttribute("to"), stanza.getAttribute("from")
        if not to or not sender:
            raise StreamError("improper-addressing", "stanzas need 'to' and 'from'")
        try:
            parse_jid(to)
            from_jid = parse_jid(sender)
        except InvalidJID:
            raise StreamError("improper-addressing", "'to' or 'from' is not a valid JID") from None
        if from_jid.host != self.domain:
            raise StreamError("invalid-from", f"stanzas must come from {self.domain}")
        self.service.context.route(stanza)

    # -- output ------------------------------------------------------------------------------

    def send_raw(self, text):
        if self.state != "closed":
            self.transport.write(text.encode("utf-8"))

    def send(self, stanza):
        self.send_raw(serialize(stanza, NS_ACCEPT))

    def _send_header(self):
        if self._header_sent:
            return
        self._header_sent = True
        self.send_raw(f"<?xml version='1.0'?><stream:stream xmlns='{NS_ACCEPT}' xmlns:stream='{NS_STREAMS}' "
                      f"from='{escape_attribute(self.domain or '')}' id='{self.stream_id or ''}'>")

    def close(self, error=None):
        if self._closing:
            return
        self._closing = True
        if error is not None:
            self.stream_id = self.stream_id or secrets.token_hex(16)
            self._send_header()
            text = f"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>{escape_attribute(error.text)}</text>" \
                if error.text else ""
            self.send_raw(f"<stream:error><{error.condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                          f"{text}</stream:error>")
        if self._header_sent:
            self.send_raw("</stream:stream>")
        self.state = "closed"
        self.service.disconnected(self)
        self.transport.loseConnection()
        self._timers.append(self.clock.callLater(ABORT_AFTER_CLOSE, self._abort))

    def _abort(self):
        if self.transport is not None and getattr(self.transport, "connected", True):
            self.transport.abortConnection()

    def _handshake_expired(self):
        if self.state == "connected":
            self.log.info("component from {peer}: no handshake in time", peer=self.peer)
            self.close(StreamError("connection-timeout"))


def _is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ComponentFactory(protocol.Factory):
    def __init__(self, service):
        self.service = service

    def buildProtocol(self, addr):
        return ComponentStream(self.service)


class Components(Extension):
    """Routes stanzas for the configured component domains to their connections."""

    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self.streams = {}       # domain -> the authenticated ComponentStream
        self._ports = []
        for domain in config.components:
            context.host_component(domain, self._to_component)     # routing, and LOCAL_SERVICE for s2s

    def _to_component(self, stanza, to_jid):
        stream = self.streams.get(to_jid.host)
        if stream is None:
            self._bounce(stanza)
            return
        stream.send(stanza)

    def _bounce(self, stanza):
        type = stanza.getAttribute("type")
        if type == "error" or (stanza.name == "iq" and type == "result") or not stanza.getAttribute("from"):
            return
        error = StanzaError("service-unavailable", "the component is not connected")
        self.context.route(error.reply_to(stanza))

    def connected(self, stream):
        if stream.domain in self.streams:
            return False
        self.streams[stream.domain] = stream
        return True

    def disconnected(self, stream):
        if self.streams.get(stream.domain) is stream:
            del self.streams[stream.domain]
            self.context.log.info("component {domain} disconnected", domain=stream.domain)

    @defer.inlineCallbacks
    def start(self):
        if not IReactorTCP.providedBy(self.context.reactor()):
            return      # summitctl and tests run the server on a fake clock
        factory = ComponentFactory(self)
        for description in self.config.endpoints:
            port = yield endpoints.serverFromString(self.context.reactor(), description).listen(factory)
            self._ports.append(port)
            self.context.log.info("components listening on {address}", address=port.getHost())

    @defer.inlineCallbacks
    def stop(self):
        ports, self._ports = self._ports, []
        for port in ports:
            yield port.stopListening()
        for stream in list(self.streams.values()):
            stream.close(StreamError("system-shutdown"))


def build(context, config):
    return Components(context, config or ComponentConfig())
