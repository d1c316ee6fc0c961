"""Certificates between servers: TLS contexts, the trust store, RFC 6125 name checks.

RFC 6120 §13.7.2 and RFC 7590: a peer's certificate is trusted when its chain leads to
a trust anchor (the system's store, or a configured CA bundle) and it names the peer's
domain by one of the reference identifiers RFC 6125 and RFC 6120 §13.7.1.4 allow for
XMPP servers: a DNS-ID (``dNSName``, wildcards per RFC 6125 §6.4.3), an SRV-ID
(``_xmpp-server.DOMAIN``, RFC 4985) or an XmppAddr (``id-on-xmppAddr``). Matching of
the first two is service_identity's; XmppAddr is compared here (RFC 6120 §13.7.1.4).
No CN-ID fallback (RFC 6125 §6.4.4 allows it only without SANs; service_identity
dropped it).

TLS handshakes never fail on a certificate: both sides ask for the peer's
certificate (``VERIFY_PEER`` with a callback that accepts) and judge it afterwards, so
a peer with an invalid certificate can still fall back to dialback when policy allows
(XEP-0220 over TLS) and the refusal is a logged decision, not a handshake alert.
Protocol versions and ciphers are those of ``summitd.tls`` (TLS 1.2+, forward-secret
AEAD suites).
"""

import ssl as stdlib_ssl
from dataclasses import dataclass
from pathlib import Path

import idna
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import extract_patterns
from service_identity.hazmat import DNS_ID, SRV_ID, verify_service_identity
from twisted.internet import interfaces
from zope.interface import implementer

from summitd.tls import TLS12_CIPHERS, server_context_factory

OID_XMPP_ADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")
ALPN_SERVER = b"xmpp-server"
SESSION_CONTEXT = b"summitd-s2s"


def _accept_for_later_check(connection, cert, errno, depth, ok):
    """The handshake goes on whatever the certificate; ``check_peer`` judges it after."""
    return True


def server_options(cert_path, key_path, alpn=None):
    """Server-side TLS (summitd.tls) that also asks the peer server for its certificate."""
    options = server_context_factory(cert_path, key_path, alpn)
    context = options.getContext()
    context.set_verify(SSL.VERIFY_PEER, _accept_for_later_check)
    context.set_session_id(SESSION_CONTEXT)
    return options


def client_context(cert_path, key_path):
    """Client-side TLS context presenting our certificate (for SASL EXTERNAL at the peer)."""
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    context.set_cipher_list(TLS12_CIPHERS.encode("ascii"))
    if cert_path is not None:
        context.use_certificate_chain_file(str(cert_path))
        context.use_privatekey_file(str(key_path))
    context.set_verify(SSL.VERIFY_PEER, _accept_for_later_check)
    return context


@dataclass(frozen=True)
class TLSSetup:
    """The TLS contexts of federation, made once from our certificate and key."""
    server_options: object          # STARTTLS on incoming streams
    direct_options: object          # direct TLS listeners (ALPN "xmpp-server")
    client_context: object          # outgoing streams
    has_certificate: bool = True    # we can offer SASL EXTERNAL to peers


def load_tls(cert_path, key_path):
    return TLSSetup(server_options(cert_path, key_path), server_options(cert_path, key_path, [ALPN_SERVER]),
                    client_context(cert_path, key_path))


def ascii_domain(domain):
    """The A-label form of a (U-label) domain, for SNI and DNS."""
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain


@implementer(interfaces.IOpenSSLClientConnectionCreator)
class ClientTLS:
    """Connection creator for one outgoing stream: SNI is the remote domain (XEP-0368 §3),
    ALPN "xmpp-server" on direct TLS."""

    def __init__(self, context, domain, direct_tls=False):
        self._context = context
        self._server_name = ascii_domain(domain).encode("ascii")
        self._alpn = direct_tls

    def clientConnectionForTLS(self, tls_protocol):
        connection = SSL.Connection(self._context, None)
        connection.set_tlsext_host_name(self._server_name)
        if self._alpn:
            connection.set_alpn_protos([ALPN_SERVER])
        return connection


