"""Test zones signed with dnspython, and the certificates their TLSA records describe.

``world()`` builds (once per test process) this tree, served by ``server.DNSTestServer``:

- ``example.test.`` — signed (NSEC), the trust anchor of the tests. SRV records for
  ``_xmpps-server``/``_xmpp-server``/``_xmpp-client``, A/AAAA, TLSA matching
  ``CERT_GOOD`` (and one that matches nothing), a CNAME, a DNAME to ``signed``, a wildcard
  (``*.wild``), "." targets, a name with a
  tampered RRSIG (bogus) and one whose RRSIG was removed (bogus too: signatures stripped);
- ``signed.example.test.`` — a signed child (DS in the parent);
- ``unsigned.example.test.`` — an unsigned child (no DS; the parent's NSEC proves it);
- ``n3.example.test.`` — a signed child using NSEC3 with opt-out, which delegates
  ``plain.n3.example.test.`` without DS (proven only by the opt-out span);
- ``expired.test.`` — signed, but every signature expired yesterday (anchored too);
- ``other.test.`` — unsigned and outside every configured trust anchor.
"""

import datetime
import functools
import hashlib
import time

import dns.dnssec
import dns.dnssecalgs
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.zone
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dns.rdtypes.util import Bitmap

ALGORITHM = dns.dnssec.Algorithm.ECDSAP256SHA256


# -- certificates ----------------------------------------------------------------------

