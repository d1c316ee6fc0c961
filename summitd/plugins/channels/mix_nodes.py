"""A MIX channel's nodes on the PubSub engine (XEP-0369 §5, XEP-0060): the narrow interface the
MIX face uses, so the engine's API is met in one place.

Each channel is a pubsub service of its own, named by the channel's JID (as PEP names an
account's service by its bare JID). Its nodes:

* ``participants`` (XEP-0369 §5.5): one item per participant, named by its stable id,
  ``<participant><nick/><jid/></participant>``; published and retracted by the channel
  only, subscribers told of each change;
* ``info`` (§5.6): one item, named by its time, the information form;
* ``messages``: no items; its subscribers are who the channel's messages go to;
* ``presence`` (XEP-0403): no items here (presence is held in memory by the face and
  sent as presence, never as pubsub); its subscribers are who gets presence;
* ``config`` (XEP-0406): one item, the configuration form;
* ``topic`` and ``pins``: the extensions the community asked to keep out of MIX core
  (see ``mix``): the current topic, and pinned notes (URLs, media references).

The allowed and banned lists (XEP-0406) are not engine nodes: they are the channel's
affiliations, kept by the channel model and shown as nodes by the face.

Who may read and subscribe is the channel's configuration, told to the engine by
``MixNodeFace.affiliation``: 'member' when the channel's rule admits the JID, 'outcast'
for banned JIDs, 'owner' for the channel itself, which alone publishes (the face checks
the MIX rights of a client's publication and publishes on the channel's behalf).
"""

from twisted.internet import defer

from summitd.core.errors import StanzaError
from summitd.core.jid import JID
from summitd.plugins.pubsub import config as node_config
from summitd.plugins.pubsub import handlers
from summitd.plugins.pubsub.engine import Engine, Face, Limits

PREFIX = "urn:xmpp:mix:nodes:"
NODE_PARTICIPANTS = PREFIX + "participants"
NODE_INFO = PREFIX + "info"
NODE_MESSAGES = PREFIX + "messages"
NODE_PRESENCE = PREFIX + "presence"
NODE_CONFIG = PREFIX + "config"
NODE_ALLOWED = PREFIX + "allowed"
NODE_BANNED = PREFIX + "banned"
NODE_TOPIC = "urn:summitd:mix:nodes:topic"
NODE_PINS = "urn:summitd:mix:nodes:pins"

ENGINE_NODES = (NODE_PARTICIPANTS, NODE_INFO, NODE_MESSAGES, NODE_PRESENCE, NODE_CONFIG, NODE_TOPIC, NODE_PINS)
MODEL_NODES = (NODE_ALLOWED, NODE_BANNED)
ALL_NODES = ENGINE_NODES + MODEL_NODES

#: node -> the ChannelConfig attribute naming who may read and subscribe to it.
READ_RIGHTS = {
    NODE_PARTICIPANTS: "participants_subscription",
    NODE_INFO: "info_subscription",
    NODE_MESSAGES: "messages_subscription",
    NODE_PRESENCE: "presence_subscription",
    NODE_CONFIG: "config_access",
    NODE_ALLOWED: "allowed_subscription",
    NODE_BANNED: "banned_subscription",
    NODE_TOPIC: "info_subscription",
    NODE_PINS: "info_subscription",
}

#: node -> what differs from the base configuration.
NODE_CONFIGS = {
    NODE_PARTICIPANTS: {"pubsub#max_items": "max", "pubsub#send_last_published_item": "never"},
    NODE_INFO: {"pubsub#max_items": 1},
    NODE_CONFIG: {"pubsub#max_items": 1},
    NODE_TOPIC: {"pubsub#max_items": 1},
    NODE_PINS: {"pubsub#max_items": 50, "pubsub#send_last_published_item": "never"},
    NODE_MESSAGES: {"pubsub#persist_items": False, "pubsub#deliver_notifications": False,
                    "pubsub#send_last_published_item": "never"},
    NODE_PRESENCE: {"pubsub#persist_items": False, "pubsub#deliver_notifications": False,
                    "pubsub#send_last_published_item": "never"},
}


