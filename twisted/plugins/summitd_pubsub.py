"""The bundled "pubsub" and "pep" extensions (XEP-0060, XEP-0163), kept light: the real
modules load only when enabled.

They share one engine and store code but not state: "pubsub" hosts a service at
pubsub.DOMAIN, "pep" one on every account's bare JID. "pep" uses the roster extension for
its presence and roster access models when it runs, but does not require it.
"""

from summitd.extensions.dropin import ExtensionFactory

pubsub = ExtensionFactory("pubsub", "Publish-Subscribe service at pubsub.DOMAIN (XEP-0060).",
                          "summitd.plugins.pubsub.service")
pep = ExtensionFactory("pep", "Personal Eventing (XEP-0163) with bookmarks (XEP-0402, XEP-0048) and "
                              "displayed markers (XEP-0490).", "summitd.plugins.pubsub.pep")
