"""Tests for the router (summitd.core.router) and the IQ table (summitd.core.iq), without
any transport: sessions are fakes that keep what they are sent."""

from twisted.internet import defer, task
from twisted.trial import unittest
from twisted.words.xish import domish

from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.hooks import Hooks, Priority
from summitd.core.iq import ACCOUNT, SERVER, DuplicateHandler, IQTable, IQTimeout
from summitd.core.jid import parse_jid
from summitd.core.router import Router
from summitd.core.session import Session
from summitd.testing import matches, parse_xml, result_of

NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_TEST = "urn:example:test"


class FakeStream:
    """The transport side of a Session: keeps what it is sent."""

    def __init__(self):
        self.sent = []

    def send(self, stanza):
        self.sent.append(stanza)

    def close(self, error=None):
        pass


def error_condition(stanza):
    """The defined condition of an error stanza (None when it is no error)."""
    if stanza.getAttribute("type") != "error":
        return None
    for child in stanza.elements():
        if child.name == "error":
            for condition in child.elements():
                if condition.uri == NS_STANZAS:
                    return condition.name
    return None


class RoutingTestCase(unittest.TestCase):
    """A router for 'localhost' with helpers to bind fake sessions."""

    def setUp(self):
        self.clock = task.Clock()
        self.hooks = Hooks()
        self.router = Router(["localhost"], self.hooks, self.clock)
        self.sender = self.bind("sender@localhost/s")

    def bind(self, full_jid, available=False, priority=0):
        session = Session(parse_jid(full_jid), FakeStream())
        session.available = available
        session.priority = priority
        self.assertIsNone(self.router.bind(session))
        return session

    def route(self, xml):
        """Route a stanza as the sender's (its 'from' stamped already)."""
        stanza = parse_xml(xml)
        stanza["from"] = str(self.sender.jid)
        self.router.route(stanza)
        return stanza

    def received(self, session):
        """What ``session`` was sent since the last call."""
        sent, session.stream.sent = session.stream.sent, []
        return sent

    def assertBounced(self, condition):
        """The sender got exactly one error with ``condition``."""
        replies = self.received(self.sender)
        self.assertEqual([error_condition(r) for r in replies], [condition])
        return replies[0]

    def assertNothingFor(self, *sessions):
        for session in sessions:
            self.assertEqual(self.received(session), [])


class SessionTableTests(RoutingTestCase):
    """bind, unbind and the lookups."""

    def test_lookups(self):
        """session(), sessions() and available_sessions() see what was bound."""
        a = self.bind("alice@localhost/a", available=True)
        b = self.bind("alice@localhost/b", available=True, priority=-1)
        c = self.bind("alice@localhost/c")
        alice = parse_jid("alice@localhost")
        self.assertIs(self.router.session(parse_jid("alice@localhost/b")), b)
        self.assertIsNone(self.router.session(parse_jid("alice@localhost/x")))
        self.assertCountEqual(self.router.sessions(alice), [a, b, c])
        self.assertEqual(self.router.available_sessions(alice), [a])
        self.assertEqual(self.router.session_count(), 4)

    def test_rebind_returns_previous(self):
        """Binding the same full JID again returns the session it replaced."""
        old = self.bind("alice@localhost/a")
        new = Session(parse_jid("alice@localhost/a"), FakeStream())
        self.assertIs(self.router.bind(new), old)
        self.assertIs(self.router.session(new.jid), new)

    def test_unbind_keeps_replacement(self):
        """Unbinding a replaced session does not remove its replacement."""
        old = self.bind("alice@localhost/a")
        new = Session(parse_jid("alice@localhost/a"), FakeStream())
        self.router.bind(new)
        self.router.unbind(old)
        self.assertIs(self.router.session(new.jid), new)

    def test_unbind(self):
        """Unbinding the last session of an account forgets the account; twice is harmless."""
        session = self.bind("alice@localhost/a")
        self.router.unbind(session)
        self.router.unbind(session)
        self.assertEqual(self.router.sessions(parse_jid("alice@localhost")), [])
        self.assertEqual(self.router.session_count(), 1)

    def test_is_local(self):
        """Only the configured domains are local."""
        self.assertTrue(self.router.is_local("localhost"))
        self.assertFalse(self.router.is_local("example.org"))


