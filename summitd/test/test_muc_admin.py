"""MUC administration and the rest of a room's services (XEP-0045 §6 - §10, XEP-0410, XEP-0421,
XEP-0424, XEP-0425, XEP-0313 on rooms): roles and affiliations with their errors, the
configuration form, destruction, registration, invitations, moderation, the room's archive,
service discovery and self-ping."""

from twisted.trial import unittest

from summitd.test.test_muc import MUC, ROOM, USER, GroupchatCase, bodies, codes, drain, error_of, item_of
from summitd.testing import result_of

MAM = "urn:xmpp:mam:2"


class RoomCase(GroupchatCase):
    """alice owns a persistent room 'coven' (nick hecate); bob is in it as 'bob'."""

    def setUp(self):
        super().setUp()
        self.alice, self.bob = self.client("alice"), self.client("bob")
        self.make_room(self.alice, persistentroom=True)
        self.enter(self.bob, "bob")
        drain(self.alice)

    def iq(self, client, payload, type="get", to=ROOM, id="q"):
        client.send(f"<iq type='{type}' id='{id}' to='{to}'>{payload}</iq>")
        return [e for e in drain(client) if e.name == "iq" and e.getAttribute("id") == id][0]

    def owner_query(self, client, body="", type="set"):
        return self.iq(client, f"<query xmlns='{MUC}#owner'>{body}</query>", type)

    def post(self, client, body, id=None):
        """Send a groupchat message; returns the stanza-id the room gave it."""
        client.send(f"<message to='{ROOM}' type='groupchat' id='{id or body}'><body>{body}</body></message>")
        reflected = [e for e in drain(client) if e.name == "message"][-1]
        return next(reflected.elements("urn:xmpp:sid:0", "stanza-id"))["id"]


class RoleTests(RoomCase, unittest.TestCase):
    def test_kick_with_reason(self):
        """A moderator kicks: everyone sees 307 with the actor and the reason; the kicked
        occupant is out."""
        self.alice.send(f"<iq type='set' id='k' to='{ROOM}'><query xmlns='{MUC}#admin'>"
                        "<item nick='bob' role='none'><reason>Avaunt</reason></item></query></iq>")
        seen = drain(self.alice)
        self.assertEqual(codes(seen[0]), {307})
        self.assertEqual(seen[-1]["type"], "result")
        gone = self.bob.next()
        self.assertEqual((gone["type"], codes(gone)), ("unavailable", {110, 307}))
        item = item_of(gone)
        self.assertEqual((item["role"], str(next(item.elements(USER, "reason")))), ("none", "Avaunt"))
        self.assertEqual(next(item.elements(USER, "actor"))["nick"], "hecate")
        self.bob.send(f"<message to='{ROOM}' type='groupchat'><body>x</body></message>")
        self.assertEqual(error_of(self.bob.next()), "not-acceptable")

    def test_participant_may_not_kick(self):
        """A participant trying to kick: forbidden."""
        self.assertEqual(error_of(self.admin(self.bob, "<item nick='hecate' role='none'/>")), "forbidden")

    def test_moderator_may_not_kick_an_owner(self):
        """A member moderator kicking the owner: not-allowed."""
        self.admin(self.alice, "<item affiliation='member' jid='bob@localhost'/>")
        self.admin(self.alice, "<item nick='bob' role='moderator'/>")
        drain(self.bob)
        self.assertEqual(error_of(self.admin(self.bob, "<item nick='hecate' role='none'/>")), "not-allowed")

    def test_kick_unknown_nick(self):
        """Kicking a nick nobody has: item-not-found."""
        self.assertEqual(error_of(self.admin(self.alice, "<item nick='ghost' role='none'/>")), "item-not-found")

    def test_kick_self_conflict(self):
        """A moderator kicking itself: conflict."""
        self.assertEqual(error_of(self.admin(self.alice, "<item nick='hecate' role='none'/>")), "conflict")

    def test_voice_list_and_revoke(self):
        """Moderators list roles; revoking voice makes a visitor; admins cannot lose voice."""
        listing = self.admin(self.alice, "<item role='participant'/>", type="get")
        self.assertEqual([i["nick"] for i in listing.firstChildElement().elements()], ["bob"])
        self.admin(self.alice, "<item nick='bob' role='visitor'/>")
        self.assertEqual(item_of(self.bob.next())["role"], "visitor")
        self.assertEqual(error_of(self.admin(self.bob, "<item role='participant'/>", type="get")), "forbidden")

    def test_moderator_needs_admin(self):
        """Granting moderator status takes an admin: a member moderator may not."""
        self.admin(self.alice, "<item affiliation='member' jid='bob@localhost'/>")
        self.admin(self.alice, "<item nick='bob' role='moderator'/>")
        carol = self.client("carol")
        self.enter(carol, "carol")
        self.assertEqual(error_of(self.admin(self.bob, "<item nick='carol' role='moderator'/>")), "forbidden")

    def test_both_role_and_affiliation_is_bad_request(self):
        """An item changing a role and an affiliation at once: bad-request."""
        reply = self.admin(self.alice, "<item nick='bob' role='none' affiliation='member'/>")
        self.assertEqual(error_of(reply), "bad-request")


