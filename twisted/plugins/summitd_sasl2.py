"""The bundled "sasl2" extension: SASL2 (XEP-0388), Bind 2 (XEP-0386), FAST (XEP-0484),
app passwords, TOTP (XEP-0400) and upgrade tasks (XEP-0480). Kept light: the real module
loads only when the extension is enabled."""

from summitd.extensions.dropin import ExtensionFactory

sasl2 = ExtensionFactory(
    "sasl2", "SASL2 login in one round trip: Bind 2, FAST tokens, app passwords, TOTP, upgrades.",
    "summitd.plugins.sasl2")
