"""Roster management (RFC 6121 §2) with roster versioning (§2.6, XEP-0237).

The extension answers roster gets and sets (``jabber:iq:roster``), sends roster pushes to
the account's interested resources (those that asked for the roster in this session,
§2.2), offers the versioning stream feature, and keeps the roster tables clean when an
account is deleted. Other extensions reach rosters through ``IRoster`` (presence for
subscription states, disco and the archive for "may this JID see that account").

Roster set errors follow §2.3.3 and §2.5.3: more than one item, duplicate groups or an
item without a usable bare JID is ``bad-request`` (a JID that is not one is RFC 6120's
``jid-malformed``); an oversized handle or group, an empty group or too many groups is
``not-acceptable``; a set for someone else's roster is ``forbidden``; the user's own JID
is ``not-allowed`` (§2.3.3's interoperability note); a full roster is ``policy-violation``
(a local limit, RFC 6120 §8.3.3.12). The 'subscription' attribute of a set is ignored
unless it is "remove", as §2.1.5 rule 2 requires (clients such as slixmpp send it).
"""

import itertools
from dataclasses import replace

from twisted.internet.interfaces import IReactorFromThreads
from twisted.words.xish import domish
from zope.interface import implementer

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.iq import ACCOUNT
from summitd.core.jid import InvalidJID, parse_jid, prepare_resource
from summitd.extensions.base import Extension
from summitd.plugins.presence_config import parse_roster_config
from summitd.plugins.roster_store import MIGRATIONS, COMPONENT, IRoster, RosterFull, RosterItem, RosterStore

NS_ROSTER = "jabber:iq:roster"
NS_ROSTERVER = "urn:xmpp:features:rosterver"
SESSION_KEY = "roster"      # session.data: True once the resource asked for the roster

parse_config = parse_roster_config


def presence_stanza(type, sender, to=None, id=None):
    """A presence stanza the server sends on an account's behalf (``to``: a JID or its text)."""
    presence = domish.Element((None, "presence"))
    if type is not None:
        presence["type"] = type
    presence["from"] = sender.full()
    if to is not None:
        presence["to"] = to if isinstance(to, str) else to.full()
    if id is not None:
        presence["id"] = id
    return presence


def subscription_audience(sessions):
    """Who hears about subscription changes: available resources (§3.1.3) and interested
    ones (§3.1.6, §3.2.3, §3.3.3)."""
    return [s for s in sessions if s.available or s.data.get(SESSION_KEY)]


def item_element(item, removed=False):
    """The <item/> of a roster result or push (§2.1.2)."""
    element = domish.Element((NS_ROSTER, "item"))
    element["jid"] = item.contact
    if removed:
        element["subscription"] = "remove"
        return element
    if item.name:
        element["name"] = item.name
    element["subscription"] = item.subscription
    if item.ask:
        element["ask"] = "subscribe"
    if item.approved:
        element["approved"] = "true"
    for group in item.groups:
        element.addElement("group", content=group)
    return element


def _group_key(group):
    """Groups are compared as resourceparts are (§2.3.3); text that is not one compares as is."""
    try:
        return prepare_resource(group)
    except InvalidJID:
        return group


def _fail(condition, text):
    raise StanzaError(condition, text)


