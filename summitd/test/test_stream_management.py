"""Stream Management (XEP-0198, summitd.plugins.stream_management and sm_spool) on a fake clock.

Every path of the protocol: enabling, counting and acknowledging in both
directions (with the 2**32 wrap-around), resumption (partial acks, stale and
too-high ``h``, another user's or an unknown session, the old connection still
open), the end of a session (expiry, clean close, overflow, shutdown) where no
unacknowledged message may vanish, and the durable spool with its recovery at
start. Unacknowledged messages of a session that ended are stored offline when
the offline extension is installed, else bounced to their sender with
service-unavailable: either way the sender is never left believing a delivery
that did not happen.
"""

from twisted.internet import defer
from twisted.trial import unittest

import summitd.testing
from summitd.core import events
from summitd.core.hooks import Priority
from summitd.core.jid import parse_jid
from summitd.extensions.base import Extension
from summitd.extensions.loader import discover
from summitd.service import SummitService
from summitd.storage.engines import SQLiteEngine
from summitd.test.test_extensions import Factory
from summitd.testing import FakeClient, add_user, make_server, parse_xml, result_of

NS_SM = "urn:xmpp:sm:3"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
PASSWORD = "sm-secret"
ALICE = "alice@localhost/a"
ENABLE = f"<enable xmlns='{NS_SM}' resume='true'/>"
ENABLED = f"<enabled xmlns='{NS_SM}' resume='true' id='*'/>"
REQUEST = f"<r xmlns='{NS_SM}'/>"
MODULUS = 2 ** 32

#: Message delivery extensions, when the tree has them: then an unacknowledged
#: message of an ended session is stored offline rather than bounced.
STORAGE = ("delivery", "offline")


def chat(n, to=ALICE):
    return f"<message to='{to}' type='chat' id='m{n}'><body>{n}</body></message>"


def ack(h):
    return f"<a xmlns='{NS_SM}' h='{h}'/>"


def failed(condition):
    return f"<failed xmlns='{NS_SM}'><{condition} xmlns='{NS_STANZAS}'/></failed>"


def authenticated(server, user, password, port=40001):
    """A new connection of ``user``, authenticated, the stream restarted: ready to bind or
    resume (the features must offer stream management)."""
    client = FakeClient(server, port=port)
    client.open_stream()
    result = client.authenticate(user, password)
    if result is not True:
        raise AssertionError(f"{user} could not authenticate: {result.toXml()}")
    features = client.open_stream()
    if not any(f.uri == NS_SM for f in features.elements()):
        raise AssertionError("no stream management among the features")
    return client


def resume(server, user, password, previd, h):
    """A new connection of ``user`` that has sent <resume/>."""
    client = authenticated(server, user, password)
    client.send(f"<resume xmlns='{NS_SM}' previd='{previd}' h='{h}'/>")
    return client


def spool_rows(server):
    """(sm_id, seq, stanza) of the durable spool, oldest first."""
    return result_of(server.database.runQuery("SELECT sm_id, seq, stanza FROM sm_spool ORDER BY queued_at, seq"))


class HeldTransactions:
    """Stands in for ``database.runInteraction``: transactions whose description starts with
    ``prefix`` wait until ``release()`` (a write that is slow to commit)."""

    def __init__(self, database, prefix):
        self.real = database.runInteraction
        self.prefix = prefix
        self.held = []

    def __call__(self, description, fn, *args):
        if not description.startswith(self.prefix):
            return self.real(description, fn, *args)
        d = defer.Deferred()
        self.held.append((d, description, fn, args))
        return d

    def release(self):
        held, self.held = self.held, []
        for d, description, fn, args in held:
            self.real(description, fn, *args).chainDeferred(d)


class Recorder(Extension):
    """A test extension that sees every message routed to an account (nothing more)."""

    def __init__(self, context, config=None):
        super().__init__(context)
        self.messages = []
        context.hook(events.MESSAGE_TO_ACCOUNT, self.seen, Priority.SECURITY)

    def seen(self, stanza, to_jid):
        self.messages.append((to_jid.full(), stanza.getAttribute("id")))


