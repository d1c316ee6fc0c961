"""MIX Participant Server Behaviour (XEP-0405, urn:xmpp:mix:pam:2): the "mix_pam" extension, the
user's own server's side of MIX, whatever server hosts the channels.

* Join and leave go through the user's server (§4.5 - §4.6): a client sends
  ``<client-join channel='...'><join/></client-join>`` to its own bare JID; the server
  sends the ``<join/>`` to the channel from the bare JID, and on success puts the channel
  in the roster and remembers the participation (participant id and subscribed nodes),
  then answers the client. ``client-leave`` undoes it.
* The roster (§4.7): each joined channel is a roster item (subscription 'none': the
  server itself sends the user's presence to the channels whose presence node the user
  joined, so nothing depends on presence subscriptions to a service). A client that asks
  for ``<annotate xmlns='urn:xmpp:mix:roster:0'/>`` gets ``<channel participant-id=.../>``
  on those items, in the roster result and in the pushes this extension sends.
* Messages from a joined channel (§4.2) go to every available client of the user
  (``deliver_to = "available"``) or only to those that showed MIX support by asking for
  the annotated roster or joining (``"mix_clients"``), with 'to' rewritten to each full
  JID, and into the user's archive (the "mam" extension's ``IMessageArchive``, §4.8,
  advertised as ``urn:xmpp:mix:pam:2#archive``), also when no client is online: a client
  that was offline catches up from its own archive, filtered by the channel's JID.
  Groupchat from channels the user did not join is refused as before (delivery bounces it).
* Presence (§4.7.1 - §4.7.4): the user's clients' presence goes to the channels whose
  presence node the user joined, unavailable when a session ends. Channel presence for
  the user goes to its available clients and is kept while they are offline; a client
  coming online gets the kept presence of its channels at once (the channels' "offline
  presence", held by the user's server so no channel needs asking).

Design choice (the community's "per-client channel sets"): participation is the user's,
held by the server, so one join serves every client of the user: clients that did not
join learn of the channel from the roster push and receive its traffic without joining
again; a client leaves for all. What a client shows is its own choice.

Options, under ``[extensions.mix_pam]``: ``deliver_to`` ("available" or "mix_clients")
and ``request_timeout`` (seconds to wait for a channel's answer, default 30).
"""

from collections import OrderedDict
from dataclasses import dataclass, replace

from twisted.internet import defer
from twisted.internet.interfaces import IReactorFromThreads
from twisted.python.failure import Failure
from twisted.words.xish import domish

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.core.iq import ACCOUNT, IQTimeout
from summitd.core.jid import InvalidJID, parse_jid
from summitd.extensions.base import Extension
from summitd.extensions.context import MissingProvider
from summitd.plugins.channels.stanzas import addressed, child
from summitd.plugins.mam.store import IMessageArchive
from summitd.plugins.roster import NS_ROSTER, SESSION_KEY as ROSTER_SESSION, item_element
from summitd.plugins.roster_store import IRoster, RosterItem
from summitd.storage.schema import Migration

NS_MAM_GROUPCHAT_AVAILABLE = "urn:xmpp:mam:2#groupchat-available"     # XEP-0313 §8

NS_PAM = "urn:xmpp:mix:pam:2"
NS_MIX_ROSTER = "urn:xmpp:mix:roster:0"
NS_CORE = "urn:xmpp:mix:core:1"
NS_MIX_PRESENCE = "urn:xmpp:mix:presence:0"
NODE_PRESENCE = "urn:xmpp:mix:nodes:presence"
COMPONENT = "mix_pam"
CACHED_USERS = 10_000
KEPT_PRESENCE = 1_000       # channel presences kept per user while its clients are offline

MIGRATIONS = (
    Migration(1, (
        "CREATE TABLE mix_pam_channels ("
        " host TEXT NOT NULL,"
        " username TEXT NOT NULL,"
        " channel TEXT NOT NULL,"             # the channel's bare JID
        " participant_id TEXT NOT NULL,"
        " nodes TEXT NOT NULL,"               # subscribed nodes, space separated
        " PRIMARY KEY (host, username, channel)"
        ")",
    )),
)