def make_certificate(name, issuer=None, ca=False):
    """(certificate, private key): self-signed, or signed by ``issuer`` = (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = issuer if issuer else (None, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def spki_der(cert):
    return cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)


def spki_sha256(cert):
    return hashlib.sha256(spki_der(cert)).hexdigest()


# -- keys and signing ------------------------------------------------------------------

class ZoneKeys:
    """A KSK and a ZSK for one zone."""

    def __init__(self, origin):
        self.origin = dns.name.from_text(origin)
        cls = dns.dnssecalgs.get_algorithm_cls(ALGORITHM)
        self.ksk = cls.generate()
        self.zsk = cls.generate()
        self.ksk_dnskey = self.ksk.public_key().to_dnskey(flags=257)
        self.zsk_dnskey = self.zsk.public_key().to_dnskey(flags=256)

    def ds(self):
        return dns.dnssec.make_ds(self.origin, self.ksk_dnskey, "SHA256")

    def ds_text(self):
        return f"{self.origin} IN DS {self.ds()}"

    def dnskey_text(self):
        return f"{self.origin} IN DNSKEY {self.ksk_dnskey}"

    def pairs(self):
        return [(self.ksk, self.ksk_dnskey), (self.zsk, self.zsk_dnskey)]


def _validity(expired=False):
    now = int(time.time())
    return (now - 3 * 86400, now - 86400) if expired else (now - 3600, now + 2 * 86400)


def parse_zone(origin, text):
    return dns.zone.from_text(text, origin=origin, relativize=False)


def sign_nsec(zone, keys, expired=False):
    inception, expiration = _validity(expired)
    dns.dnssec.sign_zone(zone, keys=keys.pairs(), inception=inception, expiration=expiration)


def _rrsig(keys, rrset):
    inception, expiration = _validity()
    private, dnskey = (keys.ksk, keys.ksk_dnskey) if rrset.rdtype == dns.rdatatype.DNSKEY \
        else (keys.zsk, keys.zsk_dnskey)
    return dns.dnssec.sign(rrset, private, keys.origin, dnskey, inception=inception, expiration=expiration)


def nsec3_owner(name, origin):
    return dns.name.Name((dns.dnssec.nsec3_hash(name, b"", 0, 1).lower().encode(),) + origin.labels)


def sign_nsec3_opt_out(zone, keys):
    """Sign with NSEC3 (SHA-1, no salt, 0 iterations: RFC 9276) and opt-out: delegations
    without DS get no NSEC3 record, so only the opt-out span (the record whose span
    covers them, flagged opt-out; the others are not) speaks for them."""
    origin = zone.origin
    with zone.writer() as txn:
        txn.add(origin, 3600, keys.ksk_dnskey)
        txn.add(origin, 3600, keys.zsk_dnskey)
        txn.add(origin, 0, dns.rdata.from_text("IN", "NSEC3PARAM", "1 0 0 -"))
    cuts = [name for name in zone.nodes if name != origin and zone.get_rdataset(name, "NS")]
    unsigned_cuts = {cut for cut in cuts if not zone.get_rdataset(cut, "DS")}
    owners = {}
    for name in list(zone.nodes):
        if any(name.is_subdomain(cut) and name != cut for cut in cuts) or name in unsigned_cuts:
            continue
        types = {rds.rdtype for rds in zone.nodes[name].rdatasets} | {dns.rdatatype.RRSIG}
        owners[name] = types
        parent = name
        while parent != origin:                      # empty non-terminals get records too
            parent = parent.parent()
            owners.setdefault(parent, set())
    hashed = sorted((nsec3_owner(name, origin), types) for name, types in owners.items())
    unsigned_hashes = [nsec3_owner(cut, origin) for cut in unsigned_cuts]
    with zone.writer() as txn:
        for index, (owner, types) in enumerate(hashed):
            following = hashed[(index + 1) % len(hashed)][0]
            spans_cut = any(owner < h < following or (following < owner and (h > owner or h < following))
                            for h in unsigned_hashes)
            bitmap = Bitmap.from_rdtypes(sorted(types)).to_text()
            txn.add(owner, 300, dns.rdata.from_text(
                "IN", "NSEC3", f"1 {int(spans_cut)} 0 - {following.labels[0].decode()}{bitmap}"))
    with zone.writer() as txn:
        for name, node in list(zone.nodes.items()):
            if any(name.is_subdomain(cut) and name != cut for cut in cuts):
                continue
            for rdataset in list(node.rdatasets):
                if rdataset.rdtype == dns.rdatatype.RRSIG:
                    continue
                if name in cuts and rdataset.rdtype != dns.rdatatype.DS:
                    continue
                rrset = dns.rrset.from_rdata_list(name, rdataset.ttl, list(rdataset))
                txn.add(name, rdataset.ttl, _rrsig(keys, rrset))


def tamper(zone, name, rdtype):
    """Flip a bit of every signature over ``name``/``rdtype``: a bogus answer."""
    name = dns.name.from_text(name)
    node = zone.nodes[name]
    sigs = node.find_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.RdataType.make(rdtype))
    broken = [sig.replace(signature=bytes([sig.signature[0] ^ 1]) + sig.signature[1:]) for sig in sigs]
    sigs.clear()
    for sig in broken:
        sigs.add(sig)


def strip_signatures(zone, name, rdtype):
    """Remove the RRSIGs over ``name``/``rdtype``, as an attacker downgrading the answer would."""
    zone.nodes[dns.name.from_text(name)].delete_rdataset(
        dns.rdataclass.IN, dns.rdatatype.RRSIG, dns.rdatatype.RdataType.make(rdtype))


# -- the world -------------------------------------------------------------------------

SOA = "@ 3600 IN SOA ns.example.test. hostmaster.example.test. 1 7200 3600 1209600 300\n" \
      "@ 3600 IN NS ns.example.test.\n"


class World:
    """The zones, their keys and the certificates; see the module docstring."""

    def __init__(self):
        self.cert_good, self.key_good = make_certificate("xmpp.example.test")
        self.cert_other, self.key_other = make_certificate("xmpp.example.test")
        good, other = spki_sha256(self.cert_good), spki_sha256(self.cert_other)

        self.keys = {origin: ZoneKeys(origin) for origin in
                     ("example.test.", "signed.example.test.", "n3.example.test.", "expired.test.")}

        signed = parse_zone("signed.example.test.", SOA + f"""
_xmpp-server._tcp 300 IN SRV 0 0 5269 xmpp.signed.example.test.
xmpp 300 IN A 127.0.0.7
_5269._tcp.xmpp 300 IN TLSA 3 1 1 {good}
""")
        sign_nsec(signed, self.keys["signed.example.test."])

        unsigned = parse_zone("unsigned.example.test.", SOA + f"""
_xmpp-server._tcp 300 IN SRV 0 0 5269 xmpp.unsigned.example.test.
xmpp 300 IN A 127.0.0.8
_5269._tcp.xmpp 300 IN TLSA 3 1 1 {good}
""")

        n3 = parse_zone("n3.example.test.", SOA + """
_xmpp-server._tcp 300 IN SRV 0 0 5269 xmpp.n3.example.test.
xmpp 300 IN A 127.0.0.9
plain 3600 IN NS ns.example.test.
""")
        sign_nsec3_opt_out(n3, self.keys["n3.example.test."])
        plain = parse_zone("plain.n3.example.test.", SOA + "xmpp 300 IN A 127.0.0.10\n")

        parent = parse_zone("example.test.", SOA + f"""
