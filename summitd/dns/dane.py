"""DANE: TLSA records for XMPP targets and whether a certificate chain matches them
(RFC 6698, RFC 7671, RFC 7673).

RFC 7673 rules, as applied by ``lookup_target_tlsa``: the TLSA name is built from the
SRV target host and port (``_5269._tcp.xmpp.example.net``), and is only asked for when
the SRV answer and the target's addresses are both DNSSEC-secure. A TLSA answer
counts only when it is itself secure and has usable records; then the certificate
must match one of them, or the connection is refused even if the certificate is
otherwise valid (``summitd.dns.policy.decide``). Bogus TLSA answers raise DNSSECBogus;
an "indeterminate" one means: do not connect to this target (RFC 7673 §3.4).

Matching (RFC 6698 §2.1, RFC 7671 §5):

- usage 3 DANE-EE: the server's own certificate (or key) matches; PKIX validation and
  name checks are skipped (RFC 7671 §5.1);
- usage 2 DANE-TA: an issuer certificate sent in the chain matches, and the chain
  from the end-entity up to it verifies link by link; the name must still be checked;
- usage 1 PKIX-EE and 0 PKIX-TA: as above for the end-entity / an issuer, *plus*
  normal PKIX validation (``pkix_required``);
- selectors 0 (whole certificate) and 1 (SubjectPublicKeyInfo); matching types 0
  (exact), 1 (SHA-256), 2 (SHA-512). Other values make a record unusable (ignored).

Not supported: a DANE-TA trust anchor that is not sent in the chain (a bare public key
published with selector 1 / matching type 0); such records simply do not match.
"""

import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from twisted.internet import defer

from summitd.dns.resolver import SECURE

PKIX_TA, PKIX_EE, DANE_TA, DANE_EE = 0, 1, 2, 3
USAGE_NAMES = {PKIX_TA: "PKIX-TA", PKIX_EE: "PKIX-EE", DANE_TA: "DANE-TA", DANE_EE: "DANE-EE"}
_MATCHING = {0: lambda data: data, 1: lambda data: hashlib.sha256(data).digest(),
             2: lambda data: hashlib.sha512(data).digest()}
_PREFERENCE = (DANE_EE, DANE_TA, PKIX_EE, PKIX_TA)   # the match that asks least of the rest


@dataclass(frozen=True)
class DaneVerdict:
    usable: bool                   # there were usable TLSA records
    matched: bool
    usage: int | None = None       # the usage of the record that matched
    pkix_required: bool = False    # PKIX-TA/PKIX-EE: the chain must also pass PKIX validation
    name_check_required: bool = True  # False only for DANE-EE (RFC 7671 §5.1)


def tlsa_name(host, port):
    """RFC 6698 §3: ``_port._tcp.host``."""
    return f"_{port}._tcp.{host.rstrip('.')}"


def lookup_tlsa(resolver, host, port):
    """Deferred[Answer] for the TLSA records of ``host:port`` over TCP."""
    return resolver.query(tlsa_name(host, port), "TLSA")


def lookup_target_tlsa(resolver, target, addresses):
    """Deferred[Answer | None]: the TLSA answer for an SRV target (``summitd.dns.srv.Target``),
    or None when RFC 7673 says not to ask (the SRV answer or the addresses not secure)."""
    if not (target.secure and addresses.security == SECURE):
        return defer.succeed(None)
    return lookup_tlsa(resolver, target.host, target.port)


def usable_tlsa(records):
    """The records this implementation understands (RFC 6698 §4.1: ignore the others)."""
    return [r for r in records if r.usage in USAGE_NAMES and r.selector in (0, 1) and r.mtype in _MATCHING]


def dane_applies(answer):
    """Whether a TLSA Answer binds the connection: secure and with usable records."""
    return answer is not None and answer.security == SECURE and bool(usable_tlsa(answer.records))


def _selected(cert, selector):
    if selector == 0:
        return cert.public_bytes(serialization.Encoding.DER)
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def _matches(record, cert):
    return _MATCHING[record.mtype](_selected(cert, record.selector)) == record.cert


def _issued_up_to(chain, top):
    """Each certificate of ``chain[:top + 1]`` is signed by the next one."""
    try:
        for child, issuer in zip(chain[:top], chain[1:top + 1]):
            child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _record_matches(record, chain):
    if record.usage in (DANE_EE, PKIX_EE):
        return _matches(record, chain[0])
    return any(_matches(record, chain[index]) and _issued_up_to(chain, index)
               for index in range(1, len(chain)))


def dane_verdict(records, cert_chain_der):
    """How a certificate chain (DER, end-entity first) fares against TLSA ``records``."""
    usable = usable_tlsa(records)
    if not usable or not cert_chain_der:
        return DaneVerdict(usable=bool(usable), matched=False)
    try:
        chain = [x509.load_der_x509_certificate(der) for der in cert_chain_der]
    except ValueError:
        return DaneVerdict(usable=True, matched=False)
    matched = {record.usage for record in usable if _record_matches(record, chain)}
    for usage in _PREFERENCE:
        if usage in matched:
            return DaneVerdict(usable=True, matched=True, usage=usage,
                               pkix_required=usage in (PKIX_TA, PKIX_EE),
                               name_check_required=usage != DANE_EE)
    return DaneVerdict(usable=True, matched=False)


def match_tlsa(records, cert_chain_der):
    """Whether the chain matches one of the usable TLSA records. A PKIX-* match still needs
    normal PKIX validation, and a DANE-TA match a name check: see ``dane_verdict``."""
    return dane_verdict(records, cert_chain_der).matched