class SMTestCase(unittest.TestCase):
    """A server with stream management; bob (no SM) is the usual sender."""

    extensions = ("stream_management", "csi")
    storage = STORAGE
    options = {}

    @property
    def offline(self):
        return "offline" in self.storage

    def setUp(self):
        self.server = self.build_server()
        for user in ("alice", "bob", "mallory"):
            add_user(self.server, f"{user}@localhost", PASSWORD)
        self.closed = []
        self.server.hooks.add(events.SESSION_CLOSED, lambda s: self.closed.append(s.jid.full()))
        self.bob = self.connect("bob", "b")

    def build_server(self, available=None, extra=()):
        return make_server(extensions=list(self.extensions + self.storage + tuple(extra)), available=available,
                           extension_options={"stream_management": self.options})

    def connect(self, user, resource, enable=None, port=40000):
        """A logged-in client; ``enable`` is the <enable/> to send (its <enabled/> is returned too)."""
        client = FakeClient(self.server, port=port)
        client.login(user, PASSWORD, resource)
        if enable is None:
            return client
        client.send(enable)
        return client, client.expect(f"<enabled xmlns='{NS_SM}'/>")

    def alice(self):
        """alice/a with resumable stream management: (client, SM-ID)."""
        client, enabled = self.connect("alice", "a", ENABLE)
        return client, enabled["id"]

    def deliver(self, client, *numbers, request=True):
        """bob sends the numbered messages; ``client`` receives them, with the server's
        <r/> after the first when ``request`` (one <r/> in flight at a time)."""
        for i, n in enumerate(numbers):
            self.bob.send(chat(n))
            client.expect(f"<message id='m{n}' from='bob@localhost/b'><body>{n}</body></message>")
            if i == 0 and request:
                client.expect(REQUEST)
        client.expect_nothing()

    def reconnect(self, user="alice", port=40001):
        return authenticated(self.server, user, PASSWORD, port)

    def resume(self, previd, h, user="alice"):
        return resume(self.server, user, PASSWORD, previd, h)

    def expect_resent(self, client, *numbers):
        """After <resumed/>: the unacknowledged messages again, in order, then the <r/>."""
        for i, n in enumerate(numbers):
            client.expect(f"<message id='m{n}'><body>{n}</body></message>")
            if i == 0:
                client.expect(REQUEST)
        client.expect_nothing()

    def assert_not_lost(self, *numbers):
        """Messages to alice whose session ended unacknowledged: stored offline, or bounced
        to bob (service-unavailable) in order."""
        if self.offline:
            rows = result_of(self.server.database.runQuery(
                "SELECT stanza FROM offline_messages WHERE username = 'alice' ORDER BY seq"))
            self.assertEqual([parse_xml(stanza)["id"] for (stanza,) in rows], [f"m{n}" for n in numbers])
            return
        for n in numbers:
            self.bob.expect(f"<message type='error' id='m{n}' from='{ALICE}'><error type='cancel'>"
                            f"<service-unavailable xmlns='{NS_STANZAS}'/></error></message>")

    def assert_routed(self, jid, stream=None):
        session = self.server.router.session(parse_jid(jid))
        self.assertIsNotNone(session, f"{jid} is not routed")
        if stream is not None:
            self.assertIs(session.stream, stream)
        return session

    def assert_unrouted(self, jid):
        self.assertIsNone(self.server.router.session(parse_jid(jid)))


