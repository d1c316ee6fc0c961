"""The extensions that ship with summitd (each module is imported only when enabled)."""

from summitd.extensions.dropin import ExtensionFactory

ping = ExtensionFactory("ping", "XMPP Ping (XEP-0199).", "summitd.plugins.ping")
version = ExtensionFactory("version", "Software Version (XEP-0092).", "summitd.plugins.version")
