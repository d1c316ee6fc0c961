"""The presence subscription state machine of RFC 6121 Appendix A, as pure functions.

The nine states (A.1) and the tables of A.2 (outbound subscription stanzas: route or not,
new state) and A.3 (inbound: deliver or not, new state, auto-reply) are written out below
row by row, so each can be checked against the RFC by eye. Pre-approval (§3.4) adds
two rules: an outbound "subscribed" in None, None + Pending Out or To sets the
'approved' flag (an outbound "unsubscribed" there clears it), and an inbound "subscribe"
meeting that flag is answered "subscribed" at once (A.3.1 note 1, §3.4.2).

An inbound "subscribe" is kept (the complete stanza) for as long as it is pending, so it
can be delivered again at every login until it is answered (§3.1.3 rule 4); a repeated
request while one is pending changes nothing, so the first one is what is kept.

The functions take and return ``RosterItem`` rows (None: no row) and never touch storage:
the roster store applies them inside a transaction.
"""

from dataclasses import dataclass, replace

from summitd.plugins.roster_store import RosterItem

NONE = "None"
NONE_OUT = "None + Pending Out"
NONE_IN = "None + Pending In"
NONE_OUT_IN = "None + Pending Out+In"
TO = "To"
TO_IN = "To + Pending In"
FROM = "From"
FROM_OUT = "From + Pending Out"
BOTH = "Both"

#: state -> (subscription attribute, pending out ('ask'), pending in)
FIELDS = {
    NONE: ("none", False, False),
    NONE_OUT: ("none", True, False),
    NONE_IN: ("none", False, True),
    NONE_OUT_IN: ("none", True, True),
    TO: ("to", False, False),
    TO_IN: ("to", False, True),
    FROM: ("from", False, False),
    FROM_OUT: ("from", True, False),
    BOTH: ("both", False, False),
}
STATES = tuple(FIELDS)
_BY_FIELDS = {fields: state for state, fields in FIELDS.items()}

SUBSCRIPTION_TYPES = ("subscribe", "subscribed", "unsubscribe", "unsubscribed")

SAME = "no state change"
PRE_APPROVE = "pre-approval"                    # A.2.3 note 1 / §3.4.2 rules 3, 4
CANCEL_PRE_APPROVAL = "cancel pre-approval"     # A.2.4 note 1 / §3.2.2 rule 2

# -- A.2: outbound (the user sent it): state -> (route?, new state) ------------------------

OUTBOUND = {
    "subscribe": {                      # Table 2
        NONE: (True, NONE_OUT),
        NONE_OUT: (True, SAME),
        NONE_IN: (True, NONE_OUT_IN),
        NONE_OUT_IN: (True, SAME),
        TO: (True, SAME),
        TO_IN: (True, SAME),
        FROM: (True, FROM_OUT),
        FROM_OUT: (True, SAME),
        BOTH: (True, SAME),
    },
    "unsubscribe": {                    # Table 3
        NONE: (True, SAME),
        NONE_OUT: (True, NONE),
        NONE_IN: (True, SAME),
        NONE_OUT_IN: (True, NONE_IN),
        TO: (True, NONE),
        TO_IN: (True, NONE_IN),
        FROM: (True, SAME),
        FROM_OUT: (True, FROM),
        BOTH: (True, FROM),
    },
    "subscribed": {                     # Table 4
        NONE: (False, PRE_APPROVE),
        NONE_OUT: (False, PRE_APPROVE),
        NONE_IN: (True, FROM),
        NONE_OUT_IN: (True, FROM_OUT),
        TO: (False, PRE_APPROVE),
        TO_IN: (True, BOTH),
        FROM: (False, SAME),
        FROM_OUT: (False, SAME),
        BOTH: (False, SAME),
    },
    "unsubscribed": {                   # Table 5
        NONE: (False, CANCEL_PRE_APPROVAL),
        NONE_OUT: (False, CANCEL_PRE_APPROVAL),
        NONE_IN: (True, NONE),
        NONE_OUT_IN: (True, NONE_OUT),
        TO: (False, CANCEL_PRE_APPROVAL),
        TO_IN: (True, TO),
        FROM: (True, NONE),
        FROM_OUT: (True, NONE_OUT),
        BOTH: (True, TO),
    },
}

# -- A.3: inbound (the contact sent it): state -> (deliver?, new state, auto-reply type) ------

