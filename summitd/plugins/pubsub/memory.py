"""The reference pubsub store: everything in dicts, lost at restart.

It defines what the SQL backend must do (one contract suite runs on both) and serves
deployments that want no persistence. Values handed out are copies: the engine's
in-memory state never aliases the store's.
"""

from collections import OrderedDict
from dataclasses import replace

from twisted.internet import defer
from zope.interface import implementer

from summitd.plugins.pubsub.store import IPubSubStore, ItemPage, select


class _Stored:
    __slots__ = ("node", "items")

    def __init__(self, node):
        self.node = node.copy()
        self.items = OrderedDict()      # id -> Item, oldest first


@implementer(IPubSubStore)
class MemoryStore:
    def __init__(self):
        self._services = {}     # service -> {name: _Stored}

    def _node(self, service, name):
        return self._services[service][name]

    def setup(self):
        return defer.succeed(None)

    def load(self, service):
        nodes = self._services.get(service, {})
        return defer.succeed({name: stored.node.copy() for name, stored in nodes.items()})

    def create_node(self, service, node):
        nodes = self._services.setdefault(service, {})
        if node.name in nodes:
            return defer.fail(KeyError(node.name))
        nodes[node.name] = _Stored(node)
        return defer.succeed(None)

    def update_config(self, service, name, config):
        self._node(service, name).node.config = dict(config)
        return defer.succeed(None)

    def delete_node(self, service, name):
        nodes = self._services.get(service, {})
        nodes.pop(name, None)
        if not nodes:
            self._services.pop(service, None)
        return defer.succeed(None)

    def set_affiliation(self, service, name, jid, affiliation):
        affiliations = self._node(service, name).node.affiliations
        if affiliation is None:
            affiliations.pop(jid, None)
        else:
            affiliations[jid] = affiliation
        return defer.succeed(None)

    def set_subscription(self, service, name, subscription):
        subscriptions = self._node(service, name).node.subscriptions
        subscriptions[subscription.jid, subscription.subid] = subscription
        return defer.succeed(None)

    def delete_subscription(self, service, name, jid, subid):
        self._node(service, name).node.subscriptions.pop((jid, subid), None)
        return defer.succeed(None)

    def publish(self, service, name, item, keep):
        items = self._node(service, name).items
        items.pop(item.id, None)
        items[item.id] = item
        dropped = []
        while len(items) > keep:
            dropped.append(items.popitem(last=False)[0])
        return defer.succeed(dropped)

    def retract(self, service, name, ids):
        items = self._node(service, name).items
        return defer.succeed([i for i in ids if items.pop(i, None) is not None])

    def purge(self, service, name):
        self._node(service, name).items.clear()
        return defer.succeed(None)

    def items(self, service, name, query):
        stored = self._services.get(service, {}).get(name)
        items = stored.items if stored is not None else OrderedDict()
        try:
            chosen, count, first, truncated = select(list(items), query)
        except Exception as e:
            return defer.fail(e)
        return defer.succeed(ItemPage([items[i] for i in chosen], count, first, truncated))

    def delete_account(self, txn, jid):
        bare = jid.full()
        # This may run on the database thread: iterate over snapshots.
        self._services.pop(bare, None)
        for nodes in list(self._services.values()):
            for stored in list(nodes.values()):
                for item_id, item in list(stored.items.items()):
                    if item.publisher == bare:
                        stored.items[item_id] = replace(item, publisher="")
                node = stored.node
                node.affiliations.pop(bare, None)
                for key in [k for k in list(node.subscriptions) if _bare(k[0]) == bare]:
                    node.subscriptions.pop(key, None)


def _bare(jid_text):
    return jid_text.partition("/")[0]
