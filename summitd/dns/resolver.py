"""DNS lookups whose answers say how far they can be trusted (RFC 4033, RFC 4034, RFC 4035).

``SecureResolver(config, reactor).query(name, rdtype)`` fires with an :class:`Answer`
whose ``security`` is one of (RFC 4035 §4.3):

- ``"secure"``: a chain of trust runs from a trust anchor to every RRset of the answer
  (CNAMEs included), or to the proof that the name or type does not exist;
- ``"insecure"``: the answer lies below a delegation that is provably unsigned (a
  validated NSEC/NSEC3 record shows no DS there);
- ``"indeterminate"``: neither could be established — no trust anchor covers the
  name, or a denial could not be proven. Never treat it as secure.

Bogus data (a signature that fails, an unsigned RRset where the chain of trust says
it must be signed, DNSKEYs that match no DS) is never returned: :class:`DNSSECBogus`
is raised. Failures to get any answer raise :class:`DNSLookupError` (``DNSTimeout``).

Two modes (``DNSConfig.mode``):

``validate``
    Queries carry DO (send the DNSSEC records) and CD (do not validate for us: the
    validation is ours), and this module builds the chain of trust itself: the anchor
    zone's DNSKEY set checked against the configured DS/DNSKEY anchors, then for each
    label between the anchor and the name a DS query — a signed DS leads to the child's
    DNSKEY set, a signed denial either proves an unsigned delegation (insecure) or that
    there is no zone cut there. Signatures are checked with ``dns.dnssec.validate``.
``resolver-ad``
    A validating resolver does the work; its AD bit is believed only when it is on
    loopback (127.0.0.0/8, ::1), where nobody can forge it on the way (RFC 6840 §5.8).
    Any other resolver's answers are "insecure". The resolver's SERVFAIL for bogus data
    surfaces as DNSLookupError.

Transport: see ``summitd.dns.transport`` (Twisted sockets, dnspython messages, no
threads; UDP with TCP fallback, each exchange bounded by ``config.timeout``). Servers
are tried in order; a timeout, an error or a SERVFAIL moves on to the next one.
Results along the chain of trust (zone keys, zone cuts) are cached for their TTL
(at most an hour), and concurrent lookups of the same cut share one query.
"""

import ipaddress
from dataclasses import dataclass

import dns.dnssec
import dns.dnssecalgs
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
from twisted.internet import defer

from summitd.dns.anchors import load_trust_anchors
from summitd.dns.config import system_servers
from summitd.dns.denial import Denial
from summitd.dns.transport import ExchangeError, ExchangeTimeout, exchange

SECURE = "secure"
INSECURE = "insecure"
INDETERMINATE = "indeterminate"
_RANK = {INDETERMINATE: 0, INSECURE: 1, SECURE: 2}

EDNS_PAYLOAD = 1232          # the DNS flag day 2020 size: no IP fragmentation
MAX_CNAMES = 8
MAX_CACHE_TTL = 3600
_DS_DIGESTS = (1, 2, 4)      # SHA-1, SHA-256, SHA-384 (RFC 4509, RFC 6605)
_DENIED_ALGORITHMS = (1, 3, 6, 12)  # RSAMD5, DSA, DSA-NSEC3-SHA1, GOST: RFC 8624 says do not validate


class DNSError(Exception):
    """Base of this package's DNS failures."""


class DNSLookupError(DNSError):
    """No usable answer: every server timed out, failed (SERVFAIL, REFUSED) or was unreachable."""


class DNSTimeout(DNSLookupError):
    """Every server timed out."""


class DNSSECBogus(DNSError):
    """The answer failed DNSSEC validation; it must not be used (RFC 4035 §5.5)."""


def weakest(*levels):
    """The least trustworthy of several security levels."""
    return min(levels, key=_RANK.__getitem__)


def ad_trusted(host):
    """Whether a resolver's AD bit can be believed: only over loopback (RFC 6840 §5.8)."""
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Answer:
    """The records of one lookup (dnspython rdata; empty when the name or type does not exist)."""
    records: tuple
    security: str
    name: str = ""          # owner of the records, after any CNAMEs (absolute, with the final dot)
    ttl: int = 0
    nxdomain: bool = False

    @property
    def secure(self):
        return self.security == SECURE


@dataclass(frozen=True)
class _Zone:
    """How far the chain of trust reaches: the deepest secure zone and its DNSKEY set, or why not."""
    security: str
    name: dns.name.Name | None = None
    keys: object = None


def _find(section, name, rdtype, covers=dns.rdatatype.NONE):
    for rrset in section:
        if (rrset.name == name and rrset.rdtype == rdtype and rrset.covers == covers
                and rrset.rdclass == dns.rdataclass.IN):
            return rrset
    return None