class AffiliationTests(RoomCase, unittest.TestCase):
    def test_ban_removes_the_occupant(self):
        """Banning an occupant's JID: 301 with the reason; it cannot come back."""
        self.admin(self.alice, "<item affiliation='outcast' jid='bob@localhost'><reason>Treason</reason></item>")
        gone = self.bob.next()
        self.assertEqual(codes(gone), {110, 301})
        self.assertEqual(item_of(gone)["affiliation"], "outcast")
        self.assertEqual(error_of(self.enter(self.bob, "bob")[0]), "forbidden")

    def test_member_list(self):
        """Admins read the member list; participants may not (forbidden)."""
        self.admin(self.alice, "<item affiliation='member' jid='carol@localhost'/>")
        listing = self.admin(self.alice, "<item affiliation='member'/>", type="get")
        self.assertEqual([i["jid"] for i in listing.firstChildElement().elements()], ["carol@localhost"])
        self.assertEqual(error_of(self.admin(self.bob, "<item affiliation='member'/>", type="get")), "forbidden")

    def test_admin_may_not_ban_owner(self):
        """An admin banning an owner: not-allowed; granting ownership: forbidden."""
        self.admin(self.alice, "<item affiliation='admin' jid='bob@localhost'/>")
        drain(self.bob)
        self.assertEqual(error_of(self.admin(self.bob, "<item affiliation='outcast' jid='alice@localhost'/>")),
                         "not-allowed")
        self.assertEqual(error_of(self.admin(self.bob, "<item affiliation='owner' jid='carol@localhost'/>")),
                         "forbidden")

    def test_ban_self_conflict(self):
        """An owner banning itself: conflict."""
        self.assertEqual(error_of(self.admin(self.alice, "<item affiliation='outcast' jid='alice@localhost'/>")),
                         "conflict")

    def test_last_owner_stays(self):
        """The only owner may not give up ownership: conflict; with a second owner it may."""
        self.assertEqual(error_of(self.admin(self.alice, "<item affiliation='admin' jid='alice@localhost'/>")),
                         "conflict")
        self.admin(self.alice, "<item affiliation='owner' jid='bob@localhost'/>")
        self.assertIsNone(error_of(self.admin(self.alice, "<item affiliation='admin' jid='alice@localhost'/>")))

    def test_admin_becomes_moderator(self):
        """Making an occupant's JID admin gives it the moderator role at once."""
        self.admin(self.alice, "<item affiliation='admin' jid='bob@localhost'/>")
        item = item_of(self.bob.next())
        self.assertEqual((item["affiliation"], item["role"]), ("admin", "moderator"))

    def test_errors_leave_the_other_items_unapplied(self):
        """A request with a bad item changes nothing."""
        reply = self.admin(self.alice, "<item affiliation='member' jid='carol@localhost'/>"
                                       "<item affiliation='outcast' jid='alice@localhost'/>")
        self.assertEqual(error_of(reply), "conflict")
        listing = self.admin(self.alice, "<item affiliation='member'/>", type="get")
        self.assertEqual(list(listing.firstChildElement().elements()), [])

    def test_account_deletion_ends_memberships(self):
        """Deleting an account removes its affiliations in every channel."""
        self.admin(self.alice, "<item affiliation='member' jid='carol@localhost'/>")
        result_of(self.server.account_manager.delete("carol@localhost"))
        listing = self.admin(self.alice, "<item affiliation='member'/>", type="get")
        self.assertEqual(list(listing.firstChildElement().elements()), [])

    def test_revoked_membership_in_members_only_room(self):
        """Losing membership in a members-only room removes the occupant (321)."""
        self.admin(self.alice, "<item affiliation='member' jid='bob@localhost'/>")
        self.configure(self.alice, membersonly=True)
        drain(self.bob)
        self.admin(self.alice, "<item affiliation='none' jid='bob@localhost'/>")
        self.assertEqual(codes(self.bob.next()), {110, 321})


