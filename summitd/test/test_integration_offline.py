"""End to end: a message to an offline user waits in a real summitd and arrives, delay-stamped,
when that user logs in (XEP-0160, XEP-0203), and no row is left behind."""

import os
import sqlite3

from twisted.internet import defer
from twisted.trial import unittest

from summitd.test.test_integration_slixmpp import ALICE, ALICE_PASSWORD, BOB, BOB_PASSWORD, PASSWORDS
from summitd.testing.process import SummitdProcessMixin

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_offline.py")


class OfflineIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 120
    extensions = ("ping", "delivery", "offline")
    accounts = {ALICE: ALICE_PASSWORD, BOB: BOB_PASSWORD}

    def stored_rows(self):
        """Offline messages left in the server's database file."""
        db = sqlite3.connect(os.path.join(self.base, "var", "summitd.sqlite"))
        try:
            return db.execute("SELECT COUNT(*) FROM offline_messages").fetchone()[0]
        finally:
            db.close()

    @defer.inlineCallbacks
    def test_message_waits_for_login(self):
        """alice writes to bob while he is offline; bob logs in later and receives it from
        alice's full JID with a delay stamp from the domain; the stored row is gone."""
        result = yield self.run_scenario(SCENARIO, "--port", str(self.port), "--tls", "starttls",
                                         "--scenario", "offline", env=PASSWORDS)
        message = result["offline"]
        self.assertEqual(message["from"], result["sessions"]["alice"]["bound_jid"])
        self.assertEqual(message["delay_from"], "localhost")
        self.assertEqual(message["type"], "chat")
        self.assertTrue(message["stamp_text"].endswith("Z"), message["stamp_text"])
        yield self.stop_server()
        self.assertCleanServerLog()
        self.assertEqual(self.stored_rows(), 0)