def _usable_ds(ds):
    """RFC 4035 §5.2: DS records with unknown algorithms or digests are ignored."""
    if ds.algorithm in _DENIED_ALGORITHMS or ds.digest_type not in _DS_DIGESTS:
        return False
    try:
        dns.dnssecalgs.get_algorithm_cls(ds.algorithm)
    except dns.dnssec.UnsupportedAlgorithm:
        return False
    return True


def _key_matches(zone, key, anchor):
    if anchor.rdtype == dns.rdatatype.DNSKEY:
        return key == anchor
    if anchor.key_tag != dns.dnssec.key_id(key) or anchor.algorithm != key.algorithm:
        return False
    try:
        return dns.dnssec.make_ds(zone, key, anchor.digest_type, validating=True) == anchor
    except (dns.dnssec.UnsupportedAlgorithm, dns.dnssec.DeniedByPolicy, ValueError):
        return False


def _negative_ttl(response):
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            return min(rrset.ttl, rrset[0].minimum)
    return 0


class _Cache:
    """TTL-bounded results keyed by (kind, name); concurrent requests for one key share one
    computation (if its first requester cancels it, the others fail with DNSLookupError)."""

    def __init__(self, reactor, size=2048):
        self._reactor = reactor
        self._size = size
        self._entries = {}
        self._pending = {}

    def get_or_compute(self, key, compute):
        """``compute()`` → Deferred[(value, ttl)]; fires with the value."""
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self._reactor.seconds():
            return defer.succeed(entry[1])
        if key in self._pending:
            waiter = defer.Deferred()
            self._pending[key].append(waiter)
            return waiter
        waiters = self._pending[key] = []

        def done(result):
            value, ttl = result
            del self._pending[key]
            if ttl > 0:
                self._entries.pop(key, None)
                self._entries[key] = (self._reactor.seconds() + min(ttl, MAX_CACHE_TTL), value)
                if len(self._entries) > self._size:
                    del self._entries[next(iter(self._entries))]
            for waiter in waiters:
                waiter.callback(value)
            return value

        def failed(failure):
            del self._pending[key]
            if failure.check(defer.CancelledError):    # the first caller gave up; not the others' fault
                shared = DNSLookupError(f"{key[1]}: lookup cancelled by a concurrent caller")
            else:
                shared = failure
            for waiter in waiters:
                waiter.errback(shared)
            return failure

        return defer.maybeDeferred(compute).addCallbacks(done, failed)


