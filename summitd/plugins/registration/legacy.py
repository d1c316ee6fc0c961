"""In-Band Registration of new accounts (XEP-0077), only where the policy's checks fit in it.

Pre-authentication ``jabber:iq:register`` IQs (and XEP-0445's ``<preauth/>``) reach us
as ``NONZA`` events of the 'connected' state; once authenticated, the same namespace
belongs to the "register" extension (password change, removal), so the two never meet.

A domain's flow (see the registrar) runs here only when all its steps can: the
invitation is the XEP-0445 ``<preauth xmlns='urn:xmpp:pars:0' token/>`` IQ sent first,
and at most one other step may have a form, which goes into the query with the
username and password fields added (XEP-0158 §4 does this with the CAPTCHA form;
XEP-0348 §3.1 with the signed form). A flow needing more (proof-of-work *and* a signed
form, or a third-party step without a form) is not offered over XEP-0077 at all, so
legacy registration never bypasses a check. A plain flow (just the account) also
takes the classic ``<username/>``/``<password/>`` elements.

Which flow: the invitation flow once a token was accepted on this stream, else the
open flow; on an invitation-only domain a set without a token is refused with
``not-allowed``. Errors follow XEP-0077 §3.1 (``conflict``, ``not-acceptable``) and the
checks' own conditions; unsupported requests get ``service-unavailable`` (§3.1).

Stream features: ``<register xmlns='http://jabber.org/features/iq-register'/>`` (§7) and
``<register xmlns='urn:xmpp:ibr-token:0'/>`` (XEP-0445 §4) where they apply.
"""

import weakref

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.plugins.registration import forms
from summitd.plugins.registration.challenges import NS_IBR_TOKEN, NS_IQ_REGISTER, NS_PARS, Attempt
from summitd.plugins.registration.ibr2 import iq_reply
from summitd.transports.c2s import NONZA, NS_CLIENT

NS_FEATURE = "http://jabber.org/features/iq-register"


def legacy_step(flow):
    """The one step whose form XEP-0077 carries for ``flow``, or None when it does not fit."""
    steps = [s for s in flow.steps if s.name != "invitation"]
    if any(s.legacy_form_type is None for s in steps):
        return None
    with_forms = [s for s in steps if s.name != "form"]
    if len(with_forms) > 1:
        return None
    return with_forms[0] if with_forms else steps[0]


class _StreamState:
    __slots__ = ("invite", "attempt")

    def __init__(self):
        self.invite = None      # accepted with <preauth/>
        self.attempt = None     # the attempt whose form was handed out


