"""Private XML Storage (XEP-0049): an account keeps XML of its own namespaces on the server
(bookmarks of XEP-0048, client preferences).

The rules, from XEP-0049 §2 and §3:

* only the account itself reads or writes its storage; an IQ about another account's
  storage gets ``forbidden`` (the preferable of the two errors §3 allows);
* a get names one namespace by an empty child (no child: ``bad-request``, RFC 6120's name
  for §3's "Bad Format"; children of several namespaces: ``bad-request`` too); nothing
  stored yet returns the requested element empty;
* a set holds at least one child (else ``not-acceptable``); the children of each
  namespace replace what was stored under it;
* the reserved namespaces (``jabber:*``, ``http://jabber.org/*``, ``vcard-temp``) are
  refused with ``not-acceptable``, the optional behaviour §3 describes;
* what one account stores is bounded by ``max_size`` bytes in all (option, default
  128 KiB); a set that would exceed it gets ``not-acceptable`` with a text (RFC 6120
  §8.3.3.9, whose example is a stanza that is too large).

One row per (account, namespace) in the extension's own table, so the size check and the
write are one transaction; the rows go with the account (ACCOUNT_DELETING).
"""

from twisted.words.xish import domish

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.iq import ACCOUNT
from summitd.core.jid import InvalidJID, parse_jid
from summitd.core.xmlstream import parse_element
from summitd.core.xmlwriter import serialize
from summitd.extensions.base import Extension
from summitd.storage.schema import Migration

NS_PRIVATE = "jabber:iq:private"
RESERVED_PREFIXES = ("jabber:", "http://jabber.org/")
RESERVED_NAMESPACES = frozenset({"vcard-temp"})
DEFAULT_MAX_SIZE = 128 * 1024

MIGRATIONS = (
    Migration(1, (
        "CREATE TABLE private_xml ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " namespace TEXT NOT NULL,"
        " size INTEGER NOT NULL,"       # octets of xml, for the per-account limit
        " xml TEXT NOT NULL,"           # the stored children, serialised
        " PRIMARY KEY (host, username, namespace)"
        ")",
    )),
)


def parse_config(raw, path):
    """[extensions.private]: ``max_size``, octets one account may store (>= 1024)."""
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key != "max_size"]
    max_size = raw.get("max_size", DEFAULT_MAX_SIZE)
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1024:
        errors.append((f"{path}.max_size", "must be an integer >= 1024 (octets)"))
    if errors:
        raise ConfigError(errors)
    return max_size


class StorageFull(Exception):
    """Storing would take the account over its limit."""


def _namespace(child):
    """The child's namespace if a client may store under it, else not-acceptable."""
    namespace = child.uri or ""
    if not namespace or namespace.startswith(RESERVED_PREFIXES) or namespace in RESERVED_NAMESPACES:
        raise StanzaError("not-acceptable", f"the namespace {namespace!r} is reserved")
    return namespace


def _check_owner(iq, to_jid):
    """forbidden unless the IQ comes from the account ``to_jid`` itself."""
    try:
        owner = parse_jid(iq.getAttribute("from", "")).userhostJID() == to_jid
    except InvalidJID:
        owner = False
    if not owner:
        raise StanzaError("forbidden", "private storage belongs to its account alone")


def _load(txn, host, user, namespace):
    row = txn.execute("SELECT xml FROM private_xml WHERE host = ? AND username = ? AND namespace = ?",
                      (host, user, namespace)).fetchone()
    return None if row is None else row[0]


def _store(txn, host, user, fragments, max_size):
    """Replace the XML of each namespace in ``fragments`` ({namespace: xml}) unless the
    account would then hold more than ``max_size`` octets."""
    sizes = {namespace: len(xml.encode("utf-8")) for namespace, xml in fragments.items()}
    marks = ", ".join("?" for _ in fragments)
    others = txn.execute(
        "SELECT COALESCE(SUM(size), 0) FROM private_xml"
        f" WHERE host = ? AND username = ? AND namespace NOT IN ({marks})",
        (host, user, *fragments)).fetchone()[0]
    if others + sum(sizes.values()) > max_size:
        raise StorageFull()
    for namespace, xml in fragments.items():
        txn.execute(
            "INSERT INTO private_xml (host, username, namespace, size, xml) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (host, username, namespace) DO UPDATE SET size = excluded.size, xml = excluded.xml",
            (host, user, namespace, sizes[namespace], xml))


class PrivateStorage(Extension):
    def __init__(self, context, max_size):
        super().__init__(context)
        self.max_size = max_size
        context.iq("get", ACCOUNT, NS_PRIVATE, "query", self._get)
        context.iq("set", ACCOUNT, NS_PRIVATE, "query", self._set)
        context.add_feature(NS_PRIVATE)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)

    def start(self):
        return self.context.migrate("private", MIGRATIONS)

    def _get(self, iq, to_jid):
        _check_owner(iq, to_jid)
        requested = list(iq.firstChildElement().elements())
        if not requested:
            raise StanzaError("bad-request", "name the namespace to read with an empty child element")
        namespaces = {_namespace(child) for child in requested}
        if len(namespaces) > 1:
            raise StanzaError("bad-request", "one namespace per request")
        d = self.context.database.runInteraction("private: load", _load, to_jid.host, to_jid.user,
                                                 namespaces.pop())
        return d.addCallback(self._loaded, requested)

    def _loaded(self, xml, requested):
        if xml is not None:
            return parse_element(f"<query xmlns='{NS_PRIVATE}'>{xml}</query>")
        query = domish.Element((NS_PRIVATE, "query"))
        for child in requested:
            query.addElement((child.uri, child.name))
        return query

    def _set(self, iq, to_jid):
        _check_owner(iq, to_jid)
        fragments = {}
        for child in iq.firstChildElement().elements():
            namespace = _namespace(child)
            fragments[namespace] = fragments.get(namespace, "") + serialize(child, NS_PRIVATE)
        if not fragments:
            raise StanzaError("not-acceptable", "nothing to store: add an element in its own namespace")
        d = self.context.database.runInteraction("private: store", _store, to_jid.host, to_jid.user,
                                                 fragments, self.max_size)
        return d.addCallbacks(lambda _: None, self._full)

    def _full(self, failure):
        failure.trap(StorageFull)
        raise StanzaError("not-acceptable",
                          f"private storage holds at most {self.max_size} octets per account")

    def _account_deleting(self, jid, txn):
        txn.execute("DELETE FROM private_xml WHERE host = ? AND username = ?", (jid.host, jid.user))


def build(context, config):
    return PrivateStorage(context, config or DEFAULT_MAX_SIZE)
