"""The hosted publish-subscribe service (XEP-0060) at ``pubsub.DOMAIN``: the "pubsub" extension.

One service per hosted domain, at the address the ``host`` option names ("pubsub.{domain}"
by default), listed in the domain's disco#items. The service's domain is not one the
server hosts, so its stanzas reach it through ``context.host_component`` (see the context
API); it answers its own IQs: pubsub and pubsub#owner requests through the engine, and
service discovery (XEP-0030) of the service, of its nodes (identity pubsub/leaf with the
pubsub#meta-data form, §5.4) and of their items (§5.5). Nodes a requester may not access
are neither listed nor described.

Any local account may create nodes (and owns those it creates); the default access model
is "open". The "presence" and "roster" access models ask the rosters of the node's owners
(when the roster extension runs). Notifications go to explicit subscribers only. An IQ for
a JID at the service other than the service itself gets ``service-unavailable``; messages
to it are bounced the same way, error replies to its notifications are dropped.
"""

from twisted.internet import defer

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.iq import SERVER, IQTable
from summitd.core.jid import JID
from summitd.extensions.base import Extension
from summitd.extensions.context import MissingProvider
from summitd.plugins.disco import NS_DISCO_INFO, NS_DISCO_ITEMS, Info, info_element, items_element
from summitd.plugins.pubsub import handlers
from summitd.plugins.pubsub.config import metadata_form
from summitd.plugins.pubsub.engine import NO_RELATION, Engine, Face, Relation
from summitd.plugins.pubsub.features import SERVICE_FEATURES
from summitd.plugins.pubsub.protocol import NS_PUBSUB, NS_PUBSUB_OWNER
from summitd.plugins.pubsub.settings import make_store, parse_service_config
from summitd.plugins.roster_store import IRoster

IDENTITY = ("pubsub", "service", "Publish-Subscribe")
parse_config = parse_service_config


class ServiceFace(Face):
    """The hosted service: local accounts create nodes; owners' rosters for presence/roster."""

    def __init__(self, context):
        self.context = context

    def check_create(self, service, requester):
        jid = JID(requester)
        if jid.user is None or jid.host not in self.context.domains:
            raise StanzaError("forbidden", "only accounts of this server may create nodes")

    def relation(self, service, node, bare):
        try:
            roster = self.context.need(IRoster)
        except MissingProvider:
            return defer.succeed(NO_RELATION)
        owners = [JID(o) for o in self.owners_of(service, node)]
        local = [o for o in owners if o.host in self.context.domains]
        d = defer.gatherResults([roster.item(o, JID(bare)) for o in local], consumeErrors=True)
        return d.addCallback(_merged)


def _merged(items):
    """One Relation from the owners' roster items of an entity."""
    found = [item for item in items if item is not None and item.has_from]
    return Relation(bool(found), tuple(sorted({g for item in found for g in item.groups})))


class PubSubService(Extension):
    def __init__(self, context, settings):
        super().__init__(context)
        self.settings = settings
        self.store = make_store(context, settings.storage)
        self.engine = Engine(context, self.store, ServiceFace(context), settings.limits)
        self.services = {settings.host.replace("{domain}", domain): domain for domain in sorted(context.domains)}
        hosted = sorted(set(self.services) & set(context.domains))
        if hosted:
            raise ConfigError([("extensions.pubsub.host", f"{', '.join(hosted)} is a hosted domain, not a service")])
        for address in self.services:
            context.host_component(address, self.stanza)
        context.hook(events.SERVER_DISCO_ITEMS, self._listed)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)
        # The service's own IQ table: the core's funnel (one reply per request, errors mapped,
        # failures logged) without sharing the server's handlers.
        self.iq = IQTable(context.clock, context.route)
        for type in ("get", "set"):
            for namespace in (NS_PUBSUB, NS_PUBSUB_OWNER):
                self.iq.register(type, SERVER, namespace, "pubsub", self._pubsub)
        self.iq.register("get", SERVER, NS_DISCO_INFO, "query", self._disco_info)
        self.iq.register("get", SERVER, NS_DISCO_ITEMS, "query", self._disco_items)

    def start(self):
        return self.store.setup()

    def _listed(self, host):
        return [(address, None, IDENTITY[2]) for address, domain in self.services.items() if domain == host]

    # -- stanzas to the service -------------------------------------------------------------------

    def stanza(self, stanza, to_jid):
        """Everything routed to a service address (the host_component handler). IQs to other
        JIDs at the service find no handler (service-unavailable)."""
        if stanza.name == "iq":
            self.iq.dispatch(stanza, to_jid)
        elif stanza.name == "message" and stanza.getAttribute("type") != "error" and stanza.getAttribute("from"):
            self.context.route(StanzaError("service-unavailable").reply_to(stanza))
        # Presence and bounced notifications mean nothing to the service.

    def _pubsub(self, iq, to_jid):
        return handlers.handle(self.engine, iq, to_jid.host)

    # -- service discovery ------------------------------------------------------------------------------

    def _disco_info(self, iq, to_jid):
        service = to_jid.host
        requester = handlers.requester_of(iq)
        name = iq.firstChildElement().getAttribute("node")
        if not name:
            features = SERVICE_FEATURES | {NS_DISCO_INFO, NS_DISCO_ITEMS}
            return info_element(Info((IDENTITY,), tuple(sorted(features)), ()))
        return self._visible_node(service, requester, name).addCallback(
            lambda node: info_element(Info((("pubsub", "leaf", None),), (NS_DISCO_INFO, NS_PUBSUB),
                                           (metadata_form(node),)), name))

    def _disco_items(self, iq, to_jid):
        service = to_jid.host
        requester = handlers.requester_of(iq)
        name = iq.firstChildElement().getAttribute("node")
        if not name:
            return self._visible_nodes(service, requester).addCallback(lambda nodes: items_element(
                [(service, node.name, node.config["pubsub#title"] or None) for node in nodes]))
        d = self._visible_node(service, requester, name)
        d.addCallback(lambda node: self.engine.items(service, requester, name))
        return d.addCallback(lambda page: items_element([(service, None, item.id) for item in page.items], name))

    @defer.inlineCallbacks
    def _visible_node(self, service, requester, name):
        state = yield self.engine.state(service)
        node = state.nodes.get(name)
        if node is None or not (yield self.engine.may_access(service, node, requester.bare.full())):
            raise StanzaError("item-not-found", "no such node")
        return node

    @defer.inlineCallbacks
    def _visible_nodes(self, service, requester):
        state = yield self.engine.state(service)
        nodes = sorted(state.nodes.values(), key=lambda n: n.name)
        allowed = yield defer.gatherResults(
            [self.engine.may_access(service, node, requester.bare.full()) for node in nodes], consumeErrors=True)
        return [node for node, ok in zip(nodes, allowed) if ok]

    # -- accounts ---------------------------------------------------------------------------------------

    def _account_deleting(self, jid, txn):
        self.engine.account_deleting(jid, txn)


def build(context, config):
    return PubSubService(context, config or parse_service_config({}, "extensions.pubsub"))
