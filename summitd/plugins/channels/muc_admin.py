"""MUC administration (XEP-0045 §7.8, §7.10, §8 - §10; XEP-0424, XEP-0425): what the room does
when moderators, admins and owners act, and what it tells occupants when the channel
changes.

* ``admin``: the muc#admin lists and changes: kick (role none, 307), voice (participant /
  visitor), moderator status, membership, ban (outcast, 301), admins and owners, each with
  an optional reason; every item of a request is checked before any is applied.
* ``owner``: the configuration form, instant rooms and the cancelled first
  configuration (§10.1), configuration changes (104 and the privacy codes), destruction.
* ``register``: registration of a nick with the room (§7.10); it makes the JID a member.
* ``moderate``: XEP-0425 moderation (a moderator retracts any message; the archive keeps
  a tombstone) and ``retract_own``: XEP-0424 retraction of one's own message.
* ``invitations``: mediated invitations and declines (§7.8.2, §7.8.3); in members-only
  rooms an admin's invitation (or anyone's when the room allows it) makes the invitee a
  member.

The rules of who may act on whom are the model's (``Channel.check_role_change``,
``check_affiliation_change``); this module applies them to the protocol.
"""

from twisted.words.xish import domish

from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid
from summitd.plugins.channels import muc_render as render
from summitd.plugins.channels.archive import Posted, reflected_payload
from summitd.plugins.channels.forms import muc_config_form, parse_muc_config
from summitd.plugins.channels.model import AFFILIATIONS, RANK, ChannelError, Member, clean_nick
from summitd.plugins.channels.stanzas import child, form, form_values, occupant_id, stanza, text_of
from summitd.plugins.channels.store import Retraction
from summitd.plugins.mam.store import ArchiveFilter, PageRequest, UnknownArchiveId

NS_MUC, NS_USER = render.NS_MUC, render.NS_USER
NS_ADMIN = NS_MUC + "#admin"
NS_OWNER = NS_MUC + "#owner"
NS_REGISTER = "jabber:iq:register"
NS_REGISTER_FORM = NS_MUC + "#register"
NS_MODERATE = render.NS_MODERATE
NS_RETRACT = render.NS_RETRACT
LIST_ROLES = ("moderator", "participant", "visitor")


def _occupant_of(channel, sender):
    return channel.by_full.get(sender.full())


def _actor(channel, sender):
    occupant = _occupant_of(channel, sender)
    return occupant.nick if occupant is not None else None


# -- muc#admin (§8, §9) ----------------------------------------------------------------------

def admin(face, channel, iq, sender, query):
    items = list(query.elements(NS_ADMIN, "item"))
    if not items:
        raise StanzaError("bad-request", "name at least one item")
    if iq["type"] == "get":
        return _admin_list(face, channel, sender, items)
    changes = [_admin_change(face, channel, sender, item) for item in items]
    for apply in changes:
        apply()
    return None


def _admin_list(face, channel, sender, items):
    if len(items) != 1:
        raise StanzaError("bad-request", "ask for one list at a time")
    item, bare = items[0], sender.userhost()
    affiliation, role = item.getAttribute("affiliation"), item.getAttribute("role")
    query = domish.Element((NS_ADMIN, "query"))
    if affiliation is not None:
        if affiliation not in AFFILIATIONS or affiliation == "none":
            raise StanzaError("bad-request", "no such list")
        if channel.rank(bare) < RANK["admin"]:
            raise ChannelError("forbidden", "only admins and owners see affiliation lists")
        for jid in channel.with_affiliation(affiliation):
            entry = query.addElement("item")
            entry["affiliation"], entry["jid"] = affiliation, jid
            nick = channel.members[jid].nick
            if nick:
                entry["nick"] = nick
        return query
    if role not in LIST_ROLES:
        raise StanzaError("bad-request", "ask for an affiliation or a role list")
    occupant = _occupant_of(channel, sender)
    if occupant is None or occupant.role != "moderator":
        raise ChannelError("forbidden", "only moderators see role lists")
    for other in sorted(channel.occupants.values(), key=lambda o: o.nick):
        if other.role == role:
            entry = query.addElement("item")
            entry["role"], entry["nick"] = role, other.nick
            entry["affiliation"] = channel.affiliation(other.bare)
            entry["jid"] = next(iter(other.sessions))
    return query