def parse_set(query, owner, config):
    """The (contact JID, item or None for a removal) of a roster set; StanzaError otherwise."""
    items = [c for c in query.elements() if c.name == "item" and c.uri == NS_ROSTER]
    if len(items) != 1:
        _fail("bad-request", "a roster set holds exactly one item")
    element = items[0]
    text = element.getAttribute("jid")
    if not text:
        _fail("bad-request", "the item has no 'jid'")
    try:
        contact = parse_jid(text)
    except InvalidJID:
        _fail("jid-malformed", "the item's 'jid' is not a JID")
    if contact.resource is not None:
        _fail("bad-request", "roster items are bare JIDs")
    if contact == owner:
        _fail("not-allowed", "your own JID cannot be a roster item")
    if element.getAttribute("subscription") == "remove":
        return contact, None
    name = element.getAttribute("name", "")
    if len(name) > config.max_name_length:
        _fail("not-acceptable", f"the handle is longer than {config.max_name_length} characters")
    groups, seen = [], set()
    for child in element.elements():
        if child.name != "group" or child.uri != NS_ROSTER:
            continue
        group = str(child)
        if not group:
            _fail("not-acceptable", "a group name is empty")
        if len(group) > config.max_group_length:
            _fail("not-acceptable", f"a group name is longer than {config.max_group_length} characters")
        key = _group_key(group)
        if key in seen:
            _fail("bad-request", "the item names a group twice")
        seen.add(key)
        groups.append(group)
    if len(groups) > config.max_groups:
        _fail("not-acceptable", f"an item has at most {config.max_groups} groups")
    return contact, RosterItem(contact.full(), name=name, groups=tuple(groups))


def _set_item(wanted):
    def change(before):
        if before is None:
            return wanted
        return replace(before, name=wanted.name, groups=wanted.groups, listed=True)
    return change


def _remove(before):
    return None if before is not None and before.listed else before


