"""Client-to-server streams (RFC 6120): negotiation, STARTTLS, SASL, binding, then stanzas.

One ``ClientStream`` per TCP connection, direct TLS (XEP-0368) or STARTTLS. It
owns the connection's timers (handshake deadline, idle timeout, whitespace
keepalive), turns every protocol violation into the RFC 6120 stream error, and
hands bound stanzas to the router after stamping their 'from'. Extensions take
part through events: stream features (``STREAM_FEATURES``), nonzas such as stream
management (``NONZA``), and everything the router runs.
"""

import base64
import binascii
import secrets

from twisted.internet import interfaces, protocol, tcp
from twisted.logger import Logger
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import NS_STREAMS, StanzaError, StreamError
from summitd.core.hooks import Event
from summitd.core.jid import InvalidJID, JID, parse_jid, prepare_resource
from summitd.core.session import Session
from summitd.core.xmlstream import StreamParser
from summitd.core.xmlwriter import escape_attribute, serialize
from summitd.sasl import registry as sasl_registry
from summitd.sasl.channel_binding import available_channel_bindings
from summitd.sasl.mechanism import Challenge, Failure, SASLContext, Success

NS_CLIENT = "jabber:client"
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_SASL_CB = "urn:xmpp:sasl-cb:0"

STANZA_NAMES = frozenset({"message", "presence", "iq"})
MAX_SASL_FAILURES = 5

NONZA = Event(
    "nonza",
    "(stream, element): a top-level element that is not a stanza and not the core's own "
    "(stream management's <enable/>, <r/>, <a/>, CSI ...). Return non-None to take it.")