class EnableTests(SMTestCase):
    """Negotiation: the feature, <enable/> with and without resumption, misuse."""

    def test_feature_offered_after_authentication(self):
        """<sm/> is among the features of the authenticated stream (where binding and
        resumption happen), not before authentication."""
        client = FakeClient(self.server)
        before = client.open_stream()
        self.assertFalse(any(f.uri == NS_SM for f in before.elements()))
        self.assertIs(client.authenticate("alice", PASSWORD), True)
        after = client.open_stream()
        self.assertIn((NS_SM, "sm"), [(f.uri, f.name) for f in after.elements()])

    def test_enable_with_resumption(self):
        """resume='true' gets an SM-ID, resume='true' and the resumption window as max."""
        _, enabled = self.connect("alice", "a", ENABLE)
        self.assertEqual(enabled["resume"], "true")
        self.assertEqual(enabled["max"], "300")
        self.assertGreaterEqual(len(enabled["id"]), 16)

    def test_enable_without_resumption(self):
        """A plain <enable/> turns acks on but offers no resumption: no id, and a broken
        connection ends the session at once."""
        alice, enabled = self.connect("alice", "a", f"<enable xmlns='{NS_SM}'/>")
        self.assertIsNone(enabled.getAttribute("id"))
        self.assertIsNone(enabled.getAttribute("resume"))
        self.deliver(alice, 1)
        alice.lose_connection()
        self.assertEqual(self.closed, [ALICE])
        self.assert_unrouted(ALICE)
        self.assert_not_lost(1)

    def test_enable_twice(self):
        """A second <enable/> fails with unexpected-request; the first stays in force."""
        alice, _ = self.alice()
        alice.send(ENABLE)
        alice.expect(failed("unexpected-request"))
        alice.send(REQUEST)
        alice.expect(ack(0))

    def test_enable_before_bind(self):
        """<enable/> before resource binding fails (XEP-0198 §3); binding then works and
        stream management can be enabled."""
        alice = self.reconnect()
        alice.send(ENABLE)
        alice.expect(failed("unexpected-request"))
        alice.bind("a")
        alice.send(ENABLE)
        alice.expect(ENABLED)

    def test_ack_request_without_stream_management(self):
        """<r/> on a stream that never enabled stream management fails, and no ack comes."""
        self.bob.send(REQUEST)
        self.bob.expect(failed("unexpected-request"))
        self.bob.expect_nothing()

    def test_options(self):
        """resume_timeout and max_unacked must be positive integers; unknown keys fail."""
        from summitd.config import ConfigError
        from summitd.plugins.stream_management import parse_config
        self.assertEqual(parse_config({"resume_timeout": 60}, "x"), {"resume_timeout": 60, "max_unacked": 5000})
        with self.assertRaises(ConfigError) as raised:
            parse_config({"resume_timeout": 0, "max_unacked": True, "typo": 1}, "extensions.sm")
        self.assertEqual(sorted(key for key, _ in raised.exception.errors),
                         ["extensions.sm.max_unacked", "extensions.sm.resume_timeout", "extensions.sm.typo"])


