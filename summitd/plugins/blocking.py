"""Blocking Command (XEP-0191) with spam and abuse reports (XEP-0377).

The protocol: the owner of an account gets, adds to and removes from their
blocklist with IQs to their own account (§3.2-§3.5); every resource that asked
for the blocklist in its session gets a push of each change. Item JIDs are
normalised (RFC 7622); an unparsable one is a ``bad-request`` like every other
malformed item. A ``<report xmlns='urn:xmpp:reporting:1'/>`` inside a block item
is recorded for moderation (reporter, reported JID, reason, text, stanza-ids,
time) and logged once without its text. A malformed report (no reason) is not
recorded but never fails the block: XEP-0377 §6 says the block is done "just as
if no report were present". Reports are not forwarded anywhere (no opt-in
processing, §5).

Enforcement, at ``Priority.SECURITY`` so nothing (offline storage, archive,
carbons, delivery) sees a refused stanza:

* inbound, from a blocked entity to the account (``STANZA_TO_ACCOUNT``, also
  while the user is offline): messages and IQ get/set are answered with
  ``service-unavailable``, presence of every type is dropped without a word, IQ
  results and errors are dropped (§3.3): the user appears offline;
* outbound, from a client (``STANZA_FROM_CLIENT``): refused with
  ``not-acceptable`` and ``<blocked xmlns='urn:xmpp:blocking:errors'/>``, sent
  straight back to the session (§3.3); errors and IQ results are dropped;
* what the server sends on the user's behalf (presence broadcasts and probe
  answers of the presence extension, which routes them with the user as 'from')
  is dropped in ``STANZA_TO_ACCOUNT`` and ``STANZA_TO_REMOTE`` when the sending
  account blocked the recipient. Errors and IQ results pass there: they answer
  stanzas the inbound check already judged (our own service-unavailable, say).

JID matching follows §6 and XEP-0016: user@domain/resource, user@domain,
domain/resource (that resource at any address of the domain), domain (the
domain and every address at it). One user's resources are never blocked from
each other (§5 note), nor is a hosted domain itself (the server must keep
talking to its users: pings, pushes).

On block the server sends unavailable presence, from each of the user's
resources, to every blocked address that still has available presence from that
resource (§3.3). This extension tracks that itself by watching the presence it
lets through (``session.data['blocking']``), since directed presence and
broadcasts both pass here. On unblock (§3.4) it notifies ``BLOCKLIST_CHANGED``;
sending current presence to unblocked contacts allowed to see it, and
re-probing them, is left to the presence extension, which knows subscriptions.

Hooks are synchronous, so every blocklist is kept in memory as a frozenset of
normalised JID texts, keyed like the router; only users with a non-empty list
have an entry, so memory follows the data size. All lists are loaded at start
because the inbound check must work for offline users too. Limitation: start-up
time and memory grow with the total number of items, and with several server
nodes on one database a change made on one node would not reach the others'
caches (scaling out needs per-user lazy loading plus cross-node invalidation).
"""

import datetime
import itertools
from dataclasses import dataclass

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Priority
from summitd.core.iq import ACCOUNT, SERVER
from summitd.core.jid import InvalidJID, parse_jid, jid_or_none
from summitd.extensions.base import Extension
from summitd.plugins import blocking_store as store

NAME = "blocking"
NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_REPORTING = "urn:xmpp:reporting:1"
NS_SID = "urn:xmpp:sid:0"

#: Bounds on what one report may store (longer texts are cut, extra stanza-ids ignored).
MAX_REPORT_STANZA_IDS = 20
MAX_REPORT_ATTRIBUTE = 256


@dataclass(frozen=True)
class BlockingConfig:
    max_items: int = 1000          # items per blocklist
    max_report_text: int = 2000    # characters of a report's text kept