class OwnerTests(RoomCase, unittest.TestCase):
    def test_config_form(self):
        """The owner gets the muc#roomconfig form with current values; others forbidden."""
        form = self.owner_query(self.alice, type="get").firstChildElement().firstChildElement()
        values = {f["var"]: [str(v) for v in f.elements() if v.name == "value"]
                  for f in form.elements() if f.name == "field"}
        self.assertEqual(values["FORM_TYPE"], [f"{MUC}#roomconfig"])
        self.assertEqual(values["muc#roomconfig_persistentroom"], ["1"])
        self.assertEqual(values["muc#roomconfig_roomowners"], ["alice@localhost"])
        self.assertEqual(error_of(self.owner_query(self.bob, type="get")), "forbidden")

    def test_config_change_is_announced(self):
        """A configuration change: status 104 (and 172 when the room becomes non-anonymous)."""
        self.configure(self.alice, whois="anyone", roomname="The Coven")
        self.assertEqual(codes(self.bob.next()), {104, 172})
        info = self.iq(self.bob, "<query xmlns='http://jabber.org/protocol/disco#info'/>")
        identity = info.firstChildElement().firstChildElement()
        self.assertEqual(identity["name"], "The Coven")

    def test_members_only_removes_non_members(self):
        """Making the room members-only removes non-members with 322."""
        self.configure(self.alice, membersonly=True)
        received = drain(self.bob)
        self.assertEqual(codes(received[-1]), {110, 322})

    def test_bad_values_are_not_acceptable(self):
        """A value outside a field's options: not-acceptable."""
        self.assertEqual(error_of(self.configure(self.alice, whois="everyone")), "not-acceptable")
        self.assertEqual(error_of(self.configure(self.alice, maxusers="many")), "not-acceptable")

    def test_destroy(self):
        """The owner destroys the room: occupants get <destroy/> with the reason and the
        alternate; a non-owner is forbidden."""
        body = "<destroy jid='other@conference.localhost'><reason>Macbeth doth come</reason></destroy>"
        self.assertEqual(error_of(self.owner_query(self.bob, body)), "forbidden")
        self.assertEqual(self.owner_query(self.alice, body)["type"], "result")
        gone = self.bob.next()
        destroy = next(next(gone.elements(USER, "x")).elements(USER, "destroy"))
        self.assertEqual(destroy["jid"], "other@conference.localhost")
        self.assertEqual(str(next(destroy.elements(USER, "reason"))), "Macbeth doth come")
        self.assertEqual(error_of(self.iq(self.alice, "<query xmlns='http://jabber.org/protocol/disco#info'/>")),
                         "item-not-found")

    def test_cancelling_the_first_configuration_destroys(self):
        """§10.1.2: cancelling the initial configuration of a new room destroys it."""
        carol = self.client("carol")
        room = "new@conference.localhost"
        self.enter(carol, "c", room)
        carol.send(f"<iq type='set' id='c' to='{room}'><query xmlns='{MUC}#owner'>"
                   "<x xmlns='jabber:x:data' type='cancel'/></query></iq>")
        drain(carol)
        directory = self.server.extensions.loaded["channels"][0]
        self.assertIsNone(directory.get("localhost", "new"))


