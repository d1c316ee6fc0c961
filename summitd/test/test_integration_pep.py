"""End to end PEP (XEP-0163): a real ``twistd summitd`` with roster, presence, disco and pep,
and slixmpp clients (``slixmpp_pep.py``): an avatar (XEP-0084) reaching a contact through
+notify, bookmarks (XEP-0402) across two resources, an OMEMO-style device list and bundle
fetched by a contact."""

import os

from twisted.internet import defer
from twisted.trial import unittest

from summitd.test.test_integration_slixmpp import ALICE, BOB, PASSWORDS
from summitd.testing.process import SummitdProcessMixin

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_pep.py")


class PEPIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 120
    extensions = ("disco", "roster", "presence", "pep")
    accounts = {ALICE: PASSWORDS["SCENARIO_ALICE_PASSWORD"], BOB: PASSWORDS["SCENARIO_BOB_PASSWORD"]}

    def scenario(self, name):
        return self.run_scenario(SCENARIO, "--port", str(self.port), "--tls", "starttls", "--scenario", name,
                                 env=PASSWORDS)

    @defer.inlineCallbacks
    def finish(self):
        yield self.stop_server()
        self.assertCleanServerLog()

    @defer.inlineCallbacks
    def test_avatar_reaches_contact(self):
        """Alice's avatar metadata reaches bob (a contact both ways whose caps ask for it) from
        alice's bare JID, and bob fetches the data it names."""
        result = yield self.scenario("avatar")
        self.assertEqual(result["metadata"]["from"], ALICE)
        self.assertEqual(result["metadata"]["id"], result["metadata"]["expected_id"])
        self.assertTrue(result["data_matches"])
        yield self.finish()

    @defer.inlineCallbacks
    def test_bookmarks_across_resources(self):
        """A bookmark added on one resource is pushed to the other, read back there, and its
        retraction there is pushed to the first."""
        result = yield self.scenario("bookmarks")
        self.assertEqual(result["notified"]["id"], "council@conference.example.org")
        self.assertEqual(result["fetched"], [["council@conference.example.org", "The Council", "Puck"]])
        self.assertEqual(result["retracted"], "council@conference.example.org")
        yield self.finish()

    @defer.inlineCallbacks
    def test_omemo_device_list_and_bundle(self):
        """An open device list and bundle published by alice are fetched by bob, who also gets
        the device list notification."""
        result = yield self.scenario("omemo")
        self.assertEqual(result["devices"], ["31415"])
        self.assertEqual(result["bundle_keys"], ["1"])
        self.assertEqual(result["notified"], ALICE)
        yield self.finish()
