"""Tests for presence (RFC 6121 §3, §4): broadcast, probes, directed presence, presence on
disconnect, stored subscription requests, unknown accounts, and the rate limit.

The subscription state tables themselves are in test_presence_appendix_a.
"""

from summitd.test.test_roster import (
    REMOTE, IMTestCase, drain, error_condition, error_text, presences, pushes)
from summitd.testing import FakeClient, add_user

ALICE = "alice@localhost"
BOB = "bob@localhost"


def sources(elements, type=None):
    """The 'from' of each presence of ``type`` among ``elements``."""
    return [p["from"] for p in presences(elements, type)]


class BroadcastTests(IMTestCase):
    def subscribe_both(self, a, b):
        self.set_state(a, b, "Both")
        self.set_state(b, a, "Both")

    def test_initial_presence_to_subscribers_only(self):
        """§4.2.2: initial presence goes to contacts with subscription from/both, local and
        remote, not to contacts with subscription to or none."""
        bob = self.client("bob")
        carol = self.client("carol")
        self.set_state(ALICE, BOB, "From")
        self.set_state(ALICE, "carol@localhost", "To")
        self.set_state(ALICE, REMOTE, "Both")
        self.client("alice", presence="<presence><status>hi</status></presence>")
        [got] = presences(drain(bob))
        self.assertEqual((got["from"], got["to"], str(got.firstChildElement())), ("alice@localhost/res", BOB, "hi"))
        self.assertEqual(presences(drain(carol)), [])
        [remote] = self.remote_presence(None)
        self.assertEqual((remote["from"], remote["to"]), ("alice@localhost/res", REMOTE))

    def test_initial_presence_gathers_contacts(self):
        """§4.2.2, §4.3: the new resource gets its local contacts' presence (answered from
        their sessions, with their ids) and a probe goes to each remote contact."""
        self.set_state(BOB, ALICE, "From")
        bob = self.client("bob", "desk", presence="<presence id='p1'><show>dnd</show></presence>")
        self.set_state(ALICE, BOB, "To")
        self.set_state(ALICE, REMOTE, "Both")
        alice = self.client("alice", roster=False, available=False)
        alice.send("<presence/>")
        got = drain(alice)
        [from_bob] = [p for p in presences(got) if p["from"] == "bob@localhost/desk"]
        self.assertEqual((from_bob["to"], from_bob["id"]), ("alice@localhost/res", "p1"))
        [probe] = self.remote_presence("probe")
        self.assertEqual((probe["from"], probe["to"]), (ALICE, REMOTE))
        self.assertEqual(presences(drain(bob)), [])

    def test_local_contact_must_agree(self):
        """A local contact whose own roster does not share its presence is not answered for,
        whatever the user's roster says (§4.3.2 rule 1 applies to local contacts too)."""
        self.client("bob")
        self.set_state(ALICE, BOB, "To")
        alice = self.client("alice", roster=False, available=False)
        alice.send("<presence/>")
        self.assertEqual(sources(drain(alice)), ["alice@localhost/res"])

    def test_own_resources(self):
        """§4.2.2, §4.4.2: the account's available resources get each other's presence, the
        sender included; a connected resource without presence gets none."""
        phone = self.client("alice", "phone")
        idle = self.client("alice", "idle", available=False)
        laptop = self.client("alice", "laptop", roster=False, available=False)
        laptop.send("<presence><show>chat</show></presence>")
        got = drain(laptop)
        self.assertEqual(sorted(sources(got)), ["alice@localhost/laptop", "alice@localhost/phone"])
        self.assertEqual(sources(drain(phone)), ["alice@localhost/laptop"])
        self.assertEqual(presences(drain(idle)), [])

    def test_subsequent_and_unavailable(self):
        """§4.4.2, §4.5.2: later presence and unavailable (with its status) reach the
        subscribers; directed-only addressees get the unavailable but not the update."""
        bob = self.client("bob")
        carol = self.client("carol")
        self.subscribe_both(ALICE, BOB)
        alice = self.client("alice")
        alice.send("<presence to='carol@localhost'/>")
        drain(bob), drain(carol)
        alice.send("<presence><show>away</show></presence>")
        self.assertEqual(sources(drain(bob)), ["alice@localhost/res"])
        self.assertEqual(presences(drain(carol)), [])
        alice.send("<presence type='unavailable'><status>bye</status></presence>")
        [gone] = presences(drain(bob), "unavailable")
        self.assertEqual(str(gone.firstChildElement()), "bye")
        self.assertEqual(sources(drain(carol), "unavailable"), ["alice@localhost/res"])
        self.assertEqual(sources(drain(alice), "unavailable"), ["alice@localhost/res"])

    def test_unclean_disconnect(self):
        """§4.5.2: a connection lost without unavailable presence is announced as unavailable
        to subscribers, the other resources and directed-presence addressees."""
        bob = self.client("bob")
        other = self.client("alice", "other")
        self.subscribe_both(ALICE, BOB)
        alice = self.client("alice")
        alice.send("<presence to='room@conference.remote.example/alice'/>")
        drain(bob), drain(other)
        del self.remote[:]
        alice.lose_connection()
        self.assertEqual(sources(drain(bob), "unavailable"), ["alice@localhost/res"])
        self.assertEqual(sources(drain(other), "unavailable"), ["alice@localhost/res"])
        [room] = self.remote_presence("unavailable")
        self.assertEqual((room["from"], room["to"]), ("alice@localhost/res", "room@conference.remote.example/alice"))

    def test_unavailable_without_available(self):
        """A resource that never announced itself available takes nothing back: its
        unavailable presence reaches no subscriber."""
        bob = self.client("bob")
        self.subscribe_both(ALICE, BOB)
        alice = self.client("alice", available=False)
        alice.send("<presence type='unavailable'/>")
        self.assertEqual(sources(drain(alice), "unavailable"), ["alice@localhost/res"])
        self.assertEqual(presences(drain(bob), "unavailable"), [])

    def test_directed_presence_without_initial(self):
        """§4.6.3 rule 3: directed presence from a resource that is not available is still
        followed by unavailable when the session ends; subscribers hear nothing."""
        bob = self.client("bob")
        self.subscribe_both(ALICE, BOB)
        alice = self.client("alice", available=False)
        alice.send(f"<presence to='{REMOTE}/x'/>")
        alice.lose_connection()
        self.assertEqual(presences(drain(bob), "unavailable"), [])
        self.assertEqual([p["to"] for p in self.remote_presence("unavailable")], [f"{REMOTE}/x"])

    def test_directed_unavailable_forgets(self):
        """§4.6.1: directed unavailable removes the addressee; it gets nothing more later."""
        alice = self.client("alice")
        alice.send(f"<presence to='{REMOTE}'/>")
        alice.send(f"<presence to='{REMOTE}' type='unavailable'/>")
        del self.remote[:]
        alice.send("<presence type='unavailable'/>")
        self.assertEqual(self.remote, [])

    def test_subscriber_gets_one_unavailable(self):
        """A subscriber that also got directed presence gets a single unavailable."""
        bob = self.client("bob")
        self.subscribe_both(ALICE, BOB)
        alice = self.client("alice")
        alice.send("<presence to='bob@localhost/res'/>")
        drain(bob)
        alice.lose_connection()
        self.assertEqual(len(presences(drain(bob), "unavailable")), 1)

    def test_negative_priority_gets_presence(self):
        """§8.5.2.1.2: presence for a bare JID reaches every available resource, also one
        with a negative priority (only messages skip those)."""
        bob = self.client("bob", presence="<presence><priority>-5</priority></presence>")
        self.subscribe_both(ALICE, BOB)
        self.client("alice")
        self.assertEqual(sources(drain(bob)), ["alice@localhost/res"])

    def test_presence_errors_routed(self):
        """A presence of type error is routed like any other presence."""
        bob = self.client("bob")
        alice = self.client("alice")
        alice.send("<presence to='bob@localhost/res' type='error'><error type='cancel'>"
                   "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></presence>")
        [error] = presences(drain(bob), "error")
        self.assertEqual((error["from"], error_condition(error)), ("alice@localhost/res", "item-not-found"))



