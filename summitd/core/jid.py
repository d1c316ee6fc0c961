"""JIDs (XMPP addresses) validated and normalised per RFC 7622.

Why not Twisted's own ``jid.JID``: it prepares parts with the stringprep
profiles of RFC 3920/6122 (nodeprep, nameprep, resourceprep), which RFC 7622
replaced with PRECIS (RFC 8264) and IDNA2008.  The two disagree on real input:
stringprep maps "ß" to "ss" and accepts symbols such as U+265A in a localpart,
PRECIS does neither.  A server has to enforce one set of rules (RFC 7622 §4),
so every JID in summitd is built here:

* localpart: PRECIS UsernameCaseMapped (RFC 8265 §3.3), then the extra
  prohibitions of RFC 7622 §3.3.1 (" & ' / : < > @);
* domainpart: one trailing dot stripped first (§3.2), IP literals kept (an
  IPv6 literal in brackets, canonicalised), anything else through IDNA2008 with
  UTS #46 mapping (which lowercases and width-maps) and stored as U-labels
  (§3.2.1), so comparing two stored domainparts is plain string equality;
* resourcepart: PRECIS OpaqueString (RFC 8265 §4.2);
* each part 1..1023 octets of UTF-8 after normalisation (§3.1).  The domain
  name is in addition bound by the DNS limits of RFC 1034 (63-octet labels,
  253 octets in all), which RFC 7622 §3.2 keeps and the ``idna`` package
  enforces.

Deliberate reading of the spec: example 18 of RFC 7622 §3.5 lists
"juliet@example.com/ foo" (leading space in the resourcepart) as not a JID,
but no normative rule forbids it: OpaqueString admits spaces anywhere.  We
follow the normative rules and accept it; refusing an address that other
servers route would lose stanzas.

Our ``JID`` subclasses Twisted's so that Twisted and wokkel code (which reads
``.user``, ``.host``, ``.resource`` and calls ``full()``, ``userhost()``,
``userhostJID()``) takes it as is, and it compares and hashes equal to a
Twisted JID with the same parts.  It never runs Twisted's stringprep, and it is
immutable, so the same instance can be shared from the parse cache.

Parsing runs PRECIS and IDNA, which are slow next to a dict lookup, and the
same addresses arrive on every stanza; ``parse_jid`` is therefore memoised in a
bounded LRU cache.  Failures are not cached (``functools.lru_cache`` does not
keep exceptions), and texts too long to be a common address bypass the cache,
so neither bad nor huge input can make it grow beyond its bound.
"""

import functools
import ipaddress

import idna
from precis_i18n import get_profile
from twisted.words.protocols.jabber import jid as _twisted_jid

__all__ = [
    "JID",
    "InvalidJID",
    "parse_jid",
    "jid_from_parts",
    "prepare_localpart",
    "prepare_domain",
    "prepare_resource",
    "set_parse_cache_size",
]

#: RFC 7622 §3.1: each part is 1 to 1023 octets once encoded as UTF-8.
MAX_PART_OCTETS = 1023

#: Default number of texts ``parse_jid`` remembers.
DEFAULT_CACHE_SIZE = 10_000

#: Texts longer than this (in code points) are parsed without the cache: real
#: addresses are far shorter, and it keeps the cache's memory at about
#: ``maxsize`` times a few kilobytes even when every entry is hostile.
CACHEABLE_TEXT_LENGTH = 256

# No PRECIS or IDNA mapping shrinks a string to under a quarter of its code
# points (width and case mapping are one-to-one or grow it; NFC composes at
# most a few code points into one of two or more octets), so a raw part longer
# than this can never fit in 1023 octets: refuse it before the expensive work.
_MAX_RAW_PART = 4 * MAX_PART_OCTETS

#: RFC 7622 §3.3.1: allowed by UsernameCaseMapped, forbidden in a localpart.
LOCALPART_EXCLUDED = frozenset("\"&'/:<>@")

# RFC 3490 §3.1 label separators: a trailing one is the "final dot" of §3.2.
_DOTS = (".", "\u3002", "\uff0e", "\uff61")

_USERNAME = get_profile("UsernameCaseMapped")
_OPAQUE = get_profile("OpaqueString")