class LegacyRegistration:
    def __init__(self, context, registrar):
        self.context = context
        self.registrar = registrar
        self._streams = weakref.WeakKeyDictionary()
        context.hook(events.STREAM_FEATURES, self._features)
        context.hook(NONZA, self._nonza)

    def _plans(self, stream):
        """{flow id: (flow, step)} of the flows XEP-0077 can carry on this stream."""
        if not self.registrar.offered(stream) or not self.registrar.policy.for_host(stream.host).legacy:
            return {}
        plans = {}
        for flow in self.registrar.flows(stream.host):
            step = legacy_step(flow)
            if step is not None:
                plans[flow.id] = (flow, step)
        return plans

    def _features(self, stream):
        plans = self._plans(stream)
        if not plans:
            return None
        features = [domish.Element((NS_FEATURE, "register"))]
        if "invite" in plans:
            features.append(domish.Element((NS_IBR_TOKEN, "register")))
        return features

    def _nonza(self, stream, iq):
        if stream.state != "connected" or iq.name != "iq" or iq.uri != NS_CLIENT:
            return None
        payload = next(iq.elements(), None)
        type = iq.getAttribute("type")
        if payload is None:
            return None
        if payload.uri == NS_IQ_REGISTER and payload.name == "query" and type in ("get", "set"):
            handler = self._get if type == "get" else self._set
        elif payload.uri == NS_PARS and payload.name == "preauth" and type == "set":
            handler = self._preauth
        else:
            return None
        plans = self._plans(stream)
        if not plans:
            stream.send(StanzaError("service-unavailable", "no in-band registration here").reply_to(iq))
            return True
        state = self._streams.get(stream)
        if state is None:
            state = self._streams[stream] = _StreamState()
        d = defer.maybeDeferred(handler, stream, iq, payload, plans, state)
        d.addCallback(lambda result: stream.send(iq_reply(iq, result)))
        d.addErrback(self._error, stream, iq)
        return True

    def _error(self, failure, stream, iq):
        if failure.check(StanzaError):
            error = failure.value
        else:
            self.context.log.failure("registration: XEP-0077 request failed", failure)
            error = StanzaError("internal-server-error")
        if stream.state == "connected":
            stream.send(error.reply_to(iq))

    def _plan(self, plans, state):
        return plans.get("invite") if state.invite is not None else (plans.get("open") or plans.get("invite"))

    # -- the requests ------------------------------------------------------------------------

    def _preauth(self, stream, iq, payload, plans, state):
        token = payload.getAttribute("token", "")
        if not token:
            raise StanzaError("bad-request", "<preauth/> needs a token")
        if "invite" not in plans:
            raise StanzaError("service-unavailable", "invitations are not redeemed in-band here")
        self.registrar.policy.attempt(stream.host, stream.peer)
        attempt = Attempt(self.registrar, stream.host, stream.peer, plans["invite"][0])

        def accepted(_):
            state.invite, state.attempt = attempt.invite, None
            return None

        return self.registrar.check_invite(attempt, token).addCallback(accepted)

    def _get(self, stream, iq, payload, plans, state):
        flow, step = self._plan(plans, state)
        attempt = self._attempt(stream, flow, state)
        query = domish.Element((NS_IQ_REGISTER, "query"))
        query.addElement("instructions", content=f"Choose a username and a password for {stream.host}.")
        if step is self.registrar.account_form:
            fixed = state.invite.username if state.invite is not None else None
            query.addElement("username", content=fixed or "")
            query.addElement("password")
        d = defer.maybeDeferred(step.issue, attempt)

        def issued(x):
            if not step.provides_account and step.legacy_form_type != NS_IQ_REGISTER:
                forms.add_field(x, "username", type="text-single", label="Username", required=True)
                forms.add_field(x, "password", type="text-private", label="Password", required=True)
            query.addChild(x)
            state.attempt = attempt
            return query

        return d.addCallback(issued)

    def _attempt(self, stream, flow, state):
        attempt = Attempt(self.registrar, stream.host, stream.peer, flow)
        attempt.invite = state.invite
        return attempt

    def _set(self, stream, iq, payload, plans, state):
        children = {c.name: c for c in payload.elements() if c.uri == NS_IQ_REGISTER}
        if "remove" in children:
            raise StanzaError("registration-required", "log in to remove an account")
        self.registrar.policy.attempt(stream.host, stream.peer)
        flow, step = self._plan(plans, state)
        if any(s.name == "invitation" for s in flow.steps) and state.invite is None:
            raise StanzaError("not-allowed", f"registration on {stream.host} needs an invitation: send its "
                                             "token with <preauth xmlns='urn:xmpp:pars:0'/> first")
        x = forms.find_form(payload.elements())
        attempt = state.attempt if state.attempt is not None and state.attempt.flow.id == flow.id else None
        if step is self.registrar.account_form and x is None:
            attempt = self._attempt(stream, flow, state)
            d = self.registrar.check_account(attempt, str(children.get("username", "")).strip(),
                                             str(children.get("password", "")))
        else:
            if x is None:
                raise StanzaError("not-acceptable", "fill in the registration form")
            if attempt is None:
                if step is not self.registrar.account_form:
                    raise StanzaError("bad-request", "ask for the registration form first")
                attempt = self._attempt(stream, flow, state)
            d = defer.maybeDeferred(step.verify, attempt, [x])
            if not step.provides_account:
                fields = forms.read(x, step.legacy_form_type)
                d.addCallback(lambda _: self.registrar.check_account(
                    attempt, forms.value(fields, "username"), forms.value(fields, "password")))
        d.addCallback(lambda _: self.registrar.complete(attempt, stream))
        d.addCallback(self._registered, stream)
        return d

    def _registered(self, jid, stream):
        self._streams.pop(stream, None)
        return None
