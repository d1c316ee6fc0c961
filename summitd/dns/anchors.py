"""DNSSEC trust anchors (RFC 4033 §3.1; RFC 4035 §4.4): where every chain of trust starts.

The default is the root zone's key-signing keys as DS records: KSK-2017 (tag 20326)
and KSK-2024 (tag 38696), as published by IANA. A configured file holds DS or DNSKEY
records in zone-file presentation format, one per line, owner names absolute::

    example.test. IN DS 31589 13 2 3C7A...
    other.test.   IN DNSKEY 257 3 13 mdsswUyr3DPW132mOi8V9xESWE8jTo0d...

Several zones may be anchored; a name is validated from its closest anchored ancestor.
"""

import dns.exception
import dns.name
import dns.rdatatype
import dns.zonefile

ROOT_ANCHORS = """\
. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D
. IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16
"""

_ANCHOR_TYPES = (dns.rdatatype.DS, dns.rdatatype.DNSKEY)


def parse_trust_anchors(text):
    """Presentation-format DS/DNSKEY records → {zone Name: [rdata, ...]}; ValueError if unusable."""
    try:
        rrsets = dns.zonefile.read_rrsets(text, rdclass=None, default_ttl=0, origin=dns.name.root)
    except (dns.exception.DNSException, ValueError) as e:
        raise ValueError(f"not DS or DNSKEY records in zone-file format: {e}") from None
    anchors = {}
    for rrset in rrsets:
        if rrset.rdtype not in _ANCHOR_TYPES:
            raise ValueError(f"{rrset.name}: a trust anchor must be DS or DNSKEY, "
                             f"not {dns.rdatatype.to_text(rrset.rdtype)}")
        anchors.setdefault(rrset.name, []).extend(rrset)
    if not anchors:
        raise ValueError("contains no DS or DNSKEY record")
    return anchors


def load_trust_anchors(path=None):
    """The anchors in ``path``, or the root zone's when ``path`` is None."""
    if path is None:
        return parse_trust_anchors(ROOT_ANCHORS)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return parse_trust_anchors(text)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
