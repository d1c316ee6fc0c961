"""Stream Management (XEP-0198, urn:xmpp:sm:3): acknowledgements and resumption.

Mobile clients drop connections all the time; with stream management nothing
that the server acknowledged is lost:

- Each side counts the stanzas it handled; ``<r/>`` asks for the count, ``<a h/>``
  gives it. Counts wrap at 2**32 (XEP-0198 §5).
- The server keeps every stanza it sent until the client acknowledges it. When the
  connection breaks, the session hibernates for ``resume_timeout`` seconds: it stays
  routed, stanzas for it are queued, and a new stream can ``<resume/>`` it; the
  unacknowledged stanzas are then re-sent in order.
- When a session ends for good (expiry, clean close, replacement), its
  unacknowledged messages are routed again: to another resource or to offline
  storage, never silently dropped; unacknowledged IQ requests are answered with an
  error so the requester is not left waiting.
- The server answers a client's ``<r/>`` only after the writes its stanzas caused
  are durable (``context.write_barrier()``), and keeps a durable spool of the
  messages it sent but that are not acknowledged yet (``sm_spool``), so even a
  crash loses nothing: at the next start the spool is routed again.

Resuming after a restart finds no session and fails cleanly with item-not-found;
the client logs in again and gets its messages from offline storage.
"""

import secrets
from collections import deque

from twisted.words.xish import domish
from zope.interface import Interface

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import NS_STANZA_ERRORS, StanzaError, StreamError
from summitd.core.hooks import Priority
from summitd.core.xmlwriter import serialize
from summitd.extensions.base import Extension
from summitd.plugins.sm_spool import Spool
from summitd.transports.c2s import NONZA

NS_SM = "urn:xmpp:sm:3"
NS_CARBONS = "urn:xmpp:carbons:2"
MODULUS = 2 ** 32

DEFAULTS = {"resume_timeout": 300, "max_unacked": 5000}


def parse_config(raw, path):
    """Options: resume_timeout (seconds a broken session waits to be resumed, default 300)
    and max_unacked (stanzas kept for a client before its stream is closed, or its hibernating
    session ended, default 5000)."""
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key not in DEFAULTS]
    config = dict(DEFAULTS)
    for key in DEFAULTS:
        value = raw.get(key, DEFAULTS[key])
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            errors.append((f"{path}.{key}", "must be a positive integer"))
        else:
            config[key] = value
    if errors:
        raise ConfigError(errors)
    return config


class IStreamManagement(Interface):
    """What SASL2 and Bind 2 use (XEP-0198 §inline): negotiation whose answers go inside
    <success/> and <bound/> instead of onto the wire."""

    def enable_inline(stream, resumable):
        """Enable on a stream Bind 2 just bound; returns the <enabled/> element."""

    def resume_inline(stream, previd, h):
        """Resume like <resume/> (``h`` an int, or None when invalid); returns (element,
        then): the <resumed/> or <failed/> element for <success/>, and a function to call
        once <success/> is written (it re-sends what the client has not acknowledged),
        None when the resumption failed."""


class HandledCountTooHigh(Exception):
    """The client acknowledged stanzas the server never sent (XEP-0198 §4)."""


