"""End to end: roster and presence with slixmpp clients against a real ``twistd summitd``.

``slixmpp_presence.py`` runs the clients; the server runs the roster and presence
extensions. Checked: two accounts subscribe to each other, each sees the other's presence,
the rosters are stored with subscription "both", and presence goes unavailable when one
client leaves, cleanly or by a cut connection.
"""

import os
import sqlite3

from twisted.internet import defer
from twisted.trial import unittest

from summitd.testing.process import SummitdProcessMixin

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_presence.py")
ALICE, ALICE_PASSWORD = "alice@localhost", "alice presence p\u00e4ss"
BOB, BOB_PASSWORD = "bob@localhost", "bob,presence=pass"
PASSWORDS = {"SCENARIO_ALICE_PASSWORD": ALICE_PASSWORD, "SCENARIO_BOB_PASSWORD": BOB_PASSWORD}


class PresenceIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 120
    extensions = ("ping", "roster", "presence")
    accounts = {ALICE: ALICE_PASSWORD, BOB: BOB_PASSWORD}

    @defer.inlineCallbacks
    def run_presence(self, scenario):
        result = yield self.run_scenario(SCENARIO, "--port", str(self.port), "--tls", "starttls",
                                         "--scenario", scenario, env=PASSWORDS)
        sessions = result["sessions"]
        alice, bob = sessions["alice"]["bound_jid"], sessions["bob"]["bound_jid"]
        self.assertEqual(result["rosters"], {"alice": "both", "bob": "both"})
        self.assertIn(bob, result["seen_available"]["alice"])
        self.assertIn(alice, result["seen_available"]["bob"])
        self.assertEqual(result["alice_saw_bob_leave"], bob)
        yield self.stop_server()
        self.assertCleanServerLog()
        return result

    def stored_subscriptions(self):
        with sqlite3.connect(os.path.join(self.base, "var", "summitd.sqlite")) as db:
            return sorted(db.execute("SELECT username, contact, subscription, ask, pending_in FROM roster_items"))

    @defer.inlineCallbacks
    def test_mutual_subscription_then_clean_disconnect(self):
        """alice and bob subscribe to each other, each sees the other online, the rosters are
        stored as "both" with nothing pending, and alice sees bob leave when he disconnects."""
        yield self.run_presence("presence")
        self.assertEqual(self.stored_subscriptions(),
                         [("alice", BOB, "both", 0, 0), ("bob", ALICE, "both", 0, 0)])

    @defer.inlineCallbacks
    def test_unclean_disconnect(self):
        """When bob's connection is cut without a stream close, alice still sees him go
        unavailable (RFC 6121 §4.5.2)."""
        yield self.run_presence("presence-abort")