def _admin_change(face, channel, sender, item):
    """Check one item of a muc#admin set; returns the function that applies it."""
    role, affiliation = item.getAttribute("role"), item.getAttribute("affiliation")
    reason = text_of(item, NS_ADMIN, "reason")
    actor = _actor(channel, sender)
    if (role is None) == (affiliation is None):
        raise StanzaError("bad-request", "an item changes either a role or an affiliation")
    if role is not None:
        if role not in ROLES_SETTABLE:
            raise StanzaError("bad-request", "no such role")
        target = channel.occupant_by_nick(item.getAttribute("nick") or "")
        if target is None:
            raise ChannelError("item-not-found", "no occupant of that nickname")
        occupant = _occupant_of(channel, sender)
        channel.check_role_change(sender.userhost(), occupant.role if occupant else "none", target, role)
        return lambda: _set_role(face, channel, target, role, actor, reason)
    if affiliation not in AFFILIATIONS:
        raise StanzaError("bad-request", "no such affiliation")
    jid = _target_jid(channel, item)
    channel.check_affiliation_change(sender.userhost(), jid, affiliation)
    return lambda: set_affiliation(face, channel, jid, affiliation, actor or sender.userhost(), reason)


ROLES_SETTABLE = ("moderator", "participant", "visitor", "none")


def _target_jid(channel, item):
    jid = item.getAttribute("jid")
    if jid is None:
        target = channel.occupant_by_nick(item.getAttribute("nick") or "")
        if target is None:
            raise ChannelError("item-not-found", "name a JID or the nick of an occupant")
        return target.bare
    try:
        return parse_jid(jid).userhost()
    except InvalidJID:
        raise StanzaError("jid-malformed", "not a JID") from None


def _set_role(face, channel, target, role, actor, reason):
    if role == "none":
        face.remove(channel, target, (307,), actor, reason)
        return
    target.role = role
    face._tell_presence(channel, target, actor=actor, reason=reason)


def set_affiliation(face, channel, jid, affiliation, actor=None, reason=None):
    """Change a JID's affiliation through the directory (every face hears of it); a ban also
    ends MIX participation and frees the nick."""
    member = channel.member(jid)
    if affiliation == "outcast":
        changed = Member(jid, "outcast")
    else:
        changed = Member(jid, affiliation, member.nick, member.participant)
    face.directory.set_member(channel, changed, actor, reason)


def affiliation_changed(face, channel, occupant, before, after, actor, reason):
    """§9: what an occupant sees when its JID's affiliation changed."""
    if before.affiliation == after.affiliation:
        return
    if after.affiliation == "outcast":
        face.remove(channel, occupant, (301,), actor, reason, affiliation="outcast")
    elif channel.config.members_only and RANK[after.affiliation] < RANK["member"] and not after.participant:
        face.remove(channel, occupant, (321,), actor, reason, affiliation=after.affiliation)
    else:
        occupant.role = channel.default_role(occupant.bare)
        face._tell_presence(channel, occupant, actor=actor, reason=reason)


# -- muc#owner (§10) ---------------------------------------------------------------------------

def owner(face, channel, iq, sender, query):
    bare = sender.userhost()
    if channel.affiliation(bare) != "owner" and not face.directory.is_admin(bare):
        raise ChannelError("forbidden", "only owners configure or destroy the room")
    if iq["type"] == "get":
        result = domish.Element((NS_OWNER, "query"))
        result.addChild(muc_config_form(channel))
        return result
    destroy = child(query, NS_OWNER, "destroy")
    if destroy is not None:
        face.directory.destroy(channel, text_of(destroy, NS_OWNER, "reason"), destroy.getAttribute("jid"))
        return None
    x = child(query, "jabber:x:data", "x")
    if x is None:
        raise StanzaError("bad-request", "submit a form or a destroy request")
    if x.getAttribute("type") == "cancel":
        if channel.locked:
            face.directory.destroy(channel)     # §10.1.2: the creator gave up
        return None
    config, affiliations = parse_muc_config(x, channel)
    for jid, affiliation in affiliations.items():
        if jid != bare:
            channel.check_affiliation_change(bare, jid, affiliation)
    channel.locked = False
    for jid, affiliation in affiliations.items():
        set_affiliation(face, channel, jid, affiliation, _actor(channel, sender) or bare)
    face.directory.configure(channel, config.changed(last_change_by=bare))
    face.drop_if_empty(channel)
    return None


