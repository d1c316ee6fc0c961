"""RFC 6121 §8.5 message delivery ("delivery" extension), one table row per rule.

Each row names the RFC paragraph it checks, the message type, the address (the
bare JID, the full JID of bob's first resource, or a full JID matching no
resource), bob's resources as their presence priorities (None: connected
without presence), and the outcome: delivered to which resources, bounced with
service-unavailable, silently dropped, or stored offline (rows with the
"offline" extension enabled). Every row becomes a test of its own.
"""

import re
from collections import namedtuple

from twisted.internet import defer
from twisted.trial import unittest

from summitd.core import events
from summitd.core.hooks import Priority
from summitd.testing import FakeClient, add_user, make_server, result_of

PASSWORD = "secret"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
BODY = "<body>hello</body>"
STORE_HINT = "<body>hello</body><store xmlns='urn:xmpp:hints'/>"


def im_server(offline=False, extension_options=None):
    """A server with delivery (and offline storage) for alice and bob."""
    extensions = ["delivery", "offline"] if offline else ["delivery"]
    server = make_server(extensions=extensions, extension_options=extension_options)
    for user in ("alice", "bob"):
        add_user(server, f"{user}@localhost", PASSWORD)
    return server


def online(server, user, resource, priority=0):
    """A logged-in client that sent initial presence with ``priority`` (none when None)."""
    client = FakeClient(server)
    client.login(user, PASSWORD, resource)
    if priority is not None:
        client.send(f"<presence><priority>{priority}</priority></presence>")
    return client


def stored_count(server, user="bob"):
    """How many offline messages the user has waiting."""
    return result_of(server.database.runQuery(
        "SELECT COUNT(*) FROM offline_messages WHERE username = ?", (user,)))[0][0]


def expect_bounce(client, stanza_id, condition="service-unavailable", name="message"):
    """The client got exactly one error reply with ``condition`` for ``stanza_id``."""
    reply = client.expect(f"<{name} type='error' id='{stanza_id}'><error>"
                          f"<{condition} xmlns='{NS_STANZAS}'/></error></{name}>")
    client.expect_nothing()
    return reply


Row = namedtuple("Row", "rule type to resources expect offline exists payload",
                 defaults=(False, True, BODY))

ERROR, SILENT, STORED = "service-unavailable", "silently ignored", "stored offline"