INBOUND = {
    "subscribe": {                      # Table 6
        NONE: (True, NONE_IN, None),
        NONE_OUT: (True, NONE_OUT_IN, None),
        NONE_IN: (False, SAME, None),
        NONE_OUT_IN: (False, SAME, None),
        TO: (True, TO_IN, None),
        TO_IN: (False, SAME, None),
        FROM: (False, SAME, "subscribed"),
        FROM_OUT: (False, SAME, "subscribed"),
        BOTH: (False, SAME, "subscribed"),
    },
    "unsubscribe": {                    # Table 7
        NONE: (False, SAME, None),
        NONE_OUT: (False, SAME, None),
        NONE_IN: (True, NONE, "unsubscribed"),
        NONE_OUT_IN: (True, NONE_OUT, "unsubscribed"),
        TO: (False, SAME, None),
        TO_IN: (True, TO, "unsubscribed"),
        FROM: (True, NONE, "unsubscribed"),
        FROM_OUT: (True, NONE_OUT, "unsubscribed"),
        BOTH: (True, TO, "unsubscribed"),
    },
    "subscribed": {                     # Table 8
        NONE: (False, SAME, None),
        NONE_OUT: (True, TO, None),
        NONE_IN: (False, SAME, None),
        NONE_OUT_IN: (True, TO_IN, None),
        TO: (False, SAME, None),
        TO_IN: (False, SAME, None),
        FROM: (False, SAME, None),
        FROM_OUT: (True, BOTH, None),
        BOTH: (False, SAME, None),
    },
    "unsubscribed": {                   # Table 9
        NONE: (False, SAME, None),
        NONE_OUT: (True, NONE, None),
        NONE_IN: (False, SAME, None),
        NONE_OUT_IN: (True, NONE_IN, None),
        TO: (True, NONE, None),
        TO_IN: (True, NONE_IN, None),
        FROM: (False, SAME, None),
        FROM_OUT: (True, FROM, None),
        BOTH: (True, FROM, None),
    },
}

#: §3.4.2: where a pre-approved inbound "subscribe" takes the state (and it is answered).
_PRE_APPROVED = {NONE: FROM, NONE_OUT: FROM_OUT, TO: BOTH}


@dataclass(frozen=True)
class Outcome:
    """What a subscription stanza does: pass it on (route outbound / deliver inbound), the
    row afterwards, and the type of the presence to answer with on the user's behalf."""

    forward: bool
    after: RosterItem = None
    reply: str = None


def state_of(item):
    """The Appendix A state of a row (None: no row, i.e. "None")."""
    if item is None:
        return NONE
    return _BY_FIELDS[(item.subscription, item.ask, item.pending_in)]


def _enter(item, contact, state, listed):
    """``item`` moved to ``state``; a new row when there was none."""
    subscription, ask, pending_in = FIELDS[state]
    if item is None:
        item = RosterItem(contact, listed=listed)
    return replace(item, subscription=subscription, ask=ask, pending_in=pending_in,
                   listed=item.listed or listed,
                   approved=item.approved and subscription in ("none", "to") and not pending_in,
                   request=item.request if pending_in else None)


def outbound(type, item, contact):
    """A.2: the user sent a subscription stanza of ``type`` about ``contact`` (bare JID text)."""
    state = state_of(item)
    route, new = OUTBOUND[type][state]
    if new == SAME:
        return Outcome(route, item)
    if new == PRE_APPROVE:
        approved = item if item is not None else RosterItem(contact)
        return Outcome(route, replace(approved, approved=True, listed=True))
    if new == CANCEL_PRE_APPROVAL:
        return Outcome(route, replace(item, approved=False) if item is not None else None)
    # The user's own action puts the contact on the roster, unless it ends every relation
    # (denying a request from someone not on the roster leaves no trace).
    return Outcome(route, _enter(item, contact, new, listed=new != NONE))


def inbound(type, item, contact, request=None):
    """A.3: the contact sent a subscription stanza of ``type``; ``request`` is the XML of an
    inbound "subscribe", kept while it is pending (§3.1.3 rule 4)."""
    state = state_of(item)
    if type == "subscribe" and item is not None and item.approved and state in _PRE_APPROVED:
        return Outcome(False, _enter(item, contact, _PRE_APPROVED[state], listed=True), "subscribed")
    deliver, new, reply = INBOUND[type][state]
    if new == SAME:
        return Outcome(deliver, item, reply)
    after = _enter(item, contact, new, listed=False)
    if type == "subscribe":
        after = replace(after, request=request)
    return Outcome(deliver, after, reply)
