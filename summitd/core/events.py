"""The core's events: every hook an extension can attach to, with what its handlers get.

``run`` events stop at the first handler that returns non-None; ``notify``
events reach every handler; ``collect`` events gather lists.
"""

from summitd.core.hooks import Event

# -- stanzas (run) ---------------------------------------------------------------
STANZA_FROM_CLIENT = Event(
    "stanza-from-client",
    "(session, stanza): a stanza a bound client sent, 'from' already stamped, before routing. "
    "Return non-None to take it (rate limits, blocking, stream management counting ...).")
STANZA_TO_SERVER = Event(
    "stanza-to-server",
    "(stanza, to_jid): a message or presence addressed to a local domain itself (IQs go to the IQ table).")
STANZA_TO_ACCOUNT = Event(
    "stanza-to-account",
    "(stanza, to_jid): any stanza for a local account (bare or full JID), before the "
    "per-kind events below and the IQ table. Blocking and privacy checks take it here.")
MESSAGE_TO_ACCOUNT = Event(
    "message-to-account",
    "(stanza, to_jid): a message for a local account (bare or full JID). The core's own delivery "
    "runs in the DELIVER band; archive, carbons and offline storage hook in above or beside it.")
PRESENCE_TO_ACCOUNT = Event(
    "presence-to-account",
    "(stanza, to_jid): a presence stanza for a local account (bare or full JID).")
PRESENCE_BROADCAST = Event(
    "presence-broadcast",
    "(session, stanza, initial): a client's presence without 'to' (RFC 6121 §4.2, §4.4), after "
    "the core recorded the session's availability and priority; initial is True for the first "
    "available presence of the session (or the first after an unavailable one).")
IQ_TO_FULL_JID = Event(
    "iq-to-full-jid",
    "(stanza, to_jid): an IQ for a local full JID; the core delivers it to that session.")
STANZA_TO_REMOTE = Event(
    "stanza-to-remote",
    "(stanza, to_jid): a stanza for a domain this server does not host (s2s takes it).")

LOCAL_SERVICE = Event(
    "local-service",
    "(domain): True when this server serves ``domain`` although it is not a hosted domain (an "
    "external component, XEP-0114): federation then accepts peers' stanzas for it and lets it "
    "send to peers.")

# -- sessions (notify) -------------------------------------------------------------
SESSION_BOUND = Event("session-bound", "(session): a client bound a resource.")
SESSION_CLOSED = Event(
    "session-closed", "(session): a bound session ended, cleanly or not; it is already unrouted.")
SESSION_INTERRUPTED = Event(
    "session-interrupted",
    "(stream, session): the connection of a bound session broke without a clean close (or the "
    "server timed it out). Return non-None to keep the session routed (stream management "
    "hibernates it until it is resumed or expires); otherwise the session ends.")
ACCOUNT_CREATED = Event("account-created", "(jid): a local account was created.")
ACCOUNT_DELETED = Event(
    "account-deleted",
    "(jid): an account was deleted (after the commit, on the reactor thread): drop in-memory state "
    "here, not in ACCOUNT_DELETING, whose handlers run on the database thread.")
ACCOUNT_DELETING = Event(
    "account-deleting",
    "(jid, txn): an account is being deleted; delete your rows for it in this transaction. Runs "
    "on the database thread: touch nothing but txn here (memory: ACCOUNT_DELETED).")

# -- the server (notify) -------------------------------------------------------------
SERVER_STARTED = Event(
    "server-started", "(): every enabled extension is loaded (recover what a crash left behind).")
SERVER_STOPPING = Event(
    "server-stopping",
    "(): shutdown began; sessions are still connected (flush acknowledgements now).")

# -- collectors (collect) ----------------------------------------------------------
STREAM_FEATURES = Event(
    "stream-features",
    "(stream): elements to offer in <stream:features/>; stream.state tells the phase "
    "('authenticated' before binding, 'bound' never, ...).")
SERVER_DISCO_FEATURES = Event("server-disco-features", "(host): feature namespaces of the server.")
SERVER_DISCO_IDENTITIES = Event(
    "server-disco-identities", "(host): (category, type, name) tuples of the server.")
ACCOUNT_DISCO_FEATURES = Event("account-disco-features", "(jid): feature namespaces of an account.")
ACCOUNT_DISCO_IDENTITIES = Event(
    "account-disco-identities",
    "(jid): (category, type, name) tuples of an account besides account/registered (PEP adds "
    "pubsub/pep, XEP-0163 §6.1).")
SERVER_DISCO_ITEMS = Event(
    "server-disco-items", "(host): (jid, node, name) tuples of the services a domain hosts.")
SERVER_DISCO_FORMS = Event(
    "server-disco-forms",
    "(host): XEP-0128 extended information of the server: jabber:x:data forms of type 'result' "
    "with a hidden FORM_TYPE field (domish Elements, a new one per call).")
ACCOUNT_DISCO_ITEMS = Event(
    "account-disco-items",
    "(jid, requester): (jid, node, name) tuples of the items of an account; asked only for "
    "requesters allowed to see the account (its owner, its presence subscribers).")

# -- service discovery nodes (run) ---------------------------------------------------
DISCO_INFO_NODE = Event(
    "disco-info-node",
    "(to_jid, node, requester): disco#info of a node of a domain (to_jid.user is None) or of an "
    "account (a bare JID the requester may see): return (identities, features, forms) shaped as "
    "in the collectors above, or None when the node is not yours (item-not-found if nobody's).")
DISCO_ITEMS_NODE = Event(
    "disco-items-node",
    "(to_jid, node, requester): disco#items of a node: a list of (jid, node, name) tuples, or None "
    "when the node is not yours.")

# -- blocking (notify) ---------------------------------------------------------------
BLOCKLIST_CHANGED = Event(
    "blocklist-changed",
    "(jid, blocked, unblocked): the blocklist (XEP-0191) of the account ``jid`` changed; "
    "``blocked`` and ``unblocked`` are tuples of the JIDs added and removed. The presence "
    "extension sends current presence to unblocked contacts allowed to see it (XEP-0191 §3.4).")
