"""What incoming and outgoing server-to-server streams share (RFC 6120 §4, §8.1).

One ``ServerStream`` per TCP connection: the parser (RFC 6120 §11 restrictions and a
size limit per stanza: ``policy-violation``), output in the ``jabber:server``
namespace, stream errors and the close handshake, the idle timer, and the checks
every stanza from a peer passes before it is routed (RFC 6120 §4.9.3.7,
§4.9.3.9, §13.5): it must come after authentication (``not-authorized``), carry
'to' and 'from' that are JIDs (``improper-addressing``), come from a domain
authenticated on this stream for that target (``invalid-from``) and go to a domain
we host (``host-unknown``). Each violation is logged once and closes the stream.

``inbound`` holds the (remote, local) domain pairs whose stanzas this stream may
carry to us; ``outbound`` the (local, remote) pairs we may send on it (our own
authentication on an outgoing stream, or the inverse of the peer's on a
bidirectional one, XEP-0288).
"""

import secrets
import time

from twisted.internet import protocol
from twisted.logger import Logger

from summitd.core.errors import NS_STREAMS, StanzaError, StreamError
from summitd.core.jid import InvalidJID, parse_jid, prepare_domain
from summitd.core.xmlstream import StreamParser
from summitd.core.xmlwriter import escape_attribute, serialize
from summitd.transports.s2s import dialback
from summitd.transports.s2s.certs import check_chain, peer_chain
from summitd.transports.s2s.dialback import NS_DIALBACK, dialback_xml

NS_SERVER = "jabber:server"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIDI_FEATURE = "urn:xmpp:features:bidi"
NS_BIDI = "urn:xmpp:bidi"
STANZA_NAMES = frozenset({"message", "presence", "iq"})
IQ_TYPES = frozenset({"get", "set", "result", "error"})
ABORT_AFTER_CLOSE = 10.0


class FederationError(Exception):
    """A stream to a peer, or a dialback verification, did not work out. ``condition`` is the
    stanza error for what was waiting on it; ``retry``: another address may do better."""

    def __init__(self, condition, reason, retry=False):
        super().__init__(reason)
        self.condition = condition
        self.reason = reason
        self.retry = retry

    def stanza_error(self):
        return StanzaError(self.condition, self.reason)


def stream_header(sender, target, stream_id=None):
    """A ``jabber:server`` stream header declaring the dialback namespace (XEP-0220 §2.3.1)."""
    id_attr = f" id='{escape_attribute(stream_id)}'" if stream_id else ""
    to_attr = f" to='{escape_attribute(target)}'" if target else ""
    return ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
            f"xmlns:db='{NS_DIALBACK}' xmlns:stream='{NS_STREAMS}' "
            f"from='{escape_attribute(sender)}'{to_attr}{id_attr} version='1.0' xml:lang='en'>")


def stream_error_xml(error):
    text = ""
    if error.text:
        text = (f"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>"
                f"{escape_attribute(error.text)}</text>")
    return (f"<stream:error><{error.condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>{text}"
            "</stream:error>")


def header_domain(value):
    """A stream header's 'from'/'to' as a prepared domain; None when absent, InvalidJID when
    it is not a bare domain."""
    if value is None:
        return None
    if "@" in value or "/" in value:
        raise InvalidJID(value)
    return prepare_domain(value)