class ClientStream(protocol.Protocol):
    """One client connection."""

    log = Logger()

    def __init__(self, server, direct_tls=False):
        self.server = server
        self.config = server.config.c2s
        self.clock = server.clock
        self.secure = direct_tls
        self.host = None
        self.stream_id = None
        self.username = None        # set by SASL success
        self.session = None         # set by binding
        self.state = "connected"    # connected -> authenticated -> bound -> closed
        self.peer = "?"
        self._parser = None
        self._header_sent = False
        self._mechanism = None
        self._advertised_mechanisms = ()
        self._advertised_cb = None
        self._sasl_busy = False
        self._sasl_failures = 0
        self._last_in = self._last_out = 0.0
        self._timer = None
        self._handshake_timer = None
        self._abort_timer = None
        self._closing = False
        self._interrupted = False   # the session outlives this connection (stream management)
        self.sm = None              # stream management state (XEP-0198), set by that extension
        self.outbound_hold = None   # client state indication (XEP-0352): element -> held back?

    # -- connection events ---------------------------------------------------------

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.peer = getattr(peer, "host", str(peer))
        self._last_in = self._last_out = self.clock.seconds()
        self._new_parser()
        self._handshake_timer = self.clock.callLater(self.config.handshake_timeout, self._handshake_expired)
        self._schedule_timer()
        self.server.intake.connected(self)
        self.log.info("c2s connection from {peer}{tls}", peer=self.peer,
                      tls=" (direct TLS)" if self.secure else "")

    def dataReceived(self, data):
        self._last_in = self.clock.seconds()
        try:
            self._parser.feed(data)
        except StreamError as error:
            self.log.info("c2s stream error {condition} for {peer}", condition=error.condition, peer=self.peer)
            self.close(error)

    def connectionLost(self, reason=protocol.connectionDone):
        self.state = "closed"
        self.server.intake.disconnected(self)
        self._cancel_timers()
        if self._parser is not None:
            self._parser.close()
        if self._interrupted or (not self._closing and self._kept_after_interruption()):
            return
        session = self.end_session()
        self.log.info("c2s connection from {peer} closed{who}", peer=self.peer,
                      who=f" ({session.jid})" if session is not None else "")

    def _kept_after_interruption(self):
        """Ask extensions (stream management) whether a broken session stays routed."""
        session = self.session
        if session is None or self.server.hooks.run(events.SESSION_INTERRUPTED, self, session) is None:
            return False
        self._interrupted = True
        self.log.info("c2s {jid} interrupted; kept for resumption", jid=session.jid.full())
        return True

    def end_session(self):
        """Unroute the bound session and tell extensions it ended, once; returns it (or None).
        Stream management calls this when a hibernating session expires."""
        session, self.session = self.session, None
        if session is not None:
            self.server.router.unbind(session)
            self.server.hooks.notify(events.SESSION_CLOSED, session)
        return session

    # -- parser callbacks ------------------------------------------------------------

    def _new_parser(self):
        if self._parser is not None:
            self._parser.close()
        self._parser = StreamParser(self, self.config.max_stanza_size, self.config.max_depth,
                                    clock=self.clock, keep_parents=False)

    def stream_started(self, attrs, default_ns):
        to = attrs.get("to")
        if to is None:
            host = self.server.config.server.domains[0]
        else:
            try:
                host = parse_jid(to).host if "@" not in to and "/" not in to else None
            except InvalidJID:
                host = None
        if host is None or not self.server.router.is_local(host) or (self.host and host != self.host):
            raise StreamError("host-unknown")
        self.host = host
        self.stream_id = secrets.token_urlsafe(12)
        self._send_header(attrs.get("from"))
        if default_ns != NS_CLIENT:
            raise StreamError("invalid-namespace")
        version = attrs.get("version", "0.9")
        major = version.partition(".")[0]
        if not major.isdigit() or int(major) < 1:
            raise StreamError("unsupported-version")
        self._send_features()

    def stream_ended(self):
        self.log.info("c2s stream from {peer} ended by the client", peer=self.peer)
        self.close()

    def element_received(self, element):
        if self.state == "bound":
            if element.name in STANZA_NAMES and element.uri == NS_CLIENT:
                if self.sm is not None:
                    self.sm.received()
                self._stanza(element)
                return
        elif element.uri == NS_SASL and self.state == "connected":
            self._sasl(element)
            return
        elif element.uri == NS_TLS and element.name == "starttls" and self.state == "connected":
            self._starttls()
            return
        elif self.state == "authenticated" and element.name == "iq" and element.uri == NS_CLIENT:
            self._pre_bind_iq(element)
            return
        if self.server.hooks.run(NONZA, self, element) is not None:
            return
        if element.name in STANZA_NAMES and element.uri == NS_CLIENT:
            raise StreamError("not-authorized")
        raise StreamError("unsupported-stanza-type")

    @property
    def last_received(self):
        """When the client last sent anything (clock seconds): idle detection, pings."""
        return self._last_in

    # -- output ------------------------------------------------------------------------

    def send(self, element):
        """Send one stanza to the client (client state indication may hold it back)."""
        hold = self.outbound_hold
        if hold is not None and hold(element):
            return
        self.write_stanza(element)

    def write_stanza(self, element):
        """Put a stanza on the wire now; stream management counts and queues it (also while
        the session hibernates without a connection)."""
        if self.state != "closed":
            self._last_out = self.clock.seconds()
            write_now(self.transport, serialize(element).encode("utf-8"))
        sm = self.sm
        if sm is not None:
            sm.sent(element)

    def send_raw(self, text):
        self._last_out = self.clock.seconds()
        write_now(self.transport, text.encode("utf-8"))

    def _send_header(self, client_from):
        if self._header_sent:
            return
        self._header_sent = True
        to = ""
        if client_from:
            to = f" to='{escape_attribute(client_from)}'"
        self.send_raw(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            f"xmlns:stream='{NS_STREAMS}' id='{self.stream_id}' from='{self.host or ''}'{to} "
            "version='1.0' xml:lang='en'>")

    def _send_features(self):
        features = []
        if self.state == "connected":
            if not self.secure and self.server.tls_context is not None:
                starttls = domish.Element((NS_TLS, "starttls"))
                if self.config.require_encryption:
                    starttls.addElement("required")
                features.append(starttls)
            if self.secure or not self.config.require_encryption:
                features.extend(self._sasl_features())
        elif self.state == "authenticated":
            features.append(domish.Element((NS_BIND, "bind")))
            session = domish.Element((NS_SESSION, "session"))
            session.addElement("optional")
            features.append(session)
        features.extend(self.server.hooks.collect(events.STREAM_FEATURES, self))
        body = "".join(serialize(f) for f in features)
        self.send_raw(f"<stream:features>{body}</stream:features>")

    def close(self, error=None):
        """Send a stream error (if any) and the stream close, then disconnect."""
        if self._closing:
            return
        self._closing = True
        if error is not None:
            if not self._header_sent:
                self.stream_id = self.stream_id or secrets.token_urlsafe(12)
                self.host = self.host or self.server.config.server.domains[0]
                self._send_header(None)
            self.send_raw(_stream_error(error))
        if self._header_sent:
            self.send_raw("</stream:stream>")
        self.state = "closed"
        # Stanzas for a closed stream would vanish: unroute the session now, not when the
        # connection is finally gone (unless stream management keeps a timed-out one).
        timed_out = error is not None and error.condition == "connection-timeout"
        if not (timed_out and self._kept_after_interruption()):
            self.end_session()
        self.transport.loseConnection()
        # A client that never reads would keep the connection half-open: cut it.
        self._abort_timer = self.clock.callLater(10, self._abort)

    def _abort(self):
        if self.transport is not None and self.transport.connected:
            self.transport.abortConnection()

    # -- timers --------------------------------------------------------------------------

    def _schedule_timer(self):
        now = self.clock.seconds()
        next_check = min(self._last_in + self.config.idle_timeout,
                         self._last_out + self.config.keepalive_interval)
        self._timer = self.clock.callLater(max(next_check - now, 0.5), self._on_timer)

    def _on_timer(self):
        self._timer = None
        if self.state == "closed":
            return
        now = self.clock.seconds()
        if now - self._last_in >= self.config.idle_timeout:
            self.log.info("c2s connection from {peer} idle too long", peer=self.peer)
            self.close(StreamError("connection-timeout"))
            return
        if now - self._last_out >= self.config.keepalive_interval:
            self.send_raw(" ")
        self._schedule_timer()

    def _handshake_expired(self):
        self._handshake_timer = None
        if self.state != "bound" and self.state != "closed":
            self.log.info("c2s connection from {peer} did not log in in time", peer=self.peer)
            self.close(StreamError("connection-timeout"))

    def _cancel_timers(self):
        for timer in (self._timer, self._handshake_timer, self._abort_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._handshake_timer = self._abort_timer = None

    # -- STARTTLS ------------------------------------------------------------------------

    def _starttls(self):
        if self.secure or self.server.tls_context is None:
            self.send_raw(f"<failure xmlns='{NS_TLS}'/>")
            self.close()
            return
        self.send_raw(f"<proceed xmlns='{NS_TLS}'/>")
        self.transport.startTLS(self.server.tls_context)
        self.secure = True
        self._restart_stream()
        self.log.info("c2s connection from {peer} started TLS", peer=self.peer)

    def _restart_stream(self):
        self._header_sent = False
        self._new_parser()

    def tls_connection(self):
        """The pyOpenSSL Connection of this stream, or None when not on TLS."""
        if not self.secure or not interfaces.ISSLTransport.providedBy(self.transport):
            return None
        return self.transport.getHandle()

    def finish_authentication(self, username, restart=True):
        """An extension (SASL2, XEP-0388) authenticated this stream as username@host. With
        ``restart`` the client opens a new stream (RFC 6120 §6.4.6); without it (SASL2) the
        extension answers and then calls ``send_features()``."""
        self._mechanism = None
        self.username = username
        self.state = "authenticated"
        if restart:
            self._restart_stream()

    def send_features(self):
        """Offer the features of the stream's present state now (SASL2 does so right after
        its <success/>, without a stream restart)."""
        self._send_features()

    # -- SASL ----------------------------------------------------------------------------

    def _sasl_features(self):
        cb = {}
        conn = self.tls_connection()
        if conn is not None:
            cb = available_channel_bindings(conn)
        self._channel_bindings = cb
        names = sasl_registry.available_mechanisms(self.secure, list(cb))
        self._advertised_mechanisms = tuple(names)
        mechanisms = domish.Element((NS_SASL, "mechanisms"))
        for name in names:
            mechanisms.addElement("mechanism", content=name)
        features = [mechanisms]
        if cb:
            self._advertised_cb = tuple(cb)
            binding = domish.Element((NS_SASL_CB, "sasl-channel-binding"))
            for cb_type in cb:
                binding.addElement("channel-binding")["type"] = cb_type
            features.append(binding)
        return features

    def _sasl_context(self):
        return SASLContext(
            lookup_credentials=self._lookup_credentials,
            channel_bindings=getattr(self, "_channel_bindings", {}),
            advertised_mechanisms=self._advertised_mechanisms,
            advertised_cb_types=self._advertised_cb,
            secure=self.secure,
            secret=self.server.secret,
            fake_iterations=self.server.config.auth.scram_iterations,
        )

    def _lookup_credentials(self, username, hash_name):
        return self.server.accounts.get_credentials(self.host, username, hash_name)

    def _sasl(self, element):
        if not self.secure and self.config.require_encryption:
            raise StreamError("policy-violation", "STARTTLS first")
        if self._sasl_busy:
            raise StreamError("policy-violation", "one SASL step at a time")
        if element.name == "auth":
            if self._mechanism is not None:
                self._sasl_fail(Failure("aborted"))
                return
            name = element.getAttribute("mechanism", "")
            if name not in self._advertised_mechanisms:
                self._sasl_reply_failure("invalid-mechanism")
                return
            if self.server.address_login_limited(self.peer):
                self._sasl_reply_failure("temporary-auth-failure", "too many failed logins; try later")
                return
            self._mechanism = sasl_registry.create_mechanism(name, self._sasl_context())
            text = str(element).strip()
            response = None if not text else (b"" if text == "=" else _b64decode(text))
        elif element.name == "response" and self._mechanism is not None:
            text = str(element).strip()
            response = b"" if text in ("", "=") else _b64decode(text)
        elif element.name == "abort":
            self._mechanism = None
            self._sasl_reply_failure("aborted")
            return
        else:
            raise StreamError("policy-violation", "unexpected SASL element")
        if response is False:
            self._mechanism = None
            self._sasl_reply_failure("incorrect-encoding")
            return
        self._sasl_busy = True
        d = self._mechanism.step(response)
        d.addCallback(self._sasl_outcome)
        d.addErrback(self._sasl_error)

    def _sasl_outcome(self, outcome):
        self._sasl_busy = False
        if self.state == "closed":
            return
        if isinstance(outcome, Challenge):
            self.send_raw(f"<challenge xmlns='{NS_SASL}'>{_b64encode(outcome.data)}</challenge>")
        elif isinstance(outcome, Success):
            self._sasl_success(outcome)
        else:
            self._sasl_fail(outcome)

    def _sasl_error(self, failure):
        self._sasl_busy = False
        self.log.failure("SASL mechanism failed", failure)
        self._mechanism = None
        if self.state != "closed":
            self._sasl_reply_failure("temporary-auth-failure")

    def _sasl_success(self, outcome):
        self._mechanism = None
        if self.server.account_login_limited(self.host, outcome.username):
            self._sasl_reply_failure("temporary-auth-failure", "too many failed logins; try later")
            return
        if outcome.authzid and outcome.authzid != f"{outcome.username}@{self.host}":
            self._sasl_fail(Failure("invalid-authzid", username=outcome.username))
            return
        self.username = outcome.username
        self.state = "authenticated"
        data = "" if outcome.data is None else _b64encode(outcome.data)
        self.send_raw(f"<success xmlns='{NS_SASL}'>{data}</success>")
        self.log.info("c2s {peer} authenticated as {user}@{host}", peer=self.peer,
                      user=self.username, host=self.host)
        self._restart_stream()

    def _sasl_fail(self, outcome):
        self._mechanism = None
        self.server.record_login_failure(self.peer, self.host, outcome.username)
        self.log.info("c2s {peer} failed to authenticate{who}: {condition}", peer=self.peer,
                      who=f" as {outcome.username}" if outcome.username else "", condition=outcome.condition)
        self._sasl_failures += 1
        self._sasl_reply_failure(outcome.condition, outcome.text)
        if self._sasl_failures >= MAX_SASL_FAILURES:
            self.close(StreamError("policy-violation", "too many failed authentication attempts"))

    def _sasl_reply_failure(self, condition, text=None):
        body = f"<{condition}/>"
        if text:
            body += f"<text xml:lang='en'>{escape_attribute(text)}</text>"
        self.send_raw(f"<failure xmlns='{NS_SASL}'>{body}</failure>")

    # -- binding -------------------------------------------------------------------------

    def _pre_bind_iq(self, iq):
        payload = next(iq.elements(), None)
        if iq.getAttribute("type") == "set" and payload is not None:
            if payload.uri == NS_BIND and payload.name == "bind":
                self._bind(iq, payload)
                return
            if payload.uri == NS_SESSION and payload.name == "session":
                self.send(_result(iq))
                return
        if self.server.hooks.run(NONZA, self, iq) is None:
            raise StreamError("not-authorized")

    def _bind(self, iq, bind):
        requested = None
        for child in bind.elements():
            if child.name == "resource":
                requested = str(child).strip()
        try:
            resource = prepare_resource(requested) if requested else _generate_resource()
        except InvalidJID:
            self.send(StanzaError("bad-request", "invalid resource").reply_to(iq))
            return
        def reply(session):
            result = _result(iq)
            result.addElement((NS_BIND, "bind")).addElement("jid", content=session.jid.full())
            self.send(result)

        self.bind_resource(resource, announce=reply)

    def bind_resource(self, resource, announce=None):
        """Make this stream the session for user@host/resource; replaces a session with
        the same full JID, which is closed with a conflict stream error. (Bind 2 uses
        this too.) ``announce(session)``, when given, tells the client before anything
        else reaches the new session (what the replaced one leaves behind, for example)."""
        jid = JID.from_prepared(self.username, self.host, resource)
        session = Session(jid, self)
        self._become_bound(session)
        previous = self.server.router.bind(session)
        if announce is not None:
            announce(session)
        if previous is not None:
            self.log.info("c2s {jid} replaces an older session", jid=jid.full())
            previous.stream.session = None
            self.server.hooks.notify(events.SESSION_CLOSED, previous)
            previous.stream.close(StreamError("conflict", "replaced by a new session"))
        self.log.info("c2s {peer} bound {jid}", peer=self.peer, jid=jid.full())
        self.server.hooks.notify(events.SESSION_BOUND, session)
        return session

    def _become_bound(self, session):
        self.session = session
        self.state = "bound"
        if self._handshake_timer is not None and self._handshake_timer.active():
            self._handshake_timer.cancel()
        self._handshake_timer = None

    def adopt_session(self, session):
        """Take over a session whose connection broke (stream management resumption):
        the router keeps the session object, only its stream changes."""
        previous = session.stream
        session.stream = self
        self._become_bound(session)
        if previous is not self:
            previous.session = None
            previous.sm = None
            if previous.state != "closed":
                previous.close(StreamError("conflict", "the session was resumed on another stream"))
        self.log.info("c2s {peer} resumed {jid}", peer=self.peer, jid=session.jid.full())

    # -- stanzas -------------------------------------------------------------------------

    def _stanza(self, stanza):
        session = self.session
        claimed = stanza.getAttribute("from")
        if claimed is not None and claimed != session.jid.full():
            try:
                claimed_jid = parse_jid(claimed)
            except InvalidJID:
                raise StreamError("invalid-from") from None
            if claimed_jid != session.jid and claimed_jid != session.jid.userhostJID():
                raise StreamError("invalid-from")
        stanza["from"] = session.jid.full()
        name = stanza.name
        type = stanza.getAttribute("type")
        router = self.server.router
        if name == "iq":
            if stanza.getAttribute("id") is None or type not in ("get", "set", "result", "error"):
                router.bounce(stanza, StanzaError("bad-request", "an IQ needs an id and a valid type"))
                return
        if self.server.hooks.run(events.STANZA_FROM_CLIENT, session, stanza) is not None:
            return
        if name == "iq" and type == "set" and stanza.getAttribute("to") in (None, self.host):
            payload = next(stanza.elements(), None)
            if payload is not None and payload.uri == NS_SESSION and payload.name == "session":
                # RFC 3921 §3: legacy clients establish a session after binding; a no-op.
                self.send(_result(stanza))
                return
        if stanza.getAttribute("to") is None:
            if name == "presence":
                if type in (None, "unavailable"):
                    initial = self._own_presence(stanza, type)
                    self.server.hooks.run(events.PRESENCE_BROADCAST, session, stanza, initial)
                return      # subscription types without 'to' mean nothing (RFC 6121 §3)
            # RFC 6120 §10.3: no 'to' means the account itself.
            router.route_local(stanza, session.jid.userhostJID())
            return
        router.route(stanza)

    def _own_presence(self, stanza, type):
        """Record availability and priority (RFC 6121 §4.7.2.3) for delivery decisions;
        True when this is the session's initial (first available) presence."""
        session = self.session
        initial = type is None and not session.available
        session.available = type is None
        priority = 0
        for child in stanza.elements():
            if child.name == "priority":
                try:
                    priority = max(-128, min(127, int(str(child).strip())))
                except ValueError:
                    priority = 0
        session.priority = priority
        session.presence = stanza if type is None else None
        return initial


def write_now(transport, data):
    """``transport.write(data)``, but on a plain TCP connection with nothing queued the bytes
    go to the socket at once: Twisted's write queues them, asks epoll for writability and
    sends on the next reactor turn, which for one stanza costs two epoll_ctl calls and a turn
    (a tenth of a routed message's CPU). Whatever the socket does not take is queued by
    Twisted as usual, so order and flow control are Twisted's."""
    if (transport.__class__ is tcp.Server and not transport.TLS and transport.connected
            and not transport.disconnecting and not transport._writeDisconnected
            and not transport._tempDataBuffer and transport.offset == len(transport.dataBuffer)):
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = 0                # Twisted's own write path meets the error and closes
        if sent == len(data):
            return
        data = data[sent:]
    transport.write(data)


def _stream_error(error):
    text = ""
    if error.text:
        text = f"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>{escape_attribute(error.text)}</text>"
    return (f"<stream:error><{error.condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>{text}"
            "</stream:error>")


def _result(iq):
    reply = domish.Element((NS_CLIENT, "iq"))
    reply["type"] = "result"
    reply["id"] = iq.getAttribute("id", "")
    return reply


def _generate_resource():
    return "summitd-" + secrets.token_hex(6)


def _b64decode(text):
    """Strict base64 (RFC 6120 §6.4.2); False when invalid."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False


def _b64encode(data):
    return base64.b64encode(data).decode("ascii") if data else "="


class ClientStreamFactory(protocol.Factory):
    """Makes ClientStreams for a listening endpoint."""

    def __init__(self, server, direct_tls=False):
        self.server = server
        self.direct_tls = direct_tls

    def buildProtocol(self, addr):
        stream = ClientStream(self.server, self.direct_tls)
        stream.factory = self
        return stream
