"""The unread summary of Bind 2's <bound/>: per conversation, how many messages arrived
after the user last displayed it, and the stanza-id of the newest. Our own extension
(``urn:summitd:unread:0``); docs/unread-summary.md describes the XML.

What counts: chat and normal messages with a body that reach a local account from
someone else (``MESSAGE_TO_ACCOUNT`` after archiving, so they carry the archive's
XEP-0359 stanza-id). What reads them: a XEP-0333 <displayed/> marker any client of the
user sends to the conversation (the id names the message: its 'id', or its stanza-id),
and XEP-0490 Message Displayed Synchronization: when a PEP provider exists, the user's
``urn:xmpp:mds:displayed:0`` items are applied when the summary is made. Displaying a
message reads it and everything before it in that conversation.

Rows are kept per message, at most ``per_conversation`` per conversation (the count then
saturates), written in small batches off the hot path. Groupchat is not tracked (rooms
keep their own state).
"""

from twisted.internet import defer
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.hooks import Priority
from summitd.core.jid import InvalidJID, parse_jid
from summitd.extensions.context import MissingProvider

NS_UNREAD = "urn:summitd:unread:0"
NS_MARKERS = "urn:xmpp:chat-markers:0"
NS_SID = "urn:xmpp:sid:0"
NS_MDS = "urn:xmpp:mds:displayed:0"
BATCH = 200             # operations per transaction
BATCH_DELAY = 0.25      # seconds an operation may wait for others


def _stanza_id(stanza, by):
    for child in stanza.elements():
        if child.name == "stanza-id" and child.uri == NS_SID and child.getAttribute("by") == by:
            return child.getAttribute("id")
    return None


def _bare(text):
    try:
        return parse_jid(text).userhost() if text else None
    except InvalidJID:
        return None


