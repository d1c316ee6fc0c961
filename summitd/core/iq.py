"""The IQ table and its error funnel (RFC 6120 §8.2.3).

Handlers are registered per (type, target, namespace, element name), where the
target is the server itself (``to`` is a hosted domain) or an account (``to`` is a
bare JID, or absent: RFC 6120 §10.3.3). A handler returns the payload element, or
``None`` for an empty result, or a Deferred of either. Raising ``StanzaError``
gives that error; ``NotImplementedError`` gives ``feature-not-implemented``;
anything else is logged and answered with ``internal-server-error``. An IQ
nobody handles gets ``service-unavailable``. Every get/set gets exactly one reply.

The server's own requests (pings to clients, ...) go out through ``request`` and
their replies come back through the same table.
"""

from twisted.internet import defer
from twisted.logger import Logger
from twisted.words.xish import domish

from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid

SERVER = "server"
ACCOUNT = "account"


class DuplicateHandler(Exception):
    """Two extensions claimed the same IQ; a load-time error."""


class IQTimeout(Exception):
    """The entity did not answer the server's IQ in time."""


class IQTable:
    log = Logger()

    def __init__(self, clock, send):
        self._clock = clock
        self._send = send                   # routes a stanza (the router's route)
        self._handlers = {}
        self._pending = {}                  # id -> (Deferred, timeout call, addressee)
        self._next_id = 0

    def register(self, type, target, namespace, name, handler):
        """Claim IQs of ``type`` ('get'/'set') to ``target`` with payload {namespace}name."""
        if type not in ("get", "set") or target not in (SERVER, ACCOUNT):
            raise ValueError(f"bad IQ registration {type!r} {target!r}")
        key = (type, target, namespace, name)
        if key in self._handlers:
            raise DuplicateHandler(f"an IQ handler for {key} is registered already")
        self._handlers[key] = handler

        def remove():
            if self._handlers.get(key) is handler:
                del self._handlers[key]

        return remove

    def handles(self, target, namespace):
        return any(k[1] == target and k[2] == namespace for k in self._handlers)

    # -- incoming ----------------------------------------------------------------

    def dispatch(self, iq, to_jid):
        """Handle an IQ addressed to a hosted domain (to_jid.user is None) or an account."""
        type = iq.getAttribute("type")
        if type in ("result", "error"):
            self._response(iq)
            return
        target = SERVER if to_jid.user is None else ACCOUNT
        payload = _payload(iq)
        if payload is None:
            self._reply_error(iq, StanzaError("bad-request", "an IQ get or set has exactly one child"))
            return
        handler = self._handlers.get((type, target, payload.uri, payload.name))
        if handler is None:
            self._reply_error(iq, StanzaError("service-unavailable"))
            return
        d = defer.maybeDeferred(handler, iq, to_jid)
        d.addCallbacks(self._reply_result, self._reply_failure, callbackArgs=(iq,), errbackArgs=(iq,))

    def _reply_result(self, payload, iq):
        reply = _reply(iq, "result")
        if payload is not None:
            reply.addChild(payload)
        self._send(reply)

    def _reply_failure(self, failure, iq):
        if failure.check(StanzaError):
            error = failure.value
        elif failure.check(NotImplementedError):
            error = StanzaError("feature-not-implemented")
        else:
            self.log.failure("IQ handler failed", failure)
            error = StanzaError("internal-server-error")
        self._reply_error(iq, error)

    def _reply_error(self, iq, error):
        self._send(error.reply_to(iq))

    # -- the server's own requests -----------------------------------------------

    def request(self, iq, timeout=60):
        """Send an IQ get/set from the server; the Deferred fires with the result stanza,
        errbacks with StanzaError on an error reply or IQTimeout."""
        self._next_id += 1
        iq_id = iq["id"] = f"summitd-{self._next_id}"
        d = defer.Deferred()
        call = self._clock.callLater(timeout, self._expire, iq_id)
        self._pending[iq_id] = (d, call, iq.getAttribute("to"))
        self._send(iq)
        return d

    def _expire(self, iq_id):
        d = self._pending.pop(iq_id)[0]
        d.errback(IQTimeout(iq_id))

    def _response(self, iq):
        iq_id = iq.getAttribute("id")
        entry = self._pending.get(iq_id)
        if entry is None or not _same_jid(entry[2], iq.getAttribute("from")):
            return      # nobody asked (ids are guessable: the answer must come from the addressee)
        del self._pending[iq_id]
        d, call, _ = entry
        call.cancel()
        if iq["type"] == "result":
            d.callback(iq)
        else:
            d.errback(_error_from(iq))

    def cancel_all(self):
        """Give up on every outstanding request (server shutdown): each errbacks with IQTimeout."""
        pending, self._pending = self._pending, {}
        for iq_id, (d, call, _) in pending.items():
            call.cancel()
            d.errback(IQTimeout(iq_id))


def _same_jid(a, b):
    if a is None or b is None:
        return a == b
    try:
        return parse_jid(a) == parse_jid(b)
    except InvalidJID:
        return a == b


def _payload(iq):
    payload = None
    for child in iq.elements():
        if payload is not None:
            return None
        payload = child
    return payload


def _reply(iq, type):
    reply = domish.Element((iq.uri, "iq"))
    reply["type"] = type
    reply["id"] = iq.getAttribute("id", "")
    if iq.getAttribute("from") is not None:
        reply["to"] = iq["from"]
    if iq.getAttribute("to") is not None:
        reply["from"] = iq["to"]
    return reply


def _error_from(iq):
    """StanzaError from an error reply (undefined-condition when it names none we know)."""
    for error in iq.elements():
        if error.name != "error":
            continue
        for child in error.elements():
            try:
                return StanzaError(child.name, type=error.getAttribute("type"))
            except ValueError:
                continue
    return StanzaError("undefined-condition")