class StreamState:
    """The stream management state of one session; it moves to the new stream on resumption."""

    __slots__ = ("id", "stream", "resumable", "handled", "sent_count", "acked", "queue",
                 "ack_requested", "expiry", "resending", "_ext")

    def __init__(self, ext, stream, resumable):
        self._ext = ext
        self.id = secrets.token_urlsafe(16)
        self.stream = stream
        self.resumable = resumable
        self.handled = 0            # stanzas received from the client: the h we report
        self.sent_count = 0         # stanzas sent to the client
        self.acked = 0              # the last h the client reported
        self.queue = deque()        # (sequence number, stanza) not yet acknowledged
        self.ack_requested = False
        self.expiry = None          # DelayedCall while hibernating
        self.resending = False

    # -- called by the stream ----------------------------------------------------------

    def received(self):
        self.handled = (self.handled + 1) % MODULUS

    def sent(self, stanza):
        self.sent_count = (self.sent_count + 1) % MODULUS
        self.queue.append((self.sent_count, stanza))
        if not self.resending:
            self._ext.spool.add(self, self.sent_count, stanza)
        if len(self.queue) > self._ext.config["max_unacked"]:
            if self.stream.state != "closed":
                self.stream.close(StreamError("resource-constraint", "too many unacknowledged stanzas"))
            else:
                # Hibernating: stop queueing in memory; the session ends and its
                # messages go to offline storage like after an expiry.
                self.stream.end_session()
            return
        self.request_ack()

    # -- acknowledgements --------------------------------------------------------------

    def request_ack(self):
        """One <r/> in flight at a time, sent right after the stanza it covers."""
        if not self.ack_requested and self.queue and self.stream.state != "closed":
            self.ack_requested = True
            self.stream.send_raw(f"<r xmlns='{NS_SM}'/>")

    def acknowledge(self, h):
        """The client handled everything up to ``h``: forget those stanzas.

        An ``h`` behind the last acknowledged one (less than 2**31 behind, modulo
        2**32) is stale: it acknowledges nothing new, and the stanzas it seems to
        leave out are not sent again (the client confirmed them already); nor does
        the same ``h`` again (an ``<r/>`` in flight stays in flight). Anything else
        beyond what was sent is HandledCountTooHigh."""
        count = (h - self.acked) % MODULUS
        if count > len(self.queue):
            if (self.acked - h) % MODULUS >= MODULUS // 2:
                raise HandledCountTooHigh(f"h={h} but only {len(self.queue)} stanzas are unacknowledged")
            return
        if count:
            done = [self.queue.popleft()[0] for _ in range(count)]
            self.acked = h
            self.ack_requested = False
            self._ext.spool.remove(self, done)
            self.request_ack()


