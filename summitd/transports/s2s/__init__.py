"""Server-to-server streams (RFC 6120 §4-§6, §13; RFC 7590; XEP-0220, XEP-0288, XEP-0178,
XEP-0368), used by the "s2s" extension (``summitd.plugins.s2s``).

Modules, one concept each:

- ``config``: the ``[s2s]`` table -> S2SConfig.
- ``certs``: TLS contexts, the trust store, RFC 6125 identity checks (service_identity).
- ``dialback``: XEP-0220 keys (XEP-0185) and elements.
- ``stream``: what both directions share: parsing, output, closing, stanza checks.
- ``incoming``: streams peers open to us (STARTTLS, SASL EXTERNAL, dialback, bidi).
- ``outgoing``: streams we open (STARTTLS or direct TLS, peer judgement, EXTERNAL or
  dialback, dialback verification requests).
- ``connect``: static routes or DNS (``summitd.dns``) to candidates; opening TCP/TLS.
- ``manager``: routes per domain pair, queueing, bouncing, verification, bidi.
"""
