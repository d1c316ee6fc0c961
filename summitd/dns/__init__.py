"""The DNS layer of federation: DNSSEC-validated lookups, SRV targets, DANE, remote policy.

Specs: RFC 4033/4034/4035 (DNSSEC), RFC 5155 (NSEC3), RFC 6120 §3.2 (SRV lookup),
XEP-0368 (SRV records for direct TLS), RFC 2782 (SRV ordering), RFC 6698 and
RFC 7673 (DANE TLSA, with SRV), RFC 7671 (DANE usage updates).

Modules, one concept each:

- ``config``: ``[dns]`` options → :class:`DNSConfig`.
- ``anchors``: trust anchors (the root zone's KSK DS records, or a configured file).
- ``transport``: one DNS exchange over UDP with TCP fallback, on the reactor.
- ``denial``: NSEC/NSEC3 authenticated denial of existence (pure functions).
- ``resolver``: :class:`SecureResolver` — answers marked secure / insecure /
  indeterminate; bogus data raises :class:`DNSSECBogus`.
- ``srv``: XMPP SRV targets (``_xmpps-server``/``_xmpp-server`` merged) and addresses.
- ``dane``: TLSA lookup and certificate matching.
- ``policy``: per-remote-domain policy and the allow/refuse decision.
- ``check``: the text ``summitctl check dns DOMAIN`` prints.
"""

from summitd.dns.resolver import (
    INDETERMINATE, INSECURE, SECURE, Answer, DNSError, DNSLookupError, DNSSECBogus, DNSTimeout,
    SecureResolver,
)

__all__ = ["INDETERMINATE", "INSECURE", "SECURE", "Answer", "DNSError", "DNSLookupError", "DNSSECBogus",
           "DNSTimeout", "SecureResolver"]
