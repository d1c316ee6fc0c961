"""Publish-Subscribe (XEP-0060) with two faces: Personal Eventing on every account's bare JID
(XEP-0163, ``pep``) and a hosted service at ``pubsub.DOMAIN`` (``pubsub``).

One engine (``engine``) holds the rules: nodes, items, subscriptions, affiliations, access
models, publish-options preconditions and notifications. Each face supplies what differs
(who owns a service, default node configuration, who is implicitly subscribed). The store
is an interface (``store.IPubSubStore``) with a memory reference backend and an SQL one.

This module stays light: other extensions import ``IPersonalEventing`` from here.
"""

from zope.interface import Interface


class IPersonalEventing(Interface):
    """What the "pep" extension offers other extensions (answers are Deferreds)."""

    def get_items(owner, node, ids=None):
        """The items of ``owner``'s (a bare JID) PEP node as a list of (item id, payload
        element or None), oldest first; an empty list when the node does not exist."""

    def publish(owner, node, item_id, payload, options=None):
        """Publish ``payload`` (a domish element) as ``item_id`` on ``owner``'s node on the
        owner's behalf, creating the node when needed; ``options`` maps pubsub#node_config
        fields to values for a node created now (the node's defaults otherwise)."""