def parse_config(raw, path):
    """[extensions.blocking]: ``max_items`` (>= 1) and ``max_report_text`` (>= 0)."""
    minimum = {"max_items": 1, "max_report_text": 0}
    errors, values = [], {}
    for key, value in raw.items():
        if key not in minimum:
            errors.append((f"{path}.{key}", "unknown option"))
        elif isinstance(value, bool) or not isinstance(value, int) or value < minimum[key]:
            errors.append((f"{path}.{key}", f"must be an integer >= {minimum[key]}"))
        else:
            values[key] = value
    if errors:
        raise ConfigError(errors)
    return BlockingConfig(**values)


def build(context, config):
    return Blocking(context, config or BlockingConfig())


# -- matching ------------------------------------------------------------------------

def match_keys(jid):
    """The blocklist entries that would match ``jid`` (XEP-0191 §6), most specific first."""
    host, user, resource = jid.host, jid.user, jid.resource
    keys = []
    if user is not None:
        bare = f"{user}@{host}"
        if resource is not None:
            keys.append(f"{bare}/{resource}")
        keys.append(bare)
    if resource is not None:
        keys.append(f"{host}/{resource}")
    keys.append(host)
    return keys


def matches(items, jid):
    """Whether a blocklist (a set of normalised JID texts) covers ``jid``."""
    return any(key in items for key in match_keys(jid))


def _is_reply(stanza):
    """Errors and IQ results: never answered, and they answer stanzas already judged."""
    type = stanza.getAttribute("type")
    return type == "error" or (stanza.name == "iq" and type == "result")


def _sender(stanza):
    return jid_or_none(stanza.getAttribute("from"))


def _blocked_error():
    return StanzaError("not-acceptable", type="cancel",
                       app_condition=domish.Element((NS_BLOCKING_ERRORS, "blocked")))


class _SessionState:
    """Per session: whether it asked for the blocklist (it gets pushes), and which
    addresses have its available presence ({bare JID text: set of JIDs})."""

    __slots__ = ("wants_pushes", "presence_to")

    def __init__(self):
        self.wants_pushes = False
        self.presence_to = {}


def _state(session):
    state = session.data.get(NAME)
    if state is None:
        state = session.data[NAME] = _SessionState()
    return state


def _items(command):
    """The normalised JID texts of a command's items, in order, without duplicates
    (bad-request for an item without a valid 'jid')."""
    jids = {}
    for item in command.elements():
        if item.uri != NS_BLOCKING or item.name != "item":
            continue
        text = item.getAttribute("jid")
        if not text:
            raise StanzaError("bad-request", "an item needs a 'jid'")
        try:
            jid = parse_jid(text).full()
        except InvalidJID:
            raise StanzaError("bad-request", "an item's 'jid' is not a valid JID") from None
        jids.setdefault(jid, item)
    return jids


def _bounded(text, limit):
    return text if text is not None and len(text) <= limit else None


def _report(item, jid, max_text):
    """The XEP-0377 report inside a block item, or None (absent or unusable)."""
    report = next((c for c in item.elements() if c.uri == NS_REPORTING and c.name == "report"), None)
    if report is None:
        return None
    reason = _bounded(report.getAttribute("reason"), MAX_REPORT_ATTRIBUTE)
    if not reason:
        return None
    text, stanza_ids = None, []
    for child in report.elements():
        if child.uri == NS_REPORTING and child.name == "text" and text is None:
            text = str(child).strip()[:max_text] or None
        elif child.uri == NS_SID and child.name == "stanza-id" and len(stanza_ids) < MAX_REPORT_STANZA_IDS:
            stanza_id = _bounded(child.getAttribute("id"), MAX_REPORT_ATTRIBUTE)
            if stanza_id:
                stanza_ids.append((stanza_id, _bounded(child.getAttribute("by"), MAX_REPORT_ATTRIBUTE)))
    return store.Report(jid, reason, text, tuple(stanza_ids))