@implementer(IRoster)
class Roster(Extension):
    """The roster extension; also the IRoster provider."""

    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self.store = RosterStore(context.database, config)
        self._push_ids = itertools.count(1)
        context.iq("get", ACCOUNT, NS_ROSTER, "query", self._get)
        context.iq("set", ACCOUNT, NS_ROSTER, "query", self._set)
        context.hook(events.STREAM_FEATURES, self._features)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)
        context.provide(IRoster, self)

    def start(self):
        return self.context.migrate(COMPONENT, MIGRATIONS)

    # -- IRoster -------------------------------------------------------------------------

    def roster(self, user, since=None):
        return self.store.roster(user, since)

    def entries(self, user):
        return self.store.entries(user)

    def item(self, user, contact):
        return self.store.item(user, contact)

    def is_subscribed_from(self, user, contact):
        return self.store.item(user, contact).addCallback(lambda i: i is not None and i.has_from)

    def is_subscribed_to(self, user, contact):
        return self.store.item(user, contact).addCallback(lambda i: i is not None and i.has_to)

    def sharing_with(self, user):
        return self.store.sharing_with(user)

    def update(self, user, contact, change):
        return self.store.update(user, contact, change)

    def push(self, change, only=None):
        """Roster push of a Change to the interested resources (or just the session ``only``)."""
        if change.version is None:
            return
        removed = change.removed
        element = item_element(change.before if removed else change.after, removed)
        sessions = [only] if only is not None else self.context.sessions(change.user)
        for session in sessions:
            if session.data.get(SESSION_KEY):
                self._send_push(session, element, change.version)

    def _send_push(self, session, element, version):
        iq = domish.Element((None, "iq"))
        iq["type"] = "set"
        iq["id"] = f"roster-push-{next(self._push_ids)}"
        iq["to"] = session.jid.full()
        query = iq.addElement((NS_ROSTER, "query"))
        query["ver"] = version
        query.addChild(element)
        session.send(iq)

    # -- roster get and set (§2.1.3 - §2.5) -------------------------------------------------

    def _owner(self, iq, to_jid):
        """The requesting session's JID; only the account itself may touch its roster."""
        try:
            sender = parse_jid(iq.getAttribute("from", ""))
        except InvalidJID:
            sender = None
        if sender is None or sender.bare != to_jid.bare:
            raise StanzaError("forbidden", "only the account itself may use its roster")
        return sender

    def _get(self, iq, to_jid):
        sender = self._owner(iq, to_jid)
        session = self.context.session(sender)
        if session is not None:
            session.data[SESSION_KEY] = True
        since = iq.firstChildElement().getAttribute("ver")
        return self.store.roster(to_jid.bare, since).addCallback(self._roster_result, session)

    def _roster_result(self, view, session):
        if view.items is None:
            # §2.6.3: an empty result, then the interim pushes (after the result is out).
            if view.changes and session is not None:
                self.context.call_later(0, self._interim_pushes, session, view.changes)
            return None
        query = domish.Element((NS_ROSTER, "query"))
        query["ver"] = view.version
        for item in view.items:
            query.addChild(item_element(item))
        return query

    def _interim_pushes(self, session, changes):
        for version, item, removed in changes:
            self._send_push(session, item_element(item, removed), version)

    def _set(self, iq, to_jid):
        sender = self._owner(iq, to_jid)
        user = to_jid.bare
        contact, wanted = parse_set(iq.firstChildElement(), user, self.config)
        if wanted is None:
            d = self.store.update(user, contact, _remove)
            d.addCallback(self._removed, contact)
        else:
            d = self.store.update(user, contact, _set_item(wanted))
            d.addCallback(self.push)
        d.addErrback(self._refused, sender)
        # Stream management acknowledges the set only once the change is stored.
        return self.context.track_write(d.addCallback(lambda _: None))

    def _refused(self, failure, sender):
        failure.trap(RosterFull)
        self.context.log.info("roster of {user} is full", user=sender.userhost())
        raise StanzaError("policy-violation", f"a roster holds at most {self.config.max_items} items")

    def _removed(self, change, contact):
        """§2.5.2: push the removal, then end the subscriptions the item carried."""
        if not change.removed:
            raise StanzaError("item-not-found", "no such item in the roster")
        self.push(change)
        before, user = change.before, change.user
        if before.has_from:
            # §3.2.2: the contact sees the user go offline before the cancellation.
            for session in self.context.sessions(user):
                if session.available:
                    self.context.route(presence_stanza("unavailable", session.jid, contact))
        if before.has_to or before.ask:
            self.context.route(presence_stanza("unsubscribe", user, contact))
        if before.has_from or before.pending_in:
            self.context.route(presence_stanza("unsubscribed", user, contact))

    # -- stream feature ------------------------------------------------------------------

    def _features(self, stream):
        if stream.state != "authenticated":
            return None
        return [domish.Element((NS_ROSTERVER, "ver"))]

    # -- account deletion ----------------------------------------------------------------

    def _account_deleting(self, jid, txn):
        """Runs inside the deleting transaction (on the database thread)."""
        changes = [c for c in self.store.delete_account(txn, jid) if c.before is not None]
        if not changes:
            return
        clock = self.context.clock
        if IReactorFromThreads.providedBy(clock):
            clock.callFromThread(self._account_deleted, jid, changes)
        else:   # a synchronous database: this is the reactor's thread already
            self.context.call_later(0, self._account_deleted, jid, changes)

    def _account_deleted(self, jid, changes):
        """After the deletion: tell the contacts that are online (best effort)."""
        d = self.context.accounts.exists(jid)    # queued behind the deletion: it committed?
        d.addCallback(self._notify_deleted, jid, changes)
        d.addErrback(lambda f: self.context.log.failure("telling contacts of deleted {jid} failed",
                                                        f, jid=jid.full()))

    def _notify_deleted(self, exists, jid, changes):
        if exists:
            return      # rolled back, or created again meanwhile: nothing to say
        for change in changes:
            before = change.before
            stanzas = []
            if before.has_to or before.ask:
                stanzas.append(presence_stanza("unavailable", jid, change.user))
                stanzas.append(presence_stanza("unsubscribed", jid, change.user))
            if before.has_from:
                stanzas.append(presence_stanza("unsubscribe", jid, change.user))
            for session in subscription_audience(self.context.sessions(change.user)):
                for stanza in stanzas:
                    session.send(stanza)
            self.push(change)


def build(context, config):
    return Roster(context, config)
