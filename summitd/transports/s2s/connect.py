"""Where a remote domain is served, and opening the connection (RFC 6120 §3.2, XEP-0368,
RFC 7673).

``Connector.targets(domain)`` gives the configured static routes (``[s2s]
static_routes``: no DNS at all) or the SRV targets of ``summitd.dns.srv`` —
``_xmpps-server`` (direct TLS) and ``_xmpp-server`` merged in RFC 2782 order, with
the domain itself on 5269 as the fallback. ``candidates(target)`` resolves a target's
addresses and, when both the SRV answer and the addresses are DNSSEC-secure, its TLSA
records (``summitd.dns.dane``); each ``Candidate`` carries those facts so the
outgoing stream can apply the remote-domain policy to the certificate it is shown.
A bogus answer skips the target (RFC 7673 §3.1); a bogus SRV answer fails the lookup.
``connect(candidate, protocol)`` opens TCP, wrapped in TLS from the first byte for
direct TLS targets, bounded by ``tcp_timeout``.
"""

import ipaddress
from dataclasses import dataclass, replace

from twisted.internet import defer, endpoints

from summitd.dns.config import DNSConfig
from summitd.dns.dane import DANE_EE, DaneVerdict, dane_applies, lookup_target_tlsa
from summitd.dns.policy import SecurityFacts
from summitd.dns.resolver import INSECURE, SECURE, SecureResolver
from summitd.dns.srv import lookup_addresses, lookup_server_targets
from summitd.transports.s2s.certs import ClientTLS, ascii_domain


@dataclass(frozen=True)
class Target:
    """A host and port to try for a domain."""
    host: str
    port: int
    direct_tls: bool
    secure: bool = False        # the SRV answer was DNSSEC-secure
    static: bool = False        # from [s2s] static_routes: host is an IP address, no DNS


@dataclass(frozen=True)
class Candidate:
    """One address to connect to, with what DNS told us about it."""
    address: str
    port: int
    direct_tls: bool
    host: str
    srv_secure: bool = False
    facts: SecurityFacts = SecurityFacts()

    def __str__(self):
        address = f"[{self.address}]" if ":" in self.address else self.address
        how = "direct TLS" if self.direct_tls else "STARTTLS"
        return f"{self.host} {address}:{self.port} ({how})"


def optimistic(facts):
    """``facts`` with the best certificate imaginable: what policy refuses even then (blocked,
    DNSSEC required, indeterminate answers) need not be connected to at all."""
    dane = DaneVerdict(usable=True, matched=True, usage=DANE_EE) if dane_applies(facts.tlsa) else None
    return replace(facts, certificate_valid=True, certificate_name_ok=True, dane=dane)


class Connector:
    def __init__(self, reactor, config, dns_config=None, tls=None):
        self.reactor = reactor
        self.config = config
        self.dns_config = dns_config or DNSConfig()
        self.tls = tls
        self._resolver = None

    @property
    def resolver(self):
        """The DNSSEC-aware resolver, made on first use (static routes never need one)."""
        if self._resolver is None:
            self._resolver = SecureResolver(self.dns_config, self.reactor)
        return self._resolver

    def targets(self, domain):
        """Deferred[list[Target]] for ``domain``; DNS errors fail it."""
        routes = self.config.static_routes.get(domain)
        if routes is not None:
            return defer.succeed([Target(r.address, r.port, r.direct_tls, static=True) for r in routes])
        d = lookup_server_targets(self.resolver, ascii_domain(domain))
        return d.addCallback(lambda found: [Target(t.host, t.port, t.direct_tls, t.secure) for t in found])

    def candidates(self, target):
        """Deferred[list[Candidate]] for one target; DNS errors (bogus included) fail it."""
        if target.static:
            return defer.succeed([Candidate(target.host, target.port, target.direct_tls, target.host)])
        return defer.ensureDeferred(self._lookup(target))

    async def _lookup(self, target):
        addresses = await lookup_addresses(self.resolver, target.host)
        tlsa = await lookup_target_tlsa(self.resolver, target, addresses)
        facts = SecurityFacts(srv_security=SECURE if target.secure else INSECURE,
                              address_security=addresses.security, tlsa=tlsa)
        return [Candidate(address, target.port, target.direct_tls, target.host, target.secure, facts)
                for address in addresses.addresses]

    def connect(self, candidate, domain, protocol):
        """Deferred firing when ``protocol`` is connected to ``candidate``."""
        kind = endpoints.TCP6ClientEndpoint if ipaddress.ip_address(candidate.address).version == 6 \
            else endpoints.TCP4ClientEndpoint
        endpoint = kind(self.reactor, candidate.address, candidate.port, timeout=self.config.tcp_timeout)
        if candidate.direct_tls:
            endpoint = endpoints.wrapClientTLS(ClientTLS(self.tls.client_context, domain, direct_tls=True),
                                               endpoint)
        return endpoints.connectProtocol(endpoint, protocol)
