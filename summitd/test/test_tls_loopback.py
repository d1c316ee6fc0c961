"""TLS for real: a summitd service on a loopback port, a pyOpenSSL client in a thread.

Covers what in-memory transports cannot: STARTTLS and direct TLS handshakes (TLS 1.3
and 1.2, nothing older), SCRAM-SHA-256-PLUS with both channel-binding types computed
independently on the client side, and PLAIN over TLS.
"""

import base64
import hashlib
import re
import socket

from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from twisted.internet import defer, threads
from twisted.trial import unittest

from summitd.testing.loopback import start_loopback_service
from summitd.testing.scram_client import ScramClient

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


class _Wire:
    """A blocking client connection that reads until a marker appears."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.settimeout(None)     # pyOpenSSL wants a blocking socket; the test has a timeout
        self.conn = None
        self.buffer = b""

    def request_starttls(self):
        """Open the stream and ask for STARTTLS; the TLS handshake is the caller's."""
        self.send(HEADER)
        self.read_until(b"</stream:features>")
        self.send(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        self.read_until(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")

    def start_tls(self, max_version=None, alpn=None):
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        if max_version is not None:
            context.set_max_proto_version(max_version)
        if alpn:
            context.set_alpn_protos(alpn)
        self.conn = SSL.Connection(context, self.sock)
        self.conn.set_tlsext_host_name(b"localhost")
        self.conn.set_connect_state()
        self.conn.do_handshake()

    def send(self, data):
        (self.conn or self.sock).sendall(data if isinstance(data, bytes) else data.encode())

    def read_until(self, marker):
        while marker not in self.buffer:
            chunk = (self.conn or self.sock).recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before {marker!r}; got {self.buffer!r}")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head + marker

    def close(self):
        self.sock.close()


def _sasl_text(element_xml):
    return base64.b64decode(re.search(rb">([^<]*)</", element_xml).group(1))


def scram_plus_login(port, cb_type, direct_tls=False):
    """Log in with SCRAM-SHA-256-PLUS; returns (tls version, features, success data ok)."""
    wire = _Wire(port)
    try:
        if not direct_tls:
            wire.request_starttls()
        wire.start_tls(alpn=[b"xmpp-client"] if direct_tls else None)
        wire.send(HEADER)
        features = wire.read_until(b"</stream:features>")
        if cb_type == "tls-exporter":
            cb_data = wire.conn.export_keying_material(b"EXPORTER-Channel-Binding", 32)
        else:
            der = wire.conn.get_peer_certificate().to_cryptography().public_bytes(Encoding.DER)
            cb_data = hashlib.sha256(der).digest()
        scram = ScramClient("alice", "secret", "sha256", cb_type=cb_type, cb_data=cb_data)
        wire.send(f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-256-PLUS'>"
                  f"{base64.b64encode(scram.first()).decode()}</auth>")
        challenge = wire.read_until(b"</challenge>")
        final = scram.final(_sasl_text(challenge))
        wire.send(f"<response xmlns='{NS_SASL}'>{base64.b64encode(final).decode()}</response>")
        success = wire.read_until(b"</success>")
        verified = scram.verify(_sasl_text(success))
        return wire.conn.get_protocol_version_name(), features, verified, wire.conn.get_alpn_proto_negotiated()
    finally:
        wire.close()


def plain_login(port, password, max_version=None):
    wire = _Wire(port)
    try:
        wire.request_starttls()
        wire.start_tls(max_version)
        wire.send(HEADER)
        features = wire.read_until(b"</stream:features>")
        token = base64.b64encode(f"\0alice\0{password}".encode()).decode()
        wire.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        answer = wire.read_until(b">")
        if b"<failure" in answer:
            answer += wire.read_until(b"</failure>")
        else:
            answer += wire.read_until(b"</success>") if b"/>" not in answer else b""
        return wire.conn.get_protocol_version_name(), features, answer
    finally:
        wire.close()


def old_tls_handshake(port):
    """Try TLS 1.1 at most; returns the error text (the server must refuse)."""
    wire = _Wire(port)
    try:
        wire.request_starttls()
        try:
            context = SSL.Context(SSL.TLS_CLIENT_METHOD)
            context.set_min_proto_version(0)
            context.set_max_proto_version(SSL.TLS1_1_VERSION)
            context.set_cipher_list(b"ALL:@SECLEVEL=0")
            conn = SSL.Connection(context, wire.sock)
            conn.set_connect_state()
            conn.do_handshake()
        except (SSL.Error, OSError) as e:
            return repr(e)
        return None
    finally:
        wire.close()


class TLSLoopbackTests(unittest.TestCase):
    timeout = 60
    @defer.inlineCallbacks
    def setUp(self):
        self.service, ports = yield start_loopback_service(self, {"alice@localhost": "secret"})
        self.starttls_port, self.direct_port = ports["starttls"], ports["direct_tls"]

    @defer.inlineCallbacks
    def test_scram_plus_tls_exporter(self):
        """SCRAM-SHA-256-PLUS with tls-exporter over STARTTLS on TLS 1.3 succeeds, and the
        server proves itself; XEP-0440 lists both channel-binding types."""
        version, features, verified, _ = yield threads.deferToThread(
            scram_plus_login, self.starttls_port, "tls-exporter")
        self.assertEqual(version, "TLSv1.3")
        self.assertIn(b"<mechanism>SCRAM-SHA-256-PLUS</mechanism>", features)
        self.assertIn(b"<channel-binding type='tls-exporter'/>", features)
        self.assertIn(b"<channel-binding type='tls-server-end-point'/>", features)
        self.assertTrue(verified)

    @defer.inlineCallbacks
    def test_scram_plus_server_end_point_direct_tls(self):
        """Direct TLS (XEP-0368) negotiates ALPN xmpp-client; tls-server-end-point binding works."""
        version, _, verified, alpn = yield threads.deferToThread(
            scram_plus_login, self.direct_port, "tls-server-end-point", True)
        self.assertEqual(alpn, b"xmpp-client")
        self.assertTrue(verified)

    @defer.inlineCallbacks
    def test_plain_over_tls12(self):
        """PLAIN works over TLS 1.2, which offers no tls-exporter; a wrong password fails."""
        version, features, answer = yield threads.deferToThread(
            plain_login, self.starttls_port, "secret", SSL.TLS1_2_VERSION)
        self.assertEqual(version, "TLSv1.2")
        self.assertIn(b"<mechanism>PLAIN</mechanism>", features)
        self.assertNotIn(b"tls-exporter", features)
        self.assertIn(b"<success", answer)
        _, _, answer = yield threads.deferToThread(plain_login, self.starttls_port, "wrong")
        self.assertIn(b"<not-authorized/>", answer)

    @defer.inlineCallbacks
    def test_old_tls_refused(self):
        """A client limited to TLS 1.1 cannot complete a handshake."""
        error = yield threads.deferToThread(old_tls_handshake, self.starttls_port)
        self.assertIsNotNone(error)

    @defer.inlineCallbacks
    def test_plaintext_auth_refused(self):
        """With require_encryption, SASL before STARTTLS is a policy-violation stream error."""
        def attempt(port):
            wire = _Wire(port)
            try:
                wire.send(HEADER)
                features = wire.read_until(b"</stream:features>")
                wire.send(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>")
                return features, wire.read_until(b"</stream:stream>")
            finally:
                wire.close()
        features, answer = yield threads.deferToThread(attempt, self.starttls_port)
        self.assertIn(b"<required/>", features)
        self.assertNotIn(b"mechanism", features)
        self.assertIn(b"<policy-violation", answer)
