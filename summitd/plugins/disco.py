"""Service Discovery (XEP-0030) for the hosted domains and their accounts, with XEP-0128
extended information forms.

Nothing is listed here in advance: identities, features, forms and items come from the
enabled extensions through collect events (``context.add_feature`` and
``context.add_identity`` feed two of them), and nodes through run events, so an answer
always describes the server that is running.

A bare JID is answered by the server on the account's behalf (XEP-0030 §3.1). Such answers
would let anyone harvest the account directory, so XEP-0030 §8 and RFC 6121 §8.5.1 apply:
the owner always gets an answer; another entity only when the account has a presence
subscription "from" or "both" towards it (asked through an optional ``may_see`` callable,
by default the roster extension's ``IRoster``) or it is the account's own domain. Everyone
else, and everyone asking about an account that does not exist, gets the same answer:
``service-unavailable`` for disco#info, an empty result for disco#items.
"""

from collections import namedtuple

from twisted.internet import defer
from twisted.words.xish import domish
from wokkel.disco import DiscoFeature, DiscoIdentity
from zope.interface import Interface

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.iq import ACCOUNT, SERVER
from summitd.core.jid import InvalidJID, parse_jid
from summitd.extensions.base import Extension
from summitd.extensions.context import MissingProvider
from summitd.plugins.roster_store import IRoster
from summitd.version import NAME

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_X_DATA = "jabber:x:data"

SERVER_IDENTITY = ("server", "im", NAME)
ACCOUNT_IDENTITY = ("account", "registered", None)


class Info(namedtuple("Info", "identities features forms")):
    """What disco#info tells: (category, type, name) tuples, feature strings and XEP-0128
    form elements."""


class IServiceDiscovery(Interface):
    """What the disco extension offers other extensions (caps hashes the server's info)."""

    def server_info(host):
        """The ``Info`` of a hosted domain: identities and features deduplicated and sorted,
        one form per FORM_TYPE."""


def form_type(form):
    """The FORM_TYPE of a data form element (its hidden field's value), or None."""
    for field in form.elements(NS_X_DATA, "field"):
        if field.getAttribute("var") == "FORM_TYPE" and field.getAttribute("type") == "hidden":
            for value in field.elements(NS_X_DATA, "value"):
                return str(value)
    return None


def info_element(info, node=None):
    """The disco#info ``<query/>`` for ``info`` (mirroring the requested node)."""
    query = domish.Element((NS_DISCO_INFO, "query"))
    if node is not None:
        query["node"] = node
    for category, type, name in info.identities:
        query.addChild(DiscoIdentity(category, type, name).toElement())
    for var in info.features:
        query.addChild(DiscoFeature(var).toElement())
    for form in info.forms:
        query.addChild(form)
    return query


def items_element(items, node=None):
    """The disco#items ``<query/>`` for (jid, node, name) tuples."""
    query = domish.Element((NS_DISCO_ITEMS, "query"))
    if node is not None:
        query["node"] = node
    for jid, item_node, name in items:
        item = query.addElement("item")
        item["jid"] = jid if isinstance(jid, str) else jid.full()
        if item_node:
            item["node"] = item_node
        if name:
            item["name"] = name
    return query


def normalise(identities, features, forms):
    """An ``Info`` as XEP-0030 and XEP-0115 want it: one identity per category/type, each
    feature once, one form per FORM_TYPE (forms without one are not extended info)."""
    unique_identities = {}
    for category, type, name in identities:
        unique_identities.setdefault((category, type), name)
    unique_forms = {}
    for form in forms:
        kind = form_type(form)
        if kind is not None:
            unique_forms.setdefault(kind, form)
    return Info(
        tuple((c, t, unique_identities[c, t]) for c, t in sorted(unique_identities)),
        tuple(sorted(set(features))),
        tuple(unique_forms[kind] for kind in sorted(unique_forms)))


def _node(query):
    node = query.getAttribute("node")
    return node or None     # XEP-0030 §4.2: a node is never empty; read node='' as none


def _requester(iq):
    sender = iq.getAttribute("from")
    try:
        return None if sender is None else parse_jid(sender)
    except InvalidJID:
        return None


def _roster_may_see(context):
    """``may_see`` backed by the roster extension (IRoster) when it runs, else nobody. It is
    looked up per request: the roster may load after disco, or be unloaded."""
    def may_see(account, requester):
        try:
            roster = context.need(IRoster)
        except MissingProvider:
            return False
        return roster.is_subscribed_from(account, requester)
    return may_see