class RegistrationTests(RoomCase, unittest.TestCase):
    def register(self, client, nick):
        return self.iq(client, f"<query xmlns='jabber:iq:register'><x xmlns='jabber:x:data' type='submit'>"
                               f"<field var='FORM_TYPE'><value>{MUC}#register</value></field>"
                               f"<field var='muc#register_roomnick'><value>{nick}</value></field></x></query>",
                       type="set")

    def test_register_and_reserved_nick(self):
        """§7.10: the form, registration (making a member), the registered answer and the
        reserved nick (§7.12); another JID entering with it gets conflict."""
        carol = self.client("carol")
        form = self.iq(carol, "<query xmlns='jabber:iq:register'/>").firstChildElement()
        self.assertIn("muc#register_roomnick", [f.getAttribute("var") for f in
                                                 next(form.elements("jabber:x:data", "x")).elements()])
        self.assertEqual(self.register(carol, "graymalkin")["type"], "result")
        registered = self.iq(carol, "<query xmlns='jabber:iq:register'/>").firstChildElement()
        self.assertEqual(str(next(registered.elements("jabber:iq:register", "username"))), "graymalkin")
        node = self.iq(carol, "<query xmlns='http://jabber.org/protocol/disco#info' node='x-roomuser-item'/>")
        self.assertEqual(node.firstChildElement().firstChildElement()["name"], "graymalkin")
        self.assertEqual(error_of(self.enter(self.client("dave"), "Graymalkin")[0]), "conflict")
        members = self.admin(self.alice, "<item affiliation='member'/>", type="get")
        self.assertEqual([i["jid"] for i in members.firstChildElement().elements()], ["carol@localhost"])

    def test_register_conflict(self):
        """Registering a nick someone holds: conflict."""
        self.assertEqual(error_of(self.register(self.client("carol"), "bob")), "conflict")

    def test_register_errors(self):
        """Banned: forbidden; members-only room and not a member: not-allowed; no form:
        bad-request."""
        carol = self.client("carol")
        self.assertEqual(error_of(self.iq(carol, "<query xmlns='jabber:iq:register'/>", type="set")), "bad-request")
        self.configure(self.alice, membersonly=True)
        self.assertEqual(error_of(self.register(carol, "c")), "not-allowed")
        self.admin(self.alice, "<item affiliation='outcast' jid='carol@localhost'/>")
        self.assertEqual(error_of(self.register(carol, "c")), "forbidden")


