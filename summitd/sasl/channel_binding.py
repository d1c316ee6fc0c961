"""TLS channel-binding data for SCRAM -PLUS (RFC 5929, RFC 9266, XEP-0440).

A -PLUS exchange proves that client and server see the same TLS channel: both
feed the same channel-binding data into the SCRAM proof, so a man in the
middle running two TLS sessions cannot relay it. We offer two types:

* "tls-exporter" (RFC 9266): keying material exported from the TLS session.
  Unique per connection; we only offer it on TLS 1.3, where every handshake
  yields unique secrets (RFC 9266 §2, §4.2).
* "tls-server-end-point" (RFC 5929 §4): a hash of the server's certificate.
  Weaker, but XEP-0440 §business-rules makes it mandatory for servers.

"tls-unique" is not offered: it is undefined for TLS 1.3 and unsafe for TLS
1.2 without the extended master secret (RFC 9266 §1).
"""

from typing import Callable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL

#: RFC 9266 §2: the exporter label and output length.
EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
EXPORTER_LENGTH = 32


def tls_exporter(conn: SSL.Connection) -> bytes:
    """The "tls-exporter" data of a TLS 1.3 connection (RFC 9266 §2)."""
    if conn.get_protocol_version_name() != "TLSv1.3":
        raise ValueError("tls-exporter is only offered on TLS 1.3")
    return conn.export_keying_material(EXPORTER_LABEL, EXPORTER_LENGTH, b"")


def end_point_hash(cert: x509.Certificate) -> hashes.HashAlgorithm:
    """RFC 5929 §4.1: the hash for "tls-server-end-point"; ValueError when undefined."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if algorithm is None:  # e.g. Ed25519 signs without a separate hash
        raise ValueError("tls-server-end-point is undefined for this certificate")
    if isinstance(algorithm, (hashes.MD5, hashes.SHA1)):
        return hashes.SHA256()
    return algorithm


def tls_server_end_point(conn: SSL.Connection) -> bytes:
    """The "tls-server-end-point" data: hash of our own certificate (RFC 5929 §4.1)."""
    cert = conn.get_certificate(as_cryptography=True)
    if cert is None:
        raise ValueError("no server certificate")
    digest = hashes.Hash(end_point_hash(cert))
    digest.update(cert.public_bytes(Encoding.DER))
    return digest.finalize()


def available_channel_bindings(conn: SSL.Connection) -> dict[str, Callable[[], bytes]]:
    """The channel-binding types usable on ``conn``, each with a getter for its data."""
    bindings = {}
    if conn.get_protocol_version_name() == "TLSv1.3":
        bindings["tls-exporter"] = lambda: tls_exporter(conn)
    try:
        end_point = tls_server_end_point(conn)  # fixed for the connection: compute once
    except ValueError:  # no certificate, or no hash defined for it
        pass
    else:
        bindings["tls-server-end-point"] = lambda: end_point
    return bindings
