"""Fetch the certificate chain an XMPP server presents, for ``summitctl check dns``.

Direct TLS targets (XEP-0368) get a TLS handshake at once, with SNI set to the XMPP
domain and ALPN ``xmpp-server``; STARTTLS targets first get a ``jabber:server``
stream header and ``<starttls/>`` (RFC 6120 §5.4). Nothing is verified here: the
chain is only compared with TLSA records by the caller. The whole probe is bounded
by ``timeout`` and the connection is closed as soon as the handshake is done.
"""

import re
from xml.sax.saxutils import quoteattr

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet import defer, interfaces, protocol
from zope.interface import implementer

from summitd.dns.transport import ExchangeError, connect_and_wait

NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
_FEATURES_END = re.compile(rb"</(?:[\w.-]+:)?features\s*>")
_PROCEED = re.compile(rb"<(?:[\w.-]+:)?proceed\b")
_FAILURE = re.compile(rb"<(?:[\w.-]+:)?(?:failure|error)\b")


@implementer(interfaces.IOpenSSLClientConnectionCreator)
class _UnverifiedClient:
    """TLS client options that accept any certificate: we only want to see it."""

    def __init__(self, domain, alpn):
        self.domain = domain
        self.alpn = alpn

    def clientConnectionForTLS(self, tls_protocol):
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_verify(SSL.VERIFY_NONE, lambda *args: True)
        if self.alpn:
            context.set_alpn_protos([self.alpn])
        connection = SSL.Connection(context, None)
        connection.set_tlsext_host_name(self.domain.encode("idna"))
        connection.set_connect_state()
        return connection


@implementer(interfaces.IHandshakeListener)
class _CertificateProbe(protocol.Protocol):
    def __init__(self, domain, direct_tls):
        self.domain = domain
        self.direct_tls = direct_tls
        self.buffer = b""
        self.stage = "tls" if direct_tls else "features"
        self.chain = None
        self.done = defer.Deferred()

    def connectionMade(self):
        if self.direct_tls:
            self._start_tls()
        else:
            self.transport.write(
                f"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
                f"xmlns:stream='http://etherx.jabber.org/streams' to={quoteattr(self.domain)} "
                f"version='1.0'>".encode())

    def _start_tls(self):
        self.stage = "tls"
        alpn = b"xmpp-server" if self.direct_tls else None
        self.transport.startTLS(_UnverifiedClient(self.domain, alpn))

    def dataReceived(self, data):
        if self.stage == "tls":
            return
        self.buffer += data
        if _FAILURE.search(self.buffer) or len(self.buffer) > 65536:
            self.transport.abortConnection()
        elif self.stage == "features" and _FEATURES_END.search(self.buffer):
            self.stage, self.buffer = "proceed", b""
            self.transport.write(f"<starttls xmlns='{NS_TLS}'/>".encode())
        elif self.stage == "proceed" and _PROCEED.search(self.buffer):
            self._start_tls()

    def handshakeCompleted(self):
        chain = self.transport.getHandle().get_peer_cert_chain() or []
        self.chain = [cert.to_cryptography().public_bytes(Encoding.DER) for cert in chain]
        self.transport.loseConnection()

    def connectionLost(self, reason):
        if self.chain:
            self.done.callback(self.chain)
        else:
            self.done.errback(ExchangeError(f"no certificate: {reason.getErrorMessage()}"))


def fetch_certificate_chain(reactor, address, port, direct_tls, domain, timeout=10.0):
    """Deferred[list[bytes]]: the DER certificates ``address:port`` presents for ``domain``."""
    probe = _CertificateProbe(domain, direct_tls)
    return connect_and_wait(reactor, address, port, probe, timeout).addTimeout(timeout, reactor)
