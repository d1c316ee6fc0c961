"""Multi-User Chat (summitd.plugins.channels.muc, XEP-0045) through a whole server: entering
with history and subject, the entry errors of §7.2, nick and status changes, leaving,
groupchat and private messages, subject changes. ``GroupchatCase`` is the fixture the other
group chat tests share."""

from twisted.trial import unittest

from summitd.testing import FakeClient, ProtocolMismatch, add_user, make_server

MUC = "http://jabber.org/protocol/muc"
USER = MUC + "#user"
ROOM = "coven@conference.localhost"
USERS = ("alice", "bob", "carol", "dave")


class GroupchatCase:
    """A server with the group chat extensions (memory stores) and four accounts; helpers to
    log in, enter rooms and read what arrives."""

    extensions = ("mam", "channels", "muc")
    options = {}

    def setUp(self):
        options = {"mam": {"backend": "memory"}, "channels": {"storage": "memory"}}
        for name, table in self.options.items():
            options[name] = {**options.get(name, {}), **table}
        self.server = make_server(extensions=list(self.extensions), extension_options=options)
        for user in USERS:
            add_user(self.server, f"{user}@localhost", "pw")

    def client(self, user, resource="desk", presence=True):
        client = FakeClient(self.server)
        client.login(user, "pw", resource)
        if presence:
            client.send("<presence/>")
            drain(client)
        return client

    def enter(self, client, nick, room=ROOM, x="<x xmlns='http://jabber.org/protocol/muc'/>"):
        """Enter and read until the subject (the end of the entry); returns what arrived."""
        client.send(f"<presence to='{room}/{nick}'>{x}</presence>")
        return drain(client)

    def make_room(self, owner, nick="hecate", room=ROOM, **fields):
        """``owner`` creates the room and submits its configuration (unlocking it)."""
        self.enter(owner, nick, room)
        self.configure(owner, room, **fields)
        drain(owner)

    def configure(self, client, room=ROOM, **fields):
        """Submit room configuration fields (muc#roomconfig_<name>=value); returns the reply."""
        body = "".join(f"<field var='muc#roomconfig_{name}'>{_values(value)}</field>"
                       for name, value in fields.items())
        client.send(f"<iq type='set' id='config' to='{room}'><query xmlns='{MUC}#owner'>"
                    f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>"
                    f"<value>{MUC}#roomconfig</value></field>{body}</x></query></iq>")
        return next(e for e in drain(client) if e.name == "iq")

    def admin(self, client, item, type="set", room=ROOM, id="admin"):
        client.send(f"<iq type='{type}' id='{id}' to='{room}'><query xmlns='{MUC}#admin'>{item}</query></iq>")
        return next(e for e in drain(client) if e.name == "iq")


def _values(value):
    values = value if isinstance(value, (list, tuple)) else [value]
    return "".join(f"<value>{'1' if v is True else '0' if v is False else v}</value>" for v in values)


def drain(client):
    """Everything the server has sent the client, in order."""
    found = []
    while True:
        try:
            found.append(client.next())
        except ProtocolMismatch:
            return found


def error_of(element):
    """The defined condition of an error stanza, or None."""
    if element.getAttribute("type") != "error":
        return None
    error = next(e for e in element.elements() if e.name == "error")
    return next(c.name for c in error.elements() if c.uri == "urn:ietf:params:xml:ns:xmpp-stanzas")


def codes(element):
    """The muc#user status codes of a stanza."""
    x = next((c for c in element.elements() if c.name == "x" and c.uri == USER), None)
    return {int(s["code"]) for s in x.elements() if s.name == "status"} if x is not None else set()


def item_of(element):
    x = next(c for c in element.elements() if c.name == "x" and c.uri == USER)
    return next(x.elements(USER, "item"))


def bodies(elements):
    return [str(c) for e in elements if e.name == "message" for c in e.elements() if c.name == "body"]


