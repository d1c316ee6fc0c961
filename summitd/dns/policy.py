"""What we demand of a remote server, per domain, and the allow/refuse decision.

::

    [s2s.policy]
    require_valid_certificate = false   # refuse peers without a valid certificate (no dialback fallback)
    allow_dialback = true               # XEP-0220 when the certificate does not authenticate the peer
    require_dnssec = false              # outgoing: SRV (or its absence) and addresses must be secure
    require_dane = false                # outgoing: secure, usable TLSA records must exist and match
    blocked_domains = ["spam.example"]  # refused both ways, subdomains included

    [s2s.policy.domains."example.org"]  # overrides for one domain; unset keys keep the defaults
    require_dane = true

``decide(policy, domain, facts)`` applies, in order: blocked domains; DNSSEC-bogus or
indeterminate address/TLSA answers (RFC 7673 §3.2, §3.4: do not connect); require_dnssec;
DANE — secure usable TLSA records must match the certificate, whatever the PKIX verdict
(RFC 7673 §4.2) — and require_dane; then the certificate (RFC 6125 via the caller's
verdict); then dialback. Facts left at None (an incoming stream has no SRV lookup) are
not judged. The reason string is what the log line and ``summitctl check dns`` show.
"""

from dataclasses import dataclass, field, replace

from summitd.config import ConfigError, Checker, valid_domain
from summitd.dns.dane import DANE_EE, DANE_TA, USAGE_NAMES, dane_applies
from summitd.dns.resolver import INDETERMINATE, SECURE

_FLAGS = ("require_valid_certificate", "allow_dialback", "require_dnssec", "require_dane")


@dataclass(frozen=True)
class RemotePolicy:
    require_valid_certificate: bool = False
    allow_dialback: bool = True
    require_dnssec: bool = False
    require_dane: bool = False


@dataclass(frozen=True)
class PolicyConfig:
    default: RemotePolicy = RemotePolicy()
    domains: dict = field(default_factory=dict)     # domain -> RemotePolicy
    blocked: frozenset = frozenset()

    def for_domain(self, domain):
        return self.domains.get(domain.lower().rstrip("."), self.default)

    def is_blocked(self, domain):
        """``domain`` or one of its parent domains is blocked."""
        labels = domain.lower().rstrip(".").split(".")
        return any(".".join(labels[i:]) in self.blocked for i in range(len(labels)))


@dataclass(frozen=True)
class SecurityFacts:
    """What is known about one connection; None means not looked up / not applicable."""
    srv_security: str | None = None       # the SRV answer, or the proof that there is none
    address_security: str | None = None   # summitd.dns.srv.Addresses.security
    tlsa: object = None                   # the TLSA Answer, when RFC 7673 let us ask
    dane: object = None                   # dane_verdict(...) for the presented chain
    certificate_valid: bool = False       # PKIX chain and RFC 6125 name both good
    certificate_name_ok: bool = False     # the RFC 6125 name check alone (DANE-TA needs it)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    authentication: str | None = None     # "dane", "certificate" or "dialback" when allowed


def _refuse(reason):
    return Decision(False, reason)


def _dane_decision(facts):
    """The decision when secure usable TLSA records exist (RFC 7673 §4.2)."""
    verdict = facts.dane
    if verdict is None:
        return _refuse("TLSA records are DNSSEC-secure but no certificate was checked against them")
    if not verdict.matched:
        return _refuse("certificate does not match the DNSSEC-secure TLSA records (DANE)")
    usage = USAGE_NAMES[verdict.usage]
    if verdict.usage == DANE_EE:
        return Decision(True, f"certificate matches TLSA ({usage})", "dane")
    if verdict.usage == DANE_TA and facts.certificate_name_ok:
        return Decision(True, f"certificate matches TLSA ({usage}) and names the domain", "dane")
    if verdict.usage != DANE_TA and facts.certificate_valid:
        return Decision(True, f"certificate matches TLSA ({usage}) and is valid", "dane")
    return _refuse(f"certificate matches TLSA ({usage}) but is not valid for the domain")


def decide(policy, domain, facts):
    """Allow or refuse a connection with ``domain`` given ``facts``; returns a Decision."""
    if policy.is_blocked(domain):
        return _refuse(f"{domain} is blocked by policy")
    rules = policy.for_domain(domain)
    if INDETERMINATE in (facts.address_security, getattr(facts.tlsa, "security", None)):
        return _refuse("DNSSEC status of the target's address or TLSA records is indeterminate")
    dns_known = facts.srv_security is not None and facts.address_security is not None
    if rules.require_dnssec and dns_known and SECURE != facts.srv_security:
        return _refuse(f"policy requires DNSSEC but the SRV lookup was {facts.srv_security}")
    if rules.require_dnssec and dns_known and SECURE != facts.address_security:
        return _refuse(f"policy requires DNSSEC but the address lookup was {facts.address_security}")
    if dane_applies(facts.tlsa):
        return _dane_decision(facts)
    if rules.require_dane and dns_known:
        return _refuse("policy requires DANE but there are no DNSSEC-secure usable TLSA records")
    if facts.certificate_valid:
        return Decision(True, "certificate is valid for the domain", "certificate")
    if rules.require_valid_certificate:
        return _refuse("certificate is not valid for the domain and policy requires a valid one")
    if rules.allow_dialback:
        return Decision(True, "certificate not valid for the domain: dialback (XEP-0220) allowed",
                        "dialback")
    return _refuse("certificate is not valid for the domain and dialback is not allowed")


def _flags(c, table, path, base):
    return replace(base, **{key: c.get(table, path, key, bool, getattr(base, key)) for key in _FLAGS})


def parse_policy_config(raw, path="s2s.policy"):
    """Validate the ``[s2s.policy]`` table; raises ConfigError with key paths."""
    if not isinstance(raw, dict):
        raise ConfigError([(path, "must be a table")])
    c = Checker()
    c.unknown(raw, path, set(_FLAGS) | {"blocked_domains", "domains"})
    default = _flags(c, raw, path, RemotePolicy())
    blocked = c.strings(raw, path, "blocked_domains", (), check=valid_domain,
                        message="must be a list of domain names")
    domains = {}
    table = c.table(raw, f"{path}.domains")
    for domain, overrides in table.items():
        key = f'{path}.domains."{domain}"'
        if not valid_domain(domain):
            c.errors.append((key, "is not a valid domain name"))
        elif not isinstance(overrides, dict):
            c.errors.append((key, "must be a table of policy options"))
        else:
            c.unknown(overrides, key, set(_FLAGS))
            domains[domain.lower()] = _flags(c, overrides, key, default)
    if c.errors:
        raise ConfigError(c.errors)
    return PolicyConfig(default=default, domains=domains,
                        blocked=frozenset(d.lower().rstrip(".") for d in blocked))
