"""Where to connect for an XMPP domain: SRV targets (RFC 6120 §3.2, XEP-0368) and addresses.

``lookup_server_targets(resolver, domain)`` asks for ``_xmpps-server._tcp.DOMAIN``
(direct TLS) and ``_xmpp-server._tcp.DOMAIN`` (STARTTLS) at once and merges them into
one list ordered as RFC 2782 says — by priority, then by weighted random choice
within a priority — since XEP-0368 §3 mixes both services' priorities and weights.

- A lone SRV record with target "." means that service is decidedly not offered
  (RFC 2782). If neither service is offered that way, the list is empty: the domain
  has no XMPP service, and there is no A/AAAA fallback (XEP-0368 §5).
- When neither SRV name has records, the fallback is the domain itself on 5269 with
  STARTTLS (RFC 6120 §3.2.2).
- A bogus SRV answer (DNSSECBogus) or a failed lookup (DNSLookupError) fails the
  whole Deferred: RFC 7673 §3.1 says to abort the connection attempt, not fall back.

``Target.secure`` is whether the SRV answer (or the proof that there is none) was
DNSSEC-secure; RFC 7673 §4.1 then lets the certificate name the target host too, and
DANE applies only to secure targets (``summitd.dns.dane``). Addresses come from
``lookup_addresses``, with their own security. Client-side variants (``_xmpps-client``,
``_xmpp-client``, 5222) are ``lookup_client_targets``.
"""

import random
from dataclasses import dataclass

import dns.name
from twisted.internet import defer

from summitd.dns.resolver import INDETERMINATE, SECURE, DNSSECBogus, weakest

SERVER_SERVICES = (("_xmpps-server._tcp", True), ("_xmpp-server._tcp", False))
CLIENT_SERVICES = (("_xmpps-client._tcp", True), ("_xmpp-client._tcp", False))
SERVER_PORT = 5269
CLIENT_PORT = 5222


@dataclass(frozen=True)
class Target:
    host: str           # ASCII (A-label) host name, without the final dot
    port: int
    direct_tls: bool    # XEP-0368: TLS from the first byte; otherwise STARTTLS
    secure: bool        # the SRV answer (or its absence) was DNSSEC-secure


@dataclass(frozen=True)
class SRVAnswer:
    """One SRV name's answer, kept for reporting (``summitctl check dns``)."""
    name: str
    direct_tls: bool
    answer: object      # summitd.dns.resolver.Answer


@dataclass(frozen=True)
class Addresses:
    host: str
    addresses: tuple    # IPv6 first, then IPv4 (text)
    security: str       # the weakest security among the answers that had records


def order_srv(items, rng, record=lambda item: item):
    """RFC 2782 ordering of ``items`` whose ``record(item)`` has ``priority`` and ``weight``:
    ascending priority; within one, repeatedly pick an item with probability proportional
    to its weight (zero-weight items sit first in the running sum, so they are picked only
    when the random number is 0). ``rng.randint(a, b)`` is inclusive, as in ``random``."""
    ordered = []
    for priority in sorted({record(item).priority for item in items}):
        pending = sorted((item for item in items if record(item).priority == priority),
                         key=lambda item: record(item).weight != 0)
        while pending:
            chosen = rng.randint(0, sum(record(item).weight for item in pending))
            running = 0
            for index, item in enumerate(pending):
                running += record(item).weight
                if running >= chosen:
                    ordered.append(pending.pop(index))
                    break
    return ordered


def _unavailable(answer):
    """RFC 2782: one record whose target is "." — the service is decidedly not available."""
    return len(answer.records) == 1 and answer.records[0].target.to_text() == "."


@defer.inlineCallbacks
def lookup_srv(resolver, domain, services=SERVER_SERVICES):
    """Deferred[list[SRVAnswer]] for each service name of ``domain``, looked up in parallel."""
    names = [(f"{service}.{domain}", direct_tls) for service, direct_tls in services]
    results = yield defer.DeferredList([resolver.query(name, "SRV") for name, _ in names],
                                       consumeErrors=True)
    failures = [result for ok, result in results if not ok]
    for failure in failures:                 # a bogus answer outranks a timeout
        if failure.check(DNSSECBogus):
            failure.raiseException()
    if failures:
        failures[0].raiseException()
    return [SRVAnswer(name, direct_tls, result) for (name, direct_tls), (_, result) in zip(names, results)]


def targets_from_srv(domain, answers, default_port=SERVER_PORT, rng=None):
    """The ordered targets for ``answers`` (from ``lookup_srv``); see the module docstring."""
    rng = rng or random.SystemRandom()
    offered = [a for a in answers if a.answer.records and not _unavailable(a.answer)]
    if not offered:
        if any(a.answer.records for a in answers):
            return []                        # every service with records said "."
        secure = all(a.answer.security == SECURE for a in answers)
        host = dns.name.from_text(domain).to_text(omit_final_dot=True)
        return [Target(host, default_port, False, secure)]
    entries = [(record, a) for a in offered for record in a.answer.records]
    return [Target(record.target.to_text(omit_final_dot=True), record.port, a.direct_tls,
                   a.answer.security == SECURE)
            for record, a in order_srv(entries, rng, record=lambda entry: entry[0])]


@defer.inlineCallbacks
def lookup_targets(resolver, domain, services, default_port, rng=None):
    answers = yield lookup_srv(resolver, domain, services)
    return targets_from_srv(domain, answers, default_port, rng)


def lookup_server_targets(resolver, domain, rng=None):
    """Deferred[list[Target]] for a server-to-server connection to ``domain``."""
    return lookup_targets(resolver, domain, SERVER_SERVICES, SERVER_PORT, rng)


def lookup_client_targets(resolver, domain, rng=None):
    """Deferred[list[Target]] for a client-to-server connection to ``domain``."""
    return lookup_targets(resolver, domain, CLIENT_SERVICES, CLIENT_PORT, rng)


@defer.inlineCallbacks
def lookup_addresses(resolver, host):
    """Deferred[Addresses] from AAAA and A lookups made in parallel.

    Raises DNSSECBogus if either answer is bogus. One failed lookup is tolerated when
    the other has addresses; both failing raise the first failure. RFC 7673 §3.2: do
    not connect when the resulting security is "indeterminate" (the caller decides).
    """
    results = yield defer.DeferredList([resolver.query(host, "AAAA"), resolver.query(host, "A")],
                                       consumeErrors=True)
    answers = [result for ok, result in results if ok]
    for ok, result in results:
        if not ok and (result.check(DNSSECBogus) or not any(a.records for a in answers)):
            result.raiseException()
    with_records = [a for a in answers if a.records] or answers
    security = weakest(*(a.security for a in with_records)) if with_records else INDETERMINATE
    return Addresses(host, tuple(record.address for a in answers for record in a.records), security)

