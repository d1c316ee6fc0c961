"""Extensible In-Band Registration (XEP-0389, urn:xmpp:register:0) during stream negotiation.

The ``<register/>`` stream feature lists the domain's flows, each with the types of
its challenges (§4.1). The client selects one with ``<register><flow id/></register>``
(an unknown id: the ``undefined-condition`` stream error with ``<invalid-flow/>``,
§4.3); the server sends each step's ``<challenge type/>`` and checks each
``<response/>`` (§4.4); after the last step the account is created and
``<success><jid/><username/></success>`` sent (§4.5); SASL follows on the same stream.

Failures: XEP-0389 has only the empty ``<cancel/>`` for a server that stops a flow
(§4.5). Ours carries the reason as an RFC 6120 stanza error condition and text
inside it (clients that ignore children see a plain cancel), e.g. a wrong proof of
work, an expired or replayed invitation, a bad signature, a rate limit, or a flow not
finished within ``challenge_timeout`` seconds. The client may select a flow again
(each selection counts against the per-address limit).

After stream negotiation (an IQ to the server) there is nothing to register: a get
of ``<register/>`` answers the empty list and a set ``item-not-found`` (§4.2, §4.3).
The pre-authentication IQ get of the flow list answers what the feature lists.
The recovery flows of the spec are not offered.
"""

import weakref

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import NS_STANZA_ERRORS, StanzaError
from summitd.core.iq import SERVER
from summitd.plugins.registration import forms
from summitd.plugins.registration.challenges import Attempt
from summitd.transports.c2s import NONZA, NS_CLIENT

NS_REGISTER = "urn:xmpp:register:0"


def flows_element(flows):
    register = domish.Element((NS_REGISTER, "register"))
    for flow in flows:
        element = register.addElement("flow")
        element["id"] = flow.id
        element.addElement("name", content=flow.name)
        for type in flow.types():
            element.addElement("challenge")["type"] = type
    return register


def cancel_element(error):
    """``<cancel/>`` with the reason (our addition, see the module doc)."""
    cancel = domish.Element((NS_REGISTER, "cancel"))
    cancel.addElement((NS_STANZA_ERRORS, error.condition))
    if error.text:
        cancel.addElement((NS_STANZA_ERRORS, "text"), content=error.text)
    return cancel


def iq_reply(iq, payload=None):
    reply = domish.Element((NS_CLIENT, "iq"))
    reply["type"] = "result"
    reply["id"] = iq.getAttribute("id", "")
    if payload is not None:
        reply.addChild(payload)
    return reply


