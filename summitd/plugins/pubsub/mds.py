"""Displayed Markers sync (XEP-0490): the 'urn:xmpp:mds:displayed:0' PEP node.

The node holds one item per chat (the item id is the chat's JID) saying up to which
stanza-id (XEP-0359) the user has displayed it. It is private (§7: whitelist, persistent,
as many items as allowed, no last item on presence): those are its defaults whenever it
is created implicitly (§5.2), so a client that forgets publish-options leaks nothing.

Server assist (§4.5, announced as 'urn:xmpp:mds:server-assist:0' on the account, option
``mds_server_assist``): a <displayed/> in a message a client sends is stripped before
anything else sees the message (archive, carbons: §5.2), and published as the item named
by the message's verbatim 'to'. A message holding nothing else is refused with
``bad-request`` rather than sent on empty (§4.5.3 forbids the client to send one).

``displayed_markers(pep, owner)`` reads the node for other extensions (an unread summary).
"""

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.core.iq import ACCOUNT

NS_MDS = "urn:xmpp:mds:displayed:0"
NS_SERVER_ASSIST = "urn:xmpp:mds:server-assist:0"
NS_SID = "urn:xmpp:sid:0"

DEFAULTS = {
    "pubsub#access_model": "whitelist",
    "pubsub#persist_items": True,
    "pubsub#max_items": "max",
    "pubsub#send_last_published_item": "never",
}


def displayed_markers(pep, owner):
    """Deferred {chat JID text: (stanza-id, by)} from ``owner``'s displayed node (empty
    when there is none); ``pep`` is the IPersonalEventing provider."""
    def read(items):
        markers = {}
        for item_id, payload in items:
            for sid in payload.elements(NS_SID, "stanza-id") if payload is not None else ():
                markers[item_id] = (sid.getAttribute("id"), sid.getAttribute("by"))
        return markers
    return pep.get_items(owner, NS_MDS).addCallback(read)


class DisplayedMarkers:
    def __init__(self, pep, server_assist):
        self.pep = pep
        pep.node_defaults[NS_MDS] = DEFAULTS
        if server_assist:
            pep.context.add_feature(NS_SERVER_ASSIST, ACCOUNT)
            # Before stamping and archiving (STAMP, ARCHIVE) and carbons (COPY).
            pep.context.hook(events.STANZA_FROM_CLIENT, self._from_client, Priority.STAMP + 10)

    def _from_client(self, session, stanza):
        if stanza.name != "message":
            return None
        displayed = next((c for c in stanza.elements() if c.name == "displayed" and c.uri == NS_MDS), None)
        if displayed is None:
            return None
        stanza.children.remove(displayed)
        to = stanza.getAttribute("to")
        if to is None or next(stanza.elements(), None) is None:
            if stanza.getAttribute("type") != "error":
                error = StanzaError("bad-request", "a displayed marker rides on a message that is not empty")
                session.send(error.reply_to(stanza))
            return True
        d = self.pep.publish(session.jid.bare, NS_MDS, to, displayed)
        d.addErrback(lambda f: self.pep.context.log.failure("pep: displayed marker of {jid} not stored", f,
                                                              jid=session.jid.full()))
        return None