@dataclass(frozen=True)
class PamConfig:
    deliver_to: str = "available"
    request_timeout: float = 30.0


def parse_config(raw, path):
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key not in ("deliver_to", "request_timeout")]
    if raw.get("deliver_to", "available") not in ("available", "mix_clients"):
        errors.append((f"{path}.deliver_to", 'must be "available" or "mix_clients"'))
    timeout = raw.get("request_timeout", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        errors.append((f"{path}.request_timeout", "must be a positive number of seconds"))
    if errors:
        raise ConfigError(errors)
    return PamConfig(raw.get("deliver_to", "available"), float(timeout))


@dataclass(frozen=True)
class Participation:
    participant_id: str
    nodes: frozenset


class PamStore:
    """The channels each account joined (its own table)."""

    def __init__(self, database):
        self._db = database

    def load(self, user):
        def load(txn):
            rows = txn.execute("SELECT channel, participant_id, nodes FROM mix_pam_channels"
                               " WHERE host = ? AND username = ?", (user.host, user.user)).fetchall()
            return {channel: Participation(pid, frozenset(nodes.split())) for channel, pid, nodes in rows}
        return self._db.runInteraction("mix_pam: load", load)

    def add(self, user, channel, participation):
        return self._db.runInteraction(
            "mix_pam: join", lambda txn: txn.execute(
                "INSERT INTO mix_pam_channels (host, username, channel, participant_id, nodes)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (host, username, channel) DO UPDATE SET"
                " participant_id = excluded.participant_id, nodes = excluded.nodes",
                (user.host, user.user, channel, participation.participant_id,
                 " ".join(sorted(participation.nodes)))))

    def remove(self, user, channel):
        return self._db.runInteraction(
            "mix_pam: leave", lambda txn: txn.execute(
                "DELETE FROM mix_pam_channels WHERE host = ? AND username = ? AND channel = ?",
                (user.host, user.user, channel)))

    def delete_account(self, txn, user):
        txn.execute("DELETE FROM mix_pam_channels WHERE host = ? AND username = ?", (user.host, user.user))


def _channel_of(sender):
    """The channel's bare JID text of something a channel sent (its JID, a participant
    resource, or a proxy JID ``id#channel@service/resource``)."""
    user = sender.user or ""
    if "#" in user:
        user = user.partition("#")[2]
    return f"{user}@{sender.host}" if user else None


class Pam(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self.store = PamStore(context.database)
        self._channels = OrderedDict()        # (host, user) -> {channel: Participation}
        self._loading = {}                    # (host, user) -> Deferred
        self._presence = {}                   # (host, user) -> OrderedDict of proxy full JID -> presence
        self._pushes = 0
        context.iq("set", ACCOUNT, NS_PAM, "client-join", self._client_join)
        context.iq("set", ACCOUNT, NS_PAM, "client-leave", self._client_leave)
        context.add_feature(NS_PAM, ACCOUNT)
        context.hook(events.ACCOUNT_DISCO_FEATURES, self._archive_feature)
        context.hook(events.MESSAGE_TO_ACCOUNT, self._message, Priority.DEFAULT + 200)
        context.hook(events.PRESENCE_TO_ACCOUNT, self._channel_presence, Priority.DEFAULT + 200)
        context.hook(events.STANZA_FROM_CLIENT, self._from_client, Priority.DEFAULT + 200)
        context.hook(events.STANZA_TO_ACCOUNT, self._roster_result, Priority.STAMP)
        context.hook(events.PRESENCE_BROADCAST, self._broadcast, Priority.DEFAULT + 200)
        context.hook(events.SESSION_CLOSED, self._session_closed)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)

    def start(self):
        return self.context.migrate(COMPONENT, MIGRATIONS)

    def _archive(self):
        try:
            return self.context.need(IMessageArchive)
        except MissingProvider:
            return None

    def _archive_feature(self, jid):
        if self._archive() is None:
            return None
        # The channels' messages go into the user's archive: it holds groupchat messages.
        return (NS_PAM + "#archive", NS_MAM_GROUPCHAT_AVAILABLE)

    # -- the user's channels -------------------------------------------------------------------

    def channels(self, user):
        """Deferred {channel: Participation} of an account (cached)."""
        key = (user.host, user.user)
        found = self._channels.get(key)
        if found is not None:
            self._channels.move_to_end(key)
            return defer.succeed(found)
        waiter = defer.Deferred()
        waiters = self._loading.get(key)
        if waiters is not None:
            waiters.append(waiter)
            return waiter
        self._loading[key] = [waiter]
        self.store.load(user).addBoth(self._loaded, key)
        return waiter

    def _loaded(self, result, key):
        waiters = self._loading.pop(key)
        if not isinstance(result, Failure):
            result = self._channels.setdefault(key, result)
            while len(self._channels) > CACHED_USERS:
                self._channels.popitem(last=False)
        for waiter in waiters:
            waiter.errback(result) if isinstance(result, Failure) else waiter.callback(result)

    def _known(self, user):
        """The cached channels of an account, or None (a load is started)."""
        found = self._channels.get((user.host, user.user))
        if found is None:
            self.channels(user)
        return found

    # -- join and leave (§4.5, §4.6) ----------------------------------------------------------------

    def _owner(self, iq, to_jid):
        try:
            sender = parse_jid(iq.getAttribute("from", ""))
        except InvalidJID:
            sender = None
        if sender is None or sender.userhost() != to_jid.userhost():
            raise StanzaError("forbidden", "MIX joins go through your own server")
        self._mark_mix_client(sender)
        return sender

    def _mark_mix_client(self, full):
        session = self.context.session(full)
        if session is not None:
            session.data.setdefault(self.context.name, {})["mix"] = True

    def _wrapped(self, iq, name):
        wrapper = next(iq.elements())
        try:
            channel = parse_jid(wrapper.getAttribute("channel", ""))
        except InvalidJID:
            raise StanzaError("jid-malformed", "the channel attribute names the channel's JID") from None
        if channel.user is None or channel.resource is not None:
            raise StanzaError("jid-malformed", "a channel is a bare JID with a localpart")
        inner = child(wrapper, NS_CORE, name)
        if inner is None:
            raise StanzaError("bad-request", f"wrap a <{name} xmlns='{NS_CORE}'/>")
        return channel, inner

    def _ask_channel(self, user, channel, inner):
        request = domish.Element(("jabber:client", "iq"))
        request["type"], request["from"], request["to"] = "set", user.userhost(), channel.userhost()
        request.addChild(inner)
        d = self.context.request(request, self.config.request_timeout)

        def timed_out(failure):
            failure.trap(IQTimeout)
            raise StanzaError("remote-server-timeout", "the channel did not answer")
        return d.addErrback(timed_out)

    def _client_join(self, iq, to_jid):
        sender = self._owner(iq, to_jid)
        channel, join = self._wrapped(iq, "join")
        d = self._ask_channel(sender.userhostJID(), channel, join)
        d.addCallback(self._joined, sender.userhostJID(), channel)
        return self.context.track_write(d)

    @defer.inlineCallbacks
    def _joined(self, reply, user, channel):
        join = child(reply, NS_CORE, "join")
        if join is None:
            raise StanzaError("undefined-condition", "the channel's answer has no <join/>")
        participant_id = join.getAttribute("id") or join.getAttribute("jid", "").partition("#")[0]
        nodes = frozenset(s.getAttribute("node") for s in join.elements(NS_CORE, "subscribe"))
        participation = Participation(participant_id, nodes)
        text = channel.userhost()
        yield self.store.add(user, text, participation)
        channels = yield self.channels(user)
        channels[text] = participation
        yield self._roster_change(user, channel, lambda before: replace(before, listed=True)
                                  if before is not None else RosterItem(text))
        wrapper = domish.Element((NS_PAM, "client-join"))
        wrapper.addChild(join)
        return wrapper

    def _client_leave(self, iq, to_jid):
        sender = self._owner(iq, to_jid)
        channel, leave = self._wrapped(iq, "leave")
        d = self._ask_channel(sender.userhostJID(), channel, leave)
        d.addCallback(self._left, sender.userhostJID(), channel)
        return self.context.track_write(d)

    @defer.inlineCallbacks
    def _left(self, reply, user, channel):
        text = channel.userhost()
        yield self.store.remove(user, text)
        (yield self.channels(user)).pop(text, None)
        yield self._roster_change(user, channel, lambda before: None)
        wrapper = domish.Element((NS_PAM, "client-leave"))
        wrapper.addElement((NS_CORE, "leave"))
        return wrapper

    @defer.inlineCallbacks
    def _roster_change(self, user, channel, change):
        """Apply a change to the channel's roster item and push it (annotated to the clients
        that asked for annotations)."""
        try:
            roster = self.context.need(IRoster)
        except MissingProvider:
            return
        result = yield roster.update(user, channel, change)
        if result.version is None:
            return
        for session in self.context.sessions(user):
            if not session.data.get(ROSTER_SESSION):
                continue
            if self._annotating(session):
                self._annotated_push(session, result)
            else:
                roster.push(result, only=session)

    def _annotated_push(self, session, change):
        removed = change.removed
        element = item_element(change.before if removed else change.after, removed)
        if not removed:
            self._annotate(element, self._channels.get((session.jid.host, session.jid.user), {}))
        self._pushes += 1
        iq = domish.Element(("jabber:client", "iq"))
        iq["type"], iq["id"], iq["to"] = "set", f"mix-pam-push-{self._pushes}", session.jid.full()
        query = iq.addElement((NS_ROSTER, "query"))
        query["ver"] = change.version
        query.addChild(element)
        session.send(iq)

    # -- roster annotation (§4.7.5) ----------------------------------------------------------------------

    def _annotating(self, session):
        return session.data.get(self.context.name, {}).get("annotate", False)

    def _from_client(self, session, stanza):
        if stanza.name != "iq" or stanza.getAttribute("type") != "get":
            return None
        query = child(stanza, NS_ROSTER, "query")
        if query is None or stanza.getAttribute("to") not in (None, session.jid.userhost()):
            return None
        state = session.data.setdefault(self.context.name, {})
        state["annotate"] = child(query, NS_MIX_ROSTER, "annotate") is not None
        if state["annotate"]:
            state["mix"] = True
            state["roster_id"] = stanza.getAttribute("id")
            self._known(session.jid)
        return None

    def _roster_result(self, stanza, to_jid):
        if stanza.name != "iq" or to_jid.resource is None or stanza.getAttribute("type") != "result":
            return None
        session = self.context.session(to_jid)
        state = session.data.get(self.context.name) if session is not None else None
        if not state or state.get("roster_id") is None or state["roster_id"] != stanza.getAttribute("id"):
            return None
        del state["roster_id"]
        query = child(stanza, NS_ROSTER, "query")
        channels = self._channels.get((to_jid.host, to_jid.user))
        if query is not None and channels:
            for item in query.elements(NS_ROSTER, "item"):
                self._annotate(item, channels)
        return None

    @staticmethod
    def _annotate(item, channels):
        participation = channels.get(item.getAttribute("jid"))
        if participation is not None:
            item.addElement((NS_MIX_ROSTER, "channel"))["participant-id"] = participation.participant_id

    # -- channel messages (§4.2) and presence (§4.7.3) ---------------------------------------------------

    def _recipients(self, user):
        sessions = [s for s in self.context.sessions(user) if s.available]
        if self.config.deliver_to == "mix_clients":
            sessions = [s for s in sessions if s.data.get(self.context.name, {}).get("mix")]
        return sessions

    def _from_channel(self, stanza, to_jid, handle):
        """Run ``handle(stanza, to_jid, channel)`` for traffic from a channel the account
        joined (at once when its channels are known, else once they are loaded); None for
        anything else."""
        if to_jid.resource is not None:
            return None
        try:
            sender = parse_jid(stanza.getAttribute("from", ""))
        except InvalidJID:
            return None
        channel = _channel_of(sender)
        if channel is None:
            return None
        channels = self._channels.get((to_jid.host, to_jid.user))
        if channels is not None:
            if channel not in channels:
                return None
            handle(stanza, to_jid, channel)
            return True
        d = self.channels(to_jid.userhostJID())
        d.addCallback(self._later, stanza, to_jid, channel, handle)
        d.addErrback(lambda f: self.context.log.failure("mix_pam: loading {user}'s channels", f,
                                                        user=to_jid.userhost()))
        self.context.track_write(d)
        return True

    def _later(self, channels, stanza, to_jid, channel, handle):
        if channel in channels:
            handle(stanza, to_jid, channel)
        elif stanza.name == "message":
            self.context.route(StanzaError("service-unavailable").reply_to(stanza))

    def _message(self, stanza, to_jid):
        if stanza.getAttribute("type") != "groupchat":
            return None
        return self._from_channel(stanza, to_jid, self._deliver_message)

    def _deliver_message(self, stanza, to_jid, channel):
        archive = self._archive()
        if archive is not None:
            archive.archive_received(stanza, to_jid)
        for session in self._recipients(to_jid):
            session.send(addressed(stanza, session.jid.full()))

    def _channel_presence(self, stanza, to_jid):
        if stanza.getAttribute("type") not in (None, "unavailable") or child(stanza, NS_MIX_PRESENCE, "mix") is None:
            return None
        return self._from_channel(stanza, to_jid, self._deliver_presence)

    def _deliver_presence(self, stanza, to_jid, channel):
        kept = self._presence.setdefault((to_jid.host, to_jid.user), OrderedDict())
        sender = stanza["from"]
        kept.pop(sender, None)
        if stanza.getAttribute("type") != "unavailable":
            kept[sender] = stanza
            while len(kept) > KEPT_PRESENCE:
                kept.popitem(last=False)
        for session in self._recipients(to_jid):
            session.send(addressed(stanza, session.jid.full()))

    def _broadcast(self, session, stanza, initial):
        """The user's presence to its channels; kept channel presence to a client coming online."""
        if initial:
            for presence in list(self._presence.get((session.jid.host, session.jid.user), {}).values()):
                session.send(addressed(presence, session.jid.full()))
        channels = self._known(session.jid)
        if channels is None:
            self.channels(session.jid).addCallback(lambda found: self._share(session, stanza, found))
        else:
            self._share(session, stanza, channels)
        return None

    def _share(self, session, stanza, channels):
        shared = [c for c, p in channels.items() if NODE_PRESENCE in p.nodes]
        state = session.data.setdefault(self.context.name, {})
        state["shared"] = stanza.getAttribute("type") != "unavailable" and bool(shared)
        for channel in shared:
            copy = addressed(stanza, channel)
            copy["from"] = session.jid.full()
            self.context.route(copy)

    def _session_closed(self, session):
        if not session.data.get(self.context.name, {}).get("shared"):
            return
        unavailable = domish.Element(("jabber:client", "presence"))
        unavailable["type"] = "unavailable"
        self._share(session, unavailable, self._channels.get((session.jid.host, session.jid.user), {}))

    # -- accounts ----------------------------------------------------------------------------------------

    def _account_deleting(self, jid, txn):
        self.store.delete_account(txn, jid)
        clock = self.context.clock
        if IReactorFromThreads.providedBy(clock):
            clock.callFromThread(self._forget, jid)
        else:
            self._forget(jid)

    def _forget(self, jid):
        self._channels.pop((jid.host, jid.user), None)
        self._presence.pop((jid.host, jid.user), None)


def build(context, config):
    return Pam(context, config or PamConfig())

