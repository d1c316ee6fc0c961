"""Stand-ins for remote XMPP servers on 127.0.0.1 that only present a certificate: over
direct TLS (XEP-0368), or after a minimal ``jabber:server`` STARTTLS exchange."""

from OpenSSL import crypto
from twisted.internet import protocol, ssl

from summitd.test.dns_fixtures.server import Listener, Tracked

_HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
           b"xmlns:stream='http://etherx.jabber.org/streams' from='check.test' id='x' version='1.0'>"
           b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>")


class _StartTLSPeer(Tracked):
    def __init__(self, listener):
        super().__init__(listener)
        self.buffer = b""

    def dataReceived(self, data):
        if self.transport.TLS:
            return
        self.buffer += data
        if b"<stream:stream" in self.buffer:
            self.buffer = self.buffer.split(b"<stream:stream", 1)[1].partition(b">")[2]
            self.transport.write(_HEADER)
        if b"<starttls" in self.buffer:
            self.buffer = b""
            self.transport.write(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            self.transport.startTLS(self.listener.options)


class TLSPeer(Listener):
    """Presents ``cert`` (signed by ``key``); ``start()`` returns the port."""

    def __init__(self, reactor, cert, key, direct_tls):
        super().__init__()
        self.reactor = reactor
        self.direct_tls = direct_tls
        self.options = ssl.CertificateOptions(
            privateKey=crypto.PKey.from_cryptography_key(key), certificate=crypto.X509.from_cryptography(cert),
            acceptableProtocols=[b"xmpp-server"])

    def start(self):
        if self.direct_tls:
            factory = protocol.Factory.forProtocol(lambda: Tracked(self))
            port = self.reactor.listenSSL(0, factory, self.options, interface="127.0.0.1")
        else:
            factory = protocol.Factory.forProtocol(lambda: _StartTLSPeer(self))
            port = self.reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.listening = [port]
        return port.getHost().port
