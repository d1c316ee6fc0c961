"""The Message Carbons extension (XEP-0280), imported only when enabled.

It requires "delivery": a received copy goes to the resources that the RFC 6121 §8.5
delivery did not give the original, so both must follow the same rules.
"""

from summitd.extensions.dropin import ExtensionFactory

carbons = ExtensionFactory("carbons", "Message Carbons (XEP-0280).", "summitd.plugins.carbons",
                           requires=("delivery",))
