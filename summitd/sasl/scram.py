"""SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants, server side.

RFC 5802 defines SCRAM and SCRAM-SHA-1, RFC 7677 SCRAM-SHA-256. SCRAM lets a
client prove it knows the password without sending it, lets the client check
that the server holds the account's keys, and (with -PLUS) binds the exchange
to the TLS channel so that a man in the middle cannot relay it (RFC 5802 §6,
channel-binding types from RFC 5929 and RFC 9266). The server only ever stores
the salted keys (``ScramCredentials``), never the password.

On top of RFC 5802, the server-first-message carries XEP-0474's "h"
attribute: a hash of the mechanisms and channel-binding types the server
advertised, which the client checks to detect a man in the middle who edited
those lists to force a weaker choice.

Unknown users get a fake but stable salt derived from the server secret, and
fail only at the last step, exactly as a wrong password does, so that the
exchange does not tell whether an account exists.
"""

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Callable, Sequence

from zope.interface import implementer

from summitd.sasl.credentials import SCRAM_HASHES, ScramCredentials
from summitd.sasl.mechanism import (
    Challenge, Failure, ISASLMechanism, Malformed, SASLContext, StepwiseMechanism, Success,
)
from summitd.sasl.prep import prepare_password, prepare_username


#: Iteration count announced for unknown users (RFC 5802 §5.1 asks at least 4096).
FAKE_ITERATIONS = 4096

#: Length of the salts we make, real (derive_credentials) or fake.
SALT_LENGTH = 16

#: RFC 5802 §7 "printable": printable ASCII except ",".
_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+\Z")
#: RFC 5802 §7 "cb-name" (RFC 5056 §7).
_CB_NAME = re.compile(r"[A-Za-z0-9.\-]+\Z")
#: RFC 5802 §7 "saslname": no NUL or ",", and "=" only in "=2C" or "=3D".
_SASLNAME = re.compile(r"(?:[^\x00,=]|=2C|=3D)+\Z")
#: RFC 5802 §7 "attr-val": one letter, "=", a non-empty value without NUL.
_ATTR_VAL = re.compile(r"([A-Za-z])=([^\x00]+)\Z")


def _hmac(hash_name: str, key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hash_name).digest()


def _hash(hash_name: str, data: bytes) -> bytes:
    return hashlib.new(hash_name, data).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_hash_name(hash_name: str) -> None:
    if hash_name not in SCRAM_HASHES:
        raise ValueError(f"unsupported SCRAM hash: {hash_name!r}")


def derive_credentials(password: str, hash_name: str, iterations: int,
                       salt: bytes | None = None) -> ScramCredentials:
    """Compute the stored SCRAM keys for ``password`` (RFC 5802 §3)."""
    _check_hash_name(hash_name)
    if iterations < 1:
        raise ValueError("iterations must be positive")
    if salt is None:
        salt = os.urandom(SALT_LENGTH)
    salted = hashlib.pbkdf2_hmac(hash_name, prepare_password(password), salt, iterations)
    client_key = _hmac(hash_name, salted, b"Client Key")
    return ScramCredentials(
        hash_name=hash_name,
        salt=salt,
        iterations=iterations,
        stored_key=_hash(hash_name, client_key),
        server_key=_hmac(hash_name, salted, b"Server Key"),
    )


def fake_salt(secret: bytes, hash_name: str, username: str) -> bytes:
    """A salt for an account that does not exist: random-looking, but stable per user."""
    message = b"\x00".join([b"summitd fake SCRAM salt", hash_name.encode(), username.encode()])
    return hmac.new(secret, message, "sha256").digest()[:SALT_LENGTH]


def compute_downgrade_hash(hash_name: str, mechanisms: Sequence[str],
                           cb_types: Sequence[str] | None) -> str:
    """XEP-0474 §hash: base64 hash of the advertised mechanisms and channel-binding types."""
    def octet_sorted(names):  # "i;octet" collation (RFC 4790 §9.3)
        return sorted(name.encode("utf-8") for name in names)

    s = b"\x1e".join(octet_sorted(mechanisms))
    if cb_types is not None:
        s += b"\x1f" + b"\x1e".join(octet_sorted(cb_types))
    return _b64(_hash(hash_name, s))


