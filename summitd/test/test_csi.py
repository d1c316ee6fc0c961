"""Client State Indication (XEP-0352, summitd.plugins.csi) on a fake clock.

An inactive client is spared presence updates and chat states (the latest per
sender is kept and delivered later, in order); a message with a body, and
becoming active again, deliver them first. IQs always pass. Held stanzas are
not on the wire, so stream management neither counts nor queues them until they
are sent; a resumed stream starts active and gets what the broken one held.
"""

from twisted.trial import unittest

from summitd.plugins import csi
from summitd.test.test_stream_management import resume
from summitd.testing import FakeClient, add_user, make_server

NS_CSI = "urn:xmpp:csi:0"
NS_SM = "urn:xmpp:sm:3"
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"
PASSWORD = "csi-secret"
ALICE = "alice@localhost/a"
INACTIVE = f"<inactive xmlns='{NS_CSI}'/>"
ACTIVE = f"<active xmlns='{NS_CSI}'/>"


def presence(status):
    return f"<presence to='{ALICE}'><status>{status}</status></presence>"


def chat_state(state):
    return f"<message to='{ALICE}' type='chat'><{state} xmlns='{NS_CHATSTATES}'/></message>"


def chat(n):
    return f"<message to='{ALICE}' type='chat' id='m{n}'><body>{n}</body></message>"


class CSITestCase(unittest.TestCase):
    """alice/a is the client that goes inactive; bob and carol send to her."""

    def setUp(self):
        self.server = make_server(extensions=["csi", "stream_management"])
        for user in ("alice", "bob", "carol"):
            add_user(self.server, f"{user}@localhost", PASSWORD)
        self.alice = self.login("alice", "a")
        self.bob = self.login("bob", "b")
        self.carol = self.login("carol", "c")

    def login(self, user, resource):
        client = FakeClient(self.server)
        client.login(user, PASSWORD, resource)
        return client

    def expect_presence(self, sender, status):
        self.alice.expect(f"<presence from='{sender}'><status>{status}</status></presence>")

    def expect_chat_state(self, sender, state):
        self.alice.expect(f"<message from='{sender}'><{state} xmlns='{NS_CHATSTATES}'/></message>")


class IndicationTests(CSITestCase):
    def test_feature_after_authentication(self):
        """<csi/> is offered once the client has authenticated, not before."""
        client = FakeClient(self.server)
        self.assertNotIn(NS_CSI, [f.uri for f in client.open_stream().elements()])
        self.assertIs(client.authenticate("alice", PASSWORD), True)
        self.assertIn((NS_CSI, "csi"), [(f.uri, f.name) for f in client.open_stream().elements()])

    def test_inactive_holds_latest_per_sender(self):
        """While inactive, presence and chat-state-only messages wait; only the latest per
        sender and kind survives; <active/> delivers them in the order of those latest."""
        self.alice.send(INACTIVE)
        self.bob.send(presence("bob 1"))
        self.carol.send(presence("carol 1"))
        self.bob.send(chat_state("composing"))
        self.bob.send(chat_state("paused"))
        self.bob.send(presence("bob 2"))
        self.alice.expect_nothing()
        self.alice.send(ACTIVE)
        self.expect_presence("carol@localhost/c", "carol 1")
        self.expect_chat_state("bob@localhost/b", "paused")
        self.expect_presence("bob@localhost/b", "bob 2")
        self.alice.expect_nothing()
        self.bob.send(presence("bob 3"))        # active again: straight through
        self.expect_presence("bob@localhost/b", "bob 3")

    def test_message_with_body_flushes_first(self):
        """A message with a body is urgent: what was held goes first, then the message,
        in order; later presence is held again."""
        self.alice.send(INACTIVE)
        self.bob.send(chat_state("composing"))
        self.carol.send(presence("away"))
        self.bob.send(chat(1))
        self.expect_chat_state("bob@localhost/b", "composing")
        self.expect_presence("carol@localhost/c", "away")
        self.alice.expect("<message id='m1'><body>1</body></message>")
        self.carol.send(presence("back"))
        self.alice.expect_nothing()

    def test_iq_passes(self):
        """IQs are never held: the client has to answer them."""
        self.alice.send(INACTIVE)
        self.bob.send(presence("held"))
        self.bob.send(f"<iq type='get' id='q1' to='{ALICE}'><query xmlns='urn:example'/></iq>")
        self.alice.expect("<iq type='get' id='q1' from='bob@localhost/b'/>")
        self.alice.expect_nothing()

    def test_message_without_body_passes(self):
        """A message with content that is not only a chat state (a receipt) is not held,
        and does not flush what is."""
        self.alice.send(INACTIVE)
        self.carol.send(presence("held"))
        self.bob.send(f"<message to='{ALICE}' id='r1'><received xmlns='urn:xmpp:receipts' id='m0'/></message>")
        self.alice.expect("<message id='r1'/>")
        self.alice.expect_nothing()

    def test_active_when_active(self):
        """<active/> on an active stream, and <inactive/> twice, are harmless and unanswered."""
        self.alice.send(ACTIVE)
        self.alice.send(INACTIVE)
        self.alice.send(INACTIVE)
        self.bob.send(presence("held"))
        self.alice.expect_nothing()
        self.alice.send(ACTIVE)
        self.expect_presence("bob@localhost/b", "held")
        self.assertFalse(self.alice.disconnected)

    def test_too_many_senders_flush(self):
        """Past MAX_HELD distinct senders the hold is flushed rather than grow without bound."""
        self.patch(csi, "MAX_HELD", 1)
        self.alice.send(INACTIVE)
        self.bob.send(presence("bob"))
        self.alice.expect_nothing()
        self.carol.send(presence("carol"))
        self.expect_presence("bob@localhost/b", "bob")
        self.expect_presence("carol@localhost/c", "carol")


