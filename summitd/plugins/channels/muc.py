"""Multi-User Chat (XEP-0045) over the shared channels: the "muc" extension, at
``conference.DOMAIN``.

Occupancy (§7): entering with history (§7.2.15, from the channel's archive) and the
subject last, the errors of §7.2 in their order (banned ``forbidden``, members-only
``registration-required``, wrong or missing password ``not-authorized``, nick taken
``conflict``, room full ``service-unavailable``, locked room ``item-not-found``), nick
changes (303), status changes, leaving, several sessions of one JID under one nick, and
leaving when a session ends. Messages (§7.4-§7.5, §7.8): groupchat reflected to every
occupant with the room's stanza-id (XEP-0359) and occupant id (XEP-0421), private messages,
mediated invitations and declines, subject changes (§8.1). Self-ping (XEP-0410) is
answered by the room; other IQs to an occupant are relayed to one of its sessions.

Administration (``muc_admin``): roles and affiliations (kick, ban, voice, membership,
admins, owners, with reasons), the room configuration form and instant rooms (§10),
destruction, registration (§7.10), moderation (XEP-0425). MAM on the room (``channel_mam``).
Service discovery of the service, its public rooms, each room and its occupants (§6).

Coexistence (XEP-0408): MIX participants of the channel are shown as occupants under their
nick; their messages, presence, nick changes and departures reach MUC occupants, and the
MUC side's reach them (see ``coexistence``).

Options, under ``[extensions.muc]``::

    host = "conference.{domain}"   # the service's address per hosted domain
    name = "Chatrooms"             # its disco identity name
    occupant_id = true             # XEP-0421 occupant ids on presence and messages
    lock_new_rooms = true          # a new room is locked until its owner configures it (§10.1)
    persistent = false             # defaults of a room created by entering it
    public = true
    whois = "moderators"
"""

import functools
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.plugins.channels import channel_mam, muc_admin
from summitd.plugins.channels import muc_render as render
from summitd.plugins.channels.archive import Posted, reflected_payload
from summitd.plugins.channels.coexistence import mirror_form
from summitd.plugins.channels.directory import check_name
from summitd.plugins.channels.face_base import ServiceFace, parse_options
from summitd.plugins.channels.forms import muc_info_form
from summitd.plugins.channels.model import RANK, ChannelConfig, ChannelError, Occupant, Subject, nick_key
from summitd.plugins.channels.stanzas import addressed, child, iq_result, stanza, text_of
from summitd.plugins.disco import NS_DISCO_INFO, NS_DISCO_ITEMS, Info, info_element, items_element
from summitd.plugins.mam.query import NS_MAM, parse_datetime

NS_MUC, NS_USER = render.NS_MUC, render.NS_USER
NS_PING = "urn:xmpp:ping"
NS_CONFERENCE = "jabber:x:conference"
RELAYED_IQS = 1000          # IQs relayed to occupants awaiting their answer


@dataclass(frozen=True)
class MucConfig:
    host: str = "conference.{domain}"
    name: str = "Chatrooms"
    occupant_id: bool = True
    lock_new_rooms: bool = True
    persistent: bool = False
    public: bool = True
    whois: str = "moderators"


def parse_config(raw, path):
    return parse_options(raw, path, MucConfig, {"whois": ("moderators", "anyone")})


