"""PEP Native Bookmarks (XEP-0402) and XEP-0048 bookmarks in PEP, kept in step (XEP-0402 §5.3).

Both nodes hold private data, so when a client's publication creates them they are
XEP-0223 private nodes whatever it asked for: whitelist access, persistent items, no last
item on presence; the native node keeps as many items as the server allows ('max'), the
legacy one its single item.

With compatibility on (the "urn:xmpp:bookmarks:1#compat-pep" feature on the account):

* a change of the native node (an item published or retracted, the node purged or
  deleted) publishes the whole list as the legacy node's "current" item, a <storage
  xmlns='storage:bookmarks'/> of <conference jid=.../> elements (§5.3: "cast into the
  storage:bookmarks namespace, jid set to the item id");
* a legacy publication updates the native items one by one: conferences that are new or
  changed are published (unknown <extensions/> of an existing item kept), those gone are
  retracted with notifications, unchanged ones are left alone (no notification, §5.3).

The server's own publications carry an origin the observer ignores, so one side never
echoes back to the other.
"""

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core.iq import ACCOUNT
from summitd.core.jid import JID
from summitd.core.xmlstream import parse_element

NS_BOOKMARKS = "urn:xmpp:bookmarks:1"
NS_LEGACY = "storage:bookmarks"
LEGACY_ITEM = "current"
COMPAT = "bookmarks-compat"     # the origin of the server's own publications

PRIVATE = {
    "pubsub#access_model": "whitelist",
    "pubsub#persist_items": True,
    "pubsub#send_last_published_item": "never",
}
NATIVE_DEFAULTS = {**PRIVATE, "pubsub#max_items": "max"}
LEGACY_DEFAULTS = {**PRIVATE, "pubsub#max_items": 1}


def _child_text(element, name):
    for child in element.elements():
        if child.name == name:
            return str(child)
    return None


def _autojoin(element):
    return element.getAttribute("autojoin") in ("1", "true")


def summary(conference):
    """What both formats say of a conference (name, autojoin, nick, password)."""
    return (conference.getAttribute("name"), _autojoin(conference),
            _child_text(conference, "nick"), _child_text(conference, "password"))


def _conference(uri, summary_, jid=None):
    name, autojoin, nick, password = summary_
    element = domish.Element((uri, "conference"))
    if jid is not None:
        element["jid"] = jid
    if name:
        element["name"] = name
    if autojoin:
        element["autojoin"] = "true"
    for tag, text in (("nick", nick), ("password", password)):
        if text is not None:
            element.addElement(tag, content=text)
    return element


def legacy_storage(items):
    """The XEP-0048 <storage/> for native (item id, payload) pairs."""
    storage = domish.Element((NS_LEGACY, "storage"))
    for item_id, payload in items:
        if payload is not None and payload.uri == NS_BOOKMARKS and payload.name == "conference":
            storage.addChild(_conference(NS_LEGACY, summary(payload), item_id))
    return storage


def native_conference(legacy, existing=None):
    """The XEP-0402 payload for a legacy <conference/>, keeping the <extensions/> of the
    native item it replaces."""
    element = _conference(NS_BOOKMARKS, summary(legacy))
    if existing is not None:
        for child in existing.elements():
            if child.name == "extensions" and child.uri == NS_BOOKMARKS:
                element.addChild(child)
    return element


class Bookmarks:
    def __init__(self, pep, compat):
        self.pep = pep
        pep.node_defaults[NS_BOOKMARKS] = NATIVE_DEFAULTS
        pep.node_defaults[NS_LEGACY] = LEGACY_DEFAULTS
        if compat:
            pep.context.add_feature(NS_BOOKMARKS + "#compat-pep", ACCOUNT)
            pep.engine.observe(self._changed)

    def _changed(self, service, node, kind, detail, origin):
        if origin == COMPAT:
            return
        owner = JID(service)
        if node == NS_BOOKMARKS:
            d = self.pep.get_items(owner, NS_BOOKMARKS).addCallback(self._to_legacy, owner)
        elif node == NS_LEGACY and kind == "publish" and detail.payload:
            d = self.pep.get_items(owner, NS_BOOKMARKS).addCallback(self._to_native, owner, detail)
        else:
            return
        d.addErrback(lambda f: self.pep.context.log.failure("pep: bookmarks of {jid} not synchronised", f,
                                                              jid=service))

    def _to_legacy(self, items, owner):
        return self.pep.publish(owner, NS_LEGACY, LEGACY_ITEM, legacy_storage(items), origin=COMPAT)

    def _to_native(self, items, owner, item):
        storage = parse_element(item.payload)
        if storage.uri != NS_LEGACY or storage.name != "storage":
            return None
        current = dict(items)
        wanted = {}
        for conference in storage.elements(NS_LEGACY, "conference"):
            jid = conference.getAttribute("jid")
            if jid:
                wanted[jid] = conference
        work = []
        for jid, conference in wanted.items():
            existing = current.get(jid)
            if existing is None or summary(existing) != summary(conference):
                work.append(self.pep.publish(owner, NS_BOOKMARKS, jid, native_conference(conference, existing),
                                             origin=COMPAT))
        gone = [jid for jid in current if jid not in wanted]
        if gone:
            work.append(self.pep.retract(owner, NS_BOOKMARKS, gone, origin=COMPAT))
        return defer.gatherResults(work, consumeErrors=True)