class MessageDeliveryTests(RoutingTestCase):
    """The core's own delivery (RFC 6121 §8.5 baseline)."""

    def test_full_jid(self):
        """A message to a bound full JID goes to that session only, available or not."""
        a = self.bind("alice@localhost/a")
        b = self.bind("alice@localhost/b", available=True)
        self.route("<message to='alice@localhost/a' id='1'><body>x</body></message>")
        self.assertTrue(matches(self.received(a)[0], "<message id='1' from='sender@localhost/s'/>"))
        self.assertNothingFor(b, self.sender)

    def test_bare_jid_top_priority(self):
        """chat/normal to a bare JID goes to the available resources of highest priority."""
        low = self.bind("alice@localhost/low", available=True, priority=1)
        top1 = self.bind("alice@localhost/top1", available=True, priority=5)
        top2 = self.bind("alice@localhost/top2", available=True, priority=5)
        for message_type in ("chat", "normal"):
            self.route(f"<message to='alice@localhost' type='{message_type}'><body>x</body></message>")
            self.assertEqual(len(self.received(top1)), 1)
            self.assertEqual(len(self.received(top2)), 1)
            self.assertNothingFor(low, self.sender)

    def test_headline_to_all_available(self):
        """A headline to a bare JID goes to every available non-negative resource."""
        low = self.bind("alice@localhost/low", available=True, priority=1)
        top = self.bind("alice@localhost/top", available=True, priority=5)
        negative = self.bind("alice@localhost/neg", available=True, priority=-1)
        self.route("<message to='alice@localhost' type='headline'><body>x</body></message>")
        self.assertEqual((len(self.received(low)), len(self.received(top))), (1, 1))
        self.assertNothingFor(negative, self.sender)

    def test_negative_priority_and_unavailable_excluded(self):
        """No available non-negative resource: the message bounces."""
        negative = self.bind("alice@localhost/neg", available=True, priority=-1)
        silent = self.bind("alice@localhost/silent")
        self.route("<message to='alice@localhost' id='m'><body>x</body></message>")
        self.assertBounced("service-unavailable")
        self.assertNothingFor(negative, silent)

    def test_offline_full_jid_falls_back_to_bare(self):
        """A chat message to a resource that is gone goes to the account's other resources."""
        other = self.bind("alice@localhost/other", available=True)
        self.route("<message to='alice@localhost/gone' type='chat'><body>x</body></message>")
        self.assertEqual(len(self.received(other)), 1)
        self.assertNothingFor(self.sender)

    def test_offline_user(self):
        """chat/normal to a user without sessions bounce with service-unavailable, from the
        address the sender used."""
        for to in ("nobody@localhost", "nobody@localhost/r"):
            self.route(f"<message to='{to}' id='o' type='chat'><body>x</body></message>")
            reply = self.assertBounced("service-unavailable")
            self.assertEqual((reply["to"], reply["from"], reply["id"]), ("sender@localhost/s", to, "o"))

    def test_silently_dropped_types(self):
        """Headline and error messages to nobody are dropped without an error."""
        for message_type in ("headline", "error"):
            self.route(f"<message to='nobody@localhost' type='{message_type}'/>")
            self.route(f"<message to='nobody@localhost/r' type='{message_type}'/>")
        self.assertNothingFor(self.sender)

    def test_groupchat(self):
        """groupchat to an account (bare, or a resource that is gone) bounces."""
        self.bind("alice@localhost/a", available=True)
        for to in ("alice@localhost", "alice@localhost/gone"):
            self.route(f"<message to='{to}' type='groupchat'/>")
            self.assertBounced("service-unavailable")

    def test_hook_above_delivery_takes_message(self):
        """A handler in a higher band that returns non-None stops the core's delivery."""
        alice = self.bind("alice@localhost/a", available=True)
        taken = []
        self.hooks.add(events.MESSAGE_TO_ACCOUNT, lambda s, j: taken.append(s) or True, Priority.SECURITY)
        self.route("<message to='alice@localhost'><body>x</body></message>")
        self.assertEqual(len(taken), 1)
        self.assertNothingFor(alice, self.sender)

    def test_message_to_server(self):
        """A message to the domain itself bounces unless an extension takes it."""
        self.route("<message to='localhost'><body>x</body></message>")
        self.assertBounced("service-unavailable")
        self.hooks.add(events.STANZA_TO_SERVER, lambda s, j: True)
        self.route("<message to='localhost'><body>x</body></message>")
        self.assertNothingFor(self.sender)