ns 3600 IN A 127.0.0.1
_xmpps-server._tcp 300 IN SRV 5 0 5270 xmpp.example.test.
_xmpp-server._tcp 300 IN SRV 10 0 5269 xmpp.example.test.
_xmpp-server._tcp 300 IN SRV 20 0 5269 backup.example.test.
_xmpp-client._tcp 300 IN SRV 0 0 5222 xmpp.example.test.
_xmpps-client._tcp 300 IN SRV 0 0 5223 xmpp.example.test.
xmpp 300 IN A 127.0.0.1
xmpp 300 IN AAAA ::1
backup 300 IN A 127.0.0.2
_5269._tcp.xmpp 300 IN TLSA 3 1 1 {good}
_5270._tcp.xmpp 300 IN TLSA 3 1 1 {good}
_5269._tcp.backup 300 IN TLSA 3 1 1 {other}
alias 300 IN CNAME xmpp.example.test.
nosrv 300 IN A 127.0.0.3
_xmpp-server._tcp.dot 300 IN SRV 0 0 0 .
_xmpps-server._tcp.dot 300 IN SRV 0 0 0 .
dot 300 IN A 127.0.0.4
_xmpps-server._tcp.half 300 IN SRV 0 0 0 .
_xmpp-server._tcp.half 300 IN SRV 0 0 5269 xmpp.example.test.
tampered 300 IN A 127.0.0.5
_xmpp-server._tcp.tampered 300 IN SRV 0 0 5269 xmpp.example.test.
stripped 300 IN A 127.0.0.6
*.wild 300 IN A 127.0.0.20
dname 300 IN DNAME signed.example.test.
signed 3600 IN NS ns.example.test.
signed 3600 IN DS {self.keys["signed.example.test."].ds()}
unsigned 3600 IN NS ns.example.test.
n3 3600 IN NS ns.example.test.
n3 3600 IN DS {self.keys["n3.example.test."].ds()}
""")
        sign_nsec(parent, self.keys["example.test."])
        tamper(parent, "tampered.example.test.", "A")
        tamper(parent, "_xmpp-server._tcp.tampered.example.test.", "SRV")
        strip_signatures(parent, "stripped.example.test.", "A")

        expired = parse_zone("expired.test.", SOA + "xmpp 300 IN A 127.0.0.12\n")
        sign_nsec(expired, self.keys["expired.test."], expired=True)
        other = parse_zone("other.test.", SOA + "xmpp 300 IN A 127.0.0.11\n")
        self.zones = [parent, signed, unsigned, n3, plain, expired, other]

    def zone(self, origin):
        return next(zone for zone in self.zones if zone.origin == dns.name.from_text(origin))

    def anchor_text(self, kind="DS"):
        """The trust anchor file of the tests: example.test. (DS or DNSKEY) and expired.test."""
        keys = self.keys["example.test."]
        first = keys.ds_text() if kind == "DS" else keys.dnskey_text()
        return f"{first}\n{self.keys['expired.test.'].ds_text()}\n"


@functools.lru_cache(maxsize=1)
def world():
    return World()


def n3_missing_name(opt_out):
    """A name that does not exist in n3.example.test. and falls in an NSEC3 span with (or
    without) the opt-out flag: the hashes are fixed (no salt), only the flags differ."""
    zone = world().zone("n3.example.test.")
    chain = sorted((name.labels[0], rdataset[0]) for name, node in zone.nodes.items()
                   for rdataset in node.rdatasets if rdataset.rdtype == dns.rdatatype.NSEC3)
    for index in range(1000):
        name = dns.name.from_text(f"nope{index}.n3.example.test.")
        hashed = nsec3_owner(name, zone.origin).labels[0]
        owner, rdata = max(((o, r) for o, r in chain if o < hashed), default=chain[-1])
        if bool(rdata.flags & 1) == opt_out:
            return name.to_text()
    raise AssertionError("no such name")


def check_zone(direct_port, starttls_port):
    """(zone, keys) for check.test. (signed; anchored by its own DS): one direct TLS and one
    STARTTLS SRV target on the given loopback ports, both with TLSA records for
    ``cert_good`` — what ``summitctl check dns`` is tested against."""
    keys = ZoneKeys("check.test.")
    good = spki_sha256(world().cert_good)
    zone = parse_zone("check.test.", SOA + f"""
_xmpps-server._tcp 300 IN SRV 0 0 {direct_port} tls.check.test.
_xmpp-server._tcp 300 IN SRV 10 0 {starttls_port} tls.check.test.
tls 300 IN A 127.0.0.1
_{direct_port}._tcp.tls 300 IN TLSA 3 1 1 {good}
_{starttls_port}._tcp.tls 300 IN TLSA 3 1 1 {good}
""")
    sign_nsec(zone, keys)
    return zone, keys
