"""RFC 6121 Appendix A, one test per row: every subscription state × every subscription
stanza, outbound (A.2, the user sends it) and inbound (A.3, the contact sends it).

The tables below are copied from the RFC's layout (existing state | route or deliver |
new state [| auto-reply]) and checked against the running server: alice (local, online,
interested) and a contact at a remote domain, whose side is what the server routes out
(there is no s2s yet: routed stanzas are captured). Each test puts alice's row into the
state, lets the stanza pass, and checks what was routed or delivered, the new state (read
back from storage) and the roster push (sent exactly when the state changed).
"""

from summitd.plugins.presence_states import state_of
from summitd.test.test_roster import REMOTE, IMTestCase, add_tests, drain, presences, pushes

ALICE = "alice@localhost"
SAME = "no state change"
PRE_APPROVAL = "pre-approval"

# A.2.1 - A.2.4 (Tables 2 - 5): EXISTING STATE | ROUTE? | NEW STATE
OUTBOUND = {
    "subscribe": """
        None                  | MUST  | None + Pending Out
        None + Pending Out    | MUST  | no state change
        None + Pending In     | MUST  | None + Pending Out+In
        None + Pending Out+In | MUST  | no state change
        To                    | MUST  | no state change
        To + Pending In       | MUST  | no state change
        From                  | MUST  | From + Pending Out
        From + Pending Out    | MUST  | no state change
        Both                  | MUST  | no state change""",
    "unsubscribe": """
        None                  | MUST  | no state change
        None + Pending Out    | MUST  | None
        None + Pending In     | MUST  | no state change
        None + Pending Out+In | MUST  | None + Pending In
        To                    | MUST  | None
        To + Pending In       | MUST  | None + Pending In
        From                  | MUST  | no state change
        From + Pending Out    | MUST  | From
        Both                  | MUST  | From""",
    "subscribed": """
        None                  | M.N.  | pre-approval
        None + Pending Out    | M.N.  | pre-approval
        None + Pending In     | MUST  | From
        None + Pending Out+In | MUST  | From + Pending Out
        To                    | M.N.  | pre-approval
        To + Pending In       | MUST  | Both
        From                  | M.N.  | no state change
        From + Pending Out    | M.N.  | no state change
        Both                  | M.N.  | no state change""",
    "unsubscribed": """
        None                  | S.N.  | no state change
        None + Pending Out    | S.N.  | no state change
        None + Pending In     | MUST  | None
        None + Pending Out+In | MUST  | None + Pending Out
        To                    | S.N.  | no state change
        To + Pending In       | MUST  | To
        From                  | MUST  | None
        From + Pending Out    | MUST  | None + Pending Out
        Both                  | MUST  | To""",
}

# A.3.1 - A.3.4 (Tables 6 - 9): EXISTING STATE | DELIVER? | NEW STATE | AUTO-REPLY (notes)
INBOUND = {
    "subscribe": """
        None                  | MUST  | None + Pending In     | -
        None + Pending Out    | MUST  | None + Pending Out+In | -
        None + Pending In     | S.N.  | no state change       | -
        None + Pending Out+In | S.N.  | no state change       | -
        To                    | MUST  | To + Pending In       | -
        To + Pending In       | S.N.  | no state change       | -
        From                  | S.N.  | no state change       | subscribed
        From + Pending Out    | S.N.  | no state change       | subscribed
        Both                  | S.N.  | no state change       | subscribed""",
    "unsubscribe": """
        None                  | S.N.  | no state change       | -
        None + Pending Out    | S.N.  | no state change       | -
        None + Pending In     | MUST  | None                  | unsubscribed
        None + Pending Out+In | MUST  | None + Pending Out    | unsubscribed
        To                    | S.N.  | no state change       | -
        To + Pending In       | MUST  | To                    | unsubscribed
        From                  | MUST  | None                  | unsubscribed
        From + Pending Out    | MUST  | None + Pending Out    | unsubscribed
        Both                  | MUST  | To                    | unsubscribed""",
    "subscribed": """
        None                  | S.N.  | no state change       | -
        None + Pending Out    | MUST  | To                    | -
        None + Pending In     | S.N.  | no state change       | -
        None + Pending Out+In | MUST  | To + Pending In       | -
        To                    | S.N.  | no state change       | -
        To + Pending In       | S.N.  | no state change       | -
        From                  | S.N.  | no state change       | -
        From + Pending Out    | MUST  | Both                  | -
        Both                  | S.N.  | no state change       | -""",
    "unsubscribed": """
        None                  | S.N.  | no state change       | -
        None + Pending Out    | MUST  | None                  | -
        None + Pending In     | S.N.  | no state change       | -
        None + Pending Out+In | MUST  | None + Pending In     | -
        To                    | MUST  | None                  | -
        To + Pending In       | MUST  | None + Pending In     | -
        From                  | S.N.  | no state change       | -
        From + Pending Out    | MUST  | From                  | -
        Both                  | MUST  | From                  | -""",
}

