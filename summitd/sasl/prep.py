"""String preparation for SASL usernames and passwords (RFC 8265, RFC 7622 §3.3).

SCRAM (RFC 5802 §5.1) and PLAIN (RFC 4616 §2) both say the server must
prepare what the client sends before comparing it with what is stored. The
old SASLprep profile is superseded by PRECIS (RFC 8265): usernames use the
UsernameCaseMapped profile and passwords the OpaqueString profile. Since the
username an XMPP client authenticates with becomes the localpart of its JID,
it also gets the extra localpart rules of RFC 7622 §3.3 (excluded characters
and the 1023-octet limit), so that what SASL accepts is always a valid
localpart.
"""

import precis_i18n

_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")
_PASSWORD = precis_i18n.get_profile("OpaqueString")

#: RFC 7622 §3.3.1: allowed by PRECIS but not in an XMPP localpart.
_LOCALPART_EXCLUDED = frozenset("\"&'/:<>@")

#: RFC 7622 §3.3: a localpart is at most this many octets once prepared.
_LOCALPART_MAX_OCTETS = 1023


def prepare_username(s: str) -> str:
    """Return ``s`` prepared as an XMPP localpart; ValueError if it cannot be one."""
    if not isinstance(s, str):
        raise ValueError("username must be a str")
    try:
        prepared = _USERNAME.enforce(s)
    except UnicodeError as e:  # precis_i18n reports rule violations this way
        raise ValueError(f"invalid username: {e.reason}") from None
    if any(c in _LOCALPART_EXCLUDED for c in prepared):
        raise ValueError("invalid username: character not allowed in a localpart")
    if len(prepared.encode("utf-8")) > _LOCALPART_MAX_OCTETS:
        raise ValueError("invalid username: too long")
    return prepared


def prepare_password(s: str) -> bytes:
    """Return ``s`` prepared with OpaqueString, UTF-8 encoded; ValueError if invalid."""
    if not isinstance(s, str):
        raise ValueError("password must be a str")
    try:
        return _PASSWORD.enforce(s).encode("utf-8")
    except UnicodeError as e:
        raise ValueError(f"invalid password: {e.reason}") from None