class StreamManagementTests(CSITestCase):
    """CSI with XEP-0198: what is held is not on the wire, so not counted."""

    def enable(self):
        self.alice.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        return self.alice.expect(f"<enabled xmlns='{NS_SM}'/>")["id"]

    def test_held_stanzas_not_counted(self):
        """Held presence is neither counted nor queued nor acknowledged-for; once flushed
        it is, with the server's <r/> after it."""
        self.enable()
        state = self.alice.stream.sm
        self.alice.send(INACTIVE)
        self.bob.send(presence("held"))
        self.assertEqual((state.sent_count, len(state.queue)), (0, 0))
        self.alice.expect_nothing()
        self.alice.send(ACTIVE)
        self.expect_presence("bob@localhost/b", "held")
        self.alice.expect(f"<r xmlns='{NS_SM}'/>")
        self.assertEqual((state.sent_count, len(state.queue)), (1, 1))
        self.alice.send(f"<a xmlns='{NS_SM}' h='1'/>")
        self.assertEqual(len(state.queue), 0)

    def test_resumed_stream_gets_held_stanzas(self):
        """XEP-0352 §5.2: a resumed stream is active. What was held before the connection
        broke, and while the session hibernated, arrives after the re-sent stanzas."""
        sm_id = self.enable()
        self.alice.send(INACTIVE)
        self.bob.send(chat(1))
        self.alice.expect("<message id='m1'/>")
        self.alice.expect(f"<r xmlns='{NS_SM}'/>")
        self.carol.send(presence("before"))
        self.alice.lose_connection()
        self.bob.send(presence("while away"))
        new = resume(self.server, "alice", PASSWORD, sm_id, 0)
        new.expect(f"<resumed xmlns='{NS_SM}' previd='{sm_id}'/>")
        new.expect("<message id='m1'/>")
        new.expect(f"<r xmlns='{NS_SM}'/>")
        new.expect("<presence from='carol@localhost/c'><status>before</status></presence>")
        new.expect("<presence from='bob@localhost/b'><status>while away</status></presence>")
        new.expect_nothing()
        self.assertEqual(new.stream.sm.sent_count, 3)
        self.bob.send(presence("now"))          # and the new stream is active
        new.expect("<presence from='bob@localhost/b'><status>now</status></presence>")