class OtherRoutingTests(RoutingTestCase):
    """Presence, IQs to clients, remote domains, malformed addresses and bounce rules."""

    def test_presence(self):
        """Directed presence to a full JID reaches that session; to a bare JID, the available
        ones; to nobody, nothing happens."""
        a = self.bind("alice@localhost/a", available=True)
        b = self.bind("alice@localhost/b")
        self.route("<presence to='alice@localhost/b'/>")
        self.assertEqual((len(self.received(a)), len(self.received(b))), (0, 1))
        self.route("<presence to='alice@localhost'/>")
        self.assertEqual((len(self.received(a)), len(self.received(b))), (1, 0))
        self.route("<presence to='nobody@localhost'/>")
        self.route("<presence to='localhost'/>")
        self.assertNothingFor(self.sender)

    def test_iq_to_full_jid(self):
        """An IQ to a bound full JID is delivered; to one that is not, service-unavailable."""
        alice = self.bind("alice@localhost/a")
        self.route(f"<iq type='get' id='q' to='alice@localhost/a'><q xmlns='{NS_TEST}'/></iq>")
        self.assertEqual(len(self.received(alice)), 1)
        self.route(f"<iq type='get' id='q' to='alice@localhost/gone'><q xmlns='{NS_TEST}'/></iq>")
        self.assertBounced("service-unavailable")

    def test_remote(self):
        """Stanzas for other domains go to STANZA_TO_REMOTE; without s2s they bounce."""
        self.route("<message to='juliet@capulet.example'><body>x</body></message>")
        self.assertBounced("remote-server-not-found")
        outgoing = []
        self.hooks.add(events.STANZA_TO_REMOTE, lambda s, j: outgoing.append(j.host) or True)
        self.route("<message to='juliet@capulet.example'><body>x</body></message>")
        self.assertEqual(outgoing, ["capulet.example"])
        self.assertNothingFor(self.sender)

    def test_malformed_to(self):
        """An unparseable 'to' is jid-malformed."""
        self.route("<message to='a@@b' id='j'><body>x</body></message>")
        self.assertBounced("jid-malformed")

    def test_no_error_loops(self):
        """Errors and IQ results are never answered with errors."""
        self.route("<message to='nobody@localhost' type='error'/>")
        self.route("<iq to='nobody@localhost/r' type='result' id='r'/>")
        self.route("<iq to='nobody@localhost/r' type='error' id='e'/>")
        self.assertNothingFor(self.sender)

    def test_no_bounce_without_from(self):
        """A stanza with no 'from' cannot be answered and is dropped."""
        self.router.route(parse_xml("<message to='nobody@localhost'><body>x</body></message>"))
        self.assertNothingFor(self.sender)


class IQTableTestCase(unittest.TestCase):
    """An IQTable whose 'send' keeps the replies."""

    def setUp(self):
        self.clock = task.Clock()
        self.sent = []
        self.table = IQTable(self.clock, self.sent.append)

    def dispatch(self, payload=f"<q xmlns='{NS_TEST}'/>", type="get", to="localhost", iq_id="1"):
        iq = parse_xml(f"<iq type='{type}' id='{iq_id}' from='alice@localhost/a' to='{to}'>{payload}</iq>")
        self.table.dispatch(iq, parse_jid(to))

    def register(self, handler, type="get", target=SERVER):
        return self.table.register(type, target, NS_TEST, "q", handler)

    def reply(self):
        """The one reply sent since the last call."""
        self.assertEqual(len(self.sent), 1, [s.toXml() for s in self.sent])
        return self.sent.pop()

    def assertError(self, condition):
        reply = self.reply()
        self.assertEqual(error_condition(reply), condition, reply.toXml())
        return reply


