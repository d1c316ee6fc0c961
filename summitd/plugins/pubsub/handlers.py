"""Pubsub IQs to engine calls and back (XEP-0060 §5-§8): one function per request verb.

Both faces answer their <pubsub/> IQs through ``handle``; the engine does the work and
this module shapes the replies. Requests that name no node where one is needed get
``bad-request`` with <nodeid-required/> (the error of §7.2.3.3 and §8.2.3.3; collection
nodes, which an empty node would mean, are not supported).
"""

from twisted.internet import defer

from summitd.core.errors import StanzaError
from summitd.plugins.pubsub import config as node_config
from summitd.plugins.pubsub.engine import affiliation_element, subscription_element
from summitd.plugins.pubsub.protocol import (
    NS_PUBSUB, NS_PUBSUB_OWNER, error, parse_address, parse_request, publish_result, pubsub_element,
    unsupported)


def _node(request):
    if not request.nodeIdentifier:
        raise error("bad-request", "nodeid-required", "name the node")
    return request.nodeIdentifier


def _publish(engine, service, requester, request):
    items = request.items or []
    if len(items) > 1:
        raise StanzaError("bad-request", "publish one item per request")
    name = _node(request)
    d = engine.publish(service, requester, name, items[0] if items else None, request.publish_options)

    return d.addCallback(lambda item: publish_result(name, item.id))


def _subscribe(engine, service, requester, request):
    name = _node(request)
    options = node_config.parsed_options(request.options) if request.options is not None else None
    d = engine.subscribe(service, requester, name, request.subscriber, options)
    return d.addCallback(lambda subscription: _wrap(subscription_element(name, subscription)))


def _unsubscribe(engine, service, requester, request):
    return engine.unsubscribe(service, requester, _node(request), request.subscriber,
                              request.subscriptionIdentifier)


def _options_get(engine, service, requester, request):
    d = engine.options(service, requester, _node(request), request.subscriber, request.subscriptionIdentifier)

    def shown(found):
        node, subscription = found
        pubsub = pubsub_element()
        options = pubsub.addElement("options")
        options["node"], options["jid"], options["subid"] = node.name, subscription.jid, subscription.subid
        options.addChild(node_config.options_form(subscription.options))
        return pubsub
    return d.addCallback(shown)


def _options_set(engine, service, requester, request):
    return engine.set_options(service, requester, _node(request), request.subscriber,
                              request.subscriptionIdentifier, request.options)


def _default_subscription(engine, service, requester, request):
    def answer(state):
        if request.nodeIdentifier and request.nodeIdentifier not in state.nodes:
            raise StanzaError("item-not-found", "no such node")
        pubsub = pubsub_element()
        default = pubsub.addElement("default")
        if request.nodeIdentifier:
            default["node"] = request.nodeIdentifier
        default.addChild(node_config.options_form(node_config.SUBSCRIPTION_DEFAULTS))
        return pubsub
    return engine.state(service).addCallback(answer)


def _entity_subscriptions(engine, service, requester, request):
    bare = requester.bare.full()

    def listed(state):
        pubsub = pubsub_element()
        subscriptions = pubsub.addElement("subscriptions")
        for node in _filtered(state, request):
            for subscription in node.subscriptions.values():
                if subscription.jid.partition("/")[0] == bare:
                    subscriptions.addChild(subscription_element(node.name, subscription))
        return pubsub
    return engine.state(service).addCallback(listed)


def _entity_affiliations(engine, service, requester, request):
    bare = requester.bare.full()

    def listed(state):
        pubsub = pubsub_element()
        affiliations = pubsub.addElement("affiliations")
        for node in _filtered(state, request):
            affiliation = engine.face.affiliation(service, node, bare)
            if affiliation != "none":
                affiliations.addChild(affiliation_element(node.name, affiliation))
        return pubsub
    return engine.state(service).addCallback(listed)


def _filtered(state, request):
    if request.nodeIdentifier:
        node = state.nodes.get(request.nodeIdentifier)
        return [node] if node is not None else []
    return sorted(state.nodes.values(), key=lambda n: n.name)


def _create(engine, service, requester, request):
    d = engine.create(service, requester, request.nodeIdentifier, request.options)

    def created(name):
        if request.nodeIdentifier is not None:
            return None
        pubsub = pubsub_element()
        pubsub.addElement("create")["node"] = name
        return pubsub
    return d.addCallback(created)