class InvalidJID(ValueError, _twisted_jid.InvalidFormat):
    """The text is not a valid JID (answer with <jid-malformed/>, RFC 6120 §8.3.3.8).

    Also a Twisted ``InvalidFormat``, so wokkel code that guards JID parsing
    with ``except jid.InvalidFormat`` catches ours too.
    """


class JID(_twisted_jid.JID):
    """An immutable, RFC 7622-normalised JID usable wherever Twisted wants a JID.

    ``user`` and ``resource`` are ``None`` when absent, never empty.  Build one
    with ``parse_jid(text)`` or ``jid_from_parts(user, host, resource)``;
    ``JID(text)`` and ``JID(tuple=(user, host, resource))`` keep Twisted's
    calling convention but apply the RFC 7622 rules.  ``JID.from_prepared``
    skips normalisation for parts that are already normalised.

    (Twisted's base class has no ``__slots__``, so instances keep a
    ``__dict__`` whatever we declare; we don't pretend otherwise.)
    """

    def __init__(self, str=None, tuple=None):  # noqa: A002  (Twisted's names)
        if (str is None) == (tuple is None):
            raise TypeError("JID() takes exactly one of str or tuple")
        other = parse_jid(str) if tuple is None else jid_from_parts(*tuple)
        _set_parts(self, other.user, other.host, other.resource)

    @classmethod
    def from_prepared(cls, user, host, resource=None):
        """A JID from parts already normalised by this module (trusted, not checked).

        For parts read back from our own storage or taken from another JID.
        """
        self = cls.__new__(cls)
        _set_parts(self, user, host, resource)
        return self

    def __setattr__(self, name, value):
        raise AttributeError("JID is immutable")

    def __delattr__(self, name):
        raise AttributeError("JID is immutable")

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        # Re-validate on unpickling rather than trust the stream.
        return (jid_from_parts, (self.user, self.host, self.resource))

    @property
    def bare(self):
        """The bare JID (no resourcepart): ``self`` when already bare."""
        if self.resource is None:
            return self
        return JID.from_prepared(self.user, self.host, None)

    @property
    def is_bare(self):
        """True when there is no resourcepart."""
        return self.resource is None

    def userhostJID(self):
        """Twisted's name for ``bare``; returns our JID, not an interned Twisted one."""
        return self.bare

    def __str__(self):
        return self.full()

    def __repr__(self):
        return f"JID({self.full()!r})"


def _set_parts(jid, user, host, resource):
    object.__setattr__(jid, "user", user)
    object.__setattr__(jid, "host", host)
    object.__setattr__(jid, "resource", resource)


