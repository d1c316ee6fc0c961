"""Message rate limits per account and per remote domain; remote domains blocked by configuration.

RFC 6120 §13.12 asks servers to limit what one client or one peer can make them do and
to answer the excess with ``policy-violation`` (§8.3.3.12); XEP-0205 (Best Practices to
Discourage Denial of Service Attacks) recommends per-entity rate limits. Spam comes
from accounts gone bad and from whole domains, so:

* each local account may send ``account_rate`` messages per second (bursts of
  ``account_burst``); the excess is refused with ``policy-violation`` (type wait) sent
  straight back to the session (hook ``STANZA_FROM_CLIENT`` at ``Priority.SECURITY``);
* each remote domain may send ``remote_rate`` stanzas per second (``remote_burst``) to
  this server's accounts and domains, or what ``domains."<domain>"`` says for it
  ({rate, burst}); the excess gets ``policy-violation`` (type wait);
* a domain in ``blocked_domains`` (or a subdomain of one) is refused both ways:
  inbound with ``policy-violation`` "… is blocked by this server", outbound with
  ``not-allowed`` (sent to the sending session). Errors and IQ results are never answered (no error loops) and
  are let through, so a refusal always reaches the refused.

Every check is a dict lookup and a token-bucket update (``core.ratelimit``), whose
memory is bounded however many senders there are.
"""

from dataclasses import dataclass

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.core.jid import InvalidJID, parse_jid
from summitd.core.ratelimit import RateLimiter
from summitd.extensions.base import Extension
from summitd.plugins.registration.policy import check_options


@dataclass(frozen=True)
class AbuseConfig:
    account_rate: float = 10.0
    account_burst: float = 50.0
    remote_rate: float = 50.0
    remote_burst: float = 200.0
    blocked_domains: frozenset = frozenset()
    domains: dict = None        # remote domain -> (rate, burst)


def _limit(table):
    return (isinstance(table, dict) and set(table) == {"rate", "burst"}
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in table.values()))


def parse_config(raw, path):
    """[extensions.abuse_limits] (see the module doc)."""
    positive = (lambda v: v > 0, "must be a number > 0")
    spec = {key: (float, getattr(AbuseConfig, key), *positive)
            for key in ("account_rate", "account_burst", "remote_rate", "remote_burst")}
    spec["blocked_domains"] = (list, [], lambda v: all(isinstance(d, str) and d for d in v), "must be a list of domains")
    spec["domains"] = (dict, {}, lambda v: all(_limit(t) for t in v.values()),
                       "must map domains to {rate = N, burst = N}")
    values, errors = check_options(raw, path, spec)
    if errors:
        raise ConfigError(errors)
    values["blocked_domains"] = frozenset(d.lower().rstrip(".") for d in values["blocked_domains"])
    values["domains"] = {d.lower(): (float(t["rate"]), float(t["burst"])) for d, t in values["domains"].items()}
    return AbuseConfig(**values)


def _is_reply(stanza):
    type = stanza.getAttribute("type")
    return type == "error" or (stanza.name == "iq" and type == "result")


class AbuseLimits(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        clock = context.clock
        self._accounts = RateLimiter(config.account_rate, config.account_burst, clock)
        self._remote = RateLimiter(config.remote_rate, config.remote_burst, clock)
        self._special = {domain: RateLimiter(rate, burst, clock)
                         for domain, (rate, burst) in (config.domains or {}).items()}
        context.hook(events.STANZA_FROM_CLIENT, self._from_client, Priority.SECURITY + 20)
        context.hook(events.STANZA_TO_ACCOUNT, self._inbound, Priority.SECURITY + 200)
        context.hook(events.STANZA_TO_SERVER, self._inbound, Priority.SECURITY + 200)
        context.hook(events.STANZA_TO_REMOTE, self._outbound, Priority.SECURITY + 200)

    def blocked(self, host):
        """Whether ``host`` or a domain it is a subdomain of is blocked."""
        blocked = self.config.blocked_domains
        if not blocked:
            return False
        parts = host.split(".")
        return any(".".join(parts[i:]) in blocked for i in range(len(parts)))

    def _from_client(self, session, stanza):
        if stanza.name != "message" or _is_reply(stanza):
            return None
        if self._accounts.allow((session.jid.user, session.jid.host)):
            return None
        session.send(StanzaError("policy-violation", (
            f"message rate limit exceeded: an account may send {self.config.account_rate:g} messages per "
            f"second (bursts of {self.config.account_burst:g})"), type="wait").reply_to(stanza))
        return True

    def _inbound(self, stanza, to_jid):
        try:
            host = parse_jid(stanza.getAttribute("from", "")).host
        except InvalidJID:
            return None
        if host in self.context.domains:
            return None
        if self.blocked(host):
            return self._refuse(stanza, StanzaError("policy-violation", f"{host} is blocked by this server"))
        limiter = self._special.get(host, self._remote)
        if limiter.allow(host):
            return None
        return self._refuse(stanza, StanzaError(
            "policy-violation", f"too many stanzas from {host}: at most {limiter.rate:g} per second", type="wait"))

    def _outbound(self, stanza, to_jid):
        if _is_reply(stanza) or not self.blocked(to_jid.host):
            return None
        # Straight to the sender's session: routed, the error would come "from" the blocked
        # domain and be refused on its way in.
        try:
            session = self.context.session(parse_jid(stanza.getAttribute("from", "")))
        except InvalidJID:
            session = None
        if session is not None:
            session.send(StanzaError("not-allowed", f"{to_jid.host} is blocked by this server").reply_to(stanza))
        return True

    def _refuse(self, stanza, error):
        if not _is_reply(stanza) and stanza.getAttribute("from") is not None:
            self.context.route(error.reply_to(stanza))
        return True


def build(context, config):
    return AbuseLimits(context, config or AbuseConfig())
