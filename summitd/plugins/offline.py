"""Offline messages (XEP-0160) with delay stamps (XEP-0203).

The "delivery" extension decides, by RFC 6121 §8.5, when a message finds no
resource to take it and offers it here through ``IOfflineStorage``; this
extension decides whether it is worth keeping and keeps it durably. Which
messages are kept (XEP-0160 §3, XEP-0334):

* normal and chat messages with some content: not those carrying only chat
  states (XEP-0085), hints, a thread or stanza ids;
* never errors (XEP-0334 says to ignore hints in them), groupchat or headline,
  except that a <store/> hint makes a headline worth keeping;
* never anything with a <no-store/> hint.

A message declined here is bounced or dropped by delivery as the RFC says. Each
user may have ``max_messages_per_user`` messages waiting; beyond that the sender
gets service-unavailable with a text saying the mailbox is full (XEP-0160 §2).

Messages are delivered, oldest first and each with a <delay/> from the domain,
to the first session that becomes available with a non-negative priority
(initial presence, or a priority raised from negative), never to a
negative-priority one, and deleted only once handed to that session. Delay
notations in our domain's name are removed from what clients send (XEP-0203 §5),
so a message that comes back to storage with ours keeps its first stamp.
Retrieval by XEP-0013 is not offered.
"""

import time
from dataclasses import dataclass

from twisted.internet import defer
from zope.interface import implementer

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hints import NO_STORE, STORE, hints, NS_HINTS
from summitd.core.hooks import Priority
from summitd.core.xmlstream import parse_element
from summitd.core.xmlwriter import STANZA_NAMESPACES, serialize
from summitd.extensions.base import Extension
from summitd.plugins.delivery import IOfflineStorage
from summitd.plugins.offline_store import MailboxFull, OfflineStore, delete_user_rows

NS_DELAY = "urn:xmpp:delay"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
NS_SID = "urn:xmpp:sid:0"
FEATURE = "msgoffline"      # XEP-0160 §4

#: Children that are no content of their own: a message of only these is not kept.
TRANSIENT_NAMESPACES = frozenset({NS_CHATSTATES, NS_HINTS, NS_SID})

#: Messages read and sent per database round trip when delivering.
BATCH_SIZE = 100

MAILBOX_FULL = "the recipient's offline message storage is full"


@dataclass(frozen=True)
class OfflineConfig:
    max_messages_per_user: int = 1000


def parse_config(raw, path):
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key != "max_messages_per_user"]
    limit = raw.get("max_messages_per_user", OfflineConfig.max_messages_per_user)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1_000_000:
        errors.append((f"{path}.max_messages_per_user",
                       f"must be an integer from 1 to 1000000 (got {limit!r})"))
    if errors:
        raise ConfigError(errors)
    return OfflineConfig(max_messages_per_user=limit)


def worth_storing(stanza):
    """XEP-0160 §3 and XEP-0334: whether a message refused by every resource is kept."""
    type = stanza.getAttribute("type", "normal")
    if type == "error":
        return False
    found = hints(stanza)
    if NO_STORE in found:
        return False
    if STORE in found:
        return True
    if type in ("groupchat", "headline"):
        return False
    return any(not _transient(child) for child in stanza.elements())


def _transient(child):
    return child.uri in TRANSIENT_NAMESPACES or (child.name == "thread" and child.uri in STANZA_NAMESPACES)