class MixNodeFace(Face):
    """What the engine asks of a channel's service; ``channels(service)`` finds the Channel."""

    def __init__(self, channels):
        self._channels = channels

    def default_config(self, service, name):
        return {**node_config.BASE_DEFAULTS, "pubsub#access_model": "whitelist",
                "pubsub#notification_type": "headline", **NODE_CONFIGS.get(name, {})}

    def check_create(self, service, requester):
        if requester != service:
            raise StanzaError("forbidden", "a channel's nodes are the channel's")

    def affiliation(self, service, node, bare):
        if bare == service:
            return "owner"
        channel = self._channels(service)
        if channel is None or channel.rank(bare) < 0:
            return "outcast" if channel is not None else "none"
        right = getattr(channel.config, READ_RIGHTS.get(node.name, "info_subscription"))
        return "member" if channel.has_right(bare, right) else "none"


class ChannelNodes:
    """The engine calls the MIX face makes, each on the channel's behalf unless it says."""

    def __init__(self, context, store, channels, limits=Limits()):
        self.store = store
        self.engine = Engine(context, store, MixNodeFace(channels), limits)
        self._ready = set()         # services whose nodes all exist
        self._locks = {}            # service -> DeferredLock of a creation in progress

    def setup(self):
        return self.store.setup()

    def ensure(self, service):
        """Create the channel's nodes that are missing (one creation at a time per channel)."""
        if service in self._ready:
            return defer.succeed(None)
        lock = self._locks.setdefault(service, defer.DeferredLock())
        return lock.run(self._create_missing, service)

    @defer.inlineCallbacks
    def _create_missing(self, service):
        state = yield self.engine.state(service)
        for name in ENGINE_NODES:
            if name not in state.nodes:
                yield self.engine.create(service, JID(service), name)
        self._ready.add(service)
        self._locks.pop(service, None)

    def publish(self, service, name, item):
        """Publish ``item`` (an <item/> element) as the channel."""
        return self.ensure(service).addCallback(
            lambda _: self.engine.publish(service, JID(service), name, item))

    def retract(self, service, name, item_id):
        """Retract an item as the channel (notifying subscribers); nothing when it is absent."""
        d = self.engine.retract(service, JID(service), name, [item_id], notify=True)
        return d.addErrback(_absent)

    def subscribe(self, service, name, jid):
        """Subscribe ``jid`` (a JID) to a node; fails with the engine's StanzaError."""
        return self.engine.subscribe(service, jid, name, jid)

    def unsubscribe(self, service, name, jid):
        return self.engine.unsubscribe(service, jid, name, jid).addErrback(_absent)

    def subscribers(self, service, name):
        """The subscribed JIDs (text) of a node, or None when the service is not in memory
        yet (a load is started; use ``subscribers_later``)."""
        state = self.engine.peek(service)
        if state is None:
            return None
        node = state.nodes.get(name)
        if node is None:
            return []
        return [s.jid for s in node.subscriptions.values() if s.state == "subscribed"]

    def subscribers_later(self, service, name):
        return self.engine.state(service).addCallback(lambda _: self.subscribers(service, name) or [])

    def subscribed_nodes(self, service, bare):
        """Deferred set of the nodes ``bare`` (text) is subscribed to."""
        def found(state):
            return {name for name, node in state.nodes.items()
                    if any(s.jid.partition("/")[0] == bare for s in node.subscriptions.values())}
        return self.engine.state(service).addCallback(found)

    def delete(self, service):
        """Delete every node of a destroyed channel (subscribers are told)."""
        self._ready.discard(service)

        def delete_all(state):
            return defer.gatherResults([self.engine.delete(service, JID(service), name)
                                        for name in list(state.nodes)], consumeErrors=True)
        return self.engine.state(service).addCallback(delete_all)

    def request(self, iq, service):
        """A client's own pubsub request to the channel (items, subscriptions ...)."""
        return self.ensure(service).addCallback(lambda _: handlers.handle(self.engine, iq, service))

    def account_deleting(self, jid, txn):
        self.engine.account_deleting(jid, txn)


def _absent(failure):
    failure.trap(StanzaError)
    if failure.value.condition not in ("item-not-found", "unexpected-request"):
        return failure
    return None