def _check_length(kind, prepared):
    try:
        size = len(prepared.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: not a Unicode string at all
        raise InvalidJID(f"{kind}: not valid Unicode") from None
    if size == 0:
        raise InvalidJID(f"{kind}: empty")
    if size > MAX_PART_OCTETS:
        raise InvalidJID(f"{kind}: longer than {MAX_PART_OCTETS} octets")
    return prepared


def _precheck(kind, text):
    if not isinstance(text, str):
        raise TypeError(f"{kind} must be str, not {type(text).__name__}")
    if not text:
        raise InvalidJID(f"{kind}: empty")
    if len(text) > _MAX_RAW_PART:
        raise InvalidJID(f"{kind}: longer than {MAX_PART_OCTETS} octets")


def _enforce(kind, profile, text):
    _precheck(kind, text)
    try:
        prepared = profile.enforce(text)
    except UnicodeError as e:  # precis_i18n: UnicodeEncodeError, reason like "DISALLOWED/spaces"
        raise InvalidJID(f"{kind}: {getattr(e, 'reason', 'not allowed')}") from None
    return _check_length(kind, prepared)


def prepare_localpart(text):
    """Normalise a localpart (RFC 7622 §3.3): UsernameCaseMapped plus §3.3.1."""
    prepared = _enforce("localpart", _USERNAME, text)
    bad = LOCALPART_EXCLUDED.intersection(prepared)
    if bad:
        raise InvalidJID(f"localpart: character {min(bad)!r} not allowed")
    return prepared


def prepare_resource(text):
    """Normalise a resourcepart (RFC 7622 §3.4): PRECIS OpaqueString."""
    return _enforce("resourcepart", _OPAQUE, text)


def prepare_domain(text):
    """Normalise a domainpart (RFC 7622 §3.2): IP literal or IDNA2008 U-labels."""
    _precheck("domainpart", text)
    if len(text) <= CACHEABLE_TEXT_LENGTH:
        return _prepare_domain_cached(text)
    return _prepare_domain(text)


def _prepare_domain(text):
    # §3.2: the final dot goes before any other canonicalisation.  Only one:
    # "example.com.." keeps an empty label and fails below.
    if text.endswith(_DOTS):
        text = text[:-1]
    if not text:
        raise InvalidJID("domainpart: empty")
    if text.startswith("["):
        return _prepare_ipv6_literal(text)
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        pass
    try:
        # UTS #46 mapping lowercases and width-maps; encode() then checks every
        # label against IDNA2008 (empty labels, hyphens, bidi, contextual rules,
        # A-labels that don't decode) and the DNS length limits; decode() gives
        # the U-label form we store.
        prepared = idna.decode(idna.encode(text, uts46=True))
    except (UnicodeError, ValueError) as e:
        raise InvalidJID(f"domainpart: {e}") from None
    if prepared.endswith("."):  # idna tolerates one trailing dot; we took ours off
        raise InvalidJID("domainpart: Empty Label")
    return _check_length("domainpart", prepared)


def _prepare_ipv6_literal(text):
    # RFC 3986 IP-literal.  Zone identifiers (RFC 6874) and IPvFuture mean
    # nothing to XMPP routing, so they are refused rather than guessed at.
    if not text.endswith("]") or "%" in text:
        raise InvalidJID("domainpart: malformed IP literal")
    try:
        address = ipaddress.IPv6Address(text[1:-1])
    except ValueError:
        raise InvalidJID("domainpart: malformed IPv6 address") from None
    # Canonical (RFC 5952) form so that [::1] and [0:0::1] compare equal.
    return f"[{address.compressed}]"


# Domains are few and shared by many JIDs, and IDNA is the slowest step.
_prepare_domain_cached = functools.lru_cache(maxsize=1024)(_prepare_domain)


def jid_from_parts(user, host, resource=None):
    """A JID from separate parts, each normalised; ``None`` means the part is absent."""
    return JID.from_prepared(
        None if user is None else prepare_localpart(user),
        prepare_domain(host),
        None if resource is None else prepare_resource(resource),
    )


def _parse(text):
    # RFC 7622 §3.1/§3.2: split on the separators before any mapping (a mapping
    # could turn a full-width character into one).  The resourcepart is all
    # after the first '/', so it may hold '@' and '/'; the localpart is what
    # comes before the first '@' ahead of that.
    head, slash, resource = text.partition("/")
    user, at, host = head.partition("@")
    if not at:
        user, host = None, head
    if at and not user:
        raise InvalidJID("localpart: empty")
    if slash and not resource:
        raise InvalidJID("resourcepart: empty")
    return jid_from_parts(user, host, resource if slash else None)


def _make_cache(maxsize):
    return functools.lru_cache(maxsize=maxsize)(_parse)


_parse_cached = _make_cache(DEFAULT_CACHE_SIZE)


def parse_jid(text):
    """Parse and normalise a JID string (RFC 7622); raises ``InvalidJID``.

    Results are cached (bounded: see ``parse_jid.cache_info()``); the returned
    JID is immutable and may be shared between callers.
    """
    if not isinstance(text, str):
        raise TypeError(f"JID must be str, not {type(text).__name__}")
    if len(text) > CACHEABLE_TEXT_LENGTH:
        return _parse(text)
    return _parse_cached(text)


def _cache_info():
    return _parse_cached.cache_info()


def _cache_clear():
    _parse_cached.cache_clear()
    _prepare_domain_cached.cache_clear()


parse_jid.cache_info = _cache_info
parse_jid.cache_clear = _cache_clear


def set_parse_cache_size(maxsize):
    """Replace ``parse_jid``'s cache with an empty one of ``maxsize`` entries (> 0)."""
    global _parse_cached
    if maxsize is None or maxsize <= 0:
        raise ValueError("the JID cache must be bounded and non-empty")
    _parse_cached = _make_cache(maxsize)


def jid_or_none(text):
    """``parse_jid(text)``, or None when ``text`` is None or not a valid JID (for addresses
    taken from stanzas, where a bad one means "no usable address", not an error)."""
    if text is None:
        return None
    try:
        return parse_jid(text)
    except InvalidJID:
        return None
