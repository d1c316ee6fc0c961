"""Clients' Entity Capabilities (XEP-0115), verified and cached, for PEP's filtered
notifications (XEP-0163 §4.2, XEP-0060 §9.2).

A client announces ``<c node ver hash/>`` in its presence. The first time a (hash, ver)
pair is seen, the server asks that client for the disco#info of ``node#ver`` (§6.2) on
the account's behalf, recomputes the verification string (§5.4, with the caps extension's
``verification_string``) and caches the features only when it matches: a client cannot
poison the cache for others (§8.3). An answer that does not verify, or caps without a
known hash (the legacy format), still tells what that one client wants, but is not cached.
Concurrent lookups of one pair share one query; a failed query means "no interests" and is
asked again at the next presence.
"""

from collections import OrderedDict, namedtuple

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.plugins.caps import HASHES, NS_CAPS, verification_string
from summitd.plugins.disco import NS_DISCO_INFO

CACHE_SIZE = 4096       # (hash, ver) pairs kept: far more than there are client versions
QUERY_TIMEOUT = 30      # seconds a client has to answer the disco#info query

NOTHING = frozenset()


class Caps(namedtuple("Caps", "node ver hash")):
    """What a presence announced."""

    @property
    def key(self):
        """The cache key, or None when the announcement cannot be verified."""
        return (self.hash, self.ver) if self.hash in HASHES else None


def announced(presence):
    """The Caps of a presence stanza, or None."""
    if presence is None:
        return None
    for child in presence.elements():
        if child.name == "c" and child.uri == NS_CAPS:
            node, ver = child.getAttribute("node"), child.getAttribute("ver")
            if node and ver:
                return Caps(node, ver, child.getAttribute("hash"))
    return None


class CapsCache:
    def __init__(self, context, size=CACHE_SIZE):
        self.context = context
        self.size = size
        self._known = OrderedDict()     # (hash, ver) -> frozenset of features
        self._pending = {}              # (hash, ver) -> Deferreds waiting for one query
        self._unverified_logged = set()

    def features(self, caps):
        """The cached features of ``caps`` (None when not known yet)."""
        key = None if caps is None else caps.key
        if key is None:
            return None
        features = self._known.get(key)
        if features is not None:
            self._known.move_to_end(key)
        return features

    def resolve(self, caps, entity, asker):
        """Deferred frozenset of the features ``entity`` (a full JID text) announced with
        ``caps``, asking it (from ``asker``, a JID text) when they are not cached."""
        if caps is None:
            return defer.succeed(NOTHING)
        known = self.features(caps)
        if known is not None:
            return defer.succeed(known)
        key = caps.key
        if key is None:
            return self._query(caps, entity, asker)
        waiter = defer.Deferred()
        waiters = self._pending.get(key)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        self._pending[key] = [waiter]
        self._query(caps, entity, asker).addCallback(self._answered, key)
        return waiter

    def _answered(self, features, key):
        for waiter in self._pending.pop(key, ()):
            waiter.callback(features)

    def _query(self, caps, entity, asker):
        iq = domish.Element(("jabber:client", "iq"))
        iq["type"], iq["from"], iq["to"] = "get", asker, entity
        iq.addElement((NS_DISCO_INFO, "query"))["node"] = f"{caps.node}#{caps.ver}"
        d = self.context.request(iq, QUERY_TIMEOUT)
        d.addCallback(self._check, caps, entity)
        d.addErrback(self._no_answer, entity)
        return d

    def _check(self, reply, caps, entity):
        query = next((c for c in reply.elements() if c.name == "query" and c.uri == NS_DISCO_INFO), None)
        if query is None:
            return NOTHING
        features = frozenset(f.getAttribute("var") for f in query.elements(NS_DISCO_INFO, "feature")
                             if f.getAttribute("var"))
        if caps.key is None:
            return features
        if verification_string(query, caps.hash) == caps.ver:
            self._known[caps.key] = features
            while len(self._known) > self.size:
                self._known.popitem(last=False)
        elif entity not in self._unverified_logged and len(self._unverified_logged) < self.size:
            self._unverified_logged.add(entity)
            self.context.log.info("pep: the caps of {entity} do not verify; not cached", entity=entity)
        return features

    def _no_answer(self, failure, entity):
        self.context.log.debug("pep: no disco#info from {entity}: {failure}", entity=entity,
                               failure=failure.getErrorMessage())
        return NOTHING