RULES = (
    # 8.5.1: no such user
    Row("8.5.1 normal to bare, no such account", "normal", "bare", (), ERROR, True, False),
    Row("8.5.1 chat to bare, no such account", "chat", "bare", (), ERROR, True, False),
    Row("8.5.1 groupchat to bare, no such account", "groupchat", "bare", (), ERROR, True, False),
    Row("8.5.1 headline to bare, no such account", "headline", "bare", (), SILENT, True, False),
    Row("8.5.1 headline with store hint to bare, no such account", "headline", "bare", (), SILENT,
        True, False, STORE_HINT),
    Row("8.5.1 error to bare, no such account", "error", "bare", (), SILENT, True, False),
    Row("8.5.1 normal to full, no such account", "normal", "other", (), ERROR, True, False),
    Row("8.5.1 chat to full, no such account", "chat", "other", (), ERROR, True, False),
    Row("8.5.1 groupchat to full, no such account", "groupchat", "other", (), ERROR, True, False),
    Row("8.5.1 headline to full, no such account", "headline", "other", (), SILENT, True, False),
    Row("8.5.1 error to full, no such account", "error", "other", (), SILENT, True, False),
    # 8.5.2.1.1: bare JID, available resources
    Row("8.5.2.1.1 normal to bare, one resource, priority 0", "normal", "bare", (0,), (0,)),
    Row("8.5.2.1.1 normal to bare, two resources, priorities 1 and 0", "normal", "bare", (1, 0), (0,)),
    Row("8.5.2.1.1 normal to bare, two resources, both priority 1", "normal", "bare", (1, 1), (0, 1)),
    Row("8.5.2.1.1 normal to bare, priorities 0 and -1", "normal", "bare", (-1, 0), (1,)),
    Row("8.5.2.1.1 normal to bare, only resource negative, offline storage", "normal", "bare", (-1,),
        STORED, True),
    Row("8.5.2.1.1 normal to bare, only resource negative, no offline storage", "normal", "bare",
        (-1,), ERROR),
    Row("8.5.2.1.1 message without type to bare is normal", None, "bare", (1, 0), (0,)),
    Row("5.2.2 unknown type to bare is handled as normal", "whisper", "bare", (1, 0), (0,)),
    Row("8.5.2.1.1 chat to bare, one resource, priority 0", "chat", "bare", (0,), (0,)),
    Row("8.5.2.1.1 chat to bare, two resources, priorities 1 and 0", "chat", "bare", (1, 0), (0,)),
    Row("8.5.2.1.1 chat to bare, two resources, both priority 1", "chat", "bare", (1, 1), (0, 1)),
    Row("8.5.2.1.1 chat to bare, priorities 0 and -1", "chat", "bare", (-1, 0), (1,)),
    Row("8.5.2.1.1 chat to bare, only resource negative, offline storage", "chat", "bare", (-1,),
        STORED, True),
    Row("8.5.2.1.1 chat to bare, only resource negative, no offline storage", "chat", "bare", (-1,),
        ERROR),
    Row("8.5.2.1.1 groupchat to bare, one resource", "groupchat", "bare", (0,), ERROR),
    Row("8.5.2.1.1 groupchat to bare, only resource negative", "groupchat", "bare", (-1,), ERROR),
    Row("8.5.2.1.1 headline to bare, one resource, priority 0", "headline", "bare", (0,), (0,)),
    Row("8.5.2.1.1 headline to bare, two resources, priorities 1 and 0", "headline", "bare", (1, 0),
        (0, 1)),
    Row("8.5.2.1.1 headline to bare, priorities 0 and -1", "headline", "bare", (-1, 0), (1,)),
    Row("8.5.2.1.1 headline to bare, only resource negative", "headline", "bare", (-1,), SILENT, True),
    Row("8.5.2.1.1 error to bare, one resource", "error", "bare", (0,), SILENT),
    # 8.5.2.2.1: bare JID, no available resources
    Row("8.5.2.2.1 normal to bare, no resources, offline storage", "normal", "bare", (), STORED, True),
    Row("8.5.2.2.1 normal to bare, no resources, no offline storage", "normal", "bare", (), ERROR),
    Row("8.5.2.2.1 chat to bare, no resources, offline storage", "chat", "bare", (), STORED, True),
    Row("8.5.2.2.1 chat to bare, no resources, no offline storage", "chat", "bare", (), ERROR),
    Row("8.5.2.2.1 chat to bare, connected resource without presence", "chat", "bare", (None,),
        STORED, True),
    Row("8.5.2.2.1 groupchat to bare, no resources", "groupchat", "bare", (), ERROR, True),
    Row("8.5.2.2.1 headline to bare, no resources", "headline", "bare", (), SILENT, True),
    Row("8.5.2.2.1 headline with store hint to bare, no resources", "headline", "bare", (), STORED,
        True, True, STORE_HINT),
    Row("8.5.2.2.1 error to bare, no resources", "error", "bare", (), SILENT, True),
    # 8.5.3.1: full JID, resource matches
    Row("8.5.3.1 normal to full, matching negative resource", "normal", "full", (-1, 5), (0,)),
    Row("8.5.3.1 chat to full, matching negative resource", "chat", "full", (-1, 5), (0,)),
    Row("8.5.3.1 chat to full, matching connected resource without presence", "chat", "full",
        (None,), (0,)),
    Row("8.5.3.1 groupchat to full, matching resource", "groupchat", "full", (0, 5), (0,)),
    Row("8.5.3.1 headline to full, matching resource", "headline", "full", (0, 5), (0,)),
    Row("8.5.3.1 error to full, matching resource", "error", "full", (0, 5), (0,)),
    # 8.5.3.2.1: full JID, no resource matches
    Row("8.5.3.2.1 normal to full, no resources", "normal", "other", (), ERROR, True),
    Row("8.5.3.2.1 normal to full, another resource available", "normal", "other", (0,), ERROR),
    Row("8.5.3.2.1 groupchat to full, another resource available", "groupchat", "other", (0,), ERROR),
    Row("8.5.3.2.1 headline to full, another resource available", "headline", "other", (0,), SILENT),
    Row("8.5.3.2.1 error to full, another resource available", "error", "other", (0,), SILENT),
    Row("8.5.3.2.1 chat to full, no resources, offline storage", "chat", "other", (), STORED, True),
    Row("8.5.3.2.1 chat to full, no resources, no offline storage", "chat", "other", (), ERROR),
    Row("8.5.3.2.1 chat to full, only resource negative, offline storage", "chat", "other", (-1,),
        STORED, True),
    Row("8.5.3.2.1 chat to full, one non-negative resource", "chat", "other", (0,), (0,)),
    Row("8.5.3.2.1 chat to full, two resources, priorities 1 and 0", "chat", "other", (1, 0), (0,)),
)

ADDRESSES = {"bare": "{user}@localhost", "full": "{user}@localhost/r0", "other": "{user}@localhost/gone"}