class ServerStream(protocol.Protocol):
    """Base of IncomingStream and OutgoingStream."""

    log = Logger()
    direction = "s2s"

    def __init__(self, manager):
        self.manager = manager
        self.config = manager.config
        self.clock = manager.clock
        self.peer = "?"
        self.state = "connecting"
        self.secure = False
        self.bidi = False
        self.stream_id = None
        self.inbound = set()
        self.outbound = set()
        self._parser = None
        self._header_sent = False
        self._closing = False
        self._chain = None              # the peer's certificates, read once after TLS
        self._certificates = {}         # domain -> PeerCertificate
        self._last_activity = 0.0
        self._idle_timer = None
        self._abort_timer = None
        self._expiry_timer = None

    # -- connection ------------------------------------------------------------------

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.peer = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '?')}"
        self.state = "connected"
        self._last_activity = self.clock.seconds()
        self._new_parser()
        self._arm_idle_timer()

    def dataReceived(self, data):
        self._last_activity = self.clock.seconds()
        try:
            self._parser.feed(data)
        except StreamError as error:
            self.log.info("{direction} {peer}: stream error {condition} ({text})", direction=self.direction,
                          peer=self.describe(), condition=error.condition, text=error.text or "")
            self.close(error)
        except Exception:
            self.log.failure("{direction} {peer}: failed to handle input", direction=self.direction,
                             peer=self.describe())
            self.close(StreamError("internal-server-error"))

    def connectionLost(self, reason=protocol.connectionDone):
        self.state = "closed"
        self._cancel_timers()
        self.log.info("{direction} {peer}: connection closed", direction=self.direction, peer=self.describe())
        self.manager.stream_closed(self)

    def describe(self):
        """Who is at the other end, for log lines."""
        return self.peer

    def _new_parser(self):
        self._parser = StreamParser(self, self.config.max_stanza_size)
        self._header_sent = False

    # -- parser callbacks (nothing more is read once we close) ---------------------------

    def stream_started(self, attrs, default_ns):
        if not self._closing:
            self.header_received(attrs, default_ns)

    def header_received(self, attrs, default_ns):
        raise NotImplementedError

    def stream_ended(self):
        if self._closing:
            return
        self.log.info("{direction} {peer}: the peer closed its stream", direction=self.direction,
                      peer=self.describe())
        self.close()

    def element_received(self, element):
        if self._closing:
            return
        if element.uri == NS_STREAMS and element.name == "error":
            self._peer_stream_error(element)
        elif element.name in STANZA_NAMES and element.uri == NS_SERVER:
            self.stanza_received(element)
        else:
            self.nonza_received(element)

    def _peer_stream_error(self, element):
        conditions = [c.name for c in element.elements() if c.name != "text"]
        texts = [str(c) for c in element.elements() if c.name == "text"]
        self.log.info("{direction} {peer}: the peer sent stream error {condition} {text}",
                      direction=self.direction, peer=self.describe(),
                      condition=conditions[0] if conditions else "?", text=texts[0] if texts else "")
        self.peer_failed(f"stream error {conditions[0] if conditions else '?'}")
        self.close()

    def peer_failed(self, reason):
        """The peer ended the stream with an error (outgoing streams report it)."""

    # -- stanzas from the peer -----------------------------------------------------------

    def stanza_received(self, stanza):
        """Check a stanza against what the peer authenticated, then route it."""
        if not self.inbound:
            raise StreamError("not-authorized", "stanzas are accepted only after authentication")
        to, sender = stanza.getAttribute("to"), stanza.getAttribute("from")
        if not to or not sender:
            raise StreamError("improper-addressing", "a stanza between servers needs 'to' and 'from'")
        try:
            to_jid, from_jid = parse_jid(to), parse_jid(sender)
        except InvalidJID:
            raise StreamError("improper-addressing", "'to' or 'from' is not a valid JID") from None
        if (from_jid.host, to_jid.host) not in self.inbound:
            if not self.manager.is_local(to_jid.host):
                raise StreamError("host-unknown", f"{to_jid.host} is not served here")
            raise StreamError("invalid-from", f"{from_jid.host} is not authenticated for {to_jid.host} "
                                              "on this stream")
        if stanza.name == "iq" and (stanza.getAttribute("id") is None
                                    or stanza.getAttribute("type") not in IQ_TYPES):
            self.manager.bounce(stanza, StanzaError("bad-request", "an IQ needs an id and a valid type"))
            return
        self.manager.deliver(stanza)

    def nonza_received(self, element):
        raise StreamError("unsupported-stanza-type")

    # -- dialback both directions need ------------------------------------------------

    def dialback_pair(self, element):
        """(sender, target) of a dialback element, both prepared domains."""
        try:
            sender = header_domain(element.getAttribute("from"))
            target = header_domain(element.getAttribute("to"))
        except InvalidJID:
            sender = target = None
        if sender is None or target is None:
            raise StreamError("improper-addressing", "dialback elements need 'from' and 'to' domains")
        return sender, target

    def answer_verify_request(self, element):
        """Authoritative Server (XEP-0220 §2.2.2): is this key one we generated? Stateless:
        the key is recomputed from 'from', 'to', 'id' and our secret."""
        receiving, originating = self.dialback_pair(element)
        stream_id = element.getAttribute("id")
        key = dialback.element_text(element)
        if not stream_id:
            raise StreamError("improper-addressing", "db:verify needs an 'id'")
        if not self.manager.is_local(originating):
            self.log.info("{direction} {peer}: verify request for {domain}, which is not ours",
                          direction=self.direction, peer=self.describe(), domain=originating)
            self.send_raw(dialback_xml("verify", originating, receiving, "error", id=stream_id,
                                       error="item-not-found"))
            return
        valid = bool(key) and dialback.key_is_valid(self.manager.secret, receiving, originating, stream_id, key)
        if not valid:
            self.log.info("{direction} {peer}: {receiving} asked about a key for {originating} that we did "
                          "not issue", direction=self.direction, peer=self.describe(), receiving=receiving,
                          originating=originating)
        self.send_raw(dialback_xml("verify", originating, receiving, "valid" if valid else "invalid",
                                   id=stream_id))

    # -- output -----------------------------------------------------------------------

    def send_raw(self, text):
        if self.state == "closed" or self.transport is None:
            return
        self._last_activity = self.clock.seconds()
        self.transport.write(text.encode("utf-8"))

    def send(self, stanza):
        """Send one stanza (the caller checked it may go on this stream)."""
        self.send_raw(serialize(stanza, NS_SERVER))

    @property
    def usable(self):
        """Open and not closing."""
        return self.state != "closed" and not self._closing

    def can_send(self, local, remote):
        return self.usable and (local, remote) in self.outbound

    def send_header(self, sender, target, stream_id=None):
        if self._header_sent:
            return
        self._header_sent = True
        self.send_raw(stream_header(sender, target, stream_id))

    def close(self, error=None):
        """Send a stream error (if any) and the closing tag, then disconnect."""
        if self._closing:
            return
        self._closing = True
        if error is not None:
            if not self._header_sent:
                self.send_header(self.header_sender(), None, self.stream_id or secrets.token_urlsafe(12))
            self.send_raw(stream_error_xml(error))
        if self._header_sent:
            self.send_raw("</stream:stream>")
        self.manager.stream_closing(self)
        if self.transport is not None:
            self.transport.loseConnection()
            self._abort_timer = self.clock.callLater(ABORT_AFTER_CLOSE, self._abort)

    def header_sender(self):
        """Our domain for a stream header written only to carry an error."""
        return self.manager.default_domain()

    def _abort(self):
        self._abort_timer = None
        if self.transport is not None and getattr(self.transport, "connected", True):
            self.transport.abortConnection()

    # -- TLS ---------------------------------------------------------------------------

    def certificate_for(self, domain, extra_names=()):
        """The peer's certificate judged for ``domain`` (cached per domain)."""
        if domain not in self._certificates:
            if self._chain is None:
                self._chain = peer_chain(self.transport) if self.secure else []
                self._watch_expiry(self._chain)
            self._certificates[domain] = check_chain(self._chain, domain, self.manager.trust, extra_names)
        return self._certificates[domain]

    def _watch_expiry(self, chain):
        """RFC 6120 §13.7.2.3: a long-lived stream ends (``reset``) when a certificate of the
        peer's chain expires; the peer reconnects and is judged afresh."""
        if not chain:
            return
        expiry = min(cert.not_valid_after_utc.timestamp() for cert in chain)
        self._expiry_timer = self.clock.callLater(max(expiry - time.time(), 0), self._certificate_expired)

    def _certificate_expired(self):
        self._expiry_timer = None
        if self.state != "closed" and not self._closing and (self.inbound or self.outbound):
            self.log.info("{direction} {peer}: the peer's certificate expired", direction=self.direction,
                          peer=self.describe())
            self.close(StreamError("reset", "certificate expired"))

    # -- timers ------------------------------------------------------------------------

    def _arm_idle_timer(self):
        now = self.clock.seconds()
        delay = max(self._last_activity + self.config.idle_timeout - now, 1.0)
        self._idle_timer = self.clock.callLater(delay, self._idle_check)

    def _idle_check(self):
        self._idle_timer = None
        if self.state == "closed" or self._closing:
            return
        if self.clock.seconds() - self._last_activity >= self.config.idle_timeout and self.idle_close_allowed():
            self.log.info("{direction} {peer}: idle for {seconds} s, closing", direction=self.direction,
                          peer=self.describe(), seconds=int(self.config.idle_timeout))
            self.close()
            return
        self._arm_idle_timer()

    def idle_close_allowed(self):
        return True

    def _cancel_timers(self):
        for timer in (self._idle_timer, self._abort_timer, self._expiry_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._idle_timer = self._abort_timer = self._expiry_timer = None
