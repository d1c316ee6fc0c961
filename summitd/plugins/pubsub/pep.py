"""Personal Eventing via Pubsub (XEP-0163): every account's bare JID is a pubsub service
(XEP-0060 §9); the "pep" extension.

* The account alone creates, configures and publishes to its nodes; publishing to a node
  that does not exist creates it ("auto-create", XEP-0163 §3), with the defaults below
  overridden by the publish-options (XEP-0060 §7.1.5).
* Defaults (XEP-0163 §5): access model "presence", one item, the last item sent on
  subscription and presence. Nodes that hold private data get private defaults whatever
  the client forgets to ask (XEP-0223 §3, XEP-0402, XEP-0490 §7): see ``bookmarks``, ``mds``.
* Access follows the account's roster (presence and roster models) through the roster
  extension's IRoster, looked up when needed: without it, only the owner and open, whitelist
  and authorize rules apply.
* Notifications go to subscribers, to the owner's available resources and to contacts with
  a presence subscription, each only for the nodes whose "+notify" feature its entity
  capabilities announce (filtered notifications, XEP-0060 §9.2, XEP-0163 §4.2; see ``recipients`` and
  ``caps_cache``); the last published items go to a resource when it becomes available or
  announces a new interest (XEP-0163 §4.3.4).
* Service discovery: the pubsub/pep identity and the pubsub features on the domain
  (XEP-0223 §5 looks there) and on every account (the identity through
  ACCOUNT_DISCO_IDENTITIES, XEP-0163 §6.1, once disco collects it); an account's nodes as its
  disco#items, and each node's disco#info, for those allowed to see them (XEP-0163 §6).
  The disco events are synchronous, so they answer from the node metadata in memory: a
  service not loaded yet (threaded database) answers empty once and is loaded.
* IQs to an account that does not exist get ``service-unavailable`` (RFC 6121 §8.5.1).
* Deleting an account deletes its nodes, items, subscriptions and affiliations.

Other extensions use ``IPersonalEventing`` (publish and read on an account's behalf).
"""

from twisted.internet import defer
from twisted.words.xish import domish
from zope.interface import implementer

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.core.iq import ACCOUNT
from summitd.core.jid import JID
from summitd.core.xmlstream import parse_element
from summitd.extensions.base import Extension
from summitd.extensions.context import MissingProvider
from summitd.plugins.pubsub import IPersonalEventing, handlers
from summitd.plugins.pubsub.bookmarks import Bookmarks
from summitd.plugins.pubsub.caps_cache import CapsCache
from summitd.plugins.pubsub.config import BASE_DEFAULTS, metadata_form
from summitd.plugins.pubsub.engine import MAY_RETRIEVE, Engine, Face
from summitd.plugins.pubsub.features import PEP_FEATURES, PUBSUB_ON_A_JID
from summitd.plugins.pubsub.mds import DisplayedMarkers
from summitd.plugins.pubsub.protocol import NS_PUBSUB, NS_PUBSUB_OWNER
from summitd.plugins.pubsub.recipients import Recipients
from summitd.plugins.pubsub.settings import make_store, parse_pep_config
from summitd.plugins.pubsub.store import ItemQuery
from summitd.plugins.roster_store import IRoster

PEP_DEFAULTS = {
    "pubsub#access_model": "presence",
    "pubsub#max_items": 1,
    "pubsub#send_last_published_item": "on_sub_and_presence",
}
PEP_IDENTITY = ("pubsub", "pep", None)
parse_config = parse_pep_config


class PEPFace(Face):
    """An account's own service: it owns every node; its roster grants access."""

    auto_create = True

    def __init__(self, pep):
        self.pep = pep

    def default_config(self, service, name):
        return {**BASE_DEFAULTS, **PEP_DEFAULTS, **self.pep.node_defaults.get(name, {})}

    def check_create(self, service, requester):
        if requester != service:
            raise StanzaError("forbidden", "only the account may create nodes at its PEP service")

    def affiliation(self, service, node, bare):
        return "owner" if bare == service else node.affiliations.get(bare, "none")

    def owners_of(self, service, node):
        return [service]

    def nodes_owned(self, state, bare):
        return len(state.nodes)

    def relation(self, service, node, bare):
        return self.pep.recipients.relation(JID(service), JID(bare))

    @defer.inlineCallbacks
    def implicit_recipients(self, service, node):
        owner = JID(service)
        feature = node.name + "+notify"
        recipients = self.pep.recipients
        own = recipients.own_resources(owner, feature)
        contacts = recipients.contacts(owner, feature)
        if not contacts:
            return own
        relations = yield recipients.relations(owner)
        kept = []
        for jid, bare in sorted(contacts.items()):
            relation = relations.get(bare)
            if relation is not None and relation.subscribed and \
                    (yield self.pep.engine.may_access(service, node, bare, relation)):
                kept.append(jid)
        return own + kept


