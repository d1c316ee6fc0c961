"""The archive's IQs (XEP-0313 §4 and §5, XEP-0441): queries, the query form, metadata and
preferences, each answered only to the archive's owner.

An archive lives at its owner's bare JID; an IQ to someone else's bare JID is
``forbidden`` (XEP-0313 §8.1) and tells nothing about that archive. Results go
straight to the querying session, before the IQ result that carries ``<fin/>``
(§4.1): both leave through the same stream, so the order holds.
"""

from summitd.core.errors import StanzaError
from summitd.core.iq import ACCOUNT
from summitd.core.jid import InvalidJID, parse_jid
from summitd.plugins.mam import prefs as prefs_protocol
from summitd.plugins.mam.query import (
    NS_MAM, build_fin, build_form, build_metadata, parse_query, result_message)
from summitd.plugins.mam.store import UnknownArchiveId

NS_SID = "urn:xmpp:sid:0"
NS_FULLTEXT = "urn:xmpp:fulltext:0"
FEATURES = (NS_MAM, NS_MAM + "#extended", NS_MAM + "#groupchat-field", NS_SID)


class ArchiveService:
    def __init__(self, context, store, writer, preferences, limits):
        self._context = context
        self._store = store
        self._writer = writer
        self._preferences = preferences
        self._limits = limits
        context.iq("set", ACCOUNT, NS_MAM, "query", self.query)
        context.iq("get", ACCOUNT, NS_MAM, "query", self.form)
        context.iq("get", ACCOUNT, NS_MAM, "metadata", self.metadata)
        context.iq("get", ACCOUNT, NS_MAM, "prefs", self.get_prefs)
        context.iq("set", ACCOUNT, NS_MAM, "prefs", self.set_prefs)
        features = FEATURES + ((NS_FULLTEXT,) if limits.fulltext else ())
        for feature in features:
            context.add_feature(feature, ACCOUNT)
        context.add_feature(NS_SID)

    def _owner(self, iq, to_jid):
        """The archive's owner (bare JID) when the requester is that account, else forbidden."""
        try:
            requester = parse_jid(iq.getAttribute("from", ""))
        except InvalidJID:
            raise StanzaError("forbidden") from None
        if requester.user != to_jid.user or requester.host != to_jid.host:
            raise StanzaError("forbidden", "an archive answers only its owner")
        return to_jid.userhostJID()

    def query(self, iq, to_jid):
        owner = self._owner(iq, to_jid)
        request = parse_query(_payload(iq), self._limits)
        self._writer.flush()
        d = self._store.query(owner.host, owner.user, request.filter, request.page)
        d.addCallbacks(self._results, _unknown_id, callbackArgs=(iq, owner, request))
        return d

    def _results(self, page, iq, owner, request):
        requester = iq["from"]
        session = self._context.session(parse_jid(requester))
        if session is not None:
            archive = owner.userhost()
            items = reversed(page.items) if request.flip else page.items
            for item in items:
                session.send(result_message(item, request.queryid, requester, archive))
        return build_fin(page, stable=self._writer.stable)

    def form(self, iq, to_jid):
        self._owner(iq, to_jid)
        return build_form(self._limits.fulltext)

    def metadata(self, iq, to_jid):
        owner = self._owner(iq, to_jid)
        return metadata_element(self._store, self._writer, owner.host, owner.user)

    def get_prefs(self, iq, to_jid):
        owner = self._owner(iq, to_jid)
        return prefs_protocol.build_prefs(self._preferences.get(owner.host, owner.user))

    def set_prefs(self, iq, to_jid):
        owner = self._owner(iq, to_jid)
        prefs = prefs_protocol.parse_prefs(_payload(iq), self._limits.max_prefs_jids)
        d = self._preferences.set(owner.host, owner.user, prefs)
        d.addCallback(lambda _: prefs_protocol.build_prefs(prefs))
        return d


def metadata_element(store, writer, host, user):
    """A Deferred <metadata/> (XEP-0313 §5) of an archive, with everything archived so far."""
    writer.flush()
    return store.metadata(host, user).addCallback(lambda ends: build_metadata(*ends))


def _payload(iq):
    return next(iq.elements())


def _unknown_id(failure):
    failure.trap(UnknownArchiveId)
    raise StanzaError("item-not-found", f"no message {failure.value.archive_id!r} in the archive")