class AckTests(SMTestCase):
    """Counting and acknowledging, both ways."""

    def test_inbound_stanzas_counted(self):
        """Every stanza the client sends counts (messages, presence, IQs); nonzas do not;
        <r/> gets <a h/> with the count."""
        bob, _ = self.connect("bob", "b2", f"<enable xmlns='{NS_SM}'/>")
        bob.send(chat(1, to="mallory@localhost"))
        bob.send("<presence/>")
        bob.send("<iq type='result' id='x' to='mallory@localhost'/>")
        bob.send(REQUEST)
        bob.expect(ack(3))
        bob.send(REQUEST)
        bob.expect(ack(3))

    def test_server_requests_acks_and_client_acks_prune(self):
        """The server sends <r/> after the first unacknowledged stanza (one in flight); the
        client's <a h/> forgets what it covers, and a partial ack asks again at once."""
        alice, _ = self.alice()
        self.deliver(alice, 1, 2, 3)
        state = alice.stream.sm
        self.assertEqual([seq for seq, _ in state.queue], [1, 2, 3])
        alice.send(ack(2))
        alice.expect(REQUEST)           # message 3 is still unacknowledged
        self.assertEqual([seq for seq, _ in state.queue], [3])
        alice.send(ack(3))
        alice.expect_nothing()
        self.assertEqual(len(state.queue), 0)
        self.deliver(alice, 4)          # a new stanza, a new <r/>

    def test_inbound_count_wraps(self):
        """h wraps from 2**32 - 1 to 0 (XEP-0198 §4)."""
        bob, _ = self.connect("bob", "b2", f"<enable xmlns='{NS_SM}'/>")
        bob.stream.sm.handled = MODULUS - 1
        bob.send(REQUEST)
        bob.expect(ack(MODULUS - 1))
        bob.send(chat(1, to="mallory@localhost"))
        bob.send(chat(2, to="mallory@localhost"))
        bob.send(REQUEST)
        bob.expect(ack(1))

    def test_outbound_count_wraps(self):
        """Sequence numbers of sent stanzas wrap too: the queue and the spool number them
        2**32 - 1, 0, 1, and acks across the wrap prune them."""
        alice, sm_id = self.alice()
        state = alice.stream.sm
        state.sent_count = state.acked = MODULUS - 2
        self.deliver(alice, 1, 2, 3, 4)
        self.assertEqual([seq for seq, _ in state.queue], [MODULUS - 1, 0, 1, 2])
        self.assertEqual({(r[0], r[1]) for r in spool_rows(self.server)},
                         {(sm_id, MODULUS - 1), (sm_id, 0), (sm_id, 1), (sm_id, 2)})
        alice.send(ack(0))
        alice.expect(REQUEST)
        self.assertEqual([seq for seq, _ in state.queue], [1, 2])
        alice.send(ack(2))
        self.assertEqual(len(state.queue), 0)
        self.assertEqual(spool_rows(self.server), [])

    def test_ack_too_high(self):
        """An <a/> covering more than was sent is the stream error undefined-condition; the
        session ends without resumption and its unacknowledged message is not lost."""
        alice, sm_id = self.alice()
        self.deliver(alice, 1)
        alice.send(ack(2))
        alice.expect_stream_error("undefined-condition")
        self.assertEqual(self.closed, [ALICE])
        self.assert_not_lost(1)
        self.resume(sm_id, 0).expect(failed("item-not-found"))

    def test_ack_without_number(self):
        """<a/> without a numeric h is bad-format."""
        alice, _ = self.alice()
        alice.send(f"<a xmlns='{NS_SM}' h='many'/>")
        alice.expect_stream_error("bad-format")

    def test_stale_ack_changes_nothing(self):
        """An <a/> with an h lower than an earlier one acknowledges nothing new and is no
        error; what was acknowledged stays forgotten."""
        alice, _ = self.alice()
        self.deliver(alice, 1, 2, 3)
        alice.send(ack(2))
        alice.expect(REQUEST)
        alice.send(ack(1))
        alice.expect_nothing()
        self.assertFalse(alice.disconnected)
        self.assertEqual([seq for seq, _ in alice.stream.sm.queue], [3])

    def test_ack_waits_for_durable_writes(self):
        """<a/> answers <r/> only once the writes in flight (offline storage, the spool)
        are durable: a crash can never lose a stanza the server acknowledged."""
        bob, _ = self.connect("bob", "b2", f"<enable xmlns='{NS_SM}'/>")
        write = defer.Deferred()
        self.server.writes.track(write)
        bob.send(chat(1, to="mallory@localhost"))
        bob.send(REQUEST)
        bob.expect_nothing()
        write.callback(None)
        bob.expect(ack(1))

    def test_ack_waits_for_offline_storage(self):
        """A message for an account with no session is acknowledged to its sender only once
        offline storage committed it (delivery tracks the account lookup and the store)."""
        slow = HeldTransactions(self.server.database, "offline: store")
        self.patch(self.server.database, "runInteraction", slow)
        bob, _ = self.connect("bob", "b2", f"<enable xmlns='{NS_SM}'/>")
        bob.send(chat(1, to="alice@localhost"))
        bob.send(REQUEST)
        self.assertEqual(len(slow.held), 1)
        bob.expect_nothing()
        slow.release()
        bob.expect(ack(1))

    def test_ack_waits_for_the_recipients_spool(self):
        """A message delivered to a session with stream management is acknowledged to its
        sender only once the recipient's spool row is durable."""
        alice, _ = self.alice()
        bob, _ = self.connect("bob", "b2", f"<enable xmlns='{NS_SM}'/>")
        slow = HeldTransactions(self.server.database, "sm spool: write")
        self.patch(self.server.database, "runInteraction", slow)
        bob.send(chat(1))
        bob.send(REQUEST)
        alice.expect("<message id='m1'/>")
        bob.expect_nothing()
        slow.release()
        bob.expect(ack(1))

    def test_received_stanzas_processed_when_connection_breaks(self):
        """Stanzas that arrived just before the connection broke are still processed."""
        alice, _ = self.alice()
        alice.send(chat(1, to="bob@localhost/b"))
        alice.lose_connection()
        self.bob.expect("<message id='m1' from='alice@localhost/a'><body>1</body></message>")


