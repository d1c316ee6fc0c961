"""TLS for client streams (RFC 7590): TLS 1.2 and 1.3 only, forward-secret AEAD ciphers.

When the config names no certificate, a self-signed one for the configured
domains is generated into ``<data_dir>/tls/`` once and reused, so ``make run``
works on a fresh machine. Real deployments point ``[tls]`` at their PEM files.
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import ssl
from twisted.logger import Logger

log = Logger()

#: OpenSSL cipher string for TLS 1.2 (TLS 1.3 suites are all AEAD and left at their defaults).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!SHA1:!MD5"


def generate_self_signed(domains, cert_path, key_path, days=825):
    """Write a self-signed EC certificate naming every domain (and its subdomains)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = []
    for domain in domains:
        names.append(x509.DNSName(domain))
        names.append(x509.DNSName(f"*.{domain}"))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(os.path.dirname(cert_path), exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def certificate_paths(config):
    """(certificate, key) paths: the configured ones, or the generated pair in data_dir."""
    if config.tls.certificate:
        return config.resolve(config.tls.certificate), config.resolve(config.tls.key)
    tls_dir = config.server.data_dir / "tls"
    return tls_dir / "selfsigned.crt", tls_dir / "selfsigned.key"


def ensure_certificate(config):
    """Make sure a certificate exists; generate the self-signed one if needed. Returns the paths."""
    cert_path, key_path = certificate_paths(config)
    if not config.tls.certificate and not (cert_path.exists() and key_path.exists()):
        log.info("generating a self-signed certificate for {domains} in {path}",
                 domains=", ".join(config.server.domains), path=str(cert_path.parent))
        generate_self_signed(list(config.server.domains), str(cert_path), str(key_path))
    return cert_path, key_path


def server_context_factory(cert_path, key_path, alpn=None):
    """A Twisted context factory for the server side."""
    with open(cert_path, "rb") as f:
        chain_pem = f.read()
    with open(key_path, "rb") as f:
        key_pem = f.read()
    marker = b"-----BEGIN CERTIFICATE-----"
    pems = [marker + part for part in chain_pem.split(marker)[1:]]
    if not pems:
        raise ValueError(f"{cert_path} holds no PEM certificate")
    own = ssl.PrivateCertificate.loadPEM(pems[0] + b"\n" + key_pem)
    leaf, key = own.original, own.privateKey.original
    extra = [ssl.Certificate.loadPEM(p).original for p in pems[1:]]
    options = ssl.CertificateOptions(
        privateKey=key,
        certificate=leaf,
        extraCertChain=extra,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(TLS12_CIPHERS),
        acceptableProtocols=alpn,
    )
    # getContext() builds and caches the context: harden that one instance.
    context = options.getContext()
    context.set_options(SSL.OP_NO_RENEGOTIATION)
    # Twisted's ALPN callback answers b"" when nothing overlaps, and OpenSSL then aborts the
    # handshake; a peer offering a protocol we don't speak must get TLS without ALPN instead.
    context.set_alpn_select_callback(_alpn_selector(alpn or []))
    return options


def _alpn_selector(ours):
    def select(connection, offered):
        for protocol in ours:
            if protocol in offered:
                return protocol
        return SSL.NO_OVERLAPPING_PROTOCOLS
    return select