def _random_nonce() -> str:
    """A server nonce: 24 random URL-safe base64 characters, so printable and comma-free."""
    return secrets.token_urlsafe(18)


def _decode_text(response: bytes | None) -> str:
    if not response:
        raise Malformed("empty message")
    try:
        return response.decode("utf-8")
    except UnicodeDecodeError:
        raise Malformed("not UTF-8") from None


def _decode_saslname(value: str) -> str:
    """Undo the "=2C" / "=3D" quoting of RFC 5802 §5.1."""
    if not _SASLNAME.match(value):
        raise Malformed("bad name encoding")
    return value.replace("=2C", ",").replace("=3D", "=")


def _decode_b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise Malformed("bad base64") from None


def _attributes(message: str) -> list[tuple[str, str]]:
    """Split ``a=x,b=y`` into pairs; the reserved "m" attribute is refused (RFC 5802 §5.1)."""
    pairs = []
    for part in message.split(","):
        match = _ATTR_VAL.match(part)
        if not match:
            raise Malformed("bad attribute")
        pairs.append((match.group(1), match.group(2)))
    if any(name == "m" for name, _ in pairs):
        raise Malformed("mandatory extensions are not supported")
    return pairs


@dataclass(frozen=True)
class _ClientFirst:
    gs2_header: str           # "n,," / "y,a=x," / "p=tls-exporter,," ...
    cb_flag: str              # "n", "y" or "p"
    cb_type: str | None       # the "p=" channel-binding type
    authzid: str | None
    bare: str                 # client-first-message-bare, as received
    username: str             # decoded, not prepared
    nonce: str


def _parse_client_first(message: str) -> _ClientFirst:
    parts = message.split(",", 2)
    if len(parts) != 3:
        raise Malformed("bad GS2 header")
    flag, authz, bare = parts
    if flag in ("n", "y"):
        cb_type = None
    elif flag.startswith("p=") and _CB_NAME.match(flag[2:]):
        cb_type = flag[2:]
    else:
        raise Malformed("bad GS2 header")
    if authz and not authz.startswith("a="):
        raise Malformed("bad GS2 header")
    authzid = _decode_saslname(authz[2:]) if authz else None
    attrs = _attributes(bare)
    if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r":
        raise Malformed("expected n= and r=")
    nonce = attrs[1][1]
    if not _PRINTABLE.match(nonce):
        raise Malformed("bad nonce")
    return _ClientFirst(
        gs2_header=f"{flag},{authz},", cb_flag=flag[0], cb_type=cb_type, authzid=authzid,
        bare=bare, username=_decode_saslname(attrs[0][1]), nonce=nonce,
    )


@dataclass(frozen=True)
class _ClientFinal:
    channel_binding: bytes    # decoded c=
    nonce: str
    without_proof: str        # client-final-message-without-proof, as received
    proof: bytes


def _parse_client_final(message: str) -> _ClientFinal:
    attrs = _attributes(message)
    if len(attrs) < 3 or attrs[0][0] != "c" or attrs[1][0] != "r" or attrs[-1][0] != "p":
        raise Malformed("expected c=, r= and p=")
    return _ClientFinal(
        channel_binding=_decode_b64(attrs[0][1]),
        nonce=attrs[1][1],
        without_proof=message.rsplit(",", 1)[0],
        proof=_decode_b64(attrs[-1][1]),
    )


