"""Conversation tests for the "stranger_challenge" extension: strangers' messages are held
until the sender answers a CAPTCHA form (XEP-0158), released in order, refused with an
error when the challenge fails or times out, and never delivered unchallenged."""

from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.plugins import stranger_challenge
from summitd.plugins.registration import hashcash
from summitd.test.test_registration import error_reason, fields_of, labels_of, no_work
from summitd.testing import FakeClient, add_user, make_server

PASSWORD = "secret-password"
NS_CAPTCHA = "urn:xmpp:captcha"
NS_SETTINGS = "urn:summitd:stranger_challenge:0"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def captcha_form(message):
    captcha = next(c for c in message.elements() if c.name == "captcha")
    return captcha.firstChildElement()


def answer_xml(form, value_of_sha=None, qa=None, iq_id="a1"):
    """The IQ answering a challenge form (the work done unless a value is given)."""
    fields = fields_of(form)
    sha = value_of_sha if value_of_sha is not None else hashcash.solve(fields["from"], labels_of(form)["SHA-256"])
    extra = f"<field var='qa'><value>{qa}</value></field>" if qa is not None else ""
    return (f"<iq type='set' id='{iq_id}' to='localhost'><captcha xmlns='{NS_CAPTCHA}'>"
            f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{NS_CAPTCHA}</value></field>"
            f"<field var='challenge'><value>{fields['challenge']}</value></field>"
            f"<field var='SHA-256'><value>{sha}</value></field>{extra}</x></captcha></iq>")


def error_condition(stanza):
    """(condition, text) of an error."""
    return error_reason(stanza)[1:]


class StrangerTestCase(unittest.TestCase):
    options = {}
    extensions = ("roster", "delivery", "blocking", "stranger_challenge")

    def setUp(self):
        options = {"pow_bits": 6, "mode": "new-contacts", **self.options}
        self.server = make_server(extensions=list(self.extensions),
                                  extension_options={"stranger_challenge": options})
        for user in ("alice", "bob", "mallory"):
            add_user(self.server, f"{user}@localhost", PASSWORD)
        self.alice = self.login("alice")
        self.mallory = self.login("mallory")

    def login(self, user):
        client = FakeClient(self.server)
        client.login(user, PASSWORD, "res")
        client.send("<presence/>")
        client.send("<iq type='get' id='ros'><query xmlns='jabber:iq:roster'/></iq>")
        client.expect("<iq type='result' id='ros'/>")
        return client

    def send(self, client, body, to="alice@localhost", id="m1"):
        client.send(f"<message to='{to}' type='chat' id='{id}'><body>{body}</body></message>")

    def challenge(self):
        """The challenge mallory receives."""
        message = self.mallory.expect("<message from='localhost' to='mallory@localhost/res'/>")
        return message, captcha_form(message)

    def held(self):
        return self.server.database.runInteraction(
            "count", lambda txn: txn.execute("SELECT COUNT(*) FROM stranger_held").fetchone()[0]).result


