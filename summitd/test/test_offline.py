"""Offline messages (XEP-0160) with delay stamps (XEP-0203): the "offline" extension."""

from twisted.internet import defer
from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.jid import parse_jid
from summitd.plugins import offline
from summitd.test.test_delivery_rules import (
    BODY, NS_STANZAS, PASSWORD, expect_bounce, im_server, online, stored_count)
from summitd.testing import add_user, parse_xml, result_of

NS_DELAY = "urn:xmpp:delay"
EPOCH = 1_700_000_000           # 2023-11-14T22:13:20Z
STAMP = "2023-11-14T22:13:20Z"


def delays(stanza):
    return [c for c in stanza.elements() if c.uri == NS_DELAY and c.name == "delay"]


class OfflineTestCase(unittest.TestCase):
    """alice online without presence, bob offline, the clock at EPOCH."""

    options = {}

    def setUp(self):
        self.server = im_server(offline=True, extension_options=self.options)
        self.server.clock.advance(EPOCH)
        self.alice = online(self.server, "alice", "desk", None)
        self.extension = self.server.extensions.loaded["offline"][0]

    def send(self, n, to="bob@localhost", type="chat", payload=BODY):
        self.alice.send(f"<message to='{to}' id='m{n}' type='{type}'>{payload}</message>")

    def bob(self, resource="phone", priority=0):
        return online(self.server, "bob", resource, priority)

    def expect_stored(self, client, n, stamp=STAMP, to="bob@localhost"):
        """The next stanza is alice's message n with one delay stamp from the domain."""
        message = client.expect(
            f"<message id='m{n}' to='{to}' from='alice@localhost/desk'>{BODY}"
            f"<delay xmlns='{NS_DELAY}' from='localhost' stamp='{stamp}'>Offline Storage</delay>"
            "</message>")
        self.assertEqual(len(delays(message)), 1)
        return message


class StoreAndDeliverTests(OfflineTestCase):
    def test_stored_while_offline(self):
        """A chat message to bob while he is offline is stored, with no reply to alice."""
        self.send(1)
        self.alice.expect_nothing()
        self.assertEqual(stored_count(self.server), 1)

    def test_delivered_in_order_with_delay_at_initial_presence(self):
        """Stored messages arrive at bob's initial presence (not at login), oldest first,
        each stamped with the time it was stored; then they are deleted."""
        self.send(1)
        self.server.clock.advance(61.25)
        self.send(2)
        bob = online(self.server, "bob", "phone", None)
        bob.expect_nothing()
        bob.send("<presence/>")
        self.expect_stored(bob, 1)
        self.expect_stored(bob, 2, stamp="2023-11-14T22:14:21.250Z")
        bob.expect_nothing()
        self.assertEqual(stored_count(self.server), 0)

    def test_not_delivered_at_a_second_available_presence(self):
        """Only becoming available with a non-negative priority delivers: a presence update
        of an already receiving session leaves a newly stored message alone."""
        bob = self.bob()
        message = parse_xml(f"<message to='bob@localhost' id='m1' type='chat'>{BODY}</message>")
        message["from"] = "alice@localhost/desk"
        result_of(self.extension.store(message, parse_jid("bob@localhost")))
        bob.send("<presence><show>away</show></presence>")
        bob.expect_nothing()
        self.assertEqual(stored_count(self.server), 1)
        self.expect_stored(self.bob("laptop"), 1)

    def test_negative_priority_presence_does_not_deliver(self):
        """A negative-priority initial presence gets nothing (XEP-0160 §2); raising the
        priority to non-negative then delivers."""
        self.send(1)
        bob = self.bob(priority=-1)
        bob.expect_nothing()
        self.assertEqual(stored_count(self.server), 1)
        bob.send("<presence><priority>2</priority></presence>")
        self.expect_stored(bob, 1)
        self.assertEqual(stored_count(self.server), 0)

    def test_full_jid_keeps_its_address(self):
        """A chat message to a full JID of bob that is offline is stored and delivered with
        its 'to' unchanged."""
        self.send(1, to="bob@localhost/gone")
        self.expect_stored(self.bob(), 1, to="bob@localhost/gone")

    def test_delivered_in_batches(self):
        """More messages than one database batch all arrive, in order, and none is left."""
        self.patch(offline, "BATCH_SIZE", 2)
        for n in range(5):
            self.send(n)
        bob = self.bob()
        for n in range(5):
            self.expect_stored(bob, n)
        bob.expect_nothing()
        self.assertEqual(stored_count(self.server), 0)

    def test_forged_delay_is_replaced(self):
        """A delay the sender claims from our domain is removed (XEP-0203 §5); one from
        elsewhere is kept next to ours."""
        self.send(1, payload=BODY + f"<delay xmlns='{NS_DELAY}' from='localhost' stamp='2001-01-01T00:00:00Z'/>"
                  f"<delay xmlns='{NS_DELAY}' from='room@example.org' stamp='2002-01-01T00:00:00Z'/>")
        message = self.bob().next()
        self.assertEqual([(d["from"], d["stamp"]) for d in delays(message)],
                         [("room@example.org", "2002-01-01T00:00:00Z"), ("localhost", STAMP)])

    def test_stored_again_keeps_first_stamp(self):
        """A message that already carries this server's delay (delivered once, then routed
        back to storage by stream management) keeps that stamp and gets no second one."""
        message = parse_xml(f"<message to='bob@localhost' id='m1' type='chat'>{BODY}"
                            f"<delay xmlns='{NS_DELAY}' from='localhost' stamp='{STAMP}'>Offline Storage"
                            "</delay></message>")
        message["from"] = "alice@localhost/desk"
        self.server.clock.advance(3600)
        result_of(self.extension.store(message, parse_jid("bob@localhost")))
        self.expect_stored(self.bob(), 1)

    def test_feature_announced(self):
        """The server announces 'msgoffline' in its disco features (XEP-0160 §4)."""
        features = self.server.hooks.collect(events.SERVER_DISCO_FEATURES, "localhost")
        self.assertIn("msgoffline", features)