@implementer(ISASLMechanism)
class ScramMechanism(StepwiseMechanism):
    """One server-side SCRAM exchange (RFC 5802 §5)."""

    def __init__(self, hash_name: str, plus: bool, context: SASLContext,
                 nonce_factory: Callable[[], str] = _random_nonce):
        _check_hash_name(hash_name)
        self.name = f"SCRAM-{SCRAM_HASHES[hash_name]}" + ("-PLUS" if plus else "")
        self._hash_name = hash_name
        self._plus = plus
        self._context = context
        self._nonce_factory = nonce_factory
        super().__init__()
        # Set once the server-first-message is sent:
        self._first = None
        self._credentials = None
        self._known_user = False
        self._nonce = None
        self._auth_message_prefix = None

    def _initial(self, response):
        if response is None:  # no initial response: ask for it with an empty challenge
            self._next = self._client_first
            return Challenge(b"")
        return self._client_first(response)

    def _client_first(self, response):
        first = _parse_client_first(_decode_text(response))
        try:
            self._username = prepare_username(first.username)
        except ValueError:
            return self._fail("not-authorized")
        refusal = self._check_cb_flag(first)
        if refusal is not None:
            return refusal
        d = self._context.lookup_credentials(self._username, self._hash_name)
        d.addCallback(self._server_first, first)
        return d

    def _check_cb_flag(self, first: _ClientFirst) -> Failure | None:
        """RFC 5802 §6: does the GS2 channel-binding flag fit this mechanism and server?"""
        if self._plus:
            if first.cb_type is None:
                return self._fail("malformed-request", "-PLUS requires channel binding")
            if first.cb_type not in self._context.channel_bindings:
                return self._fail("not-authorized", "unsupported channel-binding type")
        elif first.cb_type is not None:
            return self._fail("malformed-request", "channel binding requires a -PLUS mechanism")
        elif first.cb_flag == "y" and any(
                m.endswith("-PLUS") for m in self._context.advertised_mechanisms):
            # The client supports channel binding but saw no -PLUS offer: downgrade.
            return self._fail("not-authorized", "server does support channel binding")
        return None

    def _server_first(self, credentials: ScramCredentials | None, first: _ClientFirst):
        if credentials is None:
            credentials = ScramCredentials(
                hash_name=self._hash_name,
                salt=fake_salt(self._context.secret, self._hash_name, self._username),
                iterations=self._context.fake_iterations,
                stored_key=os.urandom(hashlib.new(self._hash_name).digest_size),
                server_key=os.urandom(hashlib.new(self._hash_name).digest_size),
            )
        elif credentials.hash_name != self._hash_name:
            raise ValueError(f"lookup returned {credentials.hash_name} keys for {self.name}")
        else:
            self._known_user = True
        server_nonce = self._nonce_factory()
        if not _PRINTABLE.match(server_nonce):
            raise ValueError("server nonce is not printable")
        self._first = first
        self._credentials = credentials
        self._nonce = first.nonce + server_nonce
        message = f"r={self._nonce},s={_b64(credentials.salt)},i={credentials.iterations}"
        if self._context.advertised_mechanisms:  # XEP-0474
            message += ",h=" + compute_downgrade_hash(
                self._hash_name, self._context.advertised_mechanisms,
                self._context.advertised_cb_types)
        self._auth_message_prefix = f"{first.bare},{message},"
        self._next = self._client_final
        return Challenge(message.encode("utf-8"))

    def _client_final(self, response):
        final = _parse_client_final(_decode_text(response))
        cbind_input = self._first.gs2_header.encode("utf-8")
        if self._first.cb_type is not None:
            cbind_input += self._context.channel_bindings[self._first.cb_type]()
        if not hmac.compare_digest(final.channel_binding, cbind_input):
            return self._fail("not-authorized", "channel bindings do not match")
        if not hmac.compare_digest(final.nonce.encode("utf-8"), self._nonce.encode("utf-8")):
            return self._fail("not-authorized", "nonce mismatch")

        keys = self._credentials
        auth_message = (self._auth_message_prefix + final.without_proof).encode("utf-8")
        signature = _hmac(self._hash_name, keys.stored_key, auth_message)
        if len(final.proof) != len(signature):
            return self._fail("not-authorized")
        client_key = bytes(p ^ s for p, s in zip(final.proof, signature))
        proof_ok = hmac.compare_digest(_hash(self._hash_name, client_key), keys.stored_key)
        if not (proof_ok and self._known_user):  # unknown user and wrong password look alike
            return self._fail("not-authorized")
        verifier = _hmac(self._hash_name, keys.server_key, auth_message)
        return Success(b"v=" + _b64(verifier).encode("ascii"), self._username, self._first.authzid)