class HoldAndReleaseTests(StrangerTestCase):
    def test_stranger_is_challenged_and_released_in_order(self):
        """mallory's messages are held (alice gets nothing), mallory gets one XEP-0158
        challenge; the right answer gets a result and alice the messages, in order."""
        for n in range(3):
            self.send(self.mallory, f"hello {n}", id=f"m{n}")
        message, form = self.challenge()
        self.assertEqual(fields_of(form)["from"], "alice@localhost")
        self.assertEqual(fields_of(form)["sid"], "m0")
        self.mallory.expect_nothing()
        self.alice.expect_nothing()
        self.assertEqual(self.held(), 3)
        self.mallory.send(answer_xml(form))
        self.mallory.expect("<iq type='result' id='a1'/>")
        for n in range(3):
            self.alice.expect(f"<message from='mallory@localhost/res' id='m{n}'><body>hello {n}</body></message>")
        self.assertEqual(self.held(), 0)

    def test_answered_sender_passes_afterwards(self):
        """new-contacts mode remembers a sender who answered."""
        self.send(self.mallory, "first")
        _, form = self.challenge()
        self.mallory.send(answer_xml(form))
        self.mallory.next()
        self.alice.next()
        self.send(self.mallory, "second", id="m2")
        self.alice.expect("<message id='m2'><body>second</body></message>")
        self.mallory.expect_nothing()

    def test_contacts_pass(self):
        """A sender in the recipient's roster is not a stranger."""
        self.alice.send("<iq type='set' id='r'><query xmlns='jabber:iq:roster'><item jid='bob@localhost'/></query></iq>")
        self.alice.expect("<iq type='set'/>")
        self.alice.expect("<iq type='result' id='r'/>")
        bob = self.login("bob")
        self.send(bob, "hi alice")
        self.alice.expect("<message from='bob@localhost/res'><body>hi alice</body></message>")
        bob.expect_nothing()

    def test_wrong_answer(self):
        """A wrong answer is not-acceptable; after max_attempts the held messages come back
        to the sender with policy-violation."""
        self.send(self.mallory, "spam")
        _, form = self.challenge()
        for attempt in range(3):
            wrong = no_work("alice@localhost", labels_of(form)["SHA-256"])
            self.mallory.send(answer_xml(form, value_of_sha=wrong, iq_id=f"w{attempt}"))
            if attempt == 2:
                bounced = self.mallory.expect("<message type='error' id='m1'/>")
                condition, text = error_condition(bounced)
                self.assertEqual(condition, "policy-violation")
                self.assertIn("failed too many times", text)
            reply = self.mallory.expect(f"<iq type='error' id='w{attempt}'/>")
            self.assertEqual(error_condition(reply)[0], "not-acceptable")
        self.alice.expect_nothing()
        self.mallory.send(answer_xml(form, iq_id="late"))
        self.assertEqual(error_condition(self.mallory.expect("<iq type='error' id='late'/>"))[0],
                         "service-unavailable")

    def test_only_the_challenged_sender_answers(self):
        """Someone else answering mallory's challenge gets service-unavailable."""
        self.send(self.mallory, "spam")
        _, form = self.challenge()
        bob = self.login("bob")
        bob.send(answer_xml(form))
        self.assertEqual(error_condition(bob.expect("<iq type='error' id='a1'/>"))[0], "service-unavailable")
        self.alice.expect_nothing()

    def test_per_sender_cap(self):
        """Beyond max_held_per_sender the sender gets policy-violation at once."""
        for n in range(21):
            self.send(self.mallory, f"spam {n}", id=f"s{n}")
        self.challenge()
        condition, text = error_condition(self.mallory.expect("<message type='error' id='s20'/>"))
        self.assertEqual(condition, "policy-violation")
        self.assertIn("too many", text)
        self.assertEqual(self.held(), 20)

    def test_blocking_refuses_held_messages(self):
        """Blocking the stranger refuses what was held with service-unavailable."""
        self.send(self.mallory, "spam")
        self.challenge()
        self.alice.send("<iq type='set' id='b'><block xmlns='urn:xmpp:blocking'><item jid='mallory@localhost'/>"
                        "</block></iq>")
        self.alice.expect("<iq type='result' id='b'/>")
        self.assertEqual(error_condition(self.mallory.expect("<message type='error' id='m1'/>"))[0],
                         "service-unavailable")
        self.assertEqual(self.held(), 0)

    def test_errors_and_groupchat_pass(self):
        """Error and groupchat messages are not challenged."""
        self.mallory.send("<message to='alice@localhost/res' type='error' id='e'><error type='cancel'>"
                          f"<item-not-found xmlns='{STANZAS}'/></error></message>")
        self.alice.expect("<message type='error' id='e'/>")
        self.mallory.expect_nothing()


class TimeoutTests(StrangerTestCase):
    options = {"hold_seconds": 300, "sweep_interval": 15}

    def test_challenge_timeout(self):
        """Unanswered within hold_seconds: every held message comes back as a
        policy-violation error naming the timeout; alice never sees them."""
        self.send(self.mallory, "one", id="x1")
        self.send(self.mallory, "two", id="x2")
        self.challenge()
        self.server.clock.advance(300 + 30)
        for id in ("x1", "x2"):
            condition, text = error_condition(self.mallory.expect(f"<message type='error' id='{id}'/>"))
            self.assertEqual(condition, "policy-violation")
            self.assertIn("challenge timeout", text)
        self.alice.expect_nothing()
        self.assertEqual(self.held(), 0)


