"""Message Carbons (summitd.plugins.carbons, XEP-0280): switching, the §6.1 rules, who gets
received and sent copies, <private/> and forged carbons, through a whole server."""

from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.core import events
from summitd.plugins import carbons
from summitd.core.jid import parse_jid
from summitd.core.session import Session
from summitd.testing import FakeClient, add_user, make_server, parse_xml, result_of

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
ENABLE = "<iq type='set' id='{id}'><{what} xmlns='urn:xmpp:carbons:2'/></iq>"
ALICE, BOB = "alice@localhost", "bob@localhost"
DESK, PHONE, TABLET = ALICE + "/desk", ALICE + "/phone", ALICE + "/tablet"


def carbon_pattern(kind, to, inner, type="chat"):
    """A carbon of ``kind`` ('received'/'sent') for ``to`` forwarding ``inner``, a pattern of
    the original <message> (written without xmlns: it must be jabber:client)."""
    inner = inner.replace("<message", "<message xmlns='jabber:client'", 1)
    type_attr = f" type='{type}'" if type else ""
    return (f"<message from='{ALICE}' to='{to}'{type_attr}><{kind} xmlns='urn:xmpp:carbons:2'>"
            f"<forwarded xmlns='urn:xmpp:forward:0'>{inner}</forwarded></{kind}></message>")


class CarbonsTestCase(unittest.TestCase):
    """A server with carbons; alice and bob exist, bob/laptop is online, and alice's
    ``resources`` ((name, carbons enabled) pairs) log in as ``self.<name>``."""

    options = {}
    resources = ()

    def setUp(self):
        self.server = make_server(extensions=["carbons"], extension_options={"carbons": self.options})
        add_user(self.server, ALICE, "pw")
        add_user(self.server, BOB, "pw")
        self.bob = self.client("bob", "laptop")
        for name, enabled in self.resources:
            setattr(self, name, self.client("alice", name, carbons=enabled))

    def client(self, user, resource, priority=0, carbons=False):
        """A logged-in client that sent initial presence (with ``priority``) and, when asked,
        enabled carbons."""
        client = FakeClient(self.server)
        client.login(user, "pw", resource)
        client.send(f"<presence><priority>{priority}</priority></presence>")
        if carbons:
            self.switch(client, "enable")
        return client

    def switch(self, client, what, to=None):
        """Send <enable/> or <disable/>; returns the IQ reply."""
        stanza = parse_xml(ENABLE.format(id=what, what=what))
        if to is not None:
            stanza["to"] = to
        client.send(stanza.toXml())
        return client.next()

    def inject(self, xml):
        """Route a stanza as if it arrived from another server (its 'from' is trusted)."""
        self.server.router.route(parse_xml(xml))

    def assertQuiet(self, *clients):
        for client in clients:
            client.expect_nothing()


