"""Test helpers for federation: a test CA, in-memory connections between servers, raw peers.

``TestCA`` issues certificates (DNS-ID, SRV-ID, XmppAddr) with ``cryptography`` and
writes PEM files for trust stores and for real servers (summitd, Prosody).
``Network`` joins protocols through ``Wire`` transports (StringTransport with a
pretend STARTTLS that shows each side the other's certificate chain, so the real
certificate checks run without a TLS handshake); ``federate`` makes the "s2s"
extensions of several ``make_server`` servers connect to each other through it.
``RawPeer`` drives one stream by hand for protocol-violation tests.
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.internet import defer, error
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import alsoProvides

from summitd.core.xmlstream import StreamParser
from summitd.testing import make_server
from summitd.testing.matching import mismatch, parse_xml
from summitd.transports.s2s.certs import OID_XMPP_ADDR, TLSSetup, TrustStore, encode_utf8_string
from summitd.transports.s2s.incoming import IncomingStream

ID_ON_DNS_SRV = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.7")
PEER_HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' "
               "xmlns:stream='http://etherx.jabber.org/streams' from='{sender}' to='{target}' version='1.0'>")


def _ia5(text):
    data = text.encode("ascii")
    return bytes([0x16, len(data)]) + data


class TestCA:
    """A certificate authority for tests; ``issue`` makes leaf certificates."""

    def __init__(self, name="summitd test CA"):
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256()))

    def issue(self, dns=(), srv=(), xmpp=(), days=30, expired=False):
        """A (certificate, key) naming the given DNS-IDs, SRV-IDs (``_xmpp-server.x``) and XmppAddrs."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = (now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)) if expired \
            else (now - datetime.timedelta(days=1), now + datetime.timedelta(days=days))
        names = [x509.DNSName(d) for d in dns]
        names += [x509.OtherName(ID_ON_DNS_SRV, _ia5(s)) for s in srv]
        names += [x509.OtherName(OID_XMPP_ADDR, encode_utf8_string(a)) for a in xmpp]
        common = (list(dns) + list(xmpp) + ["leaf"])[0]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256()))
        return cert, key

    def write_ca(self, path):
        with open(path, "wb") as f:
            f.write(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    @staticmethod
    def write_pair(cert, key, cert_path, key_path):
        """PEM files for a server: the certificate, and its unencrypted key (mode 0600)."""
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()))