SECTIONS = {("outbound", t): f"A.2.{i}" for i, t in enumerate(OUTBOUND, 1)}
SECTIONS.update({("inbound", t): f"A.3.{i}" for i, t in enumerate(INBOUND, 1)})


def parse_table(direction, type, text):
    """Rows of an RFC table as (direction, type, state, passes on?, new state, reply)."""
    rows = []
    for line in text.strip().splitlines():
        cells = [c.strip() for c in line.split("|")]
        state, verdict, new = cells[:3]
        reply = cells[3] if len(cells) > 3 and cells[3] != "-" else None
        rows.append((direction, type, state, verdict == "MUST", new, reply))
    return rows


ROWS = [row for type, table in OUTBOUND.items() for row in parse_table("outbound", type, table)]
ROWS += [row for type, table in INBOUND.items() for row in parse_table("inbound", type, table)]


def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").replace("__", "_").replace("__", "_")


class AppendixATests(IMTestCase):
    """One test per row of Tables 2 to 9."""

    def setUp(self):
        super().setUp()
        self.alice = self.client("alice")

    def run_row(self, direction, type, state, passes, new, reply):
        self.set_state(ALICE, REMOTE, state)
        before = self.item(ALICE, REMOTE)
        drain(self.alice)
        del self.remote[:]
        if direction == "outbound":
            self.alice.send(f"<presence to='{REMOTE}' type='{type}' id='out'/>")
        else:
            self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='{type}' id='in'/>")
        got = drain(self.alice)
        after = self.item(ALICE, REMOTE)
        expected = state if new in (SAME, PRE_APPROVAL) else new
        self.assertEqual(state_of(after), expected)
        self.assertEqual(after.approved, new == PRE_APPROVAL)
        routed = self.remote_presence(type)
        if direction == "outbound":
            self.assertEqual(len(routed), 1 if passes else 0)
            for stanza in routed:
                self.assertEqual((stanza["from"], stanza["to"], stanza["id"]), (ALICE, REMOTE, "out"))
        else:
            self.assertEqual(len(presences(got, type)), 1 if passes else 0)
            replies = [s["type"] for s in self.remote if s.getAttribute("type") in OUTBOUND]
            self.assertEqual(replies, [reply] if reply else [])
        self.assertPushes(got, before, after)

    def assertPushes(self, got, before, after):
        """One push exactly when the item changed, showing the new state."""
        found = pushes(got)
        if before.visible() == after.visible():
            self.assertEqual(found, [])
            return
        [(version, item)] = found
        self.assertTrue(version)
        self.assertEqual((item["jid"], item["subscription"], item.getAttribute("ask"),
                          item.getAttribute("approved")),
                         (REMOTE, after.subscription, "subscribe" if after.ask else None,
                          "true" if after.approved else None))


def _row_test(row):
    direction, type, state, passes, new, reply = row
    section = SECTIONS[(direction, type)]
    verb = ("routes" if direction == "outbound" else "delivers") if passes else "keeps"
    doc = f"{section}: {direction} {type} in '{state}' {verb} it; {new}" + (f"; auto-reply {reply}" if reply else "")
    name = f"test_{section.replace('.', '_')}_{direction}_{type}_in_{_slug(state)}"

    def test(self):
        self.run_row(*row)

    return name, doc + ".", test


add_tests(AppendixATests, ROWS, _row_test)