class SwitchTests(CarbonsTestCase):
    resources = (("desk", False), ("phone", False))

    def chat_to_desk(self):
        self.bob.send(f"<message to='{DESK}' type='chat'><body>hi</body></message>")
        self.desk.expect("<message type='chat'><body>hi</body></message>")

    def test_enable_and_disable(self):
        """<enable/> makes the session get copies, <disable/> stops them; both answer with
        an empty result from the bare JID."""
        self.switch(self.phone, "enable")
        self.chat_to_desk()
        self.phone.expect(carbon_pattern("received", PHONE, "<message><body>hi</body></message>"))
        reply = self.switch(self.phone, "disable")
        self.assertEqual(reply["type"], "result")
        self.assertEqual(list(reply.elements()), [])
        self.chat_to_desk()
        self.assertQuiet(self.phone)

    def test_off_by_default(self):
        """A session that never enabled carbons gets no copies."""
        self.chat_to_desk()
        self.assertQuiet(self.phone)

    def test_repeated_requests_are_no_errors(self):
        """Enabling twice and disabling twice each answer with a result (XEP-0280 §10.1)."""
        for what in ("enable", "enable", "disable", "disable"):
            self.assertEqual(self.switch(self.phone, what)["type"], "result", what)

    def test_to_own_bare_jid(self):
        """The request may be addressed to the user's bare JID, which answers."""
        reply = self.switch(self.phone, "enable", to=ALICE)
        self.assertEqual((reply["type"], reply.getAttribute("from")), ("result", ALICE))
        self.chat_to_desk()
        self.phone.expect(carbon_pattern("received", PHONE, "<message/>"))

    def test_other_users_carbons(self):
        """Switching carbons of another account is not-allowed and changes nothing."""
        reply = self.switch(self.bob, "enable", to=ALICE)
        self.assertEqual(reply["type"], "error")
        self.assertIsNotNone(reply.error.firstChildElement())
        self.assertEqual(reply.error.firstChildElement().name, "not-allowed")
        self.chat_to_desk()
        self.assertQuiet(self.phone, self.bob)

    def test_per_session(self):
        """The state belongs to the session: a new session on the same resource starts off."""
        self.switch(self.phone, "enable")
        self.phone.lose_connection()
        self.phone = self.client("alice", "phone")
        self.chat_to_desk()
        self.assertQuiet(self.phone)

    def test_unload(self):
        """Unloading the extension stops the copies, forgets every session's state and
        withdraws the IQ handlers."""
        self.switch(self.phone, "enable")
        result_of(self.server.extensions.unload("carbons"))
        self.assertNotIn(carbons.STATE, self.server.router.session(parse_jid(PHONE)).data)
        self.chat_to_desk()
        self.assertQuiet(self.phone)
        self.assertEqual(self.switch(self.phone, "enable")["type"], "error")

    def test_disco_features(self):
        """The server announces urn:xmpp:carbons:2 and the rules of urn:xmpp:carbons:rules:0."""
        features = self.server.hooks.collect(events.SERVER_DISCO_FEATURES, "localhost")
        self.assertIn("urn:xmpp:carbons:2", features)
        self.assertIn("urn:xmpp:carbons:rules:0", features)


# -- §6.1, one test per rule -----------------------------------------------------------------
# (name, direction, message, copied, why). "in": the message reaches alice/desk from
# outside (its 'from' as given, else bob's full JID); "out": alice/desk sends it to bob.
RULES = [
    ("chat_in", "in", "<message type='chat'><body>hi</body></message>", True,
     "An inbound chat message is copied."),
    ("chat_out", "out", "<message type='chat'><body>hi</body></message>", True,
     "An outbound chat message is copied."),
    ("chat_without_body", "in", "<message type='chat'/>", True,
     "Type chat is enough, body or not."),
    ("normal_with_body", "in", "<message><body>hi</body></message>", True,
     "A normal message with a body is copied."),
    ("normal_without_body", "in", "<message><subject>s</subject></message>", False,
     "A normal message without a body (and no IM payload) is not copied."),
    ("unknown_type_is_normal", "in", "<message type='bogus'><body>hi</body></message>", True,
     "An unknown type counts as normal (RFC 6121 §5.2.2): with a body it is copied."),
    ("receipt", "in", "<message id='r1'><received xmlns='urn:xmpp:receipts' id='m1'/></message>",
     True, "A normal message carrying a receipt (XEP-0184) is copied."),
    ("chat_state", "out", "<message><composing xmlns='http://jabber.org/protocol/chatstates'/>"
     "</message>", True, "A normal message carrying a chat state (XEP-0085) is copied."),
    ("chat_marker", "in", "<message><displayed xmlns='urn:xmpp:chat-markers:0' id='m1'/></message>",
     True, "A normal message carrying a chat marker (XEP-0333) is copied."),
    ("groupchat", "in", "<message type='groupchat'><body>hi</body></message>", False,
     "Groupchat messages are not copied."),
    ("headline", "in", "<message type='headline'><body>news</body></message>", False,
     "Headline messages are not copied."),
    ("private", "out", "<message type='chat'><body>hi</body><private xmlns='urn:xmpp:carbons:2'/>"
     "<no-copy xmlns='urn:xmpp:hints'/></message>", False,
     "A message with <private/> is not copied."),
    ("private_alone", "in", "<message type='chat'><body>hi</body>"
     "<private xmlns='urn:xmpp:carbons:2'/></message>", False,
     "<private/> alone is enough to prevent the copy."),
    ("no_copy_hint", "in", "<message type='chat'><body>hi</body><no-copy xmlns='urn:xmpp:hints'/>"
     "</message>", False, "The XEP-0334 no-copy hint prevents the copy."),
    ("carbon_itself", "out", "<message type='chat'><sent xmlns='urn:xmpp:carbons:2'>"
     "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' type='chat'/>"
     "</forwarded></sent></message>", False, "A message that is itself a carbon is not copied."),
    ("muc_pm_in", "in", "<message from='room@muc.example/nick' type='chat'><body>psst</body>"
     "<x xmlns='http://jabber.org/protocol/muc#user'/></message>", False,
     "A MUC private message from an occupant's full JID is not copied."),
    ("muc_pm_out", "out", "<message type='chat'><body>psst</body>"
     "<x xmlns='http://jabber.org/protocol/muc#user'/></message>", True,
     "A MUC private message the user sends is copied."),
    ("muc_user_from_bare", "in", "<message from='room@muc.example' type='chat'><body>x</body>"
     "<x xmlns='http://jabber.org/protocol/muc#user'/></message>", True,
     "The MUC PM exclusion needs an occupant's full JID; from a bare JID chat is chat."),
    ("direct_invitation", "in", "<message from='carol@example.org/pc'>"
     "<x xmlns='jabber:x:conference' jid='room@muc.example'/></message>", True,
     "A direct MUC invitation (XEP-0249) is copied."),
    ("mediated_invitation", "in", "<message from='room@muc.example'>"
     "<x xmlns='http://jabber.org/protocol/muc#user'><invite from='carol@example.org/pc'/></x>"
     "</message>", True, "A mediated MUC invitation is copied."),
    ("unanswered_error", "in", "<message type='error' id='x1'><error type='cancel'>"
     "<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", False,
     "An error that answers no copied message is not copied."),
]