class DirectedLimitTests(IMTestCase):
    options = {"presence": {"max_directed": 2}}

    def test_directed_presence_limit(self):
        """Directed presence to more addresses than max_directed is refused with
        policy-violation and a text."""
        alice = self.client("alice")
        for i in range(3):
            alice.send(f"<presence to='u{i}@remote.example' id='d{i}'/>")
        error = self.assertStanzaError(drain(alice), "policy-violation", "d2")
        self.assertIn("at most 2", error_text(error))
        self.assertEqual(len(self.remote_presence(None)), 2)


class ProbeTests(IMTestCase):
    """Inbound probes (§4.3.2, §4.6.6), as a peer server would send them."""

    def test_subscriber_gets_full_presence(self):
        """A subscribed prober gets the last presence of each available resource, whole."""
        self.set_state(ALICE, REMOTE, "From")
        self.client("alice", "a", presence="<presence id='x1'><show>xa</show></presence>")
        self.client("alice", "b")
        del self.remote[:]
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='probe' id='pr'/>")
        answers = self.remote_presence(None)
        self.assertEqual(sorted(a["from"] for a in answers), ["alice@localhost/a", "alice@localhost/b"])
        first = [a for a in answers if a["from"] == "alice@localhost/a"][0]
        self.assertEqual((first["to"], first["id"], str(first.firstChildElement())), (REMOTE, "x1", "xa"))

    def test_full_jid_probe(self):
        """A probe to a full JID is answered for that resource only, as bare availability."""
        self.set_state(ALICE, REMOTE, "Both")
        self.client("alice", "a", presence="<presence><show>xa</show></presence>")
        self.client("alice", "b")
        del self.remote[:]
        self.inject(f"<presence from='{REMOTE}' to='alice@localhost/a' type='probe'/>")
        [answer] = self.remote_presence(None)
        self.assertEqual((answer["from"], answer.firstChildElement()), ("alice@localhost/a", None))

    def test_offline_contact(self):
        """§4.3.2 rule 3: no available resource: unavailable from the bare JID, the probe's id
        mirrored (§4.3.2.1)."""
        self.set_state(ALICE, REMOTE, "From")
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='probe' id='pr'/>")
        [answer] = self.remote_presence("unavailable")
        self.assertEqual((answer["from"], answer["to"], answer["id"]), (ALICE, REMOTE, "pr"))

    def test_unsubscribed_prober(self):
        """§4.3.2 rule 1: a prober without subscription (or probing an unknown account) gets
        "unsubscribed" from the bare JID and no presence."""
        self.set_state(ALICE, REMOTE, "To")
        self.client("alice")
        self.inject(f"<presence from='{REMOTE}/x' to='{ALICE}' type='probe' id='pr'/>")
        self.inject(f"<presence from='{REMOTE}' to='nobody@localhost' type='probe'/>")
        self.assertEqual([(a["from"], a["to"]) for a in self.remote_presence("unsubscribed")],
                         [(ALICE, REMOTE), ("nobody@localhost", REMOTE)])
        self.assertEqual(self.remote_presence(None), [])

    def test_directed_presence_prober(self):
        """§4.6.6: an entity that got directed presence from a session gets that session's
        bare availability, and nothing about other resources."""
        alice = self.client("alice", "a", presence="<presence><show>dnd</show></presence>")
        self.client("alice", "b")
        alice.send("<presence to='room@muc.remote.example/nick'/>")
        del self.remote[:]
        self.inject("<presence from='room@muc.remote.example/nick' to='alice@localhost/a' type='probe'/>")
        [answer] = self.remote_presence(None)
        self.assertEqual((answer["from"], answer["to"], answer.firstChildElement()),
                         ("alice@localhost/a", "room@muc.remote.example/nick", None))

    def test_client_probe_of_local_contact(self):
        """A probe a client sends to a local contact is answered like a server's (§4.3)."""
        self.set_state(BOB, ALICE, "From")
        self.client("bob", presence="<presence><show>away</show></presence>")
        alice = self.client("alice")
        alice.send("<presence to='bob@localhost' type='probe'/>")
        self.assertEqual(sources(drain(alice)), ["bob@localhost/res"])


