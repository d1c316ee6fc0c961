"""MIX (summitd.plugins.channels.mix: XEP-0369, 0403, 0404, 0406, 0407) through a whole server,
with its users joining through MIX-PAM (XEP-0405): the service, joining and leaving with
every error, nicks, subscriptions, messages, presence, private messages, the nodes,
invitations, retraction and the channel's archive. ``MixCase`` is shared with the PAM and
coexistence tests."""

from twisted.trial import unittest

from summitd.test.test_muc import GroupchatCase, drain, error_of

CORE = "urn:xmpp:mix:core:1"
PAM = "urn:xmpp:mix:pam:2"
MISC = "urn:xmpp:mix:misc:0"
PUBSUB = "http://jabber.org/protocol/pubsub"
CHANNEL = "coven@mix.localhost"
NODES = "urn:xmpp:mix:nodes:"
MESSAGES, PARTICIPANTS, PRESENCE, INFO, CONFIG = (NODES + n for n in
                                                  ("messages", "participants", "presence", "info", "config"))


class MixCase(GroupchatCase):
    extensions = ("mam", "channels", "mix", "mix_pam", "roster")

    def iq(self, client, payload, type="set", to=CHANNEL, id="q"):
        """Send an IQ; returns its answer (what else arrived stays readable in ``self.seen``)."""
        client.send(f"<iq type='{type}' id='{id}' to='{to}'>{payload}</iq>")
        self.seen = drain(client)
        return [e for e in self.seen if e.name == "iq" and e.getAttribute("id") == id][-1]

    def create(self, client, name="coven", **fields):
        reply = self.iq(client, f"<create xmlns='{CORE}' channel='{name}'/>", to="mix.localhost")
        if fields:
            self.publish_form(client, CONFIG, "urn:xmpp:mix:admin:0", fields, f"{name}@mix.localhost")
        return reply

    def publish_form(self, client, node, form_type, fields, channel=CHANNEL):
        body = "".join(f"<field var='{var}'>" + "".join(f"<value>{v}</value>" for v in
                                                        (value if isinstance(value, list) else [value]))
                       + "</field>" for var, value in fields.items())
        return self.iq(client, f"<pubsub xmlns='{PUBSUB}'><publish node='{node}'><item><x xmlns='jabber:x:data' "
                               f"type='submit'><field var='FORM_TYPE'><value>{form_type}</value></field>{body}"
                               "</x></item></publish></pubsub>", to=channel)

    def join(self, client, nick="", nodes=(MESSAGES, PARTICIPANTS, PRESENCE), channel=CHANNEL, extra=""):
        """client-join through the user's own server (XEP-0405); returns the answer."""
        subscribe = "".join(f"<subscribe node='{n}'/>" for n in nodes)
        nick = f"<nick>{nick}</nick>" if nick else ""
        user = client.jid.partition("/")[0]
        return self.iq(client, f"<client-join xmlns='{PAM}' channel='{channel}'><join xmlns='{CORE}'>"
                               f"{subscribe}{nick}{extra}</join></client-join>", to=user, id="join")

    def leave(self, client, channel=CHANNEL):
        user = client.jid.partition("/")[0]
        return self.iq(client, f"<client-leave xmlns='{PAM}' channel='{channel}'><leave xmlns='{CORE}'/>"
                               "</client-leave>", to=user, id="leave")

    def say(self, client, body, to=CHANNEL, id="m"):
        client.send(f"<message to='{to}' type='groupchat' id='{id}'><body>{body}</body></message>")


def mix_of(message):
    """(nick, jid) of a MIX message's <mix/> element."""
    mix = next(message.elements(CORE, "mix"))
    texts = {c.name: str(c) for c in mix.elements()}
    return texts.get("nick"), texts.get("jid")


def messages(elements):
    return [e for e in elements if e.name == "message" and e.getAttribute("type") == "groupchat"]