class RuleTests(CarbonsTestCase):
    """Each rule: does alice/phone (carbons on) get a copy of a message alice/desk gets or sends?"""

    resources = (("desk", False), ("phone", True))

    def exchange(self, direction, xml):
        """Send the message in ``direction``; returns the element the addressee received."""
        stanza = parse_xml(xml)
        if direction == "out":
            stanza["to"] = BOB + "/laptop"
            self.desk.send(stanza.toXml())
            return self.bob.next()
        stanza["to"] = DESK
        stanza.attributes.setdefault("from", BOB + "/laptop")
        self.server.router.route(stanza)
        return self.desk.next()

    def check_rule(self, direction, xml, copied):
        delivered = self.exchange(direction, xml)
        if copied:
            kind = "received" if direction == "in" else "sent"
            got = self.phone.expect(carbon_pattern(kind, PHONE, "<message/>", type=None))
            self.assertEqual(got.getAttribute("type"), delivered.getAttribute("type"))
        self.assertQuiet(self.phone, self.desk, self.bob)


def _rule_test(direction, xml, copied, doc):
    def test(self):
        self.check_rule(direction, xml, copied)
    test.__doc__ = doc
    return test


for _name, _direction, _xml, _copied, _doc in RULES:
    setattr(RuleTests, f"test_rule_{_name}", _rule_test(_direction, _xml, _copied, _doc))


