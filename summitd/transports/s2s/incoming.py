"""Incoming server-to-server streams: we are the Receiving (and Authoritative) Server.

Negotiation (RFC 6120 §4.3, §5, §6; RFC 7590): STARTTLS first (required unless
``[s2s] require_encryption = false``), asking the peer for its certificate; then

- SASL EXTERNAL (XEP-0178) when the certificate is valid for the header's 'from'
  by RFC 6125 (``certs``) and policy accepts it (``summitd.dns.policy.decide``);
- Server Dialback (XEP-0220) otherwise, when policy allows it for that domain,
  including over TLS with a certificate that does not authenticate the peer. A
  ``<db:result/>`` whose certificate does authenticate the sender is accepted at
  once; others are verified with the sender's Authoritative Server through an
  outgoing stream (``manager.verify_dialback``). Keys for domains we do not host get
  an ``item-not-found`` dialback error, never a stream error (XEP-0220 §2.4);
- bidirectional streams (XEP-0288): after ``<bidi/>``, the pairs the peer
  authenticated can carry our stanzas back (``manager.inbound_authenticated``).

As the Authoritative Server, ``<db:verify/>`` is answered from the key alone
(``dialback.key_is_valid``). An unauthenticated stream is cut after
``connect_timeout`` (``connection-timeout``); unsolicited dialback answers are
refused (the 2012 dialback attacks, XEP-0220 §3) and logged.
"""

import base64
import binascii
import secrets

from twisted.internet import protocol
from twisted.words.xish import domish

from summitd.core.errors import StreamError
from summitd.core.jid import InvalidJID
from summitd.core.xmlwriter import serialize
from summitd.dns.policy import SecurityFacts, decide
from summitd.transports.s2s import dialback
from summitd.transports.s2s.dialback import NS_DIALBACK, dialback_xml
from summitd.transports.s2s.stream import (
    NS_BIDI, NS_BIDI_FEATURE, NS_SASL, NS_SERVER, NS_TLS, FederationError, ServerStream, header_domain,
)