class SubscriptionFlowTests(IMTestCase):
    """Whole subscription exchanges between local accounts and with unknown ones."""

    def test_mutual_subscription(self):
        """alice and bob subscribe to each other; each ends with Both and sees the other."""
        alice = self.client("alice")
        bob = self.client("bob")
        alice.send("<presence to='bob@localhost' type='subscribe'/>")
        self.assertEqual(presences(drain(bob), "subscribe")[0]["from"], ALICE)
        bob.send("<presence to='alice@localhost' type='subscribed'/>")
        bob.send("<presence to='alice@localhost' type='subscribe'/>")
        got = drain(alice)
        self.assertEqual(presences(got, "subscribed")[0]["from"], BOB)
        self.assertIn("bob@localhost/res", sources(got))
        alice.send("<presence to='bob@localhost' type='subscribed'/>")
        self.assertIn("alice@localhost/res", sources(drain(bob)))
        self.assertEqual((self.state(ALICE, BOB), self.state(BOB, ALICE)), ("Both", "Both"))

    def test_outbound_addresses_stamped_bare(self):
        """§3.1.2: the server stamps both addresses of a subscription stanza as bare JIDs."""
        alice = self.client("alice")
        alice.send(f"<presence to='{REMOTE}/laptop' type='subscribe' id='s'/>")
        [sent] = self.remote_presence("subscribe")
        self.assertEqual((sent["from"], sent["to"], sent["id"]), (ALICE, REMOTE, "s"))
        self.assertEqual(self.state(ALICE, REMOTE), "None + Pending Out")
        self.assertEqual(pushes(drain(alice))[0][1]["ask"], "subscribe")

    def test_request_to_offline_contact_delivered_at_login(self):
        """§3.1.3 rule 4: a request for an offline contact is kept whole and delivered at each
        available presence until answered; repeats are stored once."""
        self.client("bob", available=False).lose_connection()
        alice = self.client("alice")
        alice.send("<presence to='bob@localhost' type='subscribe'><status>it is me</status></presence>")
        alice.send("<presence to='bob@localhost' type='subscribe'><status>again</status></presence>")
        for _ in range(2):
            bob = self.client("bob", available=False)
            bob.send("<presence/>")
            [request] = presences(drain(bob), "subscribe")
            self.assertEqual((request["from"], str(request.firstChildElement())), (ALICE, "it is me"))
            bob.lose_connection()
        bob = self.client("bob", available=False)
        bob.send("<presence to='alice@localhost' type='subscribed'/>")
        bob.send("<presence type='unavailable'/>")
        bob.send("<presence/>")
        self.assertEqual(presences(drain(bob), "subscribe"), [])

    def test_huge_request_kept_without_payload(self):
        """A request too big to keep whole is kept (and delivered later) without its payload."""
        self.client("bob", available=False).lose_connection()
        alice = self.client("alice")
        status = "x" * 20000
        alice.send(f"<presence to='bob@localhost' type='subscribe' id='big'><status>{status}</status></presence>")
        bob = self.client("bob", available=False)
        bob.send("<presence/>")
        [request] = presences(drain(bob), "subscribe")
        self.assertEqual((request["from"], request["id"], request.firstChildElement()), (ALICE, "big", None))

    def test_request_to_unknown_account(self):
        """A request to an account that does not exist is answered "unsubscribed", and the
        requester's roster drops the pending state (§3.1.2, §4.3.2 rule 1)."""
        alice = self.client("alice")
        alice.send("<presence to='nobody@localhost' type='subscribe' id='s'/>")
        got = drain(alice)
        [answer] = presences(got, "unsubscribed")
        self.assertEqual(answer["from"], "nobody@localhost")
        self.assertEqual([i.getAttribute("ask") for _, i in pushes(got)], ["subscribe", None])
        self.assertEqual(self.state(ALICE, "nobody@localhost"), "None")
        self.assertEqual(self.rows("roster_items", "nobody@localhost"), 0)

    def test_other_types_to_unknown_account_ignored(self):
        """§8.5.1: subscribed, unsubscribe and unsubscribed for no account change nothing."""
        for type in ("subscribed", "unsubscribe", "unsubscribed"):
            self.inject(f"<presence from='{REMOTE}' to='nobody@localhost' type='{type}'/>")
        self.assertEqual(self.remote, [])
        self.assertEqual(self.rows("roster_items", "nobody@localhost"), 0)

    def test_subscribe_to_self(self):
        """A subscription stanza to one's own account is not-allowed, not stored."""
        alice = self.client("alice")
        alice.send("<presence to='alice@localhost' type='subscribe' id='me'/>")
        self.assertStanzaError(drain(alice), "not-allowed", "me")
        self.assertIsNone(self.item(ALICE, ALICE))

    def test_malformed_address(self):
        """A subscription stanza to something that is no JID is jid-malformed."""
        alice = self.client("alice")
        alice.send("<presence to='a@b@c' type='subscribe' id='bad'/>")
        self.assertStanzaError(drain(alice), "jid-malformed", "bad")

    def test_unknown_type(self):
        """§4.7.1: a presence type RFC 6121 does not define is bad-request."""
        alice = self.client("alice")
        alice.send("<presence type='available' id='t'/>")
        self.assertStanzaError(drain(alice), "bad-request", "t")
        self.inject(f"<presence from='{REMOTE}' to='{ALICE}' type='bogus' id='u'/>")
        [error] = self.remote_presence("error")
        self.assertEqual((error_condition(error), error["to"]), ("bad-request", REMOTE))

    def test_pre_approval_stream_feature(self):
        """§3.4: the pre-approval feature is offered after authentication."""
        add_user(self.server, "dave@localhost", "pw")
        client = FakeClient(self.server)
        client.open_stream()
        client.authenticate("dave", "pw")
        features = client.open_stream()
        self.assertIn(("urn:xmpp:features:pre-approval", "sub"), {(c.uri, c.name) for c in features.elements()})