def _default(engine, service, requester, request):
    if request.nodeType != "leaf":
        raise unsupported("collections", "only leaf nodes are supported")
    pubsub = pubsub_element(NS_PUBSUB_OWNER)
    pubsub.addElement("default").addChild(node_config.config_form(engine.face.default_config(service, None)))
    return pubsub


def _configure_get(engine, service, requester, request):
    name = _node(request)

    def shown(node):
        pubsub = pubsub_element(NS_PUBSUB_OWNER)
        configure = pubsub.addElement("configure")
        configure["node"] = name
        configure.addChild(node_config.config_form(node.config))
        return pubsub
    return engine.owner_node(service, requester, name).addCallback(shown)


def _configure_set(engine, service, requester, request):
    return engine.configure(service, requester, _node(request), request.options)


def _items(engine, service, requester, request):
    name = _node(request)
    d = engine.items(service, requester, name, request.itemIdentifiers, request.maxItems, request.rsm)
    return d.addCallback(lambda page: engine.items_element(name, page))


def _retract(engine, service, requester, request):
    return engine.retract(service, requester, _node(request), request.itemIdentifiers, request.notify)


def _purge(engine, service, requester, request):
    return engine.purge(service, requester, _node(request))


def _delete(engine, service, requester, request):
    return engine.delete(service, requester, _node(request))


def _owner_list(engine, service, requester, request, listing, entries):
    name = _node(request)

    def listed(node):
        pubsub = pubsub_element(NS_PUBSUB_OWNER)
        element = pubsub.addElement(listing)
        element["node"] = name
        for entry in entries(node):
            element.addChild(entry)
        return pubsub
    return engine.owner_node(service, requester, name).addCallback(listed)


def _affiliations_get(engine, service, requester, request):
    return _owner_list(engine, service, requester, request, "affiliations", lambda node: [
        affiliation_element(None, affiliation, jid, NS_PUBSUB_OWNER)
        for jid, affiliation in sorted(node.affiliations.items())])


def _subscriptions_get(engine, service, requester, request):
    def entries(node):
        for subscription in sorted(node.subscriptions.values(), key=lambda s: (s.jid, s.subid)):
            element = subscription_element(node.name, subscription, NS_PUBSUB_OWNER)
            del element.attributes["node"]
            yield element
    return _owner_list(engine, service, requester, request, "subscriptions", entries)


def _affiliations_set(engine, service, requester, request):
    return engine.set_affiliations(service, requester, _node(request), request.affiliations)


def _subscriptions_set(engine, service, requester, request):
    return engine.set_subscriptions(service, requester, _node(request), request.subscription_changes)


def _wrap(element):
    pubsub = pubsub_element()
    pubsub.addChild(element)
    return pubsub


VERBS = {
    "publish": _publish,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "optionsGet": _options_get,
    "optionsSet": _options_set,
    "defaultSubscription": _default_subscription,
    "subscriptions": _entity_subscriptions,
    "affiliations": _entity_affiliations,
    "create": _create,
    "default": _default,
    "configureGet": _configure_get,
    "configureSet": _configure_set,
    "items": _items,
    "retract": _retract,
    "purge": _purge,
    "delete": _delete,
    "affiliationsGet": _affiliations_get,
    "affiliationsSet": _affiliations_set,
    "subscriptionsGet": _subscriptions_get,
    "subscriptionsSet": _subscriptions_set,
}


def requester_of(iq):
    """The sender of a request (stamped by the server, so a missing one is a bug upstream)."""
    sender = iq.getAttribute("from")
    if sender is None:
        raise StanzaError("bad-request", "the request has no sender")
    return parse_address(sender)


def handle(engine, iq, service):
    """Deferred reply payload (or None) for a <pubsub/> IQ to ``service``."""
    return defer.maybeDeferred(_dispatch, engine, iq, service)


def _dispatch(engine, iq, service):
    requester = requester_of(iq)
    request = parse_request(iq)
    return VERBS[request.verb](engine, service, requester, request)


__all__ = ["handle", "requester_of", "VERBS", "NS_PUBSUB", "NS_PUBSUB_OWNER"]
