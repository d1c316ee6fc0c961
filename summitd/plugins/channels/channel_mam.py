"""Message Archive Management on a channel's JID (XEP-0313 §6 for MUC rooms, XEP-0369 §7.2 for
MIX channels): the query protocol of the "mam" extension (``summitd.plugins.mam.query``:
the form, RSM, ``<fin/>``) over the channel's archive, each result rendered by the face
that was asked (MUC from ``room/nick``, MIX with ``<mix/>``) for the requester, so a real
JID appears only where the requester may see it.

Who may query is the face's decision (``may_read``); a ``with`` filter names a sender's
real JID, so only those who may see real JIDs may use it (``forbidden`` otherwise).
"""

from dataclasses import dataclass

from summitd.core.errors import StanzaError
from summitd.plugins.mam.archiving import stored_xml
from summitd.plugins.mam.query import (
    NS_MAM, build_fin, build_form, build_metadata, parse_query, result_message)
from summitd.plugins.mam.store import Item, UnknownArchiveId

FEATURES = (NS_MAM, NS_MAM + "#extended", "urn:xmpp:sid:0")


@dataclass(frozen=True)
class Limits:
    default_page_size: int = 50
    max_page_size: int = 250
    fulltext: bool = False


LIMITS = Limits()


def _unknown_id(failure):
    failure.trap(UnknownArchiveId)
    raise StanzaError("item-not-found", f"no message {failure.value.archive_id!r} in the archive")


def handle(face, channel, iq, query, requester):
    """The answer to a MAM IQ to the channel (query, form or metadata)."""
    if not face.may_read(channel, requester.userhost()):
        raise StanzaError("forbidden", "you may not read this channel's archive")
    kind = iq.getAttribute("type")
    if query.name == "metadata":
        return face.directory.archive.metadata(channel).addCallback(lambda ends: build_metadata(*ends))
    if kind == "get":
        return build_form(False)
    request = parse_query(query, LIMITS)
    if request.filter.with_bare is not None and not channel.may_see_jids(requester.userhost()):
        raise StanzaError("forbidden", "only those who see real JIDs may filter by sender")
    d = face.directory.archive.find(channel, request.filter, request.page)
    d.addCallbacks(_results, _unknown_id, callbackArgs=(face, channel, iq, request, requester))
    return d


def _results(page, face, channel, iq, request, requester):
    to, archive = iq["from"], face.address(channel)
    viewer = requester.userhost()
    items = reversed(page.items) if request.flip else page.items
    for posted in items:
        rendered = face.render_archived(channel, posted, viewer)
        face.context.route(result_message(Item(posted.id, posted.ts, stored_xml(rendered)),
                                          request.queryid, to, archive))
    return build_fin(page, stable=face.directory.archive.writer.stable)
