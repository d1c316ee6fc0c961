"""Outgoing server-to-server streams: we are the Initiating Server (RFC 6120 §4-§6).

One ``OutgoingStream`` carries one domain pair, local -> remote (RFC 6120 §4.5). Its
negotiation:

1. stream header; STARTTLS when offered (or TLS from the first byte on an XEP-0368
   ``_xmpps-server`` target, with SNI and ALPN ``xmpp-server``). A peer that offers
   no TLS is refused while ``require_encryption`` is on (RFC 7590).
2. the peer is judged once TLS is up: its certificate for the remote domain (RFC 6125;
   with a DNSSEC-secure SRV answer the target host name counts too, RFC 7673 §4.1),
   DANE when the target's TLSA records are secure (RFC 7673 §4.2: a mismatch refuses
   the peer even with an otherwise valid certificate), DNSSEC and the remote-domain
   policy (``summitd.dns.policy.decide``). A refusal is logged with its reason and
   the next address is tried.
3. ``<bidi/>`` (XEP-0288) when offered, then SASL EXTERNAL (XEP-0178) when offered,
   else Server Dialback (XEP-0220 §2.1.1) with a key from ``dialback.generate_key``.

From step 2 on the stream can carry ``<db:verify/>`` requests for keys other
servers sent us (``verify``): the Receiving Server's half of dialback
(XEP-0220 §2.1.2). Answers must match a request sent on this stream; an unsolicited
``<db:result/>`` answer is a stream error, an unsolicited ``<db:verify/>`` answer is
dropped and logged (XEP-0220 §2.1, §3).

``negotiated`` fires with the stream once stanzas may flow, or fails with a
``FederationError`` (its ``retry`` says whether another address could do better).
"""

import base64
from dataclasses import replace

from twisted.internet import defer

from summitd.core.errors import NS_STREAMS, StreamError
from summitd.dns.dane import dane_applies, dane_verdict
from summitd.dns.policy import decide
from summitd.transports.s2s import dialback
from summitd.transports.s2s.certs import ClientTLS
from summitd.transports.s2s.dialback import NS_DIALBACK, dialback_xml
from summitd.transports.s2s.stream import (
    NS_BIDI, NS_BIDI_FEATURE, NS_SASL, NS_SERVER, NS_TLS, FederationError, ServerStream,
)