class ServiceTests(MixCase, unittest.TestCase):
    def test_disco(self):
        """The service: identity conference/mix, the core feature and create-channel for local
        users; it lists public channels, not ad hoc ones."""
        alice = self.client("alice")
        info = self.iq(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", "mix.localhost")
        query = info.firstChildElement()
        self.assertEqual(query.firstChildElement()["type"], "mix")
        features = {f["var"] for f in query.elements() if f.name == "feature"}
        self.assertTrue({CORE, CORE + "#create-channel"} <= features)
        self.create(alice)
        self.iq(alice, f"<create xmlns='{CORE}'/>", to="mix.localhost", id="adhoc")
        items = self.iq(alice, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get", "mix.localhost")
        self.assertEqual([i["jid"] for i in items.firstChildElement().elements()], [CHANNEL])

    def test_create_and_conflict(self):
        """Creating answers with the name; the same name again: conflict; a name with '#':
        jid-malformed."""
        alice = self.client("alice")
        self.assertEqual(self.create(alice).firstChildElement()["channel"], "coven")
        self.assertEqual(error_of(self.create(self.client("bob"))), "conflict")
        self.assertEqual(error_of(self.create(alice, "a#b")), "jid-malformed")

    def test_ad_hoc_channel(self):
        """A create without a name gets a generated one."""
        reply = self.iq(self.client("alice"), f"<create xmlns='{CORE}'/>", to="mix.localhost")
        self.assertEqual(len(reply.firstChildElement()["channel"]), 12)

    def test_destroy(self):
        """Only an owner destroys (forbidden otherwise); an unknown channel: item-not-found."""
        alice, bob = self.client("alice"), self.client("bob")
        self.create(alice)
        destroy = f"<destroy xmlns='{CORE}' channel='coven'/>"
        self.assertEqual(error_of(self.iq(bob, destroy, to="mix.localhost")), "forbidden")
        self.assertEqual(self.iq(alice, destroy, to="mix.localhost")["type"], "result")
        self.assertEqual(error_of(self.iq(alice, destroy, to="mix.localhost")), "item-not-found")
        self.assertEqual(error_of(self.join(bob, "bob")), "item-not-found")


class RestrictedServiceTests(MixCase, unittest.TestCase):
    options = {"channels": {"creators": "admins"}}

    def test_create_forbidden(self):
        """Without the right to create: forbidden, and no create-channel feature."""
        alice = self.client("alice")
        self.assertEqual(error_of(self.create(alice)), "forbidden")
        info = self.iq(alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "get", "mix.localhost")
        self.assertNotIn(CORE + "#create-channel", {f.getAttribute("var") for f in info.firstChildElement().elements()})


class JoinTests(MixCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.alice, self.bob = self.client("alice"), self.client("bob")
        self.create(self.alice)
        self.join(self.alice, "hecate")

    def test_join_through_pam(self):
        """client-join: the answer wraps the channel's <join/> (stable id, proxy JID, nodes,
        nick); the channel is pushed into the roster; subscribers of the participants node
        hear of the newcomer."""
        reply = self.join(self.bob, "bob")
        join = next(reply.firstChildElement().elements(CORE, "join"))
        self.assertEqual(len(join["id"]), 16)
        self.assertEqual(join["jid"], f"{join['id']}#{CHANNEL}")
        self.assertEqual([s["node"] for s in join.elements(CORE, "subscribe")], [MESSAGES, PARTICIPANTS, PRESENCE])
        self.assertEqual(str(next(join.elements(CORE, "nick"))), "bob")
        event = [e for e in drain(self.alice) if e.name == "message"][0]
        item = event.firstChildElement().firstChildElement().firstChildElement()
        self.assertEqual(item["id"], join["id"])

    def test_nick_conflict(self):
        """A nick another participant holds: conflict, passed back through the user's server."""
        self.assertEqual(error_of(self.join(self.bob, "HECATE")), "conflict")

    def test_nick_required(self):
        """No nick where nicks are mandatory: not-acceptable."""
        self.assertEqual(error_of(self.join(self.bob)), "not-acceptable")

    def test_banned(self):
        """A JID on the banned node: forbidden."""
        self.iq(self.alice, f"<pubsub xmlns='{PUBSUB}'><publish node='{NODES}banned'>"
                            "<item id='bob@localhost'/></publish></pubsub>")
        self.assertEqual(error_of(self.join(self.bob, "bob")), "forbidden")

    def test_members_only(self):
        """A members-only channel: not-allowed until the JID is on the allowed node."""
        self.publish_form(self.alice, CONFIG, "urn:xmpp:mix:admin:0", {"mix#members_only": "1"})
        self.assertEqual(error_of(self.join(self.bob, "bob")), "not-allowed")
        self.iq(self.alice, f"<pubsub xmlns='{PUBSUB}'><publish node='{NODES}allowed'>"
                            "<item id='bob@localhost'/></publish></pubsub>")
        self.assertIsNone(error_of(self.join(self.bob, "bob")))

    def test_password(self):
        """With mix#password set: no or a wrong password is not-authorized; the right one joins."""
        self.publish_form(self.alice, CONFIG, "urn:xmpp:mix:admin:0", {"mix#password": "toad"})
        self.assertEqual(error_of(self.join(self.bob, "bob")), "not-authorized")
        wrong = "<password xmlns='urn:summitd:mix:password:0'>frog</password>"
        self.assertEqual(error_of(self.join(self.bob, "bob", extra=wrong)), "not-authorized")
        right = "<password xmlns='urn:summitd:mix:password:0'>toad</password>"
        self.assertIsNone(error_of(self.join(self.bob, "bob", extra=right)))

    def test_invitation(self):
        """XEP-0407: an admin asks for an invitation; it lets the invitee into a members-only
        channel; a forged token is forbidden, a participant may not invite."""
        self.publish_form(self.alice, CONFIG, "urn:xmpp:mix:admin:0", {"mix#members_only": "1"})
        reply = self.iq(self.alice, f"<invite xmlns='{MISC}'><invitee>bob@localhost</invitee></invite>", "get")
        invitation = reply.firstChildElement().firstChildElement()
        forged = invitation.toXml().replace(str(next(invitation.elements(MISC, "token"))), "0" * 24)
        self.assertEqual(error_of(self.join(self.bob, "bob", extra=forged)), "forbidden")
        self.assertIsNone(error_of(self.join(self.bob, "bob", extra=invitation.toXml())))
        asked = self.iq(self.bob, f"<invite xmlns='{MISC}'><invitee>carol@localhost</invitee></invite>", "get")
        self.assertEqual(error_of(asked), "forbidden")

    def test_leave(self):
        """client-leave: the channel leaves the roster, the participant item is retracted."""
        self.join(self.bob, "bob")
        self.iq(self.bob, "<query xmlns='jabber:iq:roster'/>", "get", to="bob@localhost")
        drain(self.alice)
        reply = self.leave(self.bob)
        self.assertEqual(reply.firstChildElement().name, "client-leave")
        push = [e for e in self.seen if e.name == "iq" and e.getAttribute("type") == "set"]
        self.assertEqual(push[0].firstChildElement().firstChildElement()["subscription"], "remove")
        retract = [e for e in drain(self.alice) if e.name == "message"][0]
        self.assertEqual(retract.firstChildElement().firstChildElement().firstChildElement().name, "retract")
        self.assertEqual(error_of(self.leave(self.bob)), "forbidden")

    def test_setnick(self):
        """setnick answers with the nick and updates the participants node; a taken nick is a
        conflict; a non-participant is forbidden."""
        self.join(self.bob, "bob")
        drain(self.alice)
        reply = self.iq(self.bob, f"<setnick xmlns='{CORE}'><nick>robert</nick></setnick>")
        self.assertEqual(str(reply.firstChildElement().firstChildElement()), "robert")
        event = [e for e in drain(self.alice) if e.name == "message"][0]
        self.assertIn("robert", event.toXml())
        self.assertEqual(error_of(self.iq(self.bob, f"<setnick xmlns='{CORE}'><nick>hecate</nick></setnick>")),
                         "conflict")
        self.assertEqual(error_of(self.iq(self.client("carol"), f"<setnick xmlns='{CORE}'><nick>c</nick></setnick>")),
                         "forbidden")

    def test_update_subscription(self):
        """update-subscription subscribes and unsubscribes nodes."""
        self.join(self.bob, "bob", nodes=(MESSAGES,))
        reply = self.iq(self.bob, f"<update-subscription xmlns='{CORE}'><subscribe node='{INFO}'/>"
                                  f"<unsubscribe node='{MESSAGES}'/></update-subscription>")
        result = reply.firstChildElement()
        self.assertEqual(result["jid"], "bob@localhost")
        self.assertEqual([(c.name, c["node"]) for c in result.elements()], [("subscribe", INFO), ("unsubscribe", MESSAGES)])
        self.say(self.alice, "anyone?")
        self.assertEqual(messages(drain(self.bob)), [])


class MessageTests(MixCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.alice, self.bob = self.client("alice"), self.client("bob")
        self.create(self.alice)
        self.join(self.alice, "hecate")
        self.join(self.bob, "bob")
        drain(self.alice)

    def test_message_reflected(self):
        """A groupchat message goes to every messages subscriber from channel/participant-id,
        with <mix/> (nick and JID), the archive id as id and the channel's stanza-id."""
        self.say(self.bob, "Double, double")
        message = messages(drain(self.alice))[0]
        self.assertTrue(message["from"].startswith(CHANNEL + "/"))
        self.assertEqual(mix_of(message), ("bob", "bob@localhost"))
        sid = [s for s in message.elements("urn:xmpp:sid:0", "stanza-id") if s["by"] == CHANNEL][0]
        self.assertEqual(sid["id"], message["id"])
        self.assertEqual(len(messages(drain(self.bob))), 1)

    def test_message_errors(self):
        """Not a participant: forbidden; not groupchat: bad-request; no such channel:
        item-not-found."""
        carol = self.client("carol")
        self.say(carol, "hi")
        self.assertEqual(error_of(carol.next()), "forbidden")
        self.bob.send(f"<message to='{CHANNEL}' type='chat'><body>x</body></message>")
        self.assertEqual(error_of(self.bob.next()), "bad-request")
        self.say(self.bob, "x", to="nowhere@mix.localhost")
        self.assertEqual(error_of(self.bob.next()), "item-not-found")

    def test_voice(self):
        """A moderated channel: participants without membership may not write (forbidden)."""
        self.publish_form(self.alice, CONFIG, "urn:xmpp:mix:admin:0", {"mix#moderated": "1"})
        drain(self.bob)
        self.say(self.bob, "hi")
        self.assertEqual(error_of(self.bob.next()), "forbidden")
        self.say(self.alice, "I may")
        self.assertEqual(len(messages(drain(self.bob))), 1)

    def test_jid_hidden(self):
        """With JID visibility 'hidden' participants see nicks only; admins still see JIDs."""
        self.publish_form(self.alice, CONFIG, "urn:xmpp:mix:admin:0", {"mix#jid_visibility": "hidden"})
        carol = self.client("carol")
        self.join(carol, "graymalkin")
        drain(self.alice), drain(self.bob)
        self.say(carol, "meow")
        self.assertEqual(mix_of(messages(drain(self.bob))[0]), ("graymalkin", None))
        self.assertEqual(mix_of(messages(drain(self.alice))[0]), ("graymalkin", "carol@localhost"))

    def test_channel_archive(self):
        """MAM on the channel JID returns its messages rendered for MIX; a non-participant of
        a participants-only channel is forbidden."""
        self.say(self.bob, "one")
        self.say(self.alice, "two")
        drain(self.bob)
        self.bob.send(f"<iq type='set' id='mam' to='{CHANNEL}'><query xmlns='urn:xmpp:mam:2'/></iq>")
        received = drain(self.bob)
        inner = [next(e.firstChildElement().firstChildElement().elements("jabber:client", "message"))
                 for e in received if e.name == "message"]
        self.assertEqual([mix_of(m)[0] for m in inner], ["bob", "hecate"])
        carol = self.client("carol")
        self.assertEqual(error_of(self.iq(carol, "<query xmlns='urn:xmpp:mam:2'/>")), "forbidden")

    def test_retraction(self):
        """XEP-0407: with user retraction allowed, a participant retracts its own message;
        another's is forbidden unless the retraction rights say so."""
        self.publish_form(self.alice, CONFIG, "urn:xmpp:mix:admin:0", {"mix#user_message_retraction": "1"})
        self.say(self.bob, "oops")
        archive_id = messages(drain(self.bob))[0]["id"]
        drain(self.alice)
        self.bob.send(f"<message to='{CHANNEL}' type='groupchat'><retract xmlns='{MISC}' id='{archive_id}'/></message>")
        self.assertIn("retract", [c.name for c in messages(drain(self.alice))[0].elements()])
        drain(self.bob)
        self.say(self.alice, "hers")
        hers = messages(drain(self.bob))[0]["id"]
        self.bob.send(f"<message to='{CHANNEL}' type='groupchat' id='r'><retract xmlns='{MISC}' id='{hers}'/></message>")
        self.assertEqual(error_of(drain(self.bob)[-1]), "forbidden")

    def test_private_messages(self):
        """XEP-0404: a chat message to a participant's proxy JID arrives from the sender's proxy
        JID; the channel may forbid them."""
        pid = self.server.extensions.loaded["channels"][0].stable_id(
            self.server.extensions.loaded["channels"][0].get("localhost", "coven"), "alice@localhost")
        self.bob.send(f"<message to='{pid}#{CHANNEL}' type='chat'><body>psst</body></message>")
        received = self.alice.next()
        self.assertTrue(received["from"].split("/")[0].endswith("#" + CHANNEL))
        self.assertEqual(mix_of(received)[0], "bob")
        self.publish_form(self.alice, CONFIG, "urn:xmpp:mix:admin:0", {"mix#private_messages": "0"})
        self.bob.send(f"<message to='{pid}#{CHANNEL}' type='chat'><body>psst</body></message>")
        self.assertEqual(error_of(self.bob.next()), "forbidden")


class NodeTests(MixCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.alice, self.bob = self.client("alice"), self.client("bob")
        self.create(self.alice)
        self.join(self.alice, "hecate")
        self.join(self.bob, "bob")

    def items(self, client, node):
        return self.iq(client, f"<pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub>", "get")

    def test_participants_node(self):
        """The participants node lists every participant by stable id with nick and JID."""
        items = self.items(self.bob, PARTICIPANTS).firstChildElement().firstChildElement()
        nicks = sorted(str(next(next(i.elements()).elements(CORE, "nick"))) for i in items.elements())
        self.assertEqual(nicks, ["bob", "hecate"])

    def test_info_node(self):
        """The owner publishes information (fields named mix#...); participants read it with
        pubsub; a participant may not change it (forbidden)."""
        self.publish_form(self.alice, INFO, CORE, {"mix#name": "Witches Coven", "Description": "The heath"})
        items = self.items(self.bob, INFO).firstChildElement().firstChildElement()
        form = next(items.firstChildElement().elements())
        values = {f["var"]: str(next(f.elements())) for f in form.elements() if f.name == "field"
                  and any(True for _ in f.elements())}
        self.assertEqual((values["mix#name"], values["mix#description"]), ("Witches Coven", "The heath"))
        self.assertEqual(error_of(self.publish_form(self.bob, INFO, CORE, {"mix#name": "Mine"})), "forbidden")

    def test_config_node(self):
        """The configuration node is the owners': participants may not read it (forbidden by
        the default access) nor change it."""
        self.assertEqual(error_of(self.items(self.bob, CONFIG)), "not-allowed")
        self.assertIsNone(error_of(self.items(self.alice, CONFIG)))
        self.assertEqual(error_of(self.publish_form(self.bob, CONFIG, "urn:xmpp:mix:admin:0",
                                                    {"mix#moderated": "1"})), "forbidden")

    def test_participants_node_is_read_only(self):
        """Publishing to the participants node directly: forbidden."""
        reply = self.iq(self.bob, f"<pubsub xmlns='{PUBSUB}'><publish node='{PARTICIPANTS}'><item id='x'>"
                                  f"<participant xmlns='{CORE}'/></item></publish></pubsub>")
        self.assertEqual(error_of(reply), "forbidden")

    def test_nodes_listed_with_node_mix(self):
        """disco#items with node='mix' lists the nodes; without it: bad-request."""
        listed = self.iq(self.bob, "<query xmlns='http://jabber.org/protocol/disco#items' node='mix'/>", "get")
        nodes = [i["node"] for i in listed.firstChildElement().elements()]
        self.assertIn(PARTICIPANTS, nodes)
        self.assertNotIn(CONFIG, nodes)
        plain = self.iq(self.bob, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "get")
        self.assertEqual(error_of(plain), "bad-request")

    def test_topic_and_pins(self):
        """The topic (a node of its own, not MIX core) is set by a groupchat <subject/> from a
        participant allowed to; pinned notes are published by participants."""
        self.iq(self.bob, f"<update-subscription xmlns='{CORE}'><subscribe node='urn:summitd:mix:nodes:topic'/>"
                          "</update-subscription>")
        self.alice.send(f"<message to='{CHANNEL}' type='groupchat'><subject>Brewing</subject></message>")
        event = [e for e in drain(self.bob) if e.name == "message"][0]
        self.assertIn("<topic xmlns='urn:summitd:mix:topic:0' by='hecate'>Brewing</topic>", event.toXml())
        self.bob.send(f"<message to='{CHANNEL}' type='groupchat'><subject>Mine</subject></message>")
        self.assertEqual(error_of(self.bob.next()), "forbidden")
        pin = self.iq(self.bob, f"<pubsub xmlns='{PUBSUB}'><publish node='urn:summitd:mix:nodes:pins'><item>"
                                "<link xmlns='urn:example:pin' href='https://example.org/spell.png'/></item>"
                                "</publish></pubsub>")
        self.assertIsNone(error_of(pin))

    def test_ban_removes_participant(self):
        """Adding a participant's JID to the banned node ends its participation."""
        drain(self.alice)
        self.iq(self.alice, f"<pubsub xmlns='{PUBSUB}'><publish node='{NODES}banned'>"
                            "<item id='bob@localhost'/></publish></pubsub>")
        banned = self.items(self.alice, NODES + "banned").firstChildElement().firstChildElement()
        self.assertEqual([i["id"] for i in banned.elements()], ["bob@localhost"])
        self.say(self.bob, "still here?")
        self.assertEqual(error_of(self.bob.next()), "forbidden")
        self.assertEqual(error_of(self.items(self.bob, NODES + "banned")), "forbidden")


class PresenceTests(MixCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.alice, self.bob = self.client("alice"), self.client("bob", presence=False)
        self.create(self.alice)
        self.join(self.alice, "hecate")
        self.join(self.bob, "bob")
        drain(self.alice)

    def test_presence_shared_through_the_channel(self):
        """XEP-0403: bob's client presence goes (through his server) to the channel, which
        shares it from bob's proxy JID with <mix/> (full JID, nick); his disconnection ends it."""
        self.bob.send("<presence><show>dnd</show></presence>")
        presence = [e for e in drain(self.alice) if e.name == "presence"][0]
        self.assertIn("#" + CHANNEL + "/desk", presence["from"])
        self.assertIn("<jid>bob@localhost/desk</jid>", presence.toXml())
        self.assertIn("<show>dnd</show>", presence.toXml())
        self.bob.lose_connection()
        gone = [e for e in drain(self.alice) if e.name == "presence"][0]
        self.assertEqual(gone["type"], "unavailable")

    def test_presence_kept_for_offline_clients(self):
        """Channel presence that arrives while alice has no client online is given to her
        next client as it comes online."""
        self.alice.lose_connection()
        self.bob.send("<presence><status>here</status></presence>")
        phone = self.client("alice", "phone", presence=False)
        phone.send("<presence/>")
        received = [e for e in drain(phone) if e.name == "presence" and "#" in e.getAttribute("from", "")]
        self.assertIn("<status>here</status>", received[0].toXml())
        self.assertEqual(len(received), 2)      # bob's kept presence, then the phone's own, reflected
