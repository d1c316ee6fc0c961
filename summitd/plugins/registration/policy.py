"""Who may register where: per-domain policy, rate limits and username rules.

Each hosted domain is ``closed`` (accounts are made by operators only), ``invite``
(XEP-0401 invitations only) or ``open`` (anyone who completes the domain's
challenges, XEP-0389). The defaults come from ``[extensions.registration]`` and a
domain overrides them in ``[extensions.registration.domains."<domain>"]``.

Rate limits (RFC 6120 §13.12 asks for limits per address; XEP-0389 §Security asks
servers to "take measures to prevent abuse"): registration *attempts* are counted
per source address (a flow started, a legacy submission, an invitation token tried)
and *accounts created* per domain, both token buckets from ``core.ratelimit``.

Usernames: a small built-in list of role names (RFC 2142 mailboxes and the usual
system names) plus ``reserved`` from the config are refused, and so is any name
whose *skeleton* equals the skeleton of a reserved name or of an existing account.
The skeleton is a cheap stand-in for UTS #39 confusable detection built from what
the standard library has: the PRECIS-prepared localpart (RFC 8265), compatibility
decomposition (NFKD) without combining marks, a short table of Cyrillic and Greek
letters that look like Latin ones, look-alike digits and letter pairs (0/o, 1/l/i,
rn/m, vv/w), and separators dropped. "аdmin" (Cyrillic а), "Adm1n", "ad.min" and
"ädmin" all share the skeleton of "admin".
"""

import math
import unicodedata
from dataclasses import dataclass, field, replace

from summitd.config import ConfigError
from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, prepare_localpart
from summitd.core.ratelimit import RateLimiter

CLOSED, INVITE, OPEN = "closed", "invite", "open"
MODES = (CLOSED, INVITE, OPEN)

#: Role and system names nobody registers (RFC 2142 §3-§5 plus common service names).
BUILTIN_RESERVED = frozenset({
    "abuse", "admin", "administrator", "hostmaster", "info", "mailer-daemon", "marketing",
    "moderator", "noc", "nobody", "noreply", "no-reply", "operator", "postmaster", "root",
    "sales", "security", "server", "staff", "support", "sysadmin", "system", "usenet",
    "uucp", "webmaster", "www", "xmpp", "jabber", "help", "register", "registration",
})

# Letters of other scripts that render like Latin ones, and Latin look-alikes.
_HOMOGLYPHS = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i",
    "ј": "j", "ѕ": "s", "ԁ": "d", "һ": "h", "ӏ": "l", "к": "k", "м": "m", "т": "t",
    "в": "b", "н": "h", "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v",
    "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ɡ": "g", "ı": "i", "ł": "l",
    "ø": "o", "đ": "d", "0": "o", "1": "l", "i": "l", "|": "l", "3": "e", "5": "s",
    "$": "s", "@": "a",
})
_PAIRS = (("rn", "m"), ("vv", "w"), ("cl", "d"))
_SEPARATORS = frozenset("._-+~ ")


def skeleton(name):
    """A form shared by names that look alike (see the module doc)."""
    text = unicodedata.normalize("NFKD", name.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c) and c not in _SEPARATORS)
    text = text.translate(_HOMOGLYPHS).translate(_HOMOGLYPHS)     # twice: і -> i -> l
    for pair, single in _PAIRS:
        text = text.replace(pair, single)
    return text


# -- configuration ------------------------------------------------------------------------

@dataclass(frozen=True)
class DomainPolicy:
    """What registration looks like on one domain (every field can be set per domain)."""

    mode: str = CLOSED
    challenges: tuple = ("proof-of-work",)   # the steps of the open flow, in order
    legacy: bool = True                     # offer XEP-0077 where the flow fits it
    pow_bits: int = 20                      # XEP-0158 SHA-256 hashcash cost
    attempts_per_address: int = 10          # registration attempts per source address ...
    attempts_period: float = 3600.0         # ... per this many seconds
    accounts_per_domain: int = 100          # accounts created on the domain ...
    accounts_period: float = 3600.0         # ... per this many seconds
    min_password_length: int = 8


@dataclass(frozen=True)
class SigningKey:
    """A key of the XEP-0348 key set: an HMAC secret or an RSA public key (PEM)."""

    name: str
    method: str          # HMAC-SHA1 | RSA-SHA1
    secret: str = None
    public_key: bytes = None


