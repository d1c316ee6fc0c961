"""Mediated Information eXchange (XEP-0369 MIX-CORE, urn:xmpp:mix:core:1) over the shared
channels: the "mix" extension, at ``mix.DOMAIN``, with MIX-PRESENCE (XEP-0403), MIX-ANON's
private messages and JID hiding (XEP-0404), MIX-ADMIN (XEP-0406) and from MIX-MISC
(XEP-0407) invitations and retraction.

Service: channels are created (named or ad hoc) and destroyed (XEP-0369 §7.3); disco lists
the public channels and says whether the requester may create. Channel: join (with the
nodes to subscribe to, a nick, an optional invitation or password) and leave, normally
through the participant's server (XEP-0405); ``update-subscription``; ``setnick``;
groupchat messages, reflected to the messages node's subscribers from
``channel/participant-id`` with ``<mix><nick/><jid/></mix>`` and the archive id (also the
XEP-0359 stanza-id), archived once in the channel's archive (MAM on the channel JID);
presence from participants' clients, shared with the presence node's subscribers from
``participant-id#channel@mix.DOMAIN/resource``; private messages through those proxy JIDs;
the nodes on the PubSub engine (``mix_nodes``) for participants, information and
configuration, read and subscribed to with plain pubsub.

Design choices the community asked for (see also docs/groupchat.md):

* A slim core usable on its own: join/leave, nick, messages, participants, information.
  The subject (the current discussion topic) is not MIX core: it is the ``topic`` node
  (``urn:summitd:mix:nodes:topic``, one ``<topic xmlns='urn:summitd:mix:topic:0'/>`` item);
  a groupchat message carrying only ``<subject/>`` sets it, as in MUC. Sticky notes
  (pinned URLs, images and other media) are the ``pins`` node, published to by
  participants. Both are separate nodes a client may ignore; neither changes the core.
  The short name and the long description are the information node's ``mix#name`` and
  ``mix#description``, distinct from the topic.
* Who may write (voice, ``mix#moderated``), who may join (``mix#members_only`` and the
  allowed and banned nodes), an optional password (``mix#password``, given in the join as
  ``<password xmlns='urn:summitd:mix:password:0'/>``; wrong or missing: not-authorized) and
  JID visibility (XEP-0404 ``mix#jid_visibility``: 'hidden' shows real JIDs to admins and
  owners only, in messages, presence and the participants node).
* Field names are tags (``mix#name``, ``mix#node_subscription`` ...), see ``forms``.
* Channels in the roster and per-client channel sets: the participant's server's side
  (``pam``).

Errors: joining a channel that does not exist ``item-not-found``; banned ``forbidden``;
not allowed in a members-only channel ``not-allowed``; wrong password ``not-authorized``;
nick taken ``conflict``; no nick where one is mandatory ``not-acceptable``; acting as a
participant without being one ``forbidden``; creating an existing channel ``conflict``;
creating without the right, destroying without ownership ``forbidden``.

Options, under ``[extensions.mix]``::

    host = "mix.{domain}"      # the service's address per hosted domain
    name = "Channels"          # its disco identity name
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.jid import JID, InvalidJID, parse_jid
from summitd.plugins.channels import channel_mam
from summitd.plugins.channels import mix_nodes as nodes
from summitd.plugins.channels.archive import NS_MIX, Posted, reflected_payload
from summitd.plugins.channels.coexistence import mirror_form
from summitd.plugins.channels.directory import check_name
from summitd.plugins.channels.face_base import ServiceFace, parse_options
from summitd.plugins.channels.forms import mix_config_form, mix_info_form, parse_mix_config, parse_mix_info
from summitd.plugins.channels.muc_admin import NS_RETRACT, bounced, find_message, set_affiliation
from summitd.plugins.channels.muc_render import presence_payload, tombstone
from summitd.plugins.channels.store import Retraction
from summitd.plugins.channels.model import RANK, ChannelConfig, ChannelError, Member, Subject, clean_nick
from summitd.plugins.channels.stanzas import addressed, child, stanza, stanza_id, text_of
from summitd.plugins.disco import NS_DISCO_INFO, NS_DISCO_ITEMS, Info, info_element, items_element
from summitd.plugins.mam.query import NS_MAM, format_datetime
from summitd.plugins.pubsub.protocol import NS_PUBSUB, parse_request, publish_result, pubsub_element
from summitd.plugins.pubsub.settings import make_store

NS_CORE = NS_MIX
NS_PRESENCE = "urn:xmpp:mix:presence:0"
NS_MISC = "urn:xmpp:mix:misc:0"
NS_PASSWORD = "urn:summitd:mix:password:0"
NS_TOPIC = "urn:summitd:mix:topic:0"
TOKEN_HEX = 24


@dataclass(frozen=True)
class MixConfig:
    host: str = "mix.{domain}"
    name: str = "Channels"


def parse_config(raw, path):
    return parse_options(raw, path, MixConfig)


def _entry_error(failure):
    """MIX says not-allowed where MUC says registration-required (members only)."""
    failure.trap(ChannelError)
    if failure.value.condition == "registration-required":
        raise ChannelError("not-allowed", "this channel admits allowed JIDs only")
    return failure


class MixService(ServiceFace):
    kind = "mix"

    def __init__(self, context, config):
        super().__init__(context, config)
        self.nodes = nodes.ChannelNodes(context, make_store(context, self.directory.config.storage),
                                        self._channel_of_service)
        context.hook(events.ACCOUNT_DELETING, self.nodes.account_deleting)
        self._channel_iqs = {
            (NS_CORE, "join"): self._join,
            (NS_CORE, "leave"): self._leave,
            (NS_CORE, "update-subscription"): self._update_subscription,
            (NS_CORE, "setnick"): self._setnick,
            (NS_MISC, "invite"): self._invite,
            (NS_PUBSUB, "pubsub"): self._pubsub,
            (NS_DISCO_INFO, "query"): self._channel_info,
            (NS_DISCO_ITEMS, "query"): self._channel_items,
            (NS_MAM, "query"): self._mam,
            (NS_MAM, "metadata"): self._mam,
        }

    def start(self):
        super().start()
        return self.nodes.setup()

    # -- Face -------------------------------------------------------------------------------

    def _channel_of_service(self, service):
        name, _, host = service.partition("@")
        domain = self.services.get(host)
        return self.directory.get(domain, name) if domain else None

    def proxy(self, channel, bare, resource=None):
        """A participant's proxy JID (XEP-0403 §2.2): ``id#channel@service[/resource]``."""
        jid = f"{self.directory.stable_id(channel, bare)}#{channel.name}@{self.hosts[channel.host]}"
        return f"{jid}/{resource}" if resource else jid

    def shown_resource(self, channel, full):
        """The resource a proxy JID shows: the client's own where JIDs are visible, an opaque
        one otherwise (XEP-0404 §3.4)."""
        resource = full.partition("/")[2]
        if channel.config.whois == "anyone":
            return resource
        return hashlib.sha256(f"{channel.name}\0{full}".encode()).hexdigest()[:12]

    def may_read(self, channel, bare):
        return channel.has_right(bare, channel.config.messages_subscription)

    def render_archived(self, channel, posted, viewer):
        return self._message(channel, posted, channel.may_see_jids(viewer))

    # -- routing ------------------------------------------------------------------------------------

    def dispatch(self, stanza, to_jid, sender):
        if to_jid.user is None:
            self._to_service(stanza, to_jid, sender)
            return
        if "#" in to_jid.user:
            self._to_proxy(stanza, to_jid, sender)
            return
        channel = self.directory.get(self.services[to_jid.host], to_jid.user)
        if stanza.name == "iq":
            self._iq(channel, stanza, sender)
        elif stanza.name == "message":
            self._message_in(channel, stanza, sender)
        elif stanza.name == "presence":
            self._presence(channel, stanza, sender)

    def _written(self, d, what):
        d.addErrback(lambda f: self.context.log.failure("mix: {what} failed", f, what=what))
        return d

    # -- the service: create, destroy, disco (XEP-0369 §6.1, §7.3) ------------------------------------

    def _to_service(self, iq, to_jid, sender):
        if iq.name != "iq" or iq.getAttribute("type") not in ("get", "set"):
            if iq.name == "message":
                raise StanzaError("service-unavailable")
            return
        payload = next(iq.elements(), None)
        key = (payload.uri, payload.name) if payload is not None else None
        domain = self.services[to_jid.host]
        if key == (NS_DISCO_INFO, "query") and not payload.getAttribute("node"):
            answer = self._service_info(domain, sender)
        elif key == (NS_DISCO_ITEMS, "query") and not payload.getAttribute("node"):
            answer = self.public_channels(domain)
        elif key == (NS_CORE, "create") and iq["type"] == "set":
            answer = self._create(domain, payload, sender)
        elif key == (NS_CORE, "destroy") and iq["type"] == "set":
            answer = self._destroy(domain, payload, sender)
        else:
            raise StanzaError("service-unavailable")
        self.answer(iq, answer)

    def _service_info(self, domain, sender):
        features = [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_CORE, NS_CORE + "#searchable", NS_MISC]
        if self.directory.may_create(sender):
            features.append(NS_CORE + "#create-channel")
        muc = self.directory.hub.face("muc")
        forms = (mirror_form("muc", muc.service_host(domain)),) if muc and muc.service_host(domain) else ()
        return info_element(Info((("conference", "mix", self.config.name),), tuple(features), forms))

    def _create(self, domain, payload, sender):
        if not self.directory.may_create(sender):
            raise ChannelError("forbidden", "you may not create channels here")
        requested = payload.getAttribute("channel")
        name = check_name(requested) if requested else secrets.token_hex(6)
        config = ChannelConfig(persistent=True, public=bool(requested), whois="anyone")
        self.directory.create(domain, name, sender.userhost(), config)
        result = domish.Element((NS_CORE, "create"))
        result["channel"] = name
        return result

    def _destroy(self, domain, payload, sender):
        channel = self.directory.get(domain, check_name(payload.getAttribute("channel") or ""))
        if channel is None:
            raise ChannelError("item-not-found", "no such channel")
        if channel.affiliation(sender.userhost()) != "owner" and not self.directory.is_admin(sender.userhost()):
            raise ChannelError("forbidden", "only owners destroy a channel")
        self.directory.destroy(channel)
        return None

    # -- channel IQs ---------------------------------------------------------------------------------

    def _iq(self, channel, iq, sender):
        if iq.getAttribute("type") not in ("get", "set"):
            return
        payload = next(iq.elements(), None)
        handler = self._channel_iqs.get((payload.uri, payload.name)) if payload is not None else None
        if handler is None:
            raise StanzaError("service-unavailable")
        if channel is None:
            raise ChannelError("item-not-found", "no such channel")
        self.answer(iq, defer.maybeDeferred(handler, channel, iq, sender, payload))

    def _join(self, channel, iq, sender, join):
        """XEP-0369 §7.1.1 (with XEP-0407 invitations, the password extension)."""
        bare = sender.userhost()
        invited = self._invitation_valid(channel, bare, child(join, NS_MISC, "invitation"))
        member = channel.member(bare)
        nick = text_of(join, NS_CORE, "nick")
        nick = clean_nick(nick) if nick else member.nick
        d = defer.maybeDeferred(channel.check_entry, bare, nick, text_of(join, NS_PASSWORD, "password"), invited)
        d.addErrback(_entry_error)
        d.addCallback(lambda _: self._joined(channel, member, nick, invited, join))
        return d

    @defer.inlineCallbacks
    def _joined(self, channel, member, nick, invited, join):
        if nick is None and channel.config.mandatory_nicks:
            raise ChannelError("not-acceptable", "this channel needs a nick: send <nick/> in the join")
        affiliation = member.affiliation
        if invited and channel.rank(member.jid) < RANK["member"]:
            affiliation = "member"
        self.directory.set_member(channel, Member(member.jid, affiliation, nick, True))
        yield self.nodes.ensure(self.address(channel))
        wanted = [s.getAttribute("node") for s in join.elements(NS_CORE, "subscribe")]
        done = yield self._subscribe_all(channel, member.jid, wanted)
        result = domish.Element((NS_CORE, "join"))
        result["id"] = self.directory.stable_id(channel, member.jid)
        result["jid"] = self.proxy(channel, member.jid)
        for name in done:
            result.addElement("subscribe")["node"] = name
        if nick:
            result.addElement("nick", content=nick)
        return result

    @defer.inlineCallbacks
    def _subscribe_all(self, channel, bare, wanted, unsubscribe=()):
        """Subscribe (and unsubscribe) ``bare`` to the nodes named; the nodes done. When none
        of those asked for could be subscribed to, the first failure's error (§7.1.1)."""
        service, jid = self.address(channel), JID(bare)
        done, failure = [], None
        for name in wanted:
            if name not in nodes.ENGINE_NODES:
                failure = failure or ChannelError("item-not-found", f"no node {name}")
                continue
            try:
                yield self.nodes.subscribe(service, name, jid)
                done.append(name)
            except StanzaError as e:
                failure = failure or e
        for name in unsubscribe:
            yield self.nodes.unsubscribe(service, name, jid)
        if wanted and not done and failure is not None:
            raise failure
        return done

    def _participant(self, channel, sender):
        member = channel.members.get(sender.userhost())
        if member is None or not member.participant:
            raise ChannelError("forbidden", "you are not a participant of this channel")
        return member

    @defer.inlineCallbacks
    def _leave(self, channel, iq, sender, payload):
        """§7.1.2: unsubscribed from every node, out of the participants (and presence)."""
        member = self._participant(channel, sender)
        bare = member.jid
        service = self.address(channel)
        for name in (yield self.nodes.subscribed_nodes(service, bare)):
            yield self.nodes.unsubscribe(service, name, JID(bare))
        self._drop_presence(channel, bare)
        self.directory.set_member(channel, Member(bare, member.affiliation,
                                                  member.nick if member.affiliation != "none" else None, False))
        return domish.Element((NS_CORE, "leave"))

    def _update_subscription(self, channel, iq, sender, payload):
        member = self._participant(channel, sender)
        subscribe = [s.getAttribute("node") for s in payload.elements(NS_CORE, "subscribe")]
        unsubscribe = [s.getAttribute("node") for s in payload.elements(NS_CORE, "unsubscribe")
                       if s.getAttribute("node") in nodes.ENGINE_NODES]
        d = self._subscribe_all(channel, member.jid, subscribe, unsubscribe)

        def answered(done):
            result = domish.Element((NS_CORE, "update-subscription"))
            result["jid"] = member.jid
            for name in done:
                result.addElement("subscribe")["node"] = name
            for name in unsubscribe:
                result.addElement("unsubscribe")["node"] = name
            return result
        return d.addCallback(answered)

    def _setnick(self, channel, iq, sender, payload):
        """§7.1.4: a new nick (the same one-namespace rules as joining)."""
        member = self._participant(channel, sender)
        nick = text_of(payload, NS_CORE, "nick")
        if not nick:
            raise ChannelError("not-acceptable", "send the nick to set")
        nick = clean_nick(nick)
        channel.check_nick(member.jid, nick)
        if channel.occupant_by_nick(nick) is not None:
            raise ChannelError("conflict", "that nick is in use")
        self.directory.set_member(channel, Member(member.jid, member.affiliation, nick, True))
        result = domish.Element((NS_CORE, "setnick"))
        result.addElement("nick", content=nick)
        return result

    # -- invitations (XEP-0407 §5) ---------------------------------------------------------------------

    def _token(self, channel, inviter, invitee):
        message = f"invite\0{self.address(channel)}\0{inviter}\0{invitee}".encode()
        return hmac.new(self.directory._key, message, hashlib.sha256).hexdigest()[:TOKEN_HEX]

    def _invite(self, channel, iq, sender, payload):
        if iq["type"] != "get":
            raise StanzaError("bad-request", "ask for an invitation with a get")
        inviter = sender.userhost()
        if not (channel.rank(inviter) >= RANK["admin"] or (
                channel.is_participant(inviter) and channel.config.allow_invites)):
            raise ChannelError("forbidden", "you may not invite to this channel")
        try:
            invitee = parse_jid(text_of(payload, NS_MISC, "invitee") or "").userhost()
        except InvalidJID:
            raise StanzaError("jid-malformed", "name the invitee") from None
        result = domish.Element((NS_MISC, "invite"))
        invitation = result.addElement("invitation")
        for name, value in (("inviter", inviter), ("invitee", invitee), ("channel", self.address(channel)),
                            ("token", self._token(channel, inviter, invitee))):
            invitation.addElement(name, content=value)
        return result

    def _invitation_valid(self, channel, bare, invitation):
        if invitation is None:
            return False
        inviter, invitee, token = (text_of(invitation, NS_MISC, n) or "" for n in ("inviter", "invitee", "token"))
        if invitee != bare or text_of(invitation, NS_MISC, "channel") != self.address(channel) or \
                not hmac.compare_digest(token, self._token(channel, inviter, invitee)):
            raise ChannelError("forbidden", "the invitation is not valid")
        return True

    # -- pubsub on the channel (§5, XEP-0406) -----------------------------------------------------------

    def _pubsub(self, channel, iq, sender, payload):
        request = parse_request(iq)
        name = request.nodeIdentifier
        bare = sender.userhost()
        if request.verb == "items" and name in nodes.MODEL_NODES:
            return self._list_node(channel, name, bare)
        if request.verb in ("publish", "retract") and name in (nodes.NODE_INFO, nodes.NODE_CONFIG, nodes.NODE_TOPIC,
                                                               nodes.NODE_ALLOWED, nodes.NODE_BANNED):
            return self._admin_publish(channel, request, name, bare)
        if request.verb == "publish" and name == nodes.NODE_PINS:
            if not channel.is_participant(bare) or not channel.may_write(bare):
                raise ChannelError("forbidden", "participants with voice pin notes")
            return self._publish_as_channel(channel, name, request.items[0] if request.items else None)
        return self.nodes.request(iq, self.address(channel))

    def _list_node(self, channel, name, bare):
        config_attr = nodes.READ_RIGHTS[name]
        if not channel.has_right(bare, getattr(channel.config, config_attr)):
            raise ChannelError("forbidden", "you may not read this list")
        pubsub = pubsub_element()
        items = pubsub.addElement("items")
        items["node"] = name
        wanted = "outcast" if name == nodes.NODE_BANNED else None
        for member in sorted(channel.members.values(), key=lambda m: m.jid):
            if (member.affiliation == wanted) if wanted else RANK[member.affiliation] >= RANK["member"]:
                items.addElement("item")["id"] = member.jid
        return pubsub

    def _admin_publish(self, channel, request, name, bare):
        """Publications the channel checks and applies itself: information, configuration,
        topic, allowed and banned lists."""
        if name in (nodes.NODE_ALLOWED, nodes.NODE_BANNED):
            if channel.rank(bare) < RANK["admin"]:
                raise ChannelError("forbidden", "only admins change the allowed and banned lists")
            ids = request.itemIdentifiers if request.verb == "retract" else [
                i.getAttribute("id") for i in request.items or ()]
            affiliation = "none" if request.verb == "retract" else (
                "outcast" if name == nodes.NODE_BANNED else "member")
            for jid in ids:
                target = _bare_or_domain(jid)
                channel.check_affiliation_change(bare, target, affiliation)
                set_affiliation(self, channel, target, affiliation, bare)
            return None
        item = request.items[0] if request.items else None
        x = child(item, "jabber:x:data", "x") if item is not None else None
        if name == nodes.NODE_TOPIC:
            topic = child(item, NS_TOPIC, "topic") if item is not None else None
            if topic is None:
                raise StanzaError("bad-request", f"publish a <topic xmlns='{NS_TOPIC}'/>")
            self._set_topic(channel, channel.members.get(bare) or Member(bare), str(topic))
            return None
        if x is None or request.verb != "publish":
            raise StanzaError("bad-request", "publish a form")
        if name == nodes.NODE_INFO:
            if not channel.has_right(bare, channel.config.info_rights):
                raise ChannelError("forbidden", "you may not change the channel's information")
            self.directory.configure(channel, parse_mix_info(x, channel).changed(last_change_by=bare))
            return None
        if channel.affiliation(bare) != "owner":
            raise ChannelError("forbidden", "only owners change the configuration")
        config, affiliations = parse_mix_config(x, channel)
        for jid, affiliation in affiliations.items():
            if jid != bare:
                channel.check_affiliation_change(bare, jid, affiliation)
        for jid, affiliation in affiliations.items():
            set_affiliation(self, channel, jid, affiliation, bare)
        self.directory.configure(channel, config.changed(last_change_by=bare))
        return None

    def _publish_as_channel(self, channel, name, item):
        if item is None:
            raise StanzaError("bad-request", "publish an item")
        d = self.nodes.publish(self.address(channel), name, item)

        return d.addCallback(lambda stored: publish_result(name, stored.id))

    def _publish_state(self, channel, name, payload):
        """Republish the information or configuration item (named by the time)."""
        item = domish.Element((NS_PUBSUB, "item"))
        item["id"] = format_datetime(int(self.context.clock.seconds() * 1_000_000))
        item.addChild(payload)
        self._written(self.nodes.publish(self.address(channel), name, item), "publishing " + name)

    # -- disco and MAM on the channel ------------------------------------------------------------------

    def _channel_info(self, channel, iq, sender, payload):
        if payload.getAttribute("node") not in (None, "mix"):
            raise ChannelError("item-not-found", "no such node")
        features = (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_CORE, NS_PRESENCE, NS_MISC) + channel_mam.FEATURES
        return info_element(Info((("conference", "mix", channel.config.name or channel.name),), features, ()),
                            payload.getAttribute("node"))

    def _channel_items(self, channel, iq, sender, payload):
        """§6.3: the nodes, asked with node='mix' (other queries are MUC's)."""
        if payload.getAttribute("node") != "mix":
            raise StanzaError("bad-request", "ask for a channel's nodes with node='mix'")
        bare = sender.userhost()
        service = self.address(channel)
        return items_element([(service, name, None) for name in nodes.ALL_NODES
                              if channel.has_right(bare, getattr(channel.config, nodes.READ_RIGHTS[name]))], "mix")

    def _mam(self, channel, iq, sender, payload):
        return channel_mam.handle(self, channel, iq, payload, sender)

    # -- messages (§7.1.5) ---------------------------------------------------------------------------------

    def _message_in(self, channel, message, sender):
        type = message.getAttribute("type", "normal")
        if type == "error":
            return
        if channel is None:
            raise ChannelError("item-not-found", "no such channel")
        if type != "groupchat":
            raise StanzaError("bad-request", "messages to a channel are of type groupchat")
        member = self._participant(channel, sender)
        subject = child(message, message.uri, "subject")
        if subject is not None and child(message, message.uri, "body") is None:
            self._set_topic(channel, member, str(subject))
            return
        if not channel.may_write(member.jid):
            raise ChannelError("forbidden", "you have no voice in this channel")
        retract = child(message, NS_MISC, "retract")
        if retract is None:
            retract = child(message, NS_RETRACT, "retract")
        if retract is not None and retract.getAttribute("id"):
            self._retract(channel, member, message, retract)
            return
        self.directory.post(channel, Posted(member.jid, member.nick or "", reflected_payload(message),
                                            message.getAttribute("id")))

    def _set_topic(self, channel, member, text):
        if not channel.may_set_subject(member.jid):
            raise ChannelError("forbidden", "you may not change the topic")
        self.directory.set_subject(channel, Subject(text, member.nick or "", member.jid,
                                                    int(self.context.clock.seconds() * 1_000_000)))

    def _retract(self, channel, member, message, retract):
        """XEP-0407 §4: a participant's own message (when the channel allows it), or any by
        those the channel's retraction rights name."""
        archive_id = retract["id"]
        d = find_message(self, channel, archive_id)

        def check(posted):
            own = posted.bare == member.jid and channel.config.user_retraction
            if not own and not channel.has_right(member.jid, channel.config.admin_retraction):
                raise ChannelError("forbidden", "you may not retract this message")
            now = int(self.context.clock.seconds() * 1_000_000)
            moderated = posted.bare != member.jid
            retraction = Retraction(archive_id, member.nick or "", member.jid, "", now, moderated)
            self.directory.retract(channel, retraction, Posted(member.jid, "" if moderated else member.nick or "",
                                                               reflected_payload(message), message.getAttribute("id")))
        d.addCallback(check)
        d.addErrback(bounced, self, message)

    def _message(self, channel, posted, with_jid):
        """A channel message as MIX shows it (not yet addressed)."""
        sender = f"{self.address(channel)}/{self.directory.stable_id(channel, posted.bare)}" if posted.nick \
            else self.address(channel)
        element = stanza("message", sender, type="groupchat", id=posted.id)
        if posted.retraction is not None:
            element.children = [tombstone(posted.retraction)]
        else:
            element.children = list(posted.payload)
        mix = element.addElement((NS_CORE, "mix"))
        if posted.nick:
            mix.addElement("nick", content=posted.nick)
        if with_jid and posted.bare:
            mix.addElement("jid", content=posted.bare)
        element.addChild(stanza_id(posted.id, self.address(channel)))
        return element

    def message_posted(self, channel, posted):
        service = self.address(channel)
        recipients = self.nodes.subscribers(service, nodes.NODE_MESSAGES)
        if recipients is None:
            d = self.nodes.subscribers_later(service, nodes.NODE_MESSAGES)
            d.addCallback(lambda found: self._deliver(channel, posted, found))
            self._written(d, "delivering a message")
            return
        self._deliver(channel, posted, recipients)

    def _deliver(self, channel, posted, recipients):
        variants = {}
        sees_jids = channel.jid_viewers()
        for jid in recipients:
            sees = sees_jids(jid.partition("/")[0])
            element = variants.get(sees)
            if element is None:
                element = variants[sees] = self._message(channel, posted, sees)
            self.context.route(addressed(element, jid))

    def retracted(self, channel, retraction, announcement):
        self.message_posted(channel, announcement)

    def subject_changed(self, channel):
        subject = channel.subject
        item = domish.Element((NS_PUBSUB, "item"))
        item["id"] = "current"
        topic = item.addElement((NS_TOPIC, "topic"), content=subject.text if subject else "")
        if subject is not None and subject.nick:
            topic["by"] = subject.nick
        self._written(self.nodes.publish(self.address(channel), nodes.NODE_TOPIC, item), "publishing the topic")

    # -- the channel's state on its nodes ---------------------------------------------------------------

    def created(self, channel):
        self._written(self.nodes.ensure(self.address(channel)), "creating a channel's nodes")
        self._publish_state(channel, nodes.NODE_INFO, mix_info_form(channel))
        self._publish_state(channel, nodes.NODE_CONFIG, mix_config_form(channel))

    def destroyed(self, channel, reason, alternate):
        self._written(self.nodes.delete(self.address(channel)), "deleting a channel's nodes")

    def config_changed(self, channel, before):
        after = channel.config
        if (before.name, before.description, before.contact) != (after.name, after.description, after.contact):
            self._publish_state(channel, nodes.NODE_INFO, mix_info_form(channel))
        self._publish_state(channel, nodes.NODE_CONFIG, mix_config_form(channel))
        if before.whois != after.whois:
            for member in channel.participants():
                self._publish_participant(channel, member)

    def member_changed(self, channel, before, after, actor, reason):
        """Participation and nicks are the participants node; a ban ends them (XEP-0406)."""
        service = self.address(channel)
        if after.participant and (not before.participant or before.nick != after.nick):
            self._publish_participant(channel, after)
        elif before.participant and not after.participant:
            pid = self.directory.stable_id(channel, before.jid)
            self._written(self.nodes.retract(service, nodes.NODE_PARTICIPANTS, pid), "retracting a participant")
            self._drop_presence(channel, before.jid)
            if after.affiliation == "outcast":
                self._written(self._unsubscribe_everywhere(service, before.jid), "unsubscribing a banned JID")
        if before.affiliation != after.affiliation and {"owner", "admin"} & {before.affiliation, after.affiliation}:
            self._publish_state(channel, nodes.NODE_CONFIG, mix_config_form(channel))

    @defer.inlineCallbacks
    def _unsubscribe_everywhere(self, service, bare):
        for name in (yield self.nodes.subscribed_nodes(service, bare)):
            yield self.nodes.unsubscribe(service, name, JID(bare))

    def _publish_participant(self, channel, member):
        item = domish.Element((NS_PUBSUB, "item"))
        item["id"] = self.directory.stable_id(channel, member.jid)
        participant = item.addElement((NS_CORE, "participant"))
        if member.nick:
            participant.addElement("nick", content=member.nick)
        if channel.config.whois == "anyone":
            participant.addElement("jid", content=member.jid)
        self._written(self.nodes.publish(self.address(channel), nodes.NODE_PARTICIPANTS, item),
                      "publishing a participant")

    # -- presence (XEP-0403) ------------------------------------------------------------------------------

    def _presence(self, channel, presence, sender):
        type = presence.getAttribute("type")
        if channel is None or type not in (None, "unavailable"):
            return
        bare = sender.userhost()
        if sender.resource is None:
            if type is None and channel.has_right(bare, channel.config.presence_subscription):
                self._send_all_presence(channel, bare)      # XEP-0405 §5.3.3: a refresh
            return
        member = channel.members.get(bare)
        if not channel.is_participant(bare) and not (channel.config.open_presence and channel.rank(bare) >= 0):
            return
        full = sender.full()
        if type == "unavailable":
            if channel.presences.get(bare, {}).pop(full, None) is None:
                return
            if not channel.presences.get(bare):
                channel.presences.pop(bare, None)
        else:
            channel.presences.setdefault(bare, {})[full] = presence
        nick = member.nick if member is not None else None
        self._share_presence(channel, bare, full, nick, presence, type)
        self.directory.hub.emit("participant_presence", channel, bare, full, presence)

    def _presence_element(self, channel, bare, full, nick, presence, type, with_jid):
        element = stanza("presence", self.proxy(channel, bare, self.shown_resource(channel, full)), type=type)
        mix = element.addElement((NS_PRESENCE, "mix"))
        if with_jid:
            mix.addElement("jid", content=full)
        if nick:
            mix.addElement("nick", content=nick)
        if type is None and presence is not None:
            element.children.extend(presence_payload(presence))
        return element

    def _share_presence(self, channel, bare, full, nick, presence, type, recipients=None):
        if recipients is None:
            recipients = self.nodes.subscribers(self.address(channel), nodes.NODE_PRESENCE) or []
        variants = {}
        sees_jids = channel.jid_viewers()
        for jid in recipients:
            sees = sees_jids(jid.partition("/")[0])
            element = variants.get(sees)
            if element is None:
                element = variants[sees] = self._presence_element(channel, bare, full, nick, presence, type, sees)
            self.context.route(addressed(element, jid))

    def _send_all_presence(self, channel, to):
        for bare, presences in list(channel.presences.items()):
            member = channel.members.get(bare)
            for full, presence in presences.items():
                self._share_presence(channel, bare, full, member.nick if member else None, presence, None, [to])
        for occupant in list(channel.occupants.values()):
            for full, presence in occupant.sessions.items():
                self._share_presence(channel, occupant.bare, full, occupant.nick, presence, None, [to])

    def _drop_presence(self, channel, bare):
        member = channel.members.get(bare)
        for full in list(channel.presences.pop(bare, {})):
            self._share_presence(channel, bare, full, member.nick if member else None, None, "unavailable")

    def occupant_presence(self, channel, occupant, full, presence):
        """A MUC occupant's presence, shown to MIX presence subscribers (XEP-0408)."""
        type = presence.getAttribute("type")
        self._share_presence(channel, occupant.bare, full, occupant.nick, presence,
                             "unavailable" if type == "unavailable" else None)

    # -- private messages (XEP-0404 §5) ---------------------------------------------------------------------

    def _to_proxy(self, stanza, to_jid, sender):
        pid, _, name = to_jid.user.partition("#")
        channel = self.directory.get(self.services[to_jid.host], name)
        if stanza.name != "message" or stanza.getAttribute("type") in ("error", "groupchat"):
            if stanza.name == "message" and stanza.getAttribute("type") == "groupchat":
                raise StanzaError("bad-request", "private messages are not of type groupchat")
            if stanza.name == "iq" and stanza.getAttribute("type") in ("get", "set"):
                raise StanzaError("service-unavailable")
            return
        if channel is None:
            raise ChannelError("item-not-found", "no such channel")
        member = self._participant(channel, sender)
        if channel.config.allow_pm == "none":
            raise ChannelError("forbidden", "private messages are not allowed in this channel")
        target = channel.by_id.get(pid)
        if target is None:
            raise ChannelError("item-not-found", "no such participant")
        if channel.is_participant(target):
            self._private_to(channel, member.jid, member.nick, sender.full(), stanza, target)
            return
        occupant = next((o for o in channel.occupants.values() if o.bare == target), None)
        muc = self.directory.hub.face("muc")
        if occupant is None or muc is None:
            raise ChannelError("item-not-found", "no such participant")
        muc.private_from_mix(channel, member, occupant, stanza)

    def _private_to(self, channel, sender_bare, nick, sender_full, stanza, target):
        message = domish.Element((stanza.uri, "message"))
        message["type"] = stanza.getAttribute("type", "chat")
        if stanza.getAttribute("id"):
            message["id"] = stanza["id"]
        message["from"] = self.proxy(channel, sender_bare, self.shown_resource(channel, sender_full))
        message["to"] = target
        message.children = reflected_payload(stanza)
        mix = message.addElement((NS_CORE, "mix"))
        if nick:
            mix.addElement("nick", content=nick)
        if channel.may_see_jids(target):
            mix.addElement("jid", content=sender_bare)
        self.context.route(message)

    def private_from_muc(self, channel, occupant, member, stanza):
        """A MUC occupant's private message to a MIX participant (XEP-0408)."""
        self._private_to(channel, occupant.bare, occupant.nick, next(iter(occupant.sessions)), stanza, member.jid)


def _bare_or_domain(text):
    try:
        jid = parse_jid(text or "")
    except InvalidJID:
        raise StanzaError("jid-malformed", "an item of the allowed and banned lists is a JID") from None
    return jid.userhost()


def build(context, config):
    return MixService(context, config or MixConfig())
