"""How the MUC face shows a channel (XEP-0045 §7, XEP-0421, XEP-0425): occupant presence with
its ``muc#user`` item and status codes, messages from ``room/nick``, history with delays,
tombstones of retracted messages.

Pure functions of the model and a ``RoomView`` (the room's JID and the service's options):
the face decides who gets what and routes it.
"""

from dataclasses import dataclass

from twisted.words.xish import domish

from summitd.plugins.channels.archive import NS_MIX
from summitd.plugins.channels.stanzas import NS_CLIENT, delay, occupant_id, stanza, stanza_id
from summitd.plugins.mam.query import format_datetime

NS_MUC = "http://jabber.org/protocol/muc"
NS_USER = NS_MUC + "#user"
NS_RETRACT = "urn:xmpp:message-retract:1"
NS_MODERATE = "urn:xmpp:message-moderate:1"

#: Presence children that are the room's to add, never the occupant's.
ROOM_CHILDREN = frozenset({(NS_MUC, "x"), (NS_USER, "x"), ("urn:xmpp:occupant-id:0", "occupant-id"),
                           ("urn:xmpp:mix:presence:0", "mix")})


@dataclass(frozen=True)
class RoomView:
    """What rendering needs besides the channel: the room's bare JID, the stable id function
    and whether occupant ids (XEP-0421) are shown."""

    jid: str
    ids: object          # callable(bare JID) -> stable id
    occupant_ids: bool = True

    def occupant(self, nick):
        return f"{self.jid}/{nick}"


def presence_payload(presence):
    """The children of a client's presence the room reflects (show, status, caps ...)."""
    if presence is None:
        return []
    return [c for c in presence.elements() if (c.uri, c.name) not in ROOM_CHILDREN]


def user_x(affiliation, role, jid=None, nick=None, codes=(), actor=None, reason=None):
    """The ``<x xmlns='muc#user'>`` of an occupant's presence."""
    x = domish.Element((NS_USER, "x"))
    item = x.addElement("item")
    item["affiliation"] = affiliation
    item["role"] = role
    if jid is not None:
        item["jid"] = jid
    if nick is not None:
        item["nick"] = nick
    if actor is not None:
        item.addElement("actor")["nick"] = actor
    if reason:
        item.addElement("reason", content=reason)
    for code in codes:
        x.addElement("status")["code"] = str(code)
    return x


def occupant_presence(view, channel, nick, bare, role, payload, jid=None, codes=(), type=None,
                      new_nick=None, actor=None, reason=None, affiliation=None):
    """One presence from ``room/nick`` (not yet addressed): ``jid`` is the real JID shown
    (None for viewers who may not see it); the affiliation is the channel's unless given."""
    presence = stanza("presence", view.occupant(nick), type=type)
    presence.children = list(payload)
    presence.addChild(user_x(affiliation or channel.affiliation(bare), role, jid, new_nick, codes,
                             actor, reason))
    if view.occupant_ids:
        presence.addChild(occupant_id(view.ids(bare)))
    return presence


def tombstone(retraction):
    """The XEP-0424/0425 tombstone that replaces a retracted message's payload."""
    element = domish.Element((NS_RETRACT, "retracted"))
    element["stamp"] = format_datetime(retraction.ts)
    if retraction.moderated:
        moderated = element.addElement((NS_MODERATE, "moderated"))
        moderated["by"] = retraction.by_nick
    if retraction.reason:
        element.addElement("reason", content=retraction.reason)
    return element


def message(view, posted, jid=None):
    """A channel message as MUC shows it, from ``room/nick`` (or the room for the room's own
    announcements), with the room's stanza-id and the sender's occupant id; ``jid`` adds
    the sender's real JID (XEP-0045 §7.2.? for moderators in MAM results)."""
    sender = view.occupant(posted.nick) if posted.nick else view.jid
    element = stanza("message", sender, type="groupchat", id=posted.client_id or posted.id)
    if posted.retraction is not None:
        element.children = [tombstone(posted.retraction)]
    else:
        element.children = list(posted.payload)
    if jid is not None:
        x = element.addElement((NS_USER, "x"))
        x.addElement("item")["jid"] = jid
    element.addChild(stanza_id(posted.id, view.jid))
    if view.occupant_ids and posted.bare and posted.nick:
        element.addChild(occupant_id(view.ids(posted.bare)))
    return element


def history_message(view, posted, jid=None):
    """A message replayed on entering (§7.2.15): a delay from the room."""
    element = message(view, posted, jid)
    element.addChild(delay(format_datetime(posted.ts), view.jid))
    return element


def subject_message(view, channel):
    """The subject, sent last on entering and on every change (§8.1): an empty <subject/>
    when none is set."""
    subject = channel.subject
    sender = view.occupant(subject.nick) if subject is not None and subject.nick else view.jid
    element = stanza("message", sender, type="groupchat", id=f"subject-{subject.ts if subject else 0}")
    element.addElement((NS_CLIENT, "subject"), content=subject.text if subject else "")
    return element


def status_message(view, codes):
    """A message from the room carrying only status codes (§10.2.1: 104 and friends)."""
    element = stanza("message", view.jid, type="groupchat")
    x = element.addElement((NS_USER, "x"))
    for code in codes:
        x.addElement("status")["code"] = str(code)
    return element


def sender_jid_shown(channel, viewer_bare, sender_full):
    """The real JID a viewer may see of a sender (XEP-0045 §7.2.3: non-anonymous rooms, or
    moderators of semi-anonymous ones), or None."""
    return sender_full if channel.may_see_jids(viewer_bare) else None


__all__ = ["NS_MUC", "NS_USER", "NS_RETRACT", "NS_MODERATE", "NS_MIX", "RoomView", "presence_payload",
           "user_x", "occupant_presence", "tombstone", "message", "history_message",
           "subject_message", "status_message", "sender_jid_shown"]