@dataclass(frozen=True)
class RegistrationConfig:
    default: DomainPolicy = DomainPolicy()
    domains: dict = field(default_factory=dict)     # domain -> DomainPolicy
    signing_keys: dict = field(default_factory=dict)  # consumer key -> SigningKey
    reserved: frozenset = frozenset()
    admins: frozenset = frozenset()                 # bare JIDs that may create invitations
    user_invites: bool = False                      # every user may create contact invitations
    invite_ttl: float = 7 * 86400.0                 # default invitation lifetime (0: never expires)
    challenge_timeout: float = 45.0                 # seconds to finish a started flow (c2s's
                                                    # handshake_timeout bounds it too)
    signature_window: float = 300.0                 # XEP-0348 timestamps accepted within this

    def policy(self, host):
        return self.domains.get(host, self.default)


def check_options(raw, path, spec):
    """Validate ``raw`` against ``spec`` {key: (kind, default, check, message)}; returns
    (values, errors). ``kind`` is bool, int, float, str, list or dict."""
    values, errors = {}, []
    for key, value in raw.items():
        if key not in spec:
            errors.append((f"{path}.{key}", "unknown option"))
            continue
        kind, _, check, message = spec[key]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind in (int, float):
            ok = numeric and (kind is float or isinstance(value, int)) and math.isfinite(value)
        else:
            ok = isinstance(value, kind)
        if not ok or (check is not None and not check(value)):
            errors.append((f"{path}.{key}", message))
        else:
            values[key] = kind(value) if kind in (int, float) else value
    for key, (_, default, _, _) in spec.items():
        values.setdefault(key, default)
    return values, errors


def _names(value):
    return all(isinstance(v, str) and v for v in value)


_DOMAIN_SPEC = {
    "mode": (str, CLOSED, lambda v: v in MODES, f"must be one of {', '.join(MODES)}"),
    "challenges": (list, ["proof-of-work"], _names, "must be a list of challenge names"),
    "legacy": (bool, True, None, "must be true or false"),
    "pow_bits": (int, 20, lambda v: 4 <= v <= 32, "must be an integer from 4 to 32"),
    "attempts_per_address": (int, 10, lambda v: v >= 1, "must be an integer >= 1"),
    "attempts_period": (float, 3600.0, lambda v: v > 0, "must be a number > 0"),
    "accounts_per_domain": (int, 100, lambda v: v >= 1, "must be an integer >= 1"),
    "accounts_period": (float, 3600.0, lambda v: v > 0, "must be a number > 0"),
    "min_password_length": (int, 8, lambda v: 1 <= v <= 1024, "must be an integer from 1 to 1024"),
}

_GLOBAL_SPEC = {
    "domains": (dict, {}, None, "must be a table of domain tables"),
    "signing_keys": (dict, {}, None, "must be a table of key tables"),
    "reserved": (list, [], _names, "must be a list of usernames"),
    "admins": (list, [], _names, "must be a list of JIDs"),
    "user_invites": (bool, False, None, "must be true or false"),
    "invite_ttl": (float, 7 * 86400.0, lambda v: v >= 0, "must be a number of seconds >= 0"),
    "challenge_timeout": (float, 45.0, lambda v: v >= 1, "must be a number of seconds >= 1"),
    "signature_window": (float, 300.0, lambda v: v >= 1, "must be a number of seconds >= 1"),
}


def _domain_policy(raw, path, base):
    values, errors = check_options(raw, path, _DOMAIN_SPEC)
    given = {k: v for k, v in values.items() if k in raw}
    if "challenges" in given:
        given["challenges"] = tuple(given["challenges"])
    return replace(base, **given), errors


def _signing_key(name, raw, path):
    spec = {
        "method": (str, None, lambda v: v in ("HMAC-SHA1", "RSA-SHA1"), "must be HMAC-SHA1 or RSA-SHA1"),
        "secret": (str, None, lambda v: len(v) >= 16, "must be a string of at least 16 characters"),
        "public_key": (str, None, lambda v: "BEGIN PUBLIC KEY" in v, "must be a PEM public key"),
        "public_key_file": (str, None, None, "must be a file name"),
    }
    values, errors = check_options(raw, path, spec)
    if errors:
        return None, errors
    method = values["method"]
    if method is None:
        return None, [(f"{path}.method", "is required")]
    if method == "HMAC-SHA1":
        if not values["secret"]:
            return None, [(f"{path}.secret", "is required for HMAC-SHA1")]
        return SigningKey(name, method, secret=values["secret"]), []
    pem = values["public_key"]
    if values["public_key_file"]:
        try:
            with open(values["public_key_file"], encoding="ascii") as f:
                pem = f.read()
        except (OSError, UnicodeDecodeError) as e:
            return None, [(f"{path}.public_key_file", f"cannot be read: {e}")]
    if not pem:
        return None, [(f"{path}.public_key", "an RSA-SHA1 key needs public_key or public_key_file")]
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
        load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnicodeEncodeError):
        return None, [(f"{path}.public_key", "is not a PEM RSA public key")]
    return SigningKey(name, method, public_key=pem.encode("ascii")), []


