"""What a server-side SASL mechanism is and what it can answer (RFC 4422 §3, RFC 6120 §6).

A mechanism is a little state machine: the stream code feeds it each client
response (already base64-decoded) and gets back a Deferred firing with one of
three outcomes: another challenge, success, or failure with one of the SASL
conditions of RFC 6120 §6.5. Mechanisms know nothing about XML or streams;
everything they need from the connection comes in a ``SASLContext``.
"""

from dataclasses import dataclass
from typing import Callable, Mapping, NamedTuple, Sequence

import zope.interface
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.logger import Logger

log = Logger()


class Challenge(NamedTuple):
    """The server wants another response: send ``data`` as a challenge."""

    data: bytes


class Success(NamedTuple):
    """Authenticated as ``username`` (a prepared localpart).

    ``data`` is the additional data to send with success (None when there is
    none); ``authzid`` is the authorization identity the client asked for, not
    yet checked, or None.
    """

    data: bytes | None
    username: str
    authzid: str | None


class Failure(NamedTuple):
    """Authentication failed with an RFC 6120 §6.5 ``condition``.

    ``username`` is the prepared username that was attempted, when known, so
    the caller can rate-limit per account; it is never sent to the client.
    """

    condition: str
    text: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class SASLContext:
    """What a mechanism may know about the connection and the server."""

    #: (prepared username, hash_name) -> Deferred[ScramCredentials | None]
    lookup_credentials: Callable[[str, str], Deferred]
    #: channel-binding types usable on this connection -> data getter; empty without TLS
    channel_bindings: Mapping[str, Callable[[], bytes]]
    #: exactly the mechanisms the server advertised (XEP-0474)
    advertised_mechanisms: Sequence[str]
    #: the channel-binding types advertised with XEP-0440, None when not advertised
    advertised_cb_types: Sequence[str] | None
    #: whether the stream is TLS-protected
    secure: bool
    #: server secret, used to derive fake salts for unknown users
    secret: bytes
    #: iteration count shown for unknown users: the configured one, so they look like real ones
    fake_iterations: int = 4096


class ISASLMechanism(zope.interface.Interface):
    """The server side of one SASL authentication exchange."""

    name = zope.interface.Attribute("The SASL mechanism name, e.g. 'SCRAM-SHA-256-PLUS'.")

    def step(response):
        """Process one client response and return a Deferred of the outcome.

        The first call gets the initial response: None if the client sent
        none, b"" if it sent an empty one ("="). The Deferred fires with a
        Challenge, Success or Failure; it never errbacks, and malformed input
        gives ``Failure("malformed-request")``.
        """


class Malformed(Exception):
    """The client's message does not parse: answered with malformed-request."""


class StepwiseMechanism:
    """The shared driver of mechanisms: each client message goes to the handler in
    ``self._next`` (set by the previous step; None while busy and once finished),
    and parse errors or surprises become Failure outcomes instead of exceptions."""

    name = "?"

    def __init__(self):
        self._next = self._initial
        self._username = None       # prepared, once known

    def _initial(self, response):
        raise NotImplementedError

    def step(self, response: bytes | None) -> Deferred:
        """Process one client response; see ISASLMechanism.step."""
        handler, self._next = self._next, None
        if handler is None:
            return defer.succeed(self._fail("malformed-request", "unexpected response"))
        d = defer.maybeDeferred(handler, response)
        d.addErrback(self._error)
        return d

    def _error(self, failure):
        if failure.check(Malformed):
            return self._fail("malformed-request", str(failure.value))
        log.failure("{name} exchange failed unexpectedly", failure, name=self.name)
        return self._fail("temporary-auth-failure")

    def _fail(self, condition: str, text: str | None = None) -> "Failure":
        return Failure(condition, text, self._username)