class EnterTests(GroupchatCase, unittest.TestCase):
    def test_create_room_is_locked_until_configured(self):
        """Entering a room that does not exist creates it: the creator is owner and moderator
        (status 110, 201), gets the (empty) subject last; others get item-not-found until the
        owner submits the configuration."""
        alice, bob = self.client("alice"), self.client("bob")
        received = self.enter(alice, "hecate")
        self.assertEqual(received[0]["from"], f"{ROOM}/hecate")
        self.assertEqual({110, 201} <= codes(received[0]), True)
        self.assertEqual((item_of(received[0])["affiliation"], item_of(received[0])["role"]), ("owner", "moderator"))
        self.assertEqual(received[-1].name, "message")
        self.assertEqual(next(received[-1].elements()).name, "subject")
        self.assertEqual(error_of(self.enter(bob, "bob")[0]), "item-not-found")
        self.assertIsNone(error_of(self.configure(alice)))
        self.assertEqual(codes(self.enter(bob, "bob")[-2]) & {110}, {110})

    def test_instant_room(self):
        """An empty submitted form makes an instant room that others may enter."""
        alice, bob = self.client("alice"), self.client("bob")
        self.make_room(alice)
        received = self.enter(bob, "bob")
        self.assertEqual([e["from"] for e in received if e.name == "presence"], [f"{ROOM}/hecate", f"{ROOM}/bob"])
        self.assertEqual(item_of(received[0]).getAttribute("jid"), None)     # semi-anonymous
        self.assertIn(f"{ROOM}/bob", [e["from"] for e in drain(alice)])

    def test_nonanonymous_room_shows_jids(self):
        """With whois=anyone every occupant sees real JIDs and the newcomer gets status 100."""
        alice, bob = self.client("alice"), self.client("bob")
        self.make_room(alice, whois="anyone")
        received = self.enter(bob, "bob")
        self.assertEqual(item_of(received[0])["jid"], "alice@localhost/desk")
        self.assertIn(100, codes(received[1]))

    def test_moderators_see_jids_in_semianonymous_rooms(self):
        """The owner (a moderator) sees the newcomer's JID; the newcomer does not see hers."""
        alice, bob = self.client("alice"), self.client("bob")
        self.make_room(alice)
        self.enter(bob, "bob")
        announced = [e for e in drain(alice) if e.name == "presence"][0]
        self.assertEqual(item_of(announced)["jid"], "bob@localhost/desk")

    def test_no_nick_is_jid_malformed(self):
        """A presence to the bare room JID is not an entry: jid-malformed."""
        alice, bob = self.client("alice"), self.client("bob")
        self.make_room(alice)
        bob.send(f"<presence to='{ROOM}'/>")
        self.assertEqual(error_of(bob.next()), "jid-malformed")

    def test_nick_conflict(self):
        """A nick in use by someone else is a conflict; the error comes from the occupant JID
        with the room as 'by'."""
        alice, bob = self.client("alice"), self.client("bob")
        self.make_room(alice)
        error = self.enter(bob, "HECATE")[0]
        self.assertEqual(error_of(error), "conflict")
        self.assertEqual(error["from"], f"{ROOM}/HECATE")
        self.assertEqual(next(e for e in error.elements() if e.name == "error")["by"], ROOM)

    def test_same_jid_may_use_its_nick_twice(self):
        """A second session of the same JID may share the nick; both get room messages."""
        alice, bob = self.client("alice"), self.client("bob")
        phone = self.client("alice", "phone")
        self.make_room(alice)
        self.assertIn(110, codes(self.enter(phone, "hecate")[-2]))
        self.enter(bob, "bob")
        drain(alice), drain(phone)
        bob.send(f"<message to='{ROOM}' type='groupchat'><body>hi</body></message>")
        self.assertEqual(bodies(drain(alice)), ["hi"])
        self.assertEqual(bodies(drain(phone)), ["hi"])

    def test_password(self):
        """A password-protected room refuses a missing or wrong password (not-authorized) and
        admits the right one."""
        alice, bob = self.client("alice"), self.client("bob")
        self.make_room(alice, passwordprotectedroom=True, roomsecret="cauldron")
        self.assertEqual(error_of(self.enter(bob, "bob")[0]), "not-authorized")
        wrong = f"<x xmlns='{MUC}'><password>toad</password></x>"
        self.assertEqual(error_of(self.enter(bob, "bob", x=wrong)[0]), "not-authorized")
        right = f"<x xmlns='{MUC}'><password>cauldron</password></x>"
        self.assertIsNone(error_of(self.enter(bob, "bob", x=right)[0]))

    def test_password_protection_needs_a_password(self):
        """Asking for password protection without a password is not-acceptable."""
        alice = self.client("alice")
        self.enter(alice, "hecate")
        self.assertEqual(error_of(self.configure(alice, passwordprotectedroom=True)), "not-acceptable")

    def test_members_only(self):
        """A members-only room refuses non-members (registration-required) and admits members."""
        alice, bob = self.client("alice"), self.client("bob")
        self.make_room(alice, membersonly=True)
        self.assertEqual(error_of(self.enter(bob, "bob")[0]), "registration-required")
        self.admin(alice, "<item affiliation='member' jid='bob@localhost'/>")
        self.assertIsNone(error_of(self.enter(bob, "bob")[0]))

    def test_banned(self):
        """An outcast is refused with forbidden."""
        alice, bob = self.client("alice"), self.client("bob")
        self.make_room(alice)
        self.admin(alice, "<item affiliation='outcast' jid='bob@localhost'/>")
        self.assertEqual(error_of(self.enter(bob, "bob")[0]), "forbidden")

    def test_room_full(self):
        """Past max users, service-unavailable (type wait); owners still get in."""
        alice, bob, carol = self.client("alice"), self.client("bob"), self.client("carol")
        self.make_room(alice, maxusers="2")
        self.enter(bob, "bob")
        error = self.enter(carol, "carol")[0]
        self.assertEqual(error_of(error), "service-unavailable")
        self.assertEqual(next(e for e in error.elements() if e.name == "error")["type"], "wait")
        self.assertIsNone(error_of(self.enter(self.client("alice", "phone"), "hecate2")[0]))