class ExtensibleRegistration:
    def __init__(self, context, registrar):
        self.context = context
        self.registrar = registrar
        self._attempts = weakref.WeakKeyDictionary()    # stream -> Attempt
        context.hook(events.STREAM_FEATURES, self._features)
        context.hook(NONZA, self._nonza)
        context.iq("get", SERVER, NS_REGISTER, "register", lambda iq, to: domish.Element((NS_REGISTER, "register")))
        context.iq("set", SERVER, NS_REGISTER, "register", self._after_negotiation)
        context.add_feature(NS_REGISTER)

    def _features(self, stream):
        if not self.registrar.offered(stream):
            return None
        flows = self.registrar.flows(stream.host)
        return [flows_element(flows)] if flows else None

    @staticmethod
    def _after_negotiation(iq, to_jid):
        raise StanzaError("item-not-found", "no registration flows are offered after stream negotiation")

    # -- the negotiation ---------------------------------------------------------------------

    def _nonza(self, stream, element):
        if stream.state != "connected":
            return None
        if element.uri == NS_REGISTER and self.registrar.offered(stream):
            handler = {"register": self._select, "response": self._respond, "cancel": self._cancelled}.get(element.name)
            if handler is None:
                return None
            handler(stream, element)
            return True
        if element.name == "iq" and element.uri == NS_CLIENT and element.getAttribute("type") == "get":
            payload = next(element.elements(), None)
            if payload is not None and payload.uri == NS_REGISTER and payload.name == "register":
                flows = self.registrar.flows(stream.host) if self.registrar.offered(stream) else []
                stream.send(iq_reply(element, flows_element(flows)))
                return True
        return None

    def _select(self, stream, element):
        flow_id = next((c.getAttribute("id") for c in element.elements() if c.name == "flow"), None)
        flow = next((f for f in self.registrar.flows(stream.host) if f.id == flow_id), None)
        if flow is None:
            stream.send_raw("<stream:error><undefined-condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                            f"<invalid-flow xmlns='{NS_REGISTER}'/></stream:error>")
            stream.close()
            return
        self._drop(stream)
        try:
            if stream in self.registrar.registered:
                raise StanzaError("not-acceptable", "an account was registered on this connection already")
            self.registrar.policy.attempt(stream.host, stream.peer)
        except StanzaError as error:
            stream.send(cancel_element(error))
            return
        attempt = Attempt(self.registrar, stream.host, stream.peer, flow)
        timeout = self.registrar.config.challenge_timeout
        attempt.timer = self.context.call_later(timeout, self._expired, stream, attempt, timeout)
        self._attempts[stream] = attempt
        self._issue(stream, attempt)

    def _issue(self, stream, attempt):
        attempt.busy = True
        d = defer.maybeDeferred(attempt.challenge.issue, attempt)
        d.addCallback(self._send_challenge, stream, attempt)
        d.addErrback(self._failed, stream, attempt)

    def _send_challenge(self, payload, stream, attempt):
        attempt.busy = False
        if self._attempts.get(stream) is not attempt:
            return
        challenge = domish.Element((NS_REGISTER, "challenge"))
        challenge["type"] = attempt.challenge.type
        challenge.addChild(payload)
        stream.send(challenge)

    def _respond(self, stream, element):
        attempt = self._attempts.get(stream)
        if attempt is None or attempt.busy:
            self._drop(stream)
            stream.send(cancel_element(StanzaError(
                "unexpected-request", "no challenge is waiting for a response" if attempt is None
                else "one response at a time")))
            return
        payload = list(element.elements())
        x = forms.find_form(payload)
        if x is not None and x.getAttribute("type") == "cancel":
            self._drop(stream)      # §4.5: a cancelled form is a cancellation
            return
        attempt.busy = True
        d = defer.maybeDeferred(attempt.challenge.verify, attempt, payload)
        d.addCallback(self._verified, stream, attempt)
        d.addErrback(self._failed, stream, attempt)

    def _verified(self, again, stream, attempt):
        attempt.busy = False
        if self._attempts.get(stream) is not attempt:
            return None
        if again is not None:
            return self._send_challenge(again, stream, attempt)
        attempt.step += 1
        if attempt.step < len(attempt.flow.steps):
            return self._issue(stream, attempt)
        attempt.busy = True
        d = self.registrar.complete(attempt, stream)
        d.addCallback(self._succeeded, stream, attempt)
        return d

    def _succeeded(self, jid, stream, attempt):
        self._drop(stream)
        success = domish.Element((NS_REGISTER, "success"))
        success.addElement("jid", content=jid.userhost())
        success.addElement("username", content=jid.user)
        if stream.state == "connected":
            stream.send(success)

    def _failed(self, failure, stream, attempt):
        if self._attempts.get(stream) is not attempt:
            return
        self._drop(stream)
        if failure.check(StanzaError):
            error = failure.value
        else:
            self.context.log.failure("registration: a challenge failed", failure)
            error = StanzaError("internal-server-error")
        if stream.state == "connected":
            stream.send(cancel_element(error))

    def _cancelled(self, stream, element):
        self._drop(stream)

    def _expired(self, stream, attempt, timeout):
        if self._attempts.get(stream) is not attempt:
            return
        self._drop(stream)
        if stream.state == "connected":
            stream.send(cancel_element(StanzaError(
                "policy-violation", f"challenge timed out: the registration was not finished within {int(timeout)} s")))

    def _drop(self, stream):
        attempt = self._attempts.pop(stream, None)
        if attempt is not None and attempt.timer is not None and attempt.timer.active():
            attempt.timer.cancel()
