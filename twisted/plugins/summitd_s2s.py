"""Federation and external components (each module is imported only when enabled)."""

from summitd.extensions.dropin import ExtensionFactory

s2s = ExtensionFactory(
    "s2s", "Server-to-server federation: TLS, SASL EXTERNAL, dialback, bidi, DNSSEC/DANE (RFC 6120, "
    "XEP-0220, XEP-0288, XEP-0368).", "summitd.plugins.s2s")
component = ExtensionFactory(
    "component", "External components on loopback with a shared secret (XEP-0114).",
    "summitd.transports.component")