@implementer(IPersonalEventing)
class PersonalEventing(Extension):
    def __init__(self, context, settings):
        super().__init__(context)
        self.settings = settings
        self.node_defaults = {}     # node name -> configuration overriding PEP_DEFAULTS
        self.store = make_store(context, settings.storage)
        self.caps = CapsCache(context)
        self.recipients = Recipients(context, self.caps, self._roster, self._interest)
        self.face = PEPFace(self)
        self.engine = Engine(context, self.store, self.face, settings.limits)
        for type in ("get", "set"):
            for namespace in (NS_PUBSUB, NS_PUBSUB_OWNER):
                context.iq(type, ACCOUNT, namespace, "pubsub", self._iq)
        context.add_identity(*PEP_IDENTITY)
        server_features = tuple(sorted(PEP_FEATURES))
        account_features = server_features + (PUBSUB_ON_A_JID,)
        context.hook(events.SERVER_DISCO_FEATURES, lambda host: server_features)
        context.hook(events.ACCOUNT_DISCO_FEATURES, lambda jid: account_features)
        context.hook(events.ACCOUNT_DISCO_IDENTITIES, lambda jid: (PEP_IDENTITY,))
        context.hook(events.PRESENCE_BROADCAST, self.recipients.own_presence, Priority.DEFAULT + 50)
        context.hook(events.PRESENCE_TO_ACCOUNT, self.recipients.contact_presence, Priority.DEFAULT + 100)
        context.hook(events.ACCOUNT_DISCO_ITEMS, self._disco_items)
        context.hook(events.DISCO_INFO_NODE, self._node_info)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)
        context.provide(IPersonalEventing, self)
        self.bookmarks = Bookmarks(self, compat=settings.bookmarks_compat)
        self.markers = DisplayedMarkers(self, server_assist=settings.mds_server_assist)

    def start(self):
        return self.store.setup()

    def _roster(self):
        try:
            return self.context.need(IRoster)
        except MissingProvider:
            return None

    # -- requests ----------------------------------------------------------------------------------

    def _iq(self, iq, to_jid):
        service = to_jid.full()
        requester = handlers.requester_of(iq)
        if requester.bare == to_jid:
            return handlers.handle(self.engine, iq, service)

        def exists(found):
            if not found:
                raise StanzaError("service-unavailable")
            return handlers.handle(self.engine, iq, service)
        return self.context.accounts.exists(to_jid).addCallback(exists)

    # -- the last items for a newly interested resource (XEP-0163 §4.3.4) --------------------------

    def _interest(self, owner, recipient, features, relation):
        """``recipient`` (the owner's resource when ``relation`` is None, else a contact's)
        became interested in ``features``: send the newest item of each such node."""
        service = owner.full()
        d = self.engine.state(service)
        d.addCallback(self._send_last, service, recipient, features, relation)
        d.addErrback(lambda f: self.context.log.failure("pep: last items for {jid}", f, jid=recipient))

    @defer.inlineCallbacks
    def _send_last(self, state, service, recipient, features, relation):
        for node in sorted(state.nodes.values(), key=lambda n: n.name):
            config = node.config
            if node.name + "+notify" not in features or not config["pubsub#persist_items"] or \
                    config["pubsub#send_last_published_item"] != "on_sub_and_presence":
                continue
            if relation is None or (yield self.engine.may_access(service, node, recipient.partition("/")[0],
                                                                 relation)):
                self.engine.send_last(service, node, recipient)

    # -- service discovery (synchronous events: from memory) -------------------------------------

    def _visible(self, service, node, requester):
        """Whether ``requester`` (already allowed to see the account by disco) may see the node:
        without roster groups at hand, roster nodes count only for the affiliated."""
        bare = requester.bare.full() if requester is not None else None
        affiliation = self.face.affiliation(service, node, bare)
        if affiliation in MAY_RETRIEVE:
            return True
        if affiliation == "outcast":
            return False
        model = node.config["pubsub#access_model"]
        if model == "authorize":
            return any(s.jid.partition("/")[0] == bare and s.state == "subscribed" for s in node.subscriptions.values())
        return model == "open" or (model == "presence" and requester is not None and requester.user is not None)

    def _disco_items(self, jid, requester):
        state = self.engine.peek(jid.full())
        if state is None:
            return []
        return [(jid, node.name, None) for node in sorted(state.nodes.values(), key=lambda n: n.name)
                if self._visible(jid.full(), node, requester)]

    def _node_info(self, to_jid, name, requester):
        if to_jid.user is None:
            return None
        state = self.engine.peek(to_jid.bare.full())
        node = state.nodes.get(name) if state is not None else None
        if node is None or not self._visible(to_jid.bare.full(), node, requester):
            return None
        return ((("pubsub", "leaf", None),), (NS_PUBSUB,), (metadata_form(node),))

    # -- accounts ----------------------------------------------------------------------------------------

    def _account_deleting(self, jid, txn):
        self.engine.account_deleting(jid, txn, also=self.recipients.forget_account)

    # -- IPersonalEventing ---------------------------------------------------------------------------------

    def get_items(self, owner, node, ids=None):
        query = ItemQuery(ids=tuple(ids) if ids else None, limit=self.settings.limits.max_items)
        d = self.store.items(owner.bare.full(), node, query)
        return d.addCallback(lambda page: [(item.id, parse_element(item.payload) if item.payload else None)
                                           for item in page.items])

    def publish(self, owner, node, item_id, payload, options=None, origin=None):
        item = domish.Element((NS_PUBSUB, "item"))
        item["id"] = item_id
        if payload is not None:
            item.children.append(payload)
        owner = owner.bare
        return defer.maybeDeferred(self.engine.publish, owner.full(), owner, node, item,
                                   origin=origin, create_config=options)

    def retract(self, owner, node, ids, origin=None):
        """Retract items on the owner's behalf, notifying (bookmarks compatibility)."""
        owner = owner.bare
        return defer.maybeDeferred(self.engine.retract, owner.full(), owner, node, ids, True, origin)


def build(context, config):
    return PersonalEventing(context, config or parse_pep_config({}, "extensions.pep"))