class DeliveryRulesTests(unittest.TestCase):
    """The rows of RULES, each a test method (added below the class)."""

    def check_row(self, row):
        server = im_server(offline=row.offline)
        resources = [online(server, "bob", f"r{i}", p) for i, p in enumerate(row.resources)]
        alice = online(server, "alice", "desk", None)
        to = ADDRESSES[row.to].format(user="bob" if row.exists else "nobody")
        type_attribute = f" type='{row.type}'" if row.type else ""
        alice.send(f"<message to='{to}' id='m1'{type_attribute}>{row.payload}</message>")
        if isinstance(row.expect, tuple):
            for i, client in enumerate(resources):
                if i in row.expect:
                    client.expect(f"<message to='{to}' id='m1' from='alice@localhost/desk'/>")
                client.expect_nothing()
            alice.expect_nothing()
        else:
            for client in resources:
                client.expect_nothing()
            if row.expect == ERROR:
                expect_bounce(alice, "m1")
            else:
                alice.expect_nothing()
        if row.offline:
            self.assertEqual(stored_count(server, "bob" if row.exists else "nobody"),
                             1 if row.expect == STORED else 0)


def _add_row_tests():
    for row in RULES:
        name = "test_" + re.sub(r"\W+", "_", row.rule).strip("_").lower()
        assert not hasattr(DeliveryRulesTests, name), f"two rows named {row.rule!r}"

        def test(self, row=row):
            self.check_row(row)

        test.__name__ = name
        test.__doc__ = f"RFC 6121 {row.rule}: {row.expect if isinstance(row.expect, str) else 'delivered'}."
        setattr(DeliveryRulesTests, name, test)


_add_row_tests()


class AccountExistenceTests(unittest.TestCase):
    """§8.5.1 and RFC 6120 §10.5.3.1 for IQs and presence, and the asynchronous lookup."""

    def setUp(self):
        self.server = make_server(extensions=["delivery", "ping"])
        for user in ("alice", "bob"):
            add_user(self.server, f"{user}@localhost", PASSWORD)
        self.alice = online(self.server, "alice", "desk", None)

    def test_iq_to_missing_account_is_service_unavailable(self):
        """An IQ the server would answer for an account (ping) gets service-unavailable when
        the account does not exist, instead of a result claiming it does."""
        self.alice.send("<iq to='nobody@localhost' type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>")
        expect_bounce(self.alice, "p1", name="iq")

    def test_iq_to_existing_offline_account_is_answered(self):
        """The same IQ to an existing account with nobody online is answered for it (§8.5.2.2.3)."""
        self.alice.send("<iq to='bob@localhost' type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>")
        self.alice.expect("<iq type='result' id='p2' from='bob@localhost'/>")
        self.alice.expect_nothing()

    def test_unhandled_iq_to_existing_account(self):
        """An IQ nobody handles for an existing account still gets service-unavailable."""
        self.alice.send("<iq to='bob@localhost' type='get' id='p3'><q xmlns='urn:example:none'/></iq>")
        expect_bounce(self.alice, "p3", name="iq")

    def test_presence_to_missing_account_is_ignored(self):
        """Presence of any type to a missing account gets no reply (§8.5.1), and
        subscription presence is left to presence handling (which looks accounts up)."""
        seen = []
        self.server.hooks.add(events.PRESENCE_TO_ACCOUNT, lambda stanza, to: seen.append(to.user),
                              Priority.DEFAULT)
        for type in ("", " type='unavailable'", " type='subscribe'", " type='probe'"):
            self.alice.send(f"<presence to='nobody@localhost'{type}/>")
        self.alice.expect_nothing()
        self.assertEqual(seen, ["nobody"] * 4)

    def test_resource_online_during_lookup_gets_the_message(self):
        """When bob comes online while his account is being looked up, the message is
        delivered to him rather than stored."""
        server = im_server(offline=True)
        alice = online(server, "alice", "desk", None)
        pending = defer.Deferred()
        self.patch(server.account_manager, "exists", lambda jid: pending)
        alice.send(f"<message to='bob@localhost' id='m2' type='chat'>{BODY}</message>")
        bob = online(server, "bob", "phone", 0)
        pending.callback(True)
        bob.expect("<message id='m2' to='bob@localhost'/>")
        bob.expect_nothing()
        self.assertEqual(stored_count(server), 0)

    def test_lookup_and_store_are_one_tracked_write(self):
        """The write barrier (stream management's acknowledgement) waits for the account
        lookup and the store that follows it."""
        server = im_server(offline=True)
        alice = online(server, "alice", "desk", None)
        pending = defer.Deferred()
        self.patch(server.account_manager, "exists", lambda jid: pending)
        alice.send(f"<message to='bob@localhost' id='m4' type='chat'>{BODY}</message>")
        barrier = server.writes.barrier()
        self.assertNoResult(barrier)
        pending.callback(True)
        self.successResultOf(barrier)
        self.assertEqual(stored_count(server), 1)

    def test_lookup_failure_is_an_error(self):
        """A failing account lookup is logged and answered with internal-server-error."""
        server = im_server(offline=True)
        alice = online(server, "alice", "desk", None)
        self.patch(server.account_manager, "exists", lambda jid: defer.fail(RuntimeError("db down")))
        alice.send(f"<message to='bob@localhost' id='m3' type='chat'>{BODY}</message>")
        expect_bounce(alice, "m3", "internal-server-error")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
