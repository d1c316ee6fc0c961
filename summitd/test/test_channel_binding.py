"""Tests for summitd.sasl.channel_binding over real in-memory TLS handshakes."""

import datetime
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.trial import unittest

from summitd.sasl.channel_binding import (
    available_channel_bindings, end_point_hash, tls_exporter, tls_server_end_point,
)
from summitd.sasl.mechanism import Success
from summitd.sasl.scram import ScramMechanism
from summitd.test.test_sasl_scram import ScramClient, make_context


def self_signed(key, algorithm):
    """A one-day self-signed certificate for example.org."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.org")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, algorithm))


def handshake(cert, key, version):
    """Connect a client and a server Connection through memory BIOs; return both."""
    server_context = SSL.Context(SSL.TLS_METHOD)
    server_context.use_certificate(cert)
    server_context.use_privatekey(key)
    server_context.set_min_proto_version(version)
    server_context.set_max_proto_version(version)
    client_context = SSL.Context(SSL.TLS_METHOD)
    client_context.set_verify(SSL.VERIFY_NONE)

    server = SSL.Connection(server_context, None)
    server.set_accept_state()
    client = SSL.Connection(client_context, None)
    client.set_connect_state()

    done = set()
    for _ in range(20):
        for conn in (client, server):
            try:
                conn.do_handshake()
                done.add(conn)
            except SSL.WantReadError:
                pass
        moved = _pump(client, server) + _pump(server, client)
        if len(done) == 2 and not moved:
            return client, server
    raise AssertionError("TLS handshake did not complete")


def _pump(source, destination):
    """Move pending TLS bytes from one side to the other; return how many."""
    try:
        data = source.bio_read(65536)
    except SSL.WantReadError:
        return 0
    destination.bio_write(data)
    return len(data)


class ChannelBindingTests(unittest.TestCase):
    """Channel-binding data from pyOpenSSL connections."""

    def setUp(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = self_signed(self.key, hashes.SHA256())

    def test_tls13_exporter_matches(self):
        """On TLS 1.3 both ends export the same 32-byte tls-exporter value."""
        client, server = handshake(self.cert, self.key, SSL.TLS1_3_VERSION)
        self.assertEqual(server.get_protocol_version_name(), "TLSv1.3")
        self.assertEqual(len(tls_exporter(server)), 32)
        self.assertEqual(tls_exporter(server), tls_exporter(client))
        self.assertEqual(tls_exporter(server),
                         client.export_keying_material(b"EXPORTER-Channel-Binding", 32))

    def test_exporter_unique_per_connection(self):
        """Two connections get different tls-exporter values."""
        first = tls_exporter(handshake(self.cert, self.key, SSL.TLS1_3_VERSION)[1])
        second = tls_exporter(handshake(self.cert, self.key, SSL.TLS1_3_VERSION)[1])
        self.assertNotEqual(first, second)

    def test_server_end_point(self):
        """tls-server-end-point is SHA-256 of the DER certificate, as the client sees it."""
        client, server = handshake(self.cert, self.key, SSL.TLS1_3_VERSION)
        der = self.cert.public_bytes(Encoding.DER)
        self.assertEqual(tls_server_end_point(server), hashlib.sha256(der).digest())
        peer = client.get_peer_certificate(as_cryptography=True)
        self.assertEqual(hashlib.sha256(peer.public_bytes(Encoding.DER)).digest(),
                         tls_server_end_point(server))

    def test_server_end_point_sha384(self):
        """A certificate signed with SHA-384 is hashed with SHA-384 (RFC 5929 §4.1)."""
        key = ec.generate_private_key(ec.SECP384R1())
        cert = self_signed(key, hashes.SHA384())
        client, server = handshake(cert, key, SSL.TLS1_3_VERSION)
        self.assertEqual(tls_server_end_point(server),
                         hashlib.sha384(cert.public_bytes(Encoding.DER)).digest())

    def test_tls13_offers_both(self):
        """TLS 1.3 offers tls-exporter and tls-server-end-point."""
        client, server = handshake(self.cert, self.key, SSL.TLS1_3_VERSION)
        bindings = available_channel_bindings(server)
        self.assertEqual(set(bindings), {"tls-exporter", "tls-server-end-point"})
        self.assertEqual(bindings["tls-exporter"](), tls_exporter(client))
        self.assertEqual(bindings["tls-server-end-point"](), tls_server_end_point(server))

    def test_tls12_offers_only_end_point(self):
        """TLS 1.2 offers only tls-server-end-point; tls_exporter refuses."""
        client, server = handshake(self.cert, self.key, SSL.TLS1_2_VERSION)
        self.assertEqual(server.get_protocol_version_name(), "TLSv1.2")
        self.assertEqual(set(available_channel_bindings(server)), {"tls-server-end-point"})
        self.assertRaises(ValueError, tls_exporter, server)

    def test_ed25519_certificate(self):
        """With an Ed25519 certificate tls-server-end-point is undefined, so not offered."""
        key = ed25519.Ed25519PrivateKey.generate()
        client, server = handshake(self_signed(key, None), key, SSL.TLS1_3_VERSION)
        self.assertEqual(set(available_channel_bindings(server)), {"tls-exporter"})
        self.assertRaises(ValueError, tls_server_end_point, server)

    def test_end_point_hash_upgrade(self):
        """MD5 and SHA-1 signatures give SHA-256; other hashes are kept."""
        class FakeCertificate:
            def __init__(self, algorithm):
                self.signature_hash_algorithm = algorithm

        for weak in (hashes.MD5(), hashes.SHA1()):
            self.assertIsInstance(end_point_hash(FakeCertificate(weak)), hashes.SHA256)
        self.assertIsInstance(end_point_hash(FakeCertificate(hashes.SHA512())), hashes.SHA512)
        self.assertRaises(ValueError, end_point_hash, FakeCertificate(None))

    def test_scram_plus_over_tls(self):
        """SCRAM-SHA-256-PLUS succeeds when the client binds to the same TLS 1.3 session."""
        client, server = handshake(self.cert, self.key, SSL.TLS1_3_VERSION)
        context = make_context(channel_bindings=available_channel_bindings(server))
        scram = ScramClient("sha256", "user", "pencil", gs2_header="p=tls-exporter,,",
                            cb_data=tls_exporter(client))
        mechanism = ScramMechanism("sha256", True, context)
        challenge = self.successResultOf(mechanism.step(scram.first()))
        outcome = self.successResultOf(mechanism.step(scram.final(challenge.data)))
        self.assertIsInstance(outcome, Success)

    def test_scram_plus_other_session(self):
        """Binding data from another TLS session (a relaying MITM) fail."""
        client, server = handshake(self.cert, self.key, SSL.TLS1_3_VERSION)
        other_client, _ = handshake(self.cert, self.key, SSL.TLS1_3_VERSION)
        context = make_context(channel_bindings=available_channel_bindings(server))
        scram = ScramClient("sha256", "user", "pencil", gs2_header="p=tls-exporter,,",
                            cb_data=tls_exporter(other_client))
        mechanism = ScramMechanism("sha256", True, context)
        challenge = self.successResultOf(mechanism.step(scram.first()))
        outcome = self.successResultOf(mechanism.step(scram.final(challenge.data)))
        self.assertEqual(outcome.condition, "not-authorized")
