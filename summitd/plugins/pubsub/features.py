"""The disco#info features of each face (XEP-0060 §10), listing only what the engine does.

The five "access-*" features are listed because every access model works (XEP-0163 §5
requires open, presence, roster and whitelist of PEP); "last-published" only where the last
item also follows subscribers' presence (PEP). Not listed, because not done: collections,
get-pending, leased-subscription, multi-subscribe, publish-node-full, shim headers.
"""

from summitd.plugins.pubsub.protocol import NS_PUBSUB

COMMON = (
    "access-authorize", "access-open", "access-presence", "access-roster", "access-whitelist",
    "config-node", "create-and-configure", "create-nodes", "delete-items", "delete-nodes",
    "instant-nodes", "item-ids", "manage-subscriptions", "member-affiliation", "meta-data",
    "modify-affiliations", "multi-items", "outcast-affiliation", "persistent-items", "publish",
    "publish-options", "publish-only-affiliation", "publisher-affiliation", "purge-nodes",
    "retract-items", "retrieve-affiliations", "retrieve-default", "retrieve-default-sub",
    "retrieve-items", "retrieve-subscriptions", "rsm", "subscribe", "subscription-notifications",
    "subscription-options",
)
PEP_ONLY = ("auto-create", "auto-subscribe", "filtered-notifications", "last-published",
            "presence-notifications", "presence-subscribe")

SERVICE_FEATURES = frozenset([NS_PUBSUB] + [f"{NS_PUBSUB}#{name}" for name in COMMON])
PEP_FEATURES = SERVICE_FEATURES | {f"{NS_PUBSUB}#{name}" for name in PEP_ONLY}
#: XEP-0060 §9: an account that is a virtual pubsub service says so (on the account only).
PUBSUB_ON_A_JID = f"{NS_PUBSUB}#pubsub-on-a-jid"