def parse_config(raw, path):
    """[extensions.registration] (see the package doc for every option)."""
    global_raw = {k: v for k, v in raw.items() if k not in _DOMAIN_SPEC}
    domain_raw = {k: v for k, v in raw.items() if k in _DOMAIN_SPEC}
    values, errors = check_options(global_raw, path, _GLOBAL_SPEC)
    default, more = _domain_policy(domain_raw, path, DomainPolicy())
    errors += more
    domains = {}
    for name, table in (values["domains"] or {}).items():
        where = f"{path}.domains.{name}"
        if not isinstance(table, dict):
            errors.append((where, "must be a table"))
            continue
        domains[name], more = _domain_policy(table, where, default)
        errors += more
    keys = {}
    for name, table in (values["signing_keys"] or {}).items():
        where = f"{path}.signing_keys.{name}"
        if not isinstance(table, dict):
            errors.append((where, "must be a table"))
            continue
        key, more = _signing_key(name, table, where)
        errors += more
        if key is not None:
            keys[name] = key
    reserved = set()
    for name in values["reserved"]:
        try:
            reserved.add(prepare_localpart(name))
        except InvalidJID:
            errors.append((f"{path}.reserved", f"{name!r} is not a valid username"))
    if errors:
        raise ConfigError(errors)
    return RegistrationConfig(
        default=default, domains=domains, signing_keys=keys, reserved=frozenset(reserved),
        admins=frozenset(values["admins"]), user_invites=values["user_invites"],
        invite_ttl=values["invite_ttl"], challenge_timeout=values["challenge_timeout"],
        signature_window=values["signature_window"])


# -- the checks ---------------------------------------------------------------------------

def rate_limited(text):
    """The error every refused attempt gets (RFC 6120 §8.3.3.12, type wait: try later)."""
    return StanzaError("policy-violation", text, type="wait")


class Policy:
    """The running policy: limiters and the username rules."""

    def __init__(self, config, clock):
        self.config = config
        self._clock = clock
        self._attempts = {}     # host -> RateLimiter keyed by address
        self._accounts = {}     # host -> RateLimiter keyed by host
        reserved = BUILTIN_RESERVED | config.reserved
        self.reserved = frozenset(reserved)
        self._reserved_skeletons = frozenset(skeleton(name) for name in reserved)

    def for_host(self, host):
        return self.config.policy(host)

    def _limiter(self, table, host, count, period):
        limiter = table.get(host)
        if limiter is None:
            limiter = table[host] = RateLimiter(count / period, count, self._clock)
        return limiter

    def attempt(self, host, address):
        """Count one registration attempt from ``address``; raises when over the limit."""
        p = self.for_host(host)
        limiter = self._limiter(self._attempts, host, p.attempts_per_address, p.attempts_period)
        if not limiter.allow(address):
            wait = math.ceil(limiter.retry_after(address))
            raise rate_limited(f"too many registration attempts from your address; try again in {wait} s")

    def account_allowed(self, host):
        """Take one account from the domain's budget; raises when it is spent."""
        p = self.for_host(host)
        limiter = self._limiter(self._accounts, host, p.accounts_per_domain, p.accounts_period)
        if not limiter.allow(host):
            wait = math.ceil(limiter.retry_after(host))
            raise rate_limited(f"{host} accepts no more registrations for now; try again in {wait} s")

    def username(self, text):
        """The prepared username, or not-acceptable naming why (syntax, reserved name)."""
        if not text:
            raise StanzaError("not-acceptable", "a username is required")
        try:
            name = prepare_localpart(text)
        except InvalidJID as e:
            raise StanzaError("jid-malformed", f"the username is not valid: {e}") from None
        if name in self.reserved:
            raise StanzaError("not-acceptable", f"the username {name!r} is reserved")
        if skeleton(name) in self._reserved_skeletons:
            raise StanzaError("not-acceptable", f"the username {name!r} looks like a reserved name")
        return name

    def password(self, host, text):
        if not text:
            raise StanzaError("not-acceptable", "a password is required")
        least = self.for_host(host).min_password_length
        if len(text) < least:
            raise StanzaError("not-acceptable", f"the password needs at least {least} characters")
        return text
