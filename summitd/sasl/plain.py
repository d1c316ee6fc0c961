"""The PLAIN mechanism, server side (RFC 4616).

PLAIN sends the password itself, so it is only acceptable inside TLS (RFC
4616 §5, RFC 6120 §13.8.3): without it the mechanism refuses with
"encryption-required". Accounts store only SCRAM keys, never the password, so
the password is checked by deriving StoredKey again from the stored salt and
iteration count (RFC 5802 §3) and comparing. Unknown users go through the same
work with a fake salt, so they cannot be told apart from a wrong password.
"""

import hmac

from twisted.internet import defer
from zope.interface import implementer

from summitd.sasl.credentials import ScramCredentials
from summitd.sasl.mechanism import (
    Challenge, Failure, ISASLMechanism, Malformed, SASLContext, StepwiseMechanism, Success,
)
from summitd.sasl.prep import prepare_username
from summitd.sasl.scram import derive_credentials, fake_salt


#: Which stored SCRAM keys to verify against, best first.
_HASH_PREFERENCE = ("sha256", "sha1")


def _parse(message: bytes) -> tuple[str | None, str, str]:
    """Split ``authzid NUL authcid NUL passwd`` (RFC 4616 §2); the authzid may be empty."""
    fields = message.split(b"\x00")
    if len(fields) != 3:
        raise Malformed("expected authzid NUL authcid NUL passwd")
    try:
        authzid, authcid, password = (field.decode("utf-8") for field in fields)
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None
    if not authcid or not password:
        raise Malformed("empty authcid or password")
    return authzid or None, authcid, password


@implementer(ISASLMechanism)
class PlainMechanism(StepwiseMechanism):
    """One server-side PLAIN exchange."""

    name = "PLAIN"

    def __init__(self, context: SASLContext):
        super().__init__()
        self._context = context

    def _initial(self, response):
        if not self._context.secure:
            return Failure("encryption-required")
        if response is None:  # no initial response: ask for it with an empty challenge
            self._next = self._authenticate
            return Challenge(b"")
        return self._authenticate(response)

    def _authenticate(self, response):
        if response is None:
            raise Malformed("empty message")
        authzid, authcid, password = _parse(response)
        try:
            self._username = prepare_username(authcid)
        except ValueError:
            return Failure("not-authorized")
        d = self._lookup(0)
        d.addCallback(self._check_password, password, authzid)
        return d

    def _lookup(self, index: int) -> defer.Deferred:
        """The stored keys for the first hash in _HASH_PREFERENCE that has any."""
        d = self._context.lookup_credentials(self._username, _HASH_PREFERENCE[index])
        if index + 1 < len(_HASH_PREFERENCE):
            d.addCallback(lambda found: found if found is not None else self._lookup(index + 1))
        return d

    def _check_password(self, stored: ScramCredentials | None, password: str, authzid):
        known = stored is not None
        if not known:  # do the same work as for a real account, then fail
            stored = ScramCredentials(
                hash_name=_HASH_PREFERENCE[0],
                salt=fake_salt(self._context.secret, _HASH_PREFERENCE[0], self._username),
                iterations=self._context.fake_iterations, stored_key=b"", server_key=b"")
        try:
            candidate = derive_credentials(
                password, stored.hash_name, stored.iterations, stored.salt)
        except ValueError:  # the password is not a valid OpaqueString
            return self._fail("not-authorized")
        matches = hmac.compare_digest(candidate.stored_key, stored.stored_key)
        if not (matches and known):
            return self._fail("not-authorized")
        return Success(None, self._username, authzid)