def config_changed(face, channel, before):
    """§10.2.1: status 104 (and 170-173 for logging and anonymity) to the occupants; a room
    that became members-only loses its non-members (322)."""
    after = channel.config
    codes = [104]
    if before.whois != after.whois:
        codes.append(172 if after.whois == "anyone" else 173)
    if before.archive != after.archive:
        codes.append(170 if after.archive else 171)
    message = render.status_message(face.view(channel), codes)
    for occupant in list(channel.occupants.values()):
        for full in occupant.sessions:
            face.send(message, full)
    if after.members_only and not before.members_only:
        for occupant in list(channel.occupants.values()):
            if channel.rank(occupant.bare) < RANK["member"] and not channel.is_participant(occupant.bare):
                face.remove(channel, occupant, (322,))


def destroyed(face, channel, reason, alternate):
    """§10.9: every occupant leaves with the <destroy/> that says why."""
    for occupant in list(channel.occupants.values()):
        presence = stanza("presence", face.view(channel).occupant(occupant.nick), type="unavailable")
        x = render.user_x("none", "none")
        element = x.addElement("destroy")
        if alternate:
            element["jid"] = alternate
        if reason:
            element.addElement("reason", content=reason)
        presence.addChild(x)
        for full in occupant.sessions:
            face.send(presence, full)
            channel.by_full.pop(full, None)
            face.directory.hub.emit("occupant_presence", channel, occupant, full, face._unavailable(full))
    channel.occupants.clear()


# -- registration (§7.10) -----------------------------------------------------------------------

def register(face, channel, iq, sender, query):
    bare = sender.userhost()
    if channel.rank(bare) < 0:
        raise ChannelError("forbidden", "you are banned from this room")
    member = channel.member(bare)
    if iq["type"] == "get":
        result = domish.Element((NS_REGISTER, "query"))
        if member.nick is not None:
            result.addElement("registered")
            result.addElement("username", content=member.nick)
            return result
        result.addElement("instructions", content="Choose the nickname to reserve in this room.")
        result.addChild(form("form", NS_REGISTER_FORM, [
            ("muc#register_roomnick", "text-single", "Desired nickname", [])]))
        return result
    if child(query, NS_REGISTER, "remove") is not None:
        if member.nick is None:
            raise ChannelError("item-not-found", "you have no registration here")
        affiliation = "none" if member.affiliation == "member" else member.affiliation
        face.directory.set_member(channel, Member(bare, affiliation, None, member.participant))
        return None
    x = child(query, "jabber:x:data", "x")
    if x is None:
        raise StanzaError("bad-request", "submit the registration form")
    nick = (form_values(x, NS_REGISTER_FORM).get("muc#register_roomnick") or [""])[0]
    if not nick:
        raise StanzaError("not-acceptable", "a nickname is required")
    nick = clean_nick(nick)
    if channel.config.members_only and channel.rank(bare) < RANK["member"]:
        raise ChannelError("not-allowed", "only members register in a members-only room")
    channel.check_nick(bare, nick)
    affiliation = member.affiliation if channel.rank(bare) >= RANK["member"] else "member"
    face.directory.set_member(channel, Member(bare, affiliation, nick, member.participant))
    return None


# -- retraction (XEP-0424, XEP-0425) ---------------------------------------------------------------

def find_message(face, channel, archive_id):
    """Deferred Posted of the channel's message ``archive_id`` (item-not-found if none)."""
    d = face.directory.archive.find(channel, ArchiveFilter(ids=(archive_id,)), PageRequest(max=1))

    def found(page):
        if not page.items:
            raise ChannelError("item-not-found", "no such message")
        return page.items[0]

    def unknown(failure):
        failure.trap(UnknownArchiveId)
        raise ChannelError("item-not-found", "no such message")
    return d.addCallbacks(found, unknown)