class SecureResolver:
    """Looks names up through the configured resolvers and rates each answer's security."""

    def __init__(self, config, reactor):
        self.config = config
        self.servers = tuple(config.servers) or system_servers()
        self._reactor = reactor
        self._anchors = load_trust_anchors(config.trust_anchor) if config.mode == "validate" else {}
        self._cache = _Cache(reactor)

    def query(self, name, rdtype):
        """Deferred[Answer] for ``name`` (str or dns.name.Name) and ``rdtype`` ("SRV", 33, ...).

        Each exchange is bounded by ``config.timeout``, but a lookup that walks the chain of
        trust makes several in turn: callers wanting one overall bound use ``addTimeout``
        (cancelling closes the sockets in use)."""
        try:
            if isinstance(name, str):
                name = dns.name.from_text(name)
            rdtype = dns.rdatatype.RdataType.make(rdtype)
        except (dns.exception.DNSException, ValueError) as e:
            return defer.fail(DNSLookupError(f"{name!r}: not a DNS name or type: {e}"))
        if self.config.mode == "resolver-ad":
            return self._query_ad(name, rdtype)
        return self._query_validating(name, rdtype)

    # -- talking to the servers ---------------------------------------------------------

    def _make_query(self, name, rdtype):
        if self.config.mode == "resolver-ad":
            query = dns.message.make_query(name, rdtype, use_edns=0, payload=EDNS_PAYLOAD)
            query.flags |= dns.flags.AD          # RFC 6840 §5.7: ask for the AD bit
        else:
            query = dns.message.make_query(name, rdtype, want_dnssec=True, payload=EDNS_PAYLOAD)
            query.flags |= dns.flags.CD
        return query

    @defer.inlineCallbacks
    def _ask(self, name, rdtype):
        """(response, server address) from the first server giving NOERROR or NXDOMAIN."""
        problems = []
        timeouts = 0
        for host, port in self.servers:
            try:
                response = yield exchange(self._reactor, self._make_query(name, rdtype), host, port,
                                          self.config.timeout)
            except ExchangeError as e:
                timeouts += isinstance(e, ExchangeTimeout)
                problems.append(str(e))
                continue
            if response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                return response, host
            problems.append(f"{host} port {port}: {dns.rcode.to_text(response.rcode())}")
        kind = DNSTimeout if timeouts == len(self.servers) else DNSLookupError
        raise kind(f"{name} {dns.rdatatype.to_text(rdtype)}: " + "; ".join(problems))

    @staticmethod
    def _answer_chain(response, qname, rdtype):
        """(CNAME RRsets followed, the RRset of ``rdtype`` or None, the last name reached)."""
        chain, current = [], qname
        for _ in range(MAX_CNAMES):
            rrset = _find(response.answer, current, rdtype)
            if rrset is not None:
                return chain, rrset, current
            cname = _find(response.answer, current, dns.rdatatype.CNAME)
            if cname is None or rdtype == dns.rdatatype.CNAME:
                return chain, None, current
            chain.append(cname)
            current = cname[0].target
        raise DNSLookupError(f"{qname}: more than {MAX_CNAMES} CNAMEs")

    @staticmethod
    def _answer(chain, final, current, response, security):
        ttls = [rrset.ttl for rrset in chain] + [final.ttl if final is not None else _negative_ttl(response)]
        return Answer(records=tuple(final) if final is not None else (), security=security,
                      name=current.to_text(), ttl=min(ttls),
                      nxdomain=final is None and response.rcode() == dns.rcode.NXDOMAIN)

    @defer.inlineCallbacks
    def _query_ad(self, qname, rdtype):
        response, host = yield self._ask(qname, rdtype)
        chain, final, current = self._answer_chain(response, qname, rdtype)
        secure = bool(response.flags & dns.flags.AD) and ad_trusted(host)
        return self._answer(chain, final, current, response, SECURE if secure else INSECURE)

    # -- validation ---------------------------------------------------------------------

    @defer.inlineCallbacks
    def _query_validating(self, qname, rdtype):
        response, _ = yield self._ask(qname, rdtype)
        chain, final, current = self._answer_chain(response, qname, rdtype)
        security = SECURE
        for rrset in chain + ([final] if final is not None else []):
            level = yield self._rrset_security(rrset, response)
            security = weakest(security, level)
        if final is None:
            level = yield self._denial_security(current, rdtype, response)
            security = weakest(security, level)
        return self._answer(chain, final, current, response, security)

    def _verify(self, rrset, sigs, zone):
        try:
            dns.dnssec.validate(rrset, sigs, {zone.name: zone.keys}, now=self._reactor.seconds())
        except dns.dnssec.ValidationFailure as e:
            raise DNSSECBogus(f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}: {e}") from None

    def _denial(self, response, zone):
        """The NSEC/NSEC3 records of ``response`` signed by ``zone``, signatures checked."""
        checked = []
        for rrset in response.authority:
            if rrset.rdtype not in (dns.rdatatype.NSEC, dns.rdatatype.NSEC3):
                continue
            sigs = _find(response.authority, rrset.name, dns.rdatatype.RRSIG, rrset.rdtype)
            if sigs is not None and all(sig.signer == zone.name for sig in sigs):
                self._verify(rrset, sigs, zone)
                checked.append(rrset)
        return Denial(zone.name, checked)

    @defer.inlineCallbacks
    def _rrset_security(self, rrset, response):
        sigs = _find(response.answer, rrset.name, dns.rdatatype.RRSIG, rrset.rdtype)
        if sigs is None:
            dname = self._dname_source(rrset, response)
            if dname is not None:
                level = yield self._rrset_security(dname, response)
                return level
            zone = yield self._walk(rrset.name)
            if zone.security == SECURE:
                raise DNSSECBogus(f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}: unsigned, "
                                  f"but {zone.name} is a signed zone")
            return zone.security
        signers = [sig.signer for sig in sigs if rrset.name.is_subdomain(sig.signer)]
        if not signers:
            raise DNSSECBogus(f"{rrset.name}: signed by a zone that does not contain it")
        signer = max(signers, key=len)
        zone = yield self._walk(signer)
        if zone.security != SECURE:
            return zone.security
        if zone.name != signer:
            raise DNSSECBogus(f"{rrset.name}: signed by {signer}, which is not a signed zone")
        self._verify(rrset, sigs, zone)
        labels = min(sig.labels for sig in sigs if sig.signer == signer)
        if labels < len(rrset.name) - 1 and not rrset.name.is_wild():
            if not self._denial(response, zone).proves_wildcard_answer(rrset.name, labels):
                return INDETERMINATE   # expanded from a wildcard, without proof that it had to be
        return SECURE

    @staticmethod
    def _dname_source(cname, response):
        """The DNAME RRset a resolver synthesized this (unsigned) CNAME from (RFC 6672 §5.3.3)."""
        if cname.rdtype != dns.rdatatype.CNAME:
            return None
        for rrset in response.answer:
            if rrset.rdtype == dns.rdatatype.DNAME and cname.name.is_subdomain(rrset.name) \
                    and cname.name != rrset.name:
                prefix = cname.name.relativize(rrset.name)
                if prefix.concatenate(rrset[0].target) == cname[0].target:
                    return rrset
        return None

    @defer.inlineCallbacks
    def _denial_security(self, name, rdtype, response):
        signers = [sig.signer for rrset in response.authority if rrset.rdtype == dns.rdatatype.RRSIG
                   for sig in rrset if name.is_subdomain(sig.signer)]
        if not signers:
            zone = yield self._walk(name)
            return INDETERMINATE if zone.security == SECURE else zone.security
        signer = max(signers, key=len)
        zone = yield self._walk(signer)
        if zone.security != SECURE:
            return zone.security
        if zone.name != signer:
            return INDETERMINATE
        denial = self._denial(response, zone)
        if response.rcode() == dns.rcode.NXDOMAIN:
            proven = denial.proves_nxdomain(name)
        else:
            proven = denial.proves_nodata(name, rdtype)
        if proven:
            return SECURE
        return INSECURE if denial.opt_out_covers(name) else INDETERMINATE

    # -- the chain of trust -------------------------------------------------------------

    def _closest_anchor(self, name):
        anchored = [zone for zone in self._anchors if name.is_subdomain(zone)]
        return max(anchored, key=len) if anchored else None

    @defer.inlineCallbacks
    def _walk(self, name):
        """Follow the chain of trust from the closest trust anchor down to ``name``."""
        anchor = self._closest_anchor(name)
        if anchor is None:
            return _Zone(INDETERMINATE)
        zone = yield self._cache.get_or_compute(("anchor", anchor), lambda: self._anchor_zone(anchor))
        for depth in range(len(anchor) + 1, len(name) + 1):
            child = name.split(depth)[1]
            parent = zone
            cut = yield self._cache.get_or_compute(("cut", child), lambda: self._find_cut(parent, child))
            if cut is None:
                continue
            if cut.security != SECURE:
                return cut
            zone = cut
        return zone

    @defer.inlineCallbacks
    def _anchor_zone(self, anchor):
        keys = yield self._trusted_keys(anchor, self._anchors[anchor])
        return _Zone(SECURE, anchor, keys), keys.ttl

    @defer.inlineCallbacks
    def _trusted_keys(self, zone, anchors):
        """The DNSKEY set of ``zone``, provided one of its keys matches ``anchors`` (DS or
        DNSKEY records) and that key signs the set."""
        response, _ = yield self._ask(zone, dns.rdatatype.DNSKEY)
        keys = _find(response.answer, zone, dns.rdatatype.DNSKEY)
        sigs = _find(response.answer, zone, dns.rdatatype.RRSIG, dns.rdatatype.DNSKEY)
        if keys is None or sigs is None:
            raise DNSSECBogus(f"{zone} DNSKEY: no signed key set, but a DS or trust anchor vouches for "
                              f"one (does the resolver drop DNSSEC records?)")
        trusted = [key for key in keys if any(_key_matches(zone, key, a) for a in anchors)]
        if not trusted:
            raise DNSSECBogus(f"{zone} DNSKEY: no key matches the DS records or trust anchor")
        self._verify(keys, sigs, _Zone(SECURE, zone, dns.rdataset.from_rdata_list(keys.ttl, trusted)))
        return keys

    @defer.inlineCallbacks
    def _find_cut(self, parent, child):
        """Is ``child`` a zone cut below the secure zone ``parent``? → (result, ttl) with result
        None (no cut), a secure _Zone for a signed child, or an insecure/indeterminate _Zone."""
        response, _ = yield self._ask(child, dns.rdatatype.DS)
        ds = _find(response.answer, child, dns.rdatatype.DS)
        if ds is not None:
            sigs = _find(response.answer, child, dns.rdatatype.RRSIG, dns.rdatatype.DS)
            if sigs is None or not any(sig.signer == parent.name for sig in sigs):
                raise DNSSECBogus(f"{child} DS: not signed by its parent zone {parent.name}")
            self._verify(ds, sigs, parent)
            usable = [record for record in ds if _usable_ds(record)]
            if not usable:
                return _Zone(INSECURE), ds.ttl    # RFC 4035 §5.2: only unknown algorithms
            keys = yield self._trusted_keys(child, usable)
            return _Zone(SECURE, child, keys), min(ds.ttl, keys.ttl)
        cname = _find(response.answer, child, dns.rdatatype.CNAME)
        if cname is not None:
            level = yield self._rrset_security(cname, response)
            return (None if level == SECURE else _Zone(level)), cname.ttl
        status = self._denial(response, parent).ds_status(child)
        ttl = _negative_ttl(response)
        if status == "insecure":
            return _Zone(INSECURE), ttl
        if status == "not-delegation":
            return None, ttl
        return _Zone(INDETERMINATE), 0
