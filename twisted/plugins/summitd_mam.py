"""Message Archive Management, bundled with summitd (imported only when enabled)."""

from summitd.extensions.dropin import ExtensionFactory

mam = ExtensionFactory(
    "mam", "Message Archive Management (XEP-0313) with stanza ids (XEP-0359), preferences "
    "(XEP-0441), full-text search (XEP-0431) and retention.", "summitd.plugins.mam")
