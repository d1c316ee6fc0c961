"""End to end Message Archive Management: a real ``twistd summitd`` with the mam and delivery
extensions and slixmpp clients using their xep_0313 plugin (``slixmpp_mam.py``)."""

import os

from twisted.internet import defer
from twisted.trial import unittest

from summitd.test.test_integration_slixmpp import ALICE, BOB, PASSWORDS
from summitd.testing.process import SummitdProcessMixin

SCENARIO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slixmpp_mam.py")


class MamIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 120
    extensions = ("mam", "delivery")
    extra_config = "[extensions.mam]\nmax_page_size = 50\n"
    accounts = {ALICE: PASSWORDS["SCENARIO_ALICE_PASSWORD"], BOB: PASSWORDS["SCENARIO_BOB_PASSWORD"]}

    @defer.inlineCallbacks
    def test_archive_pages_and_fulltext(self):
        """Bob sends 120 messages to alice, each stamped with alice's stanza-id; after logging
        in again alice pages back through the newest 100 (4 pages of 25), finds the one with a
        rare word by full-text search, and bob's archive holds his 120 sent messages."""
        result = yield self.run_scenario(SCENARIO, "--port", str(self.port), "--tls", "starttls",
                                         "--scenario", "mam",
                                         env={**PASSWORDS, "SCENARIO_MAM_COUNT": "120"})
        self.assertEqual((result["fetched"], result["pages"]), (100, 4))
        self.assertEqual(len(result["fulltext"]), 1)
        self.assertIn("ZEBRAFINCH", result["fulltext"][0])
        self.assertEqual(str(result["bob_sent_count"]), "120")
        yield self.stop_server()
        self.assertCleanServerLog()
