"""The pubsub engine (XEP-0060): the rules every face shares.

It owns node creation (instant and named, §8.1), configuration (§8.2), default options
(§8.3, §6.4), deletion (§8.4) and purging (§8.5); publication with publish-options
preconditions (§7.1) and retraction (§7.2); item retrieval by id, the newest N and RSM pages
(§6.5, XEP-0059); subscriptions with options (§6.1-§6.3); the owner's management of
subscriptions and affiliations (§8.8, §8.9); the entity's own lists (§5.6, §5.7); access
models (§4.5) and publish models; notifications (§7.1.2, §7.2.2, §8.2.5.3, §8.4.2, §8.5.2,
§8.8.4) and the last published item for new subscribers (§6.1.7).

What differs between services is asked of a *face* (``Face``): PEP (XEP-0163) on an
account's bare JID, or the hosted service at pubsub.DOMAIN.

A service's node metadata (configurations, affiliations, subscriptions) is loaded from the
store as a whole when first used and kept in memory (a bounded LRU of services), so access
checks and notification fan-out read no database; items stay in the store. Every change is
written to the store first and applied in memory once stored. Changes to one service run one
after the other (a DeferredLock per service), so checks and writes never interleave.

Limits (``Limits``): items per node (the value 'max' of pubsub#max_items stands for), item
size, nodes per account, items per retrieval; exceeding one gets a specific error.
"""

import secrets
import uuid
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet import defer
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure
from twisted.words.xish import domish

from summitd.core.errors import StanzaError
from summitd.core.rsm import build_rsm
from summitd.plugins.pubsub import config as node_config
from summitd.plugins.pubsub.protocol import (
    NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER, check_id, error, event_element, item_element,
    payload_text, pubsub_element, unsupported)
from summitd.plugins.pubsub.store import Item, ItemNotFound, ItemQuery, Node, Subscription

AFFILIATIONS = ("owner", "publisher", "publish-only", "member", "none", "outcast")
MAY_RETRIEVE = frozenset({"owner", "publisher", "member"})
MAY_PUBLISH = frozenset({"owner", "publisher", "publish-only"})


@dataclass(frozen=True)
class Limits:
    max_items: int = 1000           # what pubsub#max_items 'max' means: the most items a node keeps
    max_item_size: int = 131072     # octets of one payload
    max_nodes: int = 256            # nodes one account may own in one face
    max_results: int = 250          # items one retrieval returns at most (RSM pages beyond)
    cache_size: int = 10000         # services whose metadata is kept in memory


@dataclass(frozen=True)
class Relation:
    """What the owner's roster says of an entity (presence and roster access models)."""

    subscribed: bool = False        # presence subscription from/both
    groups: tuple = ()


NO_RELATION = Relation()


class Face:
    """What a kind of service decides; the defaults are the hosted service's."""

    auto_create = False

    def address(self, service):
        """The JID text notifications come from."""
        return service

    def default_config(self, service, name):
        return dict(node_config.BASE_DEFAULTS)

    def check_create(self, service, requester):
        """Raise StanzaError unless ``requester`` (bare JID) may create nodes here."""

    def owners_of(self, service, node):
        """The bare JIDs (text) of the node's owners."""
        return [jid for jid, affiliation in node.affiliations.items() if affiliation == "owner"]

    def affiliation(self, service, node, bare):
        return node.affiliations.get(bare, "none")

    def nodes_owned(self, state, bare):
        return sum(1 for node in state.nodes.values() if node.affiliations.get(bare) == "owner")

    def relation(self, service, node, bare):
        """Deferred Relation of ``bare`` to the node's owner(s)."""
        return defer.succeed(NO_RELATION)

    def implicit_recipients(self, service, node):
        """Deferred list of full JIDs (text) notified without a subscription (PEP)."""
        return defer.succeed([])


class ServiceState:
    """The nodes of one service, in memory, and the lock its changes take."""

    __slots__ = ("service", "nodes", "lock")

    def __init__(self, service, nodes):
        self.service = service
        self.nodes = nodes
        self.lock = defer.DeferredLock()


def _bare(jid_text):
    return jid_text.partition("/")[0]