class RestrictedCreationTests(GroupchatCase, unittest.TestCase):
    options = {"channels": {"creators": "admins", "admins": ["carol@localhost"]}}

    def test_creation_can_be_restricted(self):
        """With creators = "admins", an ordinary account entering a new room gets not-allowed;
        a service admin creates it."""
        self.assertEqual(error_of(self.enter(self.client("bob"), "bob")[0]), "not-allowed")
        self.assertEqual(codes(self.enter(self.client("carol"), "carol")[0]) & {201}, {201})


class HistoryTests(GroupchatCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.alice = self.client("alice")
        self.make_room(self.alice, persistentroom=True)
        for n in range(1, 6):
            self.alice.send(f"<message to='{ROOM}' type='groupchat' id='m{n}'><body>line {n}</body></message>")
        drain(self.alice)

    def test_history_then_subject(self):
        """Entering replays the history (with a delay from the room and the room's stanza-id)
        after the presences and before the subject."""
        received = self.enter(self.client("bob"), "bob")
        history = [e for e in received if e.name == "message" and any(c.name == "delay" for c in e.elements())]
        self.assertEqual(bodies(history), [f"line {n}" for n in range(1, 6)])
        delay = next(c for c in history[0].elements() if c.name == "delay")
        self.assertEqual(delay["from"], ROOM)
        self.assertEqual(received[-1].firstChildElement().name, "subject")
        self.assertEqual(received[0].name, "presence")

    def test_maxstanzas(self):
        """<history maxstanzas='2'/> gets the two newest; maxstanzas='0' none."""
        two = self.enter(self.client("bob"), "bob", x=f"<x xmlns='{MUC}'><history maxstanzas='2'/></x>")
        self.assertEqual(bodies(two), ["line 4", "line 5"])
        none = self.enter(self.client("carol"), "carol", x=f"<x xmlns='{MUC}'><history maxstanzas='0'/></x>")
        self.assertEqual(bodies(none), [])

    def test_seconds_and_since(self):
        """seconds and since select by time."""
        self.server.clock.advance(100)
        self.alice.send(f"<message to='{ROOM}' type='groupchat'><body>late</body></message>")
        drain(self.alice)
        recent = self.enter(self.client("bob"), "bob", x=f"<x xmlns='{MUC}'><history seconds='50'/></x>")
        self.assertEqual(bodies(recent), ["late"])
        since = self.enter(self.client("carol"), "carol",
                           x=f"<x xmlns='{MUC}'><history since='1970-01-01T00:01:00Z'/></x>")
        self.assertEqual(bodies(since), ["late"])

    def test_maxchars(self):
        """maxchars bounds the characters of the replayed payload."""
        received = self.enter(self.client("bob"), "bob", x=f"<x xmlns='{MUC}'><history maxchars='60'/></x>")
        self.assertEqual(bodies(received), ["line 5"])

    def test_history_survives_a_restart_of_the_cache(self):
        """History comes from the archive when the in-memory cache is gone."""
        channel = self.server.extensions.loaded["channels"][0].get("localhost", "coven")
        channel.history = None
        received = self.enter(self.client("bob"), "bob")
        self.assertEqual(bodies(received), [f"line {n}" for n in range(1, 6)])


class OccupantTests(GroupchatCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.alice, self.bob = self.client("alice"), self.client("bob")
        self.make_room(self.alice, persistentroom=True)
        self.enter(self.bob, "bob")
        drain(self.alice)

    def test_groupchat_is_reflected_to_everyone(self):
        """A groupchat message reaches every occupant, sender included, from room/nick with the
        sender's id, the room's stanza-id and an occupant id."""
        self.bob.send(f"<message to='{ROOM}' type='groupchat' id='b1'><body>hello</body></message>")
        for client in (self.alice, self.bob):
            message = client.expect(f"<message from='{ROOM}/bob' type='groupchat' id='b1'><body>hello</body>"
                                    f"<stanza-id xmlns='urn:xmpp:sid:0' by='{ROOM}'/>"
                                    "<occupant-id xmlns='urn:xmpp:occupant-id:0'/></message>")
        self.assertEqual(len(next(message.elements("urn:xmpp:occupant-id:0", "occupant-id"))["id"]), 16)

    def test_non_occupant_may_not_send(self):
        """A groupchat message from someone not in the room: not-acceptable."""
        carol = self.client("carol")
        carol.send(f"<message to='{ROOM}' type='groupchat'><body>psst</body></message>")
        self.assertEqual(error_of(carol.next()), "not-acceptable")
        self.alice.expect_nothing()

    def test_chat_to_the_room_is_bad_request(self):
        """A message of type chat to the room's bare JID: bad-request."""
        self.bob.send(f"<message to='{ROOM}' type='chat'><body>hi</body></message>")
        self.assertEqual(error_of(self.bob.next()), "bad-request")

    def test_visitor_may_not_speak(self):
        """In a moderated room a visitor gets forbidden; voice granted by a moderator lets it
        speak."""
        self.configure(self.alice, moderatedroom=True)
        drain(self.alice), drain(self.bob)
        self.bob.send(f"<presence to='{ROOM}/bob'><show>away</show></presence>")
        drain(self.bob), drain(self.alice)
        carol = self.client("carol")
        received = self.enter(carol, "carol")
        self.assertEqual(item_of(received[-2])["role"], "visitor")
        carol.send(f"<message to='{ROOM}' type='groupchat'><body>hey</body></message>")
        self.assertEqual(error_of(carol.next()), "forbidden")
        self.admin(self.alice, "<item nick='carol' role='participant'/>")
        drain(carol)
        carol.send(f"<message to='{ROOM}' type='groupchat'><body>hey</body></message>")
        self.assertEqual(bodies(drain(carol)), ["hey"])

    def test_nick_change(self):
        """§7.6: unavailable with 303 and the new nick from the old occupant JID, then the new
        presence; the old nick is free again."""
        self.bob.send(f"<presence to='{ROOM}/robert'/>")
        gone = self.alice.next()
        self.assertEqual((gone["from"], gone["type"]), (f"{ROOM}/bob", "unavailable"))
        self.assertIn(303, codes(gone))
        self.assertEqual(item_of(gone)["nick"], "robert")
        self.assertEqual(self.alice.next()["from"], f"{ROOM}/robert")
        own = drain(self.bob)
        self.assertEqual(codes(own[0]), {110, 303})
        self.assertEqual(codes(own[1]), {110})
        self.enter(self.client("carol"), "bob")

    def test_nick_change_conflict(self):
        """Changing to a nick in use: conflict, and nothing changes."""
        self.bob.send(f"<presence to='{ROOM}/hecate'/>")
        self.assertEqual(error_of(self.bob.next()), "conflict")
        self.alice.expect_nothing()

    def test_status_change(self):
        """A presence update is broadcast with the occupant's show and status."""
        self.bob.send(f"<presence to='{ROOM}/bob'><show>dnd</show><status>brewing</status></presence>")
        self.alice.expect(f"<presence from='{ROOM}/bob'><show>dnd</show><status>brewing</status>"
                          f"<x xmlns='{USER}'><item role='participant'/></x></presence>")

    def test_leave(self):
        """Unavailable presence: everyone is told, the leaver with 110 and its status."""
        self.bob.send(f"<presence to='{ROOM}/bob' type='unavailable'><status>bye</status></presence>")
        self.alice.expect(f"<presence from='{ROOM}/bob' type='unavailable'><status>bye</status>"
                          f"<x xmlns='{USER}'><item role='none'/></x></presence>")
        self.assertEqual(codes(self.bob.next()), {110})
        self.bob.send(f"<message to='{ROOM}' type='groupchat'><body>hi</body></message>")
        self.assertEqual(error_of(self.bob.next()), "not-acceptable")

    def test_disconnect_leaves(self):
        """A session that ends leaves the rooms it was in."""
        self.bob.lose_connection()
        gone = [e for e in drain(self.alice) if e.name == "presence" and e.getAttribute("type") == "unavailable"]
        self.assertEqual([e["from"] for e in gone], [f"{ROOM}/bob"])

    def test_subject(self):
        """A moderator sets the subject: everyone gets it; a newcomer gets it last."""
        self.alice.send(f"<message to='{ROOM}' type='groupchat'><subject>Spells</subject></message>")
        self.bob.expect(f"<message from='{ROOM}/hecate' type='groupchat'><subject>Spells</subject></message>")
        received = self.enter(self.client("carol"), "carol")
        self.assertEqual(str(received[-1].firstChildElement()), "Spells")

    def test_subject_forbidden(self):
        """A participant may not set the subject unless the room allows it."""
        self.bob.send(f"<message to='{ROOM}' type='groupchat'><subject>Mine</subject></message>")
        self.assertEqual(error_of(self.bob.next()), "forbidden")
        self.configure(self.alice, changesubject=True)
        drain(self.bob)
        self.bob.send(f"<message to='{ROOM}' type='groupchat'><subject>Mine</subject></message>")
        self.assertEqual(str(self.alice.next().firstChildElement()), "Mine")

    def test_private_message(self):
        """§7.5: a chat message to room/nick arrives from room/sendernick with an <x/>."""
        self.bob.send(f"<message to='{ROOM}/hecate' type='chat'><body>psst</body></message>")
        self.alice.expect(f"<message from='{ROOM}/bob' type='chat'><body>psst</body><x xmlns='{USER}'/></message>")

    def test_private_message_errors(self):
        """To an unknown nick: item-not-found; of type groupchat: bad-request; from a
        non-occupant: not-acceptable; when the room forbids them: forbidden."""
        self.bob.send(f"<message to='{ROOM}/nobody' type='chat'><body>x</body></message>")
        self.assertEqual(error_of(self.bob.next()), "item-not-found")
        self.bob.send(f"<message to='{ROOM}/hecate' type='groupchat'><body>x</body></message>")
        self.assertEqual(error_of(self.bob.next()), "bad-request")
        carol = self.client("carol")
        carol.send(f"<message to='{ROOM}/hecate' type='chat'><body>x</body></message>")
        self.assertEqual(error_of(carol.next()), "not-acceptable")
        self.configure(self.alice, allowpm="none")
        drain(self.bob)
        self.bob.send(f"<message to='{ROOM}/hecate' type='chat'><body>x</body></message>")
        self.assertEqual(error_of(self.bob.next()), "forbidden")

    def test_temporary_room_goes_with_its_last_occupant(self):
        """A room that is not persistent is destroyed when the last occupant leaves."""
        self.configure(self.alice, persistentroom=False)
        for client, nick in ((self.bob, "bob"), (self.alice, "hecate")):
            client.send(f"<presence to='{ROOM}/{nick}' type='unavailable'/>")
        directory = self.server.extensions.loaded["channels"][0]
        self.assertIsNone(directory.get("localhost", "coven"))
