"""MIX and MUC over the same channel (XEP-0408, summitd.plugins.channels.coexistence): messages,
subject and membership cross between coven@conference.localhost and coven@mix.localhost."""

from twisted.trial import unittest

from summitd.test.test_mix import CHANNEL, CORE, MixCase, messages, mix_of
from summitd.test.test_muc import ROOM, USER, bodies, codes, drain, error_of

TOPIC_NODE = "urn:summitd:mix:nodes:topic"


class CoexistenceCase(MixCase):
    """alice created the channel through MIX and joined it (nick hecate); bob is in the MUC
    room as 'bob'."""

    extensions = MixCase.extensions + ("muc",)

    def setUp(self):
        super().setUp()
        self.alice, self.bob = self.client("alice"), self.client("bob")
        self.create(self.alice)
        self.join(self.alice, "hecate", nodes=("urn:xmpp:mix:nodes:messages", "urn:xmpp:mix:nodes:presence",
                                               TOPIC_NODE))
        self.entered = self.enter(self.bob, "bob", ROOM)
        drain(self.alice)


class MessageTests(CoexistenceCase, unittest.TestCase):
    def test_muc_to_mix(self):
        """A MUC occupant's message reaches the MIX participant with <mix/> and the same
        archive id the MUC side sees as stanza-id."""
        self.bob.send(f"<message to='{ROOM}' type='groupchat' id='b1'><body>from MUC</body></message>")
        reflected = [e for e in drain(self.bob) if e.name == "message"][0]
        room_id = next(reflected.elements("urn:xmpp:sid:0", "stanza-id"))["id"]
        received = messages(drain(self.alice))[0]
        self.assertEqual(bodies([received]), ["from MUC"])
        self.assertEqual(mix_of(received), ("bob", "bob@localhost"))
        self.assertEqual(received["id"], room_id)

    def test_mix_to_muc(self):
        """A MIX participant's message reaches MUC occupants from room/nick."""
        self.say(self.alice, "from MIX")
        self.bob.expect(f"<message from='{ROOM}/hecate' type='groupchat'><body>from MIX</body></message>")

    def test_history_has_both(self):
        """MUC history (from the one archive) holds messages sent through either face."""
        self.say(self.alice, "one")
        self.bob.send(f"<message to='{ROOM}' type='groupchat'><body>two</body></message>")
        history = self.enter(self.client("carol"), "carol", ROOM)
        self.assertEqual(bodies(history), ["one", "two"])

    def test_private_messages_cross(self):
        """A MUC private message to the MIX participant's nick reaches it from a proxy JID;
        its answer to that proxy JID reaches the occupant from room/nick."""
        self.bob.send(f"<message to='{ROOM}/hecate' type='chat'><body>psst</body></message>")
        received = self.alice.next()
        self.assertIn("#" + CHANNEL, received["from"])
        self.assertEqual(mix_of(received)[0], "bob")
        proxy = received["from"].partition("/")[0]
        self.alice.send(f"<message to='{proxy}' type='chat'><body>yes?</body></message>")
        self.bob.expect(f"<message from='{ROOM}/hecate' type='chat'><body>yes?</body><x xmlns='{USER}'/></message>")


