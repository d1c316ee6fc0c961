"""The extensions that ship with summitd (each module is imported only when enabled)."""

from summitd.extensions.dropin import ExtensionFactory

ping = ExtensionFactory("ping", "XMPP Ping (XEP-0199): answers pings, pings quiet clients.",
                        "summitd.plugins.ping")
version = ExtensionFactory("version", "Software Version (XEP-0092) and Software Information (XEP-0232).",
                           "summitd.plugins.version")
disco = ExtensionFactory("disco", "Service Discovery (XEP-0030, XEP-0128).", "summitd.plugins.disco")
caps = ExtensionFactory("caps", "The server's Entity Capabilities (XEP-0115) in stream features.",
                        "summitd.plugins.caps", requires=("disco",))
private = ExtensionFactory("private", "Private XML Storage (XEP-0049).", "summitd.plugins.private")
vcard = ExtensionFactory("vcard", "vcard-temp (XEP-0054).", "summitd.plugins.vcard")
register = ExtensionFactory("register", "Account removal and password change in-band (XEP-0077).",
                            "summitd.plugins.register_account")