def self_signed(domain):
    """A self-signed certificate for ``domain``, as summitd generates when none is configured."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .sign(key, hashes.SHA256()))


# -- in-memory connections ---------------------------------------------------------------------


class FakeTLSConnection:
    """What ``certs.peer_chain`` reads from a TLS transport."""

    def __init__(self, chain):
        self.chain = list(chain or [])

    def get_peer_certificate(self, as_cryptography=False):
        return self.chain[0] if self.chain else None

    def get_peer_cert_chain(self, as_cryptography=False):
        return list(self.chain) or None


class Wire(StringTransport):
    """One end of an in-memory connection; ``startTLS`` makes it look like TLS showing
    ``presented`` (the other side's chain)."""

    def __init__(self, host, peer, presented=None, tls=False):
        super().__init__(hostAddress=IPv4Address("TCP", host, 5269), peerAddress=IPv4Address("TCP", peer, 40000))
        self.presented = presented
        self.tls_contexts = []
        self.lost = False
        if tls:
            alsoProvides(self, ISSLTransport)

    def startTLS(self, context, normal=True):
        self.tls_contexts.append(context)
        alsoProvides(self, ISSLTransport)

    def getHandle(self):
        return FakeTLSConnection(self.presented)

    def abortConnection(self):
        self.loseConnection()


class Pipe:
    """Two protocols joined by two Wires."""

    def __init__(self, client, server, client_chain=None, server_chain=None, direct_tls=False,
                 client_address="127.0.0.1", server_address="127.0.0.2"):
        self.client, self.server = client, server
        self.client_wire = Wire(client_address, server_address, server_chain, direct_tls)
        self.server_wire = Wire(server_address, client_address, client_chain, direct_tls)
        self.closed = False
        client.makeConnection(self.client_wire)
        server.makeConnection(self.server_wire)

    def pump_once(self):
        moved = False
        for wire, receiver in ((self.client_wire, self.server), (self.server_wire, self.client)):
            data = wire.value()
            if data:
                wire.clear()
                moved = True
                if not self.closed:
                    receiver.dataReceived(data)
        if not self.closed and (self.client_wire.disconnecting or self.server_wire.disconnecting) and not (
                self.client_wire.value() or self.server_wire.value()):
            self.closed = True
            for proto in (self.client, self.server):
                proto.connectionLost(Failure(error.ConnectionDone()))
            moved = True
        return moved


class Network:
    """Every in-memory connection of a test; ``pump()`` moves bytes until all is quiet."""

    def __init__(self):
        self.pipes = []

    def connect(self, client, server, **options):
        pipe = Pipe(client, server, **options)
        self.pipes.append(pipe)
        return pipe

    def pump(self, limit=1000):
        for _ in range(limit):
            if not any([pipe.pump_once() for pipe in list(self.pipes)]):
                return
        raise AssertionError("the in-memory network never went quiet")


FAKE_TLS = TLSSetup(server_options="server-options", direct_options="direct-options",
                    client_context="client-context", has_certificate=True)


def s2s_server(domain, network, *, options=None, extensions=(), chain=None, ca_path=None, tls=True,
               secret=None):
    """A make_server with the "s2s" extension whose outgoing connections go through ``network``;
    ``chain`` is the certificate chain it presents (list of cryptography certificates)."""
    s2s_options = {"endpoints": [], **(options or {})}
    if ca_path is not None:
        s2s_options["ca_bundle"] = str(ca_path)
    server = make_server(extensions=["s2s", *extensions], domains=(domain,),
                         extension_options={"s2s": s2s_options})
    manager = federation(server).manager
    manager.tls = FAKE_TLS if tls else None
    manager.secret = secret or f"secret of {domain}".encode()
    manager.connector.tls = manager.tls
    server.s2s_chain = list(chain or [])
    server.s2s_network = network
    return server


def federation(server):
    return server.extensions.loaded["s2s"][0]


def federate(servers_by_address, network):
    """Make each server's outgoing connections to an address in ``servers_by_address`` land on
    that server's IncomingStream, through ``network``. Returns the list of connections made."""
    made = []
    for server in servers_by_address.values():
        connector = federation(server).manager.connector

        def connect(candidate, domain, stream, server=server):
            target = servers_by_address.get(candidate.address)
            if target is None:
                return defer.fail(error.ConnectionRefusedError(candidate.address))
            incoming = IncomingStream(federation(target).manager, candidate.direct_tls)
            made.append(network.connect(stream, incoming, client_chain=server.s2s_chain,
                                        server_chain=target.s2s_chain, direct_tls=candidate.direct_tls,
                                        server_address=candidate.address))
            return defer.succeed(stream)

        connector.connect = connect
    return made


def trust_store(ca, directory):
    return TrustStore(ca.write_ca(os.path.join(directory, "ca.pem")))


class RawPeer:
    """A hand-driven peer server on one stream: ``send`` XML, ``expect`` what comes back."""

    def __init__(self, stream, chain=None, tls=False, address="192.0.2.7"):
        self.stream = stream
        self.wire = Wire("127.0.0.1", address, chain, tls)
        self.inbox = []
        self.header = None
        self.ended = False
        self._parser = StreamParser(self, max_stanza_size=10 ** 8, max_header_size=10 ** 6)
        stream.makeConnection(self.wire)

    def stream_started(self, attrs, default_ns):
        self.header = attrs

    def element_received(self, element):
        self.inbox.append(element)

    def stream_ended(self):
        self.ended = True

    def send(self, text):
        self.stream.dataReceived(text.encode("utf-8"))
        self._pump()

    def restart(self):
        """A new stream after TLS or SASL: the peer's parser starts over too."""
        self._pump()
        self._parser = StreamParser(self, max_stanza_size=10 ** 8, max_header_size=10 ** 6)

    def open(self, sender, target):
        self.send(PEER_HEADER.format(sender=sender, target=target))

    def _pump(self):
        data = self.wire.value()
        self.wire.clear()
        if data:
            self._parser.feed(data)

    def expect(self, pattern):
        self._pump()
        if not self.inbox:
            raise AssertionError(f"nothing received; expected {pattern}")
        element = self.inbox.pop(0)
        problem = mismatch(element, parse_xml(pattern, "jabber:server"))
        if problem is not None:
            raise AssertionError(f"{problem}\n  received: {element.toXml()}")
        return element

    def expect_stream_error(self, condition):
        element = self.expect("<error xmlns='http://etherx.jabber.org/streams'/>")
        names = [c.name for c in element.elements()]
        if condition not in names:
            raise AssertionError(f"expected stream error {condition}, got {names}")
        if not self.wire.disconnecting:
            raise AssertionError("the stream was not closed after the stream error")
        return element

    def expect_nothing(self):
        self._pump()
        if self.inbox:
            raise AssertionError(f"unexpected: {self.inbox[0].toXml()}")