class RateLimitTests(IMTestCase):
    """A per-session presence rate limit (RFC 6120 §13.12)."""

    options = {"presence": {"rate": 1, "burst": 3}}

    def test_flood_refused_with_reason(self):
        """Beyond the burst, presence gets policy-violation with a text saying why and goes
        nowhere; after waiting, presence passes again."""
        bob = self.client("bob")
        self.set_state(ALICE, BOB, "From")
        alice = self.client("alice", presence="<presence id='p0'/>")
        drain(bob)
        for i in range(1, 6):
            alice.send(f"<presence id='p{i}'><status>{i}</status></presence>")
        got = drain(alice)
        errors = [e for e in got if e.getAttribute("type") == "error"]
        self.assertEqual([e["id"] for e in errors], ["p3", "p4", "p5"])
        self.assertEqual({error_condition(e) for e in errors}, {"policy-violation"})
        self.assertIn("per second", error_text(errors[0]))
        self.assertEqual(len(presences(drain(bob))), 2)
        self.server.clock.advance(2)
        alice.send("<presence id='later'/>")
        self.assertEqual([e for e in drain(alice) if e.getAttribute("type") == "error"], [])
        self.assertEqual(len(presences(drain(bob))), 1)

    def test_flood_of_subscriptions(self):
        """Subscription requests count too; the refused ones are not stored or routed."""
        alice = self.client("alice", available=False)
        for i in range(5):
            alice.send(f"<presence to='u{i}@remote.example' type='subscribe'/>")
        self.assertEqual(len(self.remote_presence("subscribe")), 3)
        self.assertEqual(self.rows("roster_items", ALICE), 3)

    def test_unavailable_always_passes(self):
        """Going offline is never refused, so contacts never keep a stale presence."""
        bob = self.client("bob")
        self.set_state(ALICE, BOB, "From")
        alice = self.client("alice")
        for i in range(4):
            alice.send("<presence><show>away</show></presence>")
        drain(bob)
        alice.send("<presence type='unavailable'/>")
        self.assertEqual(sources(drain(bob), "unavailable"), ["alice@localhost/res"])


