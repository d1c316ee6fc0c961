"""The pubsub store: what a backend keeps and the one interface both backends implement.

A *service* is a string: an account's bare JID for its PEP service, or a component domain
(``pubsub.example.com``). Within it, nodes have a configuration, affiliations (bare JIDs)
and subscriptions (full or bare JIDs, each with a subscription id); items are kept in
publication order (XEP-0060 §12.1: re-publishing an id makes that item the newest).

The engine keeps every node's metadata of a service in memory while it uses the service
(``load``) and writes each change through; items stay in the store and are read by
``items``, whose selection (ids, the newest N, XEP-0059 pages) is computed once, here, by
``select`` over the node's item ids in order, so both backends page identically.
"""

from dataclasses import dataclass, field

from zope.interface import Interface

from summitd.core.rsm import MAX_NUMBER


class ItemNotFound(Exception):
    """An RSM request named an item (after/before) the node does not hold."""


@dataclass(frozen=True)
class Subscription:
    """One subscription of ``jid`` (text, bare or full) to a node."""

    jid: str
    subid: str
    state: str = "subscribed"          # subscribed | pending | unconfigured
    options: dict = field(default_factory=dict, compare=False)


@dataclass
class Node:
    """A node's metadata, as loaded into and kept in memory by the engine."""

    name: str
    config: dict
    affiliations: dict = field(default_factory=dict)    # bare JID text -> affiliation
    subscriptions: dict = field(default_factory=dict)   # (jid text, subid) -> Subscription

    def copy(self):
        return Node(self.name, dict(self.config), dict(self.affiliations), dict(self.subscriptions))


@dataclass(frozen=True)
class Item:
    id: str
    payload: str        # the payload element as XML text ("" for none)
    publisher: str      # the publisher's bare JID text ("" once that account is deleted)


@dataclass(frozen=True)
class ItemQuery:
    """Which items a retrieval wants: given ``ids``, the newest ``last``, or an RSM page
    (``rsm``) capped at ``limit`` items (what a request without RSM gets at most)."""

    ids: tuple = None
    last: int = None
    rsm: object = None
    limit: int = MAX_NUMBER


@dataclass(frozen=True)
class ItemPage:
    items: list
    count: int              # items in the node (the RSM count)
    first_index: int = None  # index of the first item returned
    truncated: bool = False  # a page of a larger set (answer with an RSM <set/>)


def select(ordered_ids, query):
    """(chosen ids in order, count, first index, truncated) for ``query`` over a node's item
    ids in publication order; ItemNotFound for an RSM anchor the node does not hold."""
    count = len(ordered_ids)
    if query.ids is not None:
        wanted = set(query.ids)
        return [i for i in ordered_ids if i in wanted], count, None, False
    if query.last is not None:
        start = max(count - query.last, 0)
        return ordered_ids[start:], count, start, False
    rsm = query.rsm
    size = query.limit if rsm is None or rsm.max is None else min(rsm.max, query.limit)
    if rsm is None or (rsm.after is None and rsm.before is None):
        start = rsm.index if rsm is not None and rsm.index is not None else 0
        end = start + size
    elif rsm.after is not None:
        start = _position(ordered_ids, rsm.after) + 1
        end = start + size
    else:
        end = count if rsm.before == "" else _position(ordered_ids, rsm.before)
        start = max(end - size, 0)
    chosen = ordered_ids[start:end]
    return chosen, count, start, rsm is not None or len(chosen) < count


def _position(ordered_ids, item_id):
    try:
        return ordered_ids.index(item_id)
    except ValueError:
        raise ItemNotFound(item_id) from None


class IPubSubStore(Interface):
    """Storage of pubsub services. Every method returns a Deferred, except
    ``delete_account`` which runs inside the account-deletion transaction."""

    def setup():
        """Prepare the storage (schema migrations)."""

    def load(service):
        """{node name: Node} of every node of ``service`` (no items)."""

    def create_node(service, node):
        """Store a new Node (configuration and affiliations)."""

    def update_config(service, name, config):
        """Replace a node's configuration."""

    def delete_node(service, name):
        """Delete a node with its items, affiliations and subscriptions."""

    def set_affiliation(service, name, jid, affiliation):
        """Set a bare JID's affiliation (None removes it)."""

    def set_subscription(service, name, subscription):
        """Add or replace a Subscription (by jid and subid)."""

    def delete_subscription(service, name, jid, subid):
        """Remove a subscription."""

    def publish(service, name, item, keep):
        """Store ``item`` as the node's newest (replacing one with its id), then drop the
        oldest items beyond ``keep``; fires with the dropped ids."""

    def retract(service, name, ids):
        """Delete items; fires with the ids that existed."""

    def purge(service, name):
        """Delete every item of a node."""

    def items(service, name, query):
        """The ItemPage an ItemQuery selects (see ``select``); fails with ItemNotFound. A node
        that does not exist holds no items."""

    def delete_account(txn, jid):
        """Inside the transaction deleting the account ``jid`` (a bare JID): delete its PEP
        service and its subscriptions and affiliations everywhere, and forget that it
        published the items it published elsewhere."""
