"""End to end Message Carbons (XEP-0280): a real ``twistd summitd`` with the carbons and
delivery extensions and slixmpp clients using their xep_0280 plugin (``slixmpp_carbons.py``)."""

import os

from twisted.internet import defer
from twisted.trial import unittest

from summitd.test.test_integration_slixmpp import ALICE, BOB, PASSWORDS
from summitd.testing.process import SummitdProcessMixin

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_carbons.py")


class CarbonsIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 120
    extensions = ("carbons", "delivery")
    accounts = {ALICE: PASSWORDS["SCENARIO_ALICE_PASSWORD"], BOB: PASSWORDS["SCENARIO_BOB_PASSWORD"]}

    @defer.inlineCallbacks
    def test_received_and_sent_carbons(self):
        """Alice has two carbons-enabled resources: bob's message to alice/one shows on
        alice/two as a received carbon, alice/one's message to bob as a sent carbon, and no
        client sees a message twice."""
        result = yield self.run_scenario(SCENARIO, "--port", str(self.port), "--tls", "starttls",
                                         "--scenario", "carbons", env=PASSWORDS)
        wrapper, inner = result["received_carbon"]
        self.assertEqual(wrapper["from"], ALICE)
        self.assertEqual(inner["from"], result["sessions"]["bob"]["bound_jid"])
        wrapper, inner = result["sent_carbon"]
        self.assertEqual(wrapper["to"], result["sessions"]["alice#2"]["bound_jid"])
        self.assertEqual((inner["from"], inner["to"]), (ALICE + "/one", BOB))
        self.assertEqual(result["seen"]["alice#1"], {"inbound": ["plain"], "outbound": []})
        yield self.stop_server()
        self.assertCleanServerLog()
