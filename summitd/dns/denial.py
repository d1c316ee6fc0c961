"""Authenticated denial of existence: what validated NSEC/NSEC3 records prove (RFC 4035 §5.4,
RFC 5155 §8, RFC 7129).

:class:`Denial` holds the NSEC and NSEC3 records of one zone whose signatures the
resolver has already checked, and answers four questions: does a name not exist,
does it lack a type, is it an unsigned delegation (no DS), and was a wildcard answer
legitimately synthesized. Whatever cannot be proven answers False/None, so callers
stay conservative: an unproven denial is never "secure".

Not handled (they answer "unproven"): wildcard NODATA answers, NSEC3 hash algorithms
other than SHA-1, and NSEC3 records with more than ``MAX_NSEC3_ITERATIONS``
iterations (RFC 9276 §3.2 lets validators refuse costly chains).
"""

import base64
import binascii

import dns.dnssec
import dns.name
import dns.rdatatype

MAX_NSEC3_ITERATIONS = 150
_OPT_OUT = 0x01


def has_type(windows, rdtype):
    """Whether an NSEC/NSEC3 type bitmap (``rdata.windows``) lists ``rdtype``."""
    window, bit = divmod(int(rdtype), 256)
    for number, bitmap in windows:
        if number == window:
            index = bit // 8
            return index < len(bitmap) and bool(bitmap[index] & (0x80 >> (bit % 8)))
    return False


def _is_delegation(rdata):
    """An NSEC/NSEC3 at a zone cut, seen from the parent: says nothing about names below it."""
    windows = rdata.windows
    return ((has_type(windows, dns.rdatatype.NS) and not has_type(windows, dns.rdatatype.SOA))
            or has_type(windows, dns.rdatatype.DNAME))


def _between(low, value, high):
    """``low < value < high`` on a circular chain (the last record points back to the first)."""
    if low < high:
        return low < value < high
    return value > low or value < high