def _record(txn, host, user, peer, received_ms, message_id, stanza_id, limit):
    key = (host, user, peer)
    if txn.execute("SELECT 1 FROM accounts WHERE host = ? AND username = ?", (host, user)).fetchone() is None:
        return      # batched writes run late: the account may be gone (or never existed)
    if stanza_id is not None and txn.execute(
            "SELECT 1 FROM sasl2_unread WHERE host = ? AND username = ? AND peer = ? AND stanza_id = ?",
            (*key, stanza_id)).fetchone() is not None:
        return      # routed again (stream management): counted already
    seq = txn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM sasl2_unread"
                      " WHERE host = ? AND username = ? AND peer = ?", key).fetchone()[0]
    txn.execute("INSERT INTO sasl2_unread (host, username, peer, seq, received_ms, message_id, stanza_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (*key, seq, received_ms, message_id, stanza_id))
    txn.execute("DELETE FROM sasl2_unread WHERE host = ? AND username = ? AND peer = ? AND seq <= ?",
                (*key, seq - limit))


def _displayed(txn, host, user, peer, marked_id):
    key = (host, user, peer)
    row = txn.execute("SELECT MAX(seq) FROM sasl2_unread WHERE host = ? AND username = ? AND peer = ?"
                      " AND (message_id = ? OR stanza_id = ?)", (*key, marked_id, marked_id)).fetchone()
    if row[0] is not None:
        txn.execute("DELETE FROM sasl2_unread WHERE host = ? AND username = ? AND peer = ? AND seq <= ?",
                    (*key, row[0]))


def _summary(txn, host, user, limit):
    """(peer, count, newest stanza-id) of the conversations with unread messages, the most
    recently active first, at most ``limit`` + 1 (to tell that there were more)."""
    return txn.execute(
        "SELECT u.peer, c.n, u.stanza_id FROM sasl2_unread u JOIN"
        " (SELECT peer, COUNT(*) AS n, MAX(seq) AS top FROM sasl2_unread"
        "  WHERE host = ? AND username = ? GROUP BY peer) c ON u.peer = c.peer AND u.seq = c.top"
        " WHERE u.host = ? AND u.username = ? ORDER BY u.received_ms DESC, u.peer LIMIT ?",
        (host, user, host, user, limit + 1)).fetchall()


class UnreadTracker:
    def __init__(self, context, per_conversation, conversations, pep_interface=None):
        self.context = context
        self.per_conversation = per_conversation
        self.conversations = conversations
        self.pep_interface = pep_interface
        self._pending = []
        self._timer = None
        context.hook(events.MESSAGE_TO_ACCOUNT, self.message_in, Priority.ARCHIVE - 10)
        context.hook(events.STANZA_FROM_CLIENT, self.marker_out, Priority.DEFAULT)
        context.hook(events.SERVER_STOPPING, self.flush)

    # -- what happens ----------------------------------------------------------------------

    def message_in(self, stanza, to_jid):
        if stanza.getAttribute("type", "normal") not in ("chat", "normal"):
            return None
        if not any(child.name == "body" for child in stanza.elements()):
            return None
        account = to_jid.userhost()
        peer = _bare(stanza.getAttribute("from"))
        if peer is None or peer == account:
            return None
        now_ms = int(self.context.clock.seconds() * 1000)
        self._queue(_record, to_jid.host, to_jid.user, peer, now_ms, stanza.getAttribute("id"),
                    _stanza_id(stanza, account), self.per_conversation)
        return None

    def marker_out(self, session, stanza):
        if stanza.name != "message" or stanza.getAttribute("type") == "groupchat":
            return None
        for child in stanza.elements():
            if child.name == "displayed" and child.uri == NS_MARKERS and child.getAttribute("id"):
                peer = _bare(stanza.getAttribute("to"))
                if peer is not None:
                    jid = session.jid
                    self._queue(_displayed, jid.host, jid.user, peer, child["id"])
                break
        return None

    # -- batching ------------------------------------------------------------------------------

    def _queue(self, operation, *args):
        self._pending.append((operation, args))
        if len(self._pending) >= BATCH:
            self.flush()
        elif self._timer is None:
            self._timer = self.context.call_later(BATCH_DELAY, self.flush)

    def flush(self):
        """Write what is queued in one transaction; fires when written."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        pending, self._pending = self._pending, []
        if not pending:
            return defer.succeed(None)

        def write(txn):
            for operation, args in pending:
                operation(txn, *args)

        d = self.context.database.runInteraction("sasl2: unread", write)
        d.addErrback(lambda f: self.context.log.failure("unread tracking lost {n} updates", f, n=len(pending)))
        return d

    # -- the summary -------------------------------------------------------------------------

    def summary(self, account):
        """Fire with the <unread/> element for ``account`` (a bare JID)."""
        d = self._apply_mds(account)
        d.addCallback(lambda _: self.flush())
        d.addCallback(lambda _: self.context.database.runInteraction(
            "sasl2: unread summary", _summary, account.host, account.user, self.conversations))
        d.addCallback(self._element, account.userhost())
        return d

    def _apply_mds(self, account):
        """XEP-0490: the user's displayed states from PEP count as markers."""
        if self.pep_interface is None:
            return defer.succeed(None)
        try:
            pep = self.context.need(self.pep_interface)
        except MissingProvider:
            return defer.succeed(None)
        d = pep.get_items(account.userhostJID(), NS_MDS)
        d.addCallback(self._mds_items, account)
        d.addErrback(lambda f: self.context.log.failure("reading MDS displayed states", f))
        return d

    def _mds_items(self, items, account):
        for peer, payload in items:
            if payload is None or _bare(peer) is None:
                continue
            stanza_id = _stanza_id(payload, peer) or _stanza_id(payload, account.userhost())
            if stanza_id is not None:
                self._queue(_displayed, account.host, account.user, _bare(peer), stanza_id)

    def _element(self, rows, account):
        unread = domish.Element((NS_UNREAD, "unread"))
        if len(rows) > self.conversations:
            rows = rows[:self.conversations]
            unread["complete"] = "false"
        for peer, count, stanza_id in rows:
            conversation = unread.addElement("conversation")
            conversation["jid"] = peer
            conversation["count"] = str(count)
            if stanza_id is not None:
                marker = conversation.addElement((NS_SID, "stanza-id"))
                marker["by"], marker["id"] = account, stanza_id
        return unread
