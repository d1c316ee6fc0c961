"""End to end: the blocking command (XEP-0191) between two slixmpp clients and a real
``twistd summitd``; ``slixmpp_blocking.py`` runs the clients and reports in JSON."""

import os

from twisted.internet import defer
from twisted.trial import unittest

from summitd.test.test_integration_slixmpp import ALICE, ALICE_PASSWORD, BOB, BOB_PASSWORD, PASSWORDS
from summitd.testing.process import SummitdProcessMixin

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_blocking.py")


class BlockingIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 120
    extensions = ("ping", "blocking")
    accounts = {ALICE: ALICE_PASSWORD, BOB: BOB_PASSWORD}

    @defer.inlineCallbacks
    def test_blocked_contact_is_refused_until_unblocked(self):
        """alice blocks bob with slixmpp's xep_0191: bob's message is refused with
        service-unavailable and alice receives nothing (her own to bob gets not-acceptable
        + <blocked/>); after unblock bob's message arrives."""
        result = yield self.run_scenario(SCENARIO, "--port", str(self.port), "--scenario", "blocking",
                                         env=PASSWORDS)
        self.assertEqual(result["bob_error"]["condition"], "service-unavailable")
        self.assertEqual(result["alice_received_while_blocked"], [])
        self.assertEqual(result["alice_error"], {"condition": "not-acceptable", "blocked": True})
        self.assertEqual(result["push"], [BOB])
        self.assertTrue(result["after_unblock"]["body"].startswith("unblocked ("))
        self.assertEqual(result["after_unblock"]["from"], result["sessions"]["bob"]["bound_jid"])
        yield self.stop_server()
        self.assertCleanServerLog()