class IncomingStream(ServerStream):
    """A connection a peer server opened to us."""

    direction = "s2s in"

    def __init__(self, manager, direct_tls=False):
        super().__init__(manager)
        self.secure = direct_tls
        self.local = None           # the header's 'to': one of our domains
        self.claimed = None         # the header's 'from': the domain the peer says it is
        self.version_1 = False
        self._sasl_done = False
        self._restart_pending = None    # (remote, local) authenticated by SASL, until the restart
        self._pending = set()       # (remote, local) pairs whose dialback key is being verified
        self._deadline = None

    def connectionMade(self):
        super().connectionMade()
        self.manager.stream_opened(self)
        self.log.info("s2s in: connection from {peer}{tls}", peer=self.peer,
                      tls=" (direct TLS)" if self.secure else "")
        self._deadline = self.clock.callLater(self.config.connect_timeout, self._deadline_expired)

    def describe(self):
        return f"{self.claimed or '?'} ({self.peer})"

    def header_sender(self):
        return self.local or self.manager.default_domain()

    # -- stream header ---------------------------------------------------------------

    def header_received(self, attrs, default_ns):
        self.stream_id = secrets.token_urlsafe(16)
        try:
            local = header_domain(attrs.get("to"))
            claimed = header_domain(attrs.get("from"))
        except InvalidJID:
            raise StreamError("improper-addressing", "stream 'to' and 'from' must be domains") from None
        if local is None:
            local = self.local or self.manager.default_domain()
        if not self.manager.is_local(local) or (self.local and local != self.local):
            raise StreamError("host-unknown", f"{local} is not served here")
        self.local = local
        if claimed is not None and self.claimed is not None and claimed != self.claimed:
            raise StreamError("invalid-from", "the stream 'from' changed on restart")
        self.claimed = claimed or self.claimed
        self.send_header(local, self.claimed, self.stream_id)
        if default_ns != NS_SERVER:
            raise StreamError("invalid-namespace")
        if self.claimed is not None and self.manager.policy.is_blocked(self.claimed):
            raise StreamError("policy-violation", f"federation with {self.claimed} is not allowed")
        version = attrs.get("version", "")
        self.version_1 = version.partition(".")[0].isdigit() and int(version.partition(".")[0]) >= 1
        if self.version_1:
            self._send_features()
        if self._restart_pending is not None:
            pair, self._restart_pending = self._restart_pending, None
            self._authenticated(*pair)

    def _send_features(self):
        features = []
        tls_possible = not self.secure and self.manager.tls is not None
        if tls_possible:
            starttls = domish.Element((NS_TLS, "starttls"))
            if self.config.require_encryption:
                starttls.addElement("required")
            features.append(starttls)
        if not self._sasl_done and (self.secure or not self.config.require_encryption):
            if self._external_possible():
                mechanisms = domish.Element((NS_SASL, "mechanisms"))
                mechanisms.addElement("mechanism", content="EXTERNAL")
                features.append(mechanisms)
            if self.claimed is None or self.manager.policy.for_domain(self.claimed).allow_dialback:
                features.append(dialback.feature())
        if self.config.bidi and not self._sasl_done and not self.bidi:
            features.append(domish.Element((NS_BIDI_FEATURE, "bidi")))
        body = "".join(serialize(f, NS_SERVER) for f in features)
        self.send_raw(f"<stream:features>{body}</stream:features>")

    def _decision(self, domain):
        certificate = self.certificate_for(domain)
        facts = SecurityFacts(certificate_valid=certificate.valid, certificate_name_ok=certificate.name_ok)
        return decide(self.manager.policy, domain, facts), certificate

    def _external_possible(self):
        if not self.secure or self.claimed is None:
            return False
        decision, _ = self._decision(self.claimed)
        return decision.allowed and decision.authentication in ("certificate", "dane")

    # -- elements ------------------------------------------------------------------------

    def nonza_received(self, element):
        uri, name = element.uri, element.name
        if uri == NS_DIALBACK and name in ("result", "verify"):
            if element.getAttribute("type") is not None:
                self.log.warn("s2s in {peer}: unsolicited dialback {name} answer refused",
                              peer=self.describe(), name=name)
                raise StreamError("not-authorized", "unsolicited dialback answer")
            if name == "result":
                self._dialback_request(element)
            else:
                self.answer_verify_request(element)
        elif uri == NS_TLS and name == "starttls":
            self._starttls()
        elif uri == NS_SASL:
            self._sasl(element)
        elif uri == NS_BIDI and name == "bidi":
            self._enable_bidi()
        else:
            raise StreamError("unsupported-stanza-type")

    def _starttls(self):
        if self.secure or self.manager.tls is None:
            raise StreamError("policy-violation", "TLS is not available on this stream")
        self.send_raw(f"<proceed xmlns='{NS_TLS}'/>")
        self.transport.startTLS(self.manager.tls.server_options)
        self.secure = True
        self._new_parser()
        self.log.info("s2s in {peer}: TLS started", peer=self.describe())

    def _enable_bidi(self):
        if not self.config.bidi:
            raise StreamError("unsupported-stanza-type", "bidirectional streams are not offered")
        if self.config.require_encryption and not self.secure:
            raise StreamError("policy-violation", "STARTTLS before bidi (XEP-0288 §2.1)")
        self.bidi = True

    # -- SASL EXTERNAL (XEP-0178) --------------------------------------------------------------

    def _sasl(self, element):
        if element.name != "auth" or self._sasl_done:
            raise StreamError("policy-violation", "unexpected SASL element")
        if element.getAttribute("mechanism") != "EXTERNAL" or not self._external_possible():
            self._sasl_failure("invalid-mechanism")
            return
        text = str(element).strip()
        try:
            authzid = "" if text in ("", "=") else base64.b64decode(text, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            self._sasl_failure("incorrect-encoding")
            return
        try:
            authzid = header_domain(authzid) if authzid else self.claimed
        except InvalidJID:
            authzid = None
        if authzid != self.claimed:
            self._sasl_failure("invalid-authzid")
            return
        self._sasl_done = True
        self.send_raw(f"<success xmlns='{NS_SASL}'/>")
        self.log.info("s2s in {peer}: authenticated {domain} -> {local} by certificate (SASL EXTERNAL)",
                      peer=self.describe(), domain=self.claimed, local=self.local)
        # Our stanzas may use the stream (bidi) only once the peer restarted it (RFC 6120 §6.4.6).
        self._restart_pending = (self.claimed, self.local)
        self._new_parser()

    def _sasl_failure(self, condition):
        self.log.info("s2s in {peer}: SASL EXTERNAL refused: {condition}", peer=self.describe(),
                      condition=condition)
        self.send_raw(f"<failure xmlns='{NS_SASL}'><{condition}/></failure>")

    # -- dialback: Receiving Server (XEP-0220 §2.2.1) -----------------------------------------

    def _dialback_request(self, element):
        sender, target = self.dialback_pair(element)
        key = dialback.element_text(element)
        refusal = self._dialback_refusal(sender, target, key)
        if refusal is not None:
            condition, reason = refusal
            self.log.info("s2s in {peer}: dialback {sender} -> {target} refused: {reason}",
                          peer=self.describe(), sender=sender, target=target, reason=reason)
            self.send_raw(dialback_xml("result", target, sender, "error", error=condition))
            return
        pair = (sender, target)
        if pair in self.inbound:
            self.send_raw(dialback_xml("result", target, sender, "valid"))
            return
        if pair in self._pending:
            return      # the first request's answer will come
        decision, certificate = self._decision(sender)
        if decision.authentication in ("certificate", "dane"):
            self.log.info("s2s in {peer}: dialback {sender} -> {target} accepted on the certificate",
                          peer=self.describe(), sender=sender, target=target)
            self._dialback_answer(True, sender, target)
            return
        if certificate.presented:
            self.log.info("s2s in {peer}: certificate of {sender} not valid ({problem}); verifying by dialback",
                          peer=self.describe(), sender=sender, problem=certificate.problem(sender))
        self._pending.add(pair)
        d = self.manager.verify_dialback(target, sender, self.stream_id, key)
        d.addCallbacks(self._dialback_answer, self._dialback_failed,
                       callbackArgs=(sender, target), errbackArgs=(sender, target))

    def _dialback_refusal(self, sender, target, key):
        """(condition, reason) when a dialback request cannot even be tried, else None."""
        if not self.manager.is_local(target):
            return "item-not-found", f"{target} is not served here"
        if not key:
            return "bad-request", "no dialback key"
        if self.manager.policy.is_blocked(sender):
            return "policy-violation", f"federation with {sender} is not allowed"
        if self.config.require_encryption and not self.secure:
            return "policy-violation", "dialback requires TLS here"
        decision, _ = self._decision(sender)
        if not decision.allowed:
            return "not-authorized", decision.reason
        return None

    def _dialback_answer(self, valid, sender, target):
        self._pending.discard((sender, target))
        if not self.usable:
            return
        if valid:
            self.send_raw(dialback_xml("result", target, sender, "valid"))
            self.log.info("s2s in {peer}: authenticated {sender} -> {target} by dialback",
                          peer=self.describe(), sender=sender, target=target)
            self._authenticated(sender, target)
            return
        self.log.warn("s2s in {peer}: dialback key for {sender} -> {target} is invalid (spoofing attempt "
                      "or misconfiguration)", peer=self.describe(), sender=sender, target=target)
        if self.inbound:
            # Other pairs on this stream are fine: refuse this one without closing (XEP-0220 §2.4).
            self.send_raw(dialback_xml("result", target, sender, "error", error="forbidden"))
            return
        self.send_raw(dialback_xml("result", target, sender, "invalid"))
        self.close()

    def _dialback_failed(self, failure, sender, target):
        self._pending.discard((sender, target))
        if failure.check(FederationError):
            condition, reason = failure.value.condition, failure.value.reason
        else:
            self.log.failure("s2s in: dialback verification failed", failure)
            condition, reason = "internal-server-error", "verification failed"
        self.log.info("s2s in {peer}: could not verify {sender} -> {target}: {reason}",
                      peer=self.describe(), sender=sender, target=target, reason=reason)
        if self.usable:
            self.send_raw(dialback_xml("result", target, sender, "error", error=condition))

    def _authenticated(self, sender, target):
        self.inbound.add((sender, target))
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        self.state = "authenticated"
        self.manager.inbound_authenticated(self, sender, target)

    # -- timers ----------------------------------------------------------------------------

    def _deadline_expired(self):
        self._deadline = None
        if not self.inbound and self.state != "closed":
            self.log.info("s2s in {peer}: not authenticated within {seconds} s", peer=self.describe(),
                          seconds=int(self.config.connect_timeout))
            self.close(StreamError("connection-timeout"))

    def _cancel_timers(self):
        super()._cancel_timers()
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None


class IncomingFactory(protocol.Factory):
    """Makes IncomingStreams for a listening endpoint (STARTTLS, or direct TLS behind a
    TLS wrapper)."""

    def __init__(self, manager, direct_tls=False):
        self.manager = manager
        self.direct_tls = direct_tls

    def buildProtocol(self, addr):
        stream = IncomingStream(self.manager, self.direct_tls)
        stream.factory = self
        return stream