class IQHandlerTests(IQTableTestCase):
    """Registration and the error funnel (RFC 6120 §8.2.3)."""

    def test_result_with_payload(self):
        """A handler's element becomes the result's payload; addresses are swapped."""
        def handler(iq, to_jid):
            answer = domish.Element((NS_TEST, "q"))
            answer["seen"] = str(to_jid)
            return answer

        self.register(handler)
        self.dispatch()
        reply = self.reply()
        self.assertTrue(matches(reply, f"<iq type='result' id='1' to='alice@localhost/a' from='localhost'>"
                                       f"<q xmlns='{NS_TEST}' seen='localhost'/></iq>"))

    def test_empty_result(self):
        """None from the handler is an empty result."""
        self.register(lambda iq, to: None)
        self.dispatch()
        self.assertEqual(list(self.reply().elements()), [])

    def test_targets_are_separate(self):
        """A SERVER handler does not answer IQs to an account, and the other way round."""
        self.register(lambda iq, to: None, target=ACCOUNT)
        self.dispatch()
        self.assertError("service-unavailable")
        self.dispatch(to="alice@localhost")
        self.assertEqual(self.reply()["type"], "result")
        self.assertTrue(self.table.handles(ACCOUNT, NS_TEST))
        self.assertFalse(self.table.handles(SERVER, NS_TEST))

    def test_types_are_separate(self):
        """A 'get' handler does not answer 'set'."""
        self.register(lambda iq, to: None)
        self.dispatch(type="set")
        self.assertError("service-unavailable")

    def test_duplicate(self):
        """Claiming the same (type, target, namespace, name) twice is DuplicateHandler."""
        self.register(lambda iq, to: None)
        self.assertRaises(DuplicateHandler, self.register, lambda iq, to: None)

    def test_remove_and_reregister(self):
        """After remove(), the key is free; an old remover does not remove a new handler."""
        remove = self.register(lambda iq, to: None)
        remove()
        self.dispatch()
        self.assertError("service-unavailable")
        self.register(lambda iq, to: None)
        remove()
        self.dispatch()
        self.assertEqual(self.reply()["type"], "result")

    def test_bad_registration(self):
        """Only get/set and SERVER/ACCOUNT can be registered."""
        self.assertRaises(ValueError, self.register, lambda iq, to: None, type="result")
        self.assertRaises(ValueError, self.register, lambda iq, to: None, target="elsewhere")

    def test_stanza_error(self):
        """A raised StanzaError is the reply, with its type and text."""
        def handler(iq, to):
            raise StanzaError("item-not-found", "no such thing")

        self.register(handler)
        self.dispatch()
        reply = self.assertError("item-not-found")
        self.assertIn("no such thing", reply.toXml())

    def test_not_implemented(self):
        """NotImplementedError is feature-not-implemented, not logged as a failure."""
        def handler(iq, to):
            raise NotImplementedError()

        self.register(handler)
        self.dispatch()
        self.assertError("feature-not-implemented")
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_unexpected_exception(self):
        """Any other exception is logged and answered with internal-server-error, without
        its details."""
        def handler(iq, to):
            raise KeyError("secret detail")

        self.register(handler)
        self.dispatch()
        reply = self.assertError("internal-server-error")
        self.assertNotIn("secret detail", reply.toXml())
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_deferred_result(self):
        """A Deferred is answered when it fires, not before."""
        pending = defer.Deferred()
        self.register(lambda iq, to: pending)
        self.dispatch()
        self.assertEqual(self.sent, [])
        pending.callback(domish.Element((NS_TEST, "q")))
        self.assertEqual(self.reply()["type"], "result")

    def test_deferred_failure(self):
        """A Deferred that fails with StanzaError gives that error."""
        pending = defer.Deferred()
        self.register(lambda iq, to: pending)
        self.dispatch()
        pending.errback(StanzaError("not-allowed"))
        self.assertError("not-allowed")

    def test_payload_count(self):
        """A get/set with no payload or two payloads is bad-request."""
        self.register(lambda iq, to: None)
        self.dispatch(payload="")
        self.assertError("bad-request")
        self.dispatch(payload=f"<q xmlns='{NS_TEST}'/><q xmlns='{NS_TEST}'/>")
        self.assertError("bad-request")

    def test_unhandled(self):
        """An IQ nobody handles is service-unavailable."""
        self.dispatch()
        self.assertError("service-unavailable")

    def test_unsolicited_response_ignored(self):
        """A result or error nobody asked for is ignored."""
        self.dispatch(payload="", type="result", iq_id="nobody-asked")
        self.dispatch(payload="", type="error", iq_id="nobody-asked")
        self.assertEqual(self.sent, [])


