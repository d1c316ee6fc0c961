"""The bundled "roster" and "presence" extensions (RFC 6121 §2 - §4 and Appendix A).

Kept light (imported at every plugin scan): the real modules load only when enabled.
"""

from summitd.extensions.dropin import ExtensionFactory

roster = ExtensionFactory("roster", "Rosters with versioning (RFC 6121 §2).", "summitd.plugins.roster")
presence = ExtensionFactory("presence", "Presence subscriptions, broadcast and probes (RFC 6121 §3, §4).",
                            "summitd.plugins.presence", requires=("roster",))