class MembershipTests(CoexistenceCase, unittest.TestCase):
    def test_mix_participant_is_an_occupant(self):
        """The MUC occupant saw the MIX participant among the occupants on entering."""
        self.assertIn(f"{ROOM}/hecate", [e["from"] for e in self.entered if e.name == "presence"])

    def test_mix_join_leave_and_nick_show_in_muc(self):
        """A MIX join shows as an occupant entering, setnick as a nick change (303), leaving as
        leaving."""
        carol = self.client("carol")
        self.join(carol, "graymalkin")
        self.assertEqual(self.bob.next()["from"], f"{ROOM}/graymalkin")
        self.iq(carol, f"<setnick xmlns='{CORE}'><nick>tabby</nick></setnick>")
        renamed = drain(self.bob)
        self.assertEqual(codes(renamed[0]), {303})
        self.assertEqual(renamed[1]["from"], f"{ROOM}/tabby")
        self.leave(carol)
        gone = self.bob.next()
        self.assertEqual((gone["from"], gone["type"]), (f"{ROOM}/tabby", "unavailable"))

    def test_muc_occupants_show_in_mix_presence(self):
        """A MUC occupant entering, changing status and leaving is presence for MIX presence
        subscribers, with the occupant's nick."""
        carol = self.client("carol")
        self.enter(carol, "graymalkin", ROOM)
        presence = [e for e in drain(self.alice) if e.name == "presence"][0]
        self.assertIn("#" + CHANNEL, presence["from"])
        self.assertIn("<nick>graymalkin</nick>", presence.toXml())
        carol.send(f"<presence to='{ROOM}/graymalkin' type='unavailable'/>")
        gone = [e for e in drain(self.alice) if e.name == "presence"][0]
        self.assertEqual(gone["type"], "unavailable")

    def test_one_nick_namespace(self):
        """A MUC occupant may not take a MIX participant's nick (conflict), nor the reverse."""
        self.assertEqual(error_of(self.enter(self.client("carol"), "Hecate", ROOM)[0]), "conflict")
        self.assertEqual(error_of(self.join(self.client("dave"), "bob")), "conflict")

    def test_ban_through_muc_ends_mix_participation(self):
        """The owner bans the MIX participant through MUC: it leaves the MUC view (301) and
        can no longer write through MIX."""
        carol = self.client("carol")
        self.join(carol, "graymalkin")
        drain(self.bob)
        self.enter(self.alice, "hecate", ROOM)
        self.alice.send(f"<iq type='set' id='ban' to='{ROOM}'><query xmlns='http://jabber.org/protocol/muc#admin'>"
                        "<item affiliation='outcast' jid='carol@localhost'/></query></iq>")
        banned = [e for e in drain(self.bob) if e.name == "presence" and e["from"] == f"{ROOM}/graymalkin"]
        self.assertEqual([(e["type"], codes(e)) for e in banned], [("unavailable", {301})])
        drain(carol)
        self.say(carol, "let me in")
        self.assertEqual(error_of(carol.next()), "forbidden")


class SubjectTests(CoexistenceCase, unittest.TestCase):
    def test_muc_subject_is_the_mix_topic(self):
        """The MUC subject set by a moderator is published on the MIX topic node."""
        self.enter(self.alice, "hecate", ROOM)
        drain(self.bob)
        self.alice.send(f"<message to='{ROOM}' type='groupchat'><subject>Spells</subject></message>")
        events = [e for e in drain(self.alice) if e.name == "message" and e.getAttribute("type") == "headline"]
        self.assertIn(">Spells</topic>", events[0].toXml())

    def test_mix_topic_is_the_muc_subject(self):
        """A topic set through MIX is the MUC subject."""
        self.alice.send(f"<message to='{CHANNEL}' type='groupchat'><subject>Brewing</subject></message>")
        self.bob.expect(f"<message from='{ROOM}/hecate' type='groupchat'><subject>Brewing</subject></message>")


class DiscoTests(CoexistenceCase, unittest.TestCase):
    def test_mirror_forms(self):
        """Each service names its mirror on the other face (XEP-0408 §2)."""
        mix = self.iq(self.bob, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", "mix.localhost")
        self.assertIn("urn:xmpp:mix:muc:0#muc-mirror", mix.toXml())
        self.assertIn("<value>conference.localhost</value>", mix.toXml())
        muc = self.iq(self.bob, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get",
                      "conference.localhost")
        self.assertIn("<value>mix.localhost</value>", muc.toXml())

    def test_muc_room_is_a_mix_channel(self):
        """A room created through MUC can be joined through MIX."""
        self.enter(self.bob, "bob", "brew@conference.localhost")
        self.configure(self.bob, "brew@conference.localhost")
        reply = self.join(self.client("carol"), "graymalkin", channel="brew@mix.localhost")
        self.assertIsNone(error_of(reply))
