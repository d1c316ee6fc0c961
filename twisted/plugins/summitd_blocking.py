"""The bundled "blocking" extension: Blocking Command (XEP-0191) with reports (XEP-0377).

Kept light (imported at every plugin scan): the real module loads only when enabled.
"""

from summitd.extensions.dropin import ExtensionFactory

blocking = ExtensionFactory("blocking", "Blocking Command (XEP-0191) with spam reports (XEP-0377).",
                            "summitd.plugins.blocking")
