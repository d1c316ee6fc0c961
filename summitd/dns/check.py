"""What ``summitctl check dns DOMAIN`` prints: the lookups an outgoing s2s connection
would make, how secure each answer was, the TLSA records and whether the presented
certificate matches them, and what the remote-domain policy would decide.

``check_dns_lines(config, domain, reactor)`` fires with the lines (no trailing
newlines). ``config`` is the server configuration, read through ``config.dns`` (a
DNSConfig) and ``config.s2s.policy`` (a PolicyConfig) when present; a bare DNSConfig
works too (default policy). Certificates are fetched (``summitd.dns.probe``) only for
targets whose TLSA records apply, from the first of the target's addresses that answers.
"""

from dataclasses import replace

from twisted.internet import defer

from summitd.dns.config import DNSConfig
from summitd.dns.dane import USAGE_NAMES, dane_applies, dane_verdict, lookup_target_tlsa, tlsa_name
from summitd.dns.policy import PolicyConfig, SecurityFacts, decide
from summitd.dns.probe import fetch_certificate_chain
from summitd.dns.resolver import SECURE, DNSError, SecureResolver, weakest
from summitd.dns.srv import lookup_addresses, lookup_srv, targets_from_srv
from summitd.dns.transport import ExchangeError


def _configs(config):
    if isinstance(config, DNSConfig):
        return config, PolicyConfig()
    policy = getattr(getattr(config, "s2s", None), "policy", None)
    return config.dns, policy if isinstance(policy, PolicyConfig) else PolicyConfig()


def _records(answer):
    return ", ".join(record.to_text() for record in answer.records) or "no records"


def _certificate_line(verdict):
    if verdict.matched:
        return f"  certificate: matches TLSA ({USAGE_NAMES[verdict.usage]})"
    return "  certificate: does NOT match the TLSA records"


def _policy_lines(policy, domain, facts):
    valid = decide(policy, domain, replace(facts, certificate_valid=True, certificate_name_ok=True))
    invalid = decide(policy, domain, facts)

    def text(decision):
        return f"{'allow' if decision.allowed else 'refuse'}: {decision.reason}"
    if valid == invalid:
        return [f"  policy: {text(valid)}"]
    return [f"  policy, certificate valid for {domain}: {text(valid)}",
            f"  policy, certificate not valid: {text(invalid)}"]


@defer.inlineCallbacks
def _fetch_chain(reactor, addresses, target, domain, timeout):
    """(chain, None) from the first address that presents one, else (None, the last problem)."""
    problem = None
    for address in addresses:
        try:
            chain = yield fetch_certificate_chain(reactor, address, target.port, target.direct_tls, domain, timeout)
            return chain, None
        except (ExchangeError, defer.TimeoutError, OSError) as e:
            problem = e
    return None, problem


@defer.inlineCallbacks
def _target_lines(resolver, policy, domain, target, srv_security, reactor, fetch_certificates, timeout):
    lines = []
    try:
        addresses = yield lookup_addresses(resolver, target.host)
        lines.append(f"  addresses: {', '.join(addresses.addresses) or 'none'} ({addresses.security})")
        tlsa = yield lookup_target_tlsa(resolver, target, addresses)
    except DNSError as e:
        return lines + [f"  lookup failed: {e}", "  policy: refuse: do not connect to this target (RFC 7673)"]
    if tlsa is None:
        lines.append("  TLSA: not looked up (RFC 7673: needs a secure SRV answer and secure addresses)")
    else:
        lines.append(f"  TLSA {tlsa_name(target.host, target.port)}: {tlsa.security}: {_records(tlsa)}")
    verdict = None
    if dane_applies(tlsa) and fetch_certificates and addresses.addresses:
        chain, problem = yield _fetch_chain(reactor, addresses.addresses, target, domain, timeout)
        if chain is None:
            lines.append(f"  certificate: could not be fetched ({problem})")
        else:
            verdict = dane_verdict(tlsa.records, chain)
            lines.append(_certificate_line(verdict))
    facts = SecurityFacts(srv_security=srv_security, address_security=addresses.security, tlsa=tlsa, dane=verdict)
    return lines + _policy_lines(policy, domain, facts)


@defer.inlineCallbacks
def check_dns_lines(config, domain, reactor, fetch_certificates=True, rng=None):
    """Deferred[list[str]]: the report for ``domain``; see the module docstring."""
    dns_config, policy = _configs(config)
    resolver = SecureResolver(dns_config, reactor)
    servers = ", ".join(f"{host}:{port}" for host, port in resolver.servers)
    anchor = dns_config.trust_anchor or "the root zone's KSKs"
    lines = [f"DNS for {domain}: mode {dns_config.mode}, resolvers {servers}"
             + (f", trust anchor {anchor}" if dns_config.mode == "validate" else "")]
    if policy.is_blocked(domain):
        lines.append(f"policy: {domain} is blocked")
    try:
        answers = yield lookup_srv(resolver, domain)
    except DNSError as e:
        return lines + [f"SRV lookup failed: {e}", "policy: refuse: no connection attempt (RFC 7673 §3.1)"]
    for answer in answers:
        lines.append(f"SRV {answer.name}: {answer.answer.security}: {_records(answer.answer)}")
    targets = targets_from_srv(domain, answers, rng=rng)
    if not targets:
        return lines + ["no XMPP service: the SRV records say it is decidedly not available"]
    srv_security = weakest(*(answer.answer.security for answer in answers))
    for number, target in enumerate(targets, 1):
        method = "direct TLS" if target.direct_tls else "STARTTLS"
        lines.append(f"target {number}: {target.host} port {target.port} ({method}), "
                     f"SRV {'secure' if target.secure else 'not secure'}")
        more = yield _target_lines(resolver, policy, domain, target, SECURE if target.secure else srv_security,
                                   reactor, fetch_certificates, dns_config.timeout)
        lines.extend(more)
    return lines