class SideEffectTests(IMTestCase):
    """What goes with some rows: unavailable before a cancellation, presence after an
    approval, pre-approvals used and cancelled, rows that are no roster item."""

    def setUp(self):
        super().setUp()
        self.alice = self.client("alice", presence="<presence><show>away</show></presence>")

    def routed(self):
        return [(s.getAttribute("type"), s["from"]) for s in self.remote if s.name == "presence"]

    def test_cancel_sends_unavailable_first(self):
        """§3.2.2: cancelling the contact's subscription sends unavailable from each available
        resource before the "unsubscribed"."""
        self.set_state(ALICE, REMOTE, "Both")
        self.alice.send(f"<presence to='{REMOTE}' type='unsubscribed'/>")
        self.assertEqual(self.routed(), [("unavailable", "alice@localhost/res"), ("unsubscribed", ALICE)])

    def test_approval_sends_current_presence(self):
        """§3.1.5: after approving, the contact gets each available resource's presence."""
        self.set_state(ALICE, REMOTE, "None + Pending In")
        self.alice.send(f"<presence to='{REMOTE}' type='subscribed'/>")
        self.assertEqual(self.routed(), [("subscribed", ALICE), (None, "alice@localhost/res")])
        self.assertEqual(str(self.remote[1].firstChildElement()), "away")

    def test_inbound_unsubscribe_sends_unavailable(self):
        """§3.3.3 rule 3: when the contact unsubscribes, it gets unavailable from each
        available resource (and the auto-reply of A.3.2 note 1)."""
        self.set_state(ALICE, REMOTE, "From")
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='unsubscribe'/>")
        self.assertEqual(self.routed(), [("unavailable", "alice@localhost/res"), ("unsubscribed", ALICE)])

    def test_auto_reply_subscribed_sends_presence(self):
        """A.3.1 note 2: a subscriber asking again is answered "subscribed" and gets presence."""
        self.set_state(ALICE, REMOTE, "Both")
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='subscribe'/>")
        self.assertEqual(self.routed(), [("subscribed", ALICE), (None, "alice@localhost/res")])
        self.assertEqual(presences(drain(self.alice), "subscribe"), [])

    def test_pre_approved_request_answered(self):
        """§3.4: a pre-approved request is not delivered; it is answered "subscribed", the
        state becomes From and the flag is used up."""
        self.alice.send(f"<presence to='{REMOTE}' type='subscribed'/>")
        self.assertEqual(self.remote, [])
        self.assertTrue(self.item(ALICE, REMOTE).approved)
        drain(self.alice)
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='subscribe'/>")
        got = drain(self.alice)
        self.assertEqual(presences(got, "subscribe"), [])
        self.assertEqual(self.routed(), [("subscribed", ALICE), (None, "alice@localhost/res")])
        item = self.item(ALICE, REMOTE)
        self.assertEqual((state_of(item), item.approved, item.listed), ("From", False, True))

    def test_pre_approval_in_pending_out_and_to(self):
        """§3.4.2: pre-approval in None + Pending Out and To leads to From + Pending Out and Both."""
        for state, result in (("None + Pending Out", "From + Pending Out"), ("To", "Both")):
            self.set_state(ALICE, REMOTE, state, approved=True)
            self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='subscribe'/>")
            self.assertEqual(self.state(ALICE, REMOTE), result)

    def test_pre_approval_cancelled(self):
        """A.2.4 note 1: "unsubscribed" in None/To with a pre-approval removes it, unrouted."""
        self.set_state(ALICE, REMOTE, "To", approved=True)
        self.alice.send(f"<presence to='{REMOTE}' type='unsubscribed'/>")
        self.assertFalse(self.item(ALICE, REMOTE).approved)
        self.assertEqual(self.remote, [])
        [(_, item)] = pushes(drain(self.alice))
        self.assertIsNone(item.getAttribute("approved"))

    def test_probe_unsubscribed_keeps_pre_approval(self):
        """§4.3.2 rule 1: an "unsubscribed" answer to a probe does not cancel a pre-approval."""
        self.set_state(ALICE, REMOTE, "None", approved=True)
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='unsubscribed'/>")
        self.assertTrue(self.item(ALICE, REMOTE).approved)

    def test_request_from_stranger_is_no_item(self):
        """A.1 state 3: a request from someone not on the roster is recorded, not added."""
        self.inject(f"<presence from='{REMOTE}/laptop' to='{ALICE}/res' type='subscribe'/>")
        item = self.item(ALICE, REMOTE)
        self.assertEqual((state_of(item), item.listed), ("None + Pending In", False))
        got = drain(self.alice)
        self.assertEqual(pushes(got), [])
        [request] = presences(got, "subscribe")
        self.assertEqual((request["from"], request["to"]), (REMOTE, ALICE))

    def test_approving_stranger_adds_item(self):
        """Approving a stranger's request puts it on the roster with subscription from."""
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='subscribe'/>")
        drain(self.alice)
        self.alice.send(f"<presence to='{REMOTE}' type='subscribed'/>")
        [(_, item)] = pushes(drain(self.alice))
        self.assertEqual((item["jid"], item["subscription"]), (REMOTE, "from"))
        self.assertTrue(self.item(ALICE, REMOTE).listed)

    def test_denying_stranger_leaves_no_trace(self):
        """Denying a stranger's request removes the record and pushes nothing (§3.2.1)."""
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='subscribe'/>")
        drain(self.alice)
        self.alice.send(f"<presence to='{REMOTE}' type='unsubscribed'/>")
        self.assertEqual(pushes(drain(self.alice)), [])
        self.assertIsNone(self.item(ALICE, REMOTE))
        self.assertEqual(self.remote_presence("unsubscribed")[0]["to"], REMOTE)

    def test_stranger_withdraws_request(self):
        """§3.3.3: an unsubscribe from a stranger with a pending request removes the record."""
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='subscribe'/>")
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='unsubscribe'/>")
        self.assertIsNone(self.item(ALICE, REMOTE))
