"""End to end group chat: a real ``twistd summitd`` with MUC, MIX and MIX-PAM, and slixmpp
clients using their xep_0045, xep_0369 and xep_0405 plugins (``slixmpp_muc.py``,
``slixmpp_mix.py``)."""

import os

from twisted.internet import defer
from twisted.trial import unittest

from summitd.test.test_integration_slixmpp import ALICE, BOB, PASSWORDS
from summitd.testing.process import SummitdProcessMixin

HERE = os.path.dirname(os.path.abspath(__file__))
MUC_SCENARIO = os.path.join(HERE, "slixmpp_muc.py")
MIX_SCENARIO = os.path.join(HERE, "slixmpp_mix.py")
CAROL, CAROL_PASSWORD = "carol@localhost", "carol-password-1"


class GroupchatIntegrationTests(SummitdProcessMixin, unittest.TestCase):
    timeout = 120
    extensions = ("mam", "channels", "muc", "mix", "mix_pam", "roster", "delivery", "disco", "ping")
    accounts = {ALICE: PASSWORDS["SCENARIO_ALICE_PASSWORD"], BOB: PASSWORDS["SCENARIO_BOB_PASSWORD"],
                CAROL: CAROL_PASSWORD}

    def scenario(self, script, name):
        return self.run_scenario(script, "--port", str(self.port), "--tls", "starttls", "--scenario", name,
                                 env={**PASSWORDS, "SCENARIO_CAROL_PASSWORD": CAROL_PASSWORD})

    @defer.inlineCallbacks
    def test_muc_with_slixmpp(self):
        """xep_0045: create and configure a room, history on entering, messages, a kick with
        its reason; the server log stays clean."""
        result = yield self.scenario(MUC_SCENARIO, "muc")
        self.assertIn(201, result["created_codes"])
        self.assertEqual(len(result["history"]), 3)
        self.assertIn(307, result["kicked"]["codes"])
        yield self.stop_server()
        self.assertCleanServerLog()

    @defer.inlineCallbacks
    def test_mix_with_slixmpp(self):
        """xep_0369 + xep_0405: create, join through PAM (annotated roster), a message, and an
        offline client catching up from its own archive."""
        result = yield self.scenario(MIX_SCENARIO, "mix")
        self.assertEqual(result["roster_channels"][0][0], "coven@mix.localhost")
        self.assertEqual(len(result["caught_up"]), 3)
        yield self.stop_server()
        self.assertCleanServerLog()

    @defer.inlineCallbacks
    def test_muc_and_mix_clients_in_one_channel(self):
        """A MUC client and a MIX client in the same channel hear each other."""
        result = yield self.scenario(MIX_SCENARIO, "both")
        self.assertEqual(result["carol_heard_from"], "coven@conference.localhost/hecate")
        self.assertEqual(result["alice_heard"]["nick"], "graymalkin")
        self.assertIn("hecate", result["muc_occupants"])
        yield self.stop_server()
        self.assertCleanServerLog()
