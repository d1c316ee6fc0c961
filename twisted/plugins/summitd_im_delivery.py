"""Message delivery (RFC 6121 §8.5) and offline messages (XEP-0160), bundled with summitd.

"offline" requires "delivery": delivery decides by the RFC's rules when a message
finds no resource and then offers it to whoever provides IOfflineStorage, so it
works alone (bouncing instead of storing) and never needs to know about storage;
storage without those rules would have nobody to offer it anything.
"""

from summitd.extensions.dropin import ExtensionFactory

delivery = ExtensionFactory(
    "delivery", "Message delivery by the rules of RFC 6121 §8.5.", "summitd.plugins.delivery")
offline = ExtensionFactory(
    "offline", "Offline messages (XEP-0160) with delay stamps (XEP-0203).",
    "summitd.plugins.offline", requires=("delivery",))