class RequestTests(RoutingTestCase):
    """The server's own requests, through the router to a session and back."""

    def setUp(self):
        super().setUp()
        self.alice = self.bind("alice@localhost/a")

    def ask(self, to="alice@localhost/a", timeout=60):
        iq = domish.Element(("jabber:client", "iq"))
        iq["type"] = "get"
        iq["to"] = to
        iq["from"] = "localhost"
        iq.addElement((NS_TEST, "q"))
        return self.router.iq.request(iq, timeout)

    def answer(self, request, type="result", sender="alice@localhost/a", payload=""):
        reply = parse_xml(f"<iq type='{type}' id='{request['id']}' to='localhost'>{payload}</iq>")
        reply["from"] = sender
        self.router.route(reply)

    def test_reply(self):
        """The request reaches the session; its result fires the Deferred."""
        d = self.ask()
        request = self.received(self.alice)[0]
        self.assertFalse(d.called)
        self.answer(request)
        self.assertEqual(result_of(d)["id"], request["id"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_error_reply(self):
        """An error reply errbacks with a StanzaError of that condition."""
        d = self.ask()
        request = self.received(self.alice)[0]
        self.answer(request, "error", payload=f"<error type='cancel'><item-not-found xmlns='{NS_STANZAS}'/></error>")
        failure = self.failureResultOf(d, StanzaError)
        self.assertEqual(failure.value.condition, "item-not-found")

    def test_unknown_error_condition(self):
        """An error reply without a condition we know is undefined-condition."""
        d = self.ask()
        self.answer(self.received(self.alice)[0], "error", payload="<error type='cancel'><weird xmlns='urn:x'/></error>")
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "undefined-condition")

    def test_timeout(self):
        """No answer within the timeout errbacks with IQTimeout; a late answer is ignored."""
        d = self.ask(timeout=30)
        request = self.received(self.alice)[0]
        self.clock.advance(29)
        self.assertFalse(d.called)
        self.clock.advance(1)
        self.failureResultOf(d, IQTimeout)
        self.answer(request)
        self.assertNothingFor(self.alice, self.sender)

    def test_ids_are_unique(self):
        """Each request gets its own id, and each answer fires only its own Deferred."""
        first, second = self.ask(), self.ask()
        requests = self.received(self.alice)
        self.assertNotEqual(requests[0]["id"], requests[1]["id"])
        self.answer(requests[1])
        self.assertFalse(first.called)
        self.assertTrue(second.called)
        self.answer(requests[0])
        self.assertTrue(first.called)

    def test_answer_from_someone_else_ignored(self):
        """A result with the right id from another entity does not count as the answer."""
        d = self.ask()
        request = self.received(self.alice)[0]
        self.answer(request, sender="sender@localhost/s")
        self.assertFalse(d.called)
        self.answer(request)
        self.assertTrue(d.called)

    def test_request_to_offline_session(self):
        """A request to a session that is gone fails at once with the bounce."""
        d = self.ask(to="alice@localhost/gone")
        self.assertEqual(self.failureResultOf(d, StanzaError).value.condition, "service-unavailable")

    def test_cancel_all(self):
        """cancel_all leaves no timer on the clock and fails every waiting request."""
        first, second = self.ask(), self.ask()
        self.router.iq.cancel_all()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.failureResultOf(first, IQTimeout)
        self.failureResultOf(second, IQTimeout)