class ErrorRuleTests(CarbonsTestCase):
    """§6.1: an error is copied when it answers a message that was copied."""

    resources = (("desk", False), ("phone", True))

    def test_bounce_of_a_sent_message(self):
        """The error bouncing a copied sent message is copied as received."""
        self.desk.send("<message to='nobody@localhost' id='m1' type='chat'><body>hi</body></message>")
        self.phone.expect(carbon_pattern("sent", PHONE, "<message to='nobody@localhost'/>"))
        error = ("<message from='nobody@localhost' to='alice@localhost/desk' type='error' id='m1'>"
                 "<error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
                 "</error></message>")
        self.desk.expect(error)
        self.phone.expect(carbon_pattern("received", PHONE, error, type="error"))
        self.assertQuiet(self.desk, self.phone)

    def test_error_sent_in_reply(self):
        """An error a client sends in reply to a copied received message is copied as sent."""
        self.bob.send(f"<message to='{DESK}' id='b1' type='chat'><body>hi</body></message>")
        self.desk.next()
        self.phone.expect(carbon_pattern("received", PHONE, "<message id='b1'/>"))
        self.desk.send("<message to='bob@localhost/laptop' id='b1' type='error'><error type='modify'>"
                       "<not-acceptable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        self.bob.expect("<message type='error' id='b1'/>")
        self.phone.expect(carbon_pattern("sent", PHONE, "<message type='error' id='b1'/>", type="error"))

    def test_error_with_another_id(self):
        """An error whose id matches no copied message to that peer is not copied."""
        self.desk.send("<message to='bob@localhost' id='m1' type='chat'><body>hi</body></message>")
        self.phone.next()
        self.bob.next()
        self.inject(f"<message from='carol@example.org' to='{DESK}' type='error' id='m1'>"
                    "<error type='cancel'><gone xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
                    "</message>")
        self.desk.expect("<message type='error'/>")
        self.assertQuiet(self.phone)


class RecipientTests(CarbonsTestCase):
    """Who gets received and sent copies."""

    def test_carbon_shape(self):
        """A received carbon: from the bare JID, to the copy's full JID, the original's type,
        and the original inside <received><forwarded> in jabber:client (XEP-0297)."""
        desk = self.client("alice", "desk", carbons=True)
        phone = self.client("alice", "phone", carbons=True)
        self.bob.send(f"<message to='{DESK}' type='chat' id='c1'><body>hi</body>"
                      "<thread>t1</thread></message>")
        desk.expect("<message from='bob@localhost/laptop' type='chat' id='c1'/>")
        got = phone.expect(carbon_pattern(
            "received", PHONE, f"<message from='bob@localhost/laptop' to='{DESK}' "
            "type='chat' id='c1'><body>hi</body><thread>t1</thread></message>"))
        self.assertEqual(list(got.attributes), ["from", "to", "type"])
        self.assertQuiet(desk, phone)

    def test_several_resources(self):
        """Every other carbons-enabled resource gets one copy; one without carbons gets none."""
        desk = self.client("alice", "desk")
        phone = self.client("alice", "phone", carbons=True)
        tablet = self.client("alice", "tablet", carbons=True)
        plain = self.client("alice", "plain")
        self.bob.send(f"<message to='{DESK}' type='chat'><body>hi</body></message>")
        desk.next()
        phone.expect(carbon_pattern("received", PHONE, "<message/>"))
        tablet.expect(carbon_pattern("received", TABLET, "<message/>"))
        self.assertQuiet(desk, phone, tablet, plain)

    def test_bare_jid_to_top_priority(self):
        """A bare-JID chat reaches the top-priority resource; the others get carbons."""
        desk = self.client("alice", "desk", priority=5, carbons=True)
        phone = self.client("alice", "phone", priority=1, carbons=True)
        self.bob.send(f"<message to='{ALICE}' type='chat'><body>hi</body></message>")
        desk.expect("<message type='chat'><body>hi</body></message>")
        phone.expect(carbon_pattern("received", PHONE, f"<message to='{ALICE}'/>"))
        self.assertQuiet(desk, phone)

    def test_bare_jid_to_several(self):
        """When delivery sends a bare-JID message to several resources (same top priority),
        none of them also gets a carbon."""
        desk = self.client("alice", "desk", carbons=True)
        phone = self.client("alice", "phone", carbons=True)
        self.bob.send(f"<message to='{ALICE}' type='chat'><body>hi</body></message>")
        desk.expect("<message type='chat'/>")
        phone.expect("<message type='chat'><body>hi</body></message>")
        self.assertQuiet(desk, phone)

    def test_full_jid_of_lower_priority(self):
        """A full-JID message goes to that resource only, whatever the priorities; the
        higher-priority resource gets the carbon."""
        desk = self.client("alice", "desk", priority=5, carbons=True)
        phone = self.client("alice", "phone", carbons=True)
        self.bob.send(f"<message to='{PHONE}' type='chat'><body>hi</body></message>")
        phone.expect("<message type='chat'><body>hi</body></message>")
        desk.expect(carbon_pattern("received", DESK, f"<message to='{PHONE}'/>"))
        self.assertQuiet(desk, phone)

    def test_negative_priority(self):
        """A negative-priority resource never gets bare-JID messages, so it gets a carbon; a
        message to its full JID reaches it and the others get the carbon."""
        desk = self.client("alice", "desk", carbons=True)
        phone = self.client("alice", "phone", priority=-1, carbons=True)
        self.bob.send(f"<message to='{ALICE}' type='chat'><body>one</body></message>")
        desk.expect("<message><body>one</body></message>")
        phone.expect(carbon_pattern("received", PHONE, "<message><body>one</body></message>"))
        self.bob.send(f"<message to='{PHONE}' type='chat'><body>two</body></message>")
        phone.expect("<message><body>two</body></message>")
        desk.expect(carbon_pattern("received", DESK, "<message><body>two</body></message>"))
        self.assertQuiet(desk, phone)

    def test_refused_message_not_copied(self):
        """A normal message to a resource that is not online is refused with an error
        (delivery's rule), so no resource gets a copy of it either."""
        desk = self.client("alice", "desk", carbons=True)
        self.bob.send(f"<message to='{ALICE}/gone' id='n1'><body>hi</body></message>")
        self.bob.expect("<message type='error' id='n1'/>")
        self.assertQuiet(desk, self.bob)

    def test_sent_copies(self):
        """A message a client sends is copied as <sent/> to the other carbons-enabled
        resources, not back to the sender, even when the sender enabled carbons."""
        desk = self.client("alice", "desk", carbons=True)
        phone = self.client("alice", "phone", carbons=True)
        tablet = self.client("alice", "tablet")
        desk.send("<message to='bob@localhost' type='chat' id='s1'><body>hello</body></message>")
        self.bob.expect(f"<message from='{DESK}' type='chat'><body>hello</body></message>")
        phone.expect(carbon_pattern(
            "sent", PHONE, f"<message from='{DESK}' to='bob@localhost' type='chat' id='s1'>"
            "<body>hello</body></message>"))
        self.assertQuiet(desk, phone, tablet, self.bob)

    def test_sender_without_carbons(self):
        """Sent copies go out whether or not the sending client enabled carbons (§8)."""
        desk = self.client("alice", "desk")
        phone = self.client("alice", "phone", carbons=True)
        desk.send("<message to='bob@localhost' type='chat'><body>hi</body></message>")
        self.bob.next()
        phone.expect(carbon_pattern("sent", PHONE, "<message to='bob@localhost'/>"))
        self.assertQuiet(desk, phone, self.bob)

    def test_between_own_resources(self):
        """A message from one resource to another of the same account is copied once, as
        received, to the resources that neither sent nor got it."""
        desk = self.client("alice", "desk", carbons=True)
        phone = self.client("alice", "phone", carbons=True)
        tablet = self.client("alice", "tablet", carbons=True)
        desk.send(f"<message to='{PHONE}' type='chat'><body>note to self</body></message>")
        phone.expect(f"<message from='{DESK}'><body>note to self</body></message>")
        tablet.expect(carbon_pattern("received", TABLET, f"<message from='{DESK}' to='{PHONE}'/>"))
        self.assertQuiet(desk, phone, tablet)

    def test_message_without_to(self):
        """A message without 'to' is for the own account (RFC 6120 §10.3): no sent copy;
        the resource delivery chose gets it and the others a received copy."""
        desk = self.client("alice", "desk", priority=1, carbons=True)
        phone = self.client("alice", "phone", carbons=True)
        tablet = self.client("alice", "tablet", priority=2, carbons=True)
        phone.send("<message type='chat'><body>memo</body></message>")
        tablet.expect(f"<message from='{PHONE}'><body>memo</body></message>")
        desk.expect(carbon_pattern("received", DESK, f"<message from='{PHONE}'/>"))
        self.assertQuiet(desk, phone, tablet)


class PrivateTests(CarbonsTestCase):
    resources = (("desk", True), ("phone", True))

    def send_private(self):
        self.bob.send(f"<message to='{DESK}' type='chat'><body>secret</body>"
                      "<private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>")
        return self.desk.expect("<message><body>secret</body><no-copy xmlns='urn:xmpp:hints'/></message>")

    def test_private_stripped(self):
        """<private/> keeps the message from being copied and is removed before delivery."""
        got = self.send_private()
        self.assertEqual([c.name for c in got.elements()], ["body", "no-copy"])
        self.assertQuiet(self.phone, self.desk)

    def test_private_kept_for_a_remote_recipient(self):
        """On its way out, <private/> stays on the message: the recipient's server needs it."""
        seen = []
        self.server.hooks.add(events.STANZA_TO_REMOTE, lambda stanza, to: seen.append(stanza) or True)
        self.desk.send("<message to='carol@example.org' type='chat'><body>secret</body>"
                       "<private xmlns='urn:xmpp:carbons:2'/></message>")
        self.assertEqual([c.name for c in seen[0].elements()], ["body", "private"])
        self.assertQuiet(self.phone, self.desk)


class KeepPrivateTests(PrivateTests):
    options = {"strip_private": False}

    def test_private_stripped(self):
        """With strip_private = false, <private/> reaches the recipient, still uncopied."""
        got = self.send_private()
        self.assertEqual([c.name for c in got.elements()], ["body", "private", "no-copy"])
        self.assertQuiet(self.phone, self.desk)


class ForgeryTests(CarbonsTestCase):
    resources = (("desk", True), ("phone", True))

    def test_forged_received_stripped(self):
        """A <received/> from anyone but alice's bare JID is no carbon: it is removed before
        delivery, and the rest of the message is handled as any other."""
        self.bob.send(f"<message to='{DESK}' type='chat'><body>fake</body>"
                      "<received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>"
                      f"<message xmlns='jabber:client' from='carol@example.org' to='{DESK}'>"
                      "<body>trust me</body></message></forwarded></received></message>")
        got = self.desk.expect("<message from='bob@localhost/laptop'><body>fake</body></message>")
        self.assertEqual([c.name for c in got.elements()], ["body"])
        copy = self.phone.expect(carbon_pattern("received", PHONE, "<message><body>fake</body></message>"))
        inner = copy.received.forwarded.message
        self.assertEqual([c.name for c in inner.elements()], ["body"])

    def test_forged_sent_from_remote(self):
        """A <sent/> from a remote full JID of alice's own domain name is stripped too."""
        self.inject(f"<message from='alice@localhost/evil' to='{DESK}'>"
                    "<sent xmlns='urn:xmpp:carbons:2'/></message>")
        got = self.desk.expect("<message/>")
        self.assertEqual(list(got.elements()), [])
        self.assertQuiet(self.phone)

    def test_from_own_bare_jid_kept(self):
        """From the account's own bare JID (only the server can send that) it stays, and is
        not copied again."""
        self.inject(f"<message from='{ALICE}' to='{DESK}' type='chat'><sent xmlns='urn:xmpp:carbons:2'>"
                    "<forwarded xmlns='urn:xmpp:forward:0'/></sent></message>")
        self.desk.expect(f"<message from='{ALICE}'><sent xmlns='urn:xmpp:carbons:2'/></message>")
        self.assertQuiet(self.phone)


class ConfigTests(unittest.TestCase):
    def test_defaults(self):
        """Without options, <private/> is stripped."""
        self.assertEqual(carbons.parse_config({}, "extensions.carbons"), {"strip_private": True})

    def test_bad_options(self):
        """Unknown options and a non-boolean strip_private are reported with their paths."""
        with self.assertRaises(ConfigError) as caught:
            carbons.parse_config({"strip_private": "yes", "colour": 1}, "extensions.carbons")
        self.assertEqual(sorted(path for path, _ in caught.exception.errors),
                         ["extensions.carbons.colour", "extensions.carbons.strip_private"])


class RecipientsFunctionTests(unittest.TestCase):
    def test_original_recipients_rule(self):
        """original_recipients follows the delivery extension's tables: an error for a gone
        resource reaches nobody, a normal message for it is refused (None), a chat message
        reaches the top priority, a headline every non-negative resource, groupchat nobody
        (refused)."""
        sessions = []
        for resource, priority in (("a", 3), ("b", 0), ("c", -1)):
            session = Session(parse_jid(f"{ALICE}/{resource}"), stream=None)
            session.available, session.priority = True, priority
            sessions.append(session)
        gone, bare = parse_jid(ALICE + "/gone"), parse_jid(ALICE)

        def pick(to, type):
            return carbons.original_recipients(sessions, to, parse_xml(f"<message type='{type}'/>"))

        self.assertEqual(pick(gone, "error"), [])
        self.assertIsNone(pick(gone, "normal"))
        self.assertEqual(pick(gone, "chat"), sessions[:1])
        self.assertEqual(pick(sessions[2].jid, "chat"), sessions[2:])
        self.assertEqual(pick(bare, "bogus"), sessions[:1])
        self.assertEqual(pick(bare, "headline"), sessions[:2])
        self.assertIsNone(pick(bare, "groupchat"))
        self.assertEqual(carbons.original_recipients(sessions[2:], bare, parse_xml("<message/>")), [])