class InvitationTests(RoomCase, unittest.TestCase):
    def test_mediated_invitation(self):
        """§7.8.2: the room sends the invitation from itself naming the inviter."""
        carol = self.client("carol")
        self.bob.send(f"<message to='{ROOM}'><x xmlns='{USER}'><invite to='carol@localhost'>"
                      "<reason>Join us</reason></invite></x></message>")
        carol.expect(f"<message from='{ROOM}'><x xmlns='{USER}'><invite from='bob@localhost/desk'>"
                     "<reason>Join us</reason></invite></x></message>")

    def test_members_only_invitations(self):
        """In a members-only room a participant may not invite (forbidden); an admin's
        invitation makes the invitee a member, who may then enter."""
        self.admin(self.alice, "<item affiliation='member' jid='bob@localhost'/>")
        self.configure(self.alice, membersonly=True)
        drain(self.bob)
        self.bob.send(f"<message to='{ROOM}'><x xmlns='{USER}'><invite to='carol@localhost'/></x></message>")
        self.assertEqual(error_of(self.bob.next()), "forbidden")
        self.alice.send(f"<message to='{ROOM}'><x xmlns='{USER}'><invite to='carol@localhost'/></x></message>")
        carol = self.client("carol")
        self.assertIsNone(error_of(self.enter(carol, "carol")[0]))

    def test_decline(self):
        """§7.8.3: a decline is passed on to the inviter from the room."""
        carol = self.client("carol")
        carol.send(f"<message to='{ROOM}'><x xmlns='{USER}'><decline to='bob@localhost/desk'>"
                   "<reason>Busy</reason></decline></x></message>")
        self.bob.expect(f"<message from='{ROOM}'><x xmlns='{USER}'><decline from='carol@localhost'>"
                        "<reason>Busy</reason></decline></x></message>")


class ModerationTests(RoomCase, unittest.TestCase):
    def moderate(self, client, archive_id):
        return self.iq(client, f"<moderate xmlns='urn:xmpp:message-moderate:1' id='{archive_id}'>"
                               "<retract xmlns='urn:xmpp:message-retract:1'/><reason>Spam</reason></moderate>",
                       type="set")

    def test_moderate(self):
        """XEP-0425: a moderator retracts bob's message; everyone is told from the room, and
        history and the archive show a tombstone."""
        archive_id = self.post(self.bob, "buy cheap potions")
        drain(self.alice)
        self.assertEqual(self.moderate(self.alice, archive_id)["type"], "result")
        self.bob.expect(f"<message from='{ROOM}' type='groupchat'><retract xmlns='urn:xmpp:message-retract:1' "
                        f"id='{archive_id}'><moderated xmlns='urn:xmpp:message-moderate:1' by='{ROOM}/hecate'/>"
                        "<reason>Spam</reason></retract></message>")
        history = self.enter(self.client("carol"), "carol")
        self.assertEqual(bodies(history), [])
        tombstones = [e for e in history if any(c.name == "retracted" for c in e.elements())]
        self.assertEqual(len(tombstones), 1)

    def test_moderate_errors(self):
        """A participant moderating: forbidden; an unknown id: item-not-found."""
        archive_id = self.post(self.bob, "hello")
        self.assertEqual(error_of(self.moderate(self.bob, archive_id)), "forbidden")
        self.assertEqual(error_of(self.moderate(self.alice, "0" * 30)), "item-not-found")

    def test_retract_own(self):
        """XEP-0424: bob retracts his own message (reflected); retracting alice's: forbidden."""
        mine = self.post(self.bob, "oops")
        drain(self.alice)
        self.bob.send(f"<message to='{ROOM}' type='groupchat' id='r'><retract xmlns='urn:xmpp:message-retract:1' "
                      f"id='{mine}'/></message>")
        self.alice.expect(f"<message from='{ROOM}/bob' type='groupchat'>"
                          f"<retract xmlns='urn:xmpp:message-retract:1' id='{mine}'/></message>")
        hers = self.post(self.alice, "mine")
        self.bob.send(f"<message to='{ROOM}' type='groupchat' id='r2'><retract xmlns='urn:xmpp:message-retract:1' "
                      f"id='{hers}'/></message>")
        self.assertEqual(error_of([e for e in drain(self.bob) if e.getAttribute("id") == "r2"][0]), "forbidden")