class OutgoingStream(ServerStream):
    """A connection we opened to a peer for one (local, remote) domain pair."""

    direction = "s2s out"

    def __init__(self, manager, local, remote, candidate):
        super().__init__(manager)
        self.local = local
        self.remote = remote
        self.candidate = candidate
        self.secure = candidate.direct_tls
        self.decision = None
        self.dialback_ready = False
        self.negotiated = defer.Deferred(lambda d: self.abort("gave up"))
        self._method = None             # "external" or "dialback" once we authenticate
        self._verifies = {}             # stream id -> Deferred for our <db:verify/> requests

    def connectionMade(self):
        super().connectionMade()
        self.log.info("s2s out {local} -> {remote}: connected to {peer}{tls}", local=self.local,
                      remote=self.remote, peer=self.peer, tls=" (direct TLS)" if self.secure else "")
        self.send_header(self.local, self.remote)

    def describe(self):
        return f"{self.local} -> {self.remote} ({self.peer})"

    def header_sender(self):
        return self.local

    def _restart(self):
        self._new_parser()
        self.send_header(self.local, self.remote)

    # -- outcome ---------------------------------------------------------------------------

    def fail(self, condition, reason, retry=False, error=None, logged=False):
        """Negotiation failed: tell the route (once), close the stream."""
        if not logged:
            self.log.info("s2s out {peer}: {reason}", peer=self.describe(), reason=reason)
        if not self.negotiated.called:
            self.negotiated.errback(FederationError(condition, reason, retry))
        self.close(error)

    def abort(self, reason):
        """The route gave up on this attempt (its deadline passed)."""
        if not self.negotiated.called:
            self.negotiated.errback(FederationError("remote-server-timeout", reason))
        self.close(StreamError("connection-timeout"))

    def close(self, error=None):
        if not self.negotiated.called:
            reason = f"stream closed ({error.condition})" if error is not None else "stream closed"
            self.negotiated.errback(FederationError("remote-server-not-found", reason, retry=True))
        super().close(error)

    def peer_failed(self, reason):
        if not self.negotiated.called:
            self.negotiated.errback(FederationError("remote-server-not-found", f"the peer sent {reason}",
                                                    retry=True))

    def connectionLost(self, reason=None):
        if not self.negotiated.called:
            self.negotiated.errback(FederationError("remote-server-not-found",
                                                    "connection lost during negotiation", retry=True))
        self._fail_verifies(FederationError("remote-connection-failed",
                                            f"connection to {self.remote} lost before it answered"))
        super().connectionLost(reason)

    def _authenticated(self, how):
        self.state = "authenticated"
        self.outbound.add((self.local, self.remote))
        if self.bidi:
            self.inbound.add((self.remote, self.local))
        self.log.info("s2s out {peer}: authenticated by {how}{bidi}", peer=self.describe(), how=how,
                      bidi=" (bidirectional)" if self.bidi else "")
        if not self.negotiated.called:
            self.negotiated.callback(self)

    # -- stream header and features ------------------------------------------------------------

    def header_received(self, attrs, default_ns):
        if default_ns != NS_SERVER:
            raise StreamError("invalid-namespace")
        self.stream_id = attrs.get("id")
        if self.secure and self.decision is None and not self._judge_peer():
            return
        version = attrs.get("version", "")
        if not (version.partition(".")[0].isdigit() and int(version.partition(".")[0]) >= 1):
            self._legacy_peer()

    def _legacy_peer(self):
        """A pre-RFC 3920 peer sends no features: dialback is all it has."""
        if not self.secure and not self._plaintext_allowed():
            return
        self._ready_for_dialback()
        self._start_dialback()

    def _plaintext_allowed(self):
        if self.config.require_encryption:
            self.fail("remote-server-not-found", f"{self.remote} offers no TLS and encryption is required",
                      retry=True, error=StreamError("policy-violation", "TLS is required"))
            return False
        return self.decision is not None or self._judge_peer()

    def _judge_peer(self):
        """Apply the remote-domain policy to what we know now; False (and failed) if refused."""
        candidate = self.candidate
        extra = (candidate.host,) if candidate.srv_secure and candidate.host != self.remote else ()
        certificate = self.certificate_for(self.remote, extra)
        facts = replace(candidate.facts, certificate_valid=certificate.valid,
                        certificate_name_ok=certificate.name_ok)
        if dane_applies(facts.tlsa):
            facts = replace(facts, dane=dane_verdict(facts.tlsa.records, list(certificate.chain_der)))
        decision = decide(self.manager.policy, self.remote, facts)
        if not decision.allowed:
            self.log.warn("s2s out {peer}: refusing {remote}: {reason}", peer=self.describe(),
                          remote=self.remote, reason=decision.reason)
            self.fail("remote-server-not-found", f"refused {self.remote}: {decision.reason}", retry=True,
                      error=StreamError("policy-violation", decision.reason), logged=True)
            return False
        self.decision = decision
        if certificate.presented and not certificate.valid:
            self.log.info("s2s out {peer}: certificate not valid ({problem}); policy allows going on",
                          peer=self.describe(), problem=certificate.problem(self.remote))
        return True

    def _features(self, features):
        if self._method == "external":
            self._authenticated("SASL EXTERNAL")      # the features after the SASL restart
            return
        offered = {(child.uri, child.name): child for child in features.elements()}
        if not self.secure:
            if (NS_TLS, "starttls") in offered and self.manager.tls is not None:
                self.send_raw(f"<starttls xmlns='{NS_TLS}'/>")
                return
            if not self._plaintext_allowed():
                return
        self._ready_for_dialback()
        if (NS_BIDI_FEATURE, "bidi") in offered and self.config.bidi:
            self.send_raw(f"<bidi xmlns='{NS_BIDI}'/>")
            self.bidi = True
        mechanisms = offered.get((NS_SASL, "mechanisms"))
        if self.secure and self.manager.tls is not None and self.manager.tls.has_certificate \
                and mechanisms is not None and "EXTERNAL" in _mechanism_names(mechanisms):
            self._method = "external"
            authzid = base64.b64encode(self.local.encode("utf-8")).decode("ascii")
            self.send_raw(f"<auth xmlns='{NS_SASL}' mechanism='EXTERNAL'>{authzid}</auth>")
            return
        self._start_dialback()

    def _start_dialback(self):
        if self.stream_id is None:
            self.fail("remote-server-not-found", "the peer's stream has no id: dialback impossible")
            return
        self._method = "dialback"
        key = dialback.generate_key(self.manager.secret, self.remote, self.local, self.stream_id)
        self.send_raw(dialback_xml("result", self.local, self.remote, key=key))

    def _ready_for_dialback(self):
        if not self.dialback_ready:
            self.dialback_ready = True
            self.manager.dialback_ready(self)

    # -- elements ------------------------------------------------------------------------------

    def nonza_received(self, element):
        uri, name = element.uri, element.name
        if uri == NS_STREAMS and name == "features":
            self._features(element)
        elif uri == NS_TLS and name == "proceed" and not self.secure:
            self._start_tls()
        elif uri == NS_TLS and name == "failure":
            self.fail("remote-server-not-found", "the peer refused STARTTLS", retry=True)
        elif uri == NS_SASL and name in ("success", "failure") and self._method == "external":
            self._sasl_outcome(element)
        elif uri == NS_DIALBACK and name == "result" and element.getAttribute("type") is not None:
            self._result_answer(element)
        elif uri == NS_DIALBACK and name == "verify" and element.getAttribute("type") is not None:
            self._verify_answer(element)
        elif uri == NS_DIALBACK and name == "verify" and self.bidi:
            self.answer_verify_request(element)
        elif uri == NS_DIALBACK and name == "result" and self.bidi:
            sender, target = self.dialback_pair(element)
            self.send_raw(dialback_xml("result", target, sender, "error", error="feature-not-implemented"))
        else:
            raise StreamError("unsupported-stanza-type")

    def _start_tls(self):
        self.transport.startTLS(ClientTLS(self.manager.tls.client_context, self.remote))
        self.secure = True
        self.log.info("s2s out {peer}: TLS started", peer=self.describe())
        self._restart()

    def _sasl_outcome(self, element):
        if element.name == "success":
            self._restart()     # the features of the new stream complete the authentication
            return
        self._method = None
        reasons = [child.name for child in element.elements()]
        self.log.info("s2s out {peer}: SASL EXTERNAL refused ({reason}); trying dialback",
                      peer=self.describe(), reason=", ".join(reasons) or "?")
        self._start_dialback()

    def _result_answer(self, element):
        sender, target = self.dialback_pair(element)
        if self._method != "dialback" or (sender, target) != (self.remote, self.local) or self.outbound:
            self.log.warn("s2s out {peer}: unsolicited dialback result for {sender} -> {target} refused",
                          peer=self.describe(), sender=sender, target=target)
            raise StreamError("invalid-from", "a dialback result for a request not made on this stream")
        outcome = element.getAttribute("type")
        if outcome == "valid":
            self._authenticated("dialback")
        elif outcome == "invalid":
            self.log.warn("s2s out {peer}: {remote} says our dialback key is invalid", peer=self.describe(),
                          remote=self.remote)
            self.fail("internal-server-error", f"{self.remote} refused our dialback key")
        else:
            condition = dialback.error_condition(element)
            self.fail("remote-server-timeout", f"{self.remote} answered dialback with error {condition}")

    # -- dialback verification for other streams (XEP-0220 §2.1.2) ---------------------------------

    def verify(self, stream_id, key):
        """Ask the peer (as Authoritative Server for ``remote``) whether ``key`` is one it
        issued for its stream ``stream_id`` to ``local``; Deferred[bool]."""
        d = defer.Deferred()
        self._verifies.setdefault(stream_id, []).append(d)
        self.send_raw(dialback_xml("verify", self.local, self.remote, id=stream_id, key=key))
        return d

    def _verify_answer(self, element):
        sender, target = self.dialback_pair(element)
        waiting = self._verifies.pop(element.getAttribute("id"), None) if (sender, target) == (
            self.remote, self.local) else None
        if not waiting:
            self.log.warn("s2s out {peer}: unsolicited dialback verify answer from {sender} dropped",
                          peer=self.describe(), sender=sender)
            return
        outcome = element.getAttribute("type")
        for d in waiting:
            if outcome in ("valid", "invalid"):
                d.callback(outcome == "valid")
            else:
                condition = dialback.error_condition(element)
                d.errback(FederationError("remote-server-not-found",
                                          f"{self.remote} could not verify: {condition}"))

    def _fail_verifies(self, error):
        waiting, self._verifies = self._verifies, {}
        for ds in waiting.values():
            for d in ds:
                d.errback(error)

    def idle_close_allowed(self):
        return not self._verifies


def _mechanism_names(mechanisms):
    return {str(child).strip() for child in mechanisms.elements() if child.name == "mechanism"}