class ServiceDiscovery(Extension):
    """Answers disco#info and disco#items for domains (SERVER) and bare JIDs (ACCOUNT)."""

    def __init__(self, context, may_see=None):
        super().__init__(context)
        self.may_see = may_see or _roster_may_see(context)
        context.iq("get", SERVER, NS_DISCO_INFO, "query", self._server_info)
        context.iq("get", SERVER, NS_DISCO_ITEMS, "query", self._server_items)
        context.iq("get", ACCOUNT, NS_DISCO_INFO, "query", self._account_info)
        context.iq("get", ACCOUNT, NS_DISCO_ITEMS, "query", self._account_items)
        context.add_identity(*SERVER_IDENTITY)
        for namespace in (NS_DISCO_INFO, NS_DISCO_ITEMS):
            context.add_feature(namespace, SERVER)
            context.add_feature(namespace, ACCOUNT)
        context.provide(IServiceDiscovery, self)

    # -- what is known ----------------------------------------------------------------

    def server_info(self, host):
        collect = self.context.collect
        return normalise(collect(events.SERVER_DISCO_IDENTITIES, host),
                         collect(events.SERVER_DISCO_FEATURES, host),
                         collect(events.SERVER_DISCO_FORMS, host))

    def account_info(self, jid):
        identities = (ACCOUNT_IDENTITY, *self.context.collect(events.ACCOUNT_DISCO_IDENTITIES, jid))
        return normalise(identities, self.context.collect(events.ACCOUNT_DISCO_FEATURES, jid), ())

    def _node_answer(self, event, to_jid, node, requester):
        answer = self.context.run(event, to_jid, node, requester)
        if answer is None:
            raise StanzaError("item-not-found", "no such node")
        return answer

    def _node_info(self, to_jid, node, requester):
        info = self._node_answer(events.DISCO_INFO_NODE, to_jid, node, requester)
        return info_element(normalise(*info), node)

    def _node_items(self, to_jid, node, requester):
        return items_element(self._node_answer(events.DISCO_ITEMS_NODE, to_jid, node, requester), node)

    # -- domains ------------------------------------------------------------------------

    def _server_info(self, iq, to_jid):
        node = _node(iq.firstChildElement())
        if node is None:
            return info_element(self.server_info(to_jid.host))
        return self._node_info(to_jid, node, _requester(iq))

    def _server_items(self, iq, to_jid):
        node = _node(iq.firstChildElement())
        if node is None:
            return items_element(self.context.collect(events.SERVER_DISCO_ITEMS, to_jid.host))
        return self._node_items(to_jid, node, _requester(iq))

    # -- accounts -----------------------------------------------------------------------

    def _allowed(self, account, requester):
        """Deferred: True when ``requester`` may learn about ``account`` (see the module doc)."""
        if requester is None:
            return defer.succeed(False)
        if requester.user == account.user and requester.host == account.host:
            return defer.succeed(True)

        def if_exists(exists):
            if not exists:
                return False
            if requester.user is None and requester.host == account.host:
                return True
            return defer.maybeDeferred(self.may_see, account, requester).addCallback(bool)

        return self.context.accounts.exists(account).addCallback(if_exists)

    def _on_behalf(self, iq, to_jid, answer):
        """``answer(account, node, requester, allowed)`` once the access check is done."""
        node = _node(iq.firstChildElement())
        requester = _requester(iq)
        return self._allowed(to_jid, requester).addCallback(
            lambda allowed: answer(to_jid, node, requester, allowed))

    def _account_info(self, iq, to_jid):
        return self._on_behalf(iq, to_jid, self._account_info_answer)

    def _account_info_answer(self, account, node, requester, allowed):
        if not allowed:
            raise StanzaError("service-unavailable")
        if node is None:
            return info_element(self.account_info(account))
        return self._node_info(account, node, requester)

    def _account_items(self, iq, to_jid):
        return self._on_behalf(iq, to_jid, self._account_items_answer)

    def _account_items_answer(self, account, node, requester, allowed):
        if not allowed:
            return items_element((), node)    # XEP-0030 §8: empty, never an error
        if node is None:
            return items_element(self.context.collect(events.ACCOUNT_DISCO_ITEMS, account, requester))
        return self._node_items(account, node, requester)


def build(context, config):
    return ServiceDiscovery(context)
