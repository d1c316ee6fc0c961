"""Group chat bundled with summitd: one channel model served as MUC and as MIX (imported only
when enabled).

"channels" is the directory both faces share (store, archive, stable ids); it requires
"mam" because channel archives live in the archive store. "muc" (XEP-0045, at
conference.DOMAIN) and "mix" (XEP-0369 and family, at mix.DOMAIN) each require it; enable
both to reach the same channels from MUC and MIX clients (XEP-0408). "mix_pam" (XEP-0405)
is the user's side of MIX, independent of where the channels are: it requires "roster"
(channels go into the roster) and archives into the user's archive through "mam".
"""

from summitd.extensions.dropin import ExtensionFactory

channels = ExtensionFactory(
    "channels", "The channel directory shared by the MUC and MIX services (store, archive, stable ids).",
    "summitd.plugins.channels.directory", requires=("mam",))
muc = ExtensionFactory(
    "muc", "Multi-User Chat (XEP-0045) with occupant ids (XEP-0421), self-ping (XEP-0410), "
    "moderation (XEP-0425) and MAM, over the shared channels.",
    "summitd.plugins.channels.muc", requires=("channels",))
mix = ExtensionFactory(
    "mix", "Mediated Information eXchange (XEP-0369, 0403, 0404, 0406, 0407) over the shared channels, "
    "on the PubSub engine.", "summitd.plugins.channels.mix", requires=("channels",))
mix_pam = ExtensionFactory(
    "mix_pam", "MIX Participant Server Behaviour (XEP-0405): join through the user's server, channels "
    "in the roster, delivery to every client and archiving.", "summitd.plugins.channels.pam",
    requires=("roster", "mam"))