class Blocking(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self._lists = {}        # (user, host) -> frozenset of normalised JID texts
        self._push_ids = itertools.count(1)
        context.iq("get", ACCOUNT, NS_BLOCKING, "blocklist", self._get)
        context.iq("set", ACCOUNT, NS_BLOCKING, "block", self._block)
        context.iq("set", ACCOUNT, NS_BLOCKING, "unblock", self._unblock)
        for target in (SERVER, ACCOUNT):
            context.add_feature(NS_BLOCKING, target)
            context.add_feature(NS_REPORTING, target)
        context.hook(events.STANZA_FROM_CLIENT, self._from_client, Priority.SECURITY)
        context.hook(events.STANZA_TO_ACCOUNT, self._to_account, Priority.SECURITY)
        context.hook(events.STANZA_TO_REMOTE, self._to_remote, Priority.SECURITY)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)

    @defer.inlineCallbacks
    def start(self):
        yield self.context.migrate(store.COMPONENT, store.MIGRATIONS)
        self._lists = yield self.context.database.runInteraction("blocking: load blocklists", store.load_all)

    # -- the checks (hot path) ---------------------------------------------------------

    def blocks(self, owner, other):
        """Whether the account of ``owner`` blocked ``other`` (both JIDs)."""
        items = self._lists.get((owner.user, owner.host))
        if not items:
            return False
        if other.host == owner.host and other.user == owner.user:
            return False        # one's own resources
        if other.user is None and other.host in self.context.domains:
            return False        # the server itself
        return matches(items, other)

    def _is_account(self, jid):
        return jid.user is not None and jid.host in self.context.domains

    def _from_client(self, session, stanza):
        to = stanza.getAttribute("to")
        if to is None or (session.jid.user, session.jid.host) not in self._lists:
            return None
        try:
            to_jid = parse_jid(to)
        except InvalidJID:
            return None         # the router answers jid-malformed
        if not self.blocks(session.jid, to_jid):
            return None
        if not _is_reply(stanza):
            session.send(_blocked_error().reply_to(stanza))
        return True

    def _to_account(self, stanza, to_jid):
        if not self._lists and stanza.name != "presence":
            return None         # nobody blocks anyone; only presence needs tracking
        sender = _sender(stanza)
        if sender is None:
            return None
        if self.blocks(to_jid, sender):
            if stanza.name != "presence" and not _is_reply(stanza):
                self.context.route(StanzaError("service-unavailable").reply_to(stanza))
            return True
        return self._outbound(stanza, sender, to_jid)

    def _to_remote(self, stanza, to_jid):
        if not self._lists and stanza.name != "presence":
            return None
        sender = _sender(stanza)
        return None if sender is None else self._outbound(stanza, sender, to_jid)

    def _outbound(self, stanza, sender, to_jid):
        """What the server routes for a local sender: dropped when the sender blocked the
        recipient; presence let through is tracked for the unavailable-on-block rule."""
        if not self._is_account(sender):
            return None
        if not _is_reply(stanza) and self.blocks(sender, to_jid):
            return True
        if stanza.name == "presence" and sender.resource is not None:
            self._track_presence(stanza, sender, to_jid)
        return None

    def _track_presence(self, stanza, sender, to_jid):
        type = stanza.getAttribute("type")
        if type not in (None, "unavailable") or (sender.user, sender.host) == (to_jid.user, to_jid.host):
            return
        session = self.context.session(sender)
        if session is None:
            return
        recipients = _state(session).presence_to
        bare = to_jid.bare.full()
        if type is None:
            recipients.setdefault(bare, set()).add(to_jid)
        elif to_jid.resource is None:
            recipients.pop(bare, None)
        else:
            group = recipients.get(bare)
            if group is not None:
                group.discard(to_jid)
                if not group:
                    del recipients[bare]

    # -- the protocol ----------------------------------------------------------------

    def _owner(self, iq, to_jid):
        """The requesting full JID; only the account's own resources manage its blocklist
        (RFC 6121 §2.1.5's rule for rosters, applied here)."""
        sender = _sender(iq)
        if sender is None or sender.bare != to_jid.bare:
            raise StanzaError("forbidden")
        return sender

    def _get(self, iq, to_jid):
        sender = self._owner(iq, to_jid)
        session = self.context.session(sender)
        if session is not None:
            _state(session).wants_pushes = True
        return self._command("blocklist", sorted(self._lists.get((to_jid.user, to_jid.host), ())))

    def _block(self, iq, to_jid):
        self._owner(iq, to_jid)
        command = next(iq.elements())
        items = _items(command)
        if not items:
            raise StanzaError("bad-request", "block needs at least one item")
        key = (to_jid.user, to_jid.host)
        current = self._lists.get(key, frozenset())
        if len(current.union(items)) > self.config.max_items:
            raise StanzaError("policy-violation", f"a blocklist holds at most {self.config.max_items} items")
        reports = [r for r in (_report(item, jid, self.config.max_report_text) for jid, item in items.items())
                   if r is not None]
        d = self._write("blocking: block", store.block, to_jid, list(items), reports, self._now())
        d.addCallback(lambda _: self._blocked(to_jid, list(items), reports))
        return d

    def _unblock(self, iq, to_jid):
        self._owner(iq, to_jid)
        items = list(_items(next(iq.elements())))
        d = self._write("blocking: unblock", store.unblock, to_jid, items or None)
        d.addCallback(lambda _: self._unblocked(to_jid, items))
        return d

    def _write(self, description, fn, user, *args):
        """A change of the user's rows, tracked so stream management acknowledges the
        command only once it is on disk."""
        return self.context.track_write(
            self.context.database.runInteraction(description, fn, user.host, user.user, *args))

    def _blocked(self, user, jids, reports):
        key = (user.user, user.host)
        current = self._lists.get(key, frozenset())
        added = tuple(j for j in jids if j not in current)
        self._withdraw_presence(user, frozenset(added))
        self._lists[key] = current.union(jids)
        for report in reports:
            self.context.log.info("{reporter} reported {reported} ({reason}, {count} stanza-ids)",
                                  reporter=user.full(), reported=report.reported_jid,
                                  reason=report.reason, count=len(report.stanza_ids))
        self._push(user, "block", jids)
        if added:
            self.context.notify(events.BLOCKLIST_CHANGED, user, added, ())
        return None

    def _unblocked(self, user, jids):
        key = (user.user, user.host)
        current = self._lists.get(key, frozenset())
        removed = current.intersection(jids) if jids else current
        remaining = current.difference(removed)
        if remaining:
            self._lists[key] = remaining
        else:
            self._lists.pop(key, None)
        self._push(user, "unblock", jids)
        if removed:
            self.context.notify(events.BLOCKLIST_CHANGED, user, (), tuple(sorted(removed)))
        return None

    def _withdraw_presence(self, user, added):
        """XEP-0191 §3.3: unavailable presence to newly blocked addresses that have the
        available presence of one of the user's resources (sent before the cache
        changes, so it is not dropped as outbound to a blocked address)."""
        if not added:
            return
        for session in self.context.sessions(user):
            state = session.data.get(NAME)
            if state is None:
                continue
            targets = [jid for group in state.presence_to.values() for jid in group if matches(added, jid)]
            for jid in targets:
                presence = domish.Element((None, "presence"))
                presence["from"] = session.jid.full()
                presence["to"] = jid.full()
                presence["type"] = "unavailable"
                self.context.route(presence)

    def _push(self, user, name, jids):
        """§3.3/§3.4: the change to every resource that asked for the blocklist."""
        for session in self.context.sessions(user):
            state = session.data.get(NAME)
            if state is None or not state.wants_pushes:
                continue
            push = domish.Element((None, "iq"))
            push["type"] = "set"
            push["id"] = f"block-push-{next(self._push_ids)}"
            push["to"] = session.jid.full()
            push.addChild(self._command(name, jids))
            session.send(push)

    @staticmethod
    def _command(name, jids):
        command = domish.Element((NS_BLOCKING, name))
        for jid in jids:
            command.addElement("item")["jid"] = jid
        return command

    def _now(self):
        moment = datetime.datetime.fromtimestamp(self.context.clock.seconds(), datetime.timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- accounts ----------------------------------------------------------------------

    def _account_deleting(self, jid, txn):
        store.delete_user(txn, jid.host, jid.user)
        # Runs on the database thread in production; one dict operation is atomic.
        self._lists.pop((jid.user, jid.host), None)