class UnblockTests(IMTestCase):
    """XEP-0191 §3.4 with the blocking extension: presence again after unblocking."""

    extensions = ("roster", "presence", "blocking")

    def blocking(self, client, command):
        client.send(f"<iq type='set' id='{command}'><{command} xmlns='urn:xmpp:blocking'>"
                    f"<item jid='bob@localhost'/></{command}></iq>")
        got = drain(client)
        self.assertResult(got, command)
        return got

    def test_unblocked_contact_gets_presence(self):
        """After alice unblocks bob (mutual subscription), bob gets alice's current presence
        and alice gets bob's again; a contact only alice subscribes to gets nothing."""
        self.set_state(ALICE, BOB, "Both")
        self.set_state(BOB, ALICE, "Both")
        self.set_state(ALICE, "carol@localhost", "To")
        bob = self.client("bob", presence="<presence><show>chat</show></presence>")
        carol = self.client("carol")
        alice = self.client("alice", presence="<presence><show>away</show></presence>")
        self.blocking(alice, "block")
        drain(bob)
        got = self.blocking(alice, "unblock")
        [to_bob] = presences(drain(bob))
        self.assertEqual((to_bob["from"], str(to_bob.firstChildElement())), ("alice@localhost/res", "away"))
        self.assertEqual(sources(got), ["bob@localhost/res"])
        self.assertEqual(presences(drain(carol)), [])