class ResumeTests(SMTestCase):
    """Resumption (XEP-0198 §5)."""

    def test_resume_after_partial_ack(self):
        """The unacknowledged stanzas, including those that arrived while the session
        hibernated, are re-sent exactly once, in order; <resumed/> reports the server's h."""
        alice, sm_id = self.alice()
        alice.send(chat(9, to="bob@localhost/b"))
        self.deliver(alice, 1, 2, 3)
        alice.send(ack(1))
        alice.expect(REQUEST)
        alice.lose_connection()
        self.assert_routed(ALICE)
        self.bob.send(chat(4))
        self.bob.send(chat(5))
        new = self.resume(sm_id, 2)
        new.expect(f"<resumed xmlns='{NS_SM}' previd='{sm_id}' h='1'/>")
        self.expect_resent(new, 3, 4, 5)
        self.assert_routed(ALICE, new.stream)
        self.assertEqual(self.closed, [])
        new.send(ack(5))
        self.assertEqual(spool_rows(self.server), [])
        self.deliver(new, 6)

    def test_resume_with_stale_h(self):
        """A <resume/> whose h is lower than an earlier <a/> still resumes: the stanzas
        acknowledged before are not re-sent, the others are, once."""
        alice, sm_id = self.alice()
        self.deliver(alice, 1, 2, 3, 4)
        alice.send(ack(3))
        alice.expect(REQUEST)
        alice.lose_connection()
        new = self.resume(sm_id, 1)
        new.expect(f"<resumed xmlns='{NS_SM}' previd='{sm_id}' h='0'/>")
        self.expect_resent(new, 4)
        self.assertEqual(new.stream.sm.acked, 3)
        new.send(ack(4))
        self.assertEqual(len(new.stream.sm.queue), 0)

    def test_resume_with_h_too_high(self):
        """A <resume/> acknowledging more than was sent fails (undefined-condition); the
        session keeps hibernating and a correct <resume/> still works."""
        alice, sm_id = self.alice()
        self.deliver(alice, 1)
        alice.lose_connection()
        self.resume(sm_id, 5).expect(failed("undefined-condition"))
        new = self.resume(sm_id, 0)
        new.expect(f"<resumed xmlns='{NS_SM}' previd='{sm_id}'/>")
        self.expect_resent(new, 1)

    def test_resume_after_wrap(self):
        """Resumption counts across the 2**32 wrap like <a/> does."""
        alice, sm_id = self.alice()
        state = alice.stream.sm
        state.sent_count = state.acked = MODULUS - 2
        self.deliver(alice, 1, 2, 3)
        alice.lose_connection()
        new = self.resume(sm_id, 0)             # 2**32 - 1 and 0 were handled
        new.expect(f"<resumed xmlns='{NS_SM}'/>")
        self.expect_resent(new, 3)
        self.assertEqual([seq for seq, _ in state.queue], [1])

    def test_resume_another_users_session(self):
        """mallory cannot take alice's session, hibernating or connected: item-not-found,
        and alice's session, queue and spool are untouched."""
        alice, sm_id = self.alice()
        self.deliver(alice, 1)
        mallory = self.resume(sm_id, 0, user="mallory")
        mallory.expect(failed("item-not-found"))
        self.assertFalse(alice.disconnected)
        self.assert_routed(ALICE, alice.stream)
        alice.lose_connection()
        mallory2 = self.resume(sm_id, 1, user="mallory")
        mallory2.expect(failed("item-not-found"))
        self.assertEqual(mallory2.bind("m"), "mallory@localhost/m")
        self.bob.send(chat(2))
        self.assertEqual(len(spool_rows(self.server)), 2)
        new = self.resume(sm_id, 0)
        new.expect(f"<resumed xmlns='{NS_SM}' previd='{sm_id}'/>")
        self.expect_resent(new, 1, 2)

    def test_resume_unknown_session(self):
        """A previd this server does not know (it restarted, or the session expired) fails
        with item-not-found; the client binds and enables on the same stream."""
        client = self.resume("no-such-session", 3)
        client.expect(failed("item-not-found"))
        self.assertEqual(client.bind("a"), ALICE)
        client.send(ENABLE)
        client.expect(ENABLED)

    def test_resume_while_old_connection_open(self):
        """The old stream, still connected, gets a conflict stream error; the session
        moves to the new one with its queue."""
        alice, sm_id = self.alice()
        self.deliver(alice, 1)
        new = self.resume(sm_id, 0)
        alice.expect_stream_error("conflict")
        new.expect(f"<resumed xmlns='{NS_SM}' previd='{sm_id}'/>")
        self.expect_resent(new, 1)
        self.assert_routed(ALICE, new.stream)
        alice.lose_connection()     # the old connection finally goes: nothing happens
        self.assertEqual(self.closed, [])
        self.deliver(new, 2, request=False)

    def test_idle_timeout_hibernates(self):
        """A connection the server times out (idle) is interrupted, not ended: the session
        can be resumed."""
        alice, sm_id = self.alice()
        self.server.clock.advance(self.server.config.c2s.idle_timeout + 1)
        alice.expect_stream_error("connection-timeout")
        self.assert_routed(ALICE)
        alice.lose_connection()
        self.resume(sm_id, 0).expect(f"<resumed xmlns='{NS_SM}' previd='{sm_id}'/>")
        self.assertEqual(self.closed, ["bob@localhost/b"])     # bob has no stream management

    def test_resume_twice_in_a_row(self):
        """A session can be resumed again after a resumed stream breaks."""
        alice, sm_id = self.alice()
        self.deliver(alice, 1)
        alice.lose_connection()
        first = self.resume(sm_id, 1)
        first.expect(f"<resumed xmlns='{NS_SM}'/>")
        self.deliver(first, 2)
        first.lose_connection()
        second = self.resume(sm_id, 1)
        second.expect(f"<resumed xmlns='{NS_SM}'/>")
        self.expect_resent(second, 2)