def _denied(failure):
    failure.trap(StanzaError)
    return False


def _fail(failure, context, what):
    """Log a failure of work nobody waits for."""
    context.log.failure("pubsub: {what} failed", failure, what=what)


class Engine:
    def __init__(self, context, store, face, limits):
        self.context = context
        self.store = store
        self.face = face
        self.limits = limits
        self._states = OrderedDict()    # service -> ServiceState, least recently used first
        self._loading = {}              # service -> Deferreds waiting for a load in progress
        self._observers = []
        self._message_prefix = secrets.token_hex(4)
        self._message_count = 0

    # -- the metadata cache -----------------------------------------------------------------

    def state(self, service):
        """Deferred ServiceState of ``service`` (loaded once, then from memory)."""
        state = self._states.get(service)
        if state is not None:
            self._states.move_to_end(service)
            return defer.succeed(state)
        waiter = defer.Deferred()
        waiters = self._loading.get(service)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        self._loading[service] = [waiter]
        self.store.load(service).addBoth(self._loaded, service)
        return waiter

    def _loaded(self, result, service):
        waiters = self._loading.pop(service)
        if isinstance(result, Failure):
            for waiter in waiters:
                waiter.errback(result)
            return None
        state = self._states[service] = ServiceState(service, result)
        self._evict()
        for waiter in waiters:
            waiter.callback(state)
        return None

    def _evict(self):
        """Drop the least recently used services beyond cache_size (never one being changed)."""
        while len(self._states) > self.limits.cache_size:
            for service, state in self._states.items():
                if not state.lock.locked:
                    break
            else:
                return
            del self._states[service]

    def peek(self, service):
        """The ServiceState if it is in memory now (a load that completes at once, as on a
        synchronous database, counts), else None after starting a load."""
        found = []
        self.state(service).addCallbacks(found.append, lambda failure: _fail(failure, self.context, "load"))
        return found[0] if found else None

    def forget(self):
        """Drop every cached service (after an account was deleted: the store is the truth)."""
        self._states.clear()

    def account_deleting(self, jid, txn, also=None):
        """ACCOUNT_DELETING, on the database thread: delete the account's PEP service and
        its subscriptions and affiliations in the deleting transaction; then, on the reactor
        thread, drop the cached metadata (and call ``also(jid)``)."""
        self.store.delete_account(txn, jid)

        def forget():
            self.forget()
            if also is not None:
                also(jid)
        clock = self.context.clock
        if IReactorFromThreads.providedBy(clock):
            clock.callFromThread(forget)
        else:   # a synchronous database: this is the reactor's thread
            forget()

    def changing(self, service, fn, *args):
        """Run ``fn(state, *args)`` (may return a Deferred) holding the service's lock."""
        def locked(state):
            return state.lock.run(fn, state, *args)
        return self.state(service).addCallback(locked)

    def observe(self, observer):
        """``observer(service, node name, kind, detail, origin)`` hears of every publication
        ("publish", Item), retraction ("retract", ids), purge and deletion, after it is stored;
        returns a function that stops it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer)

    def _tell(self, service, name, kind, detail, origin):
        for observer in list(self._observers):
            try:
                observer(service, name, kind, detail, origin)
            except Exception:
                self.context.log.failure("pubsub: observer {observer!r} failed", observer=observer)

    # -- access ----------------------------------------------------------------------------------

    def _node(self, state, name):
        node = state.nodes.get(name)
        if node is None:
            raise StanzaError("item-not-found", f"no node {name!r}")
        return node

    def _require_owner(self, state, node, bare):
        if self.face.affiliation(state.service, node, bare) != "owner":
            raise StanzaError("forbidden", "only an owner of the node may do this")

    @defer.inlineCallbacks
    def check_access(self, service, node, bare, subscribing=False, relation=None):
        """Raise the access model's error unless ``bare`` may retrieve items (or subscribe);
        ``relation`` is asked of the face when not given."""
        affiliation = self.face.affiliation(service, node, bare)
        if affiliation == "outcast":
            raise StanzaError("forbidden", "outcasts have no access")
        if affiliation in MAY_RETRIEVE:
            return
        if affiliation == "publish-only" and not subscribing:
            raise StanzaError("forbidden", "the publish-only affiliation cannot retrieve items")
        model = node.config["pubsub#access_model"]
        if model == "open":
            return
        if model == "whitelist":
            raise error("not-allowed", "closed-node", "only entities on the whitelist have access")
        if model == "authorize":
            if subscribing or any(_bare(s.jid) == bare and s.state == "subscribed"
                                  for s in node.subscriptions.values()):
                return
            raise error("not-authorized", "not-subscribed", "the node's subscriptions need approval")
        if relation is None:
            relation = yield self.face.relation(service, node, bare)
        if model == "presence" and not relation.subscribed:
            raise error("not-authorized", "presence-subscription-required",
                        "a presence subscription to the owner is required")
        if model == "roster":
            allowed = set(node.config["pubsub#roster_groups_allowed"])
            if not (relation.subscribed and allowed.intersection(relation.groups)):
                raise error("not-authorized", "not-in-roster-group", "access is for some roster groups only")

    def may_access(self, service, node, bare, relation=None):
        """Deferred bool: check_access passes."""
        return self.check_access(service, node, bare, relation=relation).addCallbacks(lambda _: True, _denied)

    def _check_publisher(self, service, node, bare):
        affiliation = self.face.affiliation(service, node, bare)
        if affiliation in MAY_PUBLISH:
            return
        model = node.config["pubsub#publish_model"]
        if affiliation != "outcast":
            if model == "open":
                return
            if model == "subscribers" and any(_bare(s.jid) == bare and s.state == "subscribed"
                                              for s in node.subscriptions.values()):
                return
        raise StanzaError("forbidden", "you may not publish to this node")

    # -- nodes -------------------------------------------------------------------------------------

    def create(self, service, requester, name, form=None):
        """Create a node (instant when ``name`` is None); fires with its name."""
        self.face.check_create(service, requester.bare.full())
        if name is not None:
            check_id(name, "node")
        config = self.face.default_config(service, name)
        if form is not None:
            config = node_config.configured(config, form, self.limits.max_items)
        return self.changing(service, self._create, requester.bare.full(), name, config)

    def _create(self, state, owner, name, config):
        if name is None:
            name = uuid.uuid4().hex
        elif name in state.nodes:
            raise StanzaError("conflict", f"the node {name!r} exists already")
        if self.face.nodes_owned(state, owner) >= self.limits.max_nodes:
            raise error("not-allowed", "max-nodes-exceeded", f"an account may have at most {self.limits.max_nodes} nodes")
        node = Node(name, config, {owner: "owner"})
        d = self.store.create_node(state.service, node)
        return d.addCallback(lambda _: state.nodes.setdefault(name, node).name)

    def configure(self, service, requester, name, form):
        return self.changing(service, self._configure, requester.bare.full(), name, form)

    def _configure(self, state, bare, name, form):
        node = self._node(state, name)
        self._require_owner(state, node, bare)
        if form.formType == "cancel":
            return None
        config = node_config.configured(node.config, form, self.limits.max_items)
        return self.store.update_config(state.service, name, config).addCallback(
            self._configured, state, node, config)

    def _configured(self, _, state, node, config):
        node.config = config
        dropped = [key for key, s in node.subscriptions.items() if not self._keeps_subscription(state, node, s)]
        for key in dropped:
            del node.subscriptions[key]
        d = defer.gatherResults([self.store.delete_subscription(state.service, node.name, *key) for key in dropped],
                                consumeErrors=True)
        if config["pubsub#notify_config"]:
            event = event_element()
            configuration = event.addElement("configuration")
            configuration["node"] = node.name
            if config["pubsub#deliver_payloads"]:
                configuration.addChild(node_config.config_form(config, "result"))
            self.notify(state.service, node, event)
        return d.addCallback(lambda _: None)

    def _keeps_subscription(self, state, node, subscription):
        """After a configuration change: whitelist and authorize nodes keep only those
        they would accept now (XEP-0060 §4.5)."""
        model = node.config["pubsub#access_model"]
        affiliation = self.face.affiliation(state.service, node, _bare(subscription.jid))
        if affiliation == "outcast":
            return False
        if model == "whitelist":
            return affiliation in MAY_RETRIEVE
        return True

    def delete(self, service, requester, name):
        return self.changing(service, self._delete, requester.bare.full(), name)

    def _delete(self, state, bare, name):
        node = self._node(state, name)
        self._require_owner(state, node, bare)
        return self.store.delete_node(state.service, name).addCallback(self._deleted, state, node)

    def _deleted(self, _, state, node):
        state.nodes.pop(node.name, None)
        if node.config["pubsub#notify_delete"]:
            event = event_element()
            event.addElement("delete")["node"] = node.name
            self.notify(state.service, node, event)
        self._tell(state.service, node.name, "delete", None, None)

    def purge(self, service, requester, name):
        return self.changing(service, self._purge, requester.bare.full(), name)

    def _purge(self, state, bare, name):
        node = self._node(state, name)
        self._require_owner(state, node, bare)
        if not node.config["pubsub#persist_items"]:
            raise unsupported("persistent-items", "the node keeps no items")
        return self.store.purge(state.service, name).addCallback(self._purged, state, node)

    def _purged(self, _, state, node):
        if node.config["pubsub#notify_retract"]:
            event = event_element()
            event.addElement("purge")["node"] = node.name
            self.notify(state.service, node, event)
        self._tell(state.service, node.name, "purge", None, None)

    # -- items ----------------------------------------------------------------------------------------

    def parse_item(self, element, publisher):
        """An Item from a published <item/>: id (generated when absent) and at most one
        payload element within the size limit."""
        item_id = element.getAttribute("id")
        item_id = uuid.uuid4().hex if item_id is None else check_id(item_id, "item")
        payloads = list(element.elements())
        if len(payloads) > 1:
            raise error("bad-request", "invalid-payload", "an item holds one payload element")
        text = payload_text(payloads[0]) if payloads else ""
        if len(text.encode("utf-8")) > self.limits.max_item_size:
            raise error("not-acceptable", "payload-too-big", f"an item is at most {self.limits.max_item_size} octets")
        return Item(item_id, text, publisher), (payloads[0].uri if payloads else None)

    def publish(self, service, requester, name, element, options=None, origin=None, create_config=None):
        """Publish the <item/> ``element`` to node ``name``; ``options`` is a publish-options
        form (preconditions), ``create_config`` configuration for a node auto-created now,
        ``origin`` is passed on to observers. Fires with the Item."""
        if element is None:
            raise error("bad-request", "item-required", "publish an item")
        item, namespace = self.parse_item(element, requester.bare.full())
        wanted = node_config.preconditions(options, self.limits.max_items) if options is not None else {}
        creation = {**(create_config or {}), **wanted}
        return self.changing(service, self._publish, requester, name, item, namespace, wanted, creation, origin)

    @defer.inlineCallbacks
    def _publish(self, state, requester, name, item, namespace, wanted, creation, origin):
        bare = requester.bare.full()
        node = state.nodes.get(name)
        if node is None:
            config = self._creation_config(state, bare, name, creation)
        else:
            node_config.check_preconditions(node.config, wanted, self.limits.max_items)
            self._check_publisher(state.service, node, bare)
            config = node.config
        _check_payload(config, item, namespace)
        if node is None:
            node = state.nodes[(yield self._create(state, bare, name, config))]
        if config["pubsub#persist_items"]:
            yield self.store.publish(state.service, name, item, node_config.max_items(config, self.limits.max_items))
        if config["pubsub#deliver_notifications"]:
            self.notify(state.service, node, self.items_event(node, [item]))
        self._tell(state.service, name, "publish", item, origin)
        return item

    def _creation_config(self, state, bare, name, creation):
        """The configuration of a node auto-created by a publication (§7.1.4), if allowed."""
        if not self.face.auto_create:
            raise StanzaError("item-not-found", f"no node {name!r}")
        check_id(name, "node")
        self.face.check_create(state.service, bare)
        return {**self.face.default_config(state.service, name), **creation}

    def retract(self, service, requester, name, ids, notify=False, origin=None):
        if not ids:
            raise error("bad-request", "item-required", "name the item to retract")
        return self.changing(service, self._retract, requester.bare.full(), name, ids, notify, origin)

    def _retract(self, state, bare, name, ids, notify, origin):
        node = self._node(state, name)
        affiliation = self.face.affiliation(state.service, node, bare)
        if affiliation not in MAY_PUBLISH:
            raise StanzaError("forbidden", "only owners and publishers may retract items")
        if not node.config["pubsub#persist_items"]:
            raise unsupported("persistent-items", "the node keeps no items")
        return self.store.retract(state.service, name, ids).addCallback(
            self._retracted, state, node, notify, origin)

    def _retracted(self, removed, state, node, notify, origin):
        if not removed:
            raise StanzaError("item-not-found", "no such item")
        if notify or node.config["pubsub#notify_retract"]:
            event = event_element()
            items = event.addElement("items")
            items["node"] = node.name
            for item_id in removed:
                items.addElement("retract")["id"] = item_id
            self.notify(state.service, node, event)
        self._tell(state.service, node.name, "retract", removed, origin)

    @defer.inlineCallbacks
    def items(self, service, requester, name, ids=None, last=None, rsm=None):
        """Deferred ItemPage of what ``requester`` asked for (access checked)."""
        state = yield self.state(service)
        node = self._node(state, name)
        yield self.check_access(service, node, requester.bare.full())
        if not node.config["pubsub#persist_items"]:
            raise unsupported("persistent-items", "the node keeps no items")
        query = ItemQuery(ids=tuple(ids) if ids else None, last=last, rsm=rsm, limit=self.limits.max_results)
        try:
            page = yield self.store.items(service, name, query)
        except ItemNotFound:
            raise StanzaError("item-not-found", "the RSM page starts at an item the node does not hold") from None
        if ids and not page.items:
            raise StanzaError("item-not-found", "no such item")
        return page

    def items_element(self, name, page):
        """The <pubsub><items/></pubsub> answer to a retrieval (with its RSM <set/>)."""
        pubsub = pubsub_element()
        items = pubsub.addElement("items")
        items["node"] = name
        for item in page.items:
            items.addChild(item_element(item))
        if page.truncated:
            if page.items:
                pubsub.addChild(build_rsm(page.items[0].id, page.items[-1].id, page.first_index, page.count))
            else:
                pubsub.addChild(build_rsm(count=page.count))
        return pubsub

    def items_event(self, node, items):
        """The <event/> of a publication (payloads unless the node says otherwise)."""
        event = event_element()
        element = event.addElement("items")
        element["node"] = node.name
        with_payload = node.config["pubsub#deliver_payloads"]
        for item in items:
            element.addChild(item_element(item, NS_PUBSUB_EVENT, with_payload))
        return event

    # -- subscriptions ----------------------------------------------------------------------------------

    def subscribe(self, service, requester, name, jid, options=None):
        if jid.bare != requester.bare:
            raise error("bad-request", "invalid-jid", "you may subscribe only yourself")
        return self.changing(service, self._subscribe, name, jid, options)

    @defer.inlineCallbacks
    def _subscribe(self, state, name, jid, options):
        node = self._node(state, name)
        if not node.config["pubsub#subscribe"]:
            raise unsupported("subscribe", "the node does not allow subscriptions")
        bare = jid.bare.full()
        yield self.check_access(state.service, node, bare, subscribing=True)
        existing = [s for s in node.subscriptions.values() if s.jid == jid.full()]
        if existing:
            return existing[0]
        pending = (node.config["pubsub#access_model"] == "authorize"
                   and self.face.affiliation(state.service, node, bare) not in MAY_RETRIEVE)
        subscription = Subscription(jid.full(), uuid.uuid4().hex, "pending" if pending else "subscribed",
                                    dict(options or node_config.SUBSCRIPTION_DEFAULTS))
        yield self.store.set_subscription(state.service, name, subscription)
        node.subscriptions[subscription.jid, subscription.subid] = subscription
        if not pending:
            self._subscribed(state.service, node, subscription)
        return subscription

    def _subscribed(self, service, node, subscription):
        """A subscription became active: the last item (§6.1.7) and owners told (notify_sub)."""
        if node.config["pubsub#send_last_published_item"] != "never":
            self.send_last(service, node, subscription.jid)
        if node.config["pubsub#notify_sub"]:
            event = event_element()
            event.addChild(subscription_element(node.name, subscription, NS_PUBSUB_EVENT))
            self.send(service, node, event, self.face.owners_of(service, node))

    def _own_subscription(self, state, requester, name, jid, subid):
        node = self._node(state, name)
        if jid.bare != requester.bare:
            raise StanzaError("forbidden", "that subscription is not yours")
        found = [s for s in node.subscriptions.values() if s.jid == jid.full()]
        if not found:
            raise error("unexpected-request", "not-subscribed", "there is no such subscription")
        if subid is not None:
            found = [s for s in found if s.subid == subid]
            if not found:
                raise error("not-acceptable", "invalid-subid", "there is no subscription with that subid")
        return node, found[0]

    def unsubscribe(self, service, requester, name, jid, subid=None):
        return self.changing(service, self._unsubscribe, requester, name, jid, subid)

    def _unsubscribe(self, state, requester, name, jid, subid):
        node, subscription = self._own_subscription(state, requester, name, jid, subid)
        return self._drop_subscription(state, node, subscription)

    def _drop_subscription(self, state, node, subscription):
        key = (subscription.jid, subscription.subid)

        def dropped(_):
            node.subscriptions.pop(key, None)
        return self.store.delete_subscription(state.service, node.name, *key).addCallback(dropped)

    def options(self, service, requester, name, jid, subid=None):
        """Deferred (node, Subscription) whose options ``requester`` may see."""
        return self.state(service).addCallback(self._own_subscription, requester, name, jid, subid)

    def set_options(self, service, requester, name, jid, subid, form):
        options = node_config.parsed_options(form)
        return self.changing(service, self._set_options, requester, name, jid, subid, options)

    def _set_options(self, state, requester, name, jid, subid, options):
        node, subscription = self._own_subscription(state, requester, name, jid, subid)
        changed = Subscription(subscription.jid, subscription.subid, subscription.state, options)
        return self.store.set_subscription(state.service, name, changed).addCallback(
            lambda _: node.subscriptions.__setitem__((changed.jid, changed.subid), changed))

    # -- owner management (§8.8, §8.9) -----------------------------------------------------------

    def owner_node(self, service, requester, name):
        """Deferred Node that ``requester`` owns (forbidden / item-not-found otherwise)."""
        def check(state):
            node = self._node(state, name)
            self._require_owner(state, node, requester.bare.full())
            return node
        return self.state(service).addCallback(check)

    def set_affiliations(self, service, requester, name, changes):
        for affiliation in changes.values():
            if affiliation not in AFFILIATIONS:
                raise StanzaError("bad-request", f"no affiliation {affiliation!r}")
        return self.changing(service, self._set_affiliations, requester.bare.full(), name, changes)

    @defer.inlineCallbacks
    def _set_affiliations(self, state, bare, name, changes):
        node = self._node(state, name)
        self._require_owner(state, node, bare)
        after = dict(node.affiliations)
        for jid, affiliation in changes.items():
            after[jid.full()] = affiliation
        if not any(a == "owner" for a in after.values()) or after.get(state.service, "owner") != "owner":
            raise StanzaError("not-acceptable", "a node keeps at least one owner (and a PEP node its account)")
        for jid, affiliation in changes.items():
            text = jid.full()
            yield self.store.set_affiliation(state.service, name, text, None if affiliation == "none" else affiliation)
            if affiliation == "none":
                node.affiliations.pop(text, None)
            else:
                node.affiliations[text] = affiliation
            if affiliation == "outcast":
                for subscription in [s for s in node.subscriptions.values() if _bare(s.jid) == text]:
                    yield self._drop_subscription(state, node, subscription)

    def set_subscriptions(self, service, requester, name, changes):
        return self.changing(service, self._set_subscriptions, requester.bare.full(), name, changes)

    @defer.inlineCallbacks
    def _set_subscriptions(self, state, bare, name, changes):
        node = self._node(state, name)
        self._require_owner(state, node, bare)
        for jid, wanted, subid in changes:
            found = [s for s in node.subscriptions.values()
                     if s.jid == jid.full() and (subid is None or s.subid == subid)]
            if wanted == "none":
                for subscription in found:
                    yield self._drop_subscription(state, node, subscription)
                continue
            before = found[0] if found else None
            subscription = Subscription(jid.full(), before.subid if before else uuid.uuid4().hex, wanted,
                                        before.options if before else dict(node_config.SUBSCRIPTION_DEFAULTS))
            yield self.store.set_subscription(state.service, name, subscription)
            node.subscriptions[subscription.jid, subscription.subid] = subscription
            if wanted != (before.state if before else None):
                event = event_element()
                event.addChild(subscription_element(name, subscription, NS_PUBSUB_EVENT))
                self.send(state.service, node, event, [subscription.jid])     # §8.8.4
                if wanted == "subscribed":
                    self._subscribed(state.service, node, subscription)

    # -- notifications ---------------------------------------------------------------------------------

    def notify(self, service, node, event):
        """Send ``event`` to everyone who hears of the node: subscribers (still allowed by
        the access model) and the face's implicit recipients."""
        d = self._recipients(service, node)
        d.addCallback(lambda recipients: self.send(service, node, event, recipients))
        d.addErrback(_fail, self.context, "notification")

    @defer.inlineCallbacks
    def _recipients(self, service, node):
        implicit = yield self.face.implicit_recipients(service, node)
        covered = set(implicit) | {_bare(jid) for jid in implicit}
        explicit = [s.jid for s in node.subscriptions.values()
                    if s.state == "subscribed" and s.options.get("pubsub#deliver", True) and s.jid not in covered]
        allowed = yield defer.gatherResults([self.may_access(service, node, _bare(jid)) for jid in explicit],
                                            consumeErrors=True)
        return list(implicit) + [jid for jid, ok in zip(explicit, allowed) if ok]

    def send(self, service, node, event, recipients):
        """One message per recipient, all sharing the ``event`` element."""
        sender = self.face.address(service)
        kind = node.config["pubsub#notification_type"]
        self._message_count += 1
        base = f"{self._message_prefix}-{self._message_count}"
        for n, to in enumerate(recipients):
            message = domish.Element(("jabber:client", "message"))
            message["from"] = sender
            message["to"] = to
            message["type"] = kind
            message["id"] = f"{base}-{n}"
            message.children.append(event)
            self.context.route(message)

    def send_last(self, service, node, to):
        """The node's newest item to one entity (§6.1.7; XEP-0163 §4.3.4)."""
        d = self.store.items(service, node.name, ItemQuery(last=1))

        def got(page):
            if page.items:
                self.send(service, node, self.items_event(node, page.items), [to])
        d.addCallback(got)
        d.addErrback(_fail, self.context, "sending the last item")
        return d


def _check_payload(config, item, namespace):
    """§7.1.3.6 and §7.1.3.7: the payload the node's configuration asks for."""
    if config["pubsub#type"] and namespace is not None and namespace != config["pubsub#type"]:
        raise error("bad-request", "invalid-payload", f"this node takes {config['pubsub#type']} payloads")
    if not item.payload and (config["pubsub#persist_items"] or config["pubsub#deliver_payloads"]):
        raise error("bad-request", "payload-required", "the item needs a payload")


def subscription_element(name, subscription, uri=NS_PUBSUB):
    element = domish.Element((uri, "subscription"))
    element["node"] = name
    element["jid"] = subscription.jid
    element["subscription"] = subscription.state
    element["subid"] = subscription.subid
    return element


def affiliation_element(name, affiliation, jid=None, uri=NS_PUBSUB):
    element = domish.Element((uri, "affiliation"))
    if name is not None:
        element["node"] = name
    if jid is not None:
        element["jid"] = jid
    element["affiliation"] = affiliation
    return element


__all__ = ["Engine", "Face", "Limits", "Relation", "NO_RELATION", "AFFILIATIONS", "NS_PUBSUB_OWNER",
           "subscription_element", "affiliation_element"]