class StreamManagement(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self.spool = Spool(context)
        self.resumable = {}         # id -> StreamState of a session that can be resumed
        context.hook(events.STREAM_FEATURES, self.features)
        context.hook(NONZA, self.nonza)
        context.hook(events.SESSION_INTERRUPTED, self.interrupted)
        context.hook(events.SESSION_CLOSED, self.session_closed, Priority.DELIVER)
        context.hook(events.SERVER_STARTED, self.recover)
        context.hook(events.SERVER_STOPPING, self.flush_acknowledgements)
        context.hook(events.ACCOUNT_DELETING, self.spool.delete_account)
        context.provide(IStreamManagement, self)

    def start(self):
        return self.spool.setup()

    def stop(self):
        for state in list(self.resumable.values()):
            if state.expiry is not None and state.expiry.active():
                state.expiry.cancel()
        return self.spool.flush()

    # -- negotiation -------------------------------------------------------------------

    def features(self, stream):
        if stream.state == "authenticated" or (stream.state == "bound" and stream.sm is None):
            return [domish.Element((NS_SM, "sm"))]
        return None

    def nonza(self, stream, element):
        if element.uri != NS_SM:
            return None
        name = element.name
        if name == "r" and stream.sm is not None:
            self.answer_ack_request(stream)
        elif name == "a" and stream.sm is not None:
            self.handle_ack(stream, element)
        elif name == "enable":
            self.enable(stream, element)
        elif name == "resume":
            self.resume(stream, element)
        else:
            self.fail(stream, "unexpected-request")
        return True

    def fail(self, stream, condition, **attributes):
        stream.send_raw(serialize(_failed(condition, **attributes)))

    def enable(self, stream, element):
        if stream.state != "bound" or stream.sm is not None:
            self.fail(stream, "unexpected-request")
            return
        resumable = element.getAttribute("resume") in ("true", "1")
        stream.send_raw(serialize(self.enable_inline(stream, resumable)))

    def answer_ack_request(self, stream):
        """<a h/> once what the client's stanzas caused is durable."""
        state = stream.sm
        h = state.handled

        def answer(_):
            if stream.sm is state and stream.state != "closed":
                stream.send_raw(f"<a xmlns='{NS_SM}' h='{h}'/>")

        self.context.write_barrier().addCallback(answer)

    def handle_ack(self, stream, element):
        h = _h_value(element)
        if h is None:
            stream.close(StreamError("bad-format", "<a/> needs a numeric h"))
            return
        try:
            stream.sm.acknowledge(h)
        except HandledCountTooHigh as e:
            self.context.log.info("c2s {jid}: {problem}", jid=stream.session.jid.full(), problem=str(e))
            stream.close(StreamError("undefined-condition", "handled-count-too-high"))

    # -- resumption --------------------------------------------------------------------

    def resume(self, stream, element):
        """XEP-0198 §5: take over a hibernating (or still connected) session of this user."""
        if stream.state != "authenticated":
            self.fail(stream, "unexpected-request")
            return
        answer, then = self.resume_inline(stream, element.getAttribute("previd", ""), _h_value(element))
        stream.send_raw(serialize(answer))
        if then is not None:
            then()

    def resend(self, state):
        """Re-send what the client has not acknowledged, in order, with the same numbers."""
        pending = list(state.queue)
        state.queue.clear()
        state.sent_count = state.acked
        state.ack_requested = False
        state.resending = True
        try:
            for _, stanza in pending:
                state.stream.write_stanza(stanza)
        finally:
            state.resending = False

    # -- inline negotiation (SASL2 and Bind 2, XEP-0198 §inline) -------------------------

    def enable_inline(self, stream, resumable):
        state = stream.sm = StreamState(self, stream, resumable)
        enabled = domish.Element((NS_SM, "enabled"))
        if resumable:
            self.resumable[state.id] = state
            enabled["id"], enabled["resume"] = state.id, "true"
            enabled["max"] = str(self.config["resume_timeout"])
        return enabled

    def resume_inline(self, stream, previd, h):
        """The session of ``previd`` moves to ``stream`` unless it is unknown, expired,
        another user's, or gone with a server restart (then the client binds anew)."""
        state = self.resumable.get(previd)
        session = state.stream.session if state is not None else None
        if (session is None or h is None or session.jid.user != stream.username
                or session.jid.host != stream.host):
            return _failed("item-not-found", h="0"), None
        try:
            state.acknowledge(h)
        except HandledCountTooHigh:
            return _failed("undefined-condition"), None
        if state.expiry is not None and state.expiry.active():
            state.expiry.cancel()
        state.expiry = None
        previous, state.stream = state.stream, stream
        previous.sm = None
        held, previous.outbound_hold = previous.outbound_hold, None   # XEP-0352 §5.2
        stream.adopt_session(session)
        stream.sm = state
        resumed = domish.Element((NS_SM, "resumed"))
        resumed["previd"], resumed["h"] = state.id, str(state.handled)

        def then():
            self.resend(state)
            if held is not None:
                held.flush(stream)

        return resumed, then

    # -- the end of a connection or a session -----------------------------------------------

    def interrupted(self, stream, session):
        """Keep a resumable session routed for resume_timeout seconds."""
        state = stream.sm
        if state is None or not state.resumable or state.expiry is not None:
            return None
        state.ack_requested = False
        state.expiry = self.context.call_later(self.config["resume_timeout"], self.expire, state)
        return True

    def expire(self, state):
        state.expiry = None
        self.context.log.info("c2s {jid}: resumption window expired",
                              jid=state.stream.session.jid.full() if state.stream.session else "?")
        state.stream.end_session()

    def session_closed(self, session):
        """The session is over: what the client never acknowledged goes elsewhere."""
        stream = session.stream
        state = stream.sm
        if state is None:
            return
        stream.sm = None
        self.resumable.pop(state.id, None)
        if state.expiry is not None and state.expiry.active():
            state.expiry.cancel()
        pending = [stanza for _, stanza in state.queue]
        state.queue.clear()
        self.redeliver(pending)
        # The spool rows may go once the redelivery (offline storage) is durable.
        self.context.write_barrier().addCallback(lambda _: self.spool.discard(state))

    def redeliver(self, stanzas):
        """Route unacknowledged stanzas again now that their session is gone. Carbon copies
        are not: the original reached (or will reach) its own destination."""
        for stanza in stanzas:
            if stanza.name == "message":
                if not _is_carbon(stanza):
                    self.context.route(stanza)
            elif stanza.name == "iq" and stanza.getAttribute("type") in ("get", "set"):
                self.context.route(StanzaError("service-unavailable").reply_to(stanza))

    def recover(self):
        """At start: messages a previous run sent but saw no acknowledgement for."""
        return self.spool.recover(self.redeliver)

    def flush_acknowledgements(self):
        """Shutdown: tell every client what the server handled before the streams close."""
        for session in self.context.all_sessions():
            if session.stream.sm is not None and session.stream.state != "closed":
                self.answer_ack_request(session.stream)


def _is_carbon(message):
    return any(child.uri == NS_CARBONS and child.name in ("received", "sent")
               for child in message.elements())


def _failed(condition, **attributes):
    failed = domish.Element((NS_SM, "failed"))
    for key, value in attributes.items():
        failed[key] = value
    failed.addElement((NS_STANZA_ERRORS, condition))
    return failed


def _h_value(element):
    try:
        h = int(element.getAttribute("h", ""))
    except ValueError:
        return None
    return h if 0 <= h < MODULUS else None


def build(context, config):
    return StreamManagement(context, config)