class TrustStore:
    """The CAs we trust for peers: a configured PEM bundle, else the system's store."""

    def __init__(self, ca_bundle=None):
        self.ca_bundle = Path(ca_bundle) if ca_bundle else None
        self._store = crypto.X509Store()
        if self.ca_bundle is not None:
            self._store.load_locations(str(self.ca_bundle))
        else:
            paths = stdlib_ssl.get_default_verify_paths()
            cafile = next((p for p in (paths.cafile, paths.openssl_cafile) if p and Path(p).is_file()), None)
            capath = next((p for p in (paths.capath, paths.openssl_capath) if p and Path(p).is_dir()), None)
            if cafile or capath:
                self._store.load_locations(cafile, capath)

    def describe(self):
        return str(self.ca_bundle) if self.ca_bundle else "the system trust store"

    def verify_chain(self, chain):
        """None when ``chain`` (cryptography certificates, end entity first) leads to a trust
        anchor and is currently valid, else why not."""
        leaf = crypto.X509.from_cryptography(chain[0])
        intermediates = [crypto.X509.from_cryptography(c) for c in chain[1:]]
        try:
            crypto.X509StoreContext(self._store, leaf, intermediates).verify_certificate()
        except crypto.X509StoreContextError as e:
            return str(e)
        return None


@dataclass(frozen=True)
class PeerCertificate:
    """What a peer presented and what we made of it, for one domain."""
    chain_der: tuple = ()           # DER, end entity first (DANE matching)
    chain_error: str | None = "no certificate presented"   # None: the chain is trusted
    name_ok: bool = False           # it names the domain (RFC 6125)

    @property
    def presented(self):
        return bool(self.chain_der)

    @property
    def valid(self):
        return self.chain_error is None and self.name_ok

    def problem(self, domain):
        """Why the certificate does not authenticate ``domain`` (None when it does)."""
        if self.chain_error is not None:
            return self.chain_error
        return None if self.name_ok else f"the certificate does not name {domain}"


def peer_chain(transport):
    """The peer's certificate chain (cryptography objects, end entity first); [] without TLS
    or certificate."""
    if not interfaces.ISSLTransport.providedBy(transport):
        return []
    connection = transport.getHandle()
    leaf = connection.get_peer_certificate(as_cryptography=True)
    if leaf is None:
        return []
    chain = connection.get_peer_cert_chain(as_cryptography=True) or []
    # A server's view of the client chain leaves the end entity out (SSL_get_peer_cert_chain).
    if not chain or chain[0] != leaf:
        chain = [leaf] + list(chain)
    return chain


def check_peer(transport, domain, trust, extra_names=()):
    """Judge the certificate on ``transport`` for ``domain`` (and, with a DNSSEC-secure SRV
    answer, its target host: RFC 7673 §4.1) -> PeerCertificate."""
    chain = peer_chain(transport)
    return check_chain(chain, domain, trust, extra_names)


def check_chain(chain, domain, trust, extra_names=()):
    if not chain:
        return PeerCertificate()
    der = tuple(c.public_bytes(Encoding.DER) for c in chain)
    error = trust.verify_chain(chain)
    if error is not None:
        error = f"certificate not trusted ({trust.describe()}): {error}"
    named = names_domain(chain[0], domain) or any(names_domain(chain[0], n, srv=False) for n in extra_names)
    return PeerCertificate(der, error, named)


def names_domain(cert, domain, srv=True):
    """Whether ``cert`` names ``domain`` as an XMPP server: DNS-ID, SRV-ID or XmppAddr."""
    if domain in xmpp_addrs(cert):
        return True
    try:
        patterns = extract_patterns(cert)
    except CertificateError:
        return False
    name = ascii_domain(domain)
    wanted = [DNS_ID(name)]
    if srv:
        wanted.append(SRV_ID(f"_xmpp-server.{name}"))
    for reference in wanted:
        try:
            verify_service_identity(patterns, obligatory_ids=[reference], optional_ids=[])
            return True
        except (VerificationError, CertificateError, ValueError):
            continue
    return False


def xmpp_addrs(cert):
    """The XmppAddr identifiers of a certificate (RFC 6120 §13.7.1.4), lower-cased."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return []
    found = []
    for other in san.get_values_for_type(x509.OtherName):
        if other.type_id == OID_XMPP_ADDR:
            text = decode_utf8_string(other.value)
            if text:
                found.append(text.lower())
    return found


def decode_utf8_string(der):
    """A DER UTF8String's text, or None when ``der`` is not one."""
    if len(der) < 2 or der[0] != 0x0C:
        return None
    length, offset = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 3 or len(der) < 2 + count:
            return None
        length, offset = int.from_bytes(der[2:2 + count], "big"), 2 + count
    if len(der) != offset + length:
        return None
    try:
        return der[offset:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def encode_utf8_string(text):
    """DER UTF8String (for XmppAddr in certificates we issue, e.g. a test CA)."""
    data = text.encode("utf-8")
    if len(data) < 0x80:
        return bytes([0x0C, len(data)]) + data
    size = len(data).to_bytes((len(data).bit_length() + 7) // 8, "big")
    return bytes([0x0C, 0x80 | len(size)]) + size + data
