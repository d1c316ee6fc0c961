"""Which SASL mechanisms the server offers, and in what order (RFC 6120 §6.3.3).

The list follows RFC 6120 §6.3.3's advice to prefer stronger mechanisms:
channel-bound SCRAM first (only when the connection has channel bindings,
RFC 5802 §6), then plain SCRAM, then PLAIN, which is only offered over TLS
(RFC 6120 §13.8.3). SCRAM-SHA-1 stays for clients that know nothing better
(RFC 5802 §4 makes it mandatory to implement).
"""

from typing import Iterable

from summitd.sasl.mechanism import ISASLMechanism, SASLContext
from summitd.sasl.plain import PlainMechanism
from summitd.sasl.scram import ScramMechanism

#: Every mechanism we implement, in server preference order.
MECHANISM_NAMES = (
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
)

#: SCRAM mechanism name -> (hashlib name, uses channel binding)
_SCRAM = {
    "SCRAM-SHA-256-PLUS": ("sha256", True),
    "SCRAM-SHA-1-PLUS": ("sha1", True),
    "SCRAM-SHA-256": ("sha256", False),
    "SCRAM-SHA-1": ("sha1", False),
}


def available_mechanisms(secure: bool, cb_types: Iterable[str] | None) -> list[str]:
    """The mechanisms to advertise: -PLUS only with channel bindings, PLAIN only over TLS."""
    has_cb = bool(list(cb_types or ()))
    return [
        name for name in MECHANISM_NAMES
        if (has_cb or not name.endswith("-PLUS")) and (secure or name != "PLAIN")
    ]


def create_mechanism(name: str, context: SASLContext) -> ISASLMechanism | None:
    """A fresh mechanism for ``name``, or None if it is unknown or not available here.

    Available means allowed by ``available_mechanisms`` for this connection and,
    when the context lists what was advertised, among those.
    """
    if name not in available_mechanisms(context.secure, context.channel_bindings):
        return None
    if context.advertised_mechanisms and name not in context.advertised_mechanisms:
        return None
    if name == "PLAIN":
        return PlainMechanism(context)
    hash_name, plus = _SCRAM[name]
    return ScramMechanism(hash_name, plus, context)