class SessionLossTests(OfflineTestCase):
    """Delivery waits for the database; sessions may change meanwhile."""

    def hold_take(self):
        """Make the next read of stored messages wait until the returned function is called."""
        real_take = self.extension.table.take
        held = defer.Deferred()

        def take(*args):
            self.extension.table.take = real_take
            return held.addCallback(lambda _: real_take(*args))

        self.extension.table.take = take
        return lambda: held.callback(None)

    def test_kept_when_the_session_leaves(self):
        """If bob disconnects before the messages were read, none is deleted; his next
        session gets them."""
        self.send(1)
        release = self.hold_take()
        bob = self.bob()
        bob.lose_connection()
        release()
        self.assertEqual(stored_count(self.server), 1)
        self.expect_stored(self.bob("laptop"), 1)

    def test_another_resource_takes_over(self):
        """If the receiving session leaves, another available resource gets the messages."""
        self.send(1)
        release = self.hold_take()
        phone = self.bob()
        laptop = self.bob("laptop")
        phone.lose_connection()
        release()
        self.expect_stored(laptop, 1)
        self.assertEqual(stored_count(self.server), 0)


class WhatIsStoredTests(OfflineTestCase):
    def test_no_store_hint_bounces(self):
        """A <no-store/> hint (XEP-0334) keeps the message out of storage: service-unavailable."""
        self.send(1, payload=BODY + "<no-store xmlns='urn:xmpp:hints'/>")
        expect_bounce(self.alice, "m1")
        self.assertEqual(stored_count(self.server), 0)

    def test_chat_state_only_is_not_stored(self):
        """A chat message carrying only a chat state (XEP-0085) is not stored (XEP-0160 §3)
        and is bounced as RFC 6121 §8.5.2.2.1 allows."""
        self.send(1, payload="<active xmlns='http://jabber.org/protocol/chatstates'/><thread>t</thread>")
        expect_bounce(self.alice, "m1")
        self.assertEqual(stored_count(self.server), 0)

    def test_payload_without_body_is_stored(self):
        """A normal message with content other than a body (a receipt) is stored."""
        self.send(1, type="normal", payload="<received xmlns='urn:xmpp:receipts' id='x'/>")
        self.alice.expect_nothing()
        self.assertEqual(stored_count(self.server), 1)

    def test_store_hint_in_error_is_ignored(self):
        """Hints in an error message are ignored (XEP-0334 §5): it is neither stored nor
        answered."""
        self.send(1, type="error", payload=BODY + "<store xmlns='urn:xmpp:hints'/>")
        self.alice.expect_nothing()
        self.assertEqual(stored_count(self.server), 0)

    def test_missing_account_is_bounced_not_stored(self):
        """A message to an account that does not exist is bounced and nothing is stored."""
        self.send(1, to="nobody@localhost")
        expect_bounce(self.alice, "m1")
        self.assertEqual(stored_count(self.server, "nobody"), 0)

    def test_storage_failure_is_an_error(self):
        """A failing database write is logged and answered with internal-server-error."""
        self.patch(self.extension.table, "add", lambda *a: defer.fail(RuntimeError("disk full")))
        self.send(1)
        expect_bounce(self.alice, "m1", "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class QuotaTests(OfflineTestCase):
    options = {"offline": {"max_messages_per_user": 2}}

    def test_over_quota_is_service_unavailable(self):
        """Beyond max_messages_per_user the sender gets service-unavailable saying the
        mailbox is full; the stored messages are untouched."""
        self.send(1)
        self.send(2)
        self.send(3)
        self.alice.expect(f"<message type='error' id='m3'><error type='cancel'>"
                          f"<service-unavailable xmlns='{NS_STANZAS}'/>"
                          f"<text xmlns='{NS_STANZAS}'>{offline.MAILBOX_FULL}</text></error></message>")
        self.assertEqual(stored_count(self.server), 2)

    def test_quota_is_per_user(self):
        """A full mailbox for bob does not stop messages to carol."""
        add_user(self.server, "carol@localhost", PASSWORD)
        for n in range(3):
            self.send(n)
        expect_bounce(self.alice, "m2")
        self.send(4, to="carol@localhost")
        self.alice.expect_nothing()
        self.assertEqual(stored_count(self.server, "carol"), 1)


class AccountTests(OfflineTestCase):
    def test_account_deletion_removes_messages(self):
        """Deleting bob's account deletes his offline messages and nobody else's."""
        add_user(self.server, "carol@localhost", PASSWORD)
        self.send(1)
        self.send(2, to="carol@localhost")
        self.assertTrue(result_of(self.server.account_manager.delete("bob@localhost")))
        self.assertEqual(stored_count(self.server, "bob"), 0)
        self.assertEqual(stored_count(self.server, "carol"), 1)

    def test_new_account_starts_empty(self):
        """Rows left under a name (stored while its account was being deleted) are cleared
        when an account of that name is created again."""
        result_of(self.extension.table.add("localhost", "dave", "<message/>", 0, 10))
        add_user(self.server, "dave@localhost", PASSWORD)
        self.assertEqual(stored_count(self.server, "dave"), 0)


class ConfigTests(unittest.TestCase):
    def test_default(self):
        """Without options the quota is 1000 messages."""
        self.assertEqual(offline.parse_config({}, "extensions.offline").max_messages_per_user, 1000)

    def test_errors_name_their_keys(self):
        """A bad quota and an unknown option are both reported with their key paths."""
        with self.assertRaises(ConfigError) as caught:
            offline.parse_config({"max_messages_per_user": 0, "colour": "red"}, "extensions.offline")
        self.assertEqual(sorted(path for path, _ in caught.exception.errors),
                         ["extensions.offline.colour", "extensions.offline.max_messages_per_user"])

    def test_delay_stamp(self):
        """Stamps are XEP-0082 UTC DateTimes, with milliseconds only when there are some."""
        self.assertEqual(offline.delay_stamp(EPOCH * 1000), STAMP)
        self.assertEqual(offline.delay_stamp(EPOCH * 1000 + 7), "2023-11-14T22:13:20.007Z")