class ArchiveTests(RoomCase, unittest.TestCase):
    def query(self, client, queryid="q1"):
        client.send(f"<iq type='set' id='mam' to='{ROOM}'><query xmlns='{MAM}' queryid='{queryid}'/></iq>")
        return drain(client)

    def test_room_archive(self):
        """XEP-0313 on the room: results from the room with the messages from room/nick, then
        <fin/>; an outcast is forbidden."""
        self.post(self.bob, "one")
        self.post(self.alice, "two")
        drain(self.bob)
        received = self.query(self.bob)
        results = [e for e in received if e.name == "message"]
        self.assertEqual(len(results), 2)
        forwarded = results[0].firstChildElement().firstChildElement()
        inner = next(forwarded.elements("jabber:client", "message"))
        self.assertEqual(inner["from"], f"{ROOM}/bob")
        self.assertEqual(results[0]["from"], ROOM)
        self.assertEqual(received[-1].firstChildElement().name, "fin")
        self.admin(self.alice, "<item affiliation='outcast' jid='carol@localhost'/>")
        self.assertEqual(error_of(self.query(self.client("carol"))[-1]), "forbidden")

    def test_members_only_archive(self):
        """A members-only room's archive is for members: others get forbidden."""
        self.configure(self.alice, membersonly=True)
        self.assertEqual(error_of(self.query(self.client("carol"))[-1]), "forbidden")


class DiscoTests(RoomCase, unittest.TestCase):
    def test_service(self):
        """The service: identity conference/text, the MUC feature, its public rooms; and it
        is listed in the domain's items."""
        info = self.iq(self.bob, "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                       to="conference.localhost")
        self.assertEqual(info.firstChildElement().firstChildElement()["category"], "conference")
        items = self.iq(self.bob, "<query xmlns='http://jabber.org/protocol/disco#items'/>",
                        to="conference.localhost")
        self.assertEqual([i["jid"] for i in items.firstChildElement().elements()], [ROOM])

    def test_room_info(self):
        """A room's info: features describing its configuration and the roominfo form."""
        info = self.iq(self.bob, "<query xmlns='http://jabber.org/protocol/disco#info'/>").firstChildElement()
        features = {f["var"] for f in info.elements() if f.name == "feature"}
        self.assertTrue({MUC, "muc_persistent", "muc_semianonymous", "muc_open", MAM,
                         "urn:xmpp:occupant-id:0"} <= features)

    def test_room_items_only_for_occupants(self):
        """The occupant list is shown to occupants; others get an empty list."""
        items = self.iq(self.bob, "<query xmlns='http://jabber.org/protocol/disco#items'/>").firstChildElement()
        self.assertEqual([i["jid"] for i in items.elements()], [f"{ROOM}/bob", f"{ROOM}/hecate"])
        other = self.iq(self.client("carol"), "<query xmlns='http://jabber.org/protocol/disco#items'/>")
        self.assertEqual(list(other.firstChildElement().elements()), [])


class SelfPingTests(RoomCase, unittest.TestCase):
    def test_self_ping(self):
        """XEP-0410: a joined client's ping to its own occupant JID is answered by the room;
        a client that is not joined gets not-acceptable."""
        ping = "<ping xmlns='urn:xmpp:ping'/>"
        self.assertEqual(self.iq(self.bob, ping, to=f"{ROOM}/bob")["type"], "result")
        self.assertEqual(error_of(self.iq(self.client("carol"), ping, to=f"{ROOM}/bob")), "not-acceptable")

    def test_iq_relay(self):
        """An IQ to another occupant is relayed from the asker's occupant JID, and the answer
        comes back from the target's."""
        self.bob.send(f"<iq type='get' id='v1' to='{ROOM}/hecate'><query xmlns='jabber:iq:version'/></iq>")
        relayed = self.alice.next()
        self.assertEqual(relayed["from"], f"{ROOM}/bob")
        self.alice.send(f"<iq type='result' id='{relayed['id']}' to='{ROOM}/bob'>"
                        "<query xmlns='jabber:iq:version'><name>x</name></query></iq>")
        self.bob.expect(f"<iq type='result' id='v1' from='{ROOM}/hecate'><query xmlns='jabber:iq:version'/></iq>")