def moderate(face, channel, iq, sender, query):
    """XEP-0425: a moderator retracts a message; the room announces it and keeps a tombstone."""
    occupant = _occupant_of(channel, sender)
    if occupant is None or occupant.role != "moderator":
        raise ChannelError("forbidden", "only moderators moderate messages")
    archive_id = query.getAttribute("id")
    if not archive_id or child(query, NS_RETRACT, "retract") is None:
        raise StanzaError("bad-request", "name the message and say <retract/>")
    reason = text_of(query, NS_MODERATE, "reason") or ""
    view = face.view(channel)
    d = find_message(face, channel, archive_id)

    def retract(posted):
        now = int(face.context.clock.seconds() * 1_000_000)
        retraction = Retraction(archive_id, view.occupant(occupant.nick), occupant.bare, reason, now, True)
        element = domish.Element((NS_RETRACT, "retract"))
        element["id"] = archive_id
        moderated = element.addElement((NS_MODERATE, "moderated"))
        moderated["by"] = view.occupant(occupant.nick)
        moderated.addChild(occupant_id(view.ids(occupant.bare)))
        if reason:
            element.addElement("reason", content=reason)
        face.directory.retract(channel, retraction, Posted(occupant.bare, "", [element]))
        return None
    return d.addCallback(retract)


def retract_own(face, channel, occupant, message, retract):
    """XEP-0424 in a room: an occupant retracts a message it sent (checked by JID)."""
    archive_id = retract["id"]
    d = find_message(face, channel, archive_id)

    def check(posted):
        if posted.bare != occupant.bare:
            raise ChannelError("forbidden", "you may retract only your own messages")
        now = int(face.context.clock.seconds() * 1_000_000)
        retraction = Retraction(archive_id, occupant.nick, occupant.bare, "", now, False)
        face.directory.retract(channel, retraction, Posted(occupant.bare, occupant.nick,
                                                           reflected_payload(message), message.getAttribute("id")))
    d.addCallback(check)
    d.addErrback(bounced, face, message)
    return d


def bounced(failure, face, original):
    """Errback: a StanzaError answers ``original``."""
    failure.trap(StanzaError)
    face.bounce(original, failure.value)


# -- invitations (§7.8) -----------------------------------------------------------------------------

def invitations(face, channel, occupant, user_x, sender):
    bare = sender.userhost()
    room = face.address(channel)
    for invite in user_x.elements(NS_USER, "invite"):
        if occupant is None and channel.rank(bare) < RANK["member"]:
            raise ChannelError("not-acceptable", "only occupants invite")
        may_add = channel.rank(bare) >= RANK["admin"] or channel.config.allow_invites
        if channel.config.members_only and not may_add:
            raise ChannelError("forbidden", "only admins invite to this members-only room")
        invitee = _jid(invite.getAttribute("to"))
        if channel.config.members_only and channel.rank(invitee.userhost()) < RANK["member"]:
            set_affiliation(face, channel, invitee.userhost(), "member", occupant.nick if occupant else bare)
        message = stanza("message", room, invitee.full())
        x = message.addElement((NS_USER, "x"))
        element = x.addElement("invite")
        element["from"] = sender.full()
        reason = text_of(invite, NS_USER, "reason")
        if reason:
            element.addElement("reason", content=reason)
        if channel.config.password:
            x.addElement("password", content=channel.config.password)
        direct = message.addElement(("jabber:x:conference", "x"))
        direct["jid"] = room
        face.context.route(message)
    for decline in user_x.elements(NS_USER, "decline"):
        inviter = _jid(decline.getAttribute("to"))
        message = stanza("message", room, inviter.full())
        element = message.addElement((NS_USER, "x")).addElement("decline")
        element["from"] = bare
        reason = text_of(decline, NS_USER, "reason")
        if reason:
            element.addElement("reason", content=reason)
        face.context.route(message)


def _jid(text):
    try:
        return parse_jid(text or "")
    except InvalidJID:
        raise StanzaError("jid-malformed", "not a JID") from None


__all__ = ["admin", "owner", "register", "moderate", "retract_own", "invitations", "set_affiliation",
           "affiliation_changed", "config_changed", "destroyed", "NS_ADMIN", "NS_OWNER", "NS_REGISTER",
           "NS_MODERATE"]