class SessionEndTests(SMTestCase):
    """When a session ends for good, nothing unacknowledged vanishes."""

    def test_expiry(self):
        """After resume_timeout the session ends (SESSION_CLOSED, unrouted); unacknowledged
        messages go to offline storage (or bounce) and an unacknowledged IQ request is
        answered with an error; the spool rows go; resuming then fails."""
        alice, sm_id = self.alice()
        self.deliver(alice, 1)
        self.bob.send(f"<iq type='get' id='q1' to='{ALICE}'><query xmlns='urn:example'/></iq>")
        alice.expect("<iq id='q1'/>")
        alice.lose_connection()
        self.bob.send(chat(2))
        self.assertEqual([r[1] for r in spool_rows(self.server)], [1, 3])
        self.server.clock.advance(299)
        self.assert_routed(ALICE)
        self.assertEqual(self.closed, [])
        self.server.clock.advance(2)
        self.assertEqual(self.closed, [ALICE])
        self.assert_unrouted(ALICE)
        if not self.offline:
            self.assert_not_lost(1)
            self.bob.expect(f"<iq type='error' id='q1' from='{ALICE}'><error>"
                            f"<service-unavailable xmlns='{NS_STANZAS}'/></error></iq>")
            self.assert_not_lost(2)
        else:
            self.assert_not_lost(1, 2)
            self.bob.expect("<iq type='error' id='q1'/>")
        self.assertEqual(spool_rows(self.server), [])
        self.resume(sm_id, 0).expect(failed("item-not-found"))

    def test_clean_close(self):
        """</stream:stream> ends the session at once (no resumption) and unacknowledged
        messages are routed again: here to alice's other available resource."""
        alice, sm_id = self.alice()
        other = self.connect("alice", "other", port=40002)
        other.send("<presence/>")
        self.deliver(alice, 1)
        alice.send("</stream:stream>")
        self.assertEqual(self.closed, [ALICE])
        other.expect("<message id='m1' to='alice@localhost/a'><body>1</body></message>")
        self.resume(sm_id, 0).expect(failed("item-not-found"))
        self.assertEqual(spool_rows(self.server), [])

    def test_rebinding_the_resource_takes_the_queue(self):
        """A new login binding the same resource replaces the hibernating session; its
        unacknowledged messages are routed again, to the new session. (The core ends the
        replaced session before it answers the bind, so the message comes first.)"""
        alice, sm_id = self.alice()
        self.deliver(alice, 1)
        alice.lose_connection()
        new = self.reconnect(port=40003)
        new.send("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 "<resource>a</resource></bind></iq>")
        received = sorted([new.next(), new.next()], key=lambda e: e.name)
        self.assertEqual([(e.name, e["id"]) for e in received], [("iq", "bind1"), ("message", "m1")])
        self.assertEqual(self.closed, [ALICE])
        self.resume(sm_id, 0).expect(failed("item-not-found"))

    def test_interrupted_after_conflict_is_not_resumable(self):
        """A session replaced by a new login is over: the replaced stream's SM-ID no
        longer resumes anything."""
        alice, sm_id = self.alice()
        self.connect("alice", "a", port=40003)
        alice.expect_stream_error("conflict")
        self.resume(sm_id, 0).expect(failed("item-not-found"))


class SessionEndWithoutStorageTests(SessionEndTests):
    """The same without offline storage: unacknowledged messages bounce to their sender."""

    storage = ()


class PresenceTests(SMTestCase):
    """With the presence extension: a hibernating session is still available; its end is not."""

    extensions = ("stream_management", "presence")

    def test_unavailable_only_when_the_session_ends(self):
        """A broken connection says nothing to those alice sent directed presence to;
        the expiry of her session sends them unavailable on her behalf."""
        alice, _ = self.alice()
        alice.send("<presence to='bob@localhost/b'/>")
        self.bob.expect(f"<presence from='{ALICE}'/>")
        alice.lose_connection()
        self.server.clock.advance(100)
        self.bob.expect_nothing()
        self.server.clock.advance(201)
        self.bob.expect(f"<presence type='unavailable' from='{ALICE}'/>")


class LimitTests(SMTestCase):
    """max_unacked bounds the memory a client can make the server hold."""

    options = {"max_unacked": 3, "resume_timeout": 60}

    def test_resume_timeout_option(self):
        """The configured window is announced as max and enforced."""
        alice, enabled = self.connect("alice", "a", ENABLE)
        self.assertEqual(enabled["max"], "60")
        alice.lose_connection()
        self.server.clock.advance(61)
        self.assertEqual(self.closed, [ALICE])

    def test_overflow_closes_stream(self):
        """More than max_unacked unacknowledged stanzas: resource-constraint, and the
        messages are not lost."""
        alice, _ = self.alice()
        self.deliver(alice, 1, 2, 3)
        self.bob.send(chat(4))
        alice.expect("<message id='m4'/>")
        alice.expect_stream_error("resource-constraint")
        self.assertEqual(self.closed, [ALICE])
        self.assert_not_lost(1, 2, 3, 4)

    def test_overflow_while_hibernating(self):
        """A hibernating session that overflows ends at once (no unbounded queue); its
        messages are not lost."""
        alice, sm_id = self.alice()
        alice.lose_connection()
        for n in range(1, 5):
            self.bob.send(chat(n))
        self.assertEqual(self.closed, [ALICE])
        self.assert_not_lost(1, 2, 3, 4)
        self.resume(sm_id, 0).expect(failed("item-not-found"))


class LimitWithoutStorageTests(LimitTests):
    """Overflow without offline storage: the messages bounce to their sender."""

    storage = ()


class SpoolTests(SMTestCase):
    """The durable spool: rows while unacknowledged, recovery after a crash."""

    def test_rows_follow_acks(self):
        """Each unacknowledged message has a row (with the serialised stanza); acks delete
        them; other stanzas are not spooled."""
        alice, sm_id = self.alice()
        self.bob.send(f"<presence to='{ALICE}'/>")
        alice.expect("<presence/>")
        alice.expect(REQUEST)
        self.deliver(alice, 1, 2, request=False)
        rows = spool_rows(self.server)
        self.assertEqual([(r[0], r[1]) for r in rows], [(sm_id, 2), (sm_id, 3)])
        self.assertIn("<body>1</body>", rows[0][2])
        alice.send(ack(2))
        self.assertEqual([r[1] for r in spool_rows(self.server)], [3])
        alice.send(ack(3))
        self.assertEqual(spool_rows(self.server), [])

    def test_offline_rows_outlive_the_handover(self):
        """Messages that offline storage hands to a session with stream management leave
        storage only once their spool rows are durable: at no moment is a stored message
        only in memory."""
        self.bob.send(chat(1, to="alice@localhost"))
        slow = HeldTransactions(self.server.database, "sm spool: write")
        self.patch(self.server.database, "runInteraction", slow)
        alice, _ = self.alice()
        alice.send("<presence/>")
        alice.expect("<message id='m1'/>")
        self.assertEqual(len(slow.held), 1)
        stored = slow.real("count", lambda txn: txn.execute("SELECT COUNT(*) FROM offline_messages").fetchone())
        self.assertEqual(result_of(stored), (1,))

    def test_recovery_at_start(self):
        """A server that died with unacknowledged messages in the spool routes them again
        when it starts (no session survives, so to offline storage), then clears the rows;
        acknowledged ones are not routed again."""
        path = self.mktemp()
        self.patch(summitd.testing, "SQLiteEngine", lambda _: SQLiteEngine(path))
        self.server = self.build_server()
        for user in ("alice", "bob"):
            add_user(self.server, f"{user}@localhost", PASSWORD)
        self.bob = self.connect("bob", "b")
        alice, sm_id = self.alice()
        self.deliver(alice, 1, 2, 3)
        alice.send(ack(1))
        self.assertEqual(len(spool_rows(self.server)), 2)
        # The first server "crashes": it is abandoned; a second one starts on the same file.
        available = dict(discover())
        recorders = []
        available["recorder"] = Factory("recorder", lambda c, _: recorders.append(Recorder(c)) or recorders[-1])
        restarted = self.build_server(available, extra=["recorder"])
        self.assertEqual(recorders[0].messages, [("alice@localhost/a", "m2"), ("alice@localhost/a", "m3")])
        self.assertEqual(spool_rows(restarted), [])
        # The old SM-ID means nothing to the new server; alice binds and logs in normally.
        self.server = restarted
        alice = self.resume(sm_id, 1)
        alice.expect(failed("item-not-found"))
        alice.bind("a")
        if self.offline:
            alice.send("<presence/>")
            for n in (2, 3):
                alice.expect(f"<message id='m{n}'><body>{n}</body><delay xmlns='urn:xmpp:delay'/></message>")
        result_of(restarted.stop())


class ShutdownTests(SMTestCase):
    """The service's graceful stop (summitd.service.SummitService.stopService)."""

    def test_acks_before_system_shutdown(self):
        """On stop, a client with stream management gets <a h/> for everything it sent,
        then the system-shutdown stream error; a hibernating session ends and its
        unacknowledged messages go to offline storage (bob, their sender, is being
        disconnected too: a bounce could reach nobody)."""
        service = SummitService(self.server.config, self.server.clock)
        service.server = self.server
        bob, _ = self.connect("bob", "b2", f"<enable xmlns='{NS_SM}'/>")
        bob.send(chat(1, to="mallory@localhost"))
        bob.send(chat(2, to="mallory@localhost"))
        alice, _ = self.alice()
        self.deliver(alice, 3)
        alice.lose_connection()
        stopped = service.stopService()
        bob.expect(ack(2))
        bob.expect_stream_error("system-shutdown")
        self.assertIn(ALICE, self.closed)
        if self.offline:
            self.assert_not_lost(3)
        self.server.clock.advance(1)
        self.assertIsNone(result_of(stopped))