class SettingsTests(StrangerTestCase):
    def settings(self, client, payload, type="set"):
        client.send(f"<iq type='{type}' id='s'>{payload}</iq>")
        return client.expect("<iq id='s'/>")

    def test_mode_off(self):
        """A user who turns the challenge off gets strangers' messages directly."""
        self.settings(self.alice, f"<settings xmlns='{NS_SETTINGS}' mode='off'/>")
        self.send(self.mallory, "hi")
        self.alice.expect("<message><body>hi</body></message>")
        reply = self.settings(self.alice, f"<settings xmlns='{NS_SETTINGS}'/>", type="get")
        self.assertEqual(reply.firstChildElement()["mode"], "off")

    def test_trust_list(self):
        """A trusted account (or domain) passes; distrusting it again challenges it."""
        self.settings(self.alice, f"<trust xmlns='{NS_SETTINGS}' jid='mallory@localhost'/>")
        self.send(self.mallory, "hi")
        self.alice.expect("<message><body>hi</body></message>")
        self.settings(self.alice, f"<distrust xmlns='{NS_SETTINGS}' jid='mallory@localhost'/>")
        self.send(self.mallory, "again")
        self.challenge()
        self.alice.expect_nothing()

    def test_strict_needs_a_subscription(self):
        """strict: a roster item without subscription does not admit the sender."""
        self.settings(self.alice, f"<settings xmlns='{NS_SETTINGS}' mode='strict'/>")
        self.alice.send("<iq type='set' id='r'><query xmlns='jabber:iq:roster'>"
                        "<item jid='mallory@localhost'/></query></iq>")
        self.alice.next()
        self.alice.next()
        self.send(self.mallory, "hi")
        self.challenge()
        self.alice.expect_nothing()

    def test_others_cannot_change_settings(self):
        """Settings belong to the account: another user's IQ is forbidden."""
        self.mallory.send(f"<iq type='set' id='s' to='alice@localhost'><settings xmlns='{NS_SETTINGS}' mode='off'/></iq>")
        self.assertEqual(error_condition(self.mallory.expect("<iq type='error' id='s'/>"))[0], "forbidden")

    def test_bad_mode(self):
        """An unknown mode is a bad-request."""
        reply = self.settings(self.alice, f"<settings xmlns='{NS_SETTINGS}' mode='sometimes'/>")
        self.assertEqual(error_condition(reply)[0], "bad-request")


class ConfiguredTests(StrangerTestCase):
    options = {"mode": "off", "trusted_domains": ["example.org"], "domains": {"localhost": "new-contacts"},
               "questions": [{"question": "Colour of a stop light?", "answers": ["red"]}]}

    def test_question_answer(self):
        """A configured question can be answered instead of the work."""
        self.send(self.mallory, "hi")
        _, form = self.challenge()
        self.assertEqual(labels_of(form)["qa"], "Colour of a stop light?")
        self.mallory.send(answer_xml(form, value_of_sha="", qa=" Red "))
        self.mallory.expect("<iq type='result' id='a1'/>")
        self.alice.expect("<message><body>hi</body></message>")

    def test_trusted_domain(self):
        """Senders of a trusted domain are not challenged (routed as from a peer)."""
        from summitd.core.xmlstream import parse_element
        self.server.router.route(parse_element(
            "<message from='friend@example.org/x' to='alice@localhost' type='chat'><body>hey</body></message>",
            "jabber:client"))
        self.alice.expect("<message from='friend@example.org/x'><body>hey</body></message>")

    def test_config_errors(self):
        """Invalid options are reported with their key paths."""
        with self.assertRaises(ConfigError) as caught:
            stranger_challenge.parse_config({"mode": "sometimes", "pow_bits": 99, "questions": ["?"]}, "x")
        self.assertEqual({p for p, _ in caught.exception.errors}, {"x.mode", "x.pow_bits", "x.questions"})


class RestartTests(StrangerTestCase):
    def test_pending_challenges_survive_a_restart(self):
        """Held messages and challenges are durable: after the extension reloads (as after
        a restart), the answer still releases them."""
        self.send(self.mallory, "kept")
        _, form = self.challenge()
        manager = self.server.extensions
        from summitd.synchronous import result_of
        result_of(manager.unload("stranger_challenge"))
        result_of(manager.load("stranger_challenge", stranger_challenge.parse_config(
            {"pow_bits": 6, "mode": "new-contacts"}, "x")))
        self.mallory.send(answer_xml(form))
        self.mallory.expect("<iq type='result' id='a1'/>")
        self.alice.expect("<message><body>kept</body></message>")


class AccountDeletionTests(StrangerTestCase):
    def test_recipient_deleted(self):
        """Held messages of a deleted recipient are refused with service-unavailable."""
        self.send(self.mallory, "spam")
        self.challenge()
        from summitd.synchronous import result_of
        result_of(self.server.account_manager.delete("alice@localhost"))
        self.server.clock.advance(0)
        self.assertEqual(error_condition(self.mallory.expect("<message type='error' id='m1'/>"))[0],
                         "service-unavailable")
        self.assertEqual(self.held(), 0)

    def test_sender_deleted(self):
        """A deleted sender leaves no held message, challenge or approval behind."""
        self.send(self.mallory, "spam")
        self.challenge()
        from summitd.synchronous import result_of
        result_of(self.server.account_manager.delete("mallory@localhost"))
        self.server.clock.advance(0)
        self.assertEqual(self.held(), 0)
        self.alice.expect_nothing()