class MucService(ServiceFace):
    kind = "muc"

    def __init__(self, context, config):
        super().__init__(context, config)
        self._joined = {}                   # full JID -> {channel key}
        self._relayed = OrderedDict()       # relayed IQ id -> (requester, original id, target, channel)
        self._relay_count = 0
        context.hook(events.SESSION_CLOSED, self._session_closed)
        self._room_iqs = {
            (NS_DISCO_INFO, "query"): self._room_info,
            (NS_DISCO_ITEMS, "query"): self._room_items,
            (muc_admin.NS_ADMIN, "query"): functools.partial(muc_admin.admin, self),
            (muc_admin.NS_OWNER, "query"): functools.partial(muc_admin.owner, self),
            (muc_admin.NS_REGISTER, "query"): functools.partial(muc_admin.register, self),
            (muc_admin.NS_MODERATE, "moderate"): functools.partial(muc_admin.moderate, self),
            (NS_MAM, "query"): self._mam,
            (NS_MAM, "metadata"): self._mam,
            (NS_PING, "ping"): lambda channel, iq, sender, payload: None,
        }

    # -- Face ------------------------------------------------------------------------------

    def view(self, channel):
        return render.RoomView(self.address(channel), lambda bare: self.directory.stable_id(channel, bare),
                               self.config.occupant_id)

    def may_read(self, channel, bare):
        """MAM on the room: members-only rooms to members (and occupants), others to all but
        the banned."""
        if channel.locked:
            return False
        if channel.config.members_only:
            return channel.rank(bare) >= RANK["member"] or channel.is_participant(bare) or any(
                o.bare == bare for o in channel.occupants.values())
        return channel.rank(bare) >= 0

    def render_archived(self, channel, posted, viewer):
        return render.message(self.view(channel), posted,
                              posted.bare if posted.bare and channel.may_see_jids(viewer) else None)

    # -- routing -------------------------------------------------------------------------------

    def dispatch(self, stanza, to_jid, sender):
        if to_jid.user is None:
            self._to_service(stanza, to_jid, sender)
        elif stanza.name == "presence":
            self._presence(stanza, to_jid, sender)
        elif stanza.name == "message":
            self._message(stanza, to_jid, sender)
        elif stanza.name == "iq":
            self._iq(stanza, to_jid, sender)

    def error_payload(self, original):
        return domish.Element((NS_MUC, "x")) if original.name == "presence" else None

    def channel_for(self, to_jid):
        return self.directory.get(self.services[to_jid.host], to_jid.user)

    def send(self, element, to):
        self.context.route(addressed(element, to))

    # -- the service itself ------------------------------------------------------------------------

    def _to_service(self, stanza, to_jid, sender):
        if stanza.name != "iq" or stanza.getAttribute("type") not in ("get", "set"):
            if stanza.name == "message":
                self.bounce(stanza, StanzaError("service-unavailable"))
            return
        payload = next(stanza.elements(), None)
        key = (payload.uri, payload.name) if payload is not None else None
        domain = self.services[to_jid.host]
        if key == (NS_DISCO_INFO, "query") and not payload.getAttribute("node"):
            self.answer(stanza, self._service_info(domain))
        elif key == (NS_DISCO_ITEMS, "query") and not payload.getAttribute("node"):
            self.answer(stanza, self.public_channels(domain))
        elif key == (NS_PING, "ping"):
            self.answer(stanza, None)
        else:
            raise StanzaError("service-unavailable")

    def _service_info(self, domain):
        features = (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_MUC + "#self-ping-optimization",
                    "urn:xmpp:occupant-id:0", NS_PING)
        forms = ()
        mix = self.directory.hub.face("mix")
        if mix is not None and mix.service_host(domain):
            forms = (mirror_form("mix", mix.service_host(domain)),)
        return info_element(Info((("conference", "text", self.config.name),), features, forms))

    # -- presence (§7.2, §7.6, §7.7, §7.14) ------------------------------------------------------------

    def _presence(self, stanza, to_jid, sender):
        type = stanza.getAttribute("type")
        channel = self.channel_for(to_jid)
        occupant = channel.by_full.get(sender.full()) if channel is not None else None
        if type in ("unavailable", "error"):
            if occupant is not None:
                self.leave(channel, occupant, sender.full(), stanza if type == "unavailable" else None)
            return
        if type is not None:
            return      # subscription requests and probes mean nothing to a room
        if not to_jid.resource:
            raise ChannelError("jid-malformed", "enter a room with a nickname (room@service/nick)")
        if occupant is None:
            self._enter(stanza, to_jid, channel, sender)
        elif nick_key(to_jid.resource) != occupant.key:
            self._change_nick(channel, occupant, to_jid.resource, sender, stanza)
        else:
            occupant.sessions[sender.full()] = stanza
            self._tell_presence(channel, occupant)
            self.directory.hub.emit("occupant_presence", channel, occupant, sender.full(), stanza)

    def _enter(self, stanza, to_jid, channel, sender):
        bare, full, nick = sender.userhost(), sender.full(), to_jid.resource
        nick_key(nick)
        x = child(stanza, NS_MUC, "x")
        created = False
        if channel is None:
            if not self.directory.may_create(sender):
                raise ChannelError("not-allowed", "you may not create rooms on this service")
            config = ChannelConfig(persistent=self.config.persistent, public=self.config.public,
                                   whois=self.config.whois)
            channel = self.directory.create(self.services[to_jid.host], check_name(to_jid.user), bare, config)
            channel.locked = self.config.lock_new_rooms
            created = True
        elif channel.locked and channel.affiliation(bare) != "owner":
            raise ChannelError("item-not-found", "the room is locked until its owner configures it")
        else:
            channel.check_entry(bare, nick, text_of(x, NS_MUC, "password") if x is not None else None)
            self._check_room_limit(channel, bare, nick)
        occupant = channel.occupants.get(nick_key(nick))
        if occupant is None:
            occupant = channel.occupants[nick_key(nick)] = Occupant(nick, bare, channel.default_role(bare))
        occupant.sessions[full] = stanza
        channel.by_full[full] = occupant
        self._joined.setdefault(full, set()).add(channel.key)
        self._send_occupants(channel, occupant, full)
        codes = [code for code, on in ((100, channel.config.whois == "anyone"), (170, channel.config.archive),
                                       (201, created)) if on]
        self._tell_presence(channel, occupant, codes)
        self.directory.hub.emit("occupant_presence", channel, occupant, full, stanza)
        wanted = _history_request(x, self.context.clock.seconds())
        d = self.directory.archive.recent(channel)
        d.addCallback(self._send_history, channel, full, wanted)
        d.addErrback(lambda f: self.context.log.failure("muc: history for {room}", f, room=channel.name))

    def _check_room_limit(self, channel, bare, nick):
        if channel.occupant_by_nick(nick) is not None:
            return          # another session of the same occupant
        limit = channel.config.max_users or self.directory.config.max_users
        if limit and len(channel.occupants) >= limit and channel.rank(bare) < RANK["admin"]:
            raise ChannelError("service-unavailable", "the room is full", type="wait")

    def _send_occupants(self, channel, newcomer, full):
        """§7.2.3: the presence of everyone already there, to the entering session."""
        view = self.view(channel)
        sees = channel.may_see_jids(newcomer.bare, newcomer.role)
        for other in list(channel.occupants.values()):
            if other is newcomer:
                continue
            latest = next(reversed(other.sessions))
            self.send(render.occupant_presence(view, channel, other.nick, other.bare, other.role,
                                               render.presence_payload(other.sessions[latest]),
                                               latest if sees else None), full)
        for member in self.mix_occupants(channel):
            self.send(self._mix_presence(view, channel, member, sees), full)

    def _send_history(self, history, channel, full, wanted):
        if channel.by_full.get(full) is None:
            return      # left before the history was ready
        view = self.view(channel)
        for posted in _select_history(list(history.messages), wanted):
            self.send(render.history_message(view, posted), full)
        self.send(render.subject_message(view, channel), full)

    def _tell_presence(self, channel, occupant, codes=(), type=None, payload=None, new_nick=None,
                       actor=None, reason=None, affiliation=None, role=None, own=None, others=True,
                       real=None):
        """The occupant's presence to the room: its own sessions (all, or those in ``own``)
        get 110 and ``codes``; the others (unless ``others`` is false) the codes meant for
        everyone; the real JID goes to those who may see it."""
        view = self.view(channel)
        if payload is None:
            latest = occupant.sessions[next(reversed(occupant.sessions))] if occupant.sessions else None
            payload = render.presence_payload(latest)
        real = real or next(iter(occupant.sessions), None) or occupant.bare
        role = role or (occupant.role if type is None else "none")
        shared_codes = tuple(c for c in codes if c in (301, 303, 307, 321, 322))
        variants = {}

        def variant(is_self, sees):
            element = variants.get((is_self, sees))
            if element is None:
                element = variants[is_self, sees] = render.occupant_presence(
                    view, channel, occupant.nick, occupant.bare, role, payload, real if sees else None,
                    ((110,) + tuple(codes)) if is_self else shared_codes, type, new_nick, actor, reason,
                    affiliation)
            return element
        for full in (occupant.sessions if own is None else own):
            self.send(variant(True, True), full)
        if not others:
            return
        for viewer in list(channel.occupants.values()):
            if viewer is not occupant:
                element = variant(False, channel.may_see_jids(viewer.bare, viewer.role))
                for full in viewer.sessions:
                    self.send(element, full)

    def _change_nick(self, channel, occupant, nick, sender, stanza):
        """§7.6: unavailable with 303 from the old nick, then the new nick's presence."""
        bare = sender.userhost()
        channel.check_nick(bare, nick)
        if channel.occupant_by_nick(nick) is not None:
            raise ChannelError("conflict", "that nickname is in use")
        self._tell_presence(channel, occupant, (303,), type="unavailable", payload=[], new_nick=nick,
                            role=occupant.role)
        del channel.occupants[occupant.key]
        occupant.nick = nick
        channel.occupants[occupant.key] = occupant
        occupant.sessions[sender.full()] = stanza
        self._tell_presence(channel, occupant)
        self.directory.hub.emit("occupant_presence", channel, occupant, sender.full(), stanza)

    def leave(self, channel, occupant, full, stanza=None):
        """A session leaves (§7.14); the occupant goes with its last session."""
        occupant.sessions.pop(full, None)
        channel.by_full.pop(full, None)
        joined = self._joined.get(full)
        if joined is not None:
            joined.discard(channel.key)
            if not joined:
                del self._joined[full]
        payload = [c for c in stanza.elements() if c.name == "status"] if stanza is not None else []
        last = not occupant.sessions
        if last:
            channel.occupants.pop(occupant.key, None)
        self._tell_presence(channel, occupant, type="unavailable", payload=payload, own=[full],
                            others=last, real=full)
        self.directory.hub.emit("occupant_presence", channel, occupant, full,
                                stanza if stanza is not None else self._unavailable(full))
        self.drop_if_empty(channel)

    def remove(self, channel, occupant, codes, actor=None, reason=None, affiliation=None):
        """Take an occupant out of the room with all its sessions (kick 307, ban 301,
        membership lost 321/322)."""
        sessions = list(occupant.sessions)
        channel.occupants.pop(occupant.key, None)
        self._tell_presence(channel, occupant, codes, type="unavailable", payload=[], actor=actor,
                            reason=reason, affiliation=affiliation, own=sessions)
        for full in sessions:
            channel.by_full.pop(full, None)
            joined = self._joined.get(full)
            if joined is not None:
                joined.discard(channel.key)
            self.directory.hub.emit("occupant_presence", channel, occupant, full, self._unavailable(full))
        occupant.sessions.clear()
        self.drop_if_empty(channel)

    def _unavailable(self, full):
        return stanza("presence", full, type="unavailable")

    def drop_if_empty(self, channel):
        """A temporary room goes with its last occupant (§10.1: unless MIX participants keep it)."""
        if not channel.occupants and not channel.config.persistent and not channel.participants():
            self.directory.destroy(channel)

    def _session_closed(self, session):
        full = session.jid.full()
        for key in list(self._joined.get(full, ())):
            channel = self.directory.get(*key)
            occupant = channel.by_full.get(full) if channel is not None else None
            if occupant is not None:
                self.leave(channel, occupant, full)

    # -- MIX participants as occupants (XEP-0408) ------------------------------------------------------

    def mix_occupants(self, channel):
        """The MIX participants shown as occupants: those with a nick no MUC occupant holds."""
        return [m for m in channel.participants() if m.nick and nick_key(m.nick) not in channel.occupants]

    def _mix_presence(self, view, channel, member, sees, type=None, codes=(), new_nick=None, actor=None,
                      reason=None):
        presences = channel.presences.get(member.jid)
        latest = next(reversed(presences.values())) if presences else None
        role = channel.default_role(member.jid) if type is None else "none"
        return render.occupant_presence(view, channel, member.nick, member.jid, role,
                                        render.presence_payload(latest) if type is None else [],
                                        member.jid if sees else None, codes, type, new_nick, actor, reason)

    def _tell_mix_presence(self, channel, member, **kwargs):
        view = self.view(channel)
        variants = {}
        for viewer in list(channel.occupants.values()):
            sees = channel.may_see_jids(viewer.bare, viewer.role)
            element = variants.get(sees)
            if element is None:
                element = variants[sees] = self._mix_presence(view, channel, member, sees, **kwargs)
            for full in viewer.sessions:
                self.send(element, full)

    def member_changed(self, channel, before, after, actor, reason):
        """Affiliation changes act on occupants (§9); MIX participation shows as occupancy."""
        for occupant in [o for o in channel.occupants.values() if o.bare == after.jid]:
            muc_admin.affiliation_changed(self, channel, occupant, before, after, actor, reason)
        if before.participant and before.nick and channel.occupant_by_nick(before.nick) is None:
            gone = not after.participant or after.affiliation == "outcast"
            if gone:
                codes = (301,) if after.affiliation == "outcast" else ()
                self._tell_mix_presence(channel, before, type="unavailable", codes=codes, actor=actor,
                                        reason=reason)
                return
            if after.nick != before.nick:
                self._tell_mix_presence(channel, before, type="unavailable", codes=(303,), new_nick=after.nick)
        if after.participant and after.nick and channel.occupant_by_nick(after.nick) is None and (
                not before.participant or before.nick != after.nick or before.affiliation != after.affiliation):
            self._tell_mix_presence(channel, after)

    def participant_presence(self, channel, bare, full, presence):
        member = channel.members.get(bare)
        if member is not None and member.participant and member.nick and channel.occupant_by_nick(member.nick) is None:
            self._tell_mix_presence(channel, member)

    # -- messages (§7.4, §7.5, §7.8, §8.1) ----------------------------------------------------------------

    def _message(self, stanza, to_jid, sender):
        type = stanza.getAttribute("type", "normal")
        if type == "error":
            return
        channel = self.channel_for(to_jid)
        if channel is None or (channel.locked and channel.affiliation(sender.userhost()) != "owner"):
            raise ChannelError("item-not-found", "no such room")
        occupant = channel.by_full.get(sender.full())
        if to_jid.resource:
            self._private(channel, occupant, stanza, to_jid.resource, sender)
            return
        user_x = child(stanza, NS_USER, "x")
        if user_x is not None and (child(user_x, NS_USER, "invite") or child(user_x, NS_USER, "decline")):
            muc_admin.invitations(self, channel, occupant, user_x, sender)
            return
        if type != "groupchat":
            raise ChannelError("bad-request", "messages to the room are of type groupchat")
        if occupant is None:
            raise ChannelError("not-acceptable", "only occupants may send messages to the room")
        subject = child(stanza, stanza.uri, "subject")
        if subject is not None and child(stanza, stanza.uri, "body") is None:
            self._set_subject(channel, occupant, str(subject))
            return
        if not channel.may_write(occupant.bare, occupant.role):
            raise ChannelError("forbidden", "you have no voice in this room")
        retract = child(stanza, render.NS_RETRACT, "retract")
        if retract is not None and retract.getAttribute("id"):
            muc_admin.retract_own(self, channel, occupant, stanza, retract)
            return
        self.directory.post(channel, Posted(occupant.bare, occupant.nick, reflected_payload(stanza),
                                            stanza.getAttribute("id")))

    def _set_subject(self, channel, occupant, text):
        if not channel.may_set_subject(occupant.bare, occupant.role):
            raise ChannelError("forbidden", "you may not change the subject")
        self.directory.set_subject(channel, Subject(text, occupant.nick, occupant.bare,
                                                    int(self.context.clock.seconds() * 1_000_000)))

    def message_posted(self, channel, posted):
        if not channel.occupants:
            return
        element = render.message(self.view(channel), posted)
        for occupant in list(channel.occupants.values()):
            for full in occupant.sessions:
                self.send(element, full)

    def retracted(self, channel, retraction, announcement):
        self.message_posted(channel, announcement)

    def subject_changed(self, channel):
        element = render.subject_message(self.view(channel), channel)
        for occupant in list(channel.occupants.values()):
            for full in occupant.sessions:
                self.send(element, full)

    def config_changed(self, channel, before):
        muc_admin.config_changed(self, channel, before)

    def destroyed(self, channel, reason, alternate):
        muc_admin.destroyed(self, channel, reason, alternate)

    def _private(self, channel, occupant, stanza, nick, sender):
        """§7.5: a private message to ``room/nick``, from ``room/sendernick``."""
        if occupant is None:
            raise ChannelError("not-acceptable", "only occupants may send private messages")
        if stanza.getAttribute("type") == "groupchat":
            raise ChannelError("bad-request", "private messages are not of type groupchat")
        allowed = channel.config.allow_pm
        if allowed == "none" or (allowed == "moderators" and occupant.role != "moderator") or (
                allowed == "participants" and occupant.role == "visitor"):
            raise ChannelError("forbidden", "private messages are not allowed here")
        target = channel.occupant_by_nick(nick)
        message = domish.Element((stanza.uri, "message"))
        message.attributes = {k: v for k, v in stanza.attributes.items() if k not in ("to", "from")}
        message["from"] = self.view(channel).occupant(occupant.nick)
        message.children = reflected_payload(stanza)
        message.addElement((NS_USER, "x"))
        if target is not None:
            for full in target.sessions:
                self.send(message, full)
            return
        member = next((m for m in self.mix_occupants(channel) if nick_key(m.nick) == nick_key(nick)), None)
        mix = self.directory.hub.face("mix")
        if member is None or mix is None:
            raise ChannelError("item-not-found", "no occupant of that nickname")
        mix.private_from_muc(channel, occupant, member, stanza)

    def private_from_mix(self, channel, sender_member, target, stanza):
        """A MIX participant's private message to a MUC occupant (XEP-0408)."""
        message = domish.Element((stanza.uri, "message"))
        message["type"] = stanza.getAttribute("type", "chat")
        if stanza.getAttribute("id"):
            message["id"] = stanza["id"]
        message["from"] = self.view(channel).occupant(sender_member.nick)
        message.children = reflected_payload(stanza)
        message.addElement((NS_USER, "x"))
        for full in target.sessions:
            self.send(message, full)

    # -- IQs ---------------------------------------------------------------------------------------------

    def _iq(self, iq, to_jid, sender):
        type = iq.getAttribute("type")
        channel = self.channel_for(to_jid)
        if to_jid.resource:
            self._occupant_iq(channel, iq, to_jid.resource, sender, type)
            return
        if type not in ("get", "set"):
            return
        payload = next(iq.elements(), None)
        handler = self._room_iqs.get((payload.uri, payload.name)) if payload is not None else None
        if handler is None:
            raise StanzaError("service-unavailable")
        if channel is None or (channel.locked and channel.affiliation(sender.userhost()) != "owner"):
            raise ChannelError("item-not-found", "no such room")
        self.answer(iq, defer.maybeDeferred(handler, channel, iq, sender, payload))

    def _mam(self, channel, iq, sender, payload):
        return channel_mam.handle(self, channel, iq, payload, sender)

    def _room_info(self, channel, iq, sender, payload):
        node = payload.getAttribute("node")
        if node == "x-roomuser-item":       # §7.12: the requester's registered nick
            member = channel.members.get(sender.userhost())
            identities = (("conference", "text", member.nick),) if member and member.nick else ()
            return info_element(Info(identities, (), ()), node)
        if node:
            raise ChannelError("item-not-found", "no such node")
        config = channel.config
        features = [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_MUC + "#stable_id", muc_admin.NS_REGISTER,
                    muc_admin.NS_MODERATE, "urn:xmpp:occupant-id:0", NS_PING,
                    "muc_public" if config.public else "muc_hidden",
                    "muc_persistent" if config.persistent else "muc_temporary",
                    "muc_membersonly" if config.members_only else "muc_open",
                    "muc_moderated" if config.moderated else "muc_unmoderated",
                    "muc_nonanonymous" if config.whois == "anyone" else "muc_semianonymous",
                    "muc_passwordprotected" if config.password else "muc_unsecured"]
        if config.archive:
            features.extend(channel_mam.FEATURES)
        return info_element(Info((("conference", "text", config.name or channel.name),), tuple(features),
                                 (muc_info_form(channel, len(channel.occupants) + len(self.mix_occupants(channel))),)))

    def _room_items(self, channel, iq, sender, payload):
        """§6.5: the occupants, to occupants only (an empty list to others)."""
        if payload.getAttribute("node"):
            raise ChannelError("item-not-found", "no such node")
        if not any(o.bare == sender.userhost() for o in channel.occupants.values()):
            return items_element([])
        view = self.view(channel)
        nicks = [o.nick for o in channel.occupants.values()] + [m.nick for m in self.mix_occupants(channel)]
        return items_element([(view.occupant(nick), None, None) for nick in sorted(nicks)])

    def _occupant_iq(self, channel, iq, nick, sender, type):
        """IQs to ``room/nick``: self-ping (XEP-0410) answered here, others relayed (§6.7)."""
        if type in ("result", "error"):
            self._relay_answer(channel, iq, nick, sender)
            return
        occupant = channel.by_full.get(sender.full()) if channel is not None else None
        if occupant is None:
            raise ChannelError("not-acceptable", "you are not in this room")
        payload = next(iq.elements(), None)
        if payload is not None and (payload.uri, payload.name) == (NS_PING, "ping") and \
                nick_key(nick) == occupant.key:
            self.context.route(iq_result(iq))
            return
        target = channel.occupant_by_nick(nick)
        if target is None or not target.sessions:
            raise ChannelError("item-not-found", "no occupant of that nickname")
        self._relay_count += 1
        relay_id = f"muc-relay-{self._relay_count}"
        self._relayed[relay_id] = (iq["from"], iq.getAttribute("id", ""), target.bare, channel.key)
        while len(self._relayed) > RELAYED_IQS:
            self._relayed.popitem(last=False)
        relayed = addressed(iq, next(iter(target.sessions)))
        relayed["from"] = self.view(channel).occupant(occupant.nick)
        relayed["id"] = relay_id
        self.context.route(relayed)

    def _relay_answer(self, channel, iq, nick, sender):
        found = self._relayed.get(iq.getAttribute("id", ""))
        if found is None or channel is None or found[3] != channel.key or found[2] != sender.userhost():
            return
        del self._relayed[iq["id"]]
        requester, original_id, _, _ = found
        target = channel.by_full.get(sender.full())
        answer = addressed(iq, requester)
        answer["from"] = self.view(channel).occupant(target.nick if target else nick)
        answer["id"] = original_id
        self.context.route(answer)


def _history_request(x, now):
    """What §7.2.15 history the entering client asked for: (maxstanzas, maxchars, since)."""
    history = child(x, NS_MUC, "history") if x is not None else None
    if history is None:
        return (None, None, None)

    def number(name):
        value = history.getAttribute(name)
        return int(value) if value is not None and value.isdigit() and len(value) < 10 else None
    since = None
    seconds = number("seconds")
    if seconds is not None:
        since = int((now - seconds) * 1_000_000)
    if history.getAttribute("since"):
        try:
            since = max(since or 0, parse_datetime(history["since"]))
        except ValueError:
            pass
    return (number("maxstanzas"), number("maxchars"), since)


def _select_history(messages, wanted):
    maxstanzas, maxchars, since = wanted
    if since is not None:
        messages = [p for p in messages if p.ts >= since]
    if maxstanzas is not None:
        messages = messages[len(messages) - maxstanzas:] if maxstanzas else []
    if maxchars is not None:
        chosen, total = [], 0
        for posted in reversed(messages):
            total += posted.size()
            if total > maxchars:
                break
            chosen.append(posted)
        messages = chosen[::-1]
    return messages


def build(context, config):
    return MucService(context, config or MucConfig())