class Denial:
    """The signature-checked NSEC/NSEC3 records of ``zone`` from one response."""

    def __init__(self, zone, rrsets):
        self.zone = zone
        self.nsec = []    # (owner Name, rdata)
        self.nsec3 = []   # (owner hash bytes, rdata)
        for rrset in rrsets:
            if not rrset.name.is_subdomain(zone):
                continue
            if rrset.rdtype == dns.rdatatype.NSEC:
                self.nsec.extend((rrset.name, rdata) for rdata in rrset)
            elif rrset.rdtype == dns.rdatatype.NSEC3 and rrset.name.parent() == zone:
                owner = _b32hex(rrset.name.labels[0])
                self.nsec3.extend((owner, rdata) for rdata in rrset
                                  if owner is not None and rdata.algorithm == 1
                                  and rdata.iterations <= MAX_NSEC3_ITERATIONS)

    # -- the four questions ------------------------------------------------------------

    def proves_nodata(self, name, rdtype):
        """``name`` exists but has no ``rdtype`` (and no CNAME)."""
        if self._nsec_empty_non_terminal(name):
            return True
        rdata = self._nsec_at(name) or self._nsec3_at(name)
        if rdata is None:
            return False
        if rdtype != dns.rdatatype.DS and _is_delegation(rdata):
            return False      # the parent's view of a zone cut: the child's data is not here
        return not (has_type(rdata.windows, rdtype) or has_type(rdata.windows, dns.rdatatype.CNAME))

    def proves_nxdomain(self, name):
        """``name`` does not exist, nor does a wildcard that could have produced it."""
        if self.nsec:
            covering = self._nsec_covering(name)
            if covering is not None:
                owner, rdata = covering
                common = max(name.fullcompare(other)[2] for other in (owner, rdata.next))
                encloser = name.split(common)[1]
                if self._nsec_covering(dns.name.Name((b"*",) + encloser.labels)) is not None:
                    return True
        proof = self._closest_encloser(name)
        if proof is None:
            return False
        encloser, covering = proof
        wildcard = dns.name.Name((b"*",) + encloser.labels)
        return not covering.flags & _OPT_OUT and self._nsec3_covering(wildcard) is not None

    def opt_out_covers(self, name):
        """An NSEC3 opt-out span covers ``name``: it can only exist as an unsigned delegation,
        so whatever is said about it is insecure (RFC 5155 §6, §9.2)."""
        proof = self._closest_encloser(name)
        return proof is not None and bool(proof[1].flags & _OPT_OUT)

    def ds_status(self, name):
        """For a DS query at ``name`` answered without DS: "insecure" (a delegation without DS,
        or an NSEC3 opt-out span), "not-delegation" (``name`` is no zone cut), or None."""
        rdata = self._nsec_at(name) or self._nsec3_at(name)
        if rdata is not None:
            if has_type(rdata.windows, dns.rdatatype.DS):
                return None
            if has_type(rdata.windows, dns.rdatatype.NS) and not has_type(rdata.windows, dns.rdatatype.SOA):
                return "insecure"
            return "not-delegation"
        if self._nsec_covering(name) is not None or self._nsec_empty_non_terminal(name):
            return "not-delegation"    # no such name, or one without any data: no zone cut here
        if self.opt_out_covers(name):
            return "insecure"
        return "not-delegation" if self._closest_encloser(name) is not None else None

    def proves_wildcard_answer(self, name, labels):
        """A positive answer for ``name`` whose RRSIG has ``labels`` labels was expanded from a
        wildcard: valid only if no closer name exists (RFC 4035 §5.3.4, RFC 5155 §8.8)."""
        if self._nsec_covering(name) is not None:
            return True
        next_closer = name.split(labels + 2)[1] if labels + 2 <= len(name) else name
        return self._nsec3_covering(next_closer) is not None

    # -- NSEC ----------------------------------------------------------------------------

    def _nsec_at(self, name):
        for owner, rdata in self.nsec:
            if owner == name:
                return rdata
        return None

    def _nsec_spanning(self, name):
        """Usable NSECs whose span (owner, next) strictly contains ``name``."""
        if not name.is_subdomain(self.zone):
            return
        for owner, rdata in self.nsec:
            if not _between(owner, name, rdata.next):
                continue
            if name.is_subdomain(owner) and _is_delegation(rdata):
                continue      # an NSEC at a zone cut does not speak for the child zone
            yield owner, rdata

    def _nsec_covering(self, name):
        """(owner, rdata) of a usable NSEC proving ``name`` absent, or None."""
        for owner, rdata in self._nsec_spanning(name):
            if not rdata.next.is_subdomain(name):
                return owner, rdata
        return None

    def _nsec_empty_non_terminal(self, name):
        """An NSEC whose next name lies below ``name``: it exists, but holds no data."""
        return any(rdata.next.is_subdomain(name) for _, rdata in self._nsec_spanning(name))

    # -- NSEC3 ---------------------------------------------------------------------------

    def _hash(self, name, rdata):
        return base64.b32hexdecode(dns.dnssec.nsec3_hash(name, rdata.salt, rdata.iterations, 1))

    def _nsec3_at(self, name):
        for owner, rdata in self.nsec3:
            if self._hash(name, rdata) == owner:
                return rdata
        return None

    def _nsec3_covering(self, name):
        for owner, rdata in self.nsec3:
            if _between(owner, self._hash(name, rdata), rdata.next):
                return rdata
        return None

    def _closest_encloser(self, name):
        """RFC 5155 §8.3: (closest encloser, the NSEC3 covering the next closer name) or None."""
        if not name.is_subdomain(self.zone) or name == self.zone:
            return None
        next_closer = name
        for depth in range(len(name) - 1, len(self.zone) - 1, -1):
            encloser = name.split(depth)[1]
            match = self._nsec3_at(encloser)
            if match is not None:
                if _is_delegation(match) and encloser != self.zone:
                    return None
                covering = self._nsec3_covering(next_closer)
                return (encloser, covering) if covering is not None else None
            next_closer = encloser
        return None


def _b32hex(label):
    try:
        return base64.b32hexdecode(label.upper())
    except (binascii.Error, ValueError):
        return None