def delay_stamp(stored_ms):
    """A XEP-0082 DateTime in UTC, with milliseconds when there are any."""
    seconds, millis = divmod(int(stored_ms), 1000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


@implementer(IOfflineStorage)
class OfflineMessages(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        self.config = config or OfflineConfig()
        self.table = OfflineStore(context.database)
        self._delivering = set()    # (user, host) whose messages are being delivered now
        context.provide(IOfflineStorage, self)
        context.add_feature(FEATURE)
        context.hook(events.STANZA_FROM_CLIENT, self.strip_forged_delays, Priority.STAMP)
        context.hook(events.PRESENCE_BROADCAST, self.presence, Priority.DEFAULT + 100)
        context.hook(events.ACCOUNT_DELETING, self.account_deleting, Priority.DEFAULT)
        context.hook(events.ACCOUNT_CREATED, self.account_created, Priority.DEFAULT)

    def start(self):
        return self.table.setup()

    # -- storing (IOfflineStorage) ------------------------------------------------------

    def accepts(self, stanza):
        return worth_storing(stanza)

    def store(self, stanza, to_jid):
        stored_ms = int(self.context.clock.seconds() * 1000)
        d = self.table.add(to_jid.host, to_jid.user, serialize(stanza), stored_ms,
                           self.config.max_messages_per_user)
        d.addErrback(self._full, to_jid)
        return d

    def _full(self, failure, to_jid):
        failure.trap(MailboxFull)
        self.context.log.info("offline storage of {jid} is full", jid=to_jid.userhost())
        raise StanzaError("service-unavailable", MAILBOX_FULL)

    # -- delivering ---------------------------------------------------------------------

    def presence(self, session, stanza, initial):
        """Deliver when the session becomes available with a non-negative priority."""
        receiving = session.available and session.priority >= 0
        was_receiving = not initial and session.data.get(self.context.name, False)
        session.data[self.context.name] = receiving
        if receiving and not was_receiving:
            self.deliver(session)
        return None     # the presence goes on to everyone else

    def _can_receive(self, session):
        return (self.context.session(session.jid) is session
                and session.available and session.priority >= 0)

    def _receiver(self, session):
        """``session`` if it can still take messages, else another resource that can, or None."""
        if self._can_receive(session):
            return session
        return next((s for s in self.context.sessions(session.jid) if self._can_receive(s)), None)

    @defer.inlineCallbacks
    def deliver(self, session):
        """Send the stored messages to ``session`` in order, deleting what was handed over.
        Should it go away meanwhile, another receiving resource gets the rest, or they wait."""
        jid = session.jid
        key = (jid.user, jid.host)
        if key in self._delivering:
            return      # another resource is receiving them right now
        self._delivering.add(key)
        delivered = 0
        try:
            while True:
                if delivered:
                    # The batch just sent is deleted by the next take(): first let the
                    # writes it caused (the stream management spool) become durable.
                    yield self.context.write_barrier()
                rows = yield self.table.take(jid.host, jid.user, delivered, BATCH_SIZE)
                session = self._receiver(session)
                if not rows or session is None:
                    break
                for seq, stored_ms, stanza_xml in rows:
                    self._send_stored(session, stanza_xml, stored_ms)
                    delivered = seq
        except Exception:
            self.context.log.failure("offline: delivering to {jid} failed", jid=jid.full())
        finally:
            self._delivering.discard(key)

    def _send_stored(self, session, stanza_xml, stored_ms):
        try:
            stanza = parse_element(stanza_xml)
        except Exception:
            self.context.log.failure("offline: a stored message for {jid} is unreadable; dropped",
                                     jid=session.jid.userhost())
            return
        if not any(_delay_from(c, self.context.domains) for c in stanza.elements()):
            # (One is there already when a message we delivered before comes back, e.g. from
            # stream management's redelivery: it keeps its first stamp.)
            delay = stanza.addElement((NS_DELAY, "delay"), content="Offline Storage")
            delay["from"] = session.jid.host
            delay["stamp"] = delay_stamp(stored_ms)
        session.send(stanza)

    def strip_forged_delays(self, session, stanza):
        """XEP-0203 §5: a client cannot send a delay notation in our domain's name, so the
        ones this server adds can be trusted."""
        if stanza.name == "message":
            domains = self.context.domains
            if any(_delay_from(c, domains) for c in stanza.elements()):
                stanza.children = [c for c in stanza.children if not _delay_from(c, domains)]
        return None

    # -- accounts -----------------------------------------------------------------------

    def account_deleting(self, jid, txn):
        delete_user_rows(txn, jid.host, jid.user)

    def account_created(self, jid):
        """A message whose account lookup ran just before that account was deleted can be
        inserted after the deletion; such rows go when the name is taken again, so a new
        owner never reads them. (The database runs work in order: nothing stored for the
        new account can precede this.)"""
        d = self.table.delete_user(jid.host, jid.user)
        d.addErrback(lambda failure: self.context.log.failure(
            "offline: clearing {jid} failed", failure, jid=jid.userhost()))


def _delay_from(child, domains):
    """Whether ``child`` (an element or text) is a delay notation from one of ``domains``."""
    return getattr(child, "uri", None) == NS_DELAY and child.getAttribute("from") in domains


def build(context, config):
    return OfflineMessages(context, config)
